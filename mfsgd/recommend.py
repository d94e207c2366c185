"""Top-n recommendations and nearest neighbours, all from one engine: :func:`top_n`.

:func:`top_n` ranks items for model user rows with the nogil top-n kernel
(:mod:`mfsgd._kernels._topn`), by the model's unclipped prediction
mu + b_u + b_i + p_u . q_i, equal bit for bit to ``predict`` before it clips; equal scores
rank the item with the lower model index (earlier in ``model.item_ids_``) first.  The model's
methods ``recommend``, ``recommend_all``, ``similar_items`` and ``similar_users`` call the
functions here, and :func:`mfsgd.metrics.top_k_items` calls :func:`top_n` too.

The cold-start rule, for a user the model does not know: items are ranked by the model's
prediction for an unknown user, the global mean plus the item bias (no user factors, no user
bias), which is exactly what ``predict`` returns for such a user.  ``recommend`` refuses
unknown users (KeyError); the ranking metrics apply this rule.

Ids are raw ids: the ones the model was fitted with (for a scipy.sparse matrix, the row and
column indices that hold ratings; others have no factors and are never returned).
"""
import numpy as np

from ._kernels import _topn
from ._validation import check_int, check_n_threads
from .data._idmap import first_unknown

USER_CHUNK = 1024
_NO_ROWS = (np.zeros(0, np.int64), np.zeros(0, np.int32))


def top_n(state, rows, n, exclude=None, candidates=None, n_threads=1):
    """The `n` best items for each of `rows`, by the model's unclipped prediction.

    Parameters
    ----------
    state : FitState
        A fitted model's state (``model.fit_state_``).
    rows : array-like of int
        Model user rows; -1 is a user unknown to the model, ranked by the cold-start rule
        (see the module docstring).
    n : int
        Length of each list.
    exclude : None, "seen" or (indptr, indices)
        Items never ranked: none; each user's items rated in training (none for an unknown
        user); or a CSR of item rows, sorted within each row, with one row per entry of
        `rows`.
    candidates : ndarray of int32, optional
        Ascending, unique item rows to rank; default every item.
    n_threads : int, default=1
        OpenMP threads over the users (no effect on the result).

    Returns
    -------
    index : ndarray of int32, shape (len(rows), n)
        Item rows, best first; -1 where a user has fewer than `n` candidates.
    scores : ndarray of float64, shape (len(rows), n)
        The predictions of those items; -inf in padded slots.
    """
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    factors = np.zeros((len(rows), state.n_factors), dtype=state.user_factors.dtype)
    factors[known] = state.user_factors[rows[known]]
    user_bias = np.zeros(len(rows), dtype=state.user_bias.dtype)
    user_bias[known] = state.user_bias[rows[known]]
    if exclude is None:
        exclude = _NO_ROWS
    elif isinstance(exclude, str) and exclude == "seen":
        exclude = csr_rows(state.seen_indptr, state.seen_indices, rows)
    all_items = candidates is None
    index = np.empty((len(rows), n), dtype=np.int32)
    scores = np.empty((len(rows), n), dtype=np.float64)
    _topn.top_n(factors, np.ascontiguousarray(state.item_factors), user_bias,
                np.ascontiguousarray(state.item_bias), float(state.global_mean),
                np.arange(len(rows), dtype=np.int64),
                np.zeros(0, np.int32) if all_items else candidates, all_items,
                np.ascontiguousarray(exclude[0], dtype=np.int64),
                np.ascontiguousarray(exclude[1], dtype=np.int32), index, scores, n_threads)
    return index, scores


def csr_rows(indptr, indices, rows):
    """The CSR of rows `rows` of (indptr, indices); a row of -1 is empty."""
    valid = (rows >= 0) & (rows < len(indptr) - 1)
    safe = np.where(valid, rows, 0)
    starts = np.where(valid, indptr[safe], 0)
    counts = np.where(valid, indptr[safe + 1] - starts, 0)
    out = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    positions = np.repeat(starts - out[:-1], counts) + np.arange(out[-1])
    return out, indices[positions]


def recommend(model, user, n=10, exclude_seen=True, items=None):
    """The `n` items with the highest predicted rating for one user.

    Scores are the model's unclipped predictions mu + b_u + b_i + p_u . q_i, equal bit for
    bit to ``predict`` before it clips to the rating range.  Items come best first; equal
    scores rank the item with the lower model index (earlier in ``model.item_ids_``) first.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    user : id
        Raw id of a user known to the model.
    n : int, default=10
        Number of items to return (fewer when fewer candidates remain).
    exclude_seen : bool, default=True
        Leave out the items the user rated in the training data (of ``fit`` and every
        ``partial_fit``).
    items : array-like of ids, optional
        Rank only these items (raw ids, duplicates ignored); default: every item.

    Returns
    -------
    item_ids : ndarray, shape (m,), m = min(n, number of candidates)
        Raw item ids, best first.
    scores : ndarray of float64, shape (m,)

    Raises
    ------
    KeyError
        When `user` is unknown to the model: there is no cold-start ranking (for a new user
        with a few ratings, add them with ``fold_in(ratings, user=...)`` first).
    ValueError
        When `n` < 1 or `items` holds an id the model does not know.
    """
    state = model.fit_state_
    n = check_int("n", n, 1)
    _check_bool("exclude_seen", exclude_seen)
    row = _known_row(state.user_map, user, "user")
    candidates = None if items is None else _candidate_rows(state.item_map, items)
    index, scores = top_n(state, np.array([row]), n, "seen" if exclude_seen else None,
                          candidates, _n_threads(model))
    found = index[0] >= 0
    return _raw_ids(state.item_map, index[0][found]), scores[0][found]


def recommend_all(model, users=None, n=10, exclude_seen=True):
    """The `n` best items for many users at once, computed in chunks of 1024 users.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    users : array-like of ids, optional
        Raw ids of known users; default: every user, in the order of ``model.user_ids_``.
    n : int, default=10
    exclude_seen : bool, default=True
        Leave out each user's items rated in training, as in :func:`recommend`.

    Returns
    -------
    item_ids : ndarray, shape (len(users), n)
        Raw item ids, best first in each row.  A row with fewer than `n` candidates is
        padded with a fill id: -1 for integer ids (narrow unsigned ids are returned as int64
        so that -1 fits; uint64 ids, held only when an id is 2**63 or more, stay uint64 and
        pad with 2**64 - 1), "" for string ids, b"" for bytes ids, None otherwise.
    scores : ndarray of float64, shape (len(users), n)
        Row i, column j is the score of ``item_ids[i, j]``; -inf in padded slots, which is
        the reliable way to find them.

    Raises
    ------
    KeyError
        When a user is unknown to the model.
    ValueError
        When `n` < 1 or `users` is not one-dimensional.
    """
    state = model.fit_state_
    n = check_int("n", n, 1)
    _check_bool("exclude_seen", exclude_seen)
    if users is None:
        rows = np.arange(state.n_users, dtype=np.int64)
    else:
        rows = state.user_map.lookup(users, "users")
        if (rows < 0).any():
            raise KeyError(f"unknown user id {first_unknown(users, rows)!r}")
    raw_items = state.item_map.all_raw()
    fill = fill_id(raw_items.dtype)
    item_ids = np.empty((len(rows), n), dtype=_output_dtype(raw_items.dtype))
    scores = np.empty((len(rows), n), dtype=np.float64)
    n_threads = _n_threads(model)
    for start in range(0, len(rows), USER_CHUNK):
        chunk = slice(start, start + USER_CHUNK)
        index, scores[chunk] = top_n(state, rows[chunk], n, "seen" if exclude_seen else None,
                                     None, n_threads)
        found = index >= 0
        chunk_ids = item_ids[chunk]
        chunk_ids[found] = raw_items[index[found]]
        chunk_ids[~found] = fill
    return item_ids, scores


def similar_items(model, item, n=10):
    """The `n` items whose factors have the highest cosine similarity with `item`'s.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    item : id
        Raw id of an item known to the model; it is never among the results.
    n : int, default=10

    Returns
    -------
    item_ids : ndarray, shape (min(n, n_items - 1),)
        Raw ids, most similar first; equal similarities rank the lower model index first.
    similarities : ndarray of float64
        Cosine similarities in [-1, 1]; a factor row of zeros has similarity 0 with all.

    Raises
    ------
    KeyError
        When `item` is unknown to the model.
    """
    state = model.fit_state_
    return _similar(state.item_map, state.item_factors, "item", item, n)


def similar_users(model, user, n=10):
    """The `n` users whose factors have the highest cosine similarity with `user`'s.

    Parameters
    ----------
    model : MatrixFactorization
        A fitted model.
    user : id
        Raw id of a user known to the model; it is never among the results.
    n : int, default=10

    Returns
    -------
    user_ids : ndarray, shape (min(n, n_users - 1),)
        Raw ids, most similar first; equal similarities rank the lower model index first.
    similarities : ndarray of float64
        Cosine similarities in [-1, 1]; a factor row of zeros has similarity 0 with all.

    Raises
    ------
    KeyError
        When `user` is unknown to the model.
    """
    state = model.fit_state_
    return _similar(state.user_map, state.user_factors, "user", user, n)


def fill_id(dtype):
    """The id that pads rows of :func:`recommend_all` for raw ids of `dtype`.

    Parameters
    ----------
    dtype : numpy.dtype
        Dtype of the model's raw item ids.

    Returns
    -------
    int, str, bytes or None
        -1 for integer ids (2**64 - 1 for uint64 ids, which a model holds only when an id is
        2**63 or more), "" for str ids, b"" for bytes ids, None for anything else.
    """
    if dtype == np.uint64:
        return 2**64 - 1
    if dtype.kind in "iu":
        return -1
    if dtype.kind == "U":
        return ""
    if dtype.kind == "S":
        return b""
    return None


def _n_threads(model):
    return check_n_threads("n_threads", model.n_threads)


def _raw_ids(id_map, rows):
    """Raw ids of model rows; int64 for identity maps, as ``all_raw`` gives."""
    return id_map.raw(rows.astype(np.int64))


def _output_dtype(dtype):
    """Narrow unsigned ids are returned as int64 so that -1 fits; uint64 ids stay uint64,
    since int64 would not hold those of 2**63 or more."""
    return np.dtype(np.int64) if dtype.kind == "u" and dtype != np.uint64 else dtype


def _similar(id_map, factors, kind, raw, n):
    """(raw ids, cosine similarities) of the `n` rows of `factors` nearest to id `raw`'s."""
    n = check_int("n", n, 1)
    row = _known_row(id_map, raw, kind)
    rows, similarities = _nearest(factors, row, n)
    return _raw_ids(id_map, rows), similarities


def _nearest(factors, row, n):
    """(rows, cosine similarities) of the `n` rows of `factors` nearest to row `row`."""
    unit = _unit_rows(factors)
    dtype = unit.dtype.type
    index = np.empty((1, n), dtype=np.int32)
    similarities = np.empty((1, n), dtype=np.float64)
    # The query is scored like a user with zero biases; its own row is its only "seen" item.
    _topn.top_n(np.ascontiguousarray(unit[row:row + 1]), unit, np.zeros(1, dtype),
                np.zeros(len(unit), dtype), 0.0, np.zeros(1, np.int64), np.zeros(0, np.int32),
                True, np.array([0, 1], np.int64), np.array([row], np.int32), index,
                similarities, 1)
    found = index[0] >= 0
    return index[0][found], similarities[0][found]


def _unit_rows(factors):
    """Rows of `factors` scaled to unit length (rows of zeros stay zero), same dtype."""
    norms = np.sqrt(np.einsum("ij,ij->i", factors, factors, dtype=np.float64))
    norms[norms == 0] = 1.0
    unit = np.array(factors, order="C")
    unit /= norms.astype(unit.dtype)[:, None]
    return unit


def _known_row(id_map, raw, kind):
    """Model row of one raw id, KeyError naming it when unknown."""
    if np.ndim(raw) != 0:
        raise TypeError(f"{kind} must be a single id, got {raw!r}")
    row = int(id_map.lookup([raw], kind)[0])
    if row < 0:
        raise KeyError(f"unknown {kind} id {raw!r}")
    return row


def _candidate_rows(id_map, items):
    """Ascending unique int32 item rows of the raw ids `items`; ValueError on unknown ids."""
    rows = id_map.lookup(items, "items")
    if (rows < 0).any():
        raise ValueError(f"items holds an id unknown to the model: "
                         f"{first_unknown(items, rows)!r}")
    return np.unique(rows).astype(np.int32)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
