"""A rating set whose raw ids are the matrix indices themselves (scipy.sparse or index arrays)."""
import numpy as np


class IndexedRatings:
    """User-major CSR ratings whose user and item ids are their row and column indices.

    It offers the parts of :class:`mfsgd.Ratings` the estimator uses, so that a scipy.sparse
    matrix or a tuple of index arrays trains without building id maps.
    """

    def __init__(self, indptr, indices, data, n_users, n_items):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.timestamps = None

    def __len__(self):
        return len(self.data)

    @property
    def user_ids(self):
        """Raw user ids: the row indices."""
        return np.arange(self.n_users)

    @property
    def item_ids(self):
        """Raw item ids: the column indices."""
        return np.arange(self.n_items)

    @property
    def rating_range(self):
        """(min, max) of the ratings."""
        return float(self.data.min()), float(self.data.max())

    def index_arrays(self):
        """Return (user index int32, item index int32, rating float32) in CSR order."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))
        return users, self.indices, self.data

    def user_index(self, raw):
        """Row index of each raw user id (the id itself), -1 when out of range."""
        return _identity_index(raw, self.n_users)

    def item_index(self, raw):
        """Column index of each raw item id (the id itself), -1 when out of range."""
        return _identity_index(raw, self.n_items)


def _identity_index(raw, n):
    values = np.asarray(raw)
    if values.dtype.kind not in "iu":
        if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        elif values.size == 0:
            values = values.astype(np.int64)
        else:
            raise TypeError(f"ids of a model fitted on indices must be integers, got dtype {values.dtype}")
    index = values.astype(np.int64)
    return np.where((index >= 0) & (index < n), index, -1)


def take(ratings, positions):
    """The ratings at CSR `positions` of any rating set, as IndexedRatings in the same index space."""
    users, items, values = ratings.index_arrays()
    positions = np.sort(np.asarray(positions, dtype=np.int64))
    counts = np.bincount(users[positions], minlength=ratings.n_users)
    indptr = np.zeros(ratings.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return IndexedRatings(indptr, np.ascontiguousarray(items[positions], dtype=np.int32),
                          np.ascontiguousarray(values[positions], dtype=np.float32),
                          ratings.n_users, ratings.n_items)


def from_index_triplets(users, items, values, n_users, n_items):
    """IndexedRatings from unique (user index, item index, rating) triplets, sorted into CSR."""
    order = np.lexsort((items, users))
    counts = np.bincount(users, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return IndexedRatings(indptr, np.ascontiguousarray(items[order], dtype=np.int32),
                          np.ascontiguousarray(values[order], dtype=np.float32), n_users, n_items)
