"""Public path of :mod:`mfsgd.data.ratings`: :class:`Ratings` and :func:`as_ratings`."""
from .data.ratings import DUPLICATE_POLICIES, Ratings, as_ratings

__all__ = ["Ratings", "as_ratings", "DUPLICATE_POLICIES"]
