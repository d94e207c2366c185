"""The SVD++ kernel against a pure-NumPy implementation of the same update rules and order."""
import numpy as np
import pytest
import scipy.sparse as sp

from mfsgd._kernels import _sgd, _svdpp
from mfsgd.data._csr import IndexedRatings
from mfsgd.training.layout import block_schedule as epoch_schedule
from mfsgd.training.layout import balanced_blocks
from mfsgd.training.svdpp_layout import SvdppLayout, build_svdpp_layout, implicit_sets


def ratings_with_implicit(n_users=150, n_items=40, density=0.3, extra=0.1, seed=0):
    """Random ratings 1-5 and extra implicit pairs, some of them on rated items, and some
    users with implicit feedback but no rating."""
    rng = np.random.default_rng(seed)
    rated = rng.random((n_users, n_items)) < density
    rated[-3:] = False
    values = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float32)
    csr = sp.csr_matrix(np.where(rated, values, 0))
    csr.sort_indices()
    ratings = IndexedRatings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32),
                             csr.data.astype(np.float32), n_users, n_items)
    extra_pairs = sp.csr_matrix((rng.random((n_users, n_items)) < extra).astype(np.int8))
    return ratings, (extra_pairs.indptr.astype(np.int64), extra_pairs.indices.astype(np.int32))


def make_state(ratings, layout, k, dtype, rng, width=None):
    """P, Q, Y, bu, bi, V, D, C with rows of `width` values (k, zero-padded)."""
    width = width or k

    def factors(n):
        out = np.zeros((n, width), dtype)
        out[:, :k] = rng.normal(0, 0.1, (n, k))
        return out

    P, Q, Y = factors(ratings.n_users), factors(ratings.n_items), factors(ratings.n_items)
    bu = rng.normal(0, 0.1, ratings.n_users).astype(dtype)
    bi = rng.normal(0, 0.1, ratings.n_items).astype(dtype)
    V = np.zeros((layout.n_cells, width), dtype)
    D = np.zeros((layout.n_cells, width), dtype)
    C = np.ones(layout.n_cells, dtype)
    _svdpp.refresh_cells(V, Y, C, D, *layout.cell_arrays())
    return [P, Q, Y, bu, bi, V, D, C]


PARAMS = dict(mu=3.4, lr=0.04, reg=0.03, bias_reg=0.01, implicit_lr=0.03, implicit_reg=0.05)


def kernel_epoch(state, layout, schedule, seed, biased=True, n_threads=2, params=PARAMS,
                 refresh_every=1):
    flags = _svdpp.FLAG_BIASED if biased else 0
    return _svdpp.svdpp_epoch(*state, *layout.kernel_arrays(), schedule, layout.order,
                              layout.block_sse, params["mu"], params["lr"], params["reg"],
                              params["bias_reg"], params["implicit_lr"], params["implicit_reg"],
                              flags, seed, refresh_every, n_threads)


def reference_run(state, lay, r, biased, mu, lr, reg, bias_reg, implicit_lr, implicit_reg):
    """One run, steps 1-5 of _svdpp_impl.h (or the pending map alone without ratings), in
    float64 NumPy."""
    P, Q, Y, bu, bi, V, D, C = state
    u, x = int(lay.run_user[r]), int(lay.run_cell[r])
    cells = range(lay.user_cell_ptr[u], lay.user_cell_ptr[u + 1])

    def items_of(c):
        return lay.cell_items[lay.cell_item_ptr[c]:lay.cell_item_ptr[c + 1]]

    norm = 1 / np.sqrt(sum(len(items_of(c)) for c in cells))
    own = items_of(x)
    a0, a1 = lay.run_ptr[r], lay.run_ptr[r + 1]
    if a0 == a1:
        Y[own] = C[x] * Y[own] + D[x]
        V[x] = Y[own].sum(axis=0)
        C[x], D[x] = 1, 0
        return 0.0
    V[x] = C[x] * Y[own].sum(axis=0) + len(own) * D[x]
    z = norm * sum(V[c] for c in cells)
    z0, p, b, m, sse = z.copy(), P[u].copy(), bu[u], 1.0, 0.0
    for j in range(a0, a1):
        i = lay.items[j]
        q = Q[i].copy()
        e = float(lay.ratings[j]) - (q @ (p + z) + (mu + b + bi[i] if biased else 0.0))
        if biased:
            b += lr * (e - bias_reg * b)
            bi[i] += lr * (e - bias_reg * bi[i])
        p, z, Q[i] = (p + lr * (e * q - reg * p), z + implicit_lr * (e * q - implicit_reg * z),
                      q + lr * (e * (p + z) - reg * q))
        m *= 1 - implicit_lr * implicit_reg
        sse += e * e
    P[u] = p
    if biased:
        bu[u] = b
    d = norm * (z - m * z0)
    Y[own] = (m * C[x]) * Y[own] + (m * D[x] + d)
    V[x] = Y[own].sum(axis=0)
    C[x], D[x] = 1, 0
    for c in cells:
        if c != x:
            C[c] *= m
            D[c] = m * D[c] + d
            V[c] = m * V[c] + len(items_of(c)) * d
    return sse


def reference_epoch(state, layout, schedule, seed, biased=True, params=PARAMS, refresh_every=1):
    """Sub-epochs in order, the blocks of each in schedule order, a block's runs in the
    kernel's segment order (``_sgd.block_order``, checked against Python in test_kernel);
    after every `refresh_every`-th sub-epoch, every cell's V is recomputed."""
    sse = 0.0
    for s, blocks in enumerate(schedule):
        for blk in blocks:
            start, stop = int(layout.block_ptr[blk]), int(layout.block_ptr[blk + 1])
            for r in _sgd.block_order(_sgd.stream_seed(seed, int(blk)), stop - start):
                sse += reference_run(state, layout, start + int(r), biased, **params)
        if refresh_every and (s + 1) % refresh_every == 0:
            state[5][...] = virtual_sums(state, layout)
    return sse


def virtual_sums(state, layout):
    """Each cell's y-row sum once its pending map is applied: C * sum(Y) + |cell| * D."""
    P, Q, Y, bu, bi, V, D, C = state
    sizes = np.diff(layout.cell_item_ptr)
    sums = np.add.reduceat(Y[layout.cell_items], layout.cell_item_ptr[:-1], axis=0)
    return C[:, None] * sums + sizes[:, None] * D


@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("n_blocks", [1, 2, 3])
@pytest.mark.parametrize("k", [5, 16, 32, 64, 112, 128])
def test_kernel_matches_numpy_reference(biased, n_blocks, k):
    """k = 16, 32, 64, 112 and 128 run the register-resident fast paths, k = 5 the generic
    one; users with extra implicit items get runs without ratings; 150 users make blocks of
    several segments.  Refreshes as SVDpp does them (none below three blocks), and once
    every second sub-epoch."""
    ratings, extra = ratings_with_implicit(seed=k)
    rng = np.random.default_rng(1)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), n_blocks, rng)
    assert (np.diff(layout.run_ptr) == 0).any()
    state = make_state(ratings, layout, k, np.float64, rng)
    ref = [a.copy() for a in state]
    refresh_every = 0 if n_blocks < 3 else 1 if k != 64 else 2
    for epoch in range(3):
        schedule = epoch_schedule(n_blocks, rng)
        seed = int(rng.integers(0, 2**63))
        sse = kernel_epoch(state, layout, schedule, seed, biased, refresh_every=refresh_every)
        ref_sse = reference_epoch(ref, layout, schedule, seed, biased,
                                  refresh_every=refresh_every)
        assert sse == pytest.approx(ref_sse, rel=1e-12)
    for name, got, want in zip("P Q Y bu bi V D C".split(), state, ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
    if not biased:
        assert not state[3].any() or np.array_equal(state[3], ref[3])


def test_cell_sums_of_a_lone_user_are_the_sums_with_pending_maps_applied():
    """With nobody else writing y, a cell's V is exactly the sum of its rows once the user's
    pending map is applied: step 5 advances V with the user's own updates exactly."""
    rng = np.random.default_rng(3)
    csr = sp.csr_matrix(np.where(rng.random((1, 40)) < 0.6, 4.0, 0.0).astype(np.float32))
    ratings = IndexedRatings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32),
                             csr.data, 1, 40)
    extra = (np.array([0, 3], dtype=np.int64), np.array([1, 2, 39], dtype=np.int32))
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 3, rng)
    assert layout.n_cells == 3
    state = make_state(ratings, layout, 8, np.float64, rng)
    for epoch in range(2):
        kernel_epoch(state, layout, epoch_schedule(3, rng), epoch, refresh_every=0)
    assert (state[7] != 1).any()  # some maps are pending
    np.testing.assert_allclose(state[5], virtual_sums(state, layout), atol=1e-12)


def test_applying_pending_maps_and_user_vectors_match_numpy():
    ratings, extra = ratings_with_implicit(seed=4)
    rng = np.random.default_rng(5)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 2, rng)
    state = make_state(ratings, layout, 8, np.float64, rng)
    kernel_epoch(state, layout, epoch_schedule(2, rng), 7)
    P, Q, Y, bu, bi, V, D, C = state
    final = Y.copy()
    _svdpp.apply_pending(final, C, D, layout.cell_item_ptr, layout.cell_items,
                         layout.column_cell_ptr, layout.column_cells, 2)
    want = Y.copy()
    for x in range(layout.n_cells):  # cell order = user order within each column block
        rows = layout.cell_items[layout.cell_item_ptr[x]:layout.cell_item_ptr[x + 1]]
        want[rows] = C[x] * want[rows] + D[x]
    np.testing.assert_allclose(final, want, atol=1e-12)
    vectors = np.empty_like(P)
    _svdpp.user_vectors(vectors, P, final, *layout.cell_arrays(), n_threads=2)
    n_indptr, n_indices = implicit_sets(ratings, extra)
    for u in range(ratings.n_users):
        rows = n_indices[n_indptr[u]:n_indptr[u + 1]]
        implicit = final[rows].sum(axis=0) / np.sqrt(len(rows)) if len(rows) else 0
        np.testing.assert_allclose(vectors[u], P[u] + implicit, atol=1e-12)


@pytest.mark.parametrize("k, width", [(5, 8), (11, 16), (100, 112)])
def test_padded_rows_stay_zero_and_match_unpadded(k, width):
    ratings, extra = ratings_with_implicit(seed=6)
    rng = np.random.default_rng(7)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 2, rng)
    padded = make_state(ratings, layout, k, np.float64, np.random.default_rng(8), width)
    plain = [a[:, :k].copy() if a.ndim == 2 else a.copy() for a in padded]
    for epoch in range(2):
        schedule = epoch_schedule(2, rng)
        kernel_epoch(padded, layout, schedule, epoch)
        reference_epoch(plain, layout, schedule, epoch)
    for got, want in zip(padded, plain):
        if got.ndim == 2:
            assert not got[:, k:].any()
            got = got[:, :k]
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("k", [8, 32, 112])
def test_float32_kernel_matches_reference_to_float32_precision(k):
    """k = 8 runs the scalar dot product, 32 the line-vector one over two lines, 112 over
    seven (one left over after the pairs)."""
    ratings, extra = ratings_with_implicit(seed=9)
    rng = np.random.default_rng(10)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 2, rng)
    state64 = make_state(ratings, layout, k, np.float64, rng)
    state32 = [a.astype(np.float32) for a in state64]
    for epoch in range(2):
        schedule = epoch_schedule(2, rng)
        kernel_epoch(state32, layout, schedule, epoch)
        reference_epoch(state64, layout, schedule, epoch)
    for name, got, want in zip("P Q Y bu bi V D C".split(), state32, state64):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_on_1_2_and_8_threads(dtype):
    ratings, extra = ratings_with_implicit(n_users=400, seed=11)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 4,
                                np.random.default_rng(12))
    finals = []
    for n_threads in (1, 2, 8):
        rng = np.random.default_rng(13)
        state = make_state(ratings, layout, 32, dtype, rng)
        for epoch in range(3):
            kernel_epoch(state, layout, epoch_schedule(4, rng), epoch, n_threads=n_threads)
        finals.append(state)
    for state in finals[1:]:
        for got, want in zip(state, finals[0]):
            assert np.array_equal(got, want)


def _available_isas():
    found = []
    for isa in ("baseline", "avx2", "avx512"):
        try:
            _svdpp.select_isa(isa)
            found.append(isa)
        except ValueError:
            pass
    _svdpp.select_isa("auto")
    return found


@pytest.mark.parametrize("k", [16, 128])
def test_every_instruction_set_matches_reference(k):
    ratings, extra = ratings_with_implicit(seed=14)
    rng = np.random.default_rng(15)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 2, rng)
    start = make_state(ratings, layout, k, np.float64, rng)
    schedule, seed = epoch_schedule(2, rng), 99
    ref = [a.copy() for a in start]
    reference_epoch(ref, layout, schedule, seed)
    try:
        for isa in _available_isas():
            _svdpp.select_isa(isa)
            state = [a.copy() for a in start]
            kernel_epoch(state, layout, schedule, seed)
            for got, want in zip(state, ref):
                np.testing.assert_allclose(got, want, atol=1e-12, err_msg=isa)
    finally:
        _svdpp.select_isa("auto")


def test_unknown_instruction_set_is_refused():
    with pytest.raises(ValueError, match="sse9"):
        _svdpp.select_isa("sse9")


def test_layout_holds_every_rating_once_and_cells_list_n_of_u():
    ratings, extra = ratings_with_implicit(seed=16)
    n_indptr, n_indices = implicit_sets(ratings, extra)
    layout = build_svdpp_layout(ratings, n_indptr, n_indices, 3, np.random.default_rng(17))
    laid_users = np.repeat(layout.run_user, np.diff(layout.run_ptr))
    users, items, values = ratings.index_arrays()
    assert sorted(zip(laid_users.tolist(), layout.items.tolist(), layout.ratings.tolist())) == \
        sorted(zip(users.tolist(), items.tolist(), values.tolist()))
    for u in range(ratings.n_users):
        first, last = layout.user_cell_ptr[u], layout.user_cell_ptr[u + 1]
        listed = layout.cell_items[layout.cell_item_ptr[first]:layout.cell_item_ptr[last]]
        assert sorted(listed.tolist()) == n_indices[n_indptr[u]:n_indptr[u + 1]].tolist()
    assert sorted(layout.run_cell.tolist()) == list(range(layout.n_cells))
    assert sorted(layout.column_cells.tolist()) == list(range(layout.n_cells))


def test_blocks_of_a_sub_epoch_touch_disjoint_users_items_and_implicit_rows():
    ratings, extra = ratings_with_implicit(n_users=200, seed=18)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 4,
                                np.random.default_rng(19))
    for blocks in epoch_schedule(4, np.random.default_rng(20)):
        seen_users, seen_rows = set(), set()
        for blk in blocks:
            runs = range(layout.block_ptr[blk], layout.block_ptr[blk + 1])
            users = {int(layout.run_user[r]) for r in runs}
            rows = set()
            for r in runs:
                x = layout.run_cell[r]
                rows |= set(layout.cell_items[layout.cell_item_ptr[x]:
                                              layout.cell_item_ptr[x + 1]].tolist())
                rows |= set(layout.items[layout.run_ptr[r]:layout.run_ptr[r + 1]].tolist())
            assert not users & seen_users and not rows & seen_rows
            seen_users |= users
            seen_rows |= rows


def test_epoch_rejects_mismatched_rows():
    ratings, extra = ratings_with_implicit(seed=21)
    layout = build_svdpp_layout(ratings, *implicit_sets(ratings, extra), 1,
                                np.random.default_rng(0))
    state = make_state(ratings, layout, 8, np.float64, np.random.default_rng(0))
    state[2] = np.zeros((ratings.n_items, 16))
    with pytest.raises(ValueError, match="Y must have rows of 8 values"):
        kernel_epoch(state, layout, epoch_schedule(1, np.random.default_rng(0)), 0)


def numpy_svdpp_layout(ratings, n_indptr, n_indices, n_blocks, rng):
    """The layout as the first, vectorised NumPy builder made it (argsorts): the reference
    that the nogil builder must reproduce array for array."""
    n_users, n_items, B = ratings.n_users, ratings.n_items, n_blocks
    indptr = np.asarray(ratings.indptr, dtype=np.int64)
    indices = np.asarray(ratings.indices, dtype=np.int32)
    user_counts = np.diff(indptr)
    n_counts = np.diff(n_indptr)
    item_counts = np.bincount(indices, minlength=n_items)
    implicit_counts = np.bincount(n_indices, minlength=n_items)
    row_block = balanced_blocks(user_counts + n_counts, B, rng)
    col_block = balanced_blocks(item_counts + implicit_counts, B, rng)
    seed = int(rng.integers(0, 2**63))

    # Each user's ratings weigh on the y of every item in N(u) (the objective's weights).
    n_users_of = np.repeat(np.arange(n_users, dtype=np.int32), n_counts)
    implicit_weights = np.bincount(n_indices, weights=user_counts[n_users_of].astype(np.float64),
                                   minlength=n_items)

    # cells: N entries grouped by (user, column block), items ascending within a cell; the
    # temporaries (8 bytes an entry) are dropped as soon as they are used, to bound the peak
    n_key = n_users_of.astype(np.int64) * B + col_block[n_indices]
    del n_users_of
    by_cell = np.argsort(n_key, kind="stable")
    cell_items = np.ascontiguousarray(n_indices[by_cell], dtype=np.int32)
    sorted_key = n_key[by_cell]
    del n_key, by_cell
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) \
        if len(sorted_key) else np.zeros(0, dtype=np.int64)
    cell_key = sorted_key[starts]
    n_cells = len(cell_key)
    cell_item_ptr = np.append(starts, len(sorted_key)).astype(np.int64)
    del sorted_key, starts
    cell_user, cell_column = cell_key // B, cell_key % B
    user_cell_ptr = np.searchsorted(cell_user, np.arange(n_users + 1)).astype(np.int64)

    # runs: one per cell, block by block, users ascending within a block
    cell_block = row_block[cell_user].astype(np.int64) * B + cell_column
    run_cell = np.argsort(cell_block, kind="stable").astype(np.int32)
    block_ptr = np.zeros(B * B + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_block, minlength=B * B), out=block_ptr[1:])
    run_user = cell_user[run_cell].astype(np.int32)
    run_of_cell = np.empty(n_cells, dtype=np.int64)
    run_of_cell[run_cell] = np.arange(n_cells)

    # each rating goes to the run of its (user, column block) cell
    rating_key = np.repeat(np.arange(n_users, dtype=np.int64), user_counts) * B \
        + col_block[indices]
    rating_cell = np.searchsorted(cell_key, rating_key)
    if len(rating_key) and (n_cells == 0 or not np.array_equal(
            cell_key[np.minimum(rating_cell, n_cells - 1)], rating_key)):
        raise ValueError("the implicit sets N(u) must hold every rated item")
    del rating_key
    rating_run = run_of_cell[rating_cell]
    del rating_cell
    by_run = np.argsort(rating_run, kind="stable")
    items = np.ascontiguousarray(indices[by_run], dtype=np.int32)
    values = np.ascontiguousarray(np.asarray(ratings.data)[by_run], dtype=np.float32)
    del by_run
    run_ptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(rating_run, minlength=n_cells), out=run_ptr[1:])
    del rating_run
    _svdpp.shuffle_runs(run_ptr, items, values, seed)

    # the cells of each column block, in user order (for applying pending maps)
    column_cells = np.argsort(cell_column, kind="stable").astype(np.int32)
    column_cell_ptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_column, minlength=B), out=column_cell_ptr[1:])

    return SvdppLayout(B, block_ptr, run_user, run_cell, run_ptr, items, values,
                       np.empty(n_cells, dtype=np.int32), np.zeros(B * B), user_cell_ptr,
                       cell_item_ptr, cell_items, column_cell_ptr, column_cells,
                       user_counts.astype(np.float64), item_counts.astype(np.float64),
                       implicit_weights)


@pytest.mark.parametrize("n_blocks", [1, 2, 3, 8])
def test_layout_builder_matches_the_numpy_reference(n_blocks):
    ratings, extra = ratings_with_implicit(seed=11)
    sets = implicit_sets(ratings, extra)
    built = build_svdpp_layout(ratings, *sets, n_blocks, np.random.default_rng(3))
    want = numpy_svdpp_layout(ratings, *sets, n_blocks, np.random.default_rng(3))
    for name, value in vars(want).items():
        if name != "order":                         # scratch
            np.testing.assert_array_equal(getattr(built, name), value, err_msg=name)


def test_layout_builder_refuses_rated_items_outside_n_of_u():
    ratings, _ = ratings_with_implicit(seed=12)
    indptr, indices = implicit_sets(ratings)
    first_rated = ratings.indices[ratings.indptr[0]]               # user 0 loses it from N(u)
    at = indptr[0] + np.searchsorted(indices[indptr[0]:indptr[1]], first_rated)
    short_indptr = indptr.copy()
    short_indptr[1:] -= 1
    with pytest.raises(ValueError, match="must hold every rated item"):
        build_svdpp_layout(ratings, short_indptr, np.delete(indices, at), 2,
                           np.random.default_rng(0))
