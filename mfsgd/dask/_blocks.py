"""What a worker does with one block: split rating partitions into blocks, lay a block out
exactly as :func:`mfsgd.training.layout.build_layout` lays it out inside the whole layout, and run
one block's SGD pass with the local kernel.

Everything here is a pure function of its arguments (inputs are never modified), so that
Dask may run it again, anywhere, after a worker is lost and get the same bytes.
"""
from dataclasses import dataclass

import numpy as np

from .._kernels import _sgd
from ..models.mf import MFKernel
from ..training.layout import aligned_empty, lay_out_block


@dataclass
class BlockLayout:
    """The ratings of block ``blk`` = (row block, column block) laid out for the kernel.

    ``run_user`` and ``items`` index the block's own factor rows: user ``j`` of the row
    block (its users in ascending global index) and item ``j`` of the column block.  The runs
    are in the order of the whole layout (ascending user) and each run's ratings are shuffled
    with the seed of its *global* run number, so the arrays equal the block's slice of the
    local layout once the indices are mapped back.
    """

    blk: int
    n_blocks: int
    run_user: np.ndarray
    run_ptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    @property
    def n_runs(self):
        """Number of runs (users with ratings in the block)."""
        return len(self.run_user)

    @property
    def order(self):
        """Scratch space for the kernel's visiting order of the runs (fresh at every call)."""
        return np.empty(self.n_runs, dtype=np.int32)

    @property
    def nbytes(self):
        """Memory held by the arrays."""
        return self.run_user.nbytes + self.run_ptr.nbytes + self.items.nbytes + self.ratings.nbytes


def split_partition(mapped, row_block, col_block, user_local, item_local, n_blocks):
    """Cut one partition's ratings by row block.

    Parameters
    ----------
    mapped : (users, items, ratings) tuple of ndarray
        Global user and item indices (int32) and ratings (float32) of one partition.
    row_block, col_block : ndarray of int32
        Block of every user and of every item.
    user_local, item_local : ndarray of int32
        Position of every user within its row block and of every item within its column
        block.
    n_blocks : int

    Returns
    -------
    list of n_blocks tuples (column block int32, local user int32, local item int32,
    rating float32), one per row block, in partition order.
    """
    users, items, values = mapped
    rows = row_block[users]
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(n_blocks + 1))
    pieces = []
    for r in range(n_blocks):
        take = order[bounds[r]:bounds[r + 1]]
        pieces.append((col_block[items[take]], user_local[users[take]], item_local[items[take]],
                       values[take]))
    return pieces


def piece(pieces, r):
    """Row block `r`'s piece of a split partition (a task of its own, so that each piece
    moves to its row block's worker alone)."""
    return pieces[r]


@dataclass
class RowGroup:
    """The ratings of one row block, cut by column block, each cut in CSR order."""

    r: int
    blocks: list      # per column block: (local user int32, local item int32, rating float32)

    def summary(self):
        """(ratings per block, runs per block, first duplicate or None) of this row block.

        The duplicate is (column block, local user, local item) of a pair rated twice."""
        n_ratings, n_runs, duplicate = [], [], None
        for c, (users, items, _) in enumerate(self.blocks):
            n_ratings.append(len(users))
            starts = _run_starts(users)
            n_runs.append(len(starts))
            if duplicate is None and len(users) > 1:
                same = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
                if same.any():
                    at = int(np.flatnonzero(same)[0])
                    duplicate = (c, int(users[at]), int(items[at]))
        return np.array(n_ratings, dtype=np.int64), np.array(n_runs, dtype=np.int64), duplicate


def build_row_group(r, n_blocks, n_local_items, *pieces):
    """Gather row block `r`'s pieces from every partition and sort each block in CSR order
    (local user, then local item: the same order as global user, then global item, because
    local positions follow global indices within a block)."""
    if pieces:
        cols = np.concatenate([p[0] for p in pieces])
        users = np.concatenate([p[1] for p in pieces])
        items = np.concatenate([p[2] for p in pieces])
        values = np.concatenate([p[3] for p in pieces])
    else:
        cols = users = items = np.zeros(0, dtype=np.int32)
        values = np.zeros(0, dtype=np.float32)
    width = np.int64(max(n_local_items, 1))
    key = (cols.astype(np.int64) * (int(users.max()) + 1 if len(users) else 1)
           + users) * width + items
    order = np.argsort(key, kind="stable")
    cols, users, items, values = cols[order], users[order], items[order], values[order]
    bounds = np.searchsorted(cols, np.arange(n_blocks + 1))
    blocks = [(users[a:b], items[a:b], values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return RowGroup(r, blocks)


def row_group_summary(group):
    """:meth:`RowGroup.summary` as a task."""
    return group.summary()


def _run_starts(users):
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(users[1:] != users[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)


def layout_block(group, c, n_blocks, first_run, seed):
    """Lay out block (group.r, c) as the local layout does
    (:func:`mfsgd.training.layout.lay_out_block`).

    Parameters
    ----------
    group : RowGroup
    c : int
        Column block.
    n_blocks : int
    first_run : int
        Global number of the block's first run: the runs of all blocks before it in block
        index order (``block_ptr[blk]`` of the local layout).
    seed : int
        The layout seed drawn by :func:`mfsgd.training.layout.assign_blocks`.

    Returns
    -------
    BlockLayout
    """
    users, items, values = group.blocks[c]
    n_local_users = int(users.max()) + 1 if len(users) else 0
    indptr = np.zeros(n_local_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_local_users), out=indptr[1:])
    block = lay_out_block(indptr, items, values, first_run, seed)
    return BlockLayout(group.r * n_blocks + c, n_blocks, block.run_user, block.run_ptr,
                       block.items, block.ratings)


@dataclass(frozen=True)
class KernelSettings:
    """The per-fit constants of a block task: the global mean, the number of blocks and the
    model parameters that :class:`mfsgd.models.mf.MFKernel` reads (not the callbacks, which
    stay on the client)."""

    mu: float
    n_blocks: int
    kernel_params: dict

    @classmethod
    def of(cls, params, mu, n_blocks):
        """The settings of a model with checked parameters `params`."""
        names = ("regularization", "bias_regularization", "biased", "learning_rate_schedule",
                 "learning_rate", "learning_rate_decay", "non_negative")
        return cls(mu, n_blocks, {name: params[name] for name in names})


def _vector_copy(values):
    out = aligned_empty(values.shape, values.dtype)
    out[...] = values
    return out


# Row states live in the memory of the worker that owns the row block, keyed by
# (fit token, generation, row block), and are updated in place by the block tasks: only column
# states travel between tasks, so a block task's output is its column block alone and the next
# block task of that column can take it directly (one task per block, no splitting task).  A
# new generation starts after every recovery, so that a stale task still running on a live
# worker writes into a row state nobody reads any more.
_ROW_STATES = {}
_SNAPSHOTS = {}


def _padded_copy(factors, width):
    """A fresh, aligned copy of `factors` (n, k) with rows padded with zeros to `width`."""
    n, k = factors.shape
    out = aligned_empty((n, width), factors.dtype)
    out[:, k:] = 0
    out[:, :k] = factors
    return out


def install_row(token, generation, r, state):
    """Keep row block `r`'s state (factors, biases, accumulators) in this worker's memory,
    with the kernel's padded rows; returns a marker that the row's first block task takes
    as a dependency."""
    P, bias, grad = state
    width = _sgd.padded_width(P.shape[1], P.itemsize)
    _ROW_STATES[(token, generation, r)] = (_padded_copy(P, width), _vector_copy(bias),
                                           _vector_copy(grad), P.shape[1])
    return (token, generation, r)


def drop_rows(token):
    """Forget every row state and snapshot of the fit `token` held by this worker."""
    for store in (_ROW_STATES, _SNAPSHOTS):
        for key in [key for key in store if key[0] == token]:
            del store[key]


def take_snapshot(output, token, generation, r, tag):
    """The copy of row block `r`'s state that the block task `output` came from made for
    checkpoint `tag` (a task of its own, on the owner, off the training path)."""
    return _SNAPSHOTS.pop((token, generation, r, tag))


@dataclass
class ColumnOutput:
    """What one block task returns: the column block's new state (factors, biases,
    accumulators) and the block's sum of squared errors."""

    col: tuple
    sse: float


def run_block(layout, row_after, col_state, token, generation, settings, lr, seed,
              snapshot_tag=None):
    """One SGD pass over one block: in place on the row state this worker holds, on a copy of
    the column state.

    The block's turn of the local epoch, by :meth:`mfsgd.models.mf.MFKernel.run_block`
    (its visiting order seeded with the global block index, as in the local epoch).

    Parameters
    ----------
    layout : BlockLayout
    row_after : object
        The output of the row block's previous task on this worker (or of
        :func:`install_row`): taken only so that the row's tasks run in order.
    col_state : tuple (factors, biases, adagrad accumulators) or ColumnOutput
        The column block's state, or the output of the block task that last updated it.
    token, generation : str, int
        Key of the row state in this worker's memory.
    settings : KernelSettings
    lr : float
        This epoch's learning rate.
    seed : int
        This epoch's seed.
    snapshot_tag : hashable, optional
        Keep a copy of the updated row state for :func:`take_snapshot` under this tag.

    Returns
    -------
    ColumnOutput
    """
    if isinstance(col_state, ColumnOutput):
        col_state = col_state.col
    n_blocks, blk = settings.n_blocks, layout.blk
    r = blk // n_blocks
    P, user_bias, user_grad, k = _ROW_STATES[(token, generation, r)]
    Q, item_bias, item_grad = col_state
    Q = _padded_copy(Q, P.shape[1])
    item_bias, item_grad = _vector_copy(item_bias), _vector_copy(item_grad)
    sse = MFKernel(settings.kernel_params).run_block(
        layout, (P, Q, user_bias, item_bias, user_grad, item_grad), blk, n_blocks, settings.mu,
        k, lr, seed)
    if snapshot_tag is not None:
        _SNAPSHOTS[(token, generation, r, snapshot_tag)] = (
            P[:, :k].copy(), user_bias.copy(), user_grad.copy())     # P itself changes
    return ColumnOutput((np.ascontiguousarray(Q[:, :k]), item_bias, item_grad),
                        float(sse))


def _state_nbytes(state):
    return sum(array.nbytes for array in state)


def _register_sizes():
    """Tell Dask the sizes of the objects passed between tasks (its fallback,
    ``sys.getsizeof``, sees 56 bytes for a dataclass holding megabytes of arrays), so that
    its memory accounting, transfer statistics and placement decisions see the real bytes."""
    from dask.sizeof import sizeof

    sizeof.register(ColumnOutput)(lambda output: _state_nbytes(output.col) + 64)
    sizeof.register(BlockLayout)(lambda layout: layout.nbytes + 64)


_register_sizes()


def block_errors(*outputs):
    """The blocks' sums of squared errors from block tasks' outputs (a task of its own)."""
    return [output.sse for output in outputs]
