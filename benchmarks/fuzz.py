"""Long fuzzing runs: every test marked ``fuzz``, with fresh seeds, until the time is up.

    python -m benchmarks.fuzz --minutes 10 [-k EXPRESSION] [--batch-seconds 60] [--json PATH]

The tests are found by their marker (``pytest -m fuzz --collect-only``), so new fuzz test
files are picked up without a list here.  They run under the "long" Hypothesis profile of
tests/conftest.py, in rounds: each round runs every test once with a fresh random ``--hypothesis-seed`` and as
many examples as fit in about ``--batch-seconds`` (estimated from the test's earlier rounds;
less when the time left is shorter), until ``--minutes`` are spent.  Each process runs the
``pytest`` next to this Python (never ``python -m pytest``, which would import the source
tree instead of the installed package).  One pytest process runs every test once per round.

The summary gives the examples run per test and per file (passing / failing / invalid, as
Hypothesis counts them), the findings (a failing test with its seed, the
``@reproduce_failure`` blob that replays it, and the error), tests that hung (their round is
killed after 3 times its planned length + 120 s, and they are left out afterwards), and the
minutes spent.  The exit status is 1 when there is a
finding.  Nothing is written to the repository (no Hypothesis database).
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Loaded into each batch's pytest process (written to a temporary folder on its path): sets
# the batch's example count, no database and no derandomizing on every Hypothesis test, and
# writes what each test ran to $MFSGD_FUZZ_REPORT.
PLUGIN = '''
import json, os, re
from hypothesis import settings

_results = {}


def pytest_collection_modifyitems(items):
    examples = json.loads(os.environ["MFSGD_FUZZ_EXAMPLES"])
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is not None and item.nodeid in examples:
            test._hypothesis_internal_use_settings = settings(
                current, max_examples=examples[item.nodeid], database=None,
                derandomize=False, print_blob=True)


def pytest_runtest_setup(item):
    with open(os.environ["MFSGD_FUZZ_REPORT"] + ".current", "w") as out:
        out.write(item.nodeid)


def pytest_runtest_logreport(report):
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0,
                                                "error": ""})
    entry["seconds"] += report.duration
    if report.failed:
        entry["outcome"] = "failed"
        entry["error"] += str(report.longrepr)


def pytest_runtest_teardown(item):
    text = getattr(item, "hypothesis_statistics", "") or ""
    counts = [0, 0, 0]
    for found in re.finditer(r"(\\d+) passing, (\\d+) failing, and (\\d+) invalid", text):
        counts = [a + int(b) for a, b in zip(counts, found.groups())]
    _results.setdefault(item.nodeid, {"outcome": "passed", "seconds": 0.0, "error": ""})
    _results[item.nodeid]["examples"] = counts


def pytest_sessionfinish(session):
    with open(os.environ["MFSGD_FUZZ_REPORT"], "w") as out:
        json.dump(_results, out)
'''


def _pytest_command():
    """The pytest executable of this Python's environment."""
    beside = Path(sys.executable).with_name("pytest")
    found = str(beside) if beside.exists() else shutil.which("pytest")
    if found is None:
        sys.exit("pytest is not installed (pip install pytest hypothesis)")
    return [found]


def collect(keyword=None):
    """Node ids of the tests marked fuzz."""
    command = _pytest_command() + ["-m", "fuzz", "--collect-only", "-q", "-p", "no:cacheprovider"]
    if keyword:
        command += ["-k", keyword]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    ids = [line.strip() for line in done.stdout.splitlines() if "::" in line]
    if done.returncode not in (0, 5) or not ids:
        sys.exit(f"no test marked fuzz was collected:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return ids


def run_round(examples, seed, timeout, plugin_dir):
    """Run each test of `examples` ({node id: examples}) once with `seed`, in one pytest
    process; ({node id: result}, the node id that hung or None)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        env = dict(os.environ, MFSGD_HYPOTHESIS_PROFILE="long",
                   MFSGD_FUZZ_EXAMPLES=json.dumps(examples), MFSGD_FUZZ_REPORT=str(report),
                   PYTHONPATH=os.pathsep.join(filter(None, [plugin_dir,
                                                           os.environ.get("PYTHONPATH")])))
        command = _pytest_command() + list(examples) + [
            "-m", "fuzz", "-q", "-p", "no:cacheprovider", "-p", "mfsgd_fuzz_plugin",
            f"--hypothesis-seed={seed}", "--hypothesis-show-statistics"]
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            current = Path(str(report) + ".current")
            return {}, current.read_text() if current.exists() else "(collection)"
        try:
            results = json.loads(report.read_text())
        except (OSError, ValueError):
            error = (f"pytest exited with {done.returncode} without a report:\n"
                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            results = {test: {"outcome": "failed", "seconds": 0.0, "error": error}
                       for test in examples}
    for test in examples:
        entry = results.setdefault(test, {"outcome": "failed", "seconds": 0.0,
                                          "error": f"{test} did not run:\n{done.stdout[-3000:]}"})
        entry.setdefault("examples", [0, 0, 0])
    return results, None


def _finding(nodeid, seed, entry):
    blob = re.search(r"@reproduce_failure\((.*?)\)", entry["error"])
    lines = [line for line in entry["error"].splitlines() if line.startswith("E ")]
    return {"test": nodeid, "seed": seed,
            "reproduce": f"@reproduce_failure({blob.group(1)})" if blob else None,
            "error": "\n".join(lines[:12]) or entry["error"][-1500:]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="time to spend, in minutes (default: %(default)s)")
    parser.add_argument("--batch-seconds", type=float, default=60.0,
                        help="target length of one batch of one test (default: %(default)s)")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="only the fuzz tests matching this pytest -k expression")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.batch_seconds <= 0:
        parser.error("--minutes and --batch-seconds must be positive")

    start = time.monotonic()
    deadline = start + 60 * args.minutes
    tests = collect(args.keyword)
    print(f"fuzzing {len(tests)} tests marked fuzz for {args.minutes:g} minutes "
          f"(Hypothesis profile 'long', fresh seeds, batches of about {args.batch_seconds:g} s)",
          flush=True)
    totals = {test: {"examples": [0, 0, 0], "batches": 0, "seconds": 0.0} for test in tests}
    findings, hangs = [], []
    rng = random.SystemRandom()
    with tempfile.TemporaryDirectory() as plugin_dir:
        Path(plugin_dir, "mfsgd_fuzz_plugin.py").write_text(PLUGIN)
        running = list(tests)
        while running:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and any(totals[test]["batches"] for test in tests):
                break
            share = max(min(args.batch_seconds, remaining / len(running)), 5.0)
            examples = {}
            for test in running:
                ran, seconds = sum(totals[test]["examples"]), totals[test]["seconds"]
                rate = ran / seconds if seconds > 0 and ran else None
                examples[test] = 20 if rate is None else max(10, min(100_000, int(rate * share)))
            seed = rng.randrange(2**32)
            results, hung = run_round(examples, seed, 3 * share * len(running) + 120, plugin_dir)
            if hung is not None:
                hangs.append({"test": hung, "seed": seed, "examples": examples.get(hung)})
                print(f"  {hung}: round with seed {seed} hung; killed", flush=True)
                running = [test for test in running if test != hung]
                continue
            for test in running:
                entry, total = results[test], totals[test]
                total["batches"] += 1
                total["examples"] = [a + b for a, b in zip(total["examples"], entry["examples"])]
                total["seconds"] += entry["seconds"]
                if entry["outcome"] == "failed":
                    findings.append(_finding(test, seed, entry))
                    print(f"  {test}: FINDING with seed {seed}", flush=True)
                else:
                    print(f"  {test}: {sum(entry['examples'])} examples in "
                          f"{entry['seconds']:.0f} s (seed {seed})", flush=True)
    minutes = (time.monotonic() - start) / 60
    summary = {"minutes": round(minutes, 2), "tests": totals, "findings": findings,
               "hangs": hangs}
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if findings or hangs else 0


def report(summary):
    """The summary as text: examples per test and per file, findings, minutes."""
    lines = ["", "| test | batches | examples | passing | failing | invalid | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    per_file = defaultdict(lambda: [0, 0, 0, 0.0])
    for test, total in summary["tests"].items():
        passing, failing, invalid = total["examples"]
        lines.append(f"| {test} | {total['batches']} | {passing + failing + invalid:,} | "
                     f"{passing:,} | {failing:,} | {invalid:,} | {total['seconds']:.0f} |")
        row = per_file[test.split("::")[0]]
        for k, value in enumerate((passing, failing, invalid, total["seconds"])):
            row[k] += value
    lines += ["", "| file | examples | passing | failing | invalid | seconds |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, (passing, failing, invalid, seconds) in sorted(per_file.items()):
        lines.append(f"| {name} | {passing + failing + invalid:,} | {passing:,} | {failing:,} | "
                     f"{invalid:,} | {seconds:.0f} |")
    examples = sum(sum(total["examples"]) for total in summary["tests"].values())
    lines += ["", f"{examples:,} examples in {summary['minutes']:.1f} minutes; "
                  f"{len(summary['findings'])} findings, {len(summary['hangs'])} hung batches"]
    for finding in summary["findings"]:
        lines += ["", f"FINDING {finding['test']} (--hypothesis-seed={finding['seed']})",
                  f"  replay: {finding['reproduce'] or 'run the test with that seed'}",
                  *("  " + line for line in finding["error"].splitlines())]
    for hang in summary["hangs"]:
        lines += [f"HUNG {hang['test']} (--hypothesis-seed={hang['seed']}, "
                  f"{hang['examples']} examples)"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
