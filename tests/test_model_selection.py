"""mfsgd.model_selection: splits, cross-validation and hyperparameter search."""
import collections

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats

import mfsgd
from mfsgd.model_selection import (GridSearchCV, KFold, ParameterGrid, ParameterSampler,
                                   PredefinedSplit, RandomizedSearchCV, cross_validate,
                                   train_test_split)


def triplets(ratings):
    """Multiset of (raw user, raw item, rating) of a rating set."""
    users, items, values = ratings.to_arrays()
    return collections.Counter(zip(users.tolist(), items.tolist(), values.tolist()))


@pytest.fixture(scope="module")
def synthetic():
    users, items, ratings = mfsgd.make_synthetic(n_users=300, n_items=150, n_ratings=12_000,
                                                 random_state=7)
    stamps = np.random.default_rng(1).integers(0, 1000, len(ratings))   # many ties
    return mfsgd.Ratings.from_arrays(users, items, ratings, timestamps=stamps)


@pytest.fixture(scope="module")
def skewed():
    """Users with 1, 2, 3, ... 40 ratings of string items, so 'user' meets tiny users."""
    counts = np.arange(1, 41)
    users = np.repeat([f"u{n}" for n in counts], counts)
    items = np.concatenate([np.arange(n) for n in counts])
    values = np.random.default_rng(0).integers(1, 6, len(users)).astype(float)
    return mfsgd.Ratings.from_arrays(users, np.char.add("i", items.astype(str)), values)


def fast_model(**params):
    defaults = dict(n_factors=4, n_epochs=5, learning_rate=0.01, random_state=0)
    defaults.update(params)
    return mfsgd.MatrixFactorization(**defaults)


# ---------------------------------------------------------------- train_test_split
@pytest.mark.parametrize("strategy", ["random", "user", "time"])
def test_split_loses_and_duplicates_nothing(synthetic, strategy):
    train, test = train_test_split(synthetic, test_size=0.25, random_state=0, strategy=strategy)
    assert triplets(train) + triplets(test) == triplets(synthetic)
    assert len(test) == pytest.approx(0.25 * len(synthetic), rel=0.05)
    assert train.timestamps is not None and test.timestamps is not None


def test_random_split_sizes_and_reproducibility(synthetic):
    train, test = train_test_split(synthetic, test_size=0.2, random_state=3)
    assert len(test) == int(np.ceil(0.2 * len(synthetic)))
    again = train_test_split(synthetic, test_size=0.2, random_state=3)[1]
    assert triplets(again) == triplets(test)
    other = train_test_split(synthetic, test_size=0.2, random_state=4)[1]
    assert triplets(other) != triplets(test)
    assert len(train_test_split(synthetic, test_size=100, random_state=0)[1]) == 100


def test_user_split_keeps_every_user_in_train(skewed):
    train, test = train_test_split(skewed, test_size=0.3, random_state=0, strategy="user")
    assert triplets(train) + triplets(test) == triplets(skewed)
    np.testing.assert_array_equal(train.user_ids, skewed.user_ids)
    assert "u1" not in set(test.user_ids.tolist())           # one rating: wholly in train
    per_user_test = dict(zip(test.user_ids.tolist(), np.diff(test.indptr).tolist()))
    for n in range(1, 41):                                      # floor or ceil of 0.3 n, < n
        assert per_user_test.get(f"u{n}", 0) in {min(int(np.floor(0.3 * n)), n - 1),
                                                  min(int(np.ceil(0.3 * n)), n - 1)}


def test_user_split_with_a_count_is_leave_n_out(skewed):
    train, test = train_test_split(skewed, test_size=2, random_state=0, strategy="user")
    per_user = dict(zip(test.user_ids.tolist(), np.diff(test.indptr).tolist()))
    assert per_user.get("u1", 0) == 0 and per_user["u2"] == 1 and per_user["u3"] == 2
    assert set(per_user.values()) <= {1, 2}
    assert triplets(train) + triplets(test) == triplets(skewed)


def test_user_split_shares_are_close_overall(synthetic):
    _, test = train_test_split(synthetic, test_size=0.2, random_state=0, strategy="user")
    assert abs(len(test) / len(synthetic) - 0.2) < 0.02


def test_time_split_puts_the_latest_ratings_in_test(synthetic):
    train, test = train_test_split(synthetic, test_size=0.3, random_state=0, strategy="time")
    assert train.timestamps.max() <= test.timestamps.min()
    assert len(test) == int(np.ceil(0.3 * len(synthetic)))


def test_split_accepts_tuples_and_sparse():
    users, items, ratings = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 2]), \
        np.array([1.0, 2, 3, 4, 5])
    train, test = train_test_split((users, items, ratings), test_size=2, random_state=0)
    assert isinstance(train, mfsgd.Ratings) and len(test) == 2
    matrix = sp.coo_matrix((ratings, (users, items)))
    train, test = train_test_split(matrix, test_size=0.4, random_state=0)
    assert triplets(train) + triplets(test) == triplets(mfsgd.Ratings.from_sparse(matrix))
    train, test = train_test_split((users, items, ratings, [5, 4, 3, 2, 1]), test_size=2,
                                   strategy="time")
    assert sorted(test.timestamps.tolist()) == [4, 5]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(test_size=0.0), ValueError, "test_size must be in \\(0, 1\\)"),
    (dict(test_size=1.5), ValueError, "test_size must be in \\(0, 1\\)"),
    (dict(test_size="0.2"), TypeError, "test_size must be a float"),
    (dict(test_size=True), TypeError, "test_size must be a float"),
    (dict(test_size=10**9), ValueError, "test_size=1000000000 gives"),
    (dict(test_size=0), ValueError, "test_size=0 gives"),
    (dict(strategy="users"), ValueError, "strategy must be one of"),
    (dict(test_size=0, strategy="user"), ValueError, "test_size must be >= 1"),
])
def test_split_argument_errors(synthetic, kwargs, error, message):
    with pytest.raises(error, match=message):
        train_test_split(synthetic, **kwargs)


def test_split_needs_timestamps_for_time_and_ratings_type(skewed):
    with pytest.raises(ValueError, match="strategy='time' needs timestamps"):
        train_test_split(skewed, strategy="time")
    with pytest.raises(TypeError, match="ratings must be a mfsgd.Ratings"):
        train_test_split([1, 2, 3])
    single = mfsgd.Ratings.from_arrays([1, 2], [1, 1], [3.0, 4.0])
    with pytest.raises(ValueError, match="puts no rating in test"):
        train_test_split(single, strategy="user")


# ---------------------------------------------------------------- KFold / PredefinedSplit
def test_kfold_partitions_the_ratings(synthetic):
    folds = list(KFold(n_splits=4, random_state=0).split(synthetic))
    assert len(folds) == 4 == KFold(4).get_n_splits()
    union = collections.Counter()
    sizes = []
    for train, test in folds:
        assert triplets(train) + triplets(test) == triplets(synthetic)
        union += triplets(test)
        sizes.append(len(test))
    assert union == triplets(synthetic)
    assert max(sizes) - min(sizes) <= 1


def test_kfold_positions_shuffle_and_seed(synthetic):
    n = len(synthetic)
    plain = list(KFold(3, shuffle=False).split_positions(synthetic))
    np.testing.assert_array_equal(np.concatenate([test for _, test in plain]), np.arange(n))
    first = [test for _, test in KFold(3, random_state=5).split_positions(synthetic)]
    second = [test for _, test in KFold(3, random_state=5).split_positions(synthetic)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for train, test in plain:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == n


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_splits=1), ValueError, "n_splits must be >= 2"),
    (dict(n_splits=2.0), TypeError, "n_splits must be an integer"),
    (dict(n_splits=10**6), ValueError, "n_splits=1000000 exceeds"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
])
def test_kfold_argument_errors(synthetic, kwargs, error, message):
    with pytest.raises(error, match=message):
        list(KFold(**kwargs).split(synthetic))


def test_predefined_split(synthetic):
    pairs = [train_test_split(synthetic, random_state=s) for s in range(2)]
    cv = PredefinedSplit(pairs)
    assert cv.get_n_splits() == 2
    assert [len(t) for _, t in cv.split()] == [len(t) for _, t in pairs]
    with pytest.raises(ValueError, match="folds is empty"):
        PredefinedSplit([])
    with pytest.raises(TypeError, match="folds\\[0\\] must be a \\(train, test\\) pair"):
        PredefinedSplit([(synthetic,)])
    with pytest.raises(TypeError, match="folds\\[0\\]\\[1\\] \\(test\\) must be"):
        PredefinedSplit([(synthetic, "test")])


# ---------------------------------------------------------------- cross_validate
def test_cross_validate_keys_and_n_jobs_independence(synthetic):
    model = fast_model()
    serial = cross_validate(model, synthetic, cv=3, n_jobs=1)
    threaded = cross_validate(model, synthetic, cv=3, n_jobs=2)
    assert set(serial) == {"test_rmse", "test_mae", "fit_time", "score_time"}
    for key in serial:
        assert serial[key].shape == (3,)
    np.testing.assert_array_equal(serial["test_rmse"], threaded["test_rmse"])
    np.testing.assert_array_equal(serial["test_mae"], threaded["test_mae"])
    assert (serial["test_rmse"] > 0.4).all() and (serial["test_rmse"] < 1.5).all()
    assert (serial["test_mae"] < serial["test_rmse"]).all()
    assert not hasattr(model, "user_factors_")


def test_cross_validate_scores_match_a_manual_fit(synthetic):
    cv = KFold(3, random_state=2)
    result = cross_validate(fast_model(), synthetic, cv=cv, scoring="mae",
                            return_estimator=True)
    assert set(result) == {"test_mae", "fit_time", "score_time", "estimator"}
    train, test = next(cv.split(synthetic))
    model = fast_model().fit(train)
    users, items, values = test.to_arrays()
    assert result["test_mae"][0] == pytest.approx(mfsgd.metrics.mae(values,
                                                                    model.predict(users, items)))
    np.testing.assert_array_equal(result["estimator"][0].item_factors_, model.item_factors_)


def test_cross_validate_with_generator_seed_and_pairs(synthetic):
    pairs = [train_test_split(synthetic, random_state=s) for s in range(2)]
    model = fast_model(random_state=np.random.default_rng(0))
    one = cross_validate(model, None, cv=pairs, n_jobs=1)
    two = cross_validate(model, None, cv=iter(pairs), n_jobs=2)
    np.testing.assert_array_equal(one["test_rmse"], two["test_rmse"])


def test_cross_validate_gives_threads_to_clones(synthetic, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    result = cross_validate(fast_model(), synthetic, cv=2, n_jobs=2, return_estimator=True)
    assert [m.n_threads for m in result["estimator"]] == [2, 2]
    result = cross_validate(fast_model(n_threads=1), synthetic, cv=2, n_jobs=2,
                            return_estimator=True)
    assert [m.n_threads for m in result["estimator"]] == [1, 1]
    result = cross_validate(fast_model(), synthetic, cv=2, return_estimator=True)
    assert [m.n_threads for m in result["estimator"]] == [None, None]


def test_cross_validate_verbose_prints_folds(synthetic, capsys):
    cross_validate(fast_model(), synthetic, cv=2, verbose=True)
    out = capsys.readouterr().out
    assert "fold 1/2" in out and "fold 2/2" in out and "rmse" in out


def test_cross_validate_divergence_becomes_error_score(synthetic):
    model = fast_model(learning_rate=5.0)
    with pytest.warns(RuntimeWarning, match="fit failed"):
        result = cross_validate(model, synthetic, cv=2)
    assert np.isnan(result["test_rmse"]).all()
    with pytest.raises(mfsgd.DivergenceError):
        cross_validate(model, synthetic, cv=2, error_score="raise")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(cv=1), ValueError, "cv must be >= 2"),
    (dict(cv="five"), TypeError, "cv must be an int, a splitter"),
    (dict(scoring="r2"), ValueError, "scoring must name metrics among"),
    (dict(scoring=()), ValueError, "scoring is empty"),
    (dict(n_jobs=0), ValueError, "n_jobs must be a positive int"),
    (dict(n_jobs=1.5), TypeError, "n_jobs must be an integer"),
    (dict(error_score="skip"), TypeError, "error_score must be 'raise' or a number"),
])
def test_cross_validate_argument_errors(synthetic, kwargs, error, message):
    with pytest.raises(error, match=message):
        cross_validate(fast_model(), synthetic, **kwargs)


def test_cross_validate_bad_model_parameter_raises(synthetic):
    with pytest.raises(ValueError, match="n_factors must be >= 1"):
        cross_validate(fast_model(n_factors=0), synthetic, cv=2)


# ---------------------------------------------------------------- searches
def column(results, name):
    """A cv_results_ column as an ndarray, whether cv_results_ is a DataFrame or a dict."""
    return np.asarray(results[name])


def test_grid_search_finds_the_better_learning_rate(synthetic):
    rates = [1e-4, 1e-2, 3e-2]
    search = GridSearchCV(fast_model(n_epochs=30), {"learning_rate": rates}, cv=3,
                          scoring=("rmse", "mae"), n_jobs=2)
    search.fit(synthetic)
    scores = column(search.cv_results_, "mean_test_rmse")
    assert search.best_params_ == {"learning_rate": 3e-2}
    assert search.best_index_ == 2 and search.best_score_ == scores[2]
    assert scores.min() <= 0.9 * scores.max()          # measured: 0.71 against 1.06
    results = search.cv_results_
    expected = {"params", "param_learning_rate", "mean_fit_time", "std_fit_time",
                "mean_score_time", "std_score_time"}
    for metric in ("rmse", "mae"):
        expected |= {f"mean_test_{metric}", f"std_test_{metric}", f"rank_test_{metric}"}
        expected |= {f"split{i}_test_{metric}" for i in range(3)}
    assert set(results.keys()) == expected
    assert all(len(column(results, key)) == 3 for key in expected)
    np.testing.assert_array_equal(column(results, "rank_test_rmse"), [3, 2, 1])
    np.testing.assert_array_equal(column(results, "param_learning_rate"), rates)
    assert list(column(results, "params")) == [{"learning_rate": r} for r in rates]
    assert search.n_splits_ == 3
    assert search.best_estimator_.learning_rate == 3e-2
    train, test = train_test_split(synthetic, random_state=0)
    assert np.isfinite(search.predict(*test.to_arrays()[:2])).all()
    assert search.score(test) < scores.max()


def test_grid_search_results_do_not_depend_on_n_jobs(synthetic):
    grid = [{"n_factors": [2, 4]}, {"regularization": [0.1]}]
    one = GridSearchCV(fast_model(), grid, cv=2, n_jobs=1, refit=False).fit(synthetic)
    two = GridSearchCV(fast_model(), grid, cv=2, n_jobs=2, refit=False).fit(synthetic)
    np.testing.assert_array_equal(column(one.cv_results_, "mean_test_rmse"),
                                  column(two.cv_results_, "mean_test_rmse"))
    assert list(column(one.cv_results_, "param_regularization")) == [None, None, 0.1]
    assert not hasattr(one, "best_estimator_")
    with pytest.raises(mfsgd.NotFittedError, match="no best_estimator_"):
        one.predict([0], [0])


def test_grid_search_ranks_diverged_candidates_last(synthetic):
    search = GridSearchCV(fast_model(), {"learning_rate": [5.0, 0.01]}, cv=2, refit=False)
    with pytest.warns(RuntimeWarning, match="fit failed"):
        search.fit(synthetic)
    np.testing.assert_array_equal(column(search.cv_results_, "rank_test_rmse"), [2, 1])
    assert search.best_params_ == {"learning_rate": 0.01}
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="every candidate failed"):
        GridSearchCV(fast_model(), {"learning_rate": [5.0]}, cv=2).fit(synthetic)


def test_grid_search_verbose_prints_one_line_per_candidate(synthetic, capsys):
    GridSearchCV(fast_model(), {"n_factors": [2, 3]}, cv=2, verbose=1,
                 refit=False).fit(synthetic)
    lines = [line for line in capsys.readouterr().out.splitlines() if "[GridSearchCV]" in line]
    assert len(lines) == 2
    assert "n_factors=2:" in "".join(lines) and "rmse" in lines[0]


@pytest.mark.parametrize("kind", ["RandomizedSearchCV", "GridSearchCV", "cross_validate"])
def test_verbose_lines_logging_and_progress_bar_do_not_garble(synthetic, monkeypatch, kind):
    """With tqdm, a verbose search must not print the fold fits' own epoch tables and bars
    nor the log records over the progress bar: every piece of output on a shared terminal is
    a whole bar frame or a whole line."""
    pytest.importorskip("tqdm")
    import io
    import logging
    import re
    import sys
    screen = io.StringIO()                       # stdout and stderr on one terminal
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    handler = logging.StreamHandler(screen)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    model = fast_model(verbose=True, show_progress=True)
    try:
        if kind == "RandomizedSearchCV":
            RandomizedSearchCV(model, {"learning_rate": scipy.stats.loguniform(1e-3, 1e-1)},
                               n_iter=3, cv=2, n_jobs=2, verbose=1, refit=False,
                               random_state=0).fit(synthetic)
        elif kind == "GridSearchCV":
            GridSearchCV(model, {"n_factors": [2, 3, 4]}, cv=2, n_jobs=2, verbose=2,
                         refit=False).fit(synthetic)
        else:
            cross_validate(model, synthetic, cv=3, n_jobs=2, verbose=1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    segments = [part for part in re.split(r"[\r\n]", screen.getvalue()) if part.strip()]
    frame = re.compile(rf"{kind}: +\d+%\|[^|]*\| \d+/\d+ \[[^\]]*\]")
    line = re.compile(rf"(LOG )?\[{kind}\] [^%|\[\]]+ (s|s\))")
    epoch_log = re.compile(r"LOG +\d+ +[\d.]+ +[\d.e+]+ +[\d.]+")
    for part in segments:
        assert frame.fullmatch(part) or line.fullmatch(part) or epoch_log.fullmatch(part), part
    lines = [part for part in segments if part.startswith(f"[{kind}]")]
    assert len(lines) == {"RandomizedSearchCV": 3, "GridSearchCV": 9, "cross_validate": 3}[kind]
    assert any(frame.fullmatch(part) for part in segments)
    assert screen.getvalue().endswith("\n")


def test_fold_fits_restore_the_models_own_output_settings(synthetic, capsys):
    result = cross_validate(fast_model(verbose=True), synthetic, cv=2, return_estimator=True)
    assert [m.verbose for m in result["estimator"]] == [True, True]
    assert "train_rmse" not in capsys.readouterr().out


def test_cv_accepts_position_pairs_and_position_splitters(synthetic):
    """Index arrays (as scikit-learn's splitters yield) are positions into the CSR order."""
    mfsgd_folds = list(KFold(3, random_state=4).split_positions(synthetic))
    expected = cross_validate(fast_model(), synthetic, cv=KFold(3, random_state=4))

    class PositionKFold:
        def get_n_splits(self, ratings=None):
            return 3

        def split(self, ratings):
            yield from KFold(3, random_state=4).split_positions(ratings)

    for cv in (mfsgd_folds, PositionKFold(),
               [(np.isin(np.arange(len(synthetic)), train), test) for train, test in mfsgd_folds]):
        result = cross_validate(fast_model(), synthetic, cv=cv)
        np.testing.assert_array_equal(result["test_rmse"], expected["test_rmse"])
    search = GridSearchCV(fast_model(), {"n_factors": [2, 3]}, cv=PositionKFold()).fit(synthetic)
    assert search.n_splits_ == 3


@pytest.mark.parametrize("pair, error, message", [
    ((np.array([0, 1, 1]), np.array([2])), ValueError, "names a rating more than once"),
    ((np.array([0, 1]), np.array([10**9])), ValueError, "position 1000000000, outside"),
    ((np.array([0, 1]), np.array([-1])), ValueError, "position -1, outside"),
    ((np.array([0.0, 1.0]), np.array([2])), TypeError, "must be rating positions"),
    ((np.array([0, 1]), np.array([], dtype=int)), ValueError, "cv fold 0 test .* is empty"),
])
def test_bad_position_folds_are_refused(synthetic, pair, error, message):
    with pytest.raises(error, match=message):
        cross_validate(fast_model(), synthetic, cv=[pair])


def test_position_pairs_need_the_ratings():
    with pytest.raises(TypeError, match="no ratings to take positions from"):
        cross_validate(fast_model(), None, cv=[(np.array([0]), np.array([1]))])


def test_a_search_object_fits_in_one_thread_at_a_time(synthetic):
    import threading
    inside, release = threading.Event(), threading.Event()

    def hold(record, model):
        inside.set()
        release.wait(60)

    search = GridSearchCV(fast_model(n_epochs=1, callbacks=[hold]), {"n_factors": [2]}, cv=2,
                          refit=False)
    worker = threading.Thread(target=lambda: search.fit(synthetic))
    worker.start()
    try:
        assert inside.wait(60)
        with pytest.raises(RuntimeError, match="GridSearchCV object is already training"):
            search.fit(synthetic)
    finally:
        release.set()
        worker.join(60)
    assert search.n_splits_ == 2


@pytest.mark.parametrize("target", ["process", "timer thread"])
def test_ctrl_c_stops_the_fits_running_in_worker_threads(target):
    """A KeyboardInterrupt in the calling thread used to wait for every running fold fit to
    finish; now they stop at their next sub-epoch.  The operating system may give SIGINT to
    any thread ("timer thread" sends it to one that is not the main thread): the calling
    thread still notices it within a fraction of a second."""
    import os
    import signal
    import threading
    import time
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 5000 * 1000, size=200_000))
    data = mfsgd.Ratings.from_arrays(keys // 1000, keys % 1000,
                                     rng.integers(1, 6, len(keys)).astype(float))
    sent = []

    def interrupt():
        sent.append(time.perf_counter())
        if target == "process":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    timer = threading.Timer(0.5, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cross_validate(fast_model(n_factors=16, n_epochs=2000), data, cv=2, n_jobs=2)
        returned = time.perf_counter()
    finally:
        timer.cancel()
    assert sent and returned - sent[0] < 3.0, returned - sent[0]     # 2000 epochs: > 10 s
    workers = [t.name for t in threading.enumerate() if t.name.startswith("mfsgd-cv")]
    assert not workers, workers


def test_cv_results_is_a_dict_without_pandas(synthetic, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    search = GridSearchCV(fast_model(), {"n_factors": [2, 3]}, cv=2, refit=False)
    results = search.fit(synthetic).cv_results_
    assert isinstance(results, dict)
    assert results["mean_test_rmse"].shape == (2,)


def test_randomized_search_with_loguniform_is_reproducible(synthetic):
    distributions = {"learning_rate": scipy.stats.loguniform(1e-3, 1e-1),
                     "n_factors": [2, 4, 8]}
    kwargs = dict(n_iter=3, cv=2, random_state=11, refit=False)
    first = RandomizedSearchCV(fast_model(), distributions, **kwargs).fit(synthetic)
    second = RandomizedSearchCV(fast_model(), distributions, n_jobs=2, **kwargs).fit(synthetic)
    params = list(column(first.cv_results_, "params"))
    assert params == list(column(second.cv_results_, "params"))
    assert len(params) == 3
    rates = column(first.cv_results_, "param_learning_rate")
    assert ((rates >= 1e-3) & (rates <= 1e-1)).all() and len(set(rates)) == 3
    assert all(type(p["learning_rate"]) is float and p["n_factors"] in (2, 4, 8) for p in params)
    np.testing.assert_array_equal(column(first.cv_results_, "mean_test_rmse"),
                                  column(second.cv_results_, "mean_test_rmse"))
    other = RandomizedSearchCV(fast_model(), distributions, n_iter=3, cv=2, random_state=12,
                               refit=False)
    assert list(column(other.fit(synthetic).cv_results_, "params")) != params


def test_parameter_grid_and_sampler():
    grid = ParameterGrid([{"b": [1, 2], "a": ["x"]}, {"c": np.array([0.5])}])
    assert len(grid) == 3
    assert list(grid) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}, {"c": 0.5}]
    assert type(list(grid)[2]["c"]) is float
    sampler = ParameterSampler({"a": [1, 2, 3]}, n_iter=3, random_state=0)
    assert sorted(p["a"] for p in sampler) == [1, 2, 3]         # lists only: no repeats
    with pytest.warns(UserWarning, match="n_iter=5 exceeds the 3 settings"):
        assert len(list(ParameterSampler({"a": [1, 2, 3]}, n_iter=5, random_state=0))) == 3
    draws = list(ParameterSampler({"a": scipy.stats.randint(0, 100)}, 20, random_state=1))
    assert draws == list(ParameterSampler({"a": scipy.stats.randint(0, 100)}, 20,
                                          random_state=1))


@pytest.mark.parametrize("make, error, message", [
    (lambda: ParameterGrid({"a": 1}), TypeError, "param_grid\\['a'\\] must be a list"),
    (lambda: ParameterGrid({"a": "xyz"}), TypeError, "param_grid\\['a'\\] must be a list"),
    (lambda: ParameterGrid({"a": []}), ValueError, "param_grid\\['a'\\] is empty"),
    (lambda: ParameterGrid([]), ValueError, "param_grid is empty"),
    (lambda: ParameterGrid(5), TypeError, "param_grid must be a dict"),
    (lambda: ParameterSampler({"a": 0.5}, 3), TypeError,
     "param_distributions\\['a'\\] must be a list"),
    (lambda: ParameterSampler({"a": [1]}, 0), ValueError, "n_iter must be >= 1"),
])
def test_parameter_helpers_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("search, error, message", [
    (lambda: GridSearchCV(fast_model(), {"bogus": [1]}), ValueError,
     "invalid parameter 'bogus'"),
    (lambda: GridSearchCV(fast_model(), {"n_factors": [2]}, scoring="accuracy"), ValueError,
     "scoring must name metrics"),
    (lambda: GridSearchCV(fast_model(), {"n_factors": [2]}, refit="yes"), TypeError,
     "refit must be True or False"),
    (lambda: GridSearchCV(fast_model(), {"n_factors": [2]}, verbose=-1), ValueError,
     "verbose must be >= 0"),
    (lambda: GridSearchCV(fast_model(), {"n_factors": [2]}, n_jobs=-3), ValueError,
     "n_jobs must be a positive int"),
    (lambda: RandomizedSearchCV(fast_model(), {"n_factors": [2]}, n_iter=0), ValueError,
     "n_iter must be >= 1"),
    (lambda: GridSearchCV(fast_model(), {"n_factors": [0]}, cv=2), ValueError,
     "n_factors must be >= 1"),
])
def test_search_argument_errors(synthetic, search, error, message):
    with pytest.raises(error, match=message):
        search().fit(synthetic)


def test_search_rejects_bad_ratings():
    with pytest.raises(TypeError, match="ratings must be a mfsgd.Ratings"):
        GridSearchCV(fast_model(), {"n_factors": [2]}).fit(np.zeros((3, 3)))


def test_module_is_exported():
    assert mfsgd.model_selection.KFold is KFold


# ---------------------------------------------------------------- MovieLens 100K
def test_movielens_predefined_folds_time_split_and_ranking(ml100k_dir):
    def read(name):
        table = np.loadtxt(ml100k_dir / name, dtype=np.int64)
        return mfsgd.Ratings.from_arrays(table[:, 0], table[:, 1], table[:, 2].astype(float),
                                         timestamps=table[:, 3])

    folds = PredefinedSplit([(read(f"u{i}.base"), read(f"u{i}.test")) for i in (1, 2)])
    model = fast_model(n_factors=8, n_epochs=10)
    result = cross_validate(model, None, cv=folds, n_jobs=2)
    assert ((result["test_rmse"] > 0.85) & (result["test_rmse"] < 1.1)).all()
    everything = read("u.data")
    train, test = train_test_split(everything, test_size=0.1, strategy="time")
    assert train.timestamps.max() <= test.timestamps.min()
    fitted = model.fit(train)
    popular = mfsgd.metrics.precision_at_k(fitted, test, k=10, threshold=4, exclude=train)
    assert 0.0 <= popular <= 1.0
    assert mfsgd.metrics.recall_at_k(fitted, test, k=10, threshold=4, exclude=train) >= 0.0


# The configuration the project's RandomizedSearchCV found on MovieLens 100K (README, "Tuned
# for MovieLens 100K"), rounded as printed there.
README_TUNED_ML100K = dict(n_factors=200, n_epochs=100, learning_rate=0.004, regularization=0.071,
                           bias_regularization=0.0078)


def test_readme_tuned_configuration_on_movielens_100k(ml100k_dir):
    table = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    data = mfsgd.Ratings.from_arrays(table[:, 0], table[:, 1], table[:, 2].astype(float),
                                     timestamps=table[:, 3])
    model = mfsgd.MatrixFactorization(**README_TUNED_ML100K, random_state=0)
    result = cross_validate(model, data, cv=KFold(5, shuffle=True, random_state=0), n_jobs=2)
    assert result["test_rmse"].mean() <= 0.905
