"""Model files written before the fitted state moved into FitState (format 1) still load.

The files are generated here by a frozen copy of the writer as it was before that change
(mfsgd/persistence.py at commit dea982e: ``_model_arrays``, ``_storable_ids``,
``_params_for_json``, ``jsonable``, ``digest`` and ``np.savez``), fed with an object that has
the attributes the old model had (``_rng``, ``_epochs_done``, ``_user_map``, ...).  Nothing
binary is committed.  Do not change the writer below: it stands for files users already have.
"""
import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

import mfsgd
from mfsgd import MatrixFactorization, persistence
from mfsgd.data._idmap import IdMap


# ---------------------------------------------------------------- the frozen format-1 writer
def _legacy_jsonable(value):
    if isinstance(value, dict):
        return {key: _legacy_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_legacy_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _legacy_storable_ids(ids, what):
    ids = np.asarray(ids)
    if ids.dtype.kind == "O":
        if not all(isinstance(value, str) for value in ids):
            raise TypeError(f"cannot save {what}: an object array that does not hold only str")
        ids = ids.astype(str) if len(ids) else np.zeros(0, dtype="U1")
    if ids.dtype.kind not in "iuU":
        raise TypeError(f"cannot save {what} of dtype {ids.dtype}: only integer or str ids")
    return ids


def _legacy_params_for_json(params):
    out = {}
    for name, value in params.items():
        if name == "callbacks":
            value = None
        elif name == "dtype":
            value = np.dtype(value).name
        elif name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise TypeError(f"cannot save parameter {name}={value!r}: not a number, str or None")
        out[name] = value
    return out


def _legacy_model_arrays(model):
    arrays = {
        "format_version": np.array(1, dtype=np.int64),
        "library_version": np.array("0.1.0"),
        "params_json": np.array(json.dumps(_legacy_params_for_json(model.get_params()))),
        "history_json": np.array(json.dumps(_legacy_jsonable(model.history_))),
        "state_json": np.array(json.dumps({
            "epochs_done": int(model._epochs_done),
            "best_epoch": getattr(model, "best_epoch_", None),
            "rng_state": _legacy_jsonable(model._rng.bit_generator.state),
        })),
        "global_mean": np.array(model.global_mean_, dtype=np.float64),
        "rating_range": np.array(model.rating_range_, dtype=np.float64),
        "seen_indptr": np.asarray(model._seen_indptr, dtype=np.int64),
        "seen_indices": np.asarray(model._seen_indices, dtype=np.int32),
    }
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        arrays[name] = np.ascontiguousarray(getattr(model, name + "_"))
    for name in ("user_grad_sq", "item_grad_sq"):
        arrays[name] = np.ascontiguousarray(getattr(model, "_" + name))
    for kind, id_map in (("user", model._user_map), ("item", model._item_map)):
        arrays[f"{kind}_ids_identity"] = np.array(id_map.identity)
        arrays[f"{kind}_ids"] = (np.zeros(0, dtype=np.int64) if id_map.identity
                                 else _legacy_storable_ids(id_map.ids, f"{kind} ids"))
    titles = getattr(model, "item_titles_", None)
    if titles is not None:
        keys = list(titles.keys())
        arrays["item_titles_ids"] = _legacy_storable_ids(np.asarray(keys), "item_titles_ keys")
        arrays["item_titles"] = np.array([str(titles[key]) for key in keys], dtype=str)
    return arrays


def _legacy_digest(arrays):
    sha = hashlib.sha256()
    for name in sorted(arrays):
        if name == "sha256":
            continue
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def write_format_1(model, path):
    """Write `model` (with the old model's attributes) as the old ``save`` did."""
    arrays = _legacy_model_arrays(model)
    arrays["sha256"] = np.array(_legacy_digest(arrays))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


# ---------------------------------------------------------------- old-model objects
def old_model_of(model):
    """An object with the attributes the pre-FitState model had, holding `model`'s state."""
    state = model.fit_state_
    old = SimpleNamespace(
        get_params=model.get_params, history_=state.history, _epochs_done=state.epochs_done,
        _rng=state.rng, global_mean_=state.global_mean, rating_range_=state.rating_range,
        _seen_indptr=state.seen_indptr, _seen_indices=state.seen_indices,
        user_factors_=state.user_factors, item_factors_=state.item_factors,
        user_bias_=state.user_bias, item_bias_=state.item_bias,
        _user_grad_sq=state.user_grad_sq, _item_grad_sq=state.item_grad_sq,
        _user_map=state.user_map, _item_map=state.item_map,
        item_titles_=getattr(model, "item_titles_", None))
    if state.best_epoch is not None:
        old.best_epoch_ = state.best_epoch
    return old


def identity_map_model(seed=0, n_users=30, n_items=12, k=3):
    """An old model whose ids were row indices (identity maps, written by versions that gave
    index tuples one row per index), built by hand: new fits never make identity maps."""
    rng = np.random.default_rng(seed)
    params = MatrixFactorization(n_factors=k, n_epochs=2, random_state=seed).get_params()
    seen = rng.random((n_users, n_items)) < 0.3
    seen_indptr = np.concatenate([[0], np.cumsum(seen.sum(axis=1))]).astype(np.int64)
    return SimpleNamespace(
        get_params=lambda: params,
        history_=[{"epoch": 1, "learning_rate": 0.007, "train_rmse": 1.1, "objective": 9.5,
                   "seconds": 0.01},
                  {"epoch": 2, "learning_rate": 0.007, "train_rmse": 1.0, "objective": 8.5,
                   "seconds": 0.01}],
        _epochs_done=2, _rng=np.random.default_rng(seed + 1), global_mean_=3.5,
        rating_range_=(1.0, 5.0), _seen_indptr=seen_indptr,
        _seen_indices=np.nonzero(seen)[1].astype(np.int32),
        user_factors_=rng.normal(0, 0.5, (n_users, k)).astype(np.float32),
        item_factors_=rng.normal(0, 0.5, (n_items, k)).astype(np.float32),
        user_bias_=rng.normal(0, 0.3, n_users).astype(np.float32),
        item_bias_=rng.normal(0, 0.3, n_items).astype(np.float32),
        _user_grad_sq=np.zeros(0, np.float32), _item_grad_sq=np.zeros(0, np.float32),
        _user_map=IdMap(n=n_users), _item_map=IdMap(n=n_items), item_titles_=None)


@pytest.fixture(scope="module")
def fitted_models():
    users, items, values = mfsgd.make_synthetic(n_users=80, n_items=40, n_ratings=1500,
                                                random_state=7)
    strings = mfsgd.Ratings.from_arrays(np.char.add("u", users.astype(str)), items, values)
    plain = MatrixFactorization(n_factors=5, n_epochs=4, random_state=0).fit((users, items, values))
    adagrad = MatrixFactorization(n_factors=4, n_epochs=12, learning_rate_schedule="adagrad",
                                  early_stopping=True, patience=2, dtype=np.float64,
                                  learning_rate=0.05, random_state=1).fit(strings)
    adagrad.item_titles_ = {int(i): f"Film {i}" for i in adagrad.item_ids_[:5]}
    return {"plain": (plain, (users, items, values)),
            "strings-adagrad-early-stopping": (adagrad, strings.to_arrays())}


@pytest.mark.parametrize("name", ["plain", "strings-adagrad-early-stopping"])
def test_format_1_file_of_a_fitted_model_loads_and_predicts_as_the_old_model(
        fitted_models, name, tmp_path):
    model, (users, items, values) = fitted_models[name]
    path = tmp_path / "old.npz"
    write_format_1(old_model_of(model), path)
    loaded = MatrixFactorization.load(path)
    assert loaded.get_params() == {**model.get_params(), "callbacks": None}
    np.testing.assert_array_equal(loaded.predict(users[:300], items[:300]),
                                  model.predict(users[:300], items[:300]))
    for mine, theirs in zip(loaded.recommend_all(n=6), model.recommend_all(n=6)):
        np.testing.assert_array_equal(mine, theirs)
    user, item = model.user_ids_[3], model.item_ids_[2]
    for mine, theirs in zip(loaded.recommend(user, n=4), model.recommend(user, n=4)):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(loaded.similar_items(item, n=3)[0],
                                  model.similar_items(item, n=3)[0])
    assert loaded.history_ == model.history_
    assert getattr(loaded, "best_epoch_", None) == getattr(model, "best_epoch_", None)
    assert loaded.item_titles_ == model.item_titles_
    assert (loaded.fit_state_.rng.bit_generator.state
            == model.fit_state_.rng.bit_generator.state)
    loaded.partial_fit((users, items, values), n_epochs=1)
    assert len(loaded.history_) == len(model.history_) + 1


@pytest.mark.parametrize("name", ["plain", "strings-adagrad-early-stopping"])
def test_save_still_writes_format_1_exactly_as_before(fitted_models, name):
    model, _ = fitted_models[name]
    old = _legacy_model_arrays(old_model_of(model))
    new = persistence._model_arrays(model)
    assert sorted(new) == sorted(old)
    for member in old:
        assert new[member].dtype == old[member].dtype, member
        np.testing.assert_array_equal(new[member], old[member], err_msg=member)


def test_format_1_file_with_identity_maps_loads(tmp_path):
    old = identity_map_model()
    path = tmp_path / "identity.npz"
    write_format_1(old, path)
    loaded = MatrixFactorization.load(path)
    n_users, n_items = old.user_factors_.shape[0], old.item_factors_.shape[0]
    np.testing.assert_array_equal(loaded.user_ids_, np.arange(n_users))
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    users, items = users.ravel(), items.ravel()
    reference = (old.global_mean_ + old.user_bias_[users].astype(np.float64)
                 + old.item_bias_[items] + np.einsum(
                     "ij,ij->i", old.user_factors_[users].astype(np.float64),
                     old.item_factors_[items].astype(np.float64)))
    np.testing.assert_allclose(loaded.predict(users, items), np.clip(reference, 1.0, 5.0),
                               rtol=1e-6)
    scores = reference.reshape(n_users, n_items)
    for user in range(n_users):
        seen = old._seen_indices[old._seen_indptr[user]:old._seen_indptr[user + 1]]
        candidates = np.setdiff1d(np.arange(n_items), seen)
        expected = candidates[np.argsort(-scores[user, candidates], kind="stable")][:3]
        np.testing.assert_array_equal(loaded.recommend(user, n=3)[0], expected)
    assert loaded.fit_state_.rng.random() == old._rng.random()
    assert loaded.history_ == old.history_


def test_format_1_file_loads_as_matrix_factorization_anywhere_but_in_svdpp(fitted_models,
                                                                             tmp_path):
    """Format 2 names the model class; a format-1 file, which names none, is a
    MatrixFactorization for mfsgd.load too, and SVDpp.load refuses it by name."""
    model, (users, items, _) = next(iter(fitted_models.values()))
    path = tmp_path / "old.npz"
    write_format_1(old_model_of(model), path)
    loaded = mfsgd.load(path)
    assert type(loaded) is MatrixFactorization
    np.testing.assert_array_equal(loaded.predict(users[:50], items[:50]),
                                  model.predict(users[:50], items[:50]))
    with pytest.raises(ValueError, match="holds a MatrixFactorization, not a SVDpp"):
        mfsgd.SVDpp.load(path)
