"""The default thread count against one thread, on an idle machine and beside a busy process.

    python -m benchmarks.threads_default                   # 100k ratings (ml-latest-small's shape)
    python -m benchmarks.threads_default --ratings 100k,1M --repeats 9 --wait-idle 30

For each data size and each condition ("idle": nothing else started; "busy": one
``python -c "while True: pass"`` running alongside), fits MatrixFactorization with its
defaults and a validation set (10 % held out, scored after every epoch) with ``n_threads=1``
and with ``n_threads=None``, alternating which goes first, and prints the median wall time of
``fit`` of each and their ratio (default / one thread: below 1 means the default is faster).
Both fits of a pair run in this one process, so the ratio compares like with like; "other
load" is the CPU that processes other than this one and its busy helper used meanwhile.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from . import data, measure
from .suite import wait_until_idle

# ml-latest-small: 100,836 ratings of 9,742 movies by 610 users.
SMALL_SHAPE = {100_836: (610, 9_742)}
BUSY_LOOP = "while True: pass"


def make_split(n_ratings, seed=0):
    """(train, validation) Ratings: ml-latest-small's shape at 100k, else the suite's shape."""
    import mfsgd
    if n_ratings in (100_000, 100_836):
        n_ratings = 100_836
        n_users, n_items = SMALL_SHAPE[n_ratings]
    else:
        n_users, n_items = data.shape_for(n_ratings)
    users, items, ratings = mfsgd.make_synthetic(n_users=n_users, n_items=n_items,
                                                 n_ratings=n_ratings, random_state=seed)
    everything = mfsgd.Ratings.from_arrays(users, items, ratings)
    order = np.random.default_rng(seed).permutation(len(everything))
    cut = int(0.9 * len(everything))
    return everything.take(np.sort(order[:cut])), everything.take(np.sort(order[cut:]))


def fit_seconds(train, valid, n_threads):
    """Wall seconds of one default fit with a validation set."""
    import mfsgd
    model = mfsgd.MatrixFactorization(n_threads=n_threads, random_state=0)
    start = time.perf_counter()
    model.fit(train, validation=valid)
    return time.perf_counter() - start


def _process_cpu_seconds(pid):
    """CPU seconds used so far by process `pid` (/proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def compare(train, valid, repeats, busy):
    """Median fit seconds of n_threads=1 and n_threads=None, interleaved, with the load."""
    helper = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        if helper is not None:
            time.sleep(0.2)  # let the busy loop start
        fit_seconds(train, valid, 1)  # warm-up: caches, the OpenMP thread pool
        fit_seconds(train, valid, None)
        seconds = {1: [], None: []}
        busy0, own0 = measure._busy_cpu_seconds(), measure._own_cpu_seconds()
        helper0 = _process_cpu_seconds(helper.pid) if helper else 0.0
        start = time.perf_counter()
        for repeat in range(repeats):
            for n_threads in ((1, None) if repeat % 2 == 0 else (None, 1)):
                seconds[n_threads].append(fit_seconds(train, valid, n_threads))
        wall = time.perf_counter() - start
        busy1, own1 = measure._busy_cpu_seconds(), measure._own_cpu_seconds()
        helper1 = _process_cpu_seconds(helper.pid) if helper else 0.0
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
    other = None
    if busy0 is not None and helper0 is not None and helper1 is not None:
        other = measure.other_load(busy1 - busy0, (own1 - own0) + (helper1 - helper0), wall)
    one, default = statistics.median(seconds[1]), statistics.median(seconds[None])
    return {"one_thread_s": one, "default_s": default, "ratio": default / one,
            "one_thread_all": seconds[1], "default_all": seconds[None],
            "other_load_cores": other}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads_default",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--ratings", default="100k",
                   help="comma list of sizes (default 100k: ml-latest-small's 610 users x "
                        "9,742 items; other sizes use the suite's shape)")
    p.add_argument("--repeats", type=int, default=7, help="fits of each kind per cell")
    p.add_argument("--conditions", default="idle,busy", help="comma list of idle, busy")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each cell wait up to SECONDS for the machine to go idle")
    p.add_argument("--json", default=None, help="also write the results to this file")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import mfsgd
    from mfsgd._threads import usable_cpus
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if not conditions or set(conditions) - {"idle", "busy"}:
        raise SystemExit(f"--conditions takes idle and/or busy, got {args.conditions!r}")
    print(f"mfsgd {mfsgd.__version__} from {mfsgd.__file__}; default threads = "
          f"{usable_cpus()} (usable CPUs); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print("| ratings | condition | 1 thread s | default s | default / 1 thread | other load (cores) |")
    print("|---|---|---|---|---|---|")
    results = []
    for text in args.ratings.split(","):
        n_ratings = data.parse_count(text)
        train, valid = make_split(n_ratings)
        for condition in conditions:
            if args.wait_idle > 0:
                wait_until_idle(args.wait_idle)
            row = compare(train, valid, args.repeats, condition == "busy")
            row.update(ratings=len(train) + len(valid), condition=condition)
            results.append(row)
            other = "–" if row["other_load_cores"] is None else f"{row['other_load_cores']:.2f}"
            print(f"| {row['ratings']:,} | {condition} | {row['one_thread_s']:.3f} | "
                  f"{row['default_s']:.3f} | {row['ratio']:.2f} | {other} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "usable_cpus": usable_cpus(),
                       "loadavg_after": os.getloadavg()}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
