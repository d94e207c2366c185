"""``mfsgd bench``: a one-minute throughput check that needs nothing beyond the wheel.

The full benchmark suite (scaling, memory, comparisons with the C yardstick and Surprise) lives
in the source checkout's ``benchmarks/`` folder: ``python -m benchmarks``.
"""
import os
import time

from ..models.mf import MatrixFactorization
from ..data.ratings import Ratings
from ..data.synthetic import make_synthetic


def quick_benchmark(n_ratings=1_000_000, n_epochs=3, factors=(32, 128), out=None):
    """Time `n_epochs` epochs on synthetic ratings at each k, on one thread and on all cores.

    Parameters
    ----------
    n_ratings : int
        Requested synthetic ratings (users = n_ratings / 50, items = n_ratings / 500).
    n_epochs : int
        Epochs per fit; the fastest epoch is reported.
    factors : tuple of int
        Factor counts k to time.
    out : file, optional
        Where to print the table (default: stdout).

    Returns
    -------
    list of dict
        One record per (k, threads): the number of ratings, seconds per epoch and million
        rating updates per second.
    """
    if n_ratings < 1000:
        raise ValueError(f"n_ratings must be at least 1000, got {n_ratings}")
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be at least 1, got {n_epochs}")
    users, items, values = make_synthetic(n_users=max(400, n_ratings // 50),
                                          n_items=max(200, n_ratings // 500),
                                          n_ratings=n_ratings, random_state=0)
    data = Ratings.from_arrays(users, items, values, duplicates="last")
    cores = os.cpu_count() or 1
    print(f"{len(data):,} synthetic ratings, {data.n_users:,} users x {data.n_items:,} items, "
          f"{n_epochs} epochs; best epoch reported", file=out)
    print("    k  threads  s/epoch  M updates/s  vs 1 thread", file=out)
    records = []
    for k in factors:
        single = None
        for threads in sorted({1, cores}):
            model = MatrixFactorization(n_factors=k, n_epochs=n_epochs, n_threads=threads,
                                        random_state=0)
            start = time.perf_counter()
            model.fit(data)
            seconds = min(record["seconds"] for record in model.history_)
            rate = len(data) / seconds / 1e6
            single = single or rate
            records.append({"k": k, "threads": threads, "ratings": len(data),
                            "seconds_per_epoch": seconds,
                            "mupd_s": rate, "fit_seconds": time.perf_counter() - start})
            print(f"{k:5d}  {threads:7d}  {seconds:7.3f}  {rate:11.1f}  {rate / single:10.2f}x",
                  file=out)
    return records
