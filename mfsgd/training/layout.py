"""Prepare ratings for the kernel: balanced row/column blocks, the blocked layout, block schedules.

The ratings are split into B x B blocks: B row blocks of users and B column blocks of items,
balanced by rating counts (:func:`assign_blocks`).  An epoch is B sub-epochs of B blocks that
share no row block and no column block (:func:`block_schedule`), so the blocks of a sub-epoch
touch disjoint factor rows and run on separate threads (or workers).  :func:`build_layout`
writes every block's ratings as runs (one per user) in block order; :func:`lay_out_block`
writes one block alone, identical to its slice of the whole layout.

Random draws, in this order, from the caller's generator: the user-group permutation and the
item-group permutation of :func:`assign_blocks`, then the layout seed.  Results depend on the
seed and B, never on the thread count.
"""
from dataclasses import dataclass

import numpy as np

from .._kernels import _sgd

L2_TARGET_BYTES = 1 << 20
MAX_AUTO_BLOCKS = 16
MIN_RUN_LENGTH = 16


def auto_n_blocks(n_users, n_items, n_ratings, n_factors, itemsize):
    """Number of row/column blocks when ``n_blocks="auto"``.

    Enough blocks that one column block's item factors fit in about 1 MiB of L2 cache, but
    only as many as keep a user's ratings within one block (a run) at least 16 long on
    average, because every run costs a fresh user row (and popular items stay cached anyway);
    at least 2, so that two threads have work in every sub-epoch, and at most 16.  The count
    is rounded down to a power of two, so that 2, 4 or 8 threads share the blocks of a
    sub-epoch evenly.  It depends on the data and k only, never on the thread count, so
    results do not change with threads.
    """
    by_cache = -(-n_items * n_factors * itemsize // L2_TARGET_BYTES)
    by_runs = max(2, int(n_ratings / max(n_users, 1) / MIN_RUN_LENGTH))
    n_blocks = int(max(2, min(by_cache, by_runs, MAX_AUTO_BLOCKS)))
    n_blocks = 1 << (n_blocks.bit_length() - 1)
    return max(1, min(n_blocks, n_users, n_items))


ID_GROUP = 16
CACHE_LINE = 64


def aligned_empty(shape, dtype):
    """An uninitialized array whose data starts on a 64-byte cache-line boundary."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    buffer = np.empty(count + CACHE_LINE // dtype.itemsize, dtype=dtype)
    offset = (-buffer.ctypes.data % CACHE_LINE) // dtype.itemsize
    return buffer[offset:offset + count].reshape(shape)


def aligned_full(n, value, dtype):
    """A cache-line aligned 1-D array of `n` entries equal to `value`."""
    array = aligned_empty((n,), dtype)
    array.fill(value)
    return array


def aligned_copy(array):
    """`array` itself when C-contiguous and cache-line aligned, else an aligned copy."""
    if array.flags.c_contiguous and array.ctypes.data % CACHE_LINE == 0:
        return array
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


padded_width = _sgd.padded_width


def kernel_rows(factors):
    """The whole factor rows :func:`mfsgd._kernels._sgd.sgd_epoch` works on, shape (n, padded
    width).

    When a row of k values is a whole number of 64-byte lines, this is ``aligned_copy``.
    Otherwise it copies the factors into a zero-filled aligned buffer whose rows are padded to
    :func:`padded_width`; the kernel then runs on the padded rows (the zero columns stay zero
    under every update), with aligned full-width vector loads.  ``rows[:, :k]`` is the view of
    the factors themselves.
    """
    n, k = factors.shape
    width = padded_width(k, factors.itemsize)
    if width == k:
        return aligned_copy(factors)
    buffer = aligned_empty((n, width), factors.dtype)
    buffer[:, k:] = 0
    buffer[:, :k] = factors
    return buffer


def balanced_blocks(counts, n_blocks, rng):
    """Assign ids to ``n_blocks`` blocks holding near-equal numbers of ratings.

    Ids go to blocks in groups of 16 consecutive ids, so that with cache-line aligned factor
    and bias arrays no two blocks ever write to the same cache line (16 rows of k floats or
    doubles, and 16 biases, span whole 64-byte lines): threads running different blocks do
    not false-share.  The groups are shuffled with `rng` (to break ties at random), sorted by
    rating count, largest first, and dealt to blocks in snake order 0, 1, ..., B-1, B-1, ...,
    0, 0, 1, ...; with skewed (Zipf-like) popularity this balances the ratings per block far
    better than equal numbers of ids.
    """
    counts = np.asarray(counts)
    n = len(counts)
    n_groups = -(-n // ID_GROUP)
    group_counts = np.add.reduceat(counts, np.arange(0, n, ID_GROUP)) if n else counts
    order = rng.permutation(n_groups)
    order = order[np.argsort(-group_counts[order], kind="stable")]
    position = np.arange(n_groups, dtype=np.int64)
    lap, seat = position // n_blocks, position % n_blocks
    group_block = np.empty(n_groups, dtype=np.int32)
    group_block[order] = np.where(lap % 2 == 0, seat, n_blocks - 1 - seat).astype(np.int32)
    return np.repeat(group_block, ID_GROUP)[:n]


def assign_blocks(user_counts, item_counts, n_blocks, rng):
    """The row block of every user, the column block of every item, and the layout seed.

    Every layout of the same ratings and generator state makes these draws, in this order, so
    a local fit and a distributed one that both call it lay the ratings out identically.

    Parameters
    ----------
    user_counts, item_counts : array-like of int
        Ratings per user row and per item row.
    n_blocks : int
    rng : numpy.random.Generator

    Returns
    -------
    row_block, col_block : ndarray of int32
    seed : int
        Seed of the shuffle of each run (see :func:`mfsgd._kernels._sgd.fill_layout`).
    """
    row_block = balanced_blocks(user_counts, n_blocks, rng)
    col_block = balanced_blocks(item_counts, n_blocks, rng)
    return row_block, col_block, int(rng.integers(0, 2**63))


@dataclass
class BlockLayout:
    """Ratings laid out block by block for :func:`mfsgd._kernels._sgd.sgd_epoch`.

    Block ``b`` (row block ``b // n_blocks``, column block ``b % n_blocks``) holds runs
    ``block_ptr[b]:block_ptr[b + 1]``; run ``j`` is user ``run_user[j]``'s ratings
    ``items[run_ptr[j]:run_ptr[j + 1]]`` / ``ratings[...]``.  `order`, `block_sse`,
    `block_seconds` and `block_cpu_seconds` are the kernel's scratch space (visiting order of
    runs, squared error, wall and thread CPU seconds per block); `schedule` is the block
    schedule of the epoch the seconds were measured in (see :func:`block_schedule`).
    """

    n_blocks: int
    block_ptr: np.ndarray
    run_user: np.ndarray
    run_ptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    order: np.ndarray
    block_sse: np.ndarray
    block_seconds: np.ndarray
    block_cpu_seconds: np.ndarray
    schedule: np.ndarray = None

    @property
    def nbytes(self):
        """Memory held by the layout arrays."""
        return sum(a.nbytes for a in (self.block_ptr, self.run_user, self.run_ptr, self.items,
                                      self.ratings, self.order, self.block_sse,
                                      self.block_seconds, self.block_cpu_seconds))


def build_layout(ratings, n_blocks, rng, item_counts=None):
    """Lay `ratings` (user-major CSR) out in ``n_blocks`` x ``n_blocks`` blocks of runs.

    `item_counts` (ratings per item) is computed when not given.  Row and column blocks come
    from :func:`assign_blocks`; ratings within each run are shuffled once with the seed drawn
    there.
    """
    indptr = np.ascontiguousarray(ratings.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(ratings.indices, dtype=np.int32)
    if item_counts is None:
        item_counts = _sgd.count_items(indices, ratings.n_items)
    row_block, col_block, seed = assign_blocks(np.diff(ratings.indptr), item_counts, n_blocks,
                                               rng)
    data = np.ascontiguousarray(ratings.data, dtype=np.float32)
    return _fill(indptr, indices, data, row_block, col_block, n_blocks, seed, 0)


def lay_out_block(indptr, indices, data, first_run, seed):
    """One block alone, laid out exactly as its slice of :func:`build_layout`'s layout.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The block's ratings as a CSR over the block's users (in the row block's order of
        user rows), with the block's item indices.
    first_run : int
        The number of runs before this block in the whole layout (``block_ptr[block]``): run
        ``j`` is shuffled with stream ``first_run + j`` of `seed`.
    seed : int
        The layout seed from :func:`assign_blocks`.

    Returns
    -------
    BlockLayout
        With ``n_blocks=1``: one block whose runs, items and ratings equal the whole layout's
        runs ``first_run ...`` (user and item numbers are those of `indptr` / `indices`).
    """
    n_users = len(indptr) - 1
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    one_block = np.zeros(max(n_users, int(indices.max()) + 1 if len(indices) else 0),
                         dtype=np.int32)
    return _fill(np.ascontiguousarray(indptr, dtype=np.int64), indices,
                 np.ascontiguousarray(data, dtype=np.float32), one_block[:n_users], one_block,
                 1, seed, first_run)


def _fill(indptr, indices, data, row_block, col_block, n_blocks, seed, first_run):
    ratings_per_block, runs_per_block = _sgd.count_layout(indptr, indices, row_block, col_block,
                                                          n_blocks)
    block_ptr = np.zeros(n_blocks * n_blocks + 1, dtype=np.int64)
    np.cumsum(runs_per_block, out=block_ptr[1:])
    rating_start = np.zeros(n_blocks * n_blocks, dtype=np.int64)
    np.cumsum(ratings_per_block[:-1], out=rating_start[1:])
    n_runs = int(block_ptr[-1])
    run_user = np.empty(n_runs, dtype=np.int32)
    run_ptr = np.empty(n_runs + 1, dtype=np.int64)
    items = np.empty(len(data), dtype=np.int32)
    values = np.empty(len(data), dtype=np.float32)
    _sgd.fill_layout(indptr, indices, data, row_block, col_block, n_blocks, block_ptr[:-1],
                     rating_start, run_user, run_ptr, items, values, seed, first_run)
    return BlockLayout(n_blocks, block_ptr, run_user, run_ptr, items, values,
                       np.empty(n_runs, dtype=np.int32), np.zeros(n_blocks * n_blocks),
                       np.zeros(n_blocks * n_blocks), np.zeros(n_blocks * n_blocks))


def block_schedule(n_blocks, rng):
    """Blocks of each sub-epoch: row ``s`` lists blocks (r, c) with c = pi[(r + shift[s]) % B].

    Over the B sub-epochs every block runs once; within one sub-epoch no two blocks share a
    row block or a column block.  The shift order and the column permutation pi are drawn
    from `rng` every epoch.
    """
    shift = rng.permutation(n_blocks)
    col_perm = rng.permutation(n_blocks)
    rows = np.arange(n_blocks)
    cols = col_perm[(rows[None, :] + shift[:, None]) % n_blocks]
    return np.ascontiguousarray(rows[None, :] * n_blocks + cols, dtype=np.int32)
