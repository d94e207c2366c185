"""Public path of :mod:`mfsgd.data.io`: :func:`read_ratings` and its line-length bound."""
from .data.io import MAX_LINE_BYTES, read_ratings

__all__ = ["read_ratings", "MAX_LINE_BYTES"]
