"""Lay ratings and implicit feedback out for the SVD++ kernel (:mod:`mfsgd._kernels._svdpp`).

Users and items are split into B row and B column blocks as for matrix factorization
(:func:`mfsgd.training.layout.balanced_blocks`).  N(u), the items of user u's implicit feedback (the
rated items plus any extra pairs), is cut by column block into *cells*: one cell per user and
column block where N(u) has items.  Cells are numbered user by user (a user's cells are
consecutive, by column block), and their items are stored in that order, so the cells of a
user list N(u).  Each cell is one *run* of the blocked layout: block (row block of u, column
block of the cell) holds the runs of its cells in user order, each with the user's ratings of
items in that column block (possibly none), shuffled once per fit.
"""
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._kernels import _svdpp
from .layout import balanced_blocks


@dataclass
class SvdppLayout:
    """Runs, cells and the counts the objective needs, for :func:`_svdpp.svdpp_epoch`."""

    n_blocks: int
    block_ptr: np.ndarray
    run_user: np.ndarray
    run_cell: np.ndarray
    run_ptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    order: np.ndarray
    block_sse: np.ndarray
    user_cell_ptr: np.ndarray
    cell_item_ptr: np.ndarray
    cell_items: np.ndarray
    column_cell_ptr: np.ndarray
    column_cells: np.ndarray
    user_counts: np.ndarray
    item_counts: np.ndarray
    implicit_weights: np.ndarray

    @property
    def n_cells(self):
        """Number of (user, column block) cells."""
        return len(self.cell_item_ptr) - 1

    @property
    def nbytes(self):
        """Memory held by the layout arrays."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))

    def kernel_arrays(self):
        """The layout arguments of :func:`_svdpp.svdpp_epoch`, in order."""
        return (self.block_ptr, self.run_user, self.run_cell, self.run_ptr, self.items,
                self.ratings, self.user_cell_ptr, self.cell_item_ptr, self.cell_items)

    def cell_arrays(self):
        """(user_cell_ptr, cell_item_ptr, cell_items): the cells and N(u) of every user."""
        return self.user_cell_ptr, self.cell_item_ptr, self.cell_items


def implicit_sets(ratings, implicit=None):
    """N(u) of every user as CSR (indptr int64, indices int32, sorted, without repeats).

    Parameters
    ----------
    ratings : rating set with CSR ``indptr``/``indices`` and ``n_users``/``n_items``
    implicit : (indptr, indices) or None
        Extra (user, item) pairs as CSR over the same users and items; pairs that are also
        rated count once.
    """
    shape = (ratings.n_users, ratings.n_items)
    rated = sp.csr_matrix((np.ones(len(ratings.indices), dtype=np.int8), ratings.indices,
                           ratings.indptr), shape=shape)
    if implicit is not None:
        indptr, indices = implicit
        rated = rated + sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr),
                                      shape=shape)
    rated.sum_duplicates()
    rated.sort_indices()
    return rated.indptr.astype(np.int64), rated.indices.astype(np.int32)


def build_svdpp_layout(ratings, n_indptr, n_indices, n_blocks, rng):
    """Build the SVD++ layout of `ratings` (user-major CSR) and the implicit sets N(u).

    Parameters
    ----------
    ratings : rating set with ``indptr``, ``indices``, ``data``, ``n_users``, ``n_items``
    n_indptr, n_indices : ndarray
        N(u) as CSR over the same users and items (from :func:`implicit_sets`): sorted, and
        holding every rated item.
    n_blocks : int
    rng : numpy Generator
        Draws the block assignments, then the seed of the per-run shuffle.
    """
    n_users, n_items, B = ratings.n_users, ratings.n_items, n_blocks
    indptr = np.ascontiguousarray(ratings.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(ratings.indices, dtype=np.int32)
    data = np.ascontiguousarray(ratings.data, dtype=np.float32)
    n_indptr = np.ascontiguousarray(n_indptr, dtype=np.int64)
    n_indices = np.ascontiguousarray(n_indices, dtype=np.int32)
    user_counts = np.diff(indptr)
    item_counts = np.bincount(indices, minlength=n_items)
    implicit_counts = np.bincount(n_indices, minlength=n_items)
    row_block = balanced_blocks(user_counts + np.diff(n_indptr), B, rng).astype(np.int32)
    col_block = balanced_blocks(item_counts + implicit_counts, B, rng).astype(np.int32)
    del implicit_counts
    seed = int(rng.integers(0, 2**63))

    # Each user's ratings weigh on the y of every item in N(u) (the objective's weights).
    implicit_weights = np.zeros(n_items)
    n_cells, cells_per_block, cells_per_column = _svdpp.count_cells(
        n_indptr, n_indices, indptr, row_block, col_block, B, implicit_weights)
    block_ptr = np.zeros(B * B + 1, dtype=np.int64)
    np.cumsum(cells_per_block, out=block_ptr[1:])
    column_cell_ptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(cells_per_column, out=column_cell_ptr[1:])
    user_cell_ptr = np.empty(n_users + 1, dtype=np.int64)
    cell_item_ptr = np.empty(n_cells + 1, dtype=np.int64)
    cell_items = np.empty(len(n_indices), dtype=np.int32)
    run_user = np.empty(n_cells, dtype=np.int32)
    run_cell = np.empty(n_cells, dtype=np.int32)
    run_ptr = np.empty(n_cells + 1, dtype=np.int64)
    items = np.empty(len(indices), dtype=np.int32)
    values = np.empty(len(indices), dtype=np.float32)
    column_cells = np.empty(n_cells, dtype=np.int32)
    _svdpp.fill_cells(n_indptr, n_indices, indptr, indices, data, row_block, col_block, B,
                      block_ptr, column_cell_ptr, user_cell_ptr, cell_item_ptr, cell_items,
                      run_user, run_cell, run_ptr, items, values, column_cells)
    _svdpp.shuffle_runs(run_ptr, items, values, seed)

    return SvdppLayout(B, block_ptr, run_user, run_cell, run_ptr, items, values,
                       np.empty(n_cells, dtype=np.int32), np.zeros(B * B), user_cell_ptr,
                       cell_item_ptr, cell_items, column_cell_ptr, column_cells,
                       user_counts.astype(np.float64), item_counts.astype(np.float64),
                       implicit_weights)
