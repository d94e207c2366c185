"""The C kernel against a pure-NumPy implementation of the same update rules and order."""
import numpy as np
import pytest
import scipy.sparse as sp

from mfsgd import _sgd
from mfsgd._csr import IndexedRatings
from mfsgd._layout import build_layout, epoch_schedule, kernel_factors, padded_width

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def py_stream_seed(seed, stream):
    state = seed ^ (((stream + 1) * 0xD1B54A32D192ED03) & MASK)
    return splitmix64(state)[1]


def py_permutation(seed, n):
    out, state = list(range(n)), seed
    for i in range(n - 1, 0, -1):
        state, x = splitmix64(state)
        j = (x * (i + 1)) >> 64
        out[i], out[j] = out[j], out[i]
    return out


SEGMENT_RUNS = 32


def py_block_order(seed, n):
    """Runs cut into segments of 32, segments in seeded permutation order, runs in order."""
    segments = py_permutation(seed, -(-n // SEGMENT_RUNS))
    return [r for s in segments for r in range(s * SEGMENT_RUNS, min((s + 1) * SEGMENT_RUNS, n))]


def random_ratings(n_users=23, n_items=17, density=0.35, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    values = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float32)
    csr = sp.csr_matrix(np.where(mask, values, 0))
    csr.sort_indices()
    return IndexedRatings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32),
                          csr.data.astype(np.float32), n_users, n_items)


def reference_epoch(P, Q, bu, bi, layout, schedule, seed, mu, lr, reg, bias_reg, biased,
                    grad_sq=None):
    """One epoch in NumPy, visiting ratings in the order the kernel documents: per sub-epoch,
    per block, runs in the seeded segment order worked through in lanes (:func:`lane_order`).
    `grad_sq` = (G_user, G_item) switches to adagrad: row learning rates lr / sqrt(G),
    G += mean squared gradient."""
    sse = 0.0

    def step(u, j):
        i = layout.items[j]
        pred = P[u] @ Q[i] + (mu + bu[u] + bi[i] if biased else 0.0)
        e = float(layout.ratings[j]) - pred
        p_old, q_old = P[u].copy(), Q[i].copy()
        if grad_sq is None:
            P[u] = p_old + lr * (e * q_old - reg * p_old)
            Q[i] = q_old + lr * (e * p_old - reg * q_old)
        else:
            grad_p, grad_q = reg * p_old - e * q_old, reg * q_old - e * p_old
            P[u] = p_old - lr / np.sqrt(grad_sq[0][u]) * grad_p
            Q[i] = q_old - lr / np.sqrt(grad_sq[1][i]) * grad_q
            grad_sq[0][u] += np.mean(grad_p ** 2)
            grad_sq[1][i] += np.mean(grad_q ** 2)
        if biased:
            bu[u] += lr * (e - bias_reg * bu[u])
            bi[i] += lr * (e - bias_reg * bi[i])
        return e * e

    for blocks in schedule:
        for blk in blocks:
            start, stop = layout.block_ptr[blk], layout.block_ptr[blk + 1]
            runs = [start + r for r in py_block_order(py_stream_seed(seed, int(blk)), int(stop - start))]
            for u, j in lane_order(layout, runs):
                sse += step(u, j)
    return sse


LANES = 3


def lane_order(layout, runs, n_lanes=LANES):
    """(user, rating position) pairs of `runs` in kernel order: lane l starts with runs[l];
    round after round, lanes 0, 1, ... each take one rating of their run, and a lane whose
    run has ended takes the next run of `runs` (from the next round) or falls idle."""
    queue = iter(runs)
    lanes = [None] * n_lanes

    def take():
        r = next(queue, None)
        return None if r is None else [layout.run_user[r], layout.run_ptr[r], layout.run_ptr[r + 1]]

    lanes = [take() for _ in range(n_lanes)]
    while any(lane is not None for lane in lanes):
        for index, lane in enumerate(lanes):
            if lane is None:
                continue
            yield lane[0], lane[1]
            lane[1] += 1
            if lane[1] == lane[2]:
                lanes[index] = take()


def test_rng_matches_python_reimplementation():
    for seed in (0, 1, 2**63 - 5):
        assert _sgd.stream_seed(seed, 7) == py_stream_seed(seed, 7)
        assert _sgd.permutation(seed, 50).tolist() == py_permutation(seed, 50)


def test_block_order_matches_python_reimplementation():
    assert _sgd.SEGMENT_RUNS == SEGMENT_RUNS
    assert _sgd.LANES == LANES
    for seed, n in [(0, 1), (3, 31), (4, 32), (5, 33), (6, 200), (2**63 - 5, 1000)]:
        order = _sgd.block_order(seed, n)
        assert order.tolist() == py_block_order(seed, n)
        assert sorted(order.tolist()) == list(range(n))
    assert not np.array_equal(_sgd.block_order(1, 1000), _sgd.block_order(2, 1000))


def test_permutation_is_a_permutation_and_depends_on_seed():
    a, b = _sgd.permutation(1, 1000), _sgd.permutation(2, 1000)
    assert sorted(a.tolist()) == list(range(1000))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("n_blocks", [1, 3])
def test_layout_holds_every_rating_once(n_blocks):
    ratings = random_ratings()
    layout = build_layout(ratings, n_blocks, np.random.default_rng(0))
    users, items, values = ratings.index_arrays()
    run_lengths = np.diff(layout.run_ptr)
    laid_users = np.repeat(layout.run_user, run_lengths)
    original = sorted(zip(users.tolist(), items.tolist(), values.tolist()))
    laid = sorted(zip(laid_users.tolist(), layout.items.tolist(), layout.ratings.tolist()))
    assert laid == original
    assert layout.block_ptr[-1] == len(layout.run_user)


def test_blocks_of_a_sub_epoch_share_no_user_and_no_item():
    ratings = random_ratings(60, 50, 0.3)
    layout = build_layout(ratings, 4, np.random.default_rng(1))
    schedule = epoch_schedule(4, np.random.default_rng(2))
    assert sorted(schedule.ravel().tolist()) == list(range(16))
    for blocks in schedule:
        seen_users, seen_items = set(), set()
        for blk in blocks:
            runs = range(layout.block_ptr[blk], layout.block_ptr[blk + 1])
            users = {int(layout.run_user[r]) for r in runs}
            items = {int(i) for r in runs
                     for i in layout.items[layout.run_ptr[r]:layout.run_ptr[r + 1]]}
            assert not users & seen_users and not items & seen_items
            seen_users |= users
            seen_items |= items


@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("n_blocks", [1, 3])
@pytest.mark.parametrize("k", [5, 32, 112])
@pytest.mark.parametrize("n_users", [150, 2])
def test_kernel_matches_numpy_reference(biased, n_blocks, k, n_users):
    """k = 32 and 112 run specialised fast paths, k = 5 the generic one; 150 users make blocks
    of several segments whose lanes take many runs, 2 users blocks with idle lanes."""
    ratings = random_ratings(n_users=n_users, seed=3)
    rng = np.random.default_rng(4)
    P = rng.normal(0, 0.1, (ratings.n_users, k))
    Q = rng.normal(0, 0.1, (ratings.n_items, k))
    bu, bi = np.zeros(ratings.n_users), np.zeros(ratings.n_items)
    mu = float(ratings.data.mean()) if biased else 0.0
    layout = build_layout(ratings, n_blocks, rng)
    ref = [P.copy(), Q.copy(), bu.copy(), bi.copy()]
    flags = _sgd.FLAG_BIASED if biased else 0
    empty = np.zeros(0)
    lr, reg, bias_reg = 0.05, 0.03, 0.01
    for epoch in range(3):
        schedule = epoch_schedule(n_blocks, rng)
        seed = int(rng.integers(0, 2**63))
        sse = _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user,
                             layout.run_ptr, layout.items, layout.ratings, schedule,
                             layout.order, layout.block_sse, mu, lr, reg, bias_reg, flags,
                             seed, 2, min_work_per_thread=0)
        ref_sse = reference_epoch(*ref, layout, schedule, seed, mu, lr, reg, bias_reg, biased)
        assert sse == pytest.approx(ref_sse, rel=1e-9)
    for got, want in zip([P, Q, bu, bi], ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.abs(P - ref[0]).max() < 1e-12


@pytest.mark.parametrize("adagrad", [False, True])
@pytest.mark.parametrize("k", [5, 11])
def test_kernel_on_padded_rows_matches_numpy_reference(k, adagrad):
    """Rows padded to whole cache lines (k = 11 runs the k = 16 fast path): the kernel works
    on the padded rows, the padding stays exactly zero and the k columns match the reference;
    adagrad averages its squared gradients over k, not over the padded width."""
    ratings = random_ratings(n_users=70, seed=12)
    rng = np.random.default_rng(13)
    P0 = rng.normal(0, 0.1, (ratings.n_users, k))
    Q0 = rng.normal(0, 0.1, (ratings.n_items, k))
    P, Q = kernel_factors(P0), kernel_factors(Q0)
    assert P.strides[0] == padded_width(k, 8) * 8 and P.ctypes.data % 64 == 0
    bu, bi = np.zeros(ratings.n_users), np.zeros(ratings.n_items)
    grads = (np.ones(ratings.n_users), np.ones(ratings.n_items)) if adagrad else \
        (np.zeros(0), np.zeros(0))
    ref = [P0.copy(), Q0.copy(), bu.copy(), bi.copy()]
    ref_grads = (grads[0].copy(), grads[1].copy()) if adagrad else None
    layout = build_layout(ratings, 2, rng)
    flags = _sgd.FLAG_BIASED | (_sgd.FLAG_ADAGRAD if adagrad else 0)
    for epoch in range(2):
        schedule = epoch_schedule(2, rng)
        seed = int(rng.integers(0, 2**63))
        sse = _sgd.sgd_epoch(P, Q, bu, bi, *grads, layout.block_ptr, layout.run_user,
                             layout.run_ptr, layout.items, layout.ratings, schedule,
                             layout.order, layout.block_sse, 3.5, 0.05, 0.03, 0.01, flags, seed, 2,
                             min_work_per_thread=0)
        ref_sse = reference_epoch(*ref, layout, schedule, seed, 3.5, 0.05, 0.03, 0.01, True,
                                  ref_grads)
        assert sse == pytest.approx(ref_sse, rel=1e-9)
    for got, want in zip([P, Q, bu, bi], ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    if adagrad:
        np.testing.assert_allclose(grads[0], ref_grads[0], rtol=1e-12)
    for padded in (P, Q):
        full = np.lib.stride_tricks.as_strided(padded, (len(padded), padded.strides[0] // 8))
        assert not full[:, k:].any()


def test_kernel_rejects_rows_it_cannot_address():
    ratings = random_ratings(seed=14)
    layout = build_layout(ratings, 1, np.random.default_rng(0))
    P = np.zeros((ratings.n_users, 20))[:, :5]  # row stride 20: neither 5 nor the padded 8
    Q = np.zeros((ratings.n_items, 5))
    empty = np.zeros(0)
    args = (np.zeros(ratings.n_users), np.zeros(ratings.n_items), empty, empty,
            layout.block_ptr, layout.run_user, layout.run_ptr, layout.items, layout.ratings,
            epoch_schedule(1, np.random.default_rng(0)), layout.order, layout.block_sse,
            3.0, 0.05, 0.02, 0.02, 0, 1, 1)
    with pytest.raises(ValueError, match="P must have contiguous rows of 5 or 8 values"):
        _sgd.sgd_epoch(P, Q, *args)
    with pytest.raises(ValueError, match="both have padded rows or both plain"):
        _sgd.sgd_epoch(kernel_factors(np.zeros((ratings.n_users, 5))), Q, *args)


def test_float32_kernel_tracks_float64():
    ratings = random_ratings(seed=5)
    rng = np.random.default_rng(6)
    P64 = rng.normal(0, 0.1, (ratings.n_users, 8))
    Q64 = rng.normal(0, 0.1, (ratings.n_items, 8))
    layout = build_layout(ratings, 2, rng)
    schedule = epoch_schedule(2, rng)
    results = []
    for dtype in (np.float32, np.float64):
        P, Q = P64.astype(dtype), Q64.astype(dtype)
        bu, bi = np.zeros(ratings.n_users, dtype), np.zeros(ratings.n_items, dtype)
        empty = np.zeros(0, dtype)
        _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user,
                       layout.run_ptr, layout.items, layout.ratings, schedule, layout.order,
                       layout.block_sse, 3.0, 0.05, 0.02, 0.02, _sgd.FLAG_BIASED, 9, 1)
        results.append(P.astype(np.float64))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_every_instruction_set_agrees_with_reference():
    ratings = random_ratings(seed=7)
    available = [isa for isa in ("baseline", "avx2", "avx512") if _try_isa(isa)]
    finals = []
    try:
        for isa in available:
            _sgd.select_isa(isa)
            rng = np.random.default_rng(8)
            P = rng.normal(0, 0.1, (ratings.n_users, 128))
            Q = rng.normal(0, 0.1, (ratings.n_items, 128))
            layout = build_layout(ratings, 2, rng)
            schedule = epoch_schedule(2, rng)
            bu, bi, empty = np.zeros(ratings.n_users), np.zeros(ratings.n_items), np.zeros(0)
            _sgd.sgd_epoch(P, Q, bu, bi, empty, empty, layout.block_ptr, layout.run_user,
                           layout.run_ptr, layout.items, layout.ratings, schedule, layout.order,
                           layout.block_sse, 3.0, 0.05, 0.02, 0.02, _sgd.FLAG_BIASED, 11, 1)
            finals.append(P)
    finally:
        _sgd.select_isa("auto")
    for P in finals[1:]:
        np.testing.assert_allclose(P, finals[0], atol=1e-12)


def _try_isa(name):
    try:
        _sgd.select_isa(name)
        return True
    except ValueError:
        return False
    finally:
        _sgd.select_isa("auto")


def test_unknown_instruction_set_is_refused():
    with pytest.raises(ValueError, match="sse9"):
        _sgd.select_isa("sse9")


def test_auto_block_count_is_a_power_of_two_set_by_data_and_k():
    from mfsgd._layout import auto_n_blocks
    counts = [auto_n_blocks(100_000, n_items, 5_000_000, k, 4)
              for n_items in (1_000, 10_000, 100_000) for k in (16, 32, 128, 256)]
    assert all(b >= 2 and b & (b - 1) == 0 for b in counts)
    assert auto_n_blocks(100_000, 10_000, 2_739_007, 128, 4) == 2  # cache says 5, runs say 3
    assert auto_n_blocks(10, 3, 30, 32, 4) == 2
    assert auto_n_blocks(1, 5, 5, 32, 4) == 1
