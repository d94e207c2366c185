"""Peak memory of ``fit`` for each input type: a tuple of raw ids, a scipy CSR matrix, a Ratings.

    PYTHONPATH=. python -m benchmarks.fit_memory                       # 10M ratings, k = 64
    PYTHONPATH=. python -m benchmarks.fit_memory --ratings 1000000 --factors 32

Each input type is measured in a fresh subprocess: the process builds the input (not
counted), returns freed heap memory to the system (glibc ``malloc_trim``), resets its peak
RSS (VmHWM; Linux only), runs one epoch of ``fit`` on one thread
and reports the peak RSS during ``fit`` minus the RSS before it.  The yardstick is the size of
what a fit cannot do without: the ratings as CSR arrays (int64 indptr, int32 indices, float32
ratings) plus the float32 factor matrices; the ratio is the increase over that.  The data has
every user and item rated (users = ratings / 50, items = ratings / 500, unique pairs drawn
uniformly), so no input type drops rows.
"""
import argparse
import ctypes
import gc
import json
import subprocess
import sys

import numpy as np

INPUTS = ("tuple", "scipy", "Ratings")


def make_data(n_ratings, seed=0):
    """(users int32, items int32, ratings float32) of unique pairs rating every user and item."""
    n_users, n_items = max(1, n_ratings // 50), max(1, n_ratings // 500)
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, n_users * n_items, size=int(n_ratings * 1.02) + 10))
    keys = rng.permutation(keys)[:n_ratings]
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    ratings = rng.integers(1, 6, size=len(keys)).astype(np.float32)
    return users, items, ratings


def _status_kib():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def measure(kind, n_ratings, n_factors):
    """Fit once on input `kind` and return the memory figures (MiB) as a dict."""
    import scipy.sparse as sp

    import mfsgd

    users, items, ratings = make_data(n_ratings)
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    if kind == "tuple":
        X = (users, items, ratings)
    else:
        matrix = sp.csr_matrix((ratings, (users, items)), shape=(n_users, n_items))
        matrix.sum_duplicates()
        X = matrix if kind == "scipy" else mfsgd.Ratings.from_sparse(matrix)
        del matrix
    if kind != "tuple":
        del users, items, ratings
    model = mfsgd.MatrixFactorization(n_factors=n_factors, n_epochs=1, n_threads=1,
                                      random_state=0)
    gc.collect()
    # glibc keeps freed memory of the set-up in its heap; without returning it first, fit
    # would reuse it unseen and its increase would look smaller than it is.
    ctypes.CDLL(None).malloc_trim(0)
    before = _status_kib()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    model.fit(X)
    peak = _status_kib()["VmHWM"]
    csr_bytes = 8 * (n_users + 1) + 8 * n_ratings
    factor_bytes = 4 * n_factors * (n_users + n_items)
    mib = 1 / 1024
    increase = (peak - before) * mib
    base = (csr_bytes + factor_bytes) / 2**20
    return {"input": kind, "n_ratings": n_ratings, "n_users": n_users, "n_items": n_items,
            "n_factors": n_factors, "rss_before_mib": before * mib, "peak_mib": peak * mib,
            "fit_increase_mib": increase, "csr_mib": csr_bytes / 2**20,
            "factors_mib": factor_bytes / 2**20, "ratio": increase / base,
            "model_users": int(model.n_users_), "model_items": int(model.n_items_)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--inputs", default=",".join(INPUTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.ratings, args.factors)))
        return
    print(f"{'input':8} {'before MiB':>10} {'+fit MiB':>9} {'CSR MiB':>8} {'factors MiB':>11} "
          f"{'+fit / (CSR + factors)':>22}")
    for kind in args.inputs.split(","):
        out = subprocess.run([sys.executable, "-m", "benchmarks.fit_memory", "--worker", kind,
                              "--ratings", str(args.ratings), "--factors", str(args.factors)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{kind:8} {r['rss_before_mib']:10.0f} {r['fit_increase_mib']:9.0f} "
              f"{r['csr_mib']:8.0f} {r['factors_mib']:11.0f} {r['ratio']:22.2f}")


if __name__ == "__main__":
    main()
