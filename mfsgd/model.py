"""Public path of :class:`MatrixFactorization` (:mod:`mfsgd.models.mf`) and its exceptions."""
from .exceptions import DivergenceError, NotFittedError
from .models.mf import MatrixFactorization

__all__ = ["MatrixFactorization", "DivergenceError", "NotFittedError"]
