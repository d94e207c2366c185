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
        assert (fitted.fit_state_.user_grad_sq > 1).any() and fitted.score(data[1]) < 1.0


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
    assert fitted.fit_state_.n_train == len(data[0][2]) - round(0.2 * len(data[0][2]))


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


def test_draw_epoch_on_a_copy_of_the_generator_is_the_next_epochs_schedule_and_seed(data):
    """What a backend that starts the next epoch early draws (from a copy of the generator,
    after an epoch's end) is what the loop then runs."""
    import copy

    from mfsgd.training.loop import draw_epoch

    drawn, used = [], []

    def record_draws(record, fitted):
        state = fitted.fit_state_
        used.append((state.layout.schedule.copy(), state.rng.bit_generator.state))
        rng = copy.deepcopy(state.rng)
        drawn.append((draw_epoch(state.layout.n_blocks, rng), rng.bit_generator.state))

    fitted = model(n_epochs=4, n_blocks=3, callbacks=record_draws).fit(data[0])
    assert len(used) == 4
    for ((blocks, seed), rng_after), (schedule, rng_at_next_end) in zip(drawn[:-1], used[1:]):
        assert np.array_equal(blocks, schedule)
        assert isinstance(seed, int) and 0 <= seed < 2**63
        assert rng_after == rng_at_next_end      # the loop drew exactly these, nothing else
    assert fitted.fit_state_.partial_epoch is None


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


# ---------------------------------------------------------------- Ctrl-C and concurrent fits
def history_without_seconds(fitted):
    return [{key: value for key, value in record.items() if key != "seconds"}
            for record in fitted.history_]


def assert_same_model(a, b):
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert history_without_seconds(a) == history_without_seconds(b)


def interrupt_on_kernel_calls(monkeypatch, calls):
    """Deliver a real SIGINT to this process during the given (1-based) kernel calls, with one
    sub-epoch per call."""
    import signal
    from mfsgd._kernels import _sgd
    from mfsgd.training import loop
    monkeypatch.setattr(loop, "CHECK_SECONDS", 0.0)
    count, real_kernel = [0], _sgd.sgd_epoch

    def kernel(*args, **kwargs):
        count[0] += 1
        if count[0] in calls:
            signal.raise_signal(signal.SIGINT)     # lands while the kernel call runs
        return real_kernel(*args, **kwargs)

    monkeypatch.setattr(_sgd, "sgd_epoch", kernel)
    return count


@pytest.mark.parametrize("params", [
    {"n_blocks": 4},
    {"n_blocks": 4, "learning_rate_schedule": "adagrad", "dtype": np.float64},
    {"n_blocks": 2, "learning_rate_schedule": "inverse", "n_factors": 5, "n_threads": 2},
    {"n_blocks": 3, "non_negative": True, "biased": False},
], ids=["constant", "adagrad-float64", "inverse-padded", "non_negative"])
def test_interrupted_fit_keeps_a_consistent_model_that_continues_exactly(data, monkeypatch,
                                                                         params):
    """Ctrl-C inside an epoch must not keep that epoch's factors without its history_ entry
    (partial_fit would no longer be exact).  SIGINT lands between sub-epochs; the model
    keeps its complete epochs (history_) and the finished sub-epochs, and partial_fit completes
    the epoch first: fit(10) = fit(10) interrupted twice + partial_fit to 10 epochs."""
    import signal
    train, valid = data
    whole = model(n_epochs=10, **params).fit(train, validation=valid)
    blocks = params["n_blocks"]
    calls = interrupt_on_kernel_calls(monkeypatch, {blocks * 2 + 1, blocks * 5 + 1})
    fitted = model(n_epochs=10, **params)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(train, validation=valid)
    assert calls[0] == blocks * 2 + 1                          # stopped at once, mid-epoch 3
    assert [r["epoch"] for r in fitted.history_] == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert np.isfinite(fitted.predict(train[0][:50], train[1][:50])).all()
    with pytest.raises(KeyboardInterrupt):                     # interrupted again, epoch 6
        fitted.partial_fit(train, n_epochs=8, validation=valid)
    assert [r["epoch"] for r in fitted.history_] == [1, 2, 3, 4, 5]
    fitted.partial_fit(train, n_epochs=5, validation=valid)
    assert_same_model(fitted, whole)


@pytest.mark.parametrize("n_blocks", [3, 8])
def test_sub_epochs_per_kernel_call_do_not_change_the_model(data, monkeypatch, n_blocks):
    """The kernel runs consecutive sub-epochs in one call or in several (between which Ctrl-C
    is checked) with the same result."""
    from mfsgd.training import loop
    fits = []
    for check_seconds in (0.0, 1e-6, 1e9):
        monkeypatch.setattr(loop, "CHECK_SECONDS", check_seconds)
        fits.append(model(n_epochs=3, n_blocks=n_blocks, learning_rate_schedule="adagrad")
                    .fit(data[0], validation=data[1]))
    for other in fits[1:]:
        assert_same_model(other, fits[0])


def test_interrupted_fit_pickles_saves_and_partial_fit_zero_epochs_keeps_the_partial_epoch(
        data, monkeypatch, tmp_path):
    import pickle
    whole = model(n_epochs=4, n_blocks=2).fit(data[0])
    interrupt_on_kernel_calls(monkeypatch, {5})
    fitted = model(n_epochs=4, n_blocks=2)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(data[0])
    fitted.partial_fit(data[0], n_epochs=0)
    fitted.save(tmp_path / "interrupted.npz")            # saved as it is, without the partial
    loaded = MatrixFactorization.load(tmp_path / "interrupted.npz")
    assert np.array_equal(loaded.user_factors_, fitted.user_factors_)
    assert history_without_seconds(loaded) == history_without_seconds(fitted)
    assert len(loaded.partial_fit(data[0], n_epochs=1).history_) == 3
    copy = pickle.loads(pickle.dumps(fitted))
    for continued in (fitted, copy):
        continued.partial_fit(data[0], n_epochs=2)
        assert_same_model(continued, whole)


def test_interrupted_epoch_ends_on_its_own_data_before_new_data_is_adopted(data, monkeypatch):
    (users, items, ratings), _ = data
    old = users < 500
    first = (users[old], items[old], ratings[old])
    reference = model(n_epochs=3, n_blocks=2).fit(first)
    reference.partial_fit((users, items, ratings), n_epochs=2)
    interrupt_on_kernel_calls(monkeypatch, {5})
    fitted = model(n_epochs=3, n_blocks=2)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(first)
    fitted.partial_fit((users, items, ratings), n_epochs=3)
    assert_same_model(fitted, reference)


def test_interrupt_before_the_first_epoch_leaves_the_model_unfitted(data, monkeypatch):
    from mfsgd.training import setup

    def interrupted_layout(*args, **kwargs):
        raise KeyboardInterrupt

    fitted = model().fit(data[0])
    monkeypatch.setattr(setup, "build_layout", interrupted_layout)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(data[0])
    assert not hasattr(fitted, "user_factors_") and not hasattr(fitted, "history_")


@pytest.mark.slow
def test_sigint_from_another_thread_lands_within_a_second():
    """A real SIGINT from a timer thread during a fit that would run for hours."""
    import os
    import signal
    import threading
    import time
    rng = np.random.default_rng(4)
    keys = np.unique(rng.integers(0, 20_000 * 3_000, size=1_000_000))
    train = (keys // 3_000, keys % 3_000, rng.integers(1, 6, size=len(keys)).astype(np.float32))
    params = dict(n_factors=32, n_blocks=8, n_threads=1, random_state=0)
    sent = []

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    # The timer starts once the first epoch has ended, so that the signal lands in training
    # even when a loaded machine makes the conversion and layout take longer than the delay.
    timer = threading.Timer(0.5, send)

    def start_timer(record, model):
        if timer.ident is None:  # not started yet
            timer.start()

    fitted = MatrixFactorization(n_epochs=100_000, callbacks=[start_timer], **params)
    try:
        with pytest.raises(KeyboardInterrupt):
            fitted.fit(train)
        landed = time.perf_counter()
    finally:
        timer.cancel()
    assert sent and landed - sent[0] < 1.0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    done = len(fitted.history_)
    assert [r["epoch"] for r in fitted.history_] == list(range(1, done + 1))
    fitted.partial_fit(train, n_epochs=2)
    assert_same_model(fitted, MatrixFactorization(n_epochs=done + 2, **params).fit(train))


def test_a_second_concurrent_fit_of_one_model_is_refused(data):
    """Two threads fitting one object must not interleave silently (6 epochs would give 12
    history entries): the second caller gets a RuntimeError naming the estimator."""
    import threading
    inside, release = threading.Event(), threading.Event()
    errors = []

    def hold(record, fitted):
        inside.set()
        release.wait(60)

    shared = model(n_epochs=3, callbacks=[hold])
    worker = threading.Thread(target=lambda: shared.fit(data[0]))
    worker.start()
    try:
        assert inside.wait(60)
        for call in (lambda: shared.fit(data[0]), lambda: shared.partial_fit(data[0])):
            try:
                call()
            except RuntimeError as error:
                errors.append(str(error))
        model(n_epochs=1).fit(data[0])           # other objects train meanwhile
    finally:
        release.set()
        worker.join(60)
    assert len(errors) == 2 and all("MatrixFactorization" in e and "is already training" in e
                                    for e in errors), errors
    assert [r["epoch"] for r in shared.history_] == [1, 2, 3]
    shared.set_params(callbacks=None).partial_fit(data[0])   # free again afterwards
    assert len(shared.history_) == 4


def test_fit_from_its_own_callback_is_refused(data):
    def refit(record, fitted):
        fitted.fit(data[0])

    with pytest.raises(RuntimeError, match="MatrixFactorization object is already training"):
        model(n_epochs=2, callbacks=[refit]).fit(data[0])


def test_partial_fit_divergence_restores_history_and_random_state(data):
    """A diverging partial_fit leaves no trace: retrying with a good learning rate gives what
    the same partial_fit would have given without the failed call."""
    expected = model(n_epochs=3).fit(data[0]).partial_fit(data[0], n_epochs=3)
    fitted = model(n_epochs=3).fit(data[0])
    fitted.set_params(learning_rate=100.0)
    with pytest.raises(DivergenceError):
        fitted.partial_fit(data[0], n_epochs=5)
    assert len(fitted.history_) == 3
    fitted.set_params(learning_rate=0.01).partial_fit(data[0], n_epochs=3)
    assert_same_model(fitted, expected)


def test_verbose_table_and_progress_bar_together_do_not_garble(data, monkeypatch):
    """With verbose and show_progress both on, the table lines go above the bar."""
    pytest.importorskip("tqdm")
    import io
    import re
    import sys
    screen = io.StringIO()                        # stdout and stderr on one terminal
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    model(n_epochs=3, verbose=True, show_progress=True).fit(data[0], validation=data[1])
    parts = [part for part in re.split(r"[\r\n]", screen.getvalue()) if part.strip()]
    # tqdm pads a frame with spaces when it is shorter than the one it overwrites.
    frame = re.compile(r"mfsgd: +\d+%\|[^|]*\| \d+/3 \[[^\]]*\] *")
    row = re.compile(r" +\d+ +[\d.]+ +[\d.]+ +[\d.e+]+ +[\d.]+")
    assert parts[0].startswith("epoch  train_rmse  valid_rmse")
    for part in parts[1:]:
        assert frame.fullmatch(part) or row.fullmatch(part), part
    assert sum(bool(row.fullmatch(part)) for part in parts) == 3


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
