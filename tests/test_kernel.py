"""The C kernel against a pure-NumPy implementation of the same update rules and order."""
import numpy as np
import pytest
import scipy.sparse as sp

from mfsgd._kernels import _sgd
from mfsgd.data._csr import IndexedRatings
from mfsgd.training.layout import block_schedule, build_layout, kernel_rows, padded_width

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
                    grad_sq=None, non_negative=False, n_factors=None):
    """One epoch in NumPy, visiting ratings in the order the kernel documents: per sub-epoch,
    per block, runs in the seeded segment order worked through in lanes (:func:`lane_order`).
    Arithmetic is in P's dtype.
    `grad_sq` = (G_user, G_item) switches to adagrad: row learning rates lr / sqrt(G),
    G += the squared gradient summed over the row and divided by `n_factors` (default: the
    row width).  `non_negative` clips both factor rows at zero after each step (the biases are
    updated all the same)."""
    real = P.dtype.type
    mu, lr, reg, bias_reg = real(mu), real(lr), real(reg), real(bias_reg)
    n_factors = real(P.shape[1] if n_factors is None else n_factors)
    sse = 0.0

    def step(u, j):
        i = layout.items[j]
        pred = P[u] @ Q[i]
        if biased:
            pred = pred + (mu + bu[u] + bi[i])
        e = real(layout.ratings[j]) - pred
        p_old, q_old = P[u].copy(), Q[i].copy()
        if biased:
            bu[u] += lr * (e - bias_reg * bu[u])
            bi[i] += lr * (e - bias_reg * bi[i])
        if grad_sq is None:
            P[u] = p_old + lr * (e * q_old - reg * p_old)
            Q[i] = q_old + lr * (e * p_old - reg * q_old)
        else:
            grad_p, grad_q = reg * p_old - e * q_old, reg * q_old - e * p_old
            P[u] = p_old - lr / real(np.sqrt(np.float64(grad_sq[0][u]))) * grad_p
            Q[i] = q_old - lr / real(np.sqrt(np.float64(grad_sq[1][i]))) * grad_q
            grad_sq[0][u] += np.sum(grad_p * grad_p) / n_factors
            grad_sq[1][i] += np.sum(grad_q * grad_q) / n_factors
        if non_negative:
            np.maximum(P[u], 0, out=P[u])
            np.maximum(Q[i], 0, out=Q[i])
        return float(e) * float(e)

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


def run_kernel_and_reference(ratings, dtype, k, padded, n_blocks=3, n_epochs=3, biased=True,
                             adagrad=False, non_negative=False, seed=4, lr=0.05, n_threads=2):
    """Run `n_epochs` epochs of the kernel and of the NumPy reference from the same start.

    The kernel works on whole rows: k values, or k padded with zeros to whole 64-byte lines
    (``padded``), as the estimator runs it.  Returns (kernel arrays, reference arrays, kernel
    rows, kernel SSEs, reference SSEs); the arrays are (P, Q, b_u, b_i) with k columns.
    """
    rng = np.random.default_rng(seed)
    P0 = rng.normal(0, 0.1, (ratings.n_users, k)).astype(dtype)
    Q0 = rng.normal(0, 0.1, (ratings.n_items, k)).astype(dtype)
    if non_negative:
        P0, Q0 = np.abs(P0), np.abs(Q0)
    P, Q = (kernel_rows(P0), kernel_rows(Q0)) if padded else (P0.copy(), Q0.copy())
    assert (P.shape[1] == padded_width(k, P.itemsize)) if padded else P.shape[1] == k
    bu, bi = np.zeros(ratings.n_users, dtype), np.zeros(ratings.n_items, dtype)
    grads = (np.ones(ratings.n_users, dtype), np.ones(ratings.n_items, dtype)) if adagrad \
        else (np.zeros(0, dtype), np.zeros(0, dtype))
    ref = [P0.copy(), Q0.copy(), bu.copy(), bi.copy()]
    ref_grads = (grads[0].copy(), grads[1].copy()) if adagrad else None
    mu = float(ratings.data.mean()) if biased else 0.0
    flags = ((_sgd.FLAG_BIASED if biased else 0) | (_sgd.FLAG_ADAGRAD if adagrad else 0)
             | (_sgd.FLAG_NONNEG if non_negative else 0))
    layout = build_layout(ratings, n_blocks, rng)
    sses, ref_sses = [], []
    for epoch in range(n_epochs):
        schedule = block_schedule(n_blocks, rng)
        epoch_seed = int(rng.integers(0, 2**63))
        sses.append(_sgd.sgd_epoch(P, Q, bu, bi, *grads, layout.block_ptr, layout.run_user,
                                   layout.run_ptr, layout.items, layout.ratings, schedule,
                                   layout.order, layout.block_sse, mu, lr, 0.03, 0.01, flags,
                                   epoch_seed, n_threads, k, min_work_per_thread=0))
        ref_sses.append(reference_epoch(*ref, layout, schedule, epoch_seed, mu, lr, 0.03, 0.01,
                                        biased, ref_grads, non_negative, k))
    if padded:
        assert not P[:, k:].any() and not Q[:, k:].any(), "the padding columns must stay zero"
    got = [P[:, :k], Q[:, :k], bu, bi] + (list(grads) if adagrad else [])
    want = ref + (list(ref_grads) if adagrad else [])
    return got, want, sses, ref_sses


def assert_matches_reference(got, want, sses, ref_sses, dtype):
    """float64: the kernel equals the reference to rounding; float32: to float32 precision."""
    atol, rtol = (1e-12, 1e-9) if dtype == np.float64 else (2e-5, 2e-5)
    for name, a, b in zip(["P", "Q", "user bias", "item bias", "G user", "G item"], got, want):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
    assert sses == pytest.approx(ref_sses, rel=rtol)


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
    schedule = block_schedule(4, np.random.default_rng(2))
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


# (dtype, k, padded): the row widths the kernel sees.  Widths 8, 16, 32, 64, 112, 128 and 256
# have register-resident fast paths; the others (5, 7, 104) run the generic one.
WIDTHS = [
    (np.float64, 5, False),    # 5: generic
    (np.float64, 5, True),     # 8
    (np.float64, 11, True),    # 16
    (np.float64, 32, False),   # 32
    (np.float64, 60, True),    # 64
    (np.float64, 100, True),   # 104: generic
    (np.float64, 112, False),  # 112
    (np.float64, 128, False),  # 128
    (np.float64, 250, True),   # 256
    (np.float32, 7, False),    # 7: generic
    (np.float32, 8, False),    # 8
    (np.float32, 5, True),     # 16
    (np.float32, 30, True),    # 32
    (np.float32, 50, True),    # 64
    (np.float32, 100, True),   # 112
    (np.float32, 120, True),   # 128
    (np.float32, 256, False),  # 256
]


def width_id(case):
    dtype, k, padded = case
    width = padded_width(k, np.dtype(dtype).itemsize) if padded else k
    return f"{np.dtype(dtype).name}-k{k}-width{width}"


@pytest.mark.parametrize("case", WIDTHS, ids=width_id)
@pytest.mark.parametrize("biased", [True, False])
def test_kernel_matches_numpy_reference(case, biased):
    """Constant learning rate: every fast-path width and the generic path, both dtypes; 150
    users make blocks of several segments."""
    dtype, k, padded = case
    ratings = random_ratings(n_users=150, seed=3)
    assert_matches_reference(*run_kernel_and_reference(ratings, dtype, k, padded, biased=biased),
                             dtype)


@pytest.mark.parametrize("case", WIDTHS, ids=width_id)
@pytest.mark.parametrize("n_users", [2, 4])
def test_kernel_matches_numpy_reference_on_blocks_of_few_runs(case, n_users):
    """Blocks of fewer runs than lanes (2 users: a lane stays idle) and of a few more (4
    users: one lane refills, the others run out), on every width and both dtypes."""
    dtype, k, padded = case
    ratings = random_ratings(n_users=n_users, n_items=40, density=0.5, seed=16)
    assert_matches_reference(*run_kernel_and_reference(ratings, dtype, k, padded, n_blocks=1,
                                                       adagrad=k % 2 == 1), dtype)


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_kernel_matches_numpy_reference_with_other_block_counts(n_blocks):
    ratings = random_ratings(n_users=150, seed=3)
    assert_matches_reference(*run_kernel_and_reference(ratings, np.float64, 32, False,
                                                       n_blocks=n_blocks), np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{"adagrad": True}, {"non_negative": True},
                                     {"adagrad": True, "non_negative": True},
                                     {"non_negative": True, "biased": False}],
                         ids=["adagrad", "non_negative", "adagrad+non_negative",
                              "non_negative-unbiased"])
@pytest.mark.parametrize("k, padded", [(11, True), (32, False), (100, True)])
def test_kernel_options_match_numpy_reference(dtype, options, k, padded):
    """Adagrad (mean squared gradient over k, not over the padded width) and non-negative
    factors (clipped at zero after each step; the biases still learn) run the generic path
    at every width."""
    ratings = random_ratings(n_users=70, seed=12)
    got, want, sses, ref_sses = run_kernel_and_reference(ratings, dtype, k, padded, n_blocks=2,
                                                         **options)
    assert_matches_reference(got, want, sses, ref_sses, dtype)
    if options.get("non_negative") and options.get("biased", True):
        assert min(got[0].min(), got[1].min()) == 0          # the clipping was exercised
        assert np.abs(got[2]).max() > 0.01                   # and the biases moved


@pytest.mark.parametrize("n_users, n_items", [(1, 1), (1, 9), (9, 1), (2, 1), (1, 40)])
@pytest.mark.parametrize("dtype, k, padded", [(np.float32, 5, True), (np.float64, 5, True),
                                              (np.float32, 100, True), (np.float32, 16, False)])
def test_kernel_on_one_row_or_one_column_matches_reference(n_users, n_items, dtype, k, padded):
    """A one-row factor array says nothing about its row width through its strides; the kernel
    reads the width from the shapes (1 x n rating sets once crashed on this)."""
    ratings = random_ratings(n_users=n_users, n_items=n_items, density=1.0, seed=15)
    assert_matches_reference(*run_kernel_and_reference(ratings, dtype, k, padded, n_blocks=1),
                             dtype)


def test_kernel_rejects_rows_it_cannot_address():
    ratings = random_ratings(seed=14)
    layout = build_layout(ratings, 1, np.random.default_rng(0))
    empty = np.zeros(0)
    args = (np.zeros(ratings.n_users), np.zeros(ratings.n_items), empty, empty,
            layout.block_ptr, layout.run_user, layout.run_ptr, layout.items, layout.ratings,
            block_schedule(1, np.random.default_rng(0)), layout.order, layout.block_sse,
            3.0, 0.05, 0.02, 0.02, 0, 1, 1)
    P = np.zeros((ratings.n_users, 8))
    Q = np.zeros((ratings.n_items, 8))
    with pytest.raises(ValueError, match="P must be C-contiguous"):
        _sgd.sgd_epoch(np.zeros((ratings.n_users, 20))[:, :8], Q, *args)
    with pytest.raises(ValueError, match="Q must be C-contiguous"):
        _sgd.sgd_epoch(P, np.zeros((ratings.n_items, 16))[:, ::2], *args)
    with pytest.raises(ValueError, match="same width, got 8 and 5"):
        _sgd.sgd_epoch(P, np.zeros((ratings.n_items, 5)), *args)
    for n_factors in (5, 13, -1):         # 12 doubles: k = 12 only (5 pads to 8, not 12)
        with pytest.raises(ValueError, match=f"cannot hold n_factors={n_factors}"):
            _sgd.sgd_epoch(np.zeros((ratings.n_users, 12)), np.zeros((ratings.n_items, 12)),
                           *args, n_factors)
    _sgd.sgd_epoch(P, Q, *args, 5)        # 8 doubles: k = 8, or k = 1..7 padded


def test_float32_kernel_tracks_float64():
    ratings = random_ratings(seed=5)
    rng = np.random.default_rng(6)
    P64 = rng.normal(0, 0.1, (ratings.n_users, 8))
    Q64 = rng.normal(0, 0.1, (ratings.n_items, 8))
    layout = build_layout(ratings, 2, rng)
    schedule = block_schedule(2, rng)
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


@pytest.mark.parametrize("dtype, k, padded", [(np.float32, 11, True), (np.float32, 100, True),
                                              (np.float32, 128, False), (np.float64, 60, True),
                                              (np.float64, 128, False)])
def test_every_instruction_set_matches_reference(dtype, k, padded):
    """Every instruction set this CPU runs (baseline always) against the NumPy reference,
    narrow and wide widths (the "auto" choice differs between them), the fast path and
    adagrad's generic one; so a CPU without AVX2 still checks what it runs."""
    ratings = random_ratings(seed=7)
    available = [isa for isa in ("baseline", "avx2", "avx512") if _try_isa(isa)]
    assert "baseline" in available
    try:
        for isa in available:
            _sgd.select_isa(isa)
            for adagrad in (False, True):
                got, want, sses, ref_sses = run_kernel_and_reference(
                    ratings, dtype, k, padded, n_blocks=2, n_epochs=2, adagrad=adagrad, seed=8)
                assert_matches_reference(got, want, sses, ref_sses, dtype)
    finally:
        _sgd.select_isa("auto")


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
    from mfsgd.training.layout import auto_n_blocks
    counts = [auto_n_blocks(100_000, n_items, 5_000_000, k, 4)
              for n_items in (1_000, 10_000, 100_000) for k in (16, 32, 128, 256)]
    assert all(b >= 2 and b & (b - 1) == 0 for b in counts)
    assert auto_n_blocks(100_000, 10_000, 2_739_007, 128, 4) == 2  # cache says 5, runs say 3
    assert auto_n_blocks(10, 3, 30, 32, 4) == 2
    assert auto_n_blocks(1, 5, 5, 32, 4) == 1
