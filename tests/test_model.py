"""The estimator: training, accuracy, determinism, prediction and its errors."""
import numpy as np
import pytest
import scipy.sparse as sp

import mfsgd
from mfsgd import DivergenceError, MatrixFactorization, NotFittedError, make_synthetic


@pytest.fixture(scope="module")
def synthetic():
    users, items, ratings = make_synthetic(n_users=1500, n_items=800, n_ratings=90_000,
                                           rank=6, noise=0.5, random_state=0)
    cut = 72_000
    return ((users[:cut], items[:cut], ratings[:cut]), (users[cut:], items[cut:], ratings[cut:]))


def small_model(**params):
    defaults = dict(n_factors=8, n_epochs=5, random_state=0)
    defaults.update(params)
    return MatrixFactorization(**defaults)


def test_fit_records_history_and_attributes(synthetic):
    train, test = synthetic
    model = small_model().fit(train, validation=test)
    assert len(model.history_) == 5
    for epoch, record in enumerate(model.history_, 1):
        assert record["epoch"] == epoch
        assert set(record) >= {"train_rmse", "valid_rmse", "objective", "seconds", "learning_rate"}
        assert record["seconds"] >= 0
    assert model.user_factors_.shape == (int(train[0].max()) + 1, 8)
    assert model.item_factors_.shape == (int(train[1].max()) + 1, 8)
    assert model.user_factors_.dtype == np.float32
    assert model.user_bias_.shape == (model.user_factors_.shape[0],)
    assert model.global_mean_ == pytest.approx(float(np.mean(train[2], dtype=np.float64)))
    assert model.history_[-1]["valid_rmse"] == pytest.approx(model.score(test))


def test_objective_decreases_at_small_learning_rate(synthetic):
    model = small_model(n_epochs=15, learning_rate=0.002).fit(synthetic[0])
    objective = [r["objective"] for r in model.history_]
    assert all(b < a for a, b in zip(objective, objective[1:]))


def test_synthetic_rmse_close_to_noise_floor():
    users, items, ratings = make_synthetic(n_users=1000, n_items=500, n_ratings=150_000,
                                           rank=6, noise=0.5, random_state=1)
    cut = 120_000
    model = MatrixFactorization(n_factors=8, n_epochs=100, learning_rate=0.005,
                                regularization=0.02, random_state=0)
    model.fit((users[:cut], items[:cut], ratings[:cut]))
    rmse = model.score((users[cut:], items[cut:], ratings[cut:]))
    assert rmse <= 0.5 * 1.10, rmse


def test_movielens_u1_with_defaults(ml100k_u1):
    train, test = ml100k_u1
    rmse = MatrixFactorization(random_state=0).fit(train).score(test)
    assert rmse <= 0.925, rmse


def test_same_seed_bit_identical_different_seed_differs(synthetic):
    train = synthetic[0]
    a = small_model(random_state=42).fit(train)
    b = small_model(random_state=42).fit(train)
    c = small_model(random_state=43).fit(train)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.user_factors_, c.user_factors_)


@pytest.mark.parametrize("n_blocks", [1, 4])
def test_thread_count_does_not_change_the_model(synthetic, n_blocks):
    train = synthetic[0]
    models = [small_model(n_threads=t, n_blocks=n_blocks).fit(train) for t in (1, 2, 8)]
    for model in models[1:]:
        assert np.array_equal(model.user_factors_, models[0].user_factors_)
        assert np.array_equal(model.item_bias_, models[0].item_bias_)
        assert model.history_[-1]["train_rmse"] == models[0].history_[-1]["train_rmse"]


def test_float64_and_unbiased(synthetic):
    train, test = synthetic
    model = small_model(dtype=np.float64, biased=False).fit(train)
    assert model.user_factors_.dtype == np.float64
    assert model.global_mean_ == 0.0 and not model.item_bias_.any()
    assert np.isfinite(model.score(test))


def test_sparse_input_equals_tuple_input(synthetic):
    users, items, ratings = synthetic[0]
    matrix = sp.coo_matrix((ratings, (users, items))).tocsr()
    a = small_model().fit(matrix)
    b = small_model().fit((users, items, ratings))
    assert np.array_equal(a.user_factors_, b.user_factors_)


def test_predict_vectorised_scalar_clipped_and_cold_start(synthetic):
    train, _ = synthetic
    model = small_model().fit(train)
    preds = model.predict(train[0][:100], train[1][:100])
    assert preds.shape == (100,) and preds.dtype == np.float64
    lo, hi = float(train[2].min()), float(train[2].max())
    assert preds.min() >= lo and preds.max() <= hi
    assert isinstance(model.predict(int(train[0][0]), int(train[1][0])), float)
    new_user, known_item = 10**6, int(train[1][0])
    expected = np.clip(model.global_mean_ + model.item_bias_[known_item], lo, hi)
    assert model.predict(new_user, known_item) == pytest.approx(expected)
    assert model.predict(new_user, 10**6) == pytest.approx(model.global_mean_)


def test_prediction_equals_formula(synthetic):
    train, _ = synthetic
    model = small_model(dtype=np.float64).fit(train)
    u, i = 3, 5
    expected = (model.global_mean_ + model.user_bias_[u] + model.item_bias_[i]
                + model.user_factors_[u] @ model.item_factors_[i])
    assert model.predict(u, i) == pytest.approx(np.clip(expected, *model.rating_range_))


def test_caller_arrays_are_not_modified(synthetic):
    users, items, ratings = (a.copy() for a in synthetic[0])
    before = [users.copy(), items.copy(), ratings.copy()]
    small_model().fit((users, items, ratings), validation=(users, items, ratings))
    for got, want in zip((users, items, ratings), before):
        assert np.array_equal(got, want)


def test_divergence_raises_and_leaves_no_model(synthetic):
    model = small_model(learning_rate=50.0, n_epochs=20)
    with pytest.raises(DivergenceError, match="smaller learning_rate"):
        model.fit(synthetic[0])
    assert not hasattr(model, "user_factors_")
    with pytest.raises(NotFittedError):
        model.predict(0, 0)


def test_a_diverged_fit_forgets_the_whole_previous_fit(synthetic):
    """A fit that diverges leaves nothing of the model it replaced nor of itself: no learned
    arrays, counters or training data (such as the per-row rating counts and the number of
    training ratings), so the object holds its parameters and at most item_titles_."""
    model = small_model().fit(synthetic[0])
    model.set_params(learning_rate=50.0, n_epochs=20)
    with pytest.raises(DivergenceError):
        model.fit(synthetic[0])
    assert set(vars(model)) - set(model.get_params()) <= {"item_titles_"}


def test_get_set_params_and_repr():
    model = MatrixFactorization(n_factors=7)
    params = model.get_params()
    assert params["n_factors"] == 7 and params["biased"] is True
    model.set_params(learning_rate=0.02, n_epochs=3)
    assert model.learning_rate == 0.02
    assert "n_factors=7" in repr(model)
    with pytest.raises(ValueError, match="invalid parameter 'n_factor'"):
        model.set_params(n_factor=3)
    clone = mfsgd.clone(model)
    assert clone.get_params() == model.get_params() and clone is not model


def test_score_takes_rmse_or_mae(synthetic):
    train, test = synthetic
    model = small_model().fit(train)
    errors = model.predict(test[0], test[1]) - test[2]
    assert model.score(test) == pytest.approx(np.sqrt(np.mean(errors ** 2)), rel=1e-12)
    assert model.score(test, metric="rmse") == model.score(test)
    assert model.score(test, metric="mae") == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
    for bad in ("r2", "RMSE", None):
        with pytest.raises(ValueError, match=r"metric must be one of \['mae', 'rmse'\], got"):
            model.score(test, metric=bad)
    with pytest.raises(NotFittedError):
        small_model().score(test, metric="mae")


def titled(ratings, titles):
    return mfsgd.Ratings(ratings.indptr, ratings.indices, ratings.data, ratings.user_ids,
                         ratings.item_ids, item_titles=titles)


def test_fit_keeps_the_item_titles_of_its_data_and_saves_them(tmp_path):
    """After fit on a Ratings with titles (load_movielens gives them), item_titles_
    is set, and save/load keep it."""
    users, items, ratings = make_synthetic(50, 30, 600, random_state=2)
    data = titled(mfsgd.Ratings.from_arrays(users, items, ratings),
                  {int(i): f"Film {i} (1995)" for i in range(30)})
    model = small_model(n_epochs=2).fit(data)
    assert model.item_titles_ == {i: f"Film {i} (1995)" for i in range(30)}
    model.save(tmp_path / "model.npz")
    assert MatrixFactorization.load(tmp_path / "model.npz").item_titles_ == model.item_titles_
    more = titled(mfsgd.Ratings.from_arrays([7, 7], [30, 31], [4.0, 2.0]), {30: "Film 30"})
    model.partial_fit(more)
    assert model.item_titles_[30] == "Film 30" and model.item_titles_[0] == "Film 0 (1995)"
    model.fit((users, items, ratings))            # data without titles: none kept from data
    assert model.item_titles_ is None
    model.item_titles_ = {0: "set by hand"}
    model.fit((users, items, ratings))            # one set by hand stays
    assert model.item_titles_ == {0: "set by hand"}
    assert small_model(n_epochs=1).fit((users, items, ratings)).item_titles_ is None


def test_fit_on_movielens_sets_item_titles(ml100k_dir, tmp_path):
    data = mfsgd.load_movielens(ml100k_dir)
    model = MatrixFactorization(n_factors=8, n_epochs=1, random_state=0, n_threads=1).fit(data)
    assert model.item_titles_[1] == "Toy Story (1995)" and len(model.item_titles_) == 1682
    model.save(tmp_path / "ml.npz")
    assert MatrixFactorization.load(tmp_path / "ml.npz").item_titles_ == model.item_titles_


def test_nested_parameters_by_double_underscore():
    from mfsgd.model_selection import GridSearchCV
    search = GridSearchCV(MatrixFactorization(n_factors=7), {"learning_rate": [0.01]})
    deep = search.get_params()
    assert deep["model__n_factors"] == 7 and "model__n_factors" not in search.get_params(False)
    search.set_params(model__n_factors=9, cv=3)
    assert search.model.n_factors == 9 and search.cv == 3
    with pytest.raises(ValueError, match="invalid parameter 'n_factor' for MatrixFactorization"):
        search.set_params(model__n_factor=3)
    with pytest.raises(ValueError, match="cv holds 3, which has no parameters"):
        search.set_params(cv__n_splits=3)
    copy = mfsgd.clone(search)
    assert copy.model is not search.model and copy.model.n_factors == 9
    assert "model__n_factors" not in repr(search)


def test_verbose_prints_one_line_per_epoch(synthetic, capsys):
    small_model(n_epochs=3, verbose=True).fit(synthetic[0], validation=synthetic[1])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "valid_rmse" in lines[0]


GOOD = (np.array([0, 1, 2]), np.array([0, 1, 1]), np.array([4.0, 3.0, 5.0]))


@pytest.mark.parametrize("X, error, match", [
    ((np.array([0, 1, 2]), np.array([0, 1, 1]), np.array([4.0, np.nan, 5.0])), ValueError, "finite"),
    ((np.array([0, 1, 2]), np.array([0, 1, 1]), np.array([4.0, np.inf, 5.0])), ValueError, "finite"),
    ((np.array([0, 1.5, 2]), np.array([0, 1, 1]), np.array([4.0, 3.0, 5.0])), ValueError, "integer"),
    ((np.array(["a", None, "c"]), np.array([0, 1, 1]), np.array([4.0, 3.0, 5.0]), ), TypeError,
     r"X\[0\] \(users\).*None"),
    ((np.array([0, 1]), np.array([0, 1, 1]), np.array([4.0, 3.0, 5.0])), ValueError, "same length"),
    ((np.array([], dtype=int), np.array([], dtype=int), np.array([])), ValueError, "no ratings"),
    ((np.array([0, 0]), np.array([1, 1]), np.array([4.0, 3.0])), ValueError, r"user 0, item 1"),
    ([1, 2, 3], TypeError, "tuple"),
    ((np.array([0, 1, 2]), np.array([0, 1, 1]), np.array(["x", "y", "z"])), TypeError, "numbers"),
])
def test_bad_training_data(X, error, match):
    with pytest.raises(error, match=match):
        small_model().fit(X)


@pytest.mark.parametrize("params, error, match", [
    ({"n_factors": 0}, ValueError, "n_factors"),
    ({"n_factors": 2.5}, TypeError, "n_factors"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"regularization": -1}, ValueError, "regularization"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"dtype": "float16"}, TypeError, "dtype"),
    ({"learning_rate_schedule": "cosine"}, ValueError, "learning_rate_schedule"),
    ({"n_epochs": -1}, ValueError, "n_epochs"),
    ({"n_threads": 0}, ValueError, "n_threads"),
    ({"n_blocks": 0}, ValueError, "n_blocks"),
    ({"biased": "yes"}, TypeError, "biased"),
])
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        small_model(**params).fit(GOOD)


def test_predict_errors(synthetic):
    model = small_model().fit(synthetic[0])
    with pytest.raises(ValueError, match="same length"):
        model.predict([0, 1], [0])
    with pytest.raises(TypeError, match="integer"):
        model.predict(["a"], [0])


def test_sparse_with_duplicates_is_refused():
    coo = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))))
    with pytest.raises(ValueError, match="more than once"):
        small_model().fit(coo)


def test_factor_rows_by_id(synthetic):
    model = small_model().fit(synthetic[0])
    assert np.array_equal(model.user_factors(3), model.user_factors_[3])
    assert np.array_equal(model.item_factors([1, 2]), model.item_factors_[[1, 2]])
    with pytest.raises(KeyError, match="unknown user id 999999"):
        model.user_factors(999999)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factors_are_plain_arrays_after_training_on_padded_rows(dtype):
    """k = 100 trains on rows padded to whole cache lines; the fitted factors come back as
    C-contiguous (n, k) arrays, and continuing training equals one longer fit."""
    users, items, ratings = make_synthetic(60, 40, 900, random_state=0)[:3]
    params = dict(n_factors=100, random_state=0, dtype=dtype, n_threads=1)
    model = MatrixFactorization(n_epochs=2, **params).fit((users, items, ratings))
    for factors in (model.user_factors_, model.item_factors_):
        assert factors.flags.c_contiguous and factors.shape[1] == 100 and factors.dtype == dtype
    model.partial_fit((users, items, ratings), n_epochs=1)
    whole = MatrixFactorization(n_epochs=3, **params).fit((users, items, ratings))
    assert np.array_equal(model.user_factors_, whole.user_factors_)


def test_a_tuple_holds_raw_ids_so_a_huge_id_costs_one_row(fuzz_limits):
    """(users, items, ratings) are raw ids as in Ratings.from_arrays: the largest id does not
    size the model."""
    users = np.array([0, 2_000_000_000, 0, 17])
    items = np.array([5, 7, 7, 5])
    model = fuzz_limits(small_model().fit, (users, items, np.array([1.0, 2.0, 3.0, 4.0])),
                        max_bytes=16 << 20)
    assert model.user_ids_.tolist() == [0, 17, 2_000_000_000]
    assert model.item_ids_.tolist() == [5, 7]
    assert model.user_factors_.shape == (3, 8)
    assert model.recommend(17, exclude_seen=False)[0].tolist() in ([5, 7], [7, 5])
    assert model.predict(1, 5) == pytest.approx(
        np.clip(model.global_mean_ + model.item_bias_[0], *model.rating_range_))


def test_models_saved_with_identity_id_maps_still_load_and_predict_as_before(tmp_path):
    """Older mfsgd gave index input one factor row per index, rated or not, and saved those
    maps as ``user_ids_identity``/``item_ids_identity`` without ids.  Such a file, built here
    as that writer laid it out, loads, predicts from every row as before, and grows by raw
    ids afterwards."""
    from mfsgd import persistence
    users, items, ratings = make_synthetic(n_users=40, n_items=20, n_ratings=500, random_state=0)
    model = small_model(n_factors=3).fit((users, items, ratings))
    assert model.user_ids_.tolist() == list(range(40))
    arrays = persistence._model_arrays(model)
    rng = np.random.default_rng(1)
    for kind in ("user", "item"):           # one unrated row at the end of each side
        factors = arrays[f"{kind}_factors"]
        arrays[f"{kind}_factors"] = np.vstack([factors, rng.normal(0, 0.01, (1, 3))
                                               .astype(factors.dtype)])
        arrays[f"{kind}_bias"] = np.append(arrays[f"{kind}_bias"],
                                           arrays[f"{kind}_bias"].dtype.type(0.25))
        arrays[f"{kind}_ids_identity"] = np.array(True)
        arrays[f"{kind}_ids"] = np.zeros(0, dtype=np.int64)
    arrays["seen_indptr"] = np.append(arrays["seen_indptr"], arrays["seen_indptr"][-1])
    arrays["sha256"] = np.array(persistence.digest(arrays))
    path = tmp_path / "old.npz"
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    loaded = MatrixFactorization.load(path)
    assert loaded.user_ids_.tolist() == list(range(41))
    assert loaded.item_ids_.tolist() == list(range(21))
    every_user, every_item = np.repeat(np.arange(41), 21), np.tile(np.arange(21), 41)
    p, q = arrays["user_factors"].astype(np.float64), arrays["item_factors"].astype(np.float64)
    want = (float(arrays["global_mean"]) + arrays["user_bias"][every_user]
            + arrays["item_bias"][every_item] + np.einsum("ij,ij->i", p[every_user], q[every_item]))
    np.testing.assert_allclose(loaded.predict(every_user, every_item),
                               np.clip(want, *arrays["rating_range"]), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(users[:50], items[:50]),
                                  model.predict(users[:50], items[:50]))
    assert loaded.predict(41, 0) == pytest.approx(
        np.clip(float(arrays["global_mean"]) + arrays["item_bias"][0], *arrays["rating_range"]))
    loaded.partial_fit(([2**40, 3], [0, 2**40], [4.0, 2.0]), n_epochs=1)
    assert loaded.n_users_ == 42 and loaded.user_ids_[-1] == 2**40
    assert loaded.n_items_ == 22 and loaded.item_ids_[-1] == 2**40
    assert loaded.user_ids_[:41].tolist() == list(range(41))
