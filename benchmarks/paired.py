"""Two-thread speed-up measured in paired rounds, beside what the machine gives two jobs.

``python -m benchmarks.paired --ratings 3M --skew 0.8,1.1,1.4 --factors 16,32,64,128,256``

On a shared virtual machine the speed of a core changes from one second to the next, and it
changes most when both of its cores are busy (the host may run the two virtual CPUs on cores,
or SMT siblings, that other guests use too).  Speed-ups from separate fits, minutes apart,
then vary widely for the same configuration.  This benchmark pairs the measurements
instead.  For each data set and k, one process (``paired_cell.py``) trains one model per
configuration for one epoch (the warm-up, which also lays the ratings out), then runs
``--rounds`` rounds; a round runs one epoch of each configuration, back to back:

``1``
    one thread, ``n_blocks="auto"`` (the default);
``1/nb1``
    one thread, ``n_blocks=1`` (no blocks: what the blocks cost one thread);
``2``
    two threads, ``n_blocks="auto"``;
``1+1``
    two independent one-thread epochs of the default configuration at the same time, one
    per Python thread (the kernel releases the GIL), each on its own copy of the factors
    over the same rating arrays: what the machine gives two jobs at that moment, the
    ceiling of ``2`` (two threads of one fit share the factors too, so they may come a
    little above it).

Each epoch runs through the model's own kernel (:class:`mfsgd.models.mf.MFKernel`) on the
fitted state with a fresh schedule and seed from :func:`mfsgd.training.loop.draw_epoch`,
as in ``fit``.  Per round it computes the speed-up ``t(1) / t(2)``, the machine's ceiling
``2 t(1) / t(1+1)``, their ratio (the parallel efficiency: how much of the ceiling two
threads reach) and the one-thread cost of the blocks ``t(1) / t(1/nb1)``; it reports the
median and the quartiles over rounds, and the median speed-up over the rounds in which the
machine gave two nearly full cores (ceiling at least :data:`FULL_CEILING`).  The order of
the configurations rotates from round to round.

Each cell runs in a fresh subprocess; results go to OUT/paired-<stamp>.json and .md.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import data, paired_cell, report

HERE = Path(__file__).resolve().parent

# A round in which two independent one-thread jobs ran at least this much faster together
# than one alone had two (nearly) full cores.
FULL_CEILING = 1.9
DEFAULT_OUT = HERE / "results"


def summarize(cell):
    """Per-round ratios of one cell (see the module docstring): for each, the median and the
    quartiles over rounds; the rounds with two nearly full cores and their median speed-up;
    the median rate of every configuration in million rating updates per second."""
    s = {name: np.asarray(v) for name, v in cell["seconds"].items()}
    ratios = {
        "speedup": s["1"] / s["2"],
        "ceiling": 2 * s["1"] / s["1+1"],
        "blocks_cost": s["1"] / s["1/nb1"],
    }
    ratios["efficiency"] = ratios["speedup"] / ratios["ceiling"]
    out = {}
    for name, values in ratios.items():
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        out[name] = {"median": float(med), "q1": float(q1), "q3": float(q3)}
    full = ratios["ceiling"] >= FULL_CEILING
    out["full_rounds"] = int(full.sum())
    out["speedup_full"] = float(np.median(ratios["speedup"][full])) if full.any() else None
    out["mupd_s"] = {name: cell["n_train"] / float(np.median(v)) / 1e6 for name, v in s.items()}
    return out


def markdown(cells, machine):
    """The results as a Markdown table."""
    lines = [
        f"# Paired two-thread speed-up, {machine['date']}",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores. Each cell: "
        f"{cells[0]['rounds'] if cells else 0} rounds of one epoch per configuration, "
        "back to back (see `benchmarks/paired.py`); medians over rounds, quartiles in "
        "brackets. Speed-up = t(1 thread) / t(2 threads); ceiling = 2 t(1 thread) / "
        "t(two one-thread epochs at once); efficiency = speed-up / ceiling; blocks' cost = "
        "t(1 thread) / t(1 thread, n_blocks=1), above 1 when the blocks make one thread "
        "slower.",
        "",
        "| data | ratings | k | blocks | 1 thread Mupd/s | 2 threads Mupd/s | speed-up | "
        "machine ceiling | efficiency | speed-up in rounds with ceiling ≥ 1.9 | "
        "blocks' cost, 1 thread |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def q(entry):
        return f"{entry['median']:.2f} [{entry['q1']:.2f}–{entry['q3']:.2f}]"

    for cell in cells:
        summary = cell["summary"]
        full = ("–" if summary["speedup_full"] is None else
                f"{summary['speedup_full']:.2f} ({summary['full_rounds']} of {cell['rounds']})")
        lines.append(
            f"| {cell['data']} | {data.format_count(cell['n_train'])} | {cell['n_factors']} | "
            f"{cell['n_blocks']} | {summary['mupd_s']['1']:.1f} | {summary['mupd_s']['2']:.1f} | "
            f"{q(summary['speedup'])} | {q(summary['ceiling'])} | {q(summary['efficiency'])} | "
            f"{full} | {q(summary['blocks_cost'])} |")
    return "\n".join(lines) + "\n"


def _datasets(args, bench):
    out = []
    for n_ratings in args.ratings:
        for skew in args.skew:
            ds = data.make_axis_dataset(n_ratings, skew, args.data_dir, bench)
            ds["label"] = report.data_label(ds["skew"])
            out.append(ds)
    return out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratings", default="3M", help="sizes, comma-separated (default 3M)")
    p.add_argument("--skew", default="0.8,1.1,1.4",
                   help="Zipf exponents and/or 'yardstick', comma-separated")
    p.add_argument("--factors", default="16,32,64,128,256", help="k values, comma-separated")
    p.add_argument("--rounds", type=int, default=20, help="rounds per cell (default 20)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_OUT / "data",
                   help="folder of the generated data (reused when present)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    return p


def run_cell(npz, n_factors, rounds, timeout=6 * 3600):
    """Run paired_cell.measure_cell in a fresh Python process and return its dict.

    The child imports the same mfsgd as this process (its folder goes first on PYTHONPATH)
    and runs paired_cell.py as a script, so the source checkout is not put on sys.path.
    """
    import mfsgd
    parent = Path(mfsgd.__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(parent)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    spec = {"data": str(npz), "n_factors": n_factors, "rounds": rounds}
    proc = subprocess.run([sys.executable, paired_cell.__file__, json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"paired cell failed for {spec}:\n{proc.stderr[-2000:]}")
    cell = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(cell["mfsgd_file"]).resolve() != parent / "mfsgd" / "__init__.py":
        raise RuntimeError(f"cell imported {cell['mfsgd_file']}, not the mfsgd in {parent}")
    return cell


def main(argv=None):
    """Run every cell; write OUT/paired-<stamp>.json and .md; return the results."""
    args = build_parser().parse_args(argv)
    args.ratings = [data.parse_count(x) for x in args.ratings.split(",") if x.strip()]
    args.skew = [x if x == "yardstick" else float(x)
                 for x in (part.strip() for part in args.skew.split(",")) if x]
    factors = [int(x) for x in args.factors.split(",") if x.strip()]
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    machine = report.machine_info(factors)
    cells = []
    for ds in _datasets(args, data.bench_dir()):
        for k in factors:
            cell = run_cell(ds["npz"], k, args.rounds)
            cell["data"] = ds["label"]
            cell["summary"] = summarize(cell)
            cells.append(cell)
            s = cell["summary"]
            full = "-" if s["speedup_full"] is None else f"{s['speedup_full']:.2f}"
            print(f"{ds['label']:>16} k={k:<4} speed-up {s['speedup']['median']:.2f} "
                  f"ceiling {s['ceiling']['median']:.2f} efficiency "
                  f"{s['efficiency']['median']:.2f} full-core speed-up {full} "
                  f"({s['full_rounds']}/{args.rounds}) blocks' cost "
                  f"{s['blocks_cost']['median']:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"machine": machine, "cells": cells,
               "files": {"json": str(args.out / f"paired-{stamp}.json"),
                         "markdown": str(args.out / f"paired-{stamp}.md")}}
    Path(results["files"]["json"]).write_text(json.dumps(results, indent=1))
    Path(results["files"]["markdown"]).write_text(markdown(cells, machine))
    print(f"\nwrote {results['files']['markdown']}")
    return results


if __name__ == "__main__":
    main()
