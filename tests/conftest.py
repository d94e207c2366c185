"""Shared fixtures: the MovieLens 100K location, a check that the compiled kernel loads, and
the Hypothesis profiles of the fuzz tests (marked ``fuzz``)."""
import os
import signal
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import mfsgd
from mfsgd._kernels import _sgd  # noqa: F401  (fail loudly here if the extension was not built)

# "ci": a short, fixed-seed run on every `pytest`; "long": what `python -m benchmarks.fuzz`
# runs for minutes.  Deadlines are off: a shared 2-core machine makes them flaky; hangs are
# caught by the `fuzz_limits` fixture instead.
settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("long", max_examples=100_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("MFSGD_HYPOTHESIS_PROFILE", "ci"))

ML100K_CANDIDATES = [
    os.environ.get("MFSGD_ML100K"),
    str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"),
]


def pytest_report_header(config):
    return f"mfsgd {mfsgd.__version__} from {Path(mfsgd.__file__).parent}, kernel ISA k=32: {_sgd.current_isa(32)}, k=100: {_sgd.current_isa(100)}, k=128: {_sgd.current_isa(128)}, OpenMP {_sgd.HAVE_OPENMP}"


@pytest.fixture(scope="session")
def ml100k_dir():
    """Directory of MovieLens 100K ($MFSGD_ML100K or ../shared/data/ml-100k); skip if absent."""
    for candidate in ML100K_CANDIDATES:
        if candidate and (Path(candidate) / "u.data").is_file():
            return Path(candidate)
    pytest.skip("MovieLens 100K not found (set MFSGD_ML100K)")


def read_ml100k_split(directory, name):
    """(users, items, ratings) of a MovieLens 100K split file such as u1.base."""
    table = np.loadtxt(directory / name, dtype=np.int64, usecols=(0, 1, 2))
    return table[:, 0], table[:, 1], table[:, 2].astype(np.float32)


@pytest.fixture(scope="session")
def ml100k_u1(ml100k_dir):
    """The u1.base / u1.test split as (train, test) index triplets."""
    return read_ml100k_split(ml100k_dir, "u1.base"), read_ml100k_split(ml100k_dir, "u1.test")


@pytest.fixture(scope="session")
def string_id_ratings():
    """(users, items, ratings) with string ids, and the mfsgd.Ratings built from them."""
    users, items, ratings = mfsgd.make_synthetic(n_users=120, n_items=60, n_ratings=2500,
                                                 random_state=3)
    user_names = np.array([f"user-{u:03d}" for u in users])
    item_names = np.array([f"item-{i:03d}" for i in items])
    return (user_names, item_names, ratings), mfsgd.Ratings.from_arrays(user_names, item_names, ratings)


class FuzzLimitExceeded(AssertionError):
    """A fuzzed call took longer or allocated more than its stated bound."""


class _FuzzLimits:
    """Run one call under a time limit and measure the peak memory it allocates (tracemalloc
    sees numpy's buffers), failing when either bound is exceeded."""

    def __call__(self, function, *args, max_bytes, seconds=10.0, **kwargs):
        def on_alarm(signum, frame):
            raise FuzzLimitExceeded(f"{getattr(function, '__name__', function)} ran over "
                                    f"{seconds} s")
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            return function(*args, **kwargs)
        finally:
            peak = tracemalloc.get_traced_memory()[1] - base
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if not tracing:
                tracemalloc.stop()
            if peak > max_bytes:
                raise FuzzLimitExceeded(f"{getattr(function, '__name__', function)} allocated "
                                        f"{peak:,} bytes at peak, over its bound of "
                                        f"{max_bytes:,}")


@pytest.fixture(scope="session")
def fuzz_limits():
    """``fuzz_limits(function, *args, max_bytes=..., seconds=..., **kwargs)``: call it, raising
    FuzzLimitExceeded (an AssertionError) when it runs over `seconds` or allocates more than
    `max_bytes` at peak.  Session-scoped, so Hypothesis tests may use it."""
    return _FuzzLimits()


def pytest_configure(config):
    # A shell starts background jobs (`pytest &`, some CI runners) with SIGINT ignored, and
    # Python then keeps it ignored: the tests that send themselves SIGINT need Python's
    # KeyboardInterrupt handler, as in an interactive run.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
