"""save/load through one checked .npz file, and pickling."""
import json
import os
import pickle

import numpy as np
import pytest

import mfsgd
from mfsgd import MatrixFactorization, NotFittedError, make_synthetic, persistence


@pytest.fixture(scope="module")
def ratings():
    return make_synthetic(n_users=120, n_items=60, n_ratings=2500, random_state=2)


def fitted(train, **params):
    defaults = dict(n_factors=5, n_epochs=3, random_state=0, n_threads=2)
    defaults.update(params)
    return MatrixFactorization(**defaults).fit(train)


def assert_same_model(loaded, model, some_users, some_items):
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        got, want = getattr(loaded, name), getattr(model, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert loaded.global_mean_ == model.global_mean_
    assert loaded.rating_range_ == model.rating_range_
    assert loaded.get_params() == model.get_params()
    assert loaded.history_ == model.history_
    np.testing.assert_array_equal(loaded.user_ids_, model.user_ids_)
    np.testing.assert_array_equal(loaded.item_ids_, model.item_ids_)
    np.testing.assert_array_equal(loaded.predict(some_users, some_items),
                                  model.predict(some_users, some_items))
    for user in some_users[:5]:
        for got, want in zip(loaded.recommend(user, n=6), model.recommend(user, n=6)):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(loaded.recommend_all(n=4), model.recommend_all(n=4)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_with_integer_ids(ratings, tmp_path, dtype):
    users, items, _ = ratings
    model = fitted(ratings, dtype=dtype)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = MatrixFactorization.load(path)
    assert_same_model(loaded, model, users[:50], items[:50])
    assert loaded.item_titles_ is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_with_string_ids(string_id_ratings, tmp_path, dtype):
    (user_names, item_names, _), string_ratings = string_id_ratings
    model = fitted(string_ratings, dtype=dtype)
    model.save(str(tmp_path / "model.npz"))
    with np.load(tmp_path / "model.npz", allow_pickle=False) as stored:
        assert stored["user_ids"].dtype.kind == "U" and stored["item_ids"].dtype.kind == "U"
    loaded = MatrixFactorization.load(str(tmp_path / "model.npz"))
    assert loaded.item_ids_.dtype.kind == "U"
    assert_same_model(loaded, model, user_names[:50], item_names[:50])


def test_round_trip_with_mfsgd_ratings(string_id_ratings, tmp_path):
    (user_names, item_names, values), _ = string_id_ratings
    model = fitted(mfsgd.Ratings.from_arrays(user_names, item_names, values))
    model.save(tmp_path / "model.npz")
    loaded = MatrixFactorization.load(tmp_path / "model.npz")
    assert_same_model(loaded, model, user_names[:50], item_names[:50])


def test_round_trip_keeps_training_state(ratings, tmp_path):
    model = fitted(ratings, learning_rate_schedule="adagrad", early_stopping=True, n_epochs=6,
                   patience=2, biased=False, dtype=np.float64)
    model.item_titles_ = {i: f"Title {i}" for i in range(0, 60, 7)}
    model.save(tmp_path / "model.npz")
    loaded = MatrixFactorization.load(tmp_path / "model.npz")
    assert loaded.best_epoch_ == model.best_epoch_
    assert loaded.item_titles_ == model.item_titles_
    np.testing.assert_array_equal(loaded._user_grad_sq, model._user_grad_sq)
    np.testing.assert_array_equal(loaded._seen_indptr, model._seen_indptr)
    np.testing.assert_array_equal(loaded._seen_indices, model._seen_indices)
    assert loaded._rng.bit_generator.state == model._rng.bit_generator.state


def test_loaded_model_continues_training(ratings, tmp_path):
    model = fitted(ratings)
    model.save(tmp_path / "model.npz")
    first = MatrixFactorization.load(tmp_path / "model.npz").partial_fit(ratings, n_epochs=2)
    second = MatrixFactorization.load(tmp_path / "model.npz").partial_fit(ratings, n_epochs=2)
    assert [r["epoch"] for r in first.history_] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(first.user_factors_, second.user_factors_)
    assert first.score(ratings) < model.score(ratings)


def test_callbacks_are_not_saved(ratings, tmp_path):
    model = fitted(ratings, callbacks=lambda record, model: False)
    model.save(tmp_path / "model.npz")
    assert MatrixFactorization.load(tmp_path / "model.npz").callbacks is None


def test_path_is_used_as_given(ratings, tmp_path):
    model = fitted(ratings)
    model.save(tmp_path / "model.bin")
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    assert MatrixFactorization.load(tmp_path / "model.bin").n_items_ == model.n_items_
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        model.save(3)


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        MatrixFactorization().save(tmp_path / "model.npz")


def rewrite(path, change, fix_digest):
    """Re-save the arrays of `path` after change(arrays), keeping or fixing the digest."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change(arrays)
    if fix_digest:
        arrays[persistence.DIGEST_KEY] = np.array(persistence.digest(arrays))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


@pytest.fixture
def saved(ratings, tmp_path):
    path = tmp_path / "model.npz"
    fitted(ratings).save(path)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.95, 0.999])
def test_truncated_file_is_refused(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="model.npz"):
        MatrixFactorization.load(saved)


def test_damaged_byte_is_refused(saved):
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.npz"):
        MatrixFactorization.load(saved)


def test_edited_array_is_refused(saved):
    def change(arrays):
        arrays["item_factors"] = arrays["item_factors"].copy()
        arrays["item_factors"][3, 1] += 0.25

    rewrite(saved, change, fix_digest=False)
    with pytest.raises(ValueError, match=r"model\.npz: the sha256 digest does not match"):
        MatrixFactorization.load(saved)


def test_removed_array_is_refused(saved):
    rewrite(saved, lambda arrays: arrays.pop("item_bias"), fix_digest=True)
    with pytest.raises(ValueError, match="missing array 'item_bias'"):
        MatrixFactorization.load(saved)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(item_factors=a["item_factors"][:-1]), "item_bias has shape"),
    (lambda a: a.update(user_factors=a["user_factors"][:, :-1]), "k=4, item factors k=5"),
    (lambda a: a.update(user_bias=a["user_bias"].astype(np.float64)), "user_bias has dtype"),
    (lambda a: a.update(seen_indices=a["seen_indices"] + 100), "outside"),
    (lambda a: a.update(user_factors=a["user_factors"].astype(np.int32)), "'user_factors' has dtype"),
    (lambda a: a.update(params_json=np.array(json.dumps({"n_factor": 3}))), "unknown parameters"),
])
def test_inconsistent_file_is_refused(saved, change, message):
    rewrite(saved, change, fix_digest=True)
    with pytest.raises(ValueError, match=message):
        MatrixFactorization.load(saved)


@pytest.mark.parametrize("fix_digest", [True, False])
def test_future_format_is_refused_with_a_clear_message(saved, fix_digest):
    def change(arrays):
        arrays["format_version"] = np.array(persistence.FORMAT_VERSION + 1, dtype=np.int64)
        arrays["library_version"] = np.array("9.0.0")

    rewrite(saved, change, fix_digest)
    expected = (f"written by mfsgd 9.0.0 with format {persistence.FORMAT_VERSION + 1}; this "
                f"mfsgd \\({mfsgd.__version__}\\) reads format ≤ {persistence.FORMAT_VERSION}; "
                "upgrade")
    with pytest.raises(ValueError, match=expected):
        MatrixFactorization.load(saved)


def test_garbage_and_other_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a model\n" * 10)
    with pytest.raises(ValueError, match="garbage.npz: not a readable mfsgd model file"):
        MatrixFactorization.load(garbage)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    with pytest.raises(ValueError, match="single.npy: .*not an .npz archive"):
        MatrixFactorization.load(single)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="other.npz: not an mfsgd model file"):
        MatrixFactorization.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format_version=np.array(1), objects=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        MatrixFactorization.load(pickled)
    with pytest.raises(FileNotFoundError):
        MatrixFactorization.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("failing", ["fsync", "savez"])
def test_failed_save_leaves_the_previous_file_and_no_temporary(ratings, tmp_path, monkeypatch,
                                                               failing):
    path = tmp_path / "model.npz"
    old = fitted(ratings, random_state=1)
    old.save(path)
    before = path.read_bytes()

    def fail_after_writing(file, **arrays):
        file.write(b"PK\x03\x04 part of an archive")
        raise OSError("disk full")

    if failing == "fsync":
        monkeypatch.setattr(persistence.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("io")))
    else:
        monkeypatch.setattr(persistence.np, "savez", fail_after_writing)
    with pytest.raises(OSError):
        fitted(ratings, random_state=2).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before
    np.testing.assert_array_equal(MatrixFactorization.load(path).item_factors_, old.item_factors_)


def test_pickle_round_trips_fitted_and_unfitted_models(ratings):
    users, items, _ = ratings
    for dtype in (np.float32, np.float64):
        model = fitted(ratings, dtype=dtype)
        copy = pickle.loads(pickle.dumps(model))
        assert_same_model(copy, model, users[:50], items[:50])
        # The copy carries the training layout and generator: it continues exactly.
        np.testing.assert_array_equal(copy.partial_fit(ratings).item_factors_,
                                      model.partial_fit(ratings).item_factors_)
    unfitted = MatrixFactorization(n_factors=7, dtype=np.float64, random_state=3)
    copy = pickle.loads(pickle.dumps(unfitted))
    assert copy.get_params() == unfitted.get_params() and not hasattr(copy, "user_factors_")


def test_pickle_round_trips_string_ids(string_id_ratings):
    (user_names, item_names, _), string_ratings = string_id_ratings
    model = fitted(string_ratings)
    copy = pickle.loads(pickle.dumps(model))
    assert_same_model(copy, model, user_names[:50], item_names[:50])
