"""The SVD++ estimator: training, implicit feedback, determinism, prediction and its errors."""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import mfsgd
from mfsgd import DivergenceError, SVDpp, make_synthetic
from mfsgd.model_selection import GridSearchCV, KFold, cross_validate


@pytest.fixture(scope="module")
def synthetic():
    users, items, ratings = make_synthetic(n_users=600, n_items=300, n_ratings=30_000, rank=6,
                                           noise=0.5, random_state=1)
    cut = 24_000
    return ((users[:cut], items[:cut], ratings[:cut]), (users[cut:], items[cut:], ratings[cut:]))


def small_svdpp(**params):
    defaults = dict(n_factors=8, n_epochs=5, learning_rate=0.01, regularization=0.02,
                    n_threads=1, random_state=0)
    defaults.update(params)
    return SVDpp(**defaults)


def test_exported_and_records_history(synthetic):
    train, test = synthetic
    model = small_svdpp().fit(train, validation=test)
    assert mfsgd.SVDpp is SVDpp and "SVDpp" in mfsgd.__all__
    assert [record["epoch"] for record in model.history_] == [1, 2, 3, 4, 5]
    assert model.history_[-1]["valid_rmse"] == pytest.approx(model.score(test))
    assert model.history_[-1]["train_rmse"] < model.history_[0]["train_rmse"]
    n_users, n_items = int(train[0].max()) + 1, int(train[1].max()) + 1
    assert model.user_factors_.shape == (n_users, 8)
    assert model.item_factors_.shape == model.implicit_factors_.shape == (n_items, 8)
    assert model.user_factors_.dtype == np.float32


def test_prediction_is_the_svdpp_formula(synthetic):
    """user_factors_ is p_u + |N(u)|^-1/2 sum y_j; predict is mu + b_u + b_i + q_i . that."""
    train, test = synthetic
    model = small_svdpp(dtype=np.float64).fit(train)
    users, items = test[0][:50], test[1][:50]
    want = (model.global_mean_ + model.user_bias_[users] + model.item_bias_[items]
            + np.einsum("ij,ij->i", model.user_factors_[users], model.item_factors_[items]))
    np.testing.assert_allclose(model.predict(users, items), np.clip(want, *model.rating_range_),
                               atol=1e-9)
    # the implicit part is there: the user vectors are not the free factors alone
    state = model.fit_state_
    rated = np.flatnonzero(np.bincount(train[0]))[:5]
    assert not np.allclose(model.user_factors_[rated], state.user_p[rated])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_on_1_2_and_8_threads(synthetic, dtype):
    train, _ = synthetic
    fits = [small_svdpp(n_blocks=4, n_threads=t, dtype=dtype).fit(train) for t in (1, 2, 8)]
    for model in fits[1:]:
        for name in ("user_factors_", "item_factors_", "implicit_factors_", "user_bias_",
                     "item_bias_"):
            assert np.array_equal(getattr(model, name), getattr(fits[0], name)), name


def test_unbiased_model_has_no_mean_and_no_biases(synthetic):
    train, test = synthetic
    model = small_svdpp(biased=False, dtype=np.float64).fit(train)
    assert model.global_mean_ == 0 and not model.user_bias_.any() and not model.item_bias_.any()
    users, items = test[0][:20], test[1][:20]
    want = np.einsum("ij,ij->i", model.user_factors_[users], model.item_factors_[items])
    np.testing.assert_allclose(model.predict(users, items), np.clip(want, *model.rating_range_),
                               atol=1e-9)


def test_validation_and_the_seed(synthetic):
    train, test = synthetic
    plain = small_svdpp().fit(train)
    watched = small_svdpp().fit(train, validation=test)
    assert np.array_equal(plain.user_factors_, watched.user_factors_)
    other = small_svdpp(random_state=1).fit(train)
    assert not np.array_equal(plain.user_factors_, other.user_factors_)


def test_implicit_pairs_join_n_of_u_and_new_ids_get_factors(synthetic):
    train, test = synthetic
    n_users, n_items = int(train[0].max()) + 1, int(train[1].max()) + 1
    implicit = (np.r_[test[0][:2000], n_users, n_users], np.r_[test[1][:2000], 0, n_items])
    model = small_svdpp().fit(train, implicit=implicit)
    assert model.user_factors_.shape == (n_users + 1, 8)
    assert model.item_factors_.shape == (n_items + 1, 8)
    plain = small_svdpp().fit(train)
    assert not np.allclose(model.user_factors_[:n_users], plain.user_factors_)
    # the new user has no rating and no bias, but an implicit term from items 0 and n_items
    vector = model.user_factors_[n_users] - model.fit_state_.user_p[n_users]
    want = (model.implicit_factors_[0] + model.implicit_factors_[n_items]) / np.sqrt(2)
    np.testing.assert_allclose(vector, want, rtol=1e-5, atol=1e-7)
    assert model.user_bias_[n_users] == 0
    # a sparse matrix of the same pairs is the same feedback
    matrix = sp.coo_matrix((np.ones(len(implicit[0])), implicit))
    same = small_svdpp().fit(train, implicit=matrix)
    assert np.array_equal(same.user_factors_, model.user_factors_)


def test_implicit_ratings_with_raw_ids(string_id_ratings):
    (users, items, ratings), data = string_id_ratings
    extra = mfsgd.Ratings.from_arrays(np.array(["user-000", "newcomer"]),
                                      np.array([items[0], "new-item"]), np.ones(2))
    model = small_svdpp().fit(data, implicit=extra)
    assert "newcomer" in model.user_ids_ and "new-item" in model.item_ids_
    assert np.isfinite(model.predict("newcomer", items[1]))
    tupled = small_svdpp().fit(data, implicit=(np.array(["user-000", "newcomer"]),
                                                np.array([items[0], "new-item"])))
    assert np.array_equal(tupled.user_factors_, model.user_factors_)


@pytest.mark.parametrize("implicit, error, match", [
    ([1, 2], TypeError, "implicit must be a mfsgd.Ratings"),
    ((np.array([0, 1]), np.array([0])), ValueError, "same length"),
    ((np.array([0.5]), np.array([0])), ValueError, r"implicit\[0\] \(users\)"),
    ((np.array([0]), np.array([None])), TypeError, r"implicit\[1\] \(items\)"),
])
def test_bad_implicit_feedback(synthetic, implicit, error, match):
    with pytest.raises(error, match=match):
        small_svdpp().fit(synthetic[0], implicit=implicit)


def test_implicit_ids_of_another_kind_than_the_ratings(string_id_ratings):
    data = string_id_ratings[1]
    with pytest.raises(TypeError, match="cannot be compared"):
        small_svdpp().fit(data, implicit=(np.array([1]), np.array([2])))
    with pytest.raises(TypeError, match="cannot be compared"):
        small_svdpp().fit(data, implicit=sp.eye(3, format="csr"))


@pytest.mark.parametrize("params, error, match", [
    (dict(learning_rate_schedule="adagrad"), ValueError, "adagrad"),
    (dict(non_negative=True), ValueError, "non_negative"),
    (dict(implicit_regularization=-1.0), ValueError, "implicit_regularization"),
    (dict(implicit_learning_rate=0.0), ValueError, "implicit_learning_rate"),
    (dict(implicit_learning_rate="fast"), TypeError, "implicit_learning_rate"),
])
def test_bad_parameters(synthetic, params, error, match):
    with pytest.raises(error, match=match):
        small_svdpp(**params).fit(synthetic[0])


def test_recommend_scores_are_the_unclipped_predictions(synthetic):
    train, _ = synthetic
    model = small_svdpp(dtype=np.float64).fit(train)
    items, scores = model.recommend(3, n=5, exclude_seen=False)
    want = (model.global_mean_ + model.user_bias_[3] + model.item_bias_[items]
            + model.item_factors_[items] @ model.user_factors_[3])
    np.testing.assert_allclose(scores, want, atol=1e-9)


def test_pickle_round_trip_predicts_the_same(synthetic):
    train, test = synthetic
    model = small_svdpp().fit(train)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict(test[0], test[1]), model.predict(test[0], test[1]))


def test_early_stopping_restores_the_best_epoch(synthetic):
    train, test = synthetic
    model = small_svdpp(n_epochs=40, learning_rate=0.05, regularization=0.0,
                        early_stopping=True, patience=2).fit(train, validation=test)
    best = min(record["valid_rmse"] for record in model.history_)
    assert model.best_epoch_ < len(model.history_)
    assert model.score(test) == pytest.approx(best, abs=1e-6)


def test_divergence_raises_and_leaves_no_model(synthetic):
    model = small_svdpp(learning_rate=5.0)
    with pytest.raises(DivergenceError, match="learning_rate"):
        model.fit(synthetic[0])
    assert not hasattr(model, "user_factors_")


def test_cross_validate_and_grid_search(synthetic):
    train, _ = synthetic
    scores = cross_validate(small_svdpp(), train, cv=2, n_jobs=2)
    assert (scores["test_rmse"] < 1.2).all()
    search = GridSearchCV(small_svdpp(), {"implicit_regularization": [0.001, 0.02]}, cv=2,
                          n_jobs=2).fit(train)
    assert isinstance(search.best_estimator_, SVDpp)


def test_one_block_is_sequential_svdpp_and_better_than_mf_on_movielens(ml100k_u1):
    """n_blocks=1 has no staleness; the blocked schedule must land close to it."""
    train, test = ml100k_u1
    params = dict(n_factors=20, n_epochs=20, learning_rate=0.007, regularization=0.02,
                  init_std=0.1, random_state=0)
    serial = SVDpp(n_blocks=1, n_threads=1, **params).fit(train).score(test)
    blocked = SVDpp(n_blocks=4, n_threads=2, **params).fit(train).score(test)
    mf = mfsgd.MatrixFactorization(n_threads=1, **params).fit(train).score(test)
    assert abs(blocked - serial) <= 0.005, (blocked, serial)
    assert serial < mf - 0.005, (serial, mf)


# The configuration the project's RandomizedSearchCV found on MovieLens 100K (README, "SVD++"),
# rounded as printed there.
README_SVDPP_ML100K = dict(n_factors=100, n_epochs=100, learning_rate=0.0036, regularization=0.051,
                           implicit_learning_rate=0.0024, implicit_regularization=0.0063,
                           bias_regularization=0.029, learning_rate_schedule="inverse",
                           learning_rate_decay=0.0084)


@pytest.mark.slow
def test_readme_svdpp_configuration_on_movielens_100k(ml100k_dir, ml100k_u1):
    data = mfsgd.load_movielens(ml100k_dir)
    model = SVDpp(**README_SVDPP_ML100K, random_state=0)
    result = cross_validate(model, data, cv=KFold(5, shuffle=True, random_state=0), n_jobs=2)
    assert result["test_rmse"].mean() <= 0.898
    train, test = ml100k_u1
    assert model.fit(train).score(test) <= 0.908


# ---------------------------------------------------------------- continuing, Ctrl-C, new data
def history_without_seconds(model):
    return [{key: value for key, value in record.items() if key != "seconds"}
            for record in model.history_]


def assert_same_svdpp(a, b):
    for name in ("user_factors_", "item_factors_", "implicit_factors_", "user_bias_",
                 "item_bias_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.fit_state_.user_p, b.fit_state_.user_p)
    assert history_without_seconds(a) == history_without_seconds(b)


@pytest.mark.parametrize("n_blocks", [2, 4])
def test_fit_then_partial_fit_is_one_longer_fit(synthetic, n_blocks):
    """Pending implicit updates and the cells survive between calls: exact continuation."""
    train, test = synthetic
    whole = small_svdpp(n_epochs=5, n_blocks=n_blocks).fit(train, validation=test)
    split = small_svdpp(n_epochs=2, n_blocks=n_blocks).fit(train, validation=test)
    split.partial_fit(train, n_epochs=3, validation=test)
    assert_same_svdpp(split, whole)


def test_interrupted_fit_continues_exactly(synthetic, monkeypatch):
    """Ctrl-C lands between kernel calls of about 0.05 s (here one sub-epoch each); the
    model predicts from the finished sub-epochs and partial_fit completes the epoch."""
    import signal

    from mfsgd._kernels import _svdpp
    from mfsgd.training import loop
    train, test = synthetic
    whole = small_svdpp(n_epochs=4, n_blocks=4).fit(train, validation=test)
    monkeypatch.setattr(loop, "CHECK_SECONDS", 0.0)
    count, real_kernel = [0], _svdpp.svdpp_epoch

    def kernel(*args, **kwargs):
        count[0] += 1
        if count[0] == 6:
            signal.raise_signal(signal.SIGINT)   # lands while the call runs: epoch 2, block 2
        return real_kernel(*args, **kwargs)

    monkeypatch.setattr(_svdpp, "svdpp_epoch", kernel)
    model = small_svdpp(n_epochs=4, n_blocks=4)
    with pytest.raises(KeyboardInterrupt):
        model.fit(train, validation=test)
    assert count[0] == 6 and [r["epoch"] for r in model.history_] == [1]
    # the published vectors hold the finished sub-epochs, not only the first epoch
    one_epoch = small_svdpp(n_epochs=1, n_blocks=4).fit(train)
    stopped = model.predict(test[0][:100], test[1][:100])
    assert np.isfinite(stopped).all()
    assert not np.array_equal(model.user_factors_, one_epoch.user_factors_)
    model.partial_fit(train, n_epochs=3, validation=test)
    assert_same_svdpp(model, whole)


def test_partial_fit_on_new_data_grows_the_model_and_n_of_u(synthetic):
    train, test = synthetic
    users, items, ratings = train
    old = users < 400
    model = small_svdpp(n_epochs=3).fit((users[old], items[old], ratings[old]))
    n_users = model.n_users_
    before = model.fit_state_.implicit_indptr.copy()
    model.partial_fit(train, n_epochs=2, implicit=(test[0][:50], test[1][:50]))
    state = model.fit_state_
    assert model.n_users_ == len(np.unique(users)) > n_users
    assert state.user_p.shape == model.user_factors_.shape == (model.n_users_, 8)
    # N(u) gained the new ratings and the implicit pairs, and kept what it held
    sizes = np.diff(state.implicit_indptr)
    assert (sizes[:n_users] >= np.diff(before)).all()
    user0 = test[0][0]
    row = int(state.user_map.lookup([user0])[0])
    assert int(state.item_map.lookup([test[1][0]])[0]) in \
        state.implicit_indices[state.implicit_indptr[row]:state.implicit_indptr[row + 1]]
    assert model.score(test) < 1.2


def test_save_and_load_round_trip(synthetic, tmp_path):
    train, test = synthetic
    model = small_svdpp(implicit_regularization=0.01).fit(
        train, implicit=(test[0][:300], test[1][:300]))
    path = tmp_path / "svdpp.npz"
    model.save(path)
    for loaded in (SVDpp.load(path), mfsgd.load(path)):
        assert type(loaded) is SVDpp and loaded.get_params() == model.get_params()
        for name in ("user_factors_", "item_factors_", "implicit_factors_", "user_bias_",
                     "item_bias_"):
            assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
        assert np.array_equal(loaded.fit_state_.implicit_indices,
                              model.fit_state_.implicit_indices)
        assert np.array_equal(loaded.predict(test[0], test[1]), model.predict(test[0], test[1]))
    with np.load(path) as archive:
        assert int(archive["format_version"]) == 2 and str(archive["model_class"]) == "SVDpp"
    with pytest.raises(ValueError, match="holds a SVDpp, not a MatrixFactorization"):
        mfsgd.MatrixFactorization.load(path)
    # continuing after load is reproducible, from y with every pending update written
    first = SVDpp.load(path).partial_fit(train, n_epochs=2)
    second = SVDpp.load(path).partial_fit(train, n_epochs=2)
    assert_same_svdpp(first, second)
    assert first.score(test) < model.score(test) + 0.05


def test_matrix_factorization_files_stay_format_1_and_load_anywhere(synthetic, tmp_path):
    path = tmp_path / "mf.npz"
    model = mfsgd.MatrixFactorization(n_factors=4, n_epochs=2, random_state=0).fit(synthetic[0])
    model.save(path)
    with np.load(path) as archive:
        assert int(archive["format_version"]) == 1 and "model_class" not in archive.files
    assert type(mfsgd.load(path)) is mfsgd.MatrixFactorization
    with pytest.raises(ValueError, match="holds a MatrixFactorization, not a SVDpp"):
        SVDpp.load(path)


def test_a_model_file_with_a_bad_n_of_u_is_refused(synthetic, tmp_path):
    from mfsgd import persistence
    model = small_svdpp(n_epochs=1).fit(synthetic[0])
    arrays = persistence._model_arrays(model)
    arrays["implicit_indices"] = arrays["implicit_indices"].copy()
    row = slice(*arrays["implicit_indptr"][:2])
    arrays["implicit_indices"][row] = arrays["implicit_indices"][row][::-1]
    arrays["sha256"] = np.array(persistence.digest(arrays))
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="implicit_indptr/implicit_indices"):
        SVDpp.load(path)


def test_fold_in_matches_the_least_squares_solution(synthetic):
    train, test = synthetic
    model = small_svdpp(dtype=np.float64).fit(train)
    state = model.fit_state_
    rated = {int(i): float(r) for i, r in zip(test[1][:12], test[2][:12])}
    extra = [int(test[1][20]), int(test[1][21])]
    vector, bias = model.fold_in(rated, implicit=extra)
    n_set = np.unique(state.item_map.lookup(list(rated) + extra))
    z = state.implicit_factors[n_set].sum(axis=0) / np.sqrt(len(n_set))
    p = vector - z
    # the normal equations of the ridge problem in (p, b_u) hold at the solution
    index = state.item_map.lookup(list(rated))
    q = state.item_factors[index]
    residual = (np.array(list(rated.values())) - model.global_mean_ - state.item_bias[index]
                - bias - q @ (p + z))
    n = len(index)
    np.testing.assert_allclose(q.T @ residual, model.regularization * n * p, atol=1e-9)
    np.testing.assert_allclose(residual.sum(), model.regularization * n * bias, atol=1e-9)
    # only implicit feedback: p = 0, bias 0, the vector is z
    alone, zero = model.fold_in({}, implicit=extra)
    two = state.item_map.lookup(extra)
    np.testing.assert_allclose(alone, state.implicit_factors[two].sum(axis=0) / np.sqrt(2))
    assert zero == 0.0
    with pytest.raises(ValueError, match="no item known"):
        model.fold_in({10**9: 3.0})


def test_fold_in_adds_a_user_that_training_keeps(synthetic):
    train, test = synthetic
    model = small_svdpp(n_epochs=2).fit(train)
    ratings = {int(i): float(r) for i, r in zip(test[1][:10], test[2][:10])}
    newcomer = 10**6
    vector, bias = model.fold_in(ratings, user=newcomer)
    assert np.allclose(model.user_factors(newcomer), vector)
    items, scores = model.recommend(newcomer, n=3)
    assert len(items) == 3
    model.partial_fit(train, n_epochs=1)            # same data: training goes on
    state = model.fit_state_
    row = int(state.user_map.lookup([newcomer])[0])
    z = state.implicit_factors[state.implicit_indices[state.implicit_indptr[row]:
                                                      state.implicit_indptr[row + 1]]]
    np.testing.assert_allclose(model.user_factors_[row],
                               state.user_p[row] + z.sum(axis=0) / np.sqrt(len(z)), rtol=1e-5,
                               atol=1e-6)


def test_cross_validate_with_the_test_pairs_as_implicit_feedback(synthetic):
    """Koren's protocol: each fold fits with its test pairs in N(u), as fit(train,
    implicit=(test users, test items)) does."""
    from mfsgd.model_selection import KFold
    train, _ = synthetic
    folds = KFold(2, shuffle=True, random_state=0)
    koren = cross_validate(small_svdpp(), train, cv=folds, implicit="test",
                           return_estimator=True)
    plain = cross_validate(small_svdpp(), train, cv=folds)
    assert not np.array_equal(koren["test_rmse"], plain["test_rmse"])
    fold_train, fold_test = next(iter(folds.split(mfsgd.Ratings.from_arrays(*train))))
    users, items, _ = fold_test.to_arrays()
    by_hand = small_svdpp().fit(fold_train, implicit=(users, items))
    assert np.array_equal(koren["estimator"][0].user_factors_, by_hand.user_factors_)
    with pytest.raises(TypeError, match="SVDpp"):
        cross_validate(mfsgd.MatrixFactorization(n_epochs=1), train, cv=2, implicit="test")
    with pytest.raises(ValueError, match="implicit must be None or 'test'"):
        cross_validate(small_svdpp(), train, cv=2, implicit="train")
