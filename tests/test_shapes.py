"""Every rating set from 1 x 1 up trains, with every k, dtype, learning-rate schedule and option
(1 x n and n x 1 sets once crashed in the kernel, whose row width came from a one-row array's
stride)."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from mfsgd import MatrixFactorization, Ratings

SHAPES = [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 2), (1, 40), (40, 1), (3, 5)]


def full_grid(n_users, n_items, seed=0):
    """Every user rates every item: (users, items, ratings) with raw ids 10, 11, ... ."""
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    ratings = rng.integers(1, 6, size=users.size).astype(np.float32)
    return users.ravel() + 10, items.ravel() + 10, ratings


def check_trained(model, data, n_users, n_items, k, n_epochs):
    assert model.user_factors_.shape == (n_users, k)
    assert model.item_factors_.shape == (n_items, k)
    for array in (model.user_factors_, model.item_factors_, model.user_bias_, model.item_bias_):
        assert np.isfinite(array).all()
    assert [r["epoch"] for r in model.history_] == list(range(1, n_epochs + 1))
    assert model.history_[-1]["train_rmse"] <= model.history_[0]["train_rmse"] + 1e-6
    predicted = model.predict(data[0], data[1])
    assert np.isfinite(predicted).all() and predicted.shape == (n_users * n_items,)
    assert np.isfinite(model.score(data))


@pytest.mark.parametrize("n_users, n_items", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 8, 16, 100, 128])
def test_every_small_shape_trains(n_users, n_items, dtype, k):
    """k = 3 and 100 pad their rows (to 16 or 8, 112 or 104 values), 16 and 128 do not in
    float32; 1 x n puts a one-row array next to a many-row one."""
    data = full_grid(n_users, n_items)
    model = MatrixFactorization(n_factors=k, n_epochs=8, learning_rate=0.05, dtype=dtype,
                                random_state=0, n_threads=1).fit(Ratings.from_arrays(*data))
    check_trained(model, data, n_users, n_items, k, 8)


OPTIONS = {
    "inverse": {"learning_rate_schedule": "inverse"},
    "adagrad": {"learning_rate_schedule": "adagrad"},
    "non_negative": {"non_negative": True, "init_std": 0.1},
    "unbiased": {"biased": False, "init_std": 0.5},
    "one block": {"n_blocks": 1},
    "many blocks": {"n_blocks": 16},
    "two threads": {"n_threads": 2},
    "early stopping": {"early_stopping": True, "patience": 2},
}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("n_users, n_items", [(1, 1), (1, 5), (5, 1), (2, 3)])
@pytest.mark.parametrize("dtype, k", [(np.float32, 5), (np.float64, 5), (np.float32, 16)])
def test_small_shapes_train_with_every_option(option, n_users, n_items, dtype, k):
    data = full_grid(n_users, n_items, seed=1)
    params = dict(n_factors=k, n_epochs=6, learning_rate=0.05, dtype=dtype, random_state=0,
                  n_threads=1)
    model = MatrixFactorization(**{**params, **OPTIONS[option]})
    ratings = Ratings.from_arrays(*data)
    model.fit(ratings, validation=ratings)
    n_epochs = len(model.history_)
    assert n_epochs == 6 or option == "early stopping"
    check_trained(model, data, n_users, n_items, k, n_epochs)
    if option == "non_negative":
        assert model.user_factors_.min() >= 0 and model.item_factors_.min() >= 0


@pytest.mark.parametrize("n_users, n_items", [(1, 6), (6, 1)])
def test_small_shapes_from_sparse_and_tuples_continue_exactly(n_users, n_items):
    users, items, ratings = full_grid(n_users, n_items)
    matrix = sp.csr_matrix((ratings, (users - 10, items - 10)), shape=(n_users, n_items))
    params = dict(n_factors=5, learning_rate=0.05, random_state=0, n_threads=1)
    whole = MatrixFactorization(n_epochs=5, **params).fit(matrix)
    parts = MatrixFactorization(n_epochs=2, **params).fit((users - 10, items - 10, ratings))
    parts.partial_fit(matrix, n_epochs=3)
    assert np.array_equal(whole.user_factors_, parts.user_factors_)
    assert np.array_equal(whole.item_factors_, parts.item_factors_)


def test_one_rating_with_early_stopping_and_no_validation_is_a_clear_error():
    model = MatrixFactorization(n_factors=4, early_stopping=True)
    with pytest.raises(ValueError, match="validation_fraction=0.1 leaves no training ratings"):
        model.fit(Ratings.from_arrays([1], [2], [4.0]))
    assert not hasattr(model, "user_factors_")


@pytest.mark.parametrize("lines", [["u1,a,5", "u1,b,3", "u1,c,1", "u1,d,4"],
                                   ["u1,a,5", "u2,a,3", "u3,a,1", "u4,a,4"]],
                         ids=["one user", "one item"])
def test_cli_trains_on_a_tiny_file(tmp_path, lines):
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "mfsgd", "train", str(path), "--factors",
                             "8", "--epochs", "3", "--save", str(tmp_path / "model.npz")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "test RMSE" in result.stdout and (tmp_path / "model.npz").is_file()
