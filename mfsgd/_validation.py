"""Input checks at the public boundary: every message names the argument and the bad value."""
import numbers

import numpy as np
import scipy.sparse as sp

from ._csr import IndexedRatings


def check_int(name, value, minimum=None):
    """Return `value` as an int, or raise TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_float(name, value, minimum=None, strictly_positive=False):
    """Return `value` as a finite float, or raise TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_choice(name, value, choices):
    """Raise ValueError unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_dtype(name, value):
    """Return np.float32 or np.float64 for `value`, else raise TypeError."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {value!r}")
    return dtype.type


def as_index_array(name, values):
    """Return 1-D non-negative integer indices as int32 (without copying int32 input), or
    raise naming `name`.  The result is never written to."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int32)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(f"{name} must hold integer indices, found {array[~finite][0]!r}")
        whole = array == np.round(array)
        if not whole.all():
            raise ValueError(f"{name} must hold integer indices, found {array[~whole][0]!r}")
    elif array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {array.dtype}")
    low, high = array.min(), array.max()
    if low < 0:
        raise ValueError(f"{name} must hold non-negative indices, found {low!r}")
    if high >= 2**31 - 1:
        raise ValueError(f"{name}: indices must be below 2**31 - 1, found {high!r}")
    return array.astype(np.int32, copy=False)


def as_rating_array(name, values):
    """Return finite 1-D ratings as float32 (without copying float32 input), or raise naming
    `name`.  The result is never written to."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} must be finite, found {array[bad][0]!r} at position {int(np.flatnonzero(bad)[0])}")
    return array.astype(np.float32, copy=False)


def as_training_data(name, X):
    """Convert `X` (a Ratings, a scipy.sparse matrix or a (users, items, ratings) tuple) to a
    rating set with user-major CSR arrays, without modifying the caller's data."""
    if hasattr(X, "indptr") and hasattr(X, "user_index") and hasattr(X, "item_ids"):
        ratings = X
    elif sp.issparse(X):
        ratings = _from_sparse(name, X)
    elif isinstance(X, tuple) and len(X) == 3:
        ratings = _from_triplets(name, *X)
    else:
        raise TypeError(
            f"{name} must be a mfsgd.Ratings, a scipy.sparse matrix or a (users, items, ratings) "
            f"tuple, got {type(X).__name__}"
        )
    if len(ratings) == 0:
        raise ValueError(f"{name} holds no ratings")
    return ratings


def _from_sparse(name, X):
    if X.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional, got {X.ndim} dimensions")
    if X.format == "csr" and X.has_canonical_format:
        # Already sorted without duplicates: use the caller's arrays read-only, no copy.
        data = X.data if X.data.dtype == np.float32 else as_rating_array(f"{name}.data", X.data)
        if X.data.dtype == np.float32 and not np.isfinite(data).all():
            as_rating_array(f"{name}.data", data)
        return IndexedRatings(X.indptr.astype(np.int64), X.indices.astype(np.int32, copy=False),
                              data, X.shape[0], X.shape[1])
    coo = sp.coo_matrix(X, copy=True)
    n_stored = coo.nnz
    csr = coo.tocsr()
    csr.sum_duplicates()
    if csr.nnz != n_stored:
        raise ValueError(f"{name} stores some (user, item) entries more than once")
    data = as_rating_array(f"{name}.data", csr.data)
    return IndexedRatings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32), data,
                          csr.shape[0], csr.shape[1])


def _from_triplets(name, users, items, ratings):
    users = as_index_array(f"{name}[0] (users)", users)
    items = as_index_array(f"{name}[1] (items)", items)
    values = as_rating_array(f"{name}[2] (ratings)", ratings)
    if not (len(users) == len(items) == len(values)):
        raise ValueError(
            f"{name}: users, items and ratings must have the same length, got "
            f"{len(users)}, {len(items)} and {len(values)}"
        )
    if len(values) == 0:
        raise ValueError(f"{name} holds no ratings")
    shape = (int(users.max()) + 1, int(items.max()) + 1)
    csr = sp.csr_matrix((values, (users, items)), shape=shape)
    csr.sum_duplicates()
    if csr.nnz != len(values):
        key = users.astype(np.int64) * shape[1] + items
        uniq, counts = np.unique(key, return_counts=True)
        dup = int(uniq[np.argmax(counts > 1)])
        raise ValueError(
            f"{name} holds more than one rating for (user {dup // shape[1]}, item {dup % shape[1]}); "
            f"aggregate duplicates first (mfsgd.Ratings has a duplicates= policy)"
        )
    csr.sort_indices()
    return IndexedRatings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32, copy=False),
                          csr.data.astype(np.float32, copy=False), shape[0], shape[1])
