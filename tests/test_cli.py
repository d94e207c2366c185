"""The mfsgd command, every subcommand end to end in a subprocess on small files."""
import subprocess
import sys

import numpy as np
import pytest

from mfsgd import make_synthetic


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mfsgd", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    users, items, ratings = make_synthetic(n_users=200, n_items=100, n_ratings=5000, random_state=3)
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    np.savetxt(path, np.column_stack([users, items, np.round(ratings, 2)]), fmt="%g",
               delimiter=",")
    return path


@pytest.fixture(scope="module")
def movielens_folder(tmp_path_factory):
    """A tiny folder in the MovieLens 100K layout (u.data, Latin-1 u.item with titles)."""
    folder = tmp_path_factory.mktemp("ml-100k")
    users, items, ratings = make_synthetic(n_users=60, n_items=40, n_ratings=1500, random_state=5)
    lines = [f"{u + 1}\t{i + 1}\t{int(np.clip(round(r), 1, 5))}\t{880000000 + n}"
             for n, (u, i, r) in enumerate(zip(users, items, ratings))]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    titles = [f"{i}|Film number {i} (Café {i}) (1995)|01-Jan-1995||http://x|0|0" for i in range(1, 41)]
    (folder / "u.item").write_bytes(("\n".join(titles) + "\n").encode("latin-1"))
    return folder


def test_demo_prints_table_and_noise_floor(tmp_path):
    out = ok(run("demo", cwd=tmp_path))
    assert "epoch  train_rmse  valid_rmse" in out and "noise floor 0.5000" in out
    assert float(out.split("test RMSE ")[1].split()[0]) < 0.55


def test_train_on_a_text_file_reports_rmse_and_mae(ratings_csv, tmp_path):
    out = ok(run("train", str(ratings_csv), "--epochs", "5", "--factors", "4",
                 "--test-size", "0.25", cwd=tmp_path))
    assert "testing on 1,250" in out
    rmse, mae = float(out.split("test RMSE ")[1].split()[0]), float(out.split("MAE ")[1].split()[0])
    assert 0 < mae <= rmse < 2


def test_train_save_evaluate_recommend_with_titles(movielens_folder, tmp_path):
    model = tmp_path / "model.npz"
    plot = tmp_path / "curve.png"
    args = ["train", str(movielens_folder), "--epochs", "8", "--factors", "4", "--save",
            str(model), "--split", "user"]
    try:
        import matplotlib  # noqa: F401
        args += ["--plot", str(plot)]
    except ImportError:
        plot = None
    out = ok(run(*args, cwd=tmp_path))
    assert "saved the model" in out and model.is_file()
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluation = ok(run("evaluate", str(model), str(movielens_folder), cwd=tmp_path))
    assert "1,500 ratings" in evaluation and "RMSE" in evaluation
    top = ok(run("recommend", str(model), "3", "-n", "5", cwd=tmp_path))
    lines = top.strip().splitlines()
    assert lines[0].startswith("top 5 for user 3") and len(lines) == 6
    assert "Café" in top and "Film number" in lines[1]


def test_search_prints_the_best_configuration(ratings_csv, tmp_path):
    out = ok(run("search", str(ratings_csv), "--n-iter", "3", "--cv", "2", "--epochs", "3",
                 "--factors", "4,8", cwd=tmp_path))
    assert "best mean RMSE over 2 folds" in out
    assert "learning_rate = " in out and "n_factors = " in out


def test_bench_reports_throughput(tmp_path):
    out = ok(run("bench", "--ratings", "20000", "--epochs", "1", cwd=tmp_path))
    assert "M updates/s" in out
    rows = [line.split() for line in out.splitlines() if line.strip().split()[:1] in (["32"], ["128"])]
    assert len(rows) >= 2 and all(float(row[3]) > 0 for row in rows)


def test_errors_are_one_line_without_traceback(tmp_path):
    for args, expected in [(("train", str(tmp_path / "missing.csv")), "no such file"),
                           (("train", "demo", "--lr", "-1"), "learning_rate"),
                           (("evaluate", str(tmp_path / "none.npz"), "demo"), "none.npz"),
                           (("train", "demo", "--test-size", "2"), "--test-size")]:
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("mfsgd: error:") and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr


def test_uncached_movielens_name_asks_for_the_download_option(tmp_path):
    result = run("train", "ml-1m", "--data-home", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("mfsgd: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--download" in result.stderr and "download=True" not in result.stderr
    assert str(tmp_path / "cache" / "ml-1m.zip") in result.stderr
    assert not (tmp_path / "cache").exists()


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "train", "demo", "--lr", "-1", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr
