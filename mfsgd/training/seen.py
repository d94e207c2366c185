"""The items each user rated in training, as a CSR in model row/column index space.

Rows hold sorted, unique column indices, so that the top-n kernel can skip a user's rated
items by merging two ascending lists.
"""
import numpy as np


def seen_from_ratings(ratings):
    """The (indptr int64, indices int32) CSR of rated items of a rating set.

    Rating sets hold sorted rows without repeats, so their own arrays serve.  They are shared
    when nobody can change them (read-only all the way to the memory's owner, as in a
    :class:`mfsgd.Ratings` that built its own arrays), and copied otherwise: a rating set that
    wraps a caller's scipy.sparse matrix sees every later change the caller makes.
    """
    indptr, indices = ratings.indptr, ratings.indices
    copy = not (_is_immutable(indptr) and _is_immutable(indices))
    return (np.array(indptr, dtype=np.int64, copy=copy or None),
            np.array(indices, dtype=np.int32, copy=copy or None))


def _is_immutable(array):
    """True when `array` views memory whose owning array is read-only."""
    while isinstance(array, np.ndarray) and isinstance(array.base, np.ndarray):
        array = array.base
    return isinstance(array, np.ndarray) and array.base is None and not array.flags.writeable


def merged_seen(old_indptr, old_indices, new_indptr, new_indices):
    """The union of two seen CSRs, row by row; `old` may have fewer rows than `new`."""
    n_rows = len(new_indptr) - 1
    old_indptr = grown_indptr(old_indptr, n_rows)
    rows = np.concatenate([
        np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(old_indptr)),
        np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(new_indptr))])
    items = np.concatenate([old_indices, new_indices]).astype(np.int64)
    n_cols = int(items.max()) + 1 if items.size else 1
    keys = np.unique(rows * n_cols + items)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_cols, minlength=n_rows), out=indptr[1:])
    return indptr, (keys % n_cols).astype(np.int32)


def grown_indptr(indptr, n_rows):
    """`indptr` extended with empty rows up to `n_rows` rows."""
    extra = n_rows + 1 - len(indptr)
    if extra <= 0:
        return indptr
    return np.concatenate([indptr, np.full(extra, indptr[-1], dtype=np.int64)])


def check_seen(indptr, indices, n_rows, n_cols, where):
    """Raise ValueError (naming `where`) unless the arrays form a valid seen CSR."""
    problem = None
    if indptr.shape != (n_rows + 1,):
        problem = f"seen_indptr has shape {indptr.shape}, expected ({n_rows + 1},)"
    elif indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        problem = "seen_indptr is not a valid CSR row pointer"
    elif indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        problem = f"seen_indices holds item indices outside [0, {n_cols})"
    elif not _rows_sorted(indptr, indices):
        problem = "seen_indices is not sorted within rows"
    if problem:
        raise ValueError(f"{where}: {problem}")


def _rows_sorted(indptr, indices):
    """True when every row's indices strictly increase."""
    if len(indices) < 2:
        return True
    rising = np.diff(indices.astype(np.int64)) > 0
    # Steps that cross into the next row may fall; mark them as fine.
    row_starts = indptr[1:-1]
    row_starts = row_starts[(row_starts > 0) & (row_starts < len(indices))]
    rising[row_starts - 1] = True
    return bool(rising.all())
