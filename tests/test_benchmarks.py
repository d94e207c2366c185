"""The benchmark suite runs end to end on a tiny set and writes the expected keys (no speed checks)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
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


def test_suite_skew_axis_reports_speedup_table_imbalance_memory_and_baseline(benchmarks,
                                                                             tmp_path):
    import mfsgd
    same_build = Path(mfsgd.__file__).resolve().parents[1]  # as a stand-in for another build
    results = benchmarks.suite.main(["--ratings", "20k", "--factors", "4", "--threads", "1,2",
                                     "--epochs", "2", "--compare", "none", "--no-plot",
                                     "--skew", "0.8,1.4", "--baseline", str(same_build),
                                     "--out", str(tmp_path)])
    saved = json.loads(Path(results["files"]["json"]).read_text())
    assert [(row["skew"], row["n_threads"]) for row in saved["grid"]] == \
        [(0.8, 1), (0.8, 2), (1.4, 1), (1.4, 2)]
    for row in saved["grid"]:
        assert row["input"] == "tuple" and row["n_blocks"] >= 1
        assert row["block_imbalance_mean"] >= 1 and row["block_imbalance_max"] >= 1
        assert row["thread_imbalance_mean"] >= 1
        assert row["increase_vs_model"] == pytest.approx(row["fit_increase_mib"] / row["model_mib"])
        assert row["vs_baseline"] == pytest.approx(row["baseline"]["median_epoch_seconds"]
                                                   / row["median_epoch_seconds"])
    text = Path(results["files"]["markdown"]).read_text()
    assert "## Speed-up, 20k ratings, tuple input" in text
    assert "| k | Zipf 0.8 | Zipf 1.4 |" in text and "baseline" in text


def test_measure_passes_each_input_kind_and_counts_its_bytes(benchmarks):
    import scipy.sparse as sp

    import mfsgd
    users, items, ratings = mfsgd.make_synthetic(n_users=40, n_items=30, n_ratings=300)
    triplets = (users, items, ratings)
    as_input, nbytes = benchmarks.measure.as_input, benchmarks.measure.input_nbytes
    assert as_input(triplets, "tuple") is triplets
    assert nbytes(triplets) == users.nbytes + items.nbytes + ratings.nbytes
    matrix = as_input(triplets, "scipy")
    assert sp.issparse(matrix) and matrix.nnz == 300
    assert nbytes(matrix) == matrix.indptr.nbytes + matrix.indices.nbytes + matrix.data.nbytes
    rated = as_input(triplets, "ratings")
    assert isinstance(rated, mfsgd.Ratings) and len(rated) == 300
    assert nbytes(rated) >= 8 * 300
    with pytest.raises(ValueError, match="input must be one of"):
        as_input(triplets, "dataframe")
    for kind in ("tuple", "scipy", "ratings"):
        model = mfsgd.MatrixFactorization(n_factors=4, n_epochs=1, random_state=0)
        assert np.isfinite(model.fit(as_input(triplets, kind)).history_[0]["train_rmse"])


def test_imbalance_recorder_reads_block_seconds_per_sub_epoch(benchmarks):
    import types

    layout = types.SimpleNamespace(block_seconds=np.array([1.0, 3.0, 2.0, 2.0]),
                                   schedule=np.array([[0, 3], [1, 2]]))
    recorder = benchmarks.measure.ImbalanceRecorder(n_threads=2)
    assert recorder({}, types.SimpleNamespace(_layout=layout)) is False
    assert recorder.block == [pytest.approx(2 / 1.5), pytest.approx(1.2)]
    assert recorder.thread == recorder.block  # one block per thread
    one = benchmarks.measure.ImbalanceRecorder(n_threads=1)
    one({}, types.SimpleNamespace(_layout=layout))
    assert one.thread == [1.0, 1.0] and one.summary()["block_imbalance_max"] == pytest.approx(4 / 3)
    assert one.summary()["cpu_critical_seconds"] is None  # no CPU seconds reported


def test_imbalance_recorder_sums_the_busiest_thread_cpu_seconds(benchmarks):
    import types

    layout = types.SimpleNamespace(block_seconds=np.array([9.0, 9.0, 9.0, 9.0]),
                                   block_cpu_seconds=np.array([1.0, 3.0, 2.0, 2.0]),
                                   schedule=np.array([[0, 3], [1, 2]]))
    two = benchmarks.measure.ImbalanceRecorder(n_threads=2)
    two({}, types.SimpleNamespace(_layout=layout))
    assert two.summary()["cpu_critical_seconds"] == pytest.approx(2.0 + 3.0)
    assert two.cpu_block == [pytest.approx(2 / 1.5), pytest.approx(1.2)]
    one = benchmarks.measure.ImbalanceRecorder(n_threads=1)
    one({}, types.SimpleNamespace(_layout=layout))
    assert one.summary()["cpu_critical_seconds"] == pytest.approx(8.0)


def test_imbalance_recorder_on_a_fitted_model_uses_the_kernel_thread_choice(benchmarks):
    import mfsgd
    users, items, ratings = mfsgd.make_synthetic(n_users=200, n_items=100, n_ratings=4000)
    recorder = benchmarks.measure.ImbalanceRecorder(n_threads=2)
    mfsgd.MatrixFactorization(n_factors=8, n_epochs=2, n_blocks=2, n_threads=2, random_state=0,
                              callbacks=[recorder]).fit((users, items, ratings))
    summary = recorder.summary()
    assert len(recorder.critical) == 2 and summary["cpu_critical_seconds"] > 0
    # 4000 ratings are far below the work that pays for a second thread: the kernel runs
    # each sub-epoch on one thread, so the critical path is the whole epoch's CPU time.
    assert recorder.thread == [1.0] * len(recorder.thread)


def test_threads_default_compares_and_stops_its_busy_process(benchmarks):
    import mfsgd
    from benchmarks import threads_default
    users, items, ratings = mfsgd.make_synthetic(n_users=60, n_items=40, n_ratings=900)
    data = mfsgd.Ratings.from_arrays(users, items, ratings)
    train, valid = data.take(np.arange(800)), data.take(np.arange(800, 900))
    row = threads_default.compare(train, valid, repeats=1, busy=True)
    assert row["ratio"] == pytest.approx(row["default_s"] / row["one_thread_s"])
    assert len(row["one_thread_all"]) == len(row["default_all"]) == 1


def test_paired_summary_takes_per_round_ratios(benchmarks):
    from benchmarks import paired
    cell = {"n_train": 1_000_000, "rounds": 2,
            "seconds": {"1": [2.0, 2.0], "1/nb1": [2.0, 1.6], "2": [1.0, 1.25],
                        "1+1": [2.0, 2.5]}}
    s = paired.summarize(cell)
    assert s["speedup"]["median"] == pytest.approx((2.0 + 1.6) / 2)
    assert s["ceiling"]["q1"] == pytest.approx(1.6 + 0.25 * 0.4)
    assert s["efficiency"]["median"] == pytest.approx(1.0)
    assert s["blocks_cost"]["q3"] == pytest.approx(1.0 + 0.75 * 0.25)
    # Only the first round had two full cores (ceiling 2.0 >= 1.9).
    assert s["full_rounds"] == 1 and s["speedup_full"] == pytest.approx(2.0)
    assert s["mupd_s"]["2"] == pytest.approx(1.0 / 1.125)


def test_paired_twin_trains_its_own_factors_over_shared_ratings(benchmarks):
    import mfsgd
    from benchmarks import paired_cell
    train = mfsgd.make_synthetic(n_users=300, n_items=100, n_ratings=6000)
    state, params = paired_cell._fitted(train, 8, 1, "auto", 0)
    before = {name: getattr(state, name).copy()
              for name in ("user_factors", "item_factors", "user_bias", "item_bias")}
    ratings_before = state.layout.ratings.copy()
    twin = paired_cell._opened(paired_cell._twin(state), params, 1)
    paired_cell._epoch(twin)
    assert twin["state"].layout.items is state.layout.items
    assert not np.array_equal(twin["state"].user_factors, before["user_factors"])
    for name, values in before.items():
        np.testing.assert_array_equal(getattr(state, name), values)
    np.testing.assert_array_equal(state.layout.ratings, ratings_before)


def test_paired_benchmark_writes_json_and_markdown(benchmarks, tmp_path):
    from benchmarks import paired
    results = paired.main(["--ratings", "20k", "--skew", "1.1", "--factors", "4",
                           "--rounds", "2", "--data-dir", str(tmp_path / "data"),
                           "--out", str(tmp_path)])
    saved = json.loads(Path(results["files"]["json"]).read_text())
    [cell] = saved["cells"]
    assert cell["n_factors"] == 4 and cell["rounds"] == 2 and cell["data"] == "Zipf 1.1"
    assert {name: len(v) for name, v in cell["seconds"].items()} == {
        "1": 2, "1/nb1": 2, "2": 2, "1+1": 2}
    assert all(t > 0 for v in cell["seconds"].values() for t in v)
    assert {"speedup", "ceiling", "efficiency", "blocks_cost"} <= set(cell["summary"])
    text = Path(results["files"]["markdown"]).read_text()
    assert "| Zipf 1.1 |" in text and "machine ceiling" in text
