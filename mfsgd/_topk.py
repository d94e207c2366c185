"""Top-k items per user from a fitted model's factors, scored in NumPy in row batches."""
import numbers

import numpy as np

from ._idmap import IdMap
from ._validation import as_id_array, check_int
from .ratings import as_ratings

# Scores held at once: batch rows x n_items floats (16 MB in float32).
_BATCH_SCORES = 1 << 22


def is_fitted_model(obj):
    """True for a fitted factor model (anything with user/item factors, biases and ids)."""
    return all(hasattr(obj, name) for name in
               ("user_factors_", "item_factors_", "item_bias_", "user_ids_", "item_ids_"))


def default_fill(ids):
    """The padding value for lists of ids like `ids`: -1 for numbers (2**64 - 1 for uint64
    ids, which hold ids of 2**63 or more), "" for strings."""
    dtype = np.asarray(ids).dtype
    if dtype.kind in "US":
        return ""
    return 2**64 - 1 if dtype == np.uint64 else -1


def top_k_items(model, users, k=10, exclude=None, fill_value=None, batch_size=None):
    """The `k` items of highest predicted rating for each user, as raw item ids.

    Scores every item with the model's factors in NumPy,
    ``user_factors_ @ item_factors_.T + item_bias_`` (the global mean and user bias do not
    change a user's order), a batch of users at a time so that memory stays bounded.
    Users unknown to the model get the cold-start ranking of ``predict``: items by bias.

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
        Users scored at once; default keeps each batch's scores near 4 million values.

    Returns
    -------
    ndarray, shape (len(users), k)
        Raw item ids, best first; ties in score go to the lower factor row.
    """
    if not is_fitted_model(model):
        raise TypeError(f"model must be a fitted MatrixFactorization, got {type(model).__name__}")
    k = check_int("k", k, 1)
    users = as_id_array("users", users)
    item_ids = np.asarray(model.item_ids_)
    n_items = len(item_ids)
    if batch_size is None:
        batch_size = max(1, _BATCH_SCORES // max(n_items, 1))
    batch_size = check_int("batch_size", batch_size, 1)
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
    rows = IdMap(np.asarray(model.user_ids_)).lookup(users, "users")
    excluder = None if exclude is None else _Excluder(as_ratings("exclude", exclude, copy=False),
                                                      item_ids)
    result = np.full((len(users), k), fill, dtype=out_dtype)
    top = min(k, n_items)
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        scores = _scores(model, rows[batch])
        if excluder is not None:
            excluder.apply(scores, users[batch])
        np.negative(scores, out=scores)          # ascending order of -score is best first
        if top < n_items:
            best = np.argpartition(scores, top - 1, axis=1)[:, :top]
        else:
            best = np.broadcast_to(np.arange(n_items), scores.shape)
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.lexsort((best, best_scores))
        best = np.take_along_axis(best, order, axis=1)
        chosen = item_ids[best].astype(out_dtype, copy=False)
        empty = np.isposinf(np.take_along_axis(best_scores, order, axis=1))
        result[batch, :top] = np.where(empty, np.asarray(fill, dtype=out_dtype), chosen)
    return result


def _scores(model, rows):
    """Predicted-rating order keys (float, shape (len(rows), n_items)) for model user rows."""
    factors = model.user_factors_
    known = rows >= 0
    user_part = np.zeros((len(rows), factors.shape[1]), dtype=factors.dtype)
    user_part[known] = factors[rows[known]]
    scores = user_part @ model.item_factors_.T
    scores += model.item_bias_
    return scores


class _Excluder:
    """Sets to -inf the scores of the (user, item) pairs a rating set holds."""

    def __init__(self, ratings, model_item_ids):
        self.ratings = ratings
        self.model_column = IdMap(model_item_ids).lookup(np.asarray(ratings.item_ids),
                                                         "exclude items")

    def apply(self, scores, raw_users):
        rows = self.ratings.user_index(raw_users)
        indptr = self.ratings.indptr
        known = rows >= 0
        starts = np.where(known, indptr[np.where(known, rows, 0)], 0)
        counts = np.where(known, indptr[np.where(known, rows, 0) + 1] - starts, 0)
        total = int(counts.sum())
        if total == 0:
            return
        score_row = np.repeat(np.arange(len(rows)), counts)
        offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        columns = self.model_column[self.ratings.indices[np.repeat(starts, counts) + offset]]
        seen = columns >= 0
        scores[score_row[seen], columns[seen]] = -np.inf
