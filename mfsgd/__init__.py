"""mfsgd: matrix-factorization recommenders trained by stochastic gradient descent.

The SGD loop is a typed nogil Cython/C kernel over user-major CSR ratings; this package is a
thin Python layer around it.
"""
from pathlib import Path as _Path

from ._threads import passive_openmp_waiting as _passive_openmp_waiting

try:
    with _passive_openmp_waiting():  # before the OpenMP runtime loads with the kernel
        from ._kernels import _sgd  # noqa: F401
except ImportError as _error:  # pragma: no cover - depends on how the package was installed
    _checkout = (_Path(__file__).parent.parent / "setup.py").is_file()
    raise ImportError(
        "mfsgd's compiled kernel (mfsgd._kernels._sgd) is missing"
        + (f": Python is importing the source checkout at {_Path(__file__).parent}. Install it "
           "with `pip install .` and run the tests with `pytest` (not `python -m pytest`, which "
           "puts the checkout first on sys.path), or build in place with "
           "`python setup.py build_ext --inplace`" if _checkout else "")
    ) from _error

from . import metrics, model_selection  # noqa: E402  (modules: mfsgd.metrics.rmse, ...)
from ._estimator import clone
from ._version import __version__
from .data.datasets import load_movielens
from .data.io import read_ratings
from .data.ratings import Ratings
from .data.synthetic import make_synthetic
from .exceptions import DivergenceError, NotCachedError, NotFittedError
from .models import load
from .models.mf import MatrixFactorization
from .models.svdpp import SVDpp

__all__ = ["MatrixFactorization", "SVDpp", "Ratings", "DivergenceError", "NotFittedError",
           "NotCachedError", "clone", "load", "make_synthetic", "read_ratings", "load_movielens",
           "__version__"]
