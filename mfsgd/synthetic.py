"""Public path of :mod:`mfsgd.data.synthetic`: :func:`make_synthetic`."""
from .data.synthetic import make_synthetic

__all__ = ["make_synthetic"]
