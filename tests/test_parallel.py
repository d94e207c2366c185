"""The stratified parallel schedule: convergence like serial SGD, and builds without OpenMP."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfsgd import MatrixFactorization, Ratings, _sgd, make_synthetic
from mfsgd.training.layout import block_schedule

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n_blocks", [2, 4, 8])
def test_blocked_schedule_converges_like_serial_on_movielens(ml100k_u1, n_blocks):
    train, test = ml100k_u1
    serial = MatrixFactorization(n_blocks=1, random_state=0).fit(train).score(test)
    blocked = MatrixFactorization(n_blocks=n_blocks, random_state=0, n_threads=2).fit(train)
    assert abs(blocked.score(test) - serial) <= 0.005, (blocked.score(test), serial)


@pytest.mark.parametrize("n_blocks", [2, 4, 8])
def test_blocked_schedule_converges_like_serial_on_synthetic(n_blocks):
    users, items, ratings = make_synthetic(random_state=4)
    cut = 120_000
    train, test = (users[:cut], items[:cut], ratings[:cut]), (users[cut:], items[cut:], ratings[cut:])
    params = dict(n_factors=8, n_epochs=30, learning_rate=0.005, regularization=0.02,
                  random_state=0)
    serial = MatrixFactorization(n_blocks=1, **params).fit(train).score(test)
    blocked = MatrixFactorization(n_blocks=n_blocks, n_threads=2, **params).fit(train).score(test)
    assert abs(blocked - serial) <= 0.005, (blocked, serial)


@pytest.fixture
def parallel_always(monkeypatch):
    """Split every sub-epoch and every prediction over all threads, however small."""
    monkeypatch.setattr(_sgd, "MIN_WORK_PER_THREAD", 0)
    monkeypatch.setattr(_sgd, "MIN_PREDICTIONS_PER_THREAD", 0)


@pytest.mark.parametrize("n_blocks", ["auto", 1, 4])
def test_models_are_bit_identical_across_thread_counts_when_every_step_is_split(
        parallel_always, n_blocks):
    users, items, ratings = make_synthetic(n_users=300, n_items=200, n_ratings=8000,
                                           random_state=5)
    train = Ratings.from_arrays(users, items, ratings)
    params = dict(n_factors=12, n_epochs=3, n_blocks=n_blocks, random_state=0)
    models = [MatrixFactorization(n_threads=t, **params).fit(train, validation=train)
              for t in (1, 2, 3, 8)]
    for model in models[1:]:
        for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            assert np.array_equal(getattr(model, name), getattr(models[0], name)), name
        assert [r["train_rmse"] for r in model.history_] == \
            [r["train_rmse"] for r in models[0].history_]
        assert [r["valid_rmse"] for r in model.history_] == \
            [r["valid_rmse"] for r in models[0].history_]


def _fitted_layout(n_ratings, n_blocks, k=32):
    users, items, ratings = make_synthetic(n_users=max(n_ratings // 40, 50), n_items=400,
                                           n_ratings=n_ratings, random_state=1)
    model = MatrixFactorization(n_factors=k, n_epochs=1, n_blocks=n_blocks, n_threads=1,
                                random_state=0).fit((users, items, ratings))
    return model.fit_state_.layout


def test_small_sub_epochs_run_on_one_thread_large_ones_on_all():
    layout = _fitted_layout(20_000, 4)
    schedule = block_schedule(4, np.random.default_rng(0))
    counts = _sgd.sub_epoch_threads(layout.block_ptr, layout.run_ptr, schedule, 32, 8)
    assert counts.tolist() == [1, 1, 1, 1]
    forced = _sgd.sub_epoch_threads(layout.block_ptr, layout.run_ptr, schedule, 32, 8, 0)
    assert forced.tolist() == [4, 4, 4, 4]  # never more threads than blocks
    # Work per thread = ratings of the sub-epoch x (row width + RATING_OVERHEAD).
    per_sub = [sum(int(layout.run_ptr[layout.block_ptr[b + 1]] - layout.run_ptr[layout.block_ptr[b]])
                   for b in row) for row in schedule]
    unit = min(per_sub) * (32 + _sgd.RATING_OVERHEAD)
    split = _sgd.sub_epoch_threads(layout.block_ptr, layout.run_ptr, schedule, 32, 8, unit / 2)
    assert all(2 <= t <= 4 for t in split.tolist())
    assert _sgd.sub_epoch_threads(layout.block_ptr, layout.run_ptr, schedule, 32, 1, 0).tolist() \
        == [1, 1, 1, 1]


def test_kernel_reports_the_seconds_of_every_block():
    layout = _fitted_layout(20_000, 2, k=8)
    rng = np.random.default_rng(0)
    P, Q = rng.normal(0, 0.1, (layout.run_user.max() + 1, 8)), rng.normal(0, 0.1, (400, 8))
    bu, bi, empty = np.zeros(len(P)), np.zeros(len(Q)), np.zeros(0)
    seconds = np.full(4, -1.0)
    _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user, layout.run_ptr,
                   layout.items, layout.ratings, block_schedule(2, rng), layout.order,
                   layout.block_sse, 3.0, 0.01, 0.02, 0.02, _sgd.FLAG_BIASED, 3, 2, 8, seconds, 0)
    assert (seconds > 0).all() and seconds.sum() < 10
    cpu = np.full(4, -1.0)
    _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user, layout.run_ptr,
                   layout.items, layout.ratings, block_schedule(2, rng), layout.order,
                   layout.block_sse, 3.0, 0.01, 0.02, 0.02, _sgd.FLAG_BIASED, 3, 2, 8,
                   block_cpu_seconds=cpu)
    assert (cpu >= 0).all() and cpu.sum() > 0 and cpu.sum() < 10
    with pytest.raises(ValueError, match="block_cpu_seconds must have 4 entries"):
        _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user,
                       layout.run_ptr, layout.items, layout.ratings, block_schedule(2, rng),
                       layout.order, layout.block_sse, 3.0, 0.01, 0.02, 0.02, 0, 3, 2, 8,
                       block_cpu_seconds=np.zeros(5))
    with pytest.raises(ValueError, match="block_seconds must have 4 entries"):
        _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user,
                       layout.run_ptr, layout.items, layout.ratings, block_schedule(2, rng),
                       layout.order, layout.block_sse, 3.0, 0.01, 0.02, 0.02, 0, 3, 2, 8,
                       np.zeros(3))


@pytest.mark.slow
def test_build_without_openmp_trains_single_threaded_with_a_warning(tmp_path):
    if not (ROOT / "setup.py").is_file():
        pytest.skip("not running from a source checkout")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mfsgd", source / "mfsgd",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MFSGD_NO_OPENMP"] = "1"
    build = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=source,
                           env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "without OpenMP" in build.stderr
    code = (
        "import warnings, numpy as np, mfsgd\n"
        "from mfsgd._kernels import _sgd\n"
        "assert not _sgd.HAVE_OPENMP\n"
        "u, i, r = mfsgd.make_synthetic(n_users=200, n_items=100, n_ratings=5000)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    m = mfsgd.MatrixFactorization(n_factors=4, n_epochs=3, n_threads=2, random_state=0).fit((u, i, r))\n"
        "assert any('without OpenMP' in str(w.message) for w in caught), caught\n"
        "one = mfsgd.MatrixFactorization(n_factors=4, n_epochs=3, n_threads=1, random_state=0).fit((u, i, r))\n"
        "assert np.array_equal(m.user_factors_, one.user_factors_)\n"
        "print('ok', m.score((u, i, r)))\n")
    env.pop("MFSGD_NO_OPENMP")
    run = subprocess.run([sys.executable, "-c", code], cwd=source, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")
