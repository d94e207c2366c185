"""The mfsgd command, end to end in subprocesses."""
import subprocess
import sys

import numpy as np

from mfsgd import make_synthetic


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mfsgd", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_prints_table_and_noise_floor(tmp_path):
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "epoch  train_rmse  valid_rmse" in result.stdout
    assert "noise floor 0.5000" in result.stdout
    rmse = float(result.stdout.split("test RMSE ")[1].split()[0])
    assert rmse < 0.55


def test_train_on_a_text_file(tmp_path):
    users, items, ratings = make_synthetic(n_users=200, n_items=100, n_ratings=5000, random_state=3)
    path = tmp_path / "ratings.csv"
    np.savetxt(path, np.column_stack([users, items, np.round(ratings, 2)]), fmt="%g", delimiter=",")
    result = run("train", str(path), "--sep", ",", "--epochs", "5", "--factors", "4",
                 "--test-size", "0.25", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "testing on 1,250" in result.stdout and "test RMSE" in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path):
    result = run("train", str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("mfsgd: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad = run("train", "demo", "--lr", "-1", cwd=tmp_path)
    assert bad.returncode == 1 and "learning_rate" in bad.stderr
