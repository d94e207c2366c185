"""SVD++ speed: against plain MF and Surprise's SVDpp on MovieLens 100K, and 1 vs 2 threads.

    PYTHONPATH=. python -m benchmarks.svdpp_compare [--repeats 5] [--epochs 10]
        [--surprise-epochs 1] [--ratings 10M] [--big-factors 32,128] [--out DIR]

Three measurements, each printed as a table and saved with the machine description and the
load average in DIR/svdpp_compare.json:

1. MovieLens 100K ``u1.base``, k = 100, one thread: ``MatrixFactorization`` and ``SVDpp``
   with the same parameters, fitted alternately ``--repeats`` times (MF, SVD++, MF, ...);
   each fit's seconds per epoch is the median of its ``history_`` epochs (the kernel call
   only), and the ratio SVD++/MF is taken per pair, then its median is reported, so that
   load from other processes hits both sides alike; the same ratio from the CPU time of
   each epoch (a callback reads the thread's CPU clock) is reported too.
2. Surprise's ``SVDpp(n_factors=100)`` on the same training set for ``--surprise-epochs``
   epochs (its per-rating loop is slow, so few epochs; seconds per epoch = fit time /
   epochs, set-up included, wall and CPU) against mfsgd's SVD++ epoch above (wall and CPU)
   and its whole fit per epoch.
3. ``mfsgd.make_synthetic`` with ``--ratings`` ratings (users = ratings / 50, items =
   ratings / 500), for each k in ``--big-factors``: SVD++ on 1 and 2 threads, alternately,
   ``--big-repeats`` times, 3 epochs each; the speed-up is the median of the per-pair ratios.
   ``--wait-idle S`` waits up to S seconds for an idle machine before each pair; the CPU
   other processes used during each fit is recorded.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make `benchmarks` importable, appended so
    sys.path.append(str(HERE.parent))  # that an installed or PYTHONPATH mfsgd still comes first

from benchmarks import data, measure  # noqa: E402
from benchmarks.report import machine_info  # noqa: E402
from benchmarks.suite import wait_until_idle  # noqa: E402

K_ML100K = 100
PARAMS = dict(learning_rate=0.005, regularization=0.05, random_state=0)


def _epoch_seconds(model):
    return float(np.median([record["seconds"] for record in model.history_]))


class _KernelCpuClock:
    """The calling thread's CPU time spent in the training loop's kernel calls
    (``LocalBackend.run``, patched while a fit runs): on one thread the kernel runs in the
    calling thread, and CPU time, unlike wall time, does not count the time other processes
    hold the core.  Only the kernel calls count, as in ``history_[i]["seconds"]`` (not the
    p + z that SVD++ publishes for callbacks or validation)."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        from mfsgd.training import loop
        self._loop, self._run = loop, loop.LocalBackend.run
        clock, run = self, loop.LocalBackend.run

        def timed(backend, *args):
            start = time.thread_time()
            try:
                return run(backend, *args)
            finally:
                clock.seconds += time.thread_time() - start

        loop.LocalBackend.run = timed
        return self

    def __exit__(self, *exc):
        self._loop.LocalBackend.run = self._run


def _fit(cls, train, n_threads, n_epochs, n_factors, **params):
    start = time.perf_counter()
    with _KernelCpuClock() as clock:
        model = cls(n_factors=n_factors, n_epochs=n_epochs, n_threads=n_threads,
                    **{**PARAMS, **params}).fit(train)
    model.cpu_epoch_seconds_ = clock.seconds / n_epochs if n_threads == 1 else None
    return model, time.perf_counter() - start


def movielens_vs_mf(train, test, repeats, n_epochs, log):
    """Part 1: SVD++ and MF epochs on one thread, alternating."""
    import mfsgd
    rows = []
    for repeat in range(repeats):
        mf, mf_wall = _fit(mfsgd.MatrixFactorization, train, 1, n_epochs, K_ML100K)
        svd, svd_wall = _fit(mfsgd.SVDpp, train, 1, n_epochs, K_ML100K)
        row = {"mf_epoch_s": _epoch_seconds(mf), "svdpp_epoch_s": _epoch_seconds(svd),
               "mf_cpu_epoch_s": mf.cpu_epoch_seconds_,
               "svdpp_cpu_epoch_s": svd.cpu_epoch_seconds_,
               "mf_fit_s": mf_wall, "svdpp_fit_s": svd_wall,
               "mf_rmse": mf.score(test), "svdpp_rmse": svd.score(test)}
        row["ratio"] = row["svdpp_epoch_s"] / row["mf_epoch_s"]
        row["cpu_ratio"] = row["svdpp_cpu_epoch_s"] / row["mf_cpu_epoch_s"]
        rows.append(row)
        log(f"  repeat {repeat + 1}: MF {row['mf_epoch_s'] * 1e3:.2f} ms/epoch, SVD++ "
            f"{row['svdpp_epoch_s'] * 1e3:.2f} ms/epoch, ratio {row['ratio']:.2f} "
            f"(CPU time: {row['mf_cpu_epoch_s'] * 1e3:.2f} and "
            f"{row['svdpp_cpu_epoch_s'] * 1e3:.2f} ms, ratio {row['cpu_ratio']:.2f})")
    summary = {key: float(np.median([row[key] for row in rows])) for key in rows[0]}
    return {"repeats": rows, "median": summary, "n_train": len(train[2]),
            "n_epochs": n_epochs, "n_factors": K_ML100K, "params": PARAMS}


def surprise_svdpp(directory, n_epochs, log):
    """Part 2: seconds per epoch of Surprise's SVDpp (k = 100) on u1.base."""
    try:
        import surprise
        from surprise import SVDpp as SurpriseSVDpp
        from surprise import Dataset, Reader
        from surprise.model_selection import PredefinedKFold
    except ImportError:
        log("  surprise is not installed: skipped")
        return None
    reader = Reader(line_format="user item rating timestamp", sep="\t", rating_scale=(1, 5))
    folds = Dataset.load_from_folds([(str(directory / "u1.base"), str(directory / "u1.test"))],
                                    reader)
    trainset, _ = next(PredefinedKFold().split(folds))
    algo = SurpriseSVDpp(n_factors=K_ML100K, n_epochs=n_epochs, random_state=0)
    start, cpu_start = time.perf_counter(), time.thread_time()
    algo.fit(trainset)
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    log(f"  surprise SVDpp {n_epochs} epoch(s): {seconds:.1f} s ({cpu:.1f} s CPU)")
    return {"version": surprise.__version__, "n_epochs": n_epochs, "fit_s": seconds,
            "epoch_s": seconds / n_epochs, "cpu_epoch_s": cpu / n_epochs}


def _other_load(fit):
    """Run `fit()`; return its result and the cores other processes used meanwhile."""
    busy, own, start = (measure._busy_cpu_seconds(), measure._own_cpu_seconds(),
                        time.perf_counter())
    result = fit()
    wall = time.perf_counter() - start
    if busy is None:
        return result, None
    return result, measure.other_load(measure._busy_cpu_seconds() - busy,
                                      measure._own_cpu_seconds() - own, wall)


def threads_speedup(n_ratings, factors, repeats, log, wait_idle=0):
    """Part 3: SVD++ on 1 and 2 threads on synthetic ratings (after waiting up to
    `wait_idle` seconds for the machine to be idle before each pair)."""
    import mfsgd
    n_users, n_items = data.shape_for(n_ratings)
    users, items, values = mfsgd.make_synthetic(n_users=n_users, n_items=n_items,
                                                n_ratings=n_ratings, random_state=0)
    train = mfsgd.Ratings.from_arrays(users, items, values, duplicates="last")
    del users, items, values
    out = []
    for k in factors:
        rows = []
        for repeat in range(repeats):
            if wait_idle:
                wait_until_idle(wait_idle, threshold=0.3)
            (one, _), load_1 = _other_load(lambda: _fit(mfsgd.SVDpp, train, 1, 3, k))
            (two, _), load_2 = _other_load(lambda: _fit(mfsgd.SVDpp, train, 2, 3, k))
            row = {"epoch_s_1": _epoch_seconds(one), "epoch_s_2": _epoch_seconds(two),
                   "other_load_1": load_1, "other_load_2": load_2}
            row["speedup"] = row["epoch_s_1"] / row["epoch_s_2"]
            rows.append(row)
            log(f"  k={k} repeat {repeat + 1}: 1 thread {row['epoch_s_1']:.3f} s/epoch, "
                f"2 threads {row['epoch_s_2']:.3f} s/epoch, speed-up {row['speedup']:.2f} "
                f"(other processes: {_cores(load_1)} and {_cores(load_2)} cores)")
        out.append({"n_factors": k, "n_blocks": one.fit_state_.layout.n_blocks, "repeats": rows,
                    "median": {key: float(np.median([row[key] for row in rows]))
                               for key in ("epoch_s_1", "epoch_s_2", "speedup")}})
        del one, two
    return {"n_ratings": len(train), "n_users": train.n_users, "n_items": train.n_items,
            "by_k": out}


def _cores(load):
    return "?" if load is None else f"{load:.2f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--surprise-epochs", type=int, default=1)
    ap.add_argument("--ratings", default="10M", help="synthetic size for part 3 ('0' skips)")
    ap.add_argument("--big-factors", default="32,128")
    ap.add_argument("--big-repeats", type=int, default=3)
    ap.add_argument("--wait-idle", type=float, default=0,
                    help="seconds to wait for an idle machine before each pair of part 3")
    ap.add_argument("--skip-movielens", action="store_true", help="run part 3 only")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    directory = data.ml100k_dir()
    if directory is None:
        print("MovieLens 100K not found ($MFSGD_ML100K or ../shared/data/ml-100k)")
        return 1
    from benchmarks.surprise_compare import read_split
    train, test = read_split(directory, "u1.base"), read_split(directory, "u1.test")
    results = {"machine": machine_info((K_ML100K,)), "load_before": os.getloadavg()}
    if not args.skip_movielens:
        print(f"MovieLens 100K u1.base, k = {K_ML100K}, one thread, {args.epochs} epochs:")
        results["movielens"] = movielens_vs_mf(train, test, args.repeats, args.epochs, print)
        print("Surprise SVDpp, same training set:")
        results["surprise"] = surprise_svdpp(directory, args.surprise_epochs, print)
    n_ratings = data.parse_count(args.ratings)
    if n_ratings:
        print(f"synthetic {args.ratings} ratings, SVD++ 1 vs 2 threads:")
        factors = [int(k) for k in args.big_factors.split(",")]
        results["threads"] = threads_speedup(n_ratings, factors, args.big_repeats, print,
                                             args.wait_idle)
    results["load_after"] = os.getloadavg()
    print(report(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "svdpp_compare.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"saved {path}")
    return results


def report(results):
    """The results as Markdown tables."""
    lines = [f"CPU: {results['machine']['cpu_model']}, {results['machine']['cores']} cores; "
             f"load average before {results['load_before'][0]:.2f}, after "
             f"{results['load_after'][0]:.2f}"]
    if "movielens" in results:
        lines += _movielens_report(results)
    threads = results.get("threads")
    if threads:
        lines += ["", f"| synthetic {threads['n_ratings']:,} ratings | B | 1 thread s/epoch | "
                      "2 threads s/epoch | speed-up (median of pairs) |", "|---|---|---|---|---|"]
        for row in threads["by_k"]:
            m = row["median"]
            lines.append(f"| k = {row['n_factors']} | {row['n_blocks']} | {m['epoch_s_1']:.3f} "
                         f"| {m['epoch_s_2']:.3f} | {m['speedup']:.2f} |")
    return "\n".join(lines)


def _movielens_report(results):
    ml = results["movielens"]["median"]
    lines = ["", "| MovieLens 100K u1, k = 100, 1 thread | ms/epoch (median) | test RMSE |",
             "|---|---|---|",
             f"| MatrixFactorization | {ml['mf_epoch_s'] * 1e3:.2f} | {ml['mf_rmse']:.4f} |",
             f"| SVDpp | {ml['svdpp_epoch_s'] * 1e3:.2f} | {ml['svdpp_rmse']:.4f} |",
             f"| SVD++ / MF (median of per-pair ratios) | {ml['ratio']:.2f} | |",
             f"| same, from CPU time per epoch | {ml['cpu_ratio']:.2f} | |"]
    surprise = results.get("surprise")
    if surprise:
        whole = ml["svdpp_fit_s"] / results["movielens"]["n_epochs"]
        lines += ["", f"Surprise {surprise['version']} SVDpp: {surprise['epoch_s']:.2f} s/epoch "
                  f"({surprise['cpu_epoch_s']:.2f} s CPU); mfsgd SVDpp "
                  f"{surprise['epoch_s'] / ml['svdpp_epoch_s']:.0f}x faster per epoch (kernel, "
                  f"wall), {surprise['cpu_epoch_s'] / ml['svdpp_cpu_epoch_s']:.0f}x (CPU time), "
                  f"{surprise['epoch_s'] / whole:.0f}x (whole fit / epochs, wall)"]
    return lines


if __name__ == "__main__":
    main()
