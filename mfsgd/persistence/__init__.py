"""Save a fitted model to one .npz file and load it back: checked, versioned, written atomically.

The file is a plain ``np.savez`` archive of numeric and unicode arrays, readable with
``np.load(path, allow_pickle=False)``:

- ``format_version`` (int64) and ``library_version`` (str): the file format and the mfsgd
  that wrote it;
- ``params_json`` (str): the hyperparameters (``get_params``);
- the saved fields of the model's :class:`~mfsgd.training.state.FitState`, each stored by
  the codec its declaration names (see :data:`CODECS`): ``user_factors``, ``item_factors``,
  ``user_bias``, ``item_bias``, ``user_grad_sq``, ``item_grad_sq`` (float32 or float64),
  ``global_mean`` and ``rating_range`` (float64); ``user_ids``, ``item_ids`` (integer or
  unicode) with ``user_ids_identity`` / ``item_ids_identity`` (bool): identity maps (ids are
  row indices) store no ids; ``seen_indptr`` (int64), ``seen_indices`` (int32): the items
  each user rated in training; ``history_json`` (str); ``state_json`` (str): the training
  counters (epochs done, best epoch, random generator state);
- ``item_titles_ids``, ``item_titles`` (optional): the model's ``item_titles_`` as two arrays;
- ``sha256`` (str): SHA-256 over every other array's name, dtype, shape and bytes.

Format 2 adds ``model_class`` (str), the estimator's class name, and the saved fields of its
own FitState subclass (for :class:`~mfsgd.SVDpp`: ``user_p``, ``implicit_factors``,
``implicit_indptr``, ``implicit_indices``).  A MatrixFactorization is still written as format
1 (no ``model_class``), which earlier mfsgd versions read; a format-1 file is a
MatrixFactorization.  ``load(path, cls)`` builds the file's class, which must be `cls` or a
subclass of it (:func:`mfsgd.load` accepts every class).

``load`` reads no array before it has checked the member names (only these), every .npy header
(dtype and number of dimensions as above, a shape that matches the member's declared size) and
the declared sizes (at most 64 times the file's size in all; see :mod:`mfsgd.persistence._npz`),
and it reads in pieces of at most 1 MiB.  After the digest it checks the contents as strictly as
``fit`` checks its input (:mod:`mfsgd.persistence._checks`): the parameters pass the
estimator's own checks and agree with the arrays, every factor, bias and adagrad sum is finite,
the rating range is ordered, the training counters, history and random generator state are
well formed.  ``save`` applies the same checks before writing, so whatever it writes loads
again.

Persistence reads and writes a model only through its public interface: ``get_params``,
``fit_state_`` and ``item_titles_``.
"""
import hashlib
import json
import os

import numpy as np

from .. import _tempfiles
from .._version import __version__
from ..data._idmap import IdMap
from ..training.layout import aligned_empty
from ..training.state import FitState
from ._checks import FieldError, check_contents, jsonable
from ._npz import Archive

FORMAT_VERSION = 2
DIGEST_KEY = "sha256"
# The model classes a file can name (format 2), and where they live: imported when a file
# names them (the models import this module).
MODEL_CLASSES = {"MatrixFactorization": "mfsgd.models.mf", "SVDpp": "mfsgd.models.svdpp"}
# The class of a format-1 file, which names none.
DEFAULT_CLASS = "MatrixFactorization"

_FLOATS, _TEXT, _IDS = ("f4", "f8"), ("U",), ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "U")


class _Array:
    """A field stored as one array named like the field."""

    def __init__(self, dtypes, ndim, to_file, from_file):
        self.dtypes, self.ndim, self.to_file, self.from_file = dtypes, ndim, to_file, from_file

    def members(self, f):
        """{member: (allowed dtypes, number of dimensions)} of field `f`."""
        return {f.name: (self.dtypes, self.ndim)}

    def encode(self, value, f):
        """{member: array} holding the value of field `f`."""
        return {f.name: self.to_file(value)}

    def decode(self, arrays, f, contents):
        """The value of field `f` from the checked arrays."""
        return self.from_file(arrays[f.name])


class _Ids:
    """An IdMap: ``<member>`` (the raw ids; none for an identity map) and ``<member>_identity``."""

    def members(self, f):
        member = f.metadata["member"]
        return {member: (_IDS, 1), member + "_identity": (("b1",), 0)}

    def encode(self, id_map, f):
        member = f.metadata["member"]
        return {member + "_identity": np.array(id_map.identity),
                member: (np.zeros(0, dtype=np.int64) if id_map.identity
                         else _storable_ids(id_map.ids, member.replace("_", " ")))}

    def decode(self, arrays, f, contents):
        member = f.metadata["member"]
        if bool(arrays[member + "_identity"]):
            return IdMap(n=len(arrays[f.metadata["rows_of"]]))
        return IdMap(arrays[member])


class _Json:
    """A field stored as JSON text: alone in its member, or (`shared`) as one key of an object
    that several fields share; :func:`check_contents` decodes and checks it."""

    def __init__(self, member, shared):
        self.member, self.shared = member, shared

    def members(self, f):
        return {f.metadata.get("member", self.member): (_TEXT, 0)}

    def encode(self, value, f):
        if isinstance(value, np.random.Generator):
            value = value.bit_generator.state
        value = jsonable(value)
        member = f.metadata.get("member", self.member)
        return {member: {f.metadata.get("key", f.name): value} if self.shared else value}

    def decode(self, arrays, f, contents):
        return contents[f.name]


def _aligned_writable(array):
    """A cache-line aligned, writable copy (arrays read from a zip may be read-only)."""
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


#: The codec of each ``saved=`` name a FitState field can declare.
CODECS = {
    "factors": _Array(_FLOATS, 2, np.ascontiguousarray, _aligned_writable),
    "values": _Array(_FLOATS, 1, np.ascontiguousarray, _aligned_writable),
    "float64": _Array(("f8",), 0, lambda value: np.array(value, dtype=np.float64), float),
    "range": _Array(("f8",), 1, lambda value: np.array(value, dtype=np.float64),
                    lambda array: tuple(float(value) for value in array)),
    "int64": _Array(("i8",), 1, lambda value: np.asarray(value, dtype=np.int64),
                    lambda array: array),
    "int32": _Array(("i4",), 1, lambda value: np.asarray(value, dtype=np.int32),
                    lambda array: array),
    "ids": _Ids(),
    "json": _Json("history_json", shared=False),
    "state_json": _Json("state_json", shared=True),
}


def _schema(state_class, named=False):
    """{member: (dtypes, ndim)} of every array a file of `state_class` holds (with
    ``model_class`` when `named`)."""
    schema = {"format_version": (("i8",), 0), "library_version": (_TEXT, 0),
              "params_json": (_TEXT, 0)}
    if named:
        schema["model_class"] = (_TEXT, 0)
    for f in state_class.saved_fields():
        schema.update(CODECS[f.metadata["saved"]].members(f))
    schema[DIGEST_KEY] = (_TEXT, 0)
    return schema


# name: (allowed dtypes, ignoring byte order; "U" is any unicode width), number of dimensions)
SCHEMA = _schema(FitState)
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
    model.fit_state_                   # NotFittedError before anything else
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
        The estimator class asked for: the file's class must be `cls` or a subclass
        (``FactorModel`` accepts every model).

    Returns
    -------
    model : the file's class
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
        trained model cannot hold (naming the field), or was written in a newer format; also
        when it holds a model of another class than `cls` (naming it and its ``load``).
    """
    path = _checked_path(path)
    arrays, file_cls = _read_arrays(path, cls)
    _check_digest(arrays, path)
    arrays = {name: _native(array) for name, array in arrays.items()}
    try:
        return _model_from_arrays(arrays, file_cls)
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
    state = model.fit_state_
    name = type(model).__name__
    if MODEL_CLASSES.get(name) != type(model).__module__:
        raise TypeError(f"cannot save a {name}: the model file format knows the classes "
                        f"{sorted(MODEL_CLASSES)}")
    named = name != DEFAULT_CLASS
    arrays = {
        "format_version": np.array(2 if named else 1, dtype=np.int64),
        "library_version": np.array(__version__),
        "params_json": np.array(json.dumps(_params_for_json(model.get_params()))),
    }
    if named:
        arrays["model_class"] = np.array(name)
    texts = {}
    for f in state.saved_fields():
        codec = CODECS[f.metadata["saved"]]
        for member, value in codec.encode(getattr(state, f.name), f).items():
            if not isinstance(codec, _Json):
                arrays[member] = value
            elif codec.shared:
                texts.setdefault(member, {}).update(value)
            else:
                texts[member] = value
    arrays.update((member, np.array(json.dumps(value))) for member, value in texts.items())
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
def _read_arrays(path, cls):
    """Every array of the model file at `path` and the model class it holds; each array is
    checked against the schema of that class's state (see :func:`_schema`) before it is read."""
    with Archive(path, max_members=_most_members()) as archive:
        if "format_version" not in archive.infos:
            raise ValueError(f"{path}: not an mfsgd model file (no format_version)")
        headers = {"format_version": _checked_header(archive, "format_version", SCHEMA)}
        version = int(archive.read(headers["format_version"]))
        _check_format_version(version, archive, path)
        file_cls = _file_class(archive, version, cls, path)
        schema = _schema(file_cls.state_class, named=version >= 2)
        missing = [name for name in schema if name not in archive.infos]
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]!r}")
        unexpected = [name for name in archive.names if name not in schema and name not in OPTIONAL]
        if unexpected:
            raise ValueError(f"{path}: unexpected array {unexpected[0]!r}")
        if ("item_titles_ids" in archive.infos) != ("item_titles" in archive.infos):
            raise ValueError(f"{path}: item_titles_ids and item_titles must come together")
        headers.update((name, _checked_header(archive, name, schema)) for name in archive.names)
        return {name: archive.read(header) for name, header in headers.items()}, file_cls


def _model_class(name):
    import importlib
    return getattr(importlib.import_module(MODEL_CLASSES[name]), name)


def _most_members():
    """The most arrays a model file of any class holds (the zip directory is checked against
    it before anything is read)."""
    return max(len(_schema(_model_class(name).state_class, named=True))
               for name in MODEL_CLASSES) + len(OPTIONAL)


def _file_class(archive, version, cls, path):
    """The model class a file holds (format 1: MatrixFactorization), which must be `cls` or a
    subclass of it."""
    name = DEFAULT_CLASS
    if version >= 2:
        if "model_class" not in archive.infos:
            raise ValueError(f"{path}: missing array 'model_class'")
        name = str(archive.read(_checked_header(archive, "model_class",
                                                {"model_class": (_TEXT, 0)})))
        if name not in MODEL_CLASSES:
            raise ValueError(f"{path}: unknown model class {name[:40]!r} (this mfsgd knows "
                             f"{sorted(MODEL_CLASSES)})")
    file_cls = _model_class(name)
    if not issubclass(file_cls, cls):
        raise ValueError(f"{path} holds a {name}, not a {cls.__name__}; load it with "
                         f"mfsgd.{name}.load or mfsgd.load")
    return file_cls


def _checked_header(archive, name, schema):
    """The .npy header of `name`, with a dtype and dimensions its schema allows."""
    member = archive.header(name)
    dtypes, ndim = schema.get(name) or OPTIONAL[name]
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
                written_by = str(archive.read(_checked_header(archive, "library_version",
                                                              SCHEMA)))[:40]
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
    state_class = model.state_class
    model.fit_state_ = state_class(**{
        f.name: CODECS[f.metadata["saved"]].decode(arrays, f, contents)
        for f in state_class.saved_fields()})
    model.item_titles_ = contents["item_titles"]
    return model
