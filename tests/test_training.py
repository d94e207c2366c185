"""Training features: schedules, early stopping, partial_fit, fold_in, callbacks, progress."""
import builtins

import numpy as np
import pytest

from mfsgd import DivergenceError, MatrixFactorization, make_synthetic


@pytest.fixture(scope="module")
def data():
    users, items, ratings = make_synthetic(n_users=600, n_items=300, n_ratings=40_000,
                                           random_state=2)
    cut = 32_000
    return (users[:cut], items[:cut], ratings[:cut]), (users[cut:], items[cut:], ratings[cut:])


def model(**params):
    defaults = dict(n_factors=8, n_epochs=6, learning_rate=0.01, regularization=0.02,
                    random_state=0, n_threads=1)
    defaults.update(params)
    return MatrixFactorization(**defaults)


@pytest.mark.parametrize("schedule", ["inverse", "adagrad"])
def test_schedules_train(data, schedule):
    fitted = model(learning_rate_schedule=schedule, learning_rate=0.02).fit(data[0])
    rates = [r["learning_rate"] for r in fitted.history_]
    if schedule == "inverse":
        assert rates == pytest.approx([0.02 / (1 + 0.1 * t) for t in range(6)])
        assert fitted.score(data[1]) < 1.0
    else:
        assert (fitted._user_grad_sq > 1).any() and fitted.score(data[1]) < 1.0


def test_schedules_beat_constant_on_movielens_after_30_epochs(ml100k_u1):
    train, test = ml100k_u1
    scores = {}
    for name, params in {"constant": {}, "inverse": dict(learning_rate_schedule="inverse",
                                                         learning_rate=0.01,
                                                         learning_rate_decay=0.02),
                         "adagrad": dict(learning_rate_schedule="adagrad", learning_rate=0.02)}.items():
        fitted = MatrixFactorization(n_epochs=30, random_state=0, **params).fit(train)
        scores[name] = fitted.score(test)
    assert scores["inverse"] < scores["constant"] and scores["adagrad"] < scores["constant"], scores


def test_non_negative_factors(data):
    fitted = model(non_negative=True, init_std=0.1).fit(data[0])
    assert fitted.user_factors_.min() >= 0 and fitted.item_factors_.min() >= 0
    assert fitted.score(data[1]) < 1.2


def test_bias_regularization_shrinks_biases(data):
    loose = model(bias_regularization=0.0).fit(data[0])
    tight = model(bias_regularization=5.0).fit(data[0])
    assert np.abs(tight.item_bias_).mean() < 0.5 * np.abs(loose.item_bias_).mean()


def test_early_stopping_restores_best_epoch(data):
    train, test = data
    fitted = model(n_factors=32, n_epochs=80, learning_rate=0.03, regularization=0.0,
                   early_stopping=True, patience=3).fit(train, validation=test)
    history = fitted.history_
    assert len(history) < 80
    best = min(history, key=lambda r: r["valid_rmse"])
    assert fitted.best_epoch_ == best["epoch"] and best["best"]
    assert len(history) - fitted.best_epoch_ == 3
    assert fitted.score(test) == pytest.approx(best["valid_rmse"])


def test_early_stopping_holds_out_a_fraction(data):
    fitted = model(n_epochs=10, early_stopping=True, validation_fraction=0.2).fit(data[0])
    assert "valid_rmse" in fitted.history_[0]
    assert fitted._n_train == len(data[0][2]) - round(0.2 * len(data[0][2]))


@pytest.mark.parametrize("n_blocks", [1, 3])
def test_partial_fit_continues_a_fit_exactly(data, n_blocks):
    for schedule in ("constant", "inverse", "adagrad"):
        whole = model(n_epochs=7, n_blocks=n_blocks, learning_rate_schedule=schedule).fit(data[0])
        parts = model(n_epochs=4, n_blocks=n_blocks, learning_rate_schedule=schedule).fit(data[0])
        parts.partial_fit(data[0], n_epochs=2).partial_fit(data[0], n_epochs=1)
        assert np.array_equal(whole.user_factors_, parts.user_factors_)
        assert np.array_equal(whole.item_bias_, parts.item_bias_)
        assert [r["epoch"] for r in parts.history_] == list(range(1, 8))


def test_partial_fit_on_unfitted_model_fits(data):
    fitted = model().partial_fit(data[0], n_epochs=2)
    assert len(fitted.history_) == 2 and fitted.n_epochs == 6


def test_partial_fit_adds_new_users_and_items_without_resetting_others(data):
    (users, items, ratings), _ = data
    old = users < 500
    fitted = model().fit((users[old], items[old], ratings[old]))
    before = fitted.user_factors_.copy()
    n_items_before = fitted.n_items_
    fitted.partial_fit((users, items, ratings), n_epochs=0)
    assert fitted.n_users_ == int(users.max()) + 1 and fitted.n_items_ >= n_items_before
    assert np.array_equal(fitted.user_factors_[:500], before)
    assert np.abs(fitted.user_factors_[500:]).max() > 0
    score_before = fitted.score((users[old], items[old], ratings[old]))
    fitted.partial_fit((users, items, ratings), n_epochs=3)
    new = ~old
    assert fitted.score((users[new], items[new], ratings[new])) < 1.0
    assert fitted.score((users[old], items[old], ratings[old])) < score_before + 0.02


def test_partial_fit_divergence_keeps_previous_factors(data):
    fitted = model().fit(data[0])
    before = fitted.user_factors_.copy()
    fitted.set_params(learning_rate=100.0)
    with pytest.raises(DivergenceError):
        fitted.partial_fit(data[0], n_epochs=5)
    assert np.array_equal(fitted.user_factors_, before)


def test_fold_in_matches_a_model_trained_on_the_user():
    users, items, ratings = make_synthetic(n_users=800, n_items=400, n_ratings=80_000,
                                           random_state=5)
    rng = np.random.default_rng(0)
    counts = np.bincount(users)
    chosen = rng.choice(np.flatnonzero(counts >= 60), 20, replace=False)
    is_chosen = np.isin(users, chosen)
    held = is_chosen & (rng.random(len(users)) < 0.3)
    params = dict(n_factors=8, n_epochs=40, learning_rate=0.01, regularization=0.05,
                  random_state=0)
    trained = MatrixFactorization(**params).fit((users[~held], items[~held], ratings[~held]))
    without = MatrixFactorization(**params).fit((users[~is_chosen], items[~is_chosen],
                                                 ratings[~is_chosen]))
    folded_sq, trained_sq = [], []
    for user in chosen:
        known = (users == user) & ~held
        test = (users == user) & held
        factors, bias = without.fold_in((items[known], ratings[known]), user=int(user))
        assert factors.shape == (8,) and isinstance(bias, float)
        folded_sq.append((without.predict(np.full(test.sum(), user), items[test]) - ratings[test]) ** 2)
        trained_sq.append((trained.predict(users[test], items[test]) - ratings[test]) ** 2)
    folded = np.sqrt(np.mean(np.concatenate(folded_sq)))
    reference = np.sqrt(np.mean(np.concatenate(trained_sq)))
    assert folded <= reference * 1.10, (folded, reference)


def test_fold_in_errors(data):
    fitted = model().fit(data[0])
    with pytest.raises(TypeError, match="user_ratings"):
        fitted.fold_in([1, 2, 3])
    with pytest.raises(ValueError, match="no item known"):
        fitted.fold_in({10**6: 4.0})
    with pytest.raises(ValueError, match="finite"):
        fitted.fold_in(([1, 2], [4.0, np.nan]))


def test_callbacks_receive_records_and_can_stop(data):
    seen = []

    def stop_after_three(record, fitted):
        seen.append(record["epoch"])
        return record["epoch"] == 3

    fitted = model(n_epochs=10, callbacks=[stop_after_three]).fit(data[0])
    assert seen == [1, 2, 3] and len(fitted.history_) == 3
    with pytest.raises(TypeError, match="callbacks"):
        model(callbacks=[1]).fit(data[0])


def test_show_progress_without_tqdm_falls_back_to_lines(data, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    model(n_epochs=2, show_progress=True).fit(data[0])
    captured = capsys.readouterr()
    assert "needs tqdm" in captured.err and len(captured.out.strip().splitlines()) == 3


def test_show_progress_with_tqdm(data, capsys):
    pytest.importorskip("tqdm")
    model(n_epochs=2, show_progress=True).fit(data[0])
    assert "epoch" in capsys.readouterr().err


@pytest.mark.parametrize("params, match", [
    ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"patience": 0}, "patience"),
    ({"tol": -1.0}, "tol"),
    ({"early_stopping": "yes"}, "early_stopping"),
])
def test_bad_training_parameters(data, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        model(**params).fit(data[0])


def test_raw_ids_through_partial_fit_early_stopping_and_fold_in(data):
    """Tuples hold raw ids everywhere: new ids grow the model by one row each."""
    (users, items, ratings), _ = data
    names = np.array([f"u{u}" for u in users])
    fitted = model(early_stopping=True, patience=2).fit((names, items, ratings))
    assert fitted.user_ids_.dtype.kind == "U" and fitted.best_epoch_ >= 1
    n_users, n_items = fitted.n_users_, fitted.n_items_
    fitted.partial_fit((np.append(names, "newcomer"), np.append(items, 2**40),
                        np.append(ratings, 4.0)), n_epochs=1)
    assert (fitted.n_users_, fitted.n_items_) == (n_users + 1, n_items + 1)
    assert fitted.user_ids_[-1] == "newcomer" and fitted.item_ids_[-1] == 2**40
    fitted.fold_in({2**40: 5.0, int(items[0]): 3.0}, user="folded")
    assert fitted.n_users_ == n_users + 2 and fitted.recommend("folded", n=3)[0].size == 3
