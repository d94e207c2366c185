"""The factor models."""
