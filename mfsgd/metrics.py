"""Evaluation metrics: rating errors (RMSE, MAE) and top-k ranking quality.

Rating errors compare predicted with true ratings.  Ranking metrics compare top-k lists of
recommended items with the relevant items of a test rating set:

* an item is *relevant* to a user when the user rated it in `test` with a rating of at least
  `threshold` (every test rating counts when `threshold` is None);
* users without any relevant test item are skipped (they would make every metric 0 or
  undefined); the metric is the mean over the remaining users, NaN (with a RuntimeWarning)
  when no user remains;
* with ``hit_j`` = 1 when the item at rank j (1-based) of the user's list is relevant and
  ``R`` the user's relevant items:

  - precision@k = sum_{j<=k} hit_j / k  (padded, short lists still divide by k);
  - recall@k = sum_{j<=k} hit_j / |R|;
  - ndcg@k = DCG / IDCG with binary gains and log2 discounts:
    DCG = sum_{j<=k} hit_j / log2(j + 1), IDCG = sum_{j<=min(k, |R|)} 1 / log2(j + 1);
  - map@k = mean over users of AP@k = sum_{j<=k} hit_j * precision@j / min(k, |R|).

The lists are 2-D arrays of raw item ids (row r for user ``users[r]``, padded with a fill
value), or computed here from a fitted model with :func:`top_k_items`, which ranks with the
package's one top-n engine (:func:`mfsgd.recommend.top_n`) and its cold-start rule.
"""
import numbers
import warnings

import numpy as np

from ._validation import as_id_array, check_float, check_int, check_n_threads
from .data.ratings import as_ratings
from .recommend import USER_CHUNK, top_n

__all__ = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
           "top_k_items"]


def rmse(y_true, y_pred):
    """Root mean squared error: of predicted against true ratings, or of a model on ratings.

    Called as ``rmse(y_true, y_pred)`` or, like the ranking metrics, as
    ``rmse(model, ratings)``.

    Parameters
    ----------
    y_true : array-like of float, shape (n,), or fitted model
        True ratings; or a fitted MatrixFactorization (or search), which is then scored on
        the ratings given as `y_pred` (``model.score(ratings, metric="rmse")``).
    y_pred : array-like of float, shape (n,), or rating set
        Predicted ratings, finite, as long as `y_true`; after a model, the ratings to score it
        on: mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple.

    Returns
    -------
    float
        sqrt(mean((y_pred - y_true) ** 2)), computed in float64.
    """
    if _is_model(y_true):
        return y_true.score(y_pred, metric="rmse")
    error = _errors(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(error))))


def mae(y_true, y_pred):
    """Mean absolute error: of predicted against true ratings, or of a model on ratings.

    Called as ``mae(y_true, y_pred)`` or as ``mae(model, ratings)`` (see :func:`rmse`).

    Parameters
    ----------
    y_true : array-like of float, shape (n,), or fitted model
        True ratings; or a fitted model, scored on the ratings given as `y_pred`.
    y_pred : array-like of float, shape (n,), or rating set
        Predicted ratings, finite, as long as `y_true`; after a model, the ratings to score it
        on.

    Returns
    -------
    float
        mean(|y_pred - y_true|), computed in float64.
    """
    if _is_model(y_true):
        return y_true.score(y_pred, metric="mae")
    return float(np.mean(np.abs(_errors(y_true, y_pred))))


def _is_model(obj):
    """A model (fitted or not: score says which) rather than an array of ratings."""
    return callable(getattr(obj, "score", None)) and callable(getattr(obj, "fit", None))


def _errors(y_true, y_pred):
    arrays = {}
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
        array = array.astype(np.float64, copy=False)
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(f"{name} must be finite, found {array[bad][0]!r} at position "
                             f"{int(np.flatnonzero(bad)[0])}")
        arrays[name] = array
    if len(arrays["y_true"]) != len(arrays["y_pred"]):
        raise ValueError(f"y_true and y_pred must have the same length, got "
                         f"{len(arrays['y_true'])} and {len(arrays['y_pred'])}")
    if len(arrays["y_true"]) == 0:
        raise ValueError("y_true is empty")
    return arrays["y_pred"] - arrays["y_true"]


_RANKING_PARAMETERS = """
    Parameters
    ----------
    recommended : array-like, shape (n_users, >= k), or fitted MatrixFactorization
        Raw item ids, best first; row r is the list of user ``users[r]``.  Entries equal to
        `fill_value` are empty slots.  Given a fitted model, the lists are its top-k items
        (see :func:`top_k_items`).
    test : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple
        Held-out ratings that define the relevant items (a tuple holds raw ids).
    k : int, default=10
        Length of the lists evaluated (the first k columns of `recommended`).
    threshold : float, optional
        Smallest rating that makes a test item relevant; None makes every test item relevant.
    users : array-like of raw user ids, optional
        The user of each row of `recommended`; default: every user of `test`, in the order of
        ``test.user_ids``.  Users absent from `test` are skipped.
    exclude : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple, optional
        Only with a model: items never recommended to a user, typically the training ratings.
    fill_value : int or str, optional
        Padding of short lists; default -1 for integer ids (2**64 - 1 for uint64 ids), ""
        for string ids.

    Returns
    -------
    float
        The mean over users with at least one relevant test item; NaN (with a RuntimeWarning)
        when there is none.
"""


def precision_at_k(recommended, test, k=10, threshold=None, users=None, exclude=None,
                   fill_value=None):
    """Precision at k: the share of the k recommended slots that hold a relevant item.

    precision@k = (relevant items among the first k) / k, averaged over the users with at
    least one relevant test item.
    """
    hits, n_relevant = _hits(recommended, test, k, threshold, users, exclude, fill_value)
    return _mean(hits.sum(axis=1) / hits.shape[1])


def recall_at_k(recommended, test, k=10, threshold=None, users=None, exclude=None,
                fill_value=None):
    """Recall at k: the share of a user's relevant test items found in the first k.

    recall@k = (relevant items among the first k) / (relevant items), averaged over the users
    with at least one relevant test item.
    """
    hits, n_relevant = _hits(recommended, test, k, threshold, users, exclude, fill_value)
    return _mean(hits.sum(axis=1) / np.maximum(n_relevant, 1))


def ndcg_at_k(recommended, test, k=10, threshold=None, users=None, exclude=None,
              fill_value=None):
    """Normalized discounted cumulative gain at k, with binary gains and log2 discounts.

    DCG@k = sum over ranks j = 1..k of hit_j / log2(j + 1); the ideal DCG puts all relevant
    items first: sum over j = 1..min(k, |relevant|) of 1 / log2(j + 1).  ndcg@k = DCG / IDCG,
    averaged over the users with at least one relevant test item.
    """
    hits, n_relevant = _hits(recommended, test, k, threshold, users, exclude, fill_value)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal = np.cumsum(discount)
    dcg = (hits * discount).sum(axis=1)
    return _mean(dcg / ideal[np.minimum(n_relevant, hits.shape[1]) - 1])


def map_at_k(recommended, test, k=10, threshold=None, users=None, exclude=None,
             fill_value=None):
    """Mean average precision at k.

    AP@k = sum over ranks j = 1..k of hit_j * precision@j / min(k, |relevant|); map@k is its
    mean over the users with at least one relevant test item.
    """
    hits, n_relevant = _hits(recommended, test, k, threshold, users, exclude, fill_value)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    average = (precision * hits).sum(axis=1)
    return _mean(average / np.minimum(n_relevant, hits.shape[1]))


for _function in (precision_at_k, recall_at_k, ndcg_at_k, map_at_k):
    if _function.__doc__:                         # None under python -OO
        _function.__doc__ += _RANKING_PARAMETERS
del _function


def _mean(values):
    if len(values) == 0:
        warnings.warn("no user has a relevant test item: the ranking metric is undefined (NaN)",
                      RuntimeWarning, stacklevel=3)
        return float("nan")
    return float(np.mean(values))


def _hits(recommended, test, k, threshold, users, exclude, fill_value):
    """(hits bool (n, k), relevant count (n,)) for the evaluated users with a relevant item."""
    test = as_ratings("test", test, copy=False)
    k = check_int("k", k, 1)
    if threshold is not None:
        threshold = check_float("threshold", threshold)
    if users is not None:
        users = as_id_array("users", users)
    if _fit_state(recommended) is not None:
        recommended = top_k_items(recommended, test.user_ids if users is None else users, k,
                                  exclude=exclude, fill_value=fill_value)
    elif exclude is not None:
        raise ValueError("exclude applies only when recommended is a fitted model; remove "
                         "excluded items from the lists before passing them")
    try:
        lists = np.asarray(recommended)
    except ValueError:
        raise ValueError("recommended must be a 2-D array (every list padded to the same "
                         "length) or a fitted model") from None
    if lists.ndim != 2:
        raise ValueError(f"recommended must be two-dimensional (one row per user), got shape "
                         f"{lists.shape}")
    if lists.shape[1] < k:
        raise ValueError(f"k={k} exceeds the length of the recommended lists "
                         f"({lists.shape[1]} columns)")
    lists = lists[:, :k]
    if lists.dtype.kind not in "iuUS":
        raise TypeError(f"recommended must hold integer or string item ids, got dtype "
                        f"{lists.dtype}")
    if users is None:
        if len(lists) != test.n_users:
            raise ValueError(f"recommended has {len(lists)} rows but test has {test.n_users} "
                             f"users; pass users= to say whose list each row is")
        rows = np.arange(test.n_users)
    else:
        if len(users) != len(lists):
            raise ValueError(f"users has {len(users)} ids but recommended has {len(lists)} rows")
        rows = test.user_index(users)
    fill = default_fill(lists) if fill_value is None else fill_value
    empty = lists == np.asarray(fill) if (lists.dtype.kind in "US") == isinstance(fill, str) \
        else np.zeros(lists.shape, dtype=bool)
    _check_no_repeats(lists, empty)
    columns = test.item_index(lists.ravel()).reshape(lists.shape)
    user_of = np.repeat(np.arange(test.n_users, dtype=np.int64), np.diff(test.indptr))
    relevant = np.ones(len(test), dtype=bool) if threshold is None else test.data >= threshold
    n_items = max(test.n_items, 1)
    relevant_keys = user_of[relevant] * n_items + test.indices[relevant]   # sorted (CSR order)
    per_user = np.bincount(user_of[relevant], minlength=test.n_users)
    n_relevant = np.where(rows >= 0, per_user[np.maximum(rows, 0)], 0)
    keys = rows[:, None] * n_items + columns
    valid = (rows >= 0)[:, None] & (columns >= 0) & ~empty
    if len(relevant_keys):
        where = np.minimum(np.searchsorted(relevant_keys, keys), len(relevant_keys) - 1)
        hits = valid & (relevant_keys[where] == keys)
    else:
        hits = np.zeros(lists.shape, dtype=bool)
    keep = n_relevant > 0
    return hits[keep], n_relevant[keep]


def _check_no_repeats(lists, empty):
    """Raise ValueError when a list names the same item twice (it would count twice)."""
    if lists.shape[1] < 2:
        return
    order = np.argsort(lists, axis=1, kind="stable")
    ordered = np.take_along_axis(lists, order, axis=1)
    ordered_empty = np.take_along_axis(empty, order, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & ~ordered_empty[:, 1:]
    if repeated.any():
        row, col = np.argwhere(repeated)[0]
        raise ValueError(f"recommended row {int(row)} lists item {ordered[row, col].item()!r} "
                         f"more than once")


def top_k_items(model, users, k=10, exclude=None, fill_value=None, batch_size=None):
    """The `k` items of highest predicted rating for each user, as raw item ids.

    Ranks with :func:`mfsgd.recommend.top_n`, the engine of ``recommend``: by the model's
    unclipped prediction, ties to the item earlier in ``model.item_ids_``.  Users unknown to
    the model get its cold-start ranking: items by the prediction for an unknown user, the
    global mean plus the item bias.

    Parameters
    ----------
    model : fitted MatrixFactorization
    users : array-like of raw user ids
        Row ``r`` of the result is for ``users[r]``.
    k : int, default=10
        Length of each list.
    exclude : mfsgd.Ratings, scipy.sparse matrix or (users, items, ratings) tuple, optional
        Ratings whose (user, item) pairs are never recommended, typically the training set
        (a tuple holds raw ids, as everywhere).
    fill_value : int or str, optional
        Pads lists shorter than `k` (a user who rated nearly every item, or `k` above the
        number of items); default -1 for integer item ids (2**64 - 1 for uint64 ids), ""
        for string ids.
    batch_size : int, optional
        Users ranked per call of the top-n kernel; default 1024.

    Returns
    -------
    ndarray, shape (len(users), k)
        Raw item ids, best first.
    """
    state = _fit_state(model)
    if state is None:
        raise TypeError(f"model must be a fitted MatrixFactorization, got {type(model).__name__}")
    k = check_int("k", k, 1)
    users = as_id_array("users", users)
    item_ids = np.asarray(state.item_map.all_raw())
    batch_size = check_int("batch_size", USER_CHUNK if batch_size is None else batch_size, 1)
    fill = default_fill(item_ids) if fill_value is None else fill_value
    as_integer = not isinstance(fill, (str, bool, np.bool_)) and isinstance(fill, numbers.Integral)
    if not (isinstance(fill, str) if item_ids.dtype.kind in "US" else as_integer):
        raise TypeError(f"fill_value must be a {'string' if item_ids.dtype.kind in 'US' else 'integer'} "
                        f"like the model's item ids, got {fill!r}")
    if isinstance(fill, str):
        out_dtype = np.result_type(item_ids.dtype, np.asarray(fill).dtype)
    else:
        # int64 holds every integer id and -1, except uint64 ids (those of 2**63 or more).
        out_dtype = np.dtype(np.uint64 if item_ids.dtype == np.uint64 else np.int64)
        info = np.iinfo(out_dtype)
        if not info.min <= fill <= info.max:
            raise ValueError(f"fill_value={fill!r} does not fit the dtype {out_dtype} of the "
                             f"lists of these item ids")
    rows = state.user_map.lookup(users, "users")
    excluded = None if exclude is None else _Exclusions(as_ratings("exclude", exclude, copy=False),
                                                        state.item_map)
    result = np.full((len(users), k), fill, dtype=out_dtype)
    n_threads = check_n_threads("n_threads", model.n_threads)
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        index, _ = top_n(state, rows[batch], k,
                         None if excluded is None else excluded.rows(users[batch]),
                         None, n_threads)
        found = index >= 0
        result[batch][found] = item_ids[index[found]].astype(out_dtype, copy=False)
    return result


def default_fill(ids):
    """The padding value for lists of ids like `ids`: -1 for numbers (2**64 - 1 for uint64
    ids, which hold ids of 2**63 or more), "" for strings."""
    dtype = np.asarray(ids).dtype
    if dtype.kind in "US":
        return ""
    return 2**64 - 1 if dtype == np.uint64 else -1


def _fit_state(model):
    """The FitState of a fitted model, or None for anything else."""
    return getattr(model, "fit_state_", None)


class _Exclusions:
    """The model's item rows of the (user, item) pairs of a rating set, per user."""

    def __init__(self, ratings, item_map):
        self.ratings = ratings
        self.model_column = item_map.lookup(np.asarray(ratings.item_ids), "exclude items")

    def rows(self, raw_users):
        """CSR (indptr, sorted item rows) with one row per raw user."""
        rows = self.ratings.user_index(raw_users)
        indptr, indices = self.ratings.indptr, self.ratings.indices
        n_rows = len(rows)
        known = rows >= 0
        starts = np.where(known, indptr[np.where(known, rows, 0)], 0)
        counts = np.where(known, indptr[np.where(known, rows, 0) + 1] - starts, 0)
        owner = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        columns = self.model_column[indices[np.repeat(starts, counts) + offset]]
        kept = columns >= 0
        owner, columns = owner[kept], columns[kept]
        order = np.lexsort((columns, owner))
        out = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n_rows), out=out[1:])
        return out, columns[order].astype(np.int32)
