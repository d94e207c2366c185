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

``load`` reads no array before it has checked the member names (only these), every .npy header
(dtype and number of dimensions as above, a shape that matches the member's declared size) and
the declared sizes (at most 64 times the file's size in all; see :mod:`mfsgd._npz`), and it reads
in pieces of at most 1 MiB.  After the digest it checks the contents as strictly as ``fit``
checks its input (:mod:`mfsgd._modelcheck`): the parameters pass the estimator's own checks and
agree with the arrays, every factor, bias and adagrad sum is finite, the rating range is ordered,
the training counters, history and random generator state are well formed.  ``save`` applies
the same checks before writing, so whatever it writes loads again.
"""
import hashlib
import json
import os

import numpy as np

from . import _tempfiles
from ._idmap import IdMap
from ._layout import aligned_empty
from ._modelcheck import FieldError, check_contents, jsonable
from ._npz import Archive
from ._version import __version__

FORMAT_VERSION = 1
DIGEST_KEY = "sha256"

_FLOATS, _TEXT, _IDS = ("f4", "f8"), ("U",), ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "U")
# name: (allowed dtypes, ignoring byte order; "U" is any unicode width), number of dimensions)
SCHEMA = {
    "format_version": (("i8",), 0),
    "library_version": (_TEXT, 0),
    "params_json": (_TEXT, 0),
    "history_json": (_TEXT, 0),
    "state_json": (_TEXT, 0),
    "user_factors": (_FLOATS, 2),
    "item_factors": (_FLOATS, 2),
    "user_bias": (_FLOATS, 1),
    "item_bias": (_FLOATS, 1),
    "user_grad_sq": (_FLOATS, 1),
    "item_grad_sq": (_FLOATS, 1),
    "global_mean": (("f8",), 0),
    "rating_range": (("f8",), 1),
    "user_ids": (_IDS, 1),
    "item_ids": (_IDS, 1),
    "user_ids_identity": (("b1",), 0),
    "item_ids_identity": (("b1",), 0),
    "seen_indptr": (("i8",), 1),
    "seen_indices": (("i4",), 1),
    DIGEST_KEY: (_TEXT, 0),
}
OPTIONAL = {"item_titles_ids": (_IDS, 1), "item_titles": (_TEXT, 1)}


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

    Stale temporary files that killed saves or downloads left in the folder are removed first
    (see :mod:`mfsgd._tempfiles`; a live writer's file is never touched).

    Raises
    ------
    ValueError
        When the model holds something ``load`` would refuse (e.g. ``n_factors`` or ``dtype``
        changed with ``set_params`` after fitting, or non-finite factors); nothing is written.
    FileNotFoundError
        When the folder of `path` does not exist (the message names `path`).
    """
    model._check_fitted()
    path = _checked_path(path)
    arrays = _model_arrays(model)
    try:
        check_contents(arrays, type(model))
    except FieldError as error:
        raise ValueError(f"cannot save this model to {path}: {error}") from None
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
        Naming the file: when it is not an mfsgd model file, is truncated or was altered (its
        digest does not match), declares arrays out of proportion to its size, holds values a
        trained model cannot hold (naming the field), or was written in a newer format.
    """
    path = _checked_path(path)
    arrays = _read_arrays(path)
    _check_digest(arrays, path)
    arrays = {name: _native(array) for name, array in arrays.items()}
    try:
        return _model_from_arrays(arrays, cls)
    except FieldError as error:
        raise ValueError(f"{path}: inconsistent mfsgd model file: {error}") from None


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
        "history_json": np.array(json.dumps(jsonable(model.history_))),
        "state_json": np.array(json.dumps({
            "epochs_done": int(model._epochs_done),
            "best_epoch": getattr(model, "best_epoch_", None),
            "rng_state": jsonable(model._rng.bit_generator.state),
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
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path}: the folder {directory} does not exist")
    name = os.path.basename(path)
    _tempfiles.remove_stale(directory, name)
    try:
        # Mode 0o666 lets the umask decide the final permissions, as open() would.
        fd, temporary = _tempfiles.create(directory, name, "tmp", 0o666)
    except OSError as error:  # OSError(errno, ...) is the matching subclass, e.g. PermissionError
        raise OSError(error.errno, f"cannot save to {path}: cannot create a file in "
                                   f"{directory} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
            if _tempfiles.RENAME_WHILE_OPEN:  # keep the temporary file locked until renamed
                os.replace(temporary, path)
        if not _tempfiles.RENAME_WHILE_OPEN:
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


# ---------------------------------------------------------------------- reading
def _read_arrays(path):
    """Every array of the model file at `path`, each checked against the schema of its format
    version before it is read."""
    with Archive(path, max_members=len(SCHEMA) + len(OPTIONAL)) as archive:
        if "format_version" not in archive.infos:
            raise ValueError(f"{path}: not an mfsgd model file (no format_version)")
        headers = {"format_version": _checked_header(archive, "format_version")}
        _check_format_version(archive.read(headers["format_version"]), archive, path)
        missing = [name for name in SCHEMA if name not in archive.infos]
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]!r}")
        unexpected = [name for name in archive.names if name not in SCHEMA and name not in OPTIONAL]
        if unexpected:
            raise ValueError(f"{path}: unexpected array {unexpected[0]!r}")
        if ("item_titles_ids" in archive.infos) != ("item_titles" in archive.infos):
            raise ValueError(f"{path}: item_titles_ids and item_titles must come together")
        headers.update((name, _checked_header(archive, name)) for name in archive.names)
        return {name: archive.read(header) for name, header in headers.items()}


def _checked_header(archive, name):
    """The .npy header of `name`, with a dtype and dimensions its schema allows."""
    member = archive.header(name)
    dtypes, ndim = SCHEMA.get(name) or OPTIONAL[name]
    code = "U" if member.dtype.kind == "U" else f"{member.dtype.kind}{member.dtype.itemsize}"
    if code not in dtypes or member.ndim != ndim:
        raise ValueError(f"{archive.path}: array {name!r} has dtype {member.dtype} and "
                         f"{member.ndim} dimensions; expected one of {list(dtypes)} and {ndim} "
                         f"dimensions")
    return member


def _check_format_version(version, archive, path):
    version = int(version)
    if version > FORMAT_VERSION:
        written_by = "an unknown version"
        if "library_version" in archive.infos:
            try:
                written_by = str(archive.read(_checked_header(archive, "library_version")))[:40]
            except ValueError:
                pass
        raise ValueError(
            f"{path}: written by mfsgd {written_by} with format {version}; this mfsgd "
            f"({__version__}) reads format ≤ {FORMAT_VERSION}; upgrade mfsgd to load it")
    if version < 1:
        raise ValueError(f"{path}: invalid format_version {version}")


def _check_digest(arrays, path):
    stored = arrays[DIGEST_KEY]
    if str(stored) != digest(arrays):
        raise ValueError(f"{path}: the {DIGEST_KEY} digest does not match the contents; the "
                         "file was altered or damaged")


def _native(array):
    """`array` in native byte order (a file written on a machine of the other endianness)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _model_from_arrays(arrays, cls):
    contents = check_contents(arrays, cls)
    model = cls(**contents["params"])
    for name in ("user_factors", "item_factors", "user_bias", "item_bias", "user_grad_sq",
                 "item_grad_sq"):
        attribute = name + "_" if not name.endswith("grad_sq") else "_" + name
        setattr(model, attribute, _aligned_writable(arrays[name]))
    model.global_mean_ = float(arrays["global_mean"])
    model.rating_range_ = tuple(float(value) for value in arrays["rating_range"])
    model.history_ = contents["history"]
    if contents["best_epoch"] is not None:
        model.best_epoch_ = contents["best_epoch"]
    model._epochs_done = contents["epochs_done"]
    model._rng = contents["rng"]
    model._user_map = _id_map(arrays, "user", len(arrays["user_bias"]))
    model._item_map = _id_map(arrays, "item", len(arrays["item_bias"]))
    model._seen_indptr = arrays["seen_indptr"]
    model._seen_indices = arrays["seen_indices"]
    model.item_titles_ = contents["item_titles"]
    return model


def _aligned_writable(array):
    """A cache-line aligned, writable copy (arrays read from a zip may be read-only)."""
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


def _id_map(arrays, kind, n_rows):
    if bool(arrays[f"{kind}_ids_identity"]):
        return IdMap(n=n_rows)
    return IdMap(arrays[f"{kind}_ids"])
