"""Raw id <-> row index maps that can grow without renumbering existing rows."""
import numpy as np

from .._validation import INT64_MAX, INT64_MIN, UINT64_MAX, MixedRangeError, as_id_array


class IdMap:
    """Map raw ids (integers or strings) to row indices 0..n-1 and back.

    ``ids[index]`` is the raw id of a row; lookups use a sorted view, so they are vectorized.
    Integer ids are held as int64 (uint64 when some id is 2**63 or more) and compared
    exactly, whatever the integer or float dtype of the ids looked up.

    `identity` maps, whose raw ids are the row indices themselves, are only built for models
    saved by mfsgd versions that gave scipy.sparse and index-tuple input one row per index
    (rated or not); such a map turns into an ordinary one when it grows.
    """

    def __init__(self, ids=None, n=None):
        self.identity = ids is None
        if self.identity:
            self.n = int(n)
            self.ids = None
            self._sorter = self._sorted = None
        else:
            self.ids = _canonical(as_id_array("ids", ids))
            self.n = len(self.ids)
            self._sorter = np.argsort(self.ids, kind="stable")
            self._sorted = self.ids[self._sorter]

    def __len__(self):
        return self.n

    def __getstate__(self):
        return {"identity": self.identity, "n": self.n, "ids": self.ids}

    def __setstate__(self, state):
        # Also reads maps pickled by earlier versions, whose ids kept their input dtype.
        self.__init__(None if state["identity"] else state["ids"], state["n"])

    def raw(self, index):
        """Raw ids of row indices."""
        index = np.asarray(index)
        return index.astype(np.int64) if self.identity else self.ids[index]

    def all_raw(self):
        """Raw ids of every row, in row order."""
        return np.arange(self.n) if self.identity else self.ids

    def lookup(self, raw, name="ids"):
        """Row index (int64) of each raw id, -1 where unknown.

        Parameters
        ----------
        raw : id or array-like of ids, 1-D
            Raw ids; integers of any dtype, whole floats, or strings (see
            :func:`mfsgd._validation.as_id_array`).  Lists are read element by element:
            numpy would turn ``[2**63 + 1, 5]`` into inexact floats.
        name : str
            The argument, for error messages.

        Raises
        ------
        TypeError
            When string ids are looked up among integer ids or the other way round.
        """
        try:
            raw = as_id_array(name, as_id_list(raw))
        except MixedRangeError as mixed:
            if self.identity or self.ids.dtype.kind == "U":
                raise
            return self._lookup_python_ints(mixed.values)
        out = np.full(len(raw), -1, dtype=np.int64)
        if raw.size == 0 or self.n == 0:
            return out
        stored_kind = "i" if self.identity else self.ids.dtype.kind
        if (raw.dtype.kind == "U") != (stored_kind == "U"):
            kinds = ("string", "integer") if raw.dtype.kind == "U" else ("integer", "string")
            raise TypeError(f"{name}: {kinds[0]} ids cannot be compared with the {kinds[1]} "
                            f"ids of the model or rating set (got dtype {raw.dtype})")
        if self.identity:
            valid = (raw >= 0) & (raw < self.n)
            out[valid] = raw[valid].astype(np.int64)
            return out
        keys, valid = _comparable(raw, self.ids.dtype)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self.n - 1)
        found = valid & (self._sorted[pos] == keys)
        out[found] = self._sorter[pos[found]]
        return out

    def _lookup_python_ints(self, values):
        """Rows of Python ints that no 64-bit dtype holds together: those outside the stored
        ids' dtype are unknown, the others are looked up."""
        low, high = (0, UINT64_MAX) if self.ids.dtype == np.uint64 else (INT64_MIN, INT64_MAX)
        valid = np.array([low <= v <= high for v in values], dtype=bool)
        out = np.full(len(values), -1, dtype=np.int64)
        kept = [v for v, ok in zip(values, valid) if ok]
        out[valid] = self.lookup(np.array(kept, dtype=self.ids.dtype))
        return out

    def extended(self, new_raw):
        """Return (a map with the unknown ids of `new_raw` appended in sorted order, their
        count).  Existing rows keep their index."""
        new_raw = as_id_array("ids", new_raw)
        unknown = new_raw[self.lookup(new_raw) < 0]
        fresh = _canonical(np.unique(unknown))
        if fresh.size == 0:
            return self, 0
        existing = np.arange(self.n, dtype=np.int64) if self.identity else self.ids
        return IdMap(_concatenated(existing, fresh)), len(fresh)


def as_id_list(raw):
    """`raw` as a sequence of ids: a single id (a scalar) becomes a one-element list; lists
    and arrays are returned as they are, for :func:`mfsgd._validation.as_id_array`."""
    if isinstance(raw, (list, tuple, np.ndarray)) or np.ndim(raw) != 0:
        return raw
    return [raw]


def first_unknown(raw, index):
    """The first id of `raw` whose `index` is -1, as the caller gave it."""
    value = np.asarray(as_id_list(raw), dtype=object)[index < 0][0]
    return value.item() if isinstance(value, np.generic) else value


def _canonical(ids):
    """Integer ids as int64, or uint64 when one is 2**63 or more; str ids as they are."""
    if ids.dtype.kind == "u" and ids.size and ids.max() > INT64_MAX:
        return ids.astype(np.uint64, copy=False)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64, copy=False)
    return ids


def _comparable(raw, dtype):
    """(`raw` converted to the stored ids' integer `dtype`, mask of those that could be
    stored ids at all), exactly: no float promotion of mixed int64/uint64 comparisons."""
    if dtype.kind == "U":
        return raw, np.ones(len(raw), dtype=bool)
    if dtype == np.uint64:
        valid = raw >= 0 if raw.dtype.kind == "i" else np.ones(len(raw), dtype=bool)
        return np.where(valid, raw, 0).astype(np.uint64), valid
    if raw.dtype == np.uint64:
        valid = raw <= INT64_MAX
        return np.where(valid, raw, 0).astype(np.int64), valid
    return raw.astype(np.int64, copy=False), np.ones(len(raw), dtype=bool)


def _concatenated(existing, fresh):
    """Two canonical id arrays joined, in one dtype that holds both exactly."""
    if existing.dtype.kind == "U" or (existing.dtype == fresh.dtype):
        return np.concatenate([existing, fresh])
    # One side is uint64 (ids >= 2**63), the other int64: uint64 holds both unless an id is
    # negative.
    if any(ids.dtype.kind == "i" and ids.min() < 0 for ids in (existing, fresh)):
        raise ValueError("cannot hold negative ids and ids of 2**63 or more in one model")
    return np.concatenate([existing.astype(np.uint64), fresh.astype(np.uint64)])
