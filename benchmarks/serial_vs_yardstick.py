"""mfsgd on one thread against the serial C yardstick, on the same ~5M-rating file.

    PYTHONPATH=. python benchmarks/serial_vs_yardstick.py [--epochs 5] [--factors 32,128]

Generates (once) the yardstick's synthetic matrix `csrfile.py synth --users 100000 --items
10000 --ratings 5000000` into benchmarks/results/data, then for each k prints mfsgd's median
million rating updates per second (MatrixFactorization(n_factors=k, n_threads=1), all
ratings, no split), the yardstick's, and their ratio. Needs the yardstick folder
($MFSGD_BENCH_DIR or ../shared/bench); exits with a message otherwise.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make `benchmarks` importable, appended so
    sys.path.append(str(HERE.parent))  # that an installed or PYTHONPATH mfsgd still comes first

from benchmarks import data  # noqa: E402
from benchmarks.measure import kernel_isa  # noqa: E402
from benchmarks.yardstick import run_yardstick  # noqa: E402

USERS, ITEMS, RATINGS = 100_000, 10_000, 5_000_000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--factors", default="32,128")
    ap.add_argument("--data-dir", type=Path, default=HERE / "results" / "data")
    args = ap.parse_args(argv)
    bench = data.bench_dir()
    if bench is None:
        print("yardstick folder not found ($MFSGD_BENCH_DIR or ../shared/bench): nothing to compare")
        return 1
    import mfsgd

    args.data_dir.mkdir(parents=True, exist_ok=True)
    csr = args.data_dir / f"synth-5M-u{USERS}-i{ITEMS}-s0.csr"
    if not (csr.is_file() and Path(f"{csr}.npz").is_file()):
        subprocess.run([sys.executable, str(bench / "csrfile.py"), "synth", str(csr), "--users",
                        str(USERS), "--items", str(ITEMS), "--ratings", str(RATINGS)],
                       check=True, stdout=subprocess.DEVNULL)
    with np.load(f"{csr}.npz") as f:
        ratings = (f["u"], f["i"], f["r"])
    n = len(ratings[2])
    print(f"{n:,} ratings ({USERS:,} users x {ITEMS:,} items), {args.epochs} epochs, one thread, "
          f"mfsgd from {Path(mfsgd.__file__).parent}")
    print("| k | kernel ISA | mfsgd Mupd/s | yardstick Mupd/s | mfsgd/yardstick |\n"
          "|---|---|---|---|---|")
    for k in (int(x) for x in args.factors.split(",")):
        model = mfsgd.MatrixFactorization(n_factors=k, n_epochs=args.epochs, n_threads=1,
                                          random_state=0)
        model.fit(ratings)
        seconds = float(np.median([r["seconds"] for r in model.history_]))
        ours = n / seconds / 1e6
        theirs = run_yardstick(bench, csr, k, args.epochs)["median_mupd_s"]
        ratio = f"{ours / theirs:.2f}" if theirs else "–"
        print(f"| {k} | {kernel_isa(k)} | {ours:.1f} | {theirs if theirs is not None else '–'} | {ratio} |",
              flush=True)
    print(f"({time.strftime('%Y-%m-%d %H:%M')}; the yardstick visits ratings in stored order "
          "without biases, mfsgd in its blocked shuffled order with biases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
