"""Raw id <-> row index maps that can grow without renumbering existing rows."""
import numpy as np


class IdMap:
    """Map raw ids (integers or strings) to row indices 0..n-1 and back.

    ``ids[index]`` is the raw id of a row; lookups use a sorted view, so they are vectorized.
    `identity` maps make the raw id the index itself (models fitted on index arrays or
    scipy.sparse matrices).
    """

    def __init__(self, ids=None, n=None):
        self.identity = ids is None
        if self.identity:
            self.n = int(n)
            self.ids = None
            self._sorter = None
        else:
            self.ids = np.asarray(ids)
            self.n = len(self.ids)
            self._sorter = np.argsort(self.ids, kind="stable")

    def __len__(self):
        return self.n

    def raw(self, index):
        """Raw ids of row indices."""
        index = np.asarray(index)
        return index.copy() if self.identity else self.ids[index]

    def all_raw(self):
        """Raw ids of every row, in row order."""
        return np.arange(self.n) if self.identity else self.ids

    def lookup(self, raw, name="ids"):
        """Row index of each raw id (array-like), -1 where unknown."""
        raw = np.asarray(raw)
        if raw.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {raw.shape}")
        if self.identity:
            if raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.round(raw)).all():
                raw = raw.astype(np.int64)
            if raw.size and raw.dtype.kind not in "iu":
                raise TypeError(f"{name} must be integer indices for a model fitted on indices, "
                                f"got dtype {raw.dtype}")
            index = raw.astype(np.int64)
            return np.where((index >= 0) & (index < self.n), index, -1)
        if self.n == 0:
            return np.full(raw.shape, -1, dtype=np.int64)
        if raw.size and (raw.dtype.kind in "US") != (self.ids.dtype.kind in "US"):
            raise TypeError(f"{name} ids of dtype {raw.dtype} cannot be compared with the "
                            f"model's ids of dtype {self.ids.dtype}")
        sorted_ids = self.ids[self._sorter]
        pos = np.minimum(np.searchsorted(sorted_ids, raw), self.n - 1)
        found = sorted_ids[pos] == raw
        return np.where(found, self._sorter[pos], -1).astype(np.int64)

    def extended(self, new_raw):
        """Return (a map with the unknown ids of `new_raw` appended, their count)."""
        index = self.lookup(new_raw)
        unknown = np.asarray(new_raw)[index < 0]
        if self.identity:
            top = int(unknown.max()) + 1 if unknown.size else self.n
            return IdMap(n=max(self.n, top)), max(0, top - self.n)
        fresh = np.unique(unknown)
        if fresh.size == 0:
            return self, 0
        return IdMap(np.concatenate([self.ids, fresh])), len(fresh)
