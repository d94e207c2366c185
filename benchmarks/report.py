"""Machine information, Markdown tables, the results files and the plot."""
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

GRID_COLUMNS = [
    ("ratings", "size"), ("skew", "data"), ("input", "input"), ("n_train", "train ratings"),
    ("k", "k"), ("blocks", "blocks"), ("threads", "threads"),
    ("s_epoch", "s/epoch (median)"), ("mupd_s", "Mupd/s"), ("yardstick", "yardstick Mupd/s"),
    ("vs_yardstick", "mfsgd/yardstick"), ("vs_1t", "speed-up vs 1 thread"),
    ("baseline", "baseline Mupd/s"), ("vs_baseline", "vs baseline"),
    ("cpu_mupd_s", "CPU-path Mupd/s"), ("cpu_vs_1t", "CPU-path speed-up"),
    ("vs_baseline_cpu", "vs baseline, CPU s/epoch"),
    ("imbalance", "block imbalance mean / max"),
    ("cpu_imbalance", "CPU block imbalance mean / max"),
    ("peak_mib", "peak RSS in fit (MiB)"), ("increase_mib", "fit increase (MiB)"),
    ("vs_model", "increase / (ratings + factors)"),
    ("test_rmse", "test RMSE"), ("other", "other load (cores)"),
]


def machine_info(factors=()):
    """CPU, cores, memory, kernel ISA (per k in `factors` too), versions, date, git commit."""
    import mfsgd

    from .measure import kernel_isa, kernel_module
    _sgd = kernel_module()
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    commit = None
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu, "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1) if memory_gib else None,
        "kernel_isa": kernel_isa(), "openmp": bool(_sgd.HAVE_OPENMP),
        "kernel_isa_by_k": {str(k): kernel_isa(k) for k in factors},
        "numpy": np.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "mfsgd_version": mfsgd.__version__,
        "mfsgd_file": mfsgd.__file__, "git_commit": commit or None,
    }


def _isa_text(machine):
    by_k = machine.get("kernel_isa_by_k") or {}
    if len(set(by_k.values())) > 1:
        return ", ".join(f"{isa} at k={k}" for k, isa in by_k.items())
    return next(iter(by_k.values()), machine["kernel_isa"])


def _fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def data_label(skew):
    """How a grid row's data set is named: its Zipf exponent, "yardstick", or "synthetic"."""
    if skew is None:
        return "synthetic"
    return skew if isinstance(skew, str) else f"Zipf {skew:g}"


def grid_row(row):
    """Cells of one grid row (a dict built by the suite)."""
    mean, worst = row.get("block_imbalance_mean"), row.get("block_imbalance_max")
    cells = {
        "ratings": row["size_label"], "skew": data_label(row.get("skew")),
        "input": row.get("input", "tuple"),
        "n_train": _fmt(row["n_train"]), "k": str(row["n_factors"]),
        "blocks": _fmt(row.get("n_blocks")), "threads": str(row["n_threads"]),
        "imbalance": "–" if mean is None else f"{mean:.2f} / {worst:.2f}",
        "cpu_imbalance": ("–" if row.get("cpu_block_imbalance_mean") is None else
                          f"{row['cpu_block_imbalance_mean']:.2f} / "
                          f"{row['cpu_block_imbalance_max']:.2f}"),
        "cpu_mupd_s": _fmt(row.get("cpu_mupd_s"), 1),
        "cpu_vs_1t": _fmt(row.get("cpu_speedup_vs_1_thread"), 2),
        "vs_baseline_cpu": _fmt(row.get("vs_baseline_cpu"), 2),
        "vs_model": _fmt(row.get("increase_vs_model"), 2),
        "baseline": _fmt((row.get("baseline") or {}).get("mupd_s"), 1),
        "vs_baseline": _fmt(row.get("vs_baseline"), 2),
        "s_epoch": _fmt(row["median_epoch_seconds"], 4), "mupd_s": _fmt(row["mupd_s"], 1),
        "yardstick": _fmt(row.get("yardstick_mupd_s"), 1),
        "vs_yardstick": _fmt(row.get("ratio_vs_yardstick"), 2),
        "vs_1t": _fmt(row.get("speedup_vs_1_thread"), 2),
        "peak_mib": _fmt(row.get("peak_rss_fit_mib"), 0),
        "increase_mib": _fmt(row.get("fit_increase_mib"), 0),
        "test_rmse": _fmt(row["test_rmse"], 4),
        "other": _fmt(row.get("other_load_cores"), 2),
    }
    return "| " + " | ".join(cells[key] for key, _ in GRID_COLUMNS) + " |"


SVDPP_COLUMNS = [
    ("ratings", "size"), ("k", "k"), ("threads", "threads"), ("s_epoch", "SVD++ s/epoch"),
    ("mf_s_epoch", "MF s/epoch"), ("vs_mf", "SVD++/MF"), ("vs_1t", "speed-up vs 1 thread"),
    ("peak_mib", "peak RSS in fit (MiB)"), ("mf_peak_mib", "MF peak RSS (MiB)"),
    ("test_rmse", "test RMSE"), ("mf_test_rmse", "MF test RMSE"),
    ("other", "other load (cores)"),
]


def svdpp_row(row):
    """Cells of one SVD++ row, beside the MF fit of the same size, k and threads."""
    cells = {
        "ratings": row["size_label"], "k": str(row["n_factors"]), "threads": str(row["n_threads"]),
        "s_epoch": _fmt(row["median_epoch_seconds"], 4),
        "mf_s_epoch": _fmt(row["mf_median_epoch_seconds"], 4), "vs_mf": _fmt(row["vs_mf"], 2),
        "vs_1t": _fmt(row.get("speedup_vs_1_thread"), 2),
        "peak_mib": _fmt(row.get("peak_rss_fit_mib"), 0),
        "mf_peak_mib": _fmt(row.get("mf_peak_rss_fit_mib"), 0),
        "test_rmse": _fmt(row["test_rmse"], 4), "mf_test_rmse": _fmt(row["mf_test_rmse"], 4),
        "other": _fmt(row.get("other_load_cores"), 2),
    }
    return "| " + " | ".join(cells[key] for key, _ in SVDPP_COLUMNS) + " |"


def svdpp_header():
    titles = [title for _, title in SVDPP_COLUMNS]
    return "| " + " | ".join(titles) + " |\n|" + "---|" * len(titles)


def grid_header():
    titles = [title for _, title in GRID_COLUMNS]
    return "| " + " | ".join(titles) + " |\n|" + "---|" * len(titles)


def markdown(results):
    """The whole report as Markdown."""
    m = results["machine"]
    lines = [f"# mfsgd benchmarks, {m['date']}", "",
             f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB; kernel ISA "
             f"{_isa_text(m)}, OpenMP {m['openmp']}; numpy {m['numpy']}, Python "
             f"{m['python']}; mfsgd {m['mfsgd_version']} ({m['git_commit']}).", "",
             f"Settings: {results['settings']['n_epochs']} epochs, data "
             f"{results['settings']['data_source']}, 90/10 split, random_state=0. "
             "Mupd/s = training ratings / median epoch seconds / 1e6; the yardstick runs one "
             "thread on the whole .csr file (same ratings, before the split). \"other load\" is "
             "the CPU other processes used meanwhile, in cores (0 on an idle machine).", "",
             "## Throughput, memory, RMSE", "", grid_header()]
    lines += [grid_row(row) for row in results["grid"]]
    lines += speedup_tables(results["grid"])
    if results["yardstick"]:
        lines += ["", "## Yardstick (serial C loop, 1 thread)", "",
                  "| size | k | median Mupd/s | other load (cores) |", "|---|---|---|---|"]
        for y in results["yardstick"]:
            lines.append(f"| {y['size_label']} | {y['k']} | {_fmt(y['median_mupd_s'], 1)} | "
                         f"{_fmt(y.get('other_load_cores'), 2)} |")
    if results.get("svdpp"):
        lines += ["", "## SVD++ next to MF", "",
                  "SVDpp with its default implicit parameters, fitted right after the MF fit of "
                  "the same row (same data, split, k, threads and epochs).", "", svdpp_header()]
        lines += [svdpp_row(row) for row in results["svdpp"]]
    for s in results.get("scaling", []):
        lines += ["", f"## Scaling at k={s['n_factors']}, {s['n_threads']} thread(s)", "",
                  f"Line through the origin: {s['seconds_per_million']:.4f} s per million "
                  f"ratings per epoch, R² = {s['r2']:.4f}.", "",
                  "| size | train ratings | s/epoch | µs per rating | cost vs smallest |",
                  "|---|---|---|---|---|"]
        for p in s["points"]:
            lines.append(f"| {p['size_label']} | {p['n_train']:,} | {p['seconds']:.4f} | "
                         f"{p['us_per_rating']:.4f} | {p['relative_cost']:.2f} |")
    sc = results.get("surprise")
    if sc and "surprise" in sc:
        lines += [""] + surprise_table(sc)
    elif sc:
        lines += ["", f"Surprise comparison skipped: {sc.get('skipped')}"]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def speedup_tables(grid):
    """Markdown lines: per size (and input), k down and data sets across, each cell
    "1-thread Mupd/s / n-thread Mupd/s (speed-up)" for the smallest and largest thread count;
    the block imbalance of the larger thread count below.  Empty with one thread count."""
    threads = sorted({r["n_threads"] for r in grid})
    if len(threads) < 2:
        return []
    low, high = threads[0], threads[-1]
    lines = []
    keys = dict.fromkeys((r["size_label"], r.get("input", "tuple")) for r in grid)
    for size, kind in keys:
        rows = [r for r in grid if r["size_label"] == size and r.get("input", "tuple") == kind]
        kinds = list(dict.fromkeys(data_label(r.get("skew")) for r in rows))
        ks = sorted({r["n_factors"] for r in rows})
        cell = {(data_label(r.get("skew")), r["n_factors"], r["n_threads"]): r for r in rows}
        lines += ["", f"## Speed-up, {size} ratings, {kind} input: {low} thread(s) Mupd/s / "
                      f"{high} threads Mupd/s (speed-up; block imbalance mean / max; the "
                      "baseline's speed-up when measured)", "",
                  "| k | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for k in ks:
            out = []
            for name in kinds:
                a, b = cell.get((name, k, low)), cell.get((name, k, high))
                if a is None or b is None:
                    out.append("–")
                    continue
                mean, worst = b.get("block_imbalance_mean"), b.get("block_imbalance_max")
                imbalance = "" if mean is None else f"; {mean:.2f} / {worst:.2f}"
                before = ""
                if a.get("baseline") and b.get("baseline"):
                    before = (f"; baseline {a['baseline']['median_epoch_seconds'] / b['baseline']['median_epoch_seconds']:.2f}")
                out.append(f"{_fmt(a['mupd_s'], 1)} / {_fmt(b['mupd_s'], 1)} "
                           f"({a['median_epoch_seconds'] / b['median_epoch_seconds']:.2f}"
                           f"{imbalance}{before})")
            lines.append(f"| {k} | " + " | ".join(out) + " |")
        if any(r.get("cpu_mupd_s") for r in rows):
            lines += ["", f"## Speed-up from CPU seconds, {size} ratings, {kind} input: "
                          f"{low} thread(s) / {high} threads, Mupd/s over the critical path "
                          "(per sub-epoch the busiest thread's CPU seconds) (speed-up; CPU "
                          "block imbalance mean / max)", "",
                      "| k | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for k in ks:
                out = []
                for name in kinds:
                    a, b = cell.get((name, k, low)), cell.get((name, k, high))
                    if not (a and b and a.get("cpu_mupd_s") and b.get("cpu_mupd_s")):
                        out.append("–")
                        continue
                    mean, worst = b.get("cpu_block_imbalance_mean"), b.get("cpu_block_imbalance_max")
                    imbalance = "" if mean is None else f"; {mean:.2f} / {worst:.2f}"
                    out.append(f"{_fmt(a['cpu_mupd_s'], 1)} / {_fmt(b['cpu_mupd_s'], 1)} "
                               f"({b['cpu_mupd_s'] / a['cpu_mupd_s']:.2f}{imbalance})")
                lines.append(f"| {k} | " + " | ".join(out) + " |")
    return lines


def surprise_table(sc):
    """Markdown lines of the Surprise comparison."""
    base = sc["surprise"]
    lines = [f"## Surprise SVD vs mfsgd, MovieLens 100K {sc['split']}, k={sc['n_factors']}, "
             f"{sc['n_epochs']} epochs", "",
             "| model | fit seconds | updates/s | vs Surprise | test RMSE |",
             "|---|---|---|---|---|",
             f"| Surprise {sc['surprise_version']} SVD (defaults) | {base['fit_seconds']:.3f} | "
             f"{base['updates_per_s']:,.0f} | 1.00 | {base['test_rmse']:.4f} |"]
    for name, r in sc["mfsgd"].items():
        label, threads = name.rsplit("_t", 1)
        what = {"matched": "same lr/reg/init_std", "defaults": "own defaults, 20 epochs",
                "tuned": "tuned for 20 epochs"}.get(label, label)
        lines.append(f"| mfsgd {what}, {threads} thread(s) | {r['fit_seconds']:.3f} | "
                     f"{r['updates_per_s']:,.0f} | {r['ratio_vs_surprise']:.1f} | "
                     f"{r['test_rmse']:.4f} |")
    return lines


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=float)


def plot(results, path):
    """Write the PNG; returns None, or a one-line note when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable: no plot written"
    grid = results["grid"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    sizes = sorted({r["size_label"] for r in grid}, key=lambda s: next(
        r["n_ratings"] for r in grid if r["size_label"] == s))
    # throughput vs k: one line per (size, thread count), plus the yardstick
    ax = axes[0]
    for size in sizes:
        for t in sorted({r["n_threads"] for r in grid}):
            rows = sorted((r for r in grid if r["size_label"] == size and r["n_threads"] == t),
                          key=lambda r: r["n_factors"])
            ax.plot([r["n_factors"] for r in rows], [r["mupd_s"] for r in rows], "o-",
                    label=f"mfsgd {size}, {t} thr")
        ys = sorted((y for y in results["yardstick"] if y["size_label"] == size
                     and y["median_mupd_s"]), key=lambda y: y["k"])
        if ys:
            shade = str(0.6 * sizes.index(size) / max(1, len(sizes) - 1))  # black to grey
            ax.plot([y["k"] for y in ys], [y["median_mupd_s"] for y in ys], "--", color=shade,
                    marker="s", label=f"yardstick {size}, 1 thr")
    ax.set_xscale("log", base=2)
    ks = sorted({r["n_factors"] for r in grid})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("factors k")
    ax.set_ylabel("million rating updates / s")
    ax.set_title("throughput vs k")
    ax.legend(fontsize=7)
    # throughput vs threads at the largest size: one line per k
    ax = axes[1]
    largest = sizes[-1]
    for k in sorted({r["n_factors"] for r in grid}):
        rows = sorted((r for r in grid if r["size_label"] == largest and r["n_factors"] == k),
                      key=lambda r: r["n_threads"])
        ax.plot([r["n_threads"] for r in rows], [r["mupd_s"] for r in rows], "o-", label=f"k={k}")
    ax.set_xticks(sorted({r["n_threads"] for r in grid}))
    ax.set_xlabel("threads")
    ax.set_ylabel("million rating updates / s")
    ax.set_title(f"throughput vs threads ({largest})")
    ax.legend(fontsize=7)
    # RMSE vs wall time
    ax = axes[2]
    for label, curve in rmse_curves(results):
        ax.plot([p["seconds"] for p in curve], [p["valid_rmse"] for p in curve], "o-",
                markersize=3, label=label)
    ax.set_xlabel(results.get("curve_xlabel", "seconds"))
    ax.set_ylabel("test RMSE")
    ax.set_title(results.get("curve_title", "RMSE vs time"))
    ax.legend(fontsize=7)
    fig.suptitle(f"mfsgd, {results['machine']['cpu_model']}, {results['machine']['cores']} cores, "
                 f"{results['machine']['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def rmse_curves(results):
    """(label, curve) pairs for the RMSE-vs-time panel; sets results['curve_title']."""
    sc = results.get("surprise")
    if sc and "surprise" in sc:
        results["curve_title"] = f"RMSE vs time, ML-100K {sc['split']}, k={sc['n_factors']}"
        results["curve_xlabel"] = "fit seconds (mfsgd: set-up + epochs so far)"
        curves = [("Surprise SVD (refit per point)", sc["surprise"]["curve"])]
        curves += [(f"mfsgd {name.replace('_t', ', ')} thr", r["curve"])
                   for name, r in sc["mfsgd"].items()]
        return curves
    grid = results["grid"]
    if not grid:
        return []
    size = max(grid, key=lambda r: r["n_ratings"])["size_label"]
    k = min(r["n_factors"] for r in grid)
    results["curve_title"] = f"RMSE vs time, synthetic {size} test split, k={k}"
    results["curve_xlabel"] = "cumulative epoch seconds"
    return [(f"mfsgd {r['n_threads']} thr", r["valid_curve"]) for r in grid
            if r["size_label"] == size and r["n_factors"] == k and r["valid_curve"]]
