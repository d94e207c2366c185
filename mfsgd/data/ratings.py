"""Immutable rating sets keyed by raw user and item ids, stored as user-major CSR arrays, and
:func:`as_ratings`, the one conversion of every accepted input (a Ratings, a scipy.sparse
matrix, a tuple of raw ids) into a rating set."""
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from . import _columns
from ._idmap import IdMap
from .._validation import as_id_array, as_rating_array, as_timestamp_array

DUPLICATE_POLICIES = ("error", "last", "mean")

#: Most distinct users or items in one rating set: item indices are int32 in the kernels.
MAX_IDS = 2**31 - 1

_ARRAY_NAMES = ("users", "items", "ratings", "timestamps")
_DUPLICATE_MESSAGE = ("more than one rating for (user {user!r}, item {item!r}); pass "
                      "duplicates='last' or 'mean' to combine them")


class Ratings:
    """An immutable set of ratings keyed by raw user and item ids.

    The ratings are held as user-major CSR arrays (``indptr`` int64, ``indices`` int32 item
    indices, ``data`` float32 ratings, items sorted within each user) plus the raw ids of the
    rows and columns: ``user_ids[u]`` is the raw id of user index ``u``.  Raw ids are integers
    (in the dtype they were given) or strings, and are stored sorted, so equal
    inputs give equal rating sets.  Only ids that hold at least one rating are present.
    Build one with :meth:`from_arrays`, :meth:`from_dataframe` or :meth:`from_sparse`; every
    estimator, split and metric in mfsgd accepts it.

    Parameters
    ----------
    indptr, indices, data : array-like
        Canonical user-major CSR arrays: ``indptr`` starts at 0 and never decreases, every
        row's item indices strictly increase (no duplicate (user, item) pair) and lie in
        ``[0, len(item_ids))``; ``data`` holds finite ratings.  They are checked.
    user_ids, item_ids : array-like
        Raw ids of the rows and of the columns, strictly increasing.
    timestamps : array-like of int, optional
        One timestamp per rating, in CSR order.
    item_titles : mapping, optional
        Raw item id -> title (for example MovieLens movie titles), kept read-only as the
        attribute ``item_titles`` (None when not given).  It may name items this set does not
        rate; :meth:`take` passes it on unchanged.

    Notes
    -----
    The arrays are read-only views; a rating set never changes after construction.  The
    constructor shares the arrays it is given when their dtypes already match, so the
    caller must not change them afterwards; the ``from_*`` constructors always copy.
    """

    def __init__(self, indptr, indices, data, user_ids, item_ids, timestamps=None,
                 item_titles=None):
        user_ids = _strictly_increasing_ids("user_ids", user_ids)
        item_ids = _strictly_increasing_ids("item_ids", item_ids)
        indptr, indices = _checked_csr(indptr, indices, len(user_ids), len(item_ids))
        data = as_rating_array("data", data)
        if len(data) != len(indices):
            raise ValueError(f"indices and data must have the same length, got "
                             f"{len(indices)} and {len(data)}")
        if timestamps is not None:
            timestamps = as_timestamp_array("timestamps", timestamps)
            if len(timestamps) != len(data):
                raise ValueError(f"timestamps must hold one value per rating, got "
                                 f"{len(timestamps)} for {len(data)} ratings")
        self._set(indptr, indices, data, user_ids, item_ids, timestamps, item_titles,
                  owned=False)

    @classmethod
    def _trusted(cls, indptr, indices, data, user_ids, item_ids, timestamps=None,
                 item_titles=None, owned=True):
        """A rating set from arrays already known to be canonical, without checking them.

        `owned` says that nobody else holds the arrays: they are then made read-only
        themselves, so that whoever keeps a part of this set (a model's seen-items index) may
        share it instead of copying.  Otherwise only this set's views are read-only."""
        ratings = cls.__new__(cls)
        ratings._set(indptr, indices, data, user_ids, item_ids, timestamps, item_titles,
                     owned)
        return ratings

    def _set(self, indptr, indices, data, user_ids, item_ids, timestamps, item_titles,
             owned):
        if owned:
            for array in (indptr, indices, data, user_ids, item_ids, timestamps):
                if array is not None and array.base is None:
                    array.flags.writeable = False
        self.indptr = _frozen(np.asarray(indptr, dtype=np.int64))
        self.indices = _frozen(np.asarray(indices, dtype=np.int32))
        self.data = _frozen(np.asarray(data, dtype=np.float32))
        self.user_ids = _frozen(user_ids)
        self.item_ids = _frozen(item_ids)
        self.timestamps = None if timestamps is None else \
            _frozen(np.asarray(timestamps, dtype=np.int64))
        if item_titles is not None and not isinstance(item_titles, MappingProxyType):
            if not isinstance(item_titles, Mapping):
                raise TypeError(f"item_titles must be a mapping of raw item id to title, got "
                                f"{type(item_titles).__name__}")
            item_titles = MappingProxyType(dict(item_titles))
        self.item_titles = item_titles
        self._user_map = None
        self._item_map = None

    @classmethod
    def from_arrays(cls, users, items, ratings, timestamps=None, duplicates="error"):
        """Build a rating set from parallel arrays of raw ids and ratings.

        Only the ids that occur get a row or column: integer ids are never taken as indices,
        so ids such as 10 and 2_000_000_000 make a set of 2 users, not of 2e9.

        Parameters
        ----------
        users, items : array-like
            Raw user and item ids, one per rating: integers (any dtype, up to 64 bits), whole
            floats within int64, or strings (bytes are decoded as UTF-8).  A string ending in
            NUL is refused, since numpy would drop the NUL and merge ``"a\\0"`` with
            ``"a"``.  Lists and object arrays are checked element by element.
        ratings : array-like of float
            Finite ratings within float32's range; they are stored as float32.
        timestamps : array-like, optional
            One timestamp per rating, used by time-based splits: integers within int64, whole
            floats, or datetime64 (converted to Unix seconds, sub-second parts floored).
        duplicates : {"error", "last", "mean"}, default="error"
            What to do with more than one rating for the same (user, item): raise, keep the
            last one given, or average them (keeping the latest timestamp).

        Returns
        -------
        Ratings

        Raises
        ------
        ValueError
            On mismatched lengths, empty input, non-finite or out-of-range ratings, ids that
            are not exact integers or end in NUL, timestamps that are not whole or beyond
            int64, or duplicates under ``duplicates="error"`` (the message names one
            duplicated pair).
            Every message names the argument and the position of the first bad value.
        TypeError
            On values of the wrong type (for example bool or None ids, strings mixed with
            numbers).
        """
        return cls._from_arrays(users, items, ratings, timestamps, duplicates, _ARRAY_NAMES)

    @classmethod
    def _from_arrays(cls, users, items, ratings, timestamps, duplicates, names,
                     duplicate_message=_DUPLICATE_MESSAGE):
        """:meth:`from_arrays` with the arguments called `names` in error messages."""
        if duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got "
                             f"{duplicates!r}")
        users = as_id_array(names[0], users)
        items = as_id_array(names[1], items)
        values = as_rating_array(names[2], ratings)
        lengths = {names[0]: len(users), names[1]: len(items), names[2]: len(values)}
        if timestamps is not None:
            timestamps = as_timestamp_array(names[3], timestamps)
            lengths[names[3]] = len(timestamps)
        if len(set(lengths.values())) != 1:
            raise ValueError(", ".join(names[:len(lengths)]) + " must have the same length, "
                             "got " + ", ".join(f"{n}={k}" for n, k in lengths.items()))
        if len(values) == 0:
            raise ValueError(f"{names[2]} is empty: no ratings to build a rating set from")
        user_ids, user_index = _factorize(users, names[0])
        item_ids, item_index = _factorize(items, names[1])
        n_items = len(item_ids)
        key = user_index.astype(np.int64)
        del user_index
        key *= n_items
        key += item_index
        del item_index
        order, key = _stable_sort(key)
        values = values[order]
        if timestamps is not None:
            timestamps = timestamps[order]
        del order
        is_last = np.empty(len(key), dtype=bool)
        np.not_equal(key[1:], key[:-1], out=is_last[:-1])
        is_last[-1] = True
        if not is_last.all():
            if duplicates == "error":
                dup = int(key[np.flatnonzero(~is_last)[0]])
                raise ValueError(duplicate_message.format(
                    user=user_ids[dup // n_items].item(), item=item_ids[dup % n_items].item()))
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
        del is_last
        indptr = np.searchsorted(key, np.arange(len(user_ids) + 1, dtype=np.int64) * n_items)
        np.remainder(key, n_items, out=key)
        indices = key.astype(np.int32)
        del key
        return cls._trusted(indptr, indices, values, user_ids, item_ids, timestamps)

    @classmethod
    def from_dataframe(cls, df, user=None, item=None, rating=None, timestamp=None,
                       duplicates="error"):
        """Build a rating set from the columns of a pandas DataFrame.

        Without keywords the columns are recognised by their names, compared
        case-insensitively (the same names :func:`mfsgd.read_ratings` recognises in a header):
        ``userId``/``user_id``/``user``/``uid`` for the users,
        ``movieId``/``movie_id``/``item_id``/``itemId``/``item``/``iid`` for the items,
        ``rating``/``score`` for the ratings and ``timestamp``/``time``/``ts`` for the
        optional timestamps.  When two columns match one role, the one named exactly like the
        keyword (``user``, ``item``, ``rating``, ``timestamp``) wins; otherwise the keyword
        must choose.  A keyword always wins over the names.

        Parameters
        ----------
        df : pandas.DataFrame (or any mapping of column name to 1-D array-like)
        user, item, rating : column name, optional
            Columns of the raw user ids, raw item ids and ratings; None recognises them by
            name.
        timestamp : column name, None or False, optional
            Column of the timestamps (integers, whole floats or datetimes, converted to Unix
            seconds); None uses a column recognised by name if there is one, False reads no
            timestamps.
        duplicates : {"error", "last", "mean"}, default="error"
            See :meth:`from_arrays`.

        Returns
        -------
        Ratings

        Raises
        ------
        ValueError
            When a keyword names no column, when no column (or more than one) is recognised
            for a role, or on bad values (see :meth:`from_arrays`); the message lists the
            columns seen and the keyword that fixes it.
        """
        columns = _dataframe_columns(df, {"user": user, "item": item, "rating": rating,
                                          "timestamp": timestamp})
        arrays, names = [], []
        for role in _columns.ROLES:
            if role not in columns:
                arrays.append(None)
                names.append(role)
                continue
            arrays.append(_column_values(df, columns[role]))
            names.append(f"df[{columns[role]!r}] ({role}{'s' if role != 'timestamp' else ''})")
        return cls._from_arrays(*arrays, duplicates, names)

    def to_dataframe(self):
        """The ratings as a pandas DataFrame, one row per rating in CSR order.

        Columns ``user``, ``item`` (raw ids), ``rating`` (float32) and, when the set has
        them, ``timestamp`` (int64); ``Ratings.from_dataframe`` reads it back unchanged.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            When pandas is not installed (``pip install "mfsgd[pandas]"``).
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError('Ratings.to_dataframe needs pandas, an optional dependency: '
                              'pip install "mfsgd[pandas]"') from None
        users, items, values = self.to_arrays()
        frame = {"user": users, "item": items, "rating": values}
        if self.timestamps is not None:
            frame["timestamp"] = np.array(self.timestamps)
        return pd.DataFrame(frame)

    @classmethod
    def from_sparse(cls, matrix):
        """Build a rating set from a scipy.sparse matrix (rows = users, columns = items).

        Raw ids are the row and column indices that hold at least one stored entry: a row
        or column without any entry gets no id, so a model never learns factors for it and
        predicts it like an unknown id.  Every stored entry is a rating (explicit zeros
        included); entries stored twice are an error.  Any shape works, also beyond 2**31
        rows or columns; memory follows the number of stored entries.

        Parameters
        ----------
        matrix : scipy.sparse matrix or array, two-dimensional

        Returns
        -------
        Ratings
            Its arrays are copies: later changes to `matrix` do not reach it.
        """
        return cls._from_sparse("matrix", matrix, copy=True)

    @classmethod
    def _from_sparse(cls, name, matrix, copy):
        """:meth:`from_sparse` naming the argument `name`; with ``copy=False`` a canonical CSR
        matrix whose every row and column holds a rating is wrapped without copying."""
        if not sp.issparse(matrix):
            raise TypeError(f"{name} must be a scipy.sparse matrix, got {type(matrix).__name__}")
        if matrix.ndim != 2:
            raise ValueError(f"{name} must be two-dimensional, got {matrix.ndim} dimensions")
        if matrix.format in ("csr", "csc", "bsr"):
            _check_compressed(name, matrix)
        if matrix.format == "csr" and _is_whole_canonical_csr(matrix):
            data = as_rating_array(f"{name}.data", matrix.data)
            if copy and data is matrix.data:
                data = data.copy()
            indices = matrix.indices.astype(np.int32, copy=copy)
            n_rows, n_cols = matrix.shape
            return cls._trusted(matrix.indptr.astype(np.int64, copy=copy), indices, data,
                                np.arange(n_rows, dtype=np.int64),
                                np.arange(n_cols, dtype=np.int64), owned=copy)
        rows, cols, data = _coordinates(name, matrix)
        return cls._from_arrays(rows, cols, data, None, "error",
                                (f"{name} rows", f"{name} columns", f"{name}.data", ""),
                                f"{name} stores (row {{user}}, column {{item}}) more than once")

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return (f"Ratings({len(self)} ratings, {self.n_users} users, {self.n_items} items"
                f"{', timestamps' if self.timestamps is not None else ''})")

    def __getstate__(self):
        state = dict(self.__dict__, _user_map=None, _item_map=None)
        return state

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
        if self._user_map is None:
            self._user_map = IdMap(self.user_ids)
        return self._user_map.lookup(raw, "users")

    def item_index(self, raw):
        """Column index of each raw item id, -1 where unknown."""
        if self._item_map is None:
            self._item_map = IdMap(self.item_ids)
        return self._item_map.lookup(raw, "items")

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
        return Ratings._trusted(indptr, new_item[items], values[positions],
                                self.user_ids[user_kept], self.item_ids[item_kept], stamps,
                                self.item_titles)

    def user_of_rating(self):
        """User index (int32) of every rating, in CSR order."""
        return self.index_arrays()[0]


def as_ratings(name, X, copy=True):
    """`X` as a :class:`Ratings`: the one conversion of training and evaluation input.

    A Ratings is returned as it is.  A (users, items, ratings[, timestamps]) tuple holds raw
    ids and goes through :meth:`Ratings.from_arrays` (duplicates are an error); a
    scipy.sparse matrix goes through :meth:`Ratings.from_sparse`, so its row and column
    indices are the raw ids and rows or columns without a rating get none.

    Parameters
    ----------
    name : str
        The argument, for error messages (for example "X" or "validation").
    X : Ratings, scipy.sparse matrix or tuple
    copy : bool, default=True
        False lets the result share the arrays of a canonical CSR matrix whose every row and
        column holds a rating (read-only, without a copy); use it only when the result does
        not outlive the call, since the caller may change the matrix later.

    Returns
    -------
    Ratings

    Raises
    ------
    TypeError
        For any other type, naming `name`.
    """
    if isinstance(X, Ratings):
        return X
    if sp.issparse(X):
        return Ratings._from_sparse(name, X, copy)
    if isinstance(X, tuple) and len(X) in (3, 4):
        names = tuple(f"{name}[{i}] ({what})" for i, what in enumerate(_ARRAY_NAMES))
        return Ratings._from_arrays(X[0], X[1], X[2], X[3] if len(X) == 4 else None, "error",
                                    names)
    raise TypeError(f"{name} must be a mfsgd.Ratings, a scipy.sparse matrix or a (users, items, "
                    f"ratings[, timestamps]) tuple of raw ids, got {type(X).__name__}")


def _frozen(array):
    view = array.view()
    view.flags.writeable = False
    return view


def _strictly_increasing_ids(name, ids):
    ids = as_id_array(name, ids)
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
        raise ValueError(f"{name} must be sorted and unique")
    return ids


def _checked_csr(indptr, indices, n_rows, n_cols):
    """(indptr int64, indices int32) after checking that they form a canonical CSR."""
    for what, n in (("user_ids", n_rows), ("item_ids", n_cols)):
        _check_id_count(n, what)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    for what, array in (("indptr", indptr), ("indices", indices)):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise TypeError(f"{what} must be a 1-D integer array, got dtype {array.dtype} and "
                            f"shape {array.shape}")
    if len(indptr) != n_rows + 1 or indptr[0] != 0 or indptr[-1] != len(indices):
        raise ValueError(f"indptr must have n_users + 1 = {n_rows + 1} entries from 0 to the "
                         f"number of ratings ({len(indices)})")
    if len(indptr) > 1 and (indptr[1:] < indptr[:-1]).any():
        raise ValueError("indptr must never decrease")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
        raise ValueError(f"indices must lie in [0, n_items) = [0, {n_cols})")
    indptr = indptr.astype(np.int64, copy=False)
    if not _rows_strictly_increase(indptr, indices):
        raise ValueError("indices must strictly increase within each user (sorted, no "
                         "duplicate (user, item) pair)")
    return indptr, indices.astype(np.int32, copy=False)


def _rows_strictly_increase(indptr, indices):
    """True when the column indices of every CSR row strictly increase."""
    if len(indices) < 2:
        return True
    rising = indices[1:] > indices[:-1]
    starts = indptr[1:-1]
    starts = starts[(starts > 0) & (starts < len(indices))]
    rising[starts - 1] = True          # a step into the next row may fall
    return bool(rising.all())


def _check_compressed(name, matrix):
    """ValueError unless a CSR/CSC/BSR matrix's index arrays are consistent (scipy's own
    expansion trusts them; scipy's check_format would modify the caller's matrix)."""
    indptr, indices = matrix.indptr, matrix.indices
    n_major = matrix.shape[0] if matrix.format != "csc" else matrix.shape[1]
    if matrix.format == "bsr":
        n_major //= matrix.blocksize[0]
    problem = None
    if indptr.ndim != 1 or len(indptr) != n_major + 1:
        problem = f"indptr has shape {indptr.shape}, expected ({n_major + 1},)"
    elif indptr[0] != 0 or (len(indptr) > 1 and (indptr[1:] < indptr[:-1]).any()):
        problem = "indptr must start at 0 and never decrease"
    elif indptr[-1] > len(indices) or indptr[-1] > len(matrix.data):
        problem = "indptr ends beyond the stored entries"
    if problem:
        raise ValueError(f"{name} is not a valid scipy.sparse matrix: {problem}")


def _is_whole_canonical_csr(matrix):
    """True for a CSR matrix that can be used as it is: sorted rows without duplicates,
    indices in range, every row and every column holding a rating, and a shape within
    MAX_IDS."""
    n_rows, n_cols = matrix.shape
    indptr, indices = matrix.indptr, matrix.indices
    nnz = len(indices)
    if not (0 < n_rows <= min(MAX_IDS, nnz) and 0 < n_cols <= min(MAX_IDS, nnz)):
        return False
    if indptr[-1] != nnz or len(matrix.data) != nnz or indices.dtype.kind != "i":
        return False
    if not (indptr[1:] > indptr[:-1]).all():             # an empty row
        return False
    if indices.min() < 0 or indices.max() >= n_cols:
        return False
    if not _rows_strictly_increase(indptr.astype(np.int64, copy=False), indices):
        return False
    present = np.zeros(n_cols, dtype=bool)
    present[indices] = True
    return bool(present.all())


def _coordinates(name, matrix):
    """(row indices, column indices, values) of the stored entries, checked against the
    shape, without allocating anything the size of the shape."""
    n_rows, n_cols = matrix.shape
    if matrix.format in ("csr", "csc"):
        indptr = matrix.indptr
        nnz = int(indptr[-1])
        if len(indptr) - 1 <= nnz:
            major = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        else:       # more rows than entries: no temporary the size of the rows
            major = np.searchsorted(indptr, np.arange(nnz), side="right").astype(np.int64) - 1
        minor, data = matrix.indices[:nnz], matrix.data[:nnz]
        rows, cols = (major, minor) if matrix.format == "csr" else (minor, major)
    else:
        coo = matrix.tocoo(copy=False)
        rows, cols, data = coo.row, coo.col, coo.data
    if len(data) == 0:
        raise ValueError(f"{name} stores no ratings")
    for what, index, size in (("row", rows, n_rows), ("column", cols, n_cols)):
        if index.min() < 0 or index.max() >= size:
            bad = index[(index < 0) | (index >= size)][0]
            raise ValueError(f"{name} stores an entry at {what} {bad}, outside its shape "
                             f"{matrix.shape}")
    return rows, cols, data


def _dataframe_columns(df, keywords):
    """Role -> column name of a DataFrame, from the keywords and the recognised names."""
    try:
        names = list(df.columns) if hasattr(df, "columns") else list(df.keys())
    except (AttributeError, TypeError):
        raise TypeError(f"df must be a pandas DataFrame or a mapping of column name to "
                        f"array, got {type(df).__name__}") from None
    chosen = {}
    for role, column in keywords.items():
        if column is None or column is False:
            continue
        try:
            known = column in names
        except TypeError:
            known = False
        if not known:
            raise ValueError(f"{role}={column!r} is not a column of df (columns: {names})")
        chosen[role] = column
    claimed = [column for column in chosen.values()]
    free = [name for name in names if not any(name is c or _same(name, c) for c in claimed)]
    found, clashes = _columns.match_roles(free)
    for role in _columns.ROLES:
        if role in chosen or keywords[role] is False:
            continue
        if role in clashes:
            candidates = [free[i] for i in clashes[role]]
            exact = [c for c in candidates if isinstance(c, str) and c.strip().lower() == role]
            if len(exact) == 1:
                chosen[role] = exact[0]
                continue
            raise ValueError(f"several columns of df look like the {_ROLE_WORDS[role]}: "
                             f"{candidates}; pass {role}='<column>' to choose one"
                             + (" or timestamp=False to read none" if role == "timestamp"
                                else ""))
        if role in found:
            chosen[role] = free[found[role]]
        elif role != "timestamp":
            raise ValueError(f"no column of df is recognised as the {_ROLE_WORDS[role]} "
                             f"(columns: {names}; recognised names: "
                             f"{', '.join(_columns.ALIASES[role])}, any case); pass "
                             f"{role}='<column>'")
    return chosen


_ROLE_WORDS = {"user": "user ids", "item": "item ids", "rating": "ratings",
               "timestamp": "timestamps"}


def _same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _column_values(df, column):
    """A DataFrame column as a numpy array; time-zone-aware datetimes become UTC."""
    values = df[column]
    dt = getattr(values, "dt", None)
    if dt is not None and getattr(dt, "tz", None) is not None:
        values = dt.tz_convert("UTC").dt.tz_localize(None)
    if hasattr(values, "to_numpy"):
        return values.to_numpy()
    return values


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
        # Positions below 2**31 fit int32: half the memory of the order (the peak of
        # building a rating set from arrays is key + order + the permuted values).
        order = np.empty(n, dtype=np.int32 if position_bits <= 31 else np.int64)
        mask = np.uint64((1 << position_bits) - 1)
        for start in range(0, n, block):
            order[start:start + block] = packed[start:start + block] & mask
        packed >>= np.uint64(position_bits)
        return order, key
    order = np.argsort(key, kind="stable")
    return order, key[order]


def _factorize(ids, name):
    """(sorted unique ids in the dtype of `ids`, index of each id among them as int32).

    Integer ids whose range is at most a few times their number are ranked in O(n) through
    a presence table; others are sorted.  More than MAX_IDS distinct ids are refused.
    """
    if ids.dtype.kind in "iu" and ids.size:
        low, high = int(ids.min()), int(ids.max())
        if high - low <= 4 * ids.size + 65_536:
            if not low:
                shifted = ids
            elif high - low <= np.iinfo(ids.dtype).max:  # ids - low cannot overflow
                shifted = ids - ids.dtype.type(low)
            else:
                shifted = ids.astype(np.int64) - low
            present = np.zeros(high - low + 1, dtype=bool)
            present[shifted] = True
            offsets = np.flatnonzero(present)
            _check_id_count(len(offsets), name)
            rank = np.cumsum(present, dtype=np.int32)
            rank -= 1
            # offsets + low is exact in uint64 (low >= 0) or int64 (the range is small), and
            # every result is one of the ids, so it fits their dtype.
            wide = np.uint64 if low >= 0 and ids.dtype.kind == "u" else np.int64
            unique = offsets.astype(wide)
            unique += wide(low)
            return unique.astype(ids.dtype), rank[shifted]
    unique, inverse = np.unique(ids, return_inverse=True)
    _check_id_count(len(unique), name)
    return unique, inverse.reshape(-1).astype(np.int32)


def _check_id_count(n, name):
    if n > MAX_IDS:
        raise ValueError(f"{name} holds {n:,} distinct ids; a rating set holds at most "
                         f"{MAX_IDS:,} users and {MAX_IDS:,} items")
