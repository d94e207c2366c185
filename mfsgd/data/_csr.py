"""Rating sets in a model's own row/column index space, for laying out training data."""
import numpy as np


class IndexedRatings:
    """User-major CSR ratings indexed by a model's user and item rows, without raw ids.

    It offers the parts of :class:`mfsgd.Ratings` that laying out training data uses
    (``indptr``, ``indices``, ``data``, ``n_users``, ``n_items``), for the rating sets the
    estimator derives in its own index space: the part of the training data left after an
    early-stopping hold-out, and new data mapped into a grown model.
    """

    def __init__(self, indptr, indices, data, n_users, n_items):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.timestamps = None

    def __len__(self):
        return len(self.data)

    @property
    def rating_range(self):
        """(min, max) of the ratings."""
        return float(self.data.min()), float(self.data.max())

    def index_arrays(self):
        """Return (user index int32, item index int32, rating float32) in CSR order."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))
        return users, self.indices, self.data


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
