"""The sdist builds from scratch and its wheel works in a new virtual environment."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sdist_and_wheel_install_and_run_in_a_fresh_venv(tmp_path):
    if not (ROOT / "setup.py").is_file():
        pytest.skip("not running from a source checkout")
    pytest.importorskip("build.__main__", reason="the 'build' package is needed (pip install build)")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=900)
    sdist = next(dist.glob("mfsgd-*.tar.gz"))
    wheel = next(dist.glob("mfsgd-*.whl"))
    with tarfile.open(sdist) as archive:
        names = {Path(n).name for n in archive.getnames()}
    assert {"_sgd.pyx", "_topn.pyx", "_kernels.h", "_kernels_impl.h", "setup.py", "pyproject.toml"} <= names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(wheel)], check=True, capture_output=True, timeout=600)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = ("import mfsgd, numpy as np; print(mfsgd.__file__);"
            "u, i, r = mfsgd.make_synthetic(n_users=100, n_items=50, n_ratings=2000);"
            "m = mfsgd.MatrixFactorization(n_factors=4, n_epochs=3, random_state=0).fit((u, i, r));"
            "print(round(m.score((u, i, r)), 3))")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(python), "-c", code], cwd=outside, capture_output=True,
                            text=True, check=True, env=clean_env)
    location, rmse = result.stdout.split()
    assert str(venv) in location and float(rmse) < 1.5
    demo = subprocess.run([str(venv / "bin" / "mfsgd"), "demo"], cwd=outside,
                          capture_output=True, text=True, timeout=300, env=clean_env)
    assert demo.returncode == 0 and "noise floor" in demo.stdout
