"""Reading speed of mfsgd.read_ratings and peak memory of building a Ratings.

    PYTHONPATH=. python -m benchmarks.bench_io [--lines 5M] [--memory-lines 20M] [--repeats 3]

Writes synthetic rating files into a temporary folder (removed afterwards): a 3-column
tab-separated file ``user item rating`` and a MovieLens-25M-style CSV with a header and a
timestamp column, ratings/50 users and ratings/500 items, no repeated (user, item).  Each
measurement runs in a fresh subprocess:

- speed: million lines per second of ``read_ratings`` (the whole call: parsing and building
  the Ratings) with its numpy parser (pandas made unimportable: ``sys.modules["pandas"] =
  None``) and with pandas imported beforehand (its C parser then reads all but the first
  chunk); pandas.read_csv(engine="c") followed by Ratings.from_dataframe as a yardstick.
  Each of the --repeats rounds runs every variant once, in a fresh process, interleaved so
  that other load on a shared machine hits them alike; the median is reported;
- memory: the peak RSS (VmHWM, reset just before the call; else ru_maxrss) of
  ``read_ratings`` on a --memory-lines TSV file (numpy parser; and as by default with pandas
  installed but not imported, which hands the file to pandas after 64 MB) and of
  ``Ratings.from_arrays`` on as many in-memory ratings, minus the RSS before the call, minus
  the bytes of the final Ratings' arrays: the transient memory above the result.
"""
import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script (the workers are): make `benchmarks` importable
    sys.path.append(str(HERE.parent))

from benchmarks.measure import _reset_peak_rss, _status_kib  # noqa: E402

MIB = 1 << 20
RATING_TEXT = np.array([f"{0.5 * k:.1f}".encode() for k in range(1, 11)])


def _count(text):
    text = str(text).strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def synthetic(n, seed=0):
    """(users, items, rating codes 0..9, timestamps) of n distinct (user, item) pairs."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 50, 10), max(n // 500, 10)
    keys = np.unique(rng.integers(0, n_users * n_items, int(n * 1.02) + 100))
    keys = rng.permutation(keys)[:n]
    return (keys // n_items + 1, keys % n_items + 1, rng.integers(0, 10, len(keys)),
            rng.integers(789_652_009, 1_700_000_000, len(keys)))


def write_file(path, n, style, seed=0, block=1_000_000):
    """Write n synthetic ratings: style "tsv" (user item rating) or "csv" (MovieLens 25M
    layout: header, user,item,rating,timestamp)."""
    users, items, codes, stamps = synthetic(n, seed)
    sep = b"\t" if style == "tsv" else b","
    with open(path, "wb") as f:
        if style == "csv":
            f.write(b"userId,movieId,rating,timestamp\n")
        for lo in range(0, len(users), block):
            part = slice(lo, lo + block)
            fields = [users[part].astype("S"), items[part].astype("S"), RATING_TEXT[codes[part]]]
            if style == "csv":
                fields.append(stamps[part].astype("S"))
            line = fields[0]
            for field in fields[1:]:
                line = np.char.add(np.char.add(line, sep), field)
            f.write(np.char.add(line, b"\n").tobytes().replace(b"\0", b""))
    return len(users)


def _arrays_bytes(ratings):
    arrays = [ratings.indptr, ratings.indices, ratings.data, ratings.user_ids, ratings.item_ids]
    if ratings.timestamps is not None:
        arrays.append(ratings.timestamps)
    return sum(a.nbytes for a in arrays)


def _columns(style):
    return ("user", "item", "rating") if style == "tsv" else ("user", "item", "rating", "timestamp")


def worker(task, path, style, repeats, n):
    """Run one measurement in this (fresh) process and return it as a dict."""
    if task.endswith("-numpy"):
        sys.modules["pandas"] = None  # `import pandas` now raises ImportError
    elif task in ("read-pandas", "pandas"):
        import pandas  # noqa: F401  (imported before the clock starts)
    import mfsgd

    if task in ("read-numpy", "read-pandas", "pandas"):
        seconds = []
        for _ in range(max(repeats, 1)):
            start = time.perf_counter()
            if task == "pandas":
                import pandas as pd
                names = list(_columns(style))
                frame = pd.read_csv(path, sep="\t" if style == "tsv" else ",", engine="c",
                                    header=None if style == "tsv" else 0, names=names)
                ratings = mfsgd.Ratings.from_dataframe(
                    frame, timestamp="timestamp" if style == "csv" else None)
                del frame
            else:
                ratings = mfsgd.read_ratings(path, columns=_columns(style))
            seconds.append(time.perf_counter() - start)
            n_lines = len(ratings)
            del ratings
        median = float(np.median(seconds))
        return {"task": task, "style": style, "lines": n_lines, "seconds": seconds,
                "median_seconds": median, "mlines_per_s": n_lines / median / 1e6,
                "pandas_imported": sys.modules.get("pandas") is not None}
    # memory: read a file, or build from in-memory arrays
    if task == "memory-build":
        users, items, codes, _ = synthetic(n)
        values = (0.5 * (codes + 1)).astype(np.float32)
        del codes
    gc.collect()
    before = _status_kib()
    reset = _reset_peak_rss()
    start = time.perf_counter()
    if task.startswith("memory-read"):
        ratings = mfsgd.read_ratings(path, columns=_columns(style))
    else:
        ratings = mfsgd.Ratings.from_arrays(users, items, values)
    seconds = time.perf_counter() - start
    after = _status_kib()
    peak_kib = after.get("VmHWM") if reset and after else None
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_before = before.get("VmRSS", 0) * 1024
    result_bytes = _arrays_bytes(ratings)
    peak = peak_kib * 1024
    return {"task": task, "ratings": len(ratings), "seconds": seconds,
            "rss_before_mib": rss_before / MIB, "peak_rss_mib": peak / MIB,
            "peak_reset": bool(reset), "result_arrays_mib": result_bytes / MIB,
            "above_result_mib": (peak - rss_before - result_bytes) / MIB}


def run_worker(task, path="", style="tsv", repeats=1, n=0):
    """Run `worker` in a subprocess (this file as a script) and return its dict."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", task, "--path",
               str(path), "--style", style, "--repeats", str(repeats), "--n", str(n)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def have_pandas():
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=_count, default=5_000_000, help="lines of the speed files")
    ap.add_argument("--memory-lines", type=_count, default=20_000_000,
                    help="ratings of the memory measurements (0: skip them)")
    ap.add_argument("--repeats", type=int, default=3, help="reads per speed measurement")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the temporary files")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--style", default="tsv", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.style, args.repeats, args.n)))
        return 0
    import mfsgd

    results = {"speed": [], "memory": []}
    print(f"mfsgd from {Path(mfsgd.__file__).parent}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print(f"\nread_ratings speed, {args.lines:,} lines, median of {args.repeats} rounds "
              f"(million lines per second)\n")
        print("| file | MB | read_ratings, numpy parser | read_ratings, pandas imported | "
              "pandas.read_csv + from_dataframe |\n|---|---|---|---|---|")
        for style, label in (("tsv", "3 columns, tab"), ("csv", "4 columns, CSV + header")):
            path = Path(folder) / f"ratings.{style}"
            write_file(path, args.lines, style)
            row = {"style": style, "mb": path.stat().st_size / 1e6}
            tasks = ("read-numpy",) + (("read-pandas", "pandas") if have_pandas() else ())
            runs = {task: [] for task in tasks}
            for _ in range(args.repeats):
                for task in tasks:
                    runs[task].append(run_worker(task, path, style, 1))
            for task in tasks:
                seconds = [run["median_seconds"] for run in runs[task]]
                median = float(np.median(seconds))
                row[task] = {"seconds": seconds, "median_seconds": median,
                             "mlines_per_s": runs[task][0]["lines"] / median / 1e6,
                             "pandas_imported": runs[task][0]["pandas_imported"]}
            speed = {task: f"{row[task]['mlines_per_s']:.2f}" if task in row else "n/a"
                     for task in ("read-numpy", "read-pandas", "pandas")}
            print(f"| {label} | {row['mb']:.0f} | {speed['read-numpy']} | {speed['read-pandas']} "
                  f"| {speed['pandas']} |")
            results["speed"].append(row)
            path.unlink()
        if args.memory_lines:
            print(f"\nPeak memory above the result, {args.memory_lines:,} ratings (MiB)\n")
            print("| call | seconds | RSS before | peak RSS | result arrays | peak above "
                  "before + result |\n|---|---|---|---|---|---|")
            path = Path(folder) / "memory.tsv"
            write_file(path, args.memory_lines, "tsv")
            tasks = [("memory-read-numpy", "read_ratings(3-column TSV), numpy parser")]
            if have_pandas():
                tasks.append(("memory-read", "read_ratings(3-column TSV), pandas after 64 MB"))
            tasks.append(("memory-build", "Ratings.from_arrays(int64, int64, float32)"))
            for task, label in tasks:
                m = run_worker(task, path, "tsv", 1, args.memory_lines)
                print(f"| {label} | {m['seconds']:.1f} | {m['rss_before_mib']:.0f} | "
                      f"{m['peak_rss_mib']:.0f} | {m['result_arrays_mib']:.0f} | "
                      f"{m['above_result_mib']:.0f} |")
                results["memory"].append(m)
    return results


if __name__ == "__main__":
    main()
