"""Immutable rating sets keyed by raw user and item ids, stored as user-major CSR arrays."""
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from ._idmap import IdMap
from ._validation import as_rating_array

DUPLICATE_POLICIES = ("error", "last", "mean")


class Ratings:
    """An immutable set of ratings keyed by raw user and item ids.

    The ratings are held as user-major CSR arrays (``indptr`` int64, ``indices`` int32 item
    indices, ``data`` float32 ratings, items sorted within each user) plus the raw ids of the
    rows and columns: ``user_ids[u]`` is the raw id of user index ``u``.  Raw ids are integers
    or strings and are stored sorted, so equal inputs give equal rating sets.  Build one with
    :meth:`from_arrays`, :meth:`from_dataframe` or :meth:`from_sparse`; every estimator,
    split and metric in mfsgd accepts it.

    Parameters
    ----------
    indptr, indices, data : ndarray
        Canonical user-major CSR arrays (sorted, no duplicate (user, item) pair).
    user_ids, item_ids : ndarray
        Raw ids of the rows and of the columns, sorted and unique.
    timestamps : ndarray of int64, optional
        One timestamp per rating, in CSR order.
    item_titles : mapping, optional
        Raw item id -> title (for example MovieLens movie titles), kept read-only as the
        attribute ``item_titles`` (None when not given).  It may name items this set does not
        rate; :meth:`take` passes it on unchanged.

    Notes
    -----
    The arrays are read-only views; a rating set never changes after construction.
    """

    def __init__(self, indptr, indices, data, user_ids, item_ids, timestamps=None,
                 item_titles=None):
        self.indptr = _frozen(np.asarray(indptr, dtype=np.int64))
        self.indices = _frozen(np.asarray(indices, dtype=np.int32))
        self.data = _frozen(np.asarray(data, dtype=np.float32))
        self.user_ids = _frozen(np.asarray(user_ids))
        self.item_ids = _frozen(np.asarray(item_ids))
        self.timestamps = None if timestamps is None else _frozen(np.asarray(timestamps, dtype=np.int64))
        if item_titles is not None and not isinstance(item_titles, MappingProxyType):
            if not isinstance(item_titles, Mapping):
                raise TypeError(f"item_titles must be a mapping of raw item id to title, got "
                                f"{type(item_titles).__name__}")
            item_titles = MappingProxyType(dict(item_titles))
        self.item_titles = item_titles
        if len(self.indptr) != len(self.user_ids) + 1 or self.indptr[-1] != len(self.data):
            raise ValueError("indptr must have n_users + 1 entries ending at the number of ratings")
        if len(self.indices) != len(self.data):
            raise ValueError("indices and data must have the same length")
        if self.timestamps is not None and len(self.timestamps) != len(self.data):
            raise ValueError("timestamps must hold one value per rating")
        self._user_map = IdMap(self.user_ids)
        self._item_map = IdMap(self.item_ids)

    @classmethod
    def from_arrays(cls, users, items, ratings, timestamps=None, duplicates="error"):
        """Build a rating set from parallel arrays of raw ids and ratings.

        Parameters
        ----------
        users, items : array-like
            Raw user and item ids, integers or strings, one per rating.
        ratings : array-like of float
            Finite ratings.
        timestamps : array-like of int, optional
            One timestamp per rating (for example Unix seconds), used by time-based splits.
        duplicates : {"error", "last", "mean"}, default="error"
            What to do with more than one rating for the same (user, item): raise, keep the
            last one given, or average them (keeping the latest timestamp).

        Returns
        -------
        Ratings

        Raises
        ------
        ValueError
            On mismatched lengths, empty input, non-finite ratings, or duplicates under
            ``duplicates="error"`` (the message names one duplicated pair).
        """
        if duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}")
        users = _as_id_array("users", users)
        items = _as_id_array("items", items)
        values = as_rating_array("ratings", ratings)
        lengths = {"users": len(users), "items": len(items), "ratings": len(values)}
        if timestamps is not None:
            timestamps = _as_timestamp_array(timestamps)
            lengths["timestamps"] = len(timestamps)
        if len(set(lengths.values())) != 1:
            raise ValueError("users, items, ratings (and timestamps) must have the same length, got "
                             + ", ".join(f"{name}={n}" for name, n in lengths.items()))
        if len(values) == 0:
            raise ValueError("ratings is empty: a rating set needs at least one rating")
        user_ids, user_index = _factorize(users)
        item_ids, item_index = _factorize(items)
        key = user_index.astype(np.int64)
        key *= len(item_ids)
        key += item_index
        del user_index, item_index
        order, key = _stable_sort(key)
        values = values[order]
        if timestamps is not None:
            timestamps = timestamps[order]
        is_last = np.empty(len(key), dtype=bool)
        np.not_equal(key[1:], key[:-1], out=is_last[:-1])
        is_last[-1] = True
        if not is_last.all():
            if duplicates == "error":
                dup = int(key[np.flatnonzero(~is_last)[0]])
                raise ValueError(
                    f"more than one rating for (user {user_ids[dup // len(item_ids)].item()!r}, item "
                    f"{item_ids[dup % len(item_ids)].item()!r}); pass duplicates='last' or 'mean' to "
                    f"combine them")
            if duplicates == "mean":
                starts = np.flatnonzero(np.concatenate([[True], is_last[:-1]]))
                sums = np.add.reduceat(values.astype(np.float64), starts)
                values = (sums / np.diff(np.append(starts, len(key)))).astype(np.float32)
                if timestamps is not None:
                    timestamps = np.maximum.reduceat(timestamps, starts)
                key = key[is_last]
            else:
                key, values = key[is_last], values[is_last]
                if timestamps is not None:
                    timestamps = timestamps[is_last]
        n_items = len(item_ids)
        indptr = np.searchsorted(key, np.arange(len(user_ids) + 1, dtype=np.int64) * n_items)
        np.remainder(key, n_items, out=key)
        indices = key.astype(np.int32)
        del key
        return cls(indptr, indices, values, user_ids, item_ids, timestamps)

    @classmethod
    def from_dataframe(cls, df, user="user", item="item", rating="rating", timestamp=None,
                       duplicates="error"):
        """Build a rating set from the columns of a pandas DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame (or any mapping of column name to 1-D array-like)
        user, item, rating : str
            Column names of the raw user ids, raw item ids and ratings.
        timestamp : str, optional
            Column name of the timestamps (integers, or datetimes converted to Unix seconds).
        duplicates : {"error", "last", "mean"}, default="error"
            See :meth:`from_arrays`.

        Returns
        -------
        Ratings
        """
        columns = {"user": user, "item": item, "rating": rating}
        if timestamp is not None:
            columns["timestamp"] = timestamp
        arrays = {}
        for argument, column in columns.items():
            try:
                values = df[column]
            except (KeyError, IndexError, TypeError):
                available = list(getattr(df, "columns", []))
                raise ValueError(f"{argument}={column!r} is not a column of df "
                                 f"(columns: {available})") from None
            arrays[argument] = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        stamps = arrays.get("timestamp")
        if stamps is not None and stamps.dtype.kind == "M":
            stamps = stamps.astype("datetime64[s]").astype(np.int64)
        return cls.from_arrays(arrays["user"], arrays["item"], arrays["rating"], stamps, duplicates)

    @classmethod
    def from_sparse(cls, matrix):
        """Build a rating set from a scipy.sparse matrix (rows = users, columns = items).

        Raw ids are the row and column indices.  Every stored entry is a rating (explicit
        zeros included); entries stored twice are an error.

        Parameters
        ----------
        matrix : scipy.sparse matrix or array

        Returns
        -------
        Ratings
        """
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}")
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be two-dimensional, got {matrix.ndim} dimensions")
        coo = sp.coo_matrix(matrix)
        if coo.nnz == 0:
            raise ValueError("matrix stores no ratings")
        csr = sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=coo.shape)
        csr.sum_duplicates()
        if csr.nnz != coo.nnz:
            raise ValueError("matrix stores some (user, item) entries more than once")
        data = as_rating_array("matrix.data", csr.data)
        return cls(csr.indptr, csr.indices, data, np.arange(coo.shape[0]), np.arange(coo.shape[1]))

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return (f"Ratings({len(self)} ratings, {self.n_users} users, {self.n_items} items"
                f"{', timestamps' if self.timestamps is not None else ''})")

    @property
    def n_users(self):
        """Number of distinct users."""
        return len(self.user_ids)

    @property
    def n_items(self):
        """Number of distinct items."""
        return len(self.item_ids)

    @property
    def rating_range(self):
        """(lowest, highest) rating as floats."""
        return float(self.data.min()), float(self.data.max())

    def to_coo(self):
        """The ratings as a scipy.sparse COO matrix of shape (n_users, n_items), float32."""
        users, items, values = self.index_arrays()
        return sp.coo_matrix((values, (users, items)), shape=(self.n_users, self.n_items))

    def index_arrays(self):
        """(user index int32, item index int32, rating float32) of every rating, in CSR order."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))
        return users, self.indices, self.data

    def to_arrays(self):
        """(raw user ids, raw item ids, ratings) of every rating, in CSR order."""
        users, items, values = self.index_arrays()
        return self.user_ids[users], self.item_ids[items], values.copy()

    def user_index(self, raw):
        """Row index of each raw user id, -1 where unknown."""
        return self._user_map.lookup(np.atleast_1d(raw), "users")

    def item_index(self, raw):
        """Column index of each raw item id, -1 where unknown."""
        return self._item_map.lookup(np.atleast_1d(raw), "items")

    def take(self, positions):
        """The ratings at `positions` (indices into CSR order) as a new rating set.

        Users and items left without a rating are dropped, so the result's ids are exactly
        those it rates.

        Parameters
        ----------
        positions : array-like of int

        Returns
        -------
        Ratings
        """
        positions = np.asarray(positions)
        if positions.dtype.kind not in "iu":
            raise TypeError(f"positions must be integers, got dtype {positions.dtype}")
        positions = np.unique(positions)
        if positions.size and (positions[0] < 0 or positions[-1] >= len(self)):
            raise ValueError(f"positions must lie in [0, {len(self)}), got {positions[[0, -1]]}")
        if positions.size == 0:
            raise ValueError("positions selects no rating")
        users, items, values = self.index_arrays()
        users, items = users[positions], items[positions]
        user_kept = np.bincount(users, minlength=self.n_users) > 0
        item_kept = np.bincount(items, minlength=self.n_items) > 0
        new_user = np.cumsum(user_kept) - 1
        new_item = (np.cumsum(item_kept) - 1).astype(np.int32)
        indptr = np.zeros(int(user_kept.sum()) + 1, dtype=np.int64)
        np.cumsum(np.bincount(new_user[users], minlength=len(indptr) - 1), out=indptr[1:])
        stamps = None if self.timestamps is None else self.timestamps[positions]
        return Ratings(indptr, new_item[items], values[positions], self.user_ids[user_kept],
                       self.item_ids[item_kept], stamps, self.item_titles)

    def user_of_rating(self):
        """User index (int32) of every rating, in CSR order."""
        return self.index_arrays()[0]


def _frozen(array):
    view = array.view()
    view.flags.writeable = False
    return view


def _as_id_array(name, values):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind == "O":
        kinds = {type(v) for v in array[:1000]}
        if all(issubclass(kind, (int, np.integer)) for kind in kinds):
            array = array.astype(np.int64)
        elif all(issubclass(kind, str) for kind in kinds):
            array = array.astype(str)
        else:
            raise TypeError(f"{name} must hold integers or strings, found {sorted(k.__name__ for k in kinds)}")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            raise ValueError(f"{name} ids must be integers or strings, found {array[~whole][0]!r}")
        array = array.astype(np.int64)
    if array.dtype.kind == "S":
        array = array.astype(str)
    if array.dtype.kind not in "iuU":
        raise TypeError(f"{name} must hold integer or string ids, got dtype {array.dtype}")
    return array


def _as_timestamp_array(values):
    array = np.asarray(values)
    if array.dtype.kind == "M":
        return array.astype("datetime64[s]").astype(np.int64)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError("timestamps must be finite")
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"timestamps must be integers or datetime64, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _stable_sort(key, block=1 << 20):
    """(stable argsort of non-negative int64 `key`, the sorted keys); overwrites `key`.

    When key and position fit together in 64 bits, one in-place sort of ``key << b |
    position`` gives both, markedly faster than numpy's stable argsort of int64 and without
    temporaries beyond the order itself.
    """
    n = len(key)
    position_bits = max(n - 1, 1).bit_length()
    if n and int(key.max()).bit_length() + position_bits <= 64:
        packed = key.view(np.uint64)
        packed <<= np.uint64(position_bits)
        for start in range(0, n, block):
            packed[start:start + block] |= np.arange(start, min(start + block, n), dtype=np.uint64)
        packed.sort()
        order = packed & np.uint64((1 << position_bits) - 1)
        packed >>= np.uint64(position_bits)
        return order.view(np.int64), key
    order = np.argsort(key, kind="stable")
    return order, key[order]


def _factorize(ids):
    """(sorted unique ids, index of each id among them) in O(n) for compact integer ids."""
    if ids.dtype.kind in "iu" and ids.size:
        low, high = int(ids.min()), int(ids.max())
        if high - low <= 4 * ids.size + 1_000_000:
            if not low:
                shifted = ids
            elif high - low <= np.iinfo(ids.dtype).max:  # ids - low cannot overflow
                shifted = ids - ids.dtype.type(low)
            else:
                shifted = ids.astype(np.int64) - low
            present = np.zeros(high - low + 1, dtype=bool)
            present[shifted] = True
            unique = np.flatnonzero(present)
            rank = np.cumsum(present, dtype=np.int32)
            rank -= 1
            return (unique + low).astype(ids.dtype), rank[shifted]
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, inverse.astype(np.int32)
