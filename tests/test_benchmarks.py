"""The benchmark suite runs end to end on a tiny set and writes the expected keys (no speed checks)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmarks():
    """The checkout's benchmarks package, loaded from its folder without putting the checkout
    on sys.path (that would shadow an installed mfsgd with the unbuilt source)."""
    folder = ROOT / "benchmarks"
    if not (folder / "suite.py").is_file():
        pytest.skip("not running from a source checkout")
    saved = {name: sys.modules.pop(name) for name in list(sys.modules)
             if name == "benchmarks" or name.startswith("benchmarks.")}
    spec = importlib.util.spec_from_file_location("benchmarks", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package
    spec.loader.exec_module(package)
    import benchmarks.suite  # noqa: F401
    yield package
    for name in [n for n in sys.modules if n == "benchmarks" or n.startswith("benchmarks.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_suite_writes_json_and_markdown_with_the_expected_keys(benchmarks, tmp_path):
    results = benchmarks.suite.main(["--ratings", "20k", "--factors", "4", "--threads", "1,2",
                                     "--epochs", "1", "--compare", "none", "--no-plot",
                                     "--out", str(tmp_path)])
    saved = json.loads(Path(results["files"]["json"]).read_text())
    assert {"machine", "settings", "grid", "yardstick", "scaling", "notes"} <= set(saved)
    assert {"date", "cpu_model", "cores", "kernel_isa", "numpy"} <= set(saved["machine"])
    assert [(row["n_factors"], row["n_threads"]) for row in saved["grid"]] == [(4, 1), (4, 2)]
    for row in saved["grid"]:
        assert {"n_train", "n_test", "epoch_seconds", "median_epoch_seconds", "mupd_s",
                "rss_before_fit_mib", "peak_rss_fit_mib", "fit_increase_mib", "ru_maxrss_mib",
                "test_rmse", "valid_curve"} <= set(row)
        assert len(row["epoch_seconds"]) == 1 and row["n_train"] + row["n_test"] == row["n_ratings"]
        assert 0 < row["test_rmse"] < 5
    assert "speedup_vs_1_thread" in saved["grid"][1]
    assert saved["yardstick"] == [] and "surprise" not in saved
    text = Path(results["files"]["markdown"]).read_text()
    assert "Mupd/s" in text and "test RMSE" in text and saved["machine"]["kernel_isa"] in text


def test_suite_reports_svdpp_next_to_mf(benchmarks, tmp_path):
    results = benchmarks.suite.main(["--ratings", "20k", "--factors", "4", "--threads", "1,2",
                                     "--epochs", "1", "--compare", "none", "--no-plot",
                                     "--models", "mf,svdpp", "--out", str(tmp_path)])
    saved = json.loads(Path(results["files"]["json"]).read_text())
    assert [(row["n_factors"], row["n_threads"]) for row in saved["grid"]] == [(4, 1), (4, 2)]
    assert [(row["model"], row["n_threads"]) for row in saved["svdpp"]] == [("svdpp", 1),
                                                                           ("svdpp", 2)]
    for row, mf in zip(saved["svdpp"], saved["grid"]):
        assert row["n_train"] == mf["n_train"] and 0 < row["test_rmse"] < 5
        assert row["vs_mf"] == pytest.approx(row["median_epoch_seconds"]
                                             / mf["median_epoch_seconds"])
    assert "speedup_vs_1_thread" in saved["svdpp"][1]
    assert "## SVD++ next to MF" in Path(results["files"]["markdown"]).read_text()


def test_scaling_fits_a_line_through_the_origin(benchmarks):
    rows = [{"n_factors": 8, "n_threads": 1, "n_train": n, "median_epoch_seconds": s,
             "size_label": str(n)} for n, s in ((1000, 1.0), (10_000, 10.0), (50_000, 50.0))]
    (fit,) = benchmarks.suite.scaling(rows, 8)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["seconds_per_million"] == pytest.approx(1000.0)
    assert [p["relative_cost"] for p in fit["points"]] == pytest.approx([1, 1, 1])


def test_counts_parse_and_format(benchmarks):
    assert benchmarks.data.parse_count("1M") == 1_000_000
    assert benchmarks.data.parse_count("20k") == 20_000
    assert benchmarks.data.format_count(50_000_000) == "50M"
    with pytest.raises(ValueError):
        benchmarks.data.parse_count("lots")
