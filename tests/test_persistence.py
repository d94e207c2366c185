"""save/load through one checked .npz file, and pickling."""
import json
import os
import pickle
import re
import subprocess
import sys
import time

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
    np.testing.assert_array_equal(loaded.fit_state_.user_grad_sq, model.fit_state_.user_grad_sq)
    np.testing.assert_array_equal(loaded.fit_state_.seen_indptr, model.fit_state_.seen_indptr)
    np.testing.assert_array_equal(loaded.fit_state_.seen_indices, model.fit_state_.seen_indices)
    assert loaded.fit_state_.rng.bit_generator.state == model.fit_state_.rng.bit_generator.state


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


def file_bytes(model, tmp_path_factory):
    """The bytes of `model` saved (fitted once per module, copied into each test's folder)."""
    path = tmp_path_factory.mktemp("saved") / "model.npz"
    model.save(path)
    return path.read_bytes()


def model_file(data, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def saved_bytes(ratings, tmp_path_factory):
    return file_bytes(fitted(ratings), tmp_path_factory)


@pytest.fixture
def saved(saved_bytes, tmp_path):
    return model_file(saved_bytes, tmp_path)


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
    (lambda a: a.update(item_factors=a["item_factors"][:-1]), "item_bias: has shape"),
    (lambda a: a.update(user_factors=a["user_factors"][:, :-1]), "k=4, item factors k=5"),
    (lambda a: a.update(user_bias=a["user_bias"].astype(np.float64)), "user_bias: has dtype"),
    (lambda a: a.update(seen_indices=a["seen_indices"] + 100), "outside"),
    (lambda a: a.update(user_factors=a["user_factors"].astype(np.int32)), "'user_factors' has dtype"),
    (lambda a: a.update(params_json=np.array(json.dumps({"n_factor": 3}))), "unknown parameters"),
])
def test_inconsistent_file_is_refused(saved, change, message):
    rewrite(saved, change, fix_digest=True)
    with pytest.raises(ValueError, match=message):
        MatrixFactorization.load(saved)


def edit_json(name, **changes):
    """A change for `rewrite`: set keys of the JSON object held in array `name`."""
    def change(arrays):
        value = json.loads(str(arrays[name]))
        value.update(changes)
        arrays[name] = np.array(json.dumps(value))
    return change


def set_item(name, index, value):
    """A change for `rewrite`: one element of array `name` set to `value`."""
    def change(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name][index] = value
    return change


@pytest.fixture(scope="module")
def saved_adagrad_bytes(ratings, tmp_path_factory):
    model = fitted(ratings, learning_rate_schedule="adagrad", early_stopping=True, n_epochs=4)
    model.item_titles_ = {1: "One", 2: "Two"}
    return file_bytes(model, tmp_path_factory)


@pytest.fixture
def saved_adagrad(saved_adagrad_bytes, tmp_path):
    """A model file with adagrad sums, a best epoch and item titles."""
    return model_file(saved_adagrad_bytes, tmp_path)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("change, message", [
    (edit_json("params_json", n_factors=7), "params_json: n_factors=7 but the factors have 5"),
    (set_item("user_factors", (3, 1), np.nan), "user_factors: holds nan"),
    (set_item("item_factors", (0, 0), -np.inf), "item_factors: holds -inf"),
    (set_item("user_bias", 2, np.inf), "user_bias: holds inf"),
    (lambda a: a.update(global_mean=np.array(np.inf)), "global_mean: must be finite, got inf"),
    (lambda a: a.update(rating_range=np.array([5.0, 1.0])), r"rating_range: .*in order, got \(5.0"),
    (lambda a: a.update(rating_range=np.array([1.0, np.nan])), "rating_range: must be"),
    (edit_json("state_json", epochs_done=-1), "state_json: epochs_done must be an integer >= 0"),
    (edit_json("state_json", epochs_done=2.5), "state_json: epochs_done must be an integer"),
    (lambda a: a.update(params_json=np.array(DEEP)), "params_json: nested deeper than"),
    (lambda a: a.update(history_json=np.array(DEEP)), "history_json: nested deeper than"),
    (lambda a: a.update(state_json=np.array(DEEP)), "state_json: nested deeper than"),
    (lambda a: a.update(history_json=np.array("[1, 2]")), "history_json: record 0 is not an object"),
    (lambda a: a.update(history_json=np.array('[{"epoch": 1}, {"epoch": 7}]')),
     "history_json: record 1 has epoch 7; epochs must increase from 1 up to epochs_done=3"),
    (lambda a: a.update(history_json=np.array('[{"epoch": 1, "train_rmse": "low"}]')),
     "history_json: record 0 has train_rmse='low', not a number"),
    (edit_json("state_json", best_epoch=4), r"state_json: best_epoch must be None or an epoch in \[1, 3\]"),
    (edit_json("state_json", best_epoch=0), "state_json: best_epoch must be None"),
    (edit_json("state_json", rng_state={"bit_generator": "PCG64", "state": {"state": -1, "inc": 1},
                                        "has_uint32": 0, "uinteger": 0}),
     r"state_json: rng_state.state.state must be an integer in \[0, 2\*\*128\), got -1"),
    (edit_json("state_json", rng_state={"bit_generator": "MT19937",
                                        "state": {"key": [1] * 624, "pos": 10**6}}),
     r"state_json: rng_state.state.pos must be an integer in \[0, 625\)"),
    (edit_json("state_json", extra=1), "state_json: must be an object with the keys"),
    (edit_json("params_json", random_state="seed"), "params_json: random_state must be None or an integer"),
    (lambda a: a.update(params_json=np.array("[]")), "params_json: must be an object"),
    (lambda a: a.update(user_ids_identity=np.array(True), user_ids=np.arange(120)),
     "user_ids: holds 120 ids of dtype int64 for an identity map"),
])
def test_nonsense_with_a_valid_digest_is_refused(saved, change, message):
    rewrite(saved, change, fix_digest=True)
    with pytest.raises(ValueError, match="model.npz: inconsistent mfsgd model file: " + message):
        MatrixFactorization.load(saved)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(history_json=np.array('{"epoch": 1}')), "history_json: must be a list"),
    (edit_json("state_json", rng_state={"bit_generator": "PCG64"}), "state_json: rng_state must be"),
    (edit_json("state_json", rng_state="PCG64"), "state_json: unsupported random generator state"),
    (edit_json("params_json", n_blocks=0), "params_json: n_blocks must be >= 1"),
    (edit_json("params_json", n_threads=-2), "params_json: n_threads must be None or an integer >= 1"),
    (edit_json("params_json", verbose=1), "params_json: verbose must be True or False"),
    (edit_json("params_json", callbacks="print"), "params_json: callbacks must be None"),
    (edit_json("params_json", dtype="float16"), "params_json: dtype must be 'float32' or 'float64'"),
    (edit_json("params_json", init_std=[1]), "params_json: init_std must be a number, str or None"),
    (lambda a: a.update(params_json=np.array("{")), "params_json: not valid JSON"),
])
def test_refusals_name_the_field(saved, change, message):
    rewrite(saved, change, fix_digest=True)
    with pytest.raises(ValueError, match="model.npz: inconsistent mfsgd model file: " + message):
        MatrixFactorization.load(saved)


@pytest.mark.parametrize("change, message", [
    (set_item("user_grad_sq", 4, 0.5), "user_grad_sq: holds 0.5; adagrad's squared-gradient sums are >= 1"),
    (set_item("item_grad_sq", 0, np.nan), "item_grad_sq: holds nan"),
    (lambda a: a.update(item_titles_ids=np.array([1, 1])), "item_titles_ids: holds repeated ids"),
    (edit_json("params_json", learning_rate_schedule="constant"), r"user_grad_sq: has shape \(120,\), expected \(0,\)"),
    (lambda a: a.update(item_titles=np.array(["One"])), r"item_titles: has shape \(1,\), expected \(2,\)"),
])
def test_nonsense_in_training_state_is_refused(saved_adagrad, change, message):
    rewrite(saved_adagrad, change, fix_digest=True)
    with pytest.raises(ValueError, match="model.npz: inconsistent mfsgd model file: " + message):
        MatrixFactorization.load(saved_adagrad)


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_every_bit_generator_round_trips(ratings, tmp_path, name):
    generator = np.random.Generator(getattr(np.random, name)(5))
    generator.random(3)
    model = fitted(ratings, n_epochs=1, random_state=generator)
    model.save(tmp_path / "model.npz")
    loaded = MatrixFactorization.load(tmp_path / "model.npz")
    assert loaded.fit_state_.rng.bit_generator.state["bit_generator"] == name
    assert loaded.fit_state_.rng.random() == model.fit_state_.rng.random()


def test_save_refuses_a_model_that_load_would_refuse(ratings, tmp_path):
    path = tmp_path / "model.npz"
    model = fitted(ratings).set_params(n_factors=8)  # changed after fitting with 5
    with pytest.raises(ValueError, match=f"cannot save this model to {path}: params_json: "
                                         "n_factors=8 but the factors have 5 columns"):
        model.save(path)
    model = fitted(ratings).set_params(dtype=np.float64)
    with pytest.raises(ValueError, match="user_factors: has dtype float32, the parameters say "
                                         "float64"):
        model.save(path)
    assert os.listdir(tmp_path) == []


def test_file_of_another_byte_order_loads(saved, ratings):
    model = MatrixFactorization.load(saved)
    rewrite(saved, lambda arrays: arrays.update(
        {name: array.astype(array.dtype.newbyteorder(">")) for name, array in arrays.items()
         if name != persistence.DIGEST_KEY}), fix_digest=True)
    swapped = MatrixFactorization.load(saved)
    assert swapped.user_factors_.dtype == np.float32 and swapped.user_factors_.dtype.isnative
    users, items, _ = ratings
    assert_same_model(swapped, model, users[:50], items[:50])


def test_compressed_file_loads(saved, ratings):
    model = MatrixFactorization.load(saved)
    with np.load(saved, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    np.savez_compressed(saved, **arrays)
    users, items, _ = ratings
    assert_same_model(MatrixFactorization.load(saved), model, users[:50], items[:50])


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


def test_non_model_files_get_no_advice_to_allow_pickle(saved, tmp_path):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"user_factors": [1.0]}))
    objects = tmp_path / "objects.npz"
    np.savez(objects, format_version=np.array(1), params_json=np.array([{}], dtype=object))
    rewrite(saved, lambda a: a.update(params_json=np.array([{"n_factors": 5}], dtype=object)),
            fix_digest=False)
    for path in (pickled, objects, saved):
        with pytest.raises(ValueError, match=path.name) as info:
            MatrixFactorization.load(path)
        assert "pickle" not in str(info.value), str(info.value)


def test_save_into_a_missing_folder_names_the_destination(ratings, tmp_path, monkeypatch):
    path = tmp_path / "no such folder" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        fitted(ratings).save(path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []

    def refused(directory, name, suffix, mode):
        raise PermissionError(13, "Permission denied", f"{directory}/.{name}.mfsgd-0.{suffix}")

    monkeypatch.setattr(persistence._tempfiles, "create", refused)
    with pytest.raises(PermissionError) as info:
        fitted(ratings).save(tmp_path / "model.npz")
    assert str(tmp_path / "model.npz") in str(info.value) and ".tmp" not in str(info.value)


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


# A save killed while writing: np.savez stalls after its first bytes, until the process is killed.
STALLED_SAVE = r"""
import sys, time
import mfsgd
from mfsgd import persistence
ratings = mfsgd.make_synthetic(n_users=20, n_items=10, n_ratings=100, random_state=0)
model = mfsgd.MatrixFactorization(n_factors=2, n_epochs=1, random_state=0, n_threads=1).fit(ratings)
def stalled(file, **arrays):
    file.write(b"PK\x03\x04 part of an archive")
    file.flush()
    print("writing", flush=True)
    time.sleep(600)
persistence.np.savez = stalled
model.save(sys.argv[1])
"""


def set_age(path, seconds):
    """Make `path` look last modified `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_temporary_file_of_a_killed_save_is_removed_by_the_next_save(ratings, tmp_path):
    model = fitted(ratings)
    writer = subprocess.Popen([sys.executable, "-c", STALLED_SAVE, str(tmp_path / "model.npz")],
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path.parent)
    try:
        assert writer.stdout.readline() == "writing\n"
        [temporary] = list(tmp_path.iterdir())
        assert re.fullmatch(r"\.model\.npz\.mfsgd-[0-9a-f]{12}\.tmp", temporary.name)
        set_age(temporary, 3600)
        model.save(tmp_path / "other.npz")
        assert temporary.exists()  # its writer is alive (it holds the lock): never removed
    finally:
        writer.kill()
        writer.wait()
    set_age(temporary, 10)
    model.save(tmp_path / "other.npz")
    assert temporary.exists()  # too recent to be sure: the creation-to-lock instant
    set_age(temporary, 3600)
    model.save(tmp_path / "other.npz")
    assert not temporary.exists()
    assert sorted(os.listdir(tmp_path)) == ["other.npz"]


def test_stale_temporary_files_of_earlier_versions_and_others(ratings, tmp_path):
    files = {  # name: (age in seconds, removed when model.npz is saved)
        ".model.npz.0123456789ab.tmp": (2 * 86400, True),     # an earlier save of model.npz
        ".model.npz.abcdefabcdef.tmp": (3600, False),         # earlier versions took no lock
        ".other.npz.0123456789ab.tmp": (2 * 86400, False),    # earlier ones: that name only
        ".x.npz.mfsgd-0123456789ab.tmp": (3600, True),        # unlocked: its writer is gone
        ".ml-1m.zip.mfsgd-0123456789ab.part": (3600, True),
        ".notes.0123456789ab.swp": (2 * 86400, False),        # not ours
        "model.npz.0123456789ab.tmp": (2 * 86400, False),
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"partial")
        set_age(tmp_path / name, age)
    fitted(ratings).save(tmp_path / "model.npz")
    kept = sorted(name for name, (_, removed) in files.items() if not removed)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["model.npz"])


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
