"""Blocks alone: the interfaces a distributed backend builds on reproduce the local epoch exactly.

A backend that runs blocks elsewhere lays each block out alone (``lay_out_block`` with the
block's offset in the whole layout) and runs it alone (``MFKernel.run_block`` on the rows of
its users and items only).  These tests rebuild a whole epoch that way and compare it, bit for
bit, with the local kernel's epoch, and check how a model hands the epoch loop its backend.
"""
import numpy as np
import pytest

import mfsgd
from mfsgd.data._csr import from_index_triplets
from mfsgd.models.mf import MFKernel
from mfsgd.training.loop import LocalBackend
from mfsgd.training.layout import (assign_blocks, block_schedule, build_layout, kernel_rows,
                                   lay_out_block)


def indexed_ratings(seed, n_users=70, n_items=45, n_ratings=1200):
    users, items, values = mfsgd.make_synthetic(n_users=n_users, n_items=n_items,
                                                n_ratings=n_ratings, random_state=seed)
    return from_index_triplets(users.astype(np.int64), items.astype(np.int64),
                               values.astype(np.float32), n_users, n_items)


def block_ratings(ratings, users, items):
    """The CSR of `ratings` restricted to rows `users` and columns `items` (both ascending),
    renumbered 0..len-1 in that order."""
    column = np.full(ratings.n_items, -1, dtype=np.int64)
    column[items] = np.arange(len(items))
    indptr, indices, data = [0], [], []
    for user in users:
        row = slice(ratings.indptr[user], ratings.indptr[user + 1])
        keep = column[ratings.indices[row]] >= 0
        indices.append(column[ratings.indices[row]][keep])
        data.append(ratings.data[row][keep])
        indptr.append(indptr[-1] + int(keep.sum()))
    return (np.array(indptr, dtype=np.int64), np.concatenate(indices).astype(np.int32),
            np.concatenate(data).astype(np.float32))


def blocks_of(ratings, n_blocks, seed):
    """(the whole layout, {block: (users, items, the block laid out alone)})."""
    whole = build_layout(ratings, n_blocks, np.random.default_rng(seed))
    row_block, col_block, layout_seed = assign_blocks(
        np.diff(ratings.indptr), np.bincount(ratings.indices, minlength=ratings.n_items),
        n_blocks, np.random.default_rng(seed))
    alone = {}
    for block in range(n_blocks * n_blocks):
        users = np.flatnonzero(row_block == block // n_blocks)
        items = np.flatnonzero(col_block == block % n_blocks)
        layout = lay_out_block(*block_ratings(ratings, users, items),
                               first_run=int(whole.block_ptr[block]), seed=layout_seed)
        alone[block] = (users, items, layout)
    return whole, alone


@pytest.mark.parametrize("n_blocks", [1, 2, 3])
def test_a_block_laid_out_alone_is_its_slice_of_the_whole_layout(n_blocks):
    ratings = indexed_ratings(1)
    whole, alone = blocks_of(ratings, n_blocks, seed=5)
    for block, (users, items, layout) in alone.items():
        runs = slice(whole.block_ptr[block], whole.block_ptr[block + 1])
        first, last = whole.run_ptr[runs.start], whole.run_ptr[runs.stop]
        np.testing.assert_array_equal(users[layout.run_user], whole.run_user[runs])
        np.testing.assert_array_equal(layout.run_ptr + first, whole.run_ptr[runs.start:runs.stop + 1])
        np.testing.assert_array_equal(items[layout.items], whole.items[first:last])
        np.testing.assert_array_equal(layout.ratings, whole.ratings[first:last])


@pytest.mark.parametrize("params", [
    {"n_factors": 5},
    {"n_factors": 16, "learning_rate_schedule": "adagrad", "dtype": np.float64,
     "learning_rate": 0.05},
    {"n_factors": 3, "non_negative": True, "biased": False},
], ids=["float32-padded", "adagrad-float64", "non-negative-unbiased"])
def test_an_epoch_run_block_by_block_equals_the_local_epoch(params):
    n_blocks = 3
    ratings = indexed_ratings(2)
    checked = mfsgd.MatrixFactorization(n_threads=1, **params).checked_params()
    kernel = MFKernel(checked)
    whole, alone = blocks_of(ratings, n_blocks, seed=6)
    rng = np.random.default_rng(0)
    dtype, k = checked["dtype"], checked["n_factors"]
    adagrad = checked["learning_rate_schedule"] == "adagrad"
    arrays = [kernel_rows(np.abs(rng.normal(0, 0.1, (ratings.n_users, k))).astype(dtype)),
              kernel_rows(np.abs(rng.normal(0, 0.1, (ratings.n_items, k))).astype(dtype)),
              rng.normal(0, 0.1, ratings.n_users).astype(dtype),
              rng.normal(0, 0.1, ratings.n_items).astype(dtype),
              np.ones(ratings.n_users if adagrad else 0, dtype),
              np.ones(ratings.n_items if adagrad else 0, dtype)]
    local = [array.copy() for array in arrays]
    schedule, seed, mean, lr = block_schedule(n_blocks, rng), 12345, 3.25, 0.02

    from mfsgd._kernels import _sgd
    whole_sse = np.zeros(n_blocks * n_blocks)
    _sgd.sgd_epoch(*local, whole.block_ptr, whole.run_user, whole.run_ptr, whole.items,
                   whole.ratings, schedule, whole.order, whole_sse, mean, lr,
                   checked["regularization"], checked["bias_regularization"], kernel.flags,
                   seed, 1, k)

    block_sse = np.zeros(n_blocks * n_blocks)
    for sub_epoch in schedule:
        for block in sub_epoch:
            users, items, layout = alone[block]
            rows = [arrays[0][users], arrays[1][items], arrays[2][users], arrays[3][items],
                    arrays[4][users] if adagrad else arrays[4],
                    arrays[5][items] if adagrad else arrays[5]]
            block_sse[block] = kernel.run_block(layout, rows, int(block), n_blocks, mean, k, lr,
                                                seed)
            for array, index, part in zip(arrays, (users, items, users, items, users, items),
                                          rows):
                if len(array):
                    array[index] = part
    for mine, theirs in zip(arrays, local):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(block_sse, whole_sse)


class RecordingBackend(LocalBackend):
    """The local backend, recording the loop's calls."""

    calls = []

    def open(self, state):
        self.calls.append("open")
        super().open(state)

    def run(self, state, blocks, lr, seed):
        self.calls.append(("run", len(blocks)))
        return super().run(state, blocks, lr, seed)

    def sync(self, state):
        self.calls.append("sync")

    def close(self, state):
        self.calls.append("close")
        super().close(state)


class RecordingMatrixFactorization(mfsgd.MatrixFactorization):
    def _backend(self, kernel, params):
        return RecordingBackend(kernel)


def test_a_model_chooses_its_backend_and_the_loop_drives_it(monkeypatch):
    from mfsgd.training import loop
    monkeypatch.setattr(loop, "CHECK_SECONDS", 0.0)       # one sub-epoch per run call
    monkeypatch.setattr(RecordingBackend, "calls", [])
    users, items, values = mfsgd.make_synthetic(n_users=70, n_items=45, n_ratings=1200,
                                                random_state=3)
    params = dict(n_factors=4, n_blocks=2, n_threads=1, random_state=0)
    model = RecordingMatrixFactorization(n_epochs=2, **params).fit((users, items, values))
    model.partial_fit((users, items, values), n_epochs=1)
    epoch = [("run", 1), ("run", 1), "sync"]
    assert RecordingBackend.calls == ["open", *epoch, *epoch, "close", "open", *epoch, "close"]
    plain = mfsgd.MatrixFactorization(n_epochs=3, **params).fit((users, items, values))
    np.testing.assert_array_equal(model.user_factors_, plain.user_factors_)
    np.testing.assert_array_equal(model.item_factors_, plain.item_factors_)
