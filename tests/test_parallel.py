"""The stratified parallel schedule: convergence like serial SGD, and builds without OpenMP."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfsgd import MatrixFactorization, make_synthetic

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
