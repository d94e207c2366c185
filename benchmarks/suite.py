"""The benchmark suite: options, the configuration grid, comparisons and the results files."""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import data, measure, report, surprise_compare
from .yardstick import run_yardstick

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
COMPARE_CHOICES = ("yardstick", "surprise", "none")
MODEL_CHOICES = ("mf", "svdpp")


def _count_list(text):
    try:
        return [data.parse_count(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _int_list(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return values


def _skew_list(text):
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "yardstick":
            values.append(part)
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--skew takes Zipf exponents and/or 'yardstick', got {part!r}") from None
        if values[-1] < 0:
            raise argparse.ArgumentTypeError(f"a Zipf exponent must be >= 0, got {part!r}")
    if not values:
        raise argparse.ArgumentTypeError(f"--skew needs at least one value, got {text!r}")
    return values


def _input_list(text):
    values = [part.strip() for part in text.split(",") if part.strip()]
    bad = [v for v in values if v not in measure.INPUTS]
    if bad or not values:
        raise argparse.ArgumentTypeError(
            f"--inputs takes a comma list of {', '.join(measure.INPUTS)}; got {text!r}")
    return values


def _compare_list(text):
    values = [part.strip() for part in text.split(",") if part.strip()]
    bad = [v for v in values if v not in COMPARE_CHOICES]
    if bad or not values:
        raise argparse.ArgumentTypeError(
            f"--compare takes a comma list of {', '.join(COMPARE_CHOICES)}; got {text!r}")
    return [] if "none" in values else values


def _model_list(text):
    models = [part.strip() for part in text.split(",") if part.strip()]
    if not models or any(m not in MODEL_CHOICES for m in models) or "mf" not in models:
        raise argparse.ArgumentTypeError(
            f"need a comma list of {', '.join(MODEL_CHOICES)} that holds mf, got {text!r}")
    return models


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput, scaling, memory and accuracy of mfsgd, beside the serial C "
                    "yardstick and Surprise's SVD when they are available.")
    p.add_argument("--ratings", type=_count_list, default=None,
                   help="requested synthetic sizes, e.g. 1M,10M,50M (default 1M,10M; users = "
                        "ratings/50, items = ratings/500)")
    p.add_argument("--factors", type=_int_list, default=None,
                   help="factor counts k (default 16,32,64,128,256)")
    p.add_argument("--threads", type=_int_list, default=None, help="thread counts (default 1,2)")
    p.add_argument("--skew", type=_skew_list, default=None,
                   help="skew axis: comma list of Zipf exponents of item popularity for "
                        "mfsgd.make_synthetic data (users = ratings/30, items = ratings/150), "
                        "and/or 'yardstick' for the yardstick's matrix (default: the yardstick's "
                        "matrix when its folder exists, else make_synthetic with users = "
                        "ratings/50, items = ratings/500)")
    p.add_argument("--inputs", type=_input_list, default=None,
                   help="how fit gets the training ratings: comma list of tuple, scipy, "
                        "ratings (default tuple); for the memory figures")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 5)")
    p.add_argument("--compare", type=_compare_list, default=None,
                   help="comma list of yardstick, surprise, none (default yardstick,surprise; "
                        "each skipped when unavailable)")
    p.add_argument("--models", type=_model_list, default=None,
                   help="comma list of mf, svdpp: svdpp adds an SVD++ fit after every MF fit, "
                        "with the same data, k and threads, and its time per epoch against "
                        "MF's (default mf,svdpp; with --quick, mf)")
    p.add_argument("--scaling-k", type=int, default=None,
                   help="k of the scaling table (default 32 if measured, else the smallest k)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="cache of generated data sets (default OUT/data)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each measurement wait up to SECONDS for other processes to "
                        "use under 0.1 core (for shared machines; default 0: do not wait)")
    p.add_argument("--retries", type=int, default=None,
                   help="repeat a measurement during which other processes used over 0.25 core, "
                        "up to this many times, keeping the least disturbed run (default 2 "
                        "with --wait-idle, else 0)")
    p.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                   help="also measure every configuration with the mfsgd built in DIR (a folder "
                        "holding an `mfsgd` package, e.g. a checkout of another version built "
                        "in place) right after this one, and report its speed and the ratio")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure each configuration this many times, interleaved with the "
                        "other thread counts and the baseline, and keep the median (default 1)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--quick", action="store_true",
                   help="under a minute: 1M ratings, k 32 and 128, threads 1 and 2, 3 epochs, "
                        "yardstick only (explicit options still win)")
    return p


def resolve(args):
    """Fill the options left unset from the --quick or the full defaults."""
    if args.quick:
        defaults = dict(ratings=[10**6], factors=[32, 128], threads=[1, 2], epochs=3,
                        compare=["yardstick"], inputs=["tuple"], models=["mf"])
    else:
        defaults = dict(ratings=[10**6, 10**7], factors=[16, 32, 64, 128, 256], threads=[1, 2],
                        epochs=5, compare=["yardstick", "surprise"], inputs=["tuple"],
                        models=["mf", "svdpp"])
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1")
    if args.scaling_k is None:
        args.scaling_k = 32 if 32 in args.factors else min(args.factors)
    if args.data_dir is None:
        args.data_dir = args.out / "data"
    if args.retries is None:
        args.retries = 2 if args.wait_idle > 0 else 0
    return args


def run_config(npz, n_factors, n_threads, n_epochs, input="tuple", package_dir=None,
               timeout=6 * 3600, model="mf"):
    """Run measure.measure_fit in a fresh Python process and return its dict (`model`: "mf"
    or "svdpp").

    The child imports the same mfsgd as this process, or the one in `package_dir` (a folder
    holding a built ``mfsgd`` package), whose folder goes first on PYTHONPATH, and runs
    measure.py as a script, so the source checkout is not put on sys.path.
    """
    import mfsgd
    config = {"data": str(npz), "n_factors": n_factors, "n_threads": n_threads,
              "n_epochs": n_epochs, "input": input}
    if model != "mf":
        config["model"] = model
    env = dict(os.environ)
    parent = Path(package_dir).resolve() if package_dir else Path(mfsgd.__file__).resolve().parents[1]
    expected = parent / "mfsgd" / "__init__.py"
    env["PYTHONPATH"] = os.pathsep.join([str(parent)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, measure.__file__, json.dumps(config)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {config}:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result["mfsgd_file"]).resolve() != expected:
        raise RuntimeError(f"worker imported {result['mfsgd_file']}, not {expected}")
    return result


BASELINE_KEYS = ("mupd_s", "median_epoch_seconds", "cpu_critical_seconds", "cpu_mupd_s",
                 "cpu_epoch_seconds",
                 "fit_seconds", "n_blocks", "test_rmse",
                 "block_imbalance_mean", "fit_increase_mib", "other_load_cores", "mfsgd_file")
DISTURBED = 0.25  # cores used by other processes above which a measurement is repeated


def least_disturbed(measure_once, args):
    """Run `measure_once()` (after waiting for an idle machine when asked), again up to
    args.retries times while other processes used over DISTURBED cores meanwhile; return the
    run with the least other load, with the number of attempts."""
    best = None
    for attempt in range(1, args.retries + 2):
        if args.wait_idle > 0:
            wait_until_idle(args.wait_idle)
        result = measure_once()
        load = result.get("other_load_cores")
        if best is None or (load or 0) < (best.get("other_load_cores") or 0):
            best = result
        best["attempts"] = attempt
        if load is None or load <= DISTURBED:
            break
    return best


def median_run(runs, key="median_epoch_seconds"):
    """The run whose `key` is the median of `runs` (the lower middle one for an even count),
    with every run's `key` and CPU critical path under "repeats"."""
    ordered = sorted(runs, key=lambda r: r[key])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = [r[key] for r in runs]
    for name in ("cpu_epoch_seconds",):
        values = [r[name] for r in runs if r.get(name)]
        if values:
            chosen[name] = float(np.median(values))
    critical = [r["cpu_critical_seconds"] for r in runs if r.get("cpu_critical_seconds")]
    if critical:
        chosen["cpu_critical_seconds"] = float(np.median(critical))
        chosen["cpu_mupd_s"] = chosen["n_train"] / chosen["cpu_critical_seconds"] / 1e6
    return chosen


def interleaved_repeats(npz, k, kind, args):
    """Measure every thread count (and the baseline build right after each) args.repeats
    times, round after round, so that a change of machine load falls on all of them alike;
    return ({threads: median run}, {threads: median baseline run or None})."""
    runs = {t: [] for t in args.threads}
    base_runs = {t: [] for t in args.threads}
    for _ in range(args.repeats):
        for t in args.threads:
            runs[t].append(least_disturbed(
                lambda: run_config(npz, k, t, args.epochs, kind), args))
            if args.baseline:
                base_runs[t].append(least_disturbed(
                    lambda: run_config(npz, k, t, args.epochs, kind,
                                       package_dir=args.baseline), args))
    return ({t: median_run(runs[t]) for t in args.threads},
            {t: median_run(base_runs[t]) if base_runs[t] else None for t in args.threads})


def wait_until_idle(limit, threshold=0.1, sample=0.5):
    """Wait up to `limit` seconds for the machine's busy CPU to drop under `threshold` cores.

    Returns the last sampled load in cores (None without /proc/stat)."""
    import time
    deadline = time.monotonic() + limit
    while True:
        busy0, start = measure._busy_cpu_seconds(), time.monotonic()
        if busy0 is None:
            return None
        time.sleep(sample)
        load = (measure._busy_cpu_seconds() - busy0) / (time.monotonic() - start)
        if load < threshold or time.monotonic() >= deadline:
            return load


def datasets_for(n_ratings, args, bench):
    """The data sets of one size: one per --skew value, or the default set."""
    if args.skew is None:
        return [data.make_dataset(n_ratings, args.data_dir, bench=bench)]
    return [data.make_axis_dataset(n_ratings, skew, args.data_dir, bench)
            for skew in args.skew]


def first_kind(grid):
    """Rows of the first data kind (skew) and input of the grid, for the scaling fit."""
    if not grid:
        return grid
    skew, kind = grid[0].get("skew"), grid[0].get("input")
    return [r for r in grid if r.get("skew") == skew and r.get("input") == kind]


def scaling(grid, n_factors):
    """Per thread count: a line through the origin of epoch seconds vs training ratings."""
    out = []
    for t in sorted({r["n_threads"] for r in grid}):
        rows = sorted((r for r in grid if r["n_factors"] == n_factors and r["n_threads"] == t),
                      key=lambda r: r["n_train"])
        if len(rows) < 2:
            continue
        n = np.array([r["n_train"] for r in rows], dtype=float)
        s = np.array([r["median_epoch_seconds"] for r in rows], dtype=float)
        slope = float(n @ s / (n @ n))
        residual = s - slope * n
        total = float(((s - s.mean()) ** 2).sum())
        r2 = 1.0 - float(residual @ residual) / total if total > 0 else float("nan")
        base = s[0] / n[0]
        out.append({
            "n_factors": n_factors, "n_threads": t, "seconds_per_million": slope * 1e6,
            "r2": r2, "r2_definition": "1 - SS_res / SS_tot (centred) of the fit s = c n",
            "points": [{"size_label": r["size_label"], "n_train": r["n_train"],
                        "seconds": r["median_epoch_seconds"],
                        "us_per_rating": r["median_epoch_seconds"] / r["n_train"] * 1e6,
                        "relative_cost": (r["median_epoch_seconds"] / r["n_train"]) / base}
                       for r in rows]})
    return out


def run_suite(args, log=print):
    """Run every configuration; write OUT/<stamp>.json, .md and .png; return the results."""
    args = resolve(args)
    bench = data.bench_dir()
    use_yardstick = "yardstick" in args.compare and bench is not None
    machine = report.machine_info(args.factors)
    notes = []
    if "yardstick" in args.compare and bench is None:
        notes.append("yardstick folder not found ($MFSGD_BENCH_DIR or ../shared/bench): "
                     "yardstick skipped, data from mfsgd.make_synthetic")
    log(f"# mfsgd benchmarks, {machine['date']}")
    log(f"{machine['cpu_model']}, {machine['cores']} cores, ISA {report._isa_text(machine)}, "
        f"OpenMP {machine['openmp']}, numpy {machine['numpy']}, mfsgd from {machine['mfsgd_file']}")
    log(f"yardstick: {bench or 'not found'}; sizes {[data.format_count(n) for n in args.ratings]}, "
        f"k {args.factors}, threads {args.threads}, {args.epochs} epochs\n")

    grid, yardsticks, svdpp_rows, header_done = [], [], [], False
    sources = []
    for n_ratings in args.ratings:
        label = data.format_count(n_ratings)
        for ds in datasets_for(n_ratings, args, bench):
            sources.append(ds["source"])
            for k in args.factors:
                ystick = None
                if use_yardstick and ds["csr"]:
                    ystick = least_disturbed(
                        lambda: run_yardstick(bench, ds["csr"], k, args.epochs), args)
                    ystick.update(size_label=label, n_ratings_requested=n_ratings,
                                  skew=ds.get("skew"))
                    yardsticks.append(ystick)
                    if ystick.get("error"):
                        notes.append(f"yardstick failed at {label}, k={k}: {ystick['error']}")
                for kind in args.inputs:
                    one_thread = svdpp_one_thread = None
                    rows, bases = interleaved_repeats(ds["npz"], k, kind, args)
                    for t in args.threads:
                        row = rows[t]
                        if args.baseline:
                            base = bases[t]
                            row["baseline"] = {key: base.get(key) for key in BASELINE_KEYS}
                            row["vs_baseline"] = (base["median_epoch_seconds"]
                                                  / row["median_epoch_seconds"])
                            if row.get("cpu_epoch_seconds") and base.get("cpu_epoch_seconds"):
                                row["vs_baseline_cpu"] = (base["cpu_epoch_seconds"]
                                                          / row["cpu_epoch_seconds"])
                        row.update(size_label=label, n_ratings_requested=n_ratings,
                                   data_users=ds["users"], data_items=ds["items"],
                                   skew=ds.get("skew"))
                        if ystick and ystick.get("median_mupd_s"):
                            row["yardstick_mupd_s"] = ystick["median_mupd_s"]
                            if t == 1:
                                row["ratio_vs_yardstick"] = row["mupd_s"] / ystick["median_mupd_s"]
                        if t == 1:
                            one_thread = row
                        elif one_thread:
                            row["speedup_vs_1_thread"] = (one_thread["median_epoch_seconds"]
                                                          / row["median_epoch_seconds"])
                            if row.get("cpu_critical_seconds") and \
                                    one_thread.get("cpu_critical_seconds"):
                                row["cpu_speedup_vs_1_thread"] = (
                                    one_thread["cpu_critical_seconds"]
                                    / row["cpu_critical_seconds"])
                        if not header_done:
                            log(report.grid_header())
                            header_done = True
                        log(report.grid_row(row))
                        grid.append(row)
                        if "svdpp" in args.models and kind == args.inputs[0]:
                            other = least_disturbed(
                                lambda: run_config(ds["npz"], k, t, args.epochs, kind,
                                                   model="svdpp"), args)
                            other.update(size_label=label, n_ratings_requested=n_ratings,
                                         model="svdpp", skew=ds.get("skew"),
                                         mf_median_epoch_seconds=row["median_epoch_seconds"],
                                         mf_test_rmse=row["test_rmse"],
                                         mf_peak_rss_fit_mib=row.get("peak_rss_fit_mib"),
                                         vs_mf=other["median_epoch_seconds"]
                                         / row["median_epoch_seconds"])
                            if t == 1:
                                svdpp_one_thread = other
                            elif svdpp_one_thread:
                                other["speedup_vs_1_thread"] = (
                                    svdpp_one_thread["median_epoch_seconds"]
                                    / other["median_epoch_seconds"])
                            log(f"  SVD++ on the same: {other['median_epoch_seconds']:.4f} "
                                f"s/epoch, {other['vs_mf']:.2f} x MF's, test RMSE "
                                f"{other['test_rmse']:.4f}")
                            svdpp_rows.append(other)
            actual = grid[-1]["n_ratings"] if grid else None
            if actual is not None and actual != n_ratings:
                notes.append(f"size {label} ({ds['source']}): {actual:,} distinct ratings "
                             f"({ds['users']:,} users x {ds['items']:,} items; the generator "
                             "drops repeated pairs)")
    data_source = ", ".join(dict.fromkeys(sources)) or None

    busiest = max([r.get("other_load_cores") or 0 for r in grid + yardsticks + svdpp_rows],
                  default=0)
    if busiest > DISTURBED:
        notes.append(f"other processes used up to {busiest:.2f} cores during some measurements "
                     f"(of {machine['cores']}): those numbers are pessimistic, rerun when idle")
    results = {"machine": machine,
               "settings": {"ratings": args.ratings, "factors": args.factors,
                            "threads": args.threads, "n_epochs": args.epochs,
                            "skew": args.skew, "inputs": args.inputs, "models": args.models,
                            "baseline": str(args.baseline) if args.baseline else None,
                            "compare": args.compare, "quick": args.quick,
                            "split": "90/10 random (seed 0)", "random_state": 0,
                            "data_source": data_source, "bench_dir": str(bench) if bench else None,
                            "scaling_k": args.scaling_k, "wait_idle": args.wait_idle,
                            "retries": args.retries},
               "grid": grid, "yardstick": yardsticks, "svdpp": svdpp_rows,
               "scaling": scaling(first_kind(grid), args.scaling_k), "notes": notes}
    for s in results["scaling"]:
        log(f"\nscaling k={s['n_factors']} {s['n_threads']} thread(s): "
            f"{s['seconds_per_million']:.4f} s per million ratings, R² {s['r2']:.4f}, "
            "relative cost " + ", ".join(f"{p['size_label']} {p['relative_cost']:.2f}"
                                         for p in s["points"]))

    if "surprise" in args.compare:
        ml = data.ml100k_dir()
        if not surprise_compare.available():
            results["surprise"] = {"skipped": "`import surprise` failed"}
        elif ml is None:
            results["surprise"] = {"skipped": "MovieLens 100K not found ($MFSGD_ML100K)"}
        else:
            log("\nSurprise SVD vs mfsgd on MovieLens 100K u1 (k=100, 20 epochs)")
            results["surprise"] = surprise_compare.run(ml, threads=args.threads, log=log)
        if "skipped" in results["surprise"]:
            log(f"\nSurprise comparison skipped: {results['surprise']['skipped']}")

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = args.out / f"mfsgd-bench-{stamp}{'-quick' if args.quick else ''}"
    text = report.markdown(results)  # before plotting: the plot may add curve_title
    if not args.no_plot:
        note = report.plot(results, base.with_suffix(".png"))
        results["plot"] = note or str(base.with_suffix(".png"))
        if note:
            results["notes"].append(note)
            text = report.markdown(results)
    report.write_json(results, base.with_suffix(".json"))
    base.with_suffix(".md").write_text(text)
    results["files"] = {"json": str(base.with_suffix(".json")), "markdown": str(base.with_suffix(".md"))}
    log(f"\nwrote {base}.json, .md" + ("" if args.no_plot else f", {results.get('plot')}"))
    if results.get("surprise", {}).get("surprise"):
        log("\n" + "\n".join(report.surprise_table(results["surprise"])))
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_suite(args)
