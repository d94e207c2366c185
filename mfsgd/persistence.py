"""Save a fitted model to one .npz file and load it back: checked, versioned, written atomically.

The file is a plain ``np.savez`` archive of numeric and unicode arrays, readable with
``np.load(path, allow_pickle=False)``:

- ``format_version`` (int64) and ``library_version`` (str): the file format and the mfsgd
  that wrote it;
- ``params_json``, ``history_json``, ``state_json`` (str): hyperparameters (``get_params``),
  ``history_``, and the training counters (epochs done, best epoch, random generator state);
- ``user_factors``, ``item_factors``, ``user_bias``, ``item_bias``, ``user_grad_sq``,
  ``item_grad_sq`` (float32 or float64), ``global_mean`` and ``rating_range`` (float64);
- ``user_ids``, ``item_ids`` (integer or unicode) with ``user_ids_identity`` /
  ``item_ids_identity`` (bool): identity maps (ids are row indices) store no ids;
- ``seen_indptr`` (int64), ``seen_indices`` (int32): the items each user rated in training;
- ``item_titles_ids``, ``item_titles`` (optional): ``item_titles_`` as two arrays;
- ``sha256`` (str): SHA-256 over every other array's name, dtype, shape and bytes.
"""
import hashlib
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from ._idmap import IdMap
from ._layout import aligned_empty
from ._seen import check_seen
from ._version import __version__

FORMAT_VERSION = 1
DIGEST_KEY = "sha256"
RNG_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")

# name: (allowed dtype kinds, number of dimensions)
SCHEMA = {
    "format_version": ("i", 0),
    "library_version": ("U", 0),
    "params_json": ("U", 0),
    "history_json": ("U", 0),
    "state_json": ("U", 0),
    "user_factors": ("f", 2),
    "item_factors": ("f", 2),
    "user_bias": ("f", 1),
    "item_bias": ("f", 1),
    "user_grad_sq": ("f", 1),
    "item_grad_sq": ("f", 1),
    "global_mean": ("f", 0),
    "rating_range": ("f", 1),
    "user_ids": ("iuU", 1),
    "item_ids": ("iuU", 1),
    "user_ids_identity": ("b", 0),
    "item_ids_identity": ("b", 0),
    "seen_indptr": ("i", 1),
    "seen_indices": ("i", 1),
    DIGEST_KEY: ("U", 0),
}
OPTIONAL = {"item_titles_ids": ("iuU", 1), "item_titles": ("U", 1)}
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
               NotImplementedError, UnicodeDecodeError)


def save(model, path):
    """Write a fitted model to `path` as one .npz file, atomically.

    The file is written to a temporary file in the same directory, flushed to disk and then
    renamed over `path`, so `path` holds either the previous file or the complete new one.
    `path` is used as given: no ".npz" is appended.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    path : str or os.PathLike

    Notes
    -----
    ``callbacks`` are not saved (the loaded model has ``callbacks=None``), nor is a
    ``random_state`` that is a numpy Generator (saved as None); the state of the model's
    own random generator is saved, so ``partial_fit`` after loading is reproducible.
    """
    model._check_fitted()
    path = _checked_path(path)
    arrays = _model_arrays(model)
    arrays[DIGEST_KEY] = np.array(digest(arrays))
    _write_atomically(path, arrays)


def load(path, cls):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
    cls : type
        The estimator class to build (``MatrixFactorization``).

    Returns
    -------
    model : cls
        A fitted model equal, array for array, to the saved one.  It predicts and recommends
        at once.  ``partial_fit`` works: it rebuilds the training layout (not stored) from
        the data it is given with the saved random generator, so continuing is reproducible
        but not bit-identical to continuing the model before it was saved (a pickled model
        carries its layout and continues exactly).

    Raises
    ------
    ValueError
        When the file is not an mfsgd model file, is truncated or was altered (its digest
        does not match), is inconsistent, or was written in a newer format.
    """
    path = _checked_path(path)
    arrays = _read_arrays(path)
    _check_format_version(arrays, path)
    _check_digest(arrays, path)
    _check_schema(arrays, path)
    try:
        return _model_from_arrays(arrays, cls, path)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: inconsistent mfsgd model file: {error}") from error


def digest(arrays):
    """SHA-256 over the name, dtype, shape and bytes of every array except the digest itself.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The arrays of a model file, with or without its ``sha256`` entry.

    Returns
    -------
    str
        The hex digest; arrays are taken in sorted name order.
    """
    sha = hashlib.sha256()
    for name in sorted(arrays):
        if name == DIGEST_KEY:
            continue
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _model_arrays(model):
    """The arrays :func:`save` writes for a fitted model (without the digest)."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "library_version": np.array(__version__),
        "params_json": np.array(json.dumps(_params_for_json(model.get_params()))),
        "history_json": np.array(json.dumps(_jsonable(model.history_))),
        "state_json": np.array(json.dumps({
            "epochs_done": int(model._epochs_done),
            "best_epoch": getattr(model, "best_epoch_", None),
            "rng_state": _jsonable(model._rng.bit_generator.state),
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
                                 else _storable_ids(id_map.ids, f"{kind} ids"))
    titles = getattr(model, "item_titles_", None)
    if titles is not None:
        keys = list(titles.keys())
        arrays["item_titles_ids"] = _storable_ids(np.asarray(keys), "item_titles_ keys")
        arrays["item_titles"] = np.array([str(titles[key]) for key in keys], dtype=str)
    return arrays


def _storable_ids(ids, what):
    """`ids` as an integer or unicode array (object arrays of str become unicode)."""
    ids = np.asarray(ids)
    if ids.dtype.kind == "O":
        if not all(isinstance(value, str) for value in ids):
            raise TypeError(f"cannot save {what}: an object array that does not hold only str")
        ids = ids.astype(str) if len(ids) else np.zeros(0, dtype="U1")
    if ids.dtype.kind not in "iuU":
        raise TypeError(f"cannot save {what} of dtype {ids.dtype}: only integer or str ids")
    return ids


# ---------------------------------------------------------------------- writing
def _checked_path(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None


def _write_atomically(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(
        directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide the final permissions, as open() would.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable; not every system can open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _params_for_json(params):
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


def _jsonable(value):
    """`value` with numpy arrays and scalars turned into lists and Python scalars."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------- reading
def _read_arrays(path):
    with open(path, "rb") as file:
        try:
            loaded = np.load(file, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        except READ_ERRORS as error:
            raise ValueError(f"{path}: not a readable mfsgd model file ({error})") from error


def _check_format_version(arrays, path):
    if "format_version" not in arrays:
        raise ValueError(f"{path}: not an mfsgd model file (no format_version)")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind != "i":
        raise ValueError(f"{path}: format_version must be an integer scalar")
    version = int(version)
    if version > FORMAT_VERSION:
        written_by = str(arrays.get("library_version", "an unknown version"))
        raise ValueError(
            f"{path}: written by mfsgd {written_by} with format {version}; this mfsgd "
            f"({__version__}) reads format ≤ {FORMAT_VERSION}; upgrade mfsgd to load it")
    if version < 1:
        raise ValueError(f"{path}: invalid format_version {version}")


def _check_digest(arrays, path):
    stored = arrays.get(DIGEST_KEY)
    if stored is None or stored.shape != () or stored.dtype.kind != "U":
        raise ValueError(f"{path}: no {DIGEST_KEY} digest; not a file written by mfsgd")
    if str(stored) != digest(arrays):
        raise ValueError(f"{path}: the {DIGEST_KEY} digest does not match the contents; the "
                         "file was altered or damaged")


def _check_schema(arrays, path):
    for name, (kinds, ndim) in SCHEMA.items():
        if name not in arrays:
            raise ValueError(f"{path}: missing array {name!r}")
    for name, array in arrays.items():
        spec = SCHEMA.get(name) or OPTIONAL.get(name)
        if spec is None:
            raise ValueError(f"{path}: unexpected array {name!r}")
        kinds, ndim = spec
        if array.dtype.kind not in kinds or array.ndim != ndim:
            raise ValueError(f"{path}: array {name!r} has dtype {array.dtype} and {array.ndim} "
                             f"dimensions; expected kind {kinds!r} and {ndim} dimensions")
    if ("item_titles_ids" in arrays) != ("item_titles" in arrays):
        raise ValueError(f"{path}: item_titles_ids and item_titles must come together")


def _model_from_arrays(arrays, cls, path):
    params = json.loads(str(arrays["params_json"]))
    unknown = set(params) - set(cls._param_names())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    if isinstance(params.get("dtype"), str):
        params["dtype"] = np.dtype(params["dtype"]).type
    model = cls(**params)
    checked = model._checked_params()
    factors = {name: arrays[name] for name in
               ("user_factors", "item_factors", "user_bias", "item_bias", "user_grad_sq",
                "item_grad_sq")}
    dtype = np.dtype(checked["dtype"])
    for name, array in factors.items():
        if array.dtype != dtype:
            raise ValueError(f"{name} has dtype {array.dtype}, the parameters say {dtype}")
    n_users, k = factors["user_factors"].shape
    n_items, item_k = factors["item_factors"].shape
    if k != item_k or k < 1:
        raise ValueError(f"user factors have k={k}, item factors k={item_k}")
    _check_length(factors["user_bias"], n_users, "user_bias")
    _check_length(factors["item_bias"], n_items, "item_bias")
    adagrad = checked["schedule"] == "adagrad"
    _check_length(factors["user_grad_sq"], n_users if adagrad else 0, "user_grad_sq")
    _check_length(factors["item_grad_sq"], n_items if adagrad else 0, "item_grad_sq")
    _check_length(arrays["rating_range"], 2, "rating_range")
    user_map = _id_map(arrays, "user", n_users)
    item_map = _id_map(arrays, "item", n_items)
    check_seen(arrays["seen_indptr"], arrays["seen_indices"], n_users, n_items, "seen items")
    state = json.loads(str(arrays["state_json"]))
    history = json.loads(str(arrays["history_json"]))
    if not isinstance(history, list):
        raise ValueError("history_json is not a list")

    for name, array in factors.items():
        attribute = name + "_" if not name.endswith("grad_sq") else "_" + name
        setattr(model, attribute, _aligned_writable(array))
    model.global_mean_ = float(arrays["global_mean"])
    model.rating_range_ = tuple(float(value) for value in arrays["rating_range"])
    model.history_ = history
    if state.get("best_epoch") is not None:
        model.best_epoch_ = int(state["best_epoch"])
    model._epochs_done = int(state["epochs_done"])
    model._rng = _generator(state["rng_state"])
    model._user_map, model._item_map = user_map, item_map
    model._seen_indptr = arrays["seen_indptr"].astype(np.int64, copy=False)
    model._seen_indices = arrays["seen_indices"].astype(np.int32, copy=False)
    model.item_titles_ = _titles(arrays)
    return model


def _aligned_writable(array):
    """A cache-line aligned, writable copy (arrays read from a zip may be read-only)."""
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


def _check_length(array, n, name):
    if array.shape != (n,):
        raise ValueError(f"{name} has shape {array.shape}, expected ({n},)")


def _id_map(arrays, kind, n_rows):
    if bool(arrays[f"{kind}_ids_identity"]):
        return IdMap(n=n_rows)
    ids = arrays[f"{kind}_ids"]
    _check_length(ids, n_rows, f"{kind}_ids")
    if len(np.unique(ids)) != n_rows:
        raise ValueError(f"{kind}_ids holds repeated ids")
    return IdMap(ids)


def _generator(state):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in RNG_BIT_GENERATORS:
        raise ValueError(f"unsupported random generator state {name!r}")
    bit_generator = getattr(np.random, name)()
    if name == "MT19937":
        state["state"]["key"] = np.asarray(state["state"]["key"], dtype=np.uint32)
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _titles(arrays):
    if "item_titles" not in arrays:
        return None
    ids, titles = arrays["item_titles_ids"], arrays["item_titles"]
    _check_length(titles, len(ids), "item_titles")
    return dict(zip(ids.tolist(), titles.tolist()))
