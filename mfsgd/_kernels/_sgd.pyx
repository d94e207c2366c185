# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Typed nogil kernels: the blocked SGD epoch, the rating layout it runs over, batch prediction.

Layout.  Users are split into B row blocks and items into B column blocks (seeded balanced
assignment, chosen by the caller).  Block (rb, cb) holds the ratings of users in rb on items in
cb, as *runs*: one run per user with ratings in the block, its ratings contiguous.  All blocks
are concatenated, so the layout is one copy of the ratings plus 12 bytes per run.

Visiting order of one epoch.  The epoch is B sub-epochs; the caller's `schedule[s]` lists the B
blocks of sub-epoch s, which share no row block and no column block.  Within a block, runs
(users) are visited segment by segment: the block's runs are cut into segments of 32
consecutive runs, the segments visited in the order of a Fisher-Yates permutation drawn from
splitmix64(stream_seed(epoch_seed, block)), the runs of a segment in stored order (see
:func:`block_order`).  The kernel works through that order in LANES lanes: each lane holds a
run, the lanes apply one rating each in turn (ratings within a run in stored order, shuffled
once by `build_layout`), and a lane whose run ends takes the next run of the order.  Blocks of one sub-epoch touch disjoint factor rows, so they run on
any number of threads with bit-identical results; per-block error sums are added in block
order for the same reason.
"""
import numpy as np

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "_kernels.h" nogil:
    ctypedef struct mf_params:
        double mu, lr, reg, bias_reg
        int flags, n_factors
    int MF_BIASED, MF_ADAGRAD, MF_NONNEG
    const int mf_have_openmp
    uint64_t mf_stream_seed(uint64_t seed, uint64_t stream)
    void mf_permutation(int32_t *out, int64_t n, uint64_t seed)
    int MF_SEGMENT_RUNS
    int MF_LANES
    void mf_block_order(int32_t *out, int64_t n, uint64_t seed, int32_t *segments)
    void mf_shuffle_pairs(int32_t *items, float *ratings, int64_t n, uint64_t seed)
    double mf_sgd_block_f32(float *P, float *Q, float *bu, float *bi, float *gp, float *gq,
                            const int32_t *run_user, const int64_t *run_ptr,
                            const int32_t *order, int64_t n_runs,
                            const int32_t *items, const float *ratings, int k,
                            const mf_params *prm)
    double mf_sgd_block_f64(double *P, double *Q, double *bu, double *bi, double *gp, double *gq,
                            const int32_t *run_user, const int64_t *run_ptr,
                            const int32_t *order, int64_t n_runs,
                            const int32_t *items, const float *ratings, int k,
                            const mf_params *prm)
    float mf_dot_f32(const float *a, const float *b, int k)
    double mf_dot_f64(const double *a, const double *b, int k)
    double mf_seconds()
    double mf_thread_seconds()
    const char *mf_select_isa(const char *wanted)
    const char *mf_isa_for(int k)

FLAG_BIASED = MF_BIASED
FLAG_ADAGRAD = MF_ADAGRAD
FLAG_NONNEG = MF_NONNEG
HAVE_OPENMP = bool(mf_have_openmp)
SEGMENT_RUNS = MF_SEGMENT_RUNS
LANES = MF_LANES


def select_isa(str wanted="auto"):
    """Select the instruction set of the SGD kernel.

    Parameters
    ----------
    wanted : {"auto", "avx512", "avx2", "baseline"}
        "auto" picks the best one this CPU and build support.

    Returns
    -------
    str
        `wanted`.
    """
    cdef bytes name = wanted.encode()
    cdef const char *got = mf_select_isa(name)
    if got == NULL:
        raise ValueError(f"instruction set {wanted!r} is not available on this CPU or build")
    return got.decode()


def current_isa(int n_factors=32):
    """Return the instruction set the float32 SGD kernel uses for `n_factors` factors."""
    return mf_isa_for(n_factors).decode()


def stream_seed(uint64_t seed, uint64_t stream):
    """Return the seed of random stream `stream` derived from `seed` (as the kernel does)."""
    return mf_stream_seed(seed, stream)


def permutation(uint64_t seed, int64_t n):
    """Return the Fisher-Yates permutation of ``range(n)`` the kernel draws from `seed`."""
    out = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] view = out
    if n > 0:
        mf_permutation(&view[0], n, seed)
    return out


def block_order(uint64_t seed, int64_t n):
    """Return the order in which the kernel visits the ``n`` runs of a block, given its seed.

    The runs are cut into segments of ``SEGMENT_RUNS`` consecutive runs; the segments come in
    the order of ``permutation(seed, n_segments)``, the runs of each segment in stored order.
    """
    out = np.empty(n, dtype=np.int32)
    segments = np.empty((n + MF_SEGMENT_RUNS - 1) // MF_SEGMENT_RUNS, dtype=np.int32)
    cdef int32_t[::1] view = out, scratch = segments
    if n > 0:
        mf_block_order(&view[0], n, seed, &scratch[0])
    return out


def count_items(const int32_t[::1] indices, int64_t n_items):
    """Number of ratings of each item (like np.bincount, without an int64 copy of `indices`)."""
    counts = np.zeros(n_items, dtype=np.int64)
    cdef int64_t[::1] view = counts
    cdef Py_ssize_t j
    with nogil:
        for j in range(indices.shape[0]):
            view[indices[j]] += 1
    return counts


def count_layout(const int64_t[::1] indptr, const int32_t[::1] indices,
                 const int32_t[::1] row_block, const int32_t[::1] col_block, int n_blocks):
    """Count ratings and runs per block of the blocked layout.

    Returns
    -------
    ratings_per_block, runs_per_block : ndarray of int64, shape (n_blocks ** 2,)
    """
    cdef int64_t n_users = indptr.shape[0] - 1, u, j, blk, cb
    ratings_per_block = np.zeros(n_blocks * n_blocks, dtype=np.int64)
    runs_per_block = np.zeros(n_blocks * n_blocks, dtype=np.int64)
    seen = np.full(n_blocks, -1, dtype=np.int64)
    cdef int64_t[::1] n_ratings = ratings_per_block, n_runs = runs_per_block, last_user = seen
    with nogil:
        for u in range(n_users):
            for j in range(indptr[u], indptr[u + 1]):
                cb = col_block[indices[j]]
                blk = row_block[u] * n_blocks + cb
                n_ratings[blk] += 1
                if last_user[cb] != u:
                    last_user[cb] = u
                    n_runs[blk] += 1
    return ratings_per_block, runs_per_block


def fill_layout(const int64_t[::1] indptr, const int32_t[::1] indices, const float[::1] data,
                const int32_t[::1] row_block, const int32_t[::1] col_block, int n_blocks,
                const int64_t[::1] block_run_start, const int64_t[::1] block_rating_start,
                int32_t[::1] run_user, int64_t[::1] run_ptr, int32_t[::1] items,
                float[::1] ratings, uint64_t seed, int64_t first_run=0):
    """Write the blocked layout into preallocated arrays and shuffle each run once.

    ``block_run_start`` / ``block_rating_start`` are the exclusive prefix sums of the counts
    from :func:`count_layout`; ``run_ptr`` has one more entry than ``run_user``.  Run ``j`` is
    shuffled with ``permutation(stream_seed(seed, first_run + j), length)``'s swaps: laying out
    one block alone with `first_run` = the number of runs before it in the whole layout gives
    that block's slice of the whole layout (a distributed backend lays out blocks this way).
    """
    cdef int64_t n_users = indptr.shape[0] - 1, n_total_runs = run_user.shape[0]
    cdef int64_t u, j, blk, cb, run, pos
    run_cursor_arr = np.array(block_run_start, dtype=np.int64)
    rating_cursor_arr = np.array(block_rating_start, dtype=np.int64)
    count_arr = np.zeros(n_blocks, dtype=np.int64)
    write_arr = np.zeros(n_blocks, dtype=np.int64)
    cdef int64_t[::1] run_cursor = run_cursor_arr, rating_cursor = rating_cursor_arr
    cdef int64_t[::1] count = count_arr, write_at = write_arr
    with nogil:
        for u in range(n_users):
            for j in range(indptr[u], indptr[u + 1]):
                count[col_block[indices[j]]] += 1
            for j in range(indptr[u], indptr[u + 1]):
                cb = col_block[indices[j]]
                if count[cb] > 0:
                    blk = row_block[u] * n_blocks + cb
                    run = run_cursor[blk]
                    run_cursor[blk] += 1
                    run_user[run] = <int32_t>u
                    run_ptr[run] = rating_cursor[blk]
                    write_at[cb] = rating_cursor[blk]
                    rating_cursor[blk] += count[cb]
                    count[cb] = 0
            for j in range(indptr[u], indptr[u + 1]):
                cb = col_block[indices[j]]
                pos = write_at[cb]
                write_at[cb] += 1
                items[pos] = indices[j]
                ratings[pos] = data[j]
        run_ptr[n_total_runs] = items.shape[0]
        for run in range(n_total_runs):
            mf_shuffle_pairs(&items[run_ptr[run]], &ratings[run_ptr[run]],
                             run_ptr[run + 1] - run_ptr[run],
                             mf_stream_seed(seed, <uint64_t>(first_run + run)))


cdef inline floating *_ptr_or_null(floating[::1] arr) noexcept nogil:
    return &arr[0] if arr.shape[0] > 0 else NULL


cpdef Py_ssize_t padded_width(Py_ssize_t n_factors, Py_ssize_t itemsize):
    """Row length, in elements, of the kernel's factor rows: `n_factors` rounded up to a
    whole number of 64-byte cache lines."""
    cdef Py_ssize_t per_line = 64 // itemsize
    return (n_factors + per_line - 1) // per_line * per_line


cdef int _row_width(Py_ssize_t n_rows, Py_ssize_t k, Py_ssize_t row_stride,
                    Py_ssize_t column_stride, Py_ssize_t itemsize, str name) except -1:
    """Values per factor row in memory: k, or k padded to whole 64-byte lines (the padding
    columns must hold zeros); 0 for an array without rows."""
    cdef Py_ssize_t padded = padded_width(k, itemsize)
    if n_rows == 0:
        return 0
    if column_stride != itemsize or row_stride not in (k * itemsize, padded * itemsize):
        raise ValueError(f"{name} must have contiguous rows of {k} or {padded} values, "
                         f"got strides ({row_stride}, {column_stride})")
    return row_stride // itemsize


#: Work, in rating updates times (row width + RATING_OVERHEAD), that a sub-epoch must hold per
#: thread before it is split over that many threads: below it, waking a thread and waiting at
#: the barrier cost more than the thread saves.  Never changes the result.
MIN_WORK_PER_THREAD = 4_000_000
#: Cost of one rating update beyond its row width, in the same units (loads, error, biases).
RATING_OVERHEAD = 48
#: Predictions per thread below which :func:`predict` uses fewer threads.
MIN_PREDICTIONS_PER_THREAD = 50_000


cdef int _threads_for(double work, double min_work, int most) noexcept nogil:
    """Threads for `work` units: one per `min_work` units, between 1 and `most`."""
    if min_work <= 0:
        return max(1, most)
    if work < min_work * most:
        return max(1, <int>(work / min_work))
    return max(1, most)


cdef int _sub_epoch_threads(const int64_t[::1] block_ptr, const int64_t[::1] run_ptr,
                            const int32_t[:, ::1] schedule, Py_ssize_t s, double row_width,
                            double overhead, double min_work, int n_threads) noexcept nogil:
    """Threads for sub-epoch `s`: by its rating updates times (row width + overhead)."""
    cdef double n_ratings = 0
    cdef Py_ssize_t t
    cdef int64_t blk
    for t in range(schedule.shape[1]):
        blk = schedule[s, t]
        n_ratings += <double>(run_ptr[block_ptr[blk + 1]] - run_ptr[block_ptr[blk]])
    return _threads_for(n_ratings * (row_width + overhead), min_work,
                        <int>min(<Py_ssize_t>n_threads, schedule.shape[1]))


def sub_epoch_threads(const int64_t[::1] block_ptr, const int64_t[::1] run_ptr,
                      const int32_t[:, ::1] schedule, int row_width, int n_threads,
                      min_work_per_thread=None):
    """Threads :func:`sgd_epoch` gives each sub-epoch of `schedule` (see its parameters).

    Returns
    -------
    ndarray of int32, shape (len(schedule),)
    """
    cdef double min_work = (MIN_WORK_PER_THREAD if min_work_per_thread is None
                            else min_work_per_thread)
    cdef double overhead = RATING_OVERHEAD
    out = np.empty(schedule.shape[0], dtype=np.int32)
    cdef int32_t[::1] view = out
    cdef Py_ssize_t s
    for s in range(schedule.shape[0]):
        view[s] = _sub_epoch_threads(block_ptr, run_ptr, schedule, s, row_width, overhead,
                                     min_work, n_threads)
    return out


cdef int _kernel_width(Py_ssize_t n_factors, Py_ssize_t width, Py_ssize_t other_width,
                       Py_ssize_t itemsize) except -1:
    """Row width of the factor arrays given to :func:`sgd_epoch`, after checking that both have
    rows of the same width and that it holds `n_factors` (0: the whole row)."""
    if other_width != width:
        raise ValueError(f"P and Q must have rows of the same width, got {width} and "
                         f"{other_width} values")
    if n_factors < 0 or n_factors > width or \
            (n_factors > 0 and width not in (n_factors, padded_width(n_factors, itemsize))):
        raise ValueError(f"rows of {width} values cannot hold n_factors={n_factors}: the width "
                         f"must be n_factors or n_factors padded to whole 64-byte lines")
    return width


cdef int _check_c_rows(Py_ssize_t n_rows, Py_ssize_t width, Py_ssize_t row_stride,
                       Py_ssize_t column_stride, Py_ssize_t itemsize, str name) except -1:
    """Raise ValueError unless an (n_rows, width) array is C-contiguous (the strides of a
    one-row or one-column dimension do not matter)."""
    if (n_rows > 1 and row_stride != width * itemsize) or (width > 1 and column_stride != itemsize):
        raise ValueError(f"{name} must be C-contiguous (whole rows of {width} values), got "
                         f"strides ({row_stride}, {column_stride})")
    return 0


def sgd_epoch(floating[:, :] P, floating[:, :] Q, floating[::1] user_bias,
              floating[::1] item_bias, floating[::1] user_grad_sq, floating[::1] item_grad_sq,
              const int64_t[::1] block_ptr, const int32_t[::1] run_user,
              const int64_t[::1] run_ptr, const int32_t[::1] items, const float[::1] ratings,
              const int32_t[:, ::1] schedule, int32_t[::1] order, double[::1] block_sse,
              double mu, double lr, double reg, double bias_reg, int flags, uint64_t seed,
              int n_threads, int n_factors=0, double[::1] block_seconds=None,
              min_work_per_thread=None, double[::1] block_cpu_seconds=None):
    """Run the sub-epochs listed in `schedule`, in place on the factors and biases.

    Parameters
    ----------
    P, Q : ndarray, shape (n_users, width) and (n_items, width), same float dtype
        The whole factor rows the kernel works on, C-contiguous: `width` is `n_factors`, or
        ``padded_width(n_factors)`` with zeros in the padding columns (see
        ``_layout.kernel_rows``), which every update leaves at zero.  The width is read from
        the shapes, never from the strides: a one-row array's stride says nothing.
    user_bias, item_bias : ndarray, shape (n_users,) and (n_items,)
    user_grad_sq, item_grad_sq : ndarray
        Adagrad accumulators (one per factor row), or empty arrays without adagrad.
    block_ptr, run_user, run_ptr, items, ratings : ndarray
        The layout from :func:`count_layout` / :func:`fill_layout`.
    schedule : ndarray of int32, shape (n_sub_epochs, width)
        Blocks to run in each sub-epoch; blocks of one row share no row or column block.  A
        whole epoch's schedule, or some of its rows (calls on consecutive rows give the same
        result as one call on all of them).
    order : ndarray of int32, shape (n_runs,)
        Scratch space for the visiting order of runs (see :func:`block_order`).
    block_sse : ndarray of float64, shape (n_blocks ** 2,)
        Receives the sum of squared errors of each block run.
    mu, lr, reg, bias_reg : float
        Global mean, learning rate, factor and bias regularization.
    flags : int
        Bitwise or of FLAG_BIASED, FLAG_ADAGRAD, FLAG_NONNEG.
    seed : int
        Seed of this epoch's visiting order.
    n_threads : int
        Most threads for the blocks of a sub-epoch (no effect on the result).  A sub-epoch
        gets one thread per `min_work_per_thread` units of work, at most `n_threads`.
    n_factors : int, default=0
        The number of factors k in a row (adagrad averages its squared gradients over k);
        0 means the whole width.
    block_seconds : ndarray of float64, shape (n_blocks ** 2,), optional
        Receives the seconds each block of the schedule took.
    min_work_per_thread : float, optional
        Work per thread (rating updates times (row width + RATING_OVERHEAD)) below which a
        sub-epoch runs on fewer threads; default :data:`MIN_WORK_PER_THREAD`, 0 uses
        `n_threads` for every sub-epoch.
    block_cpu_seconds : ndarray of float64, shape (n_blocks ** 2,), optional
        Receives the CPU seconds of the thread that ran each block (time other processes
        took from it does not count).

    Returns
    -------
    float
        The sum of `block_sse` over all blocks: for a whole epoch's schedule, the sum of
        squared errors seen during the epoch.
    """
    cdef mf_params prm
    prm.mu = mu
    prm.lr = lr
    prm.reg = reg
    prm.bias_reg = bias_reg
    prm.flags = flags
    cdef int k = _kernel_width(n_factors, P.shape[1], Q.shape[1], sizeof(floating))
    _check_c_rows(P.shape[0], k, P.strides[0], P.strides[1], sizeof(floating), "P")
    _check_c_rows(Q.shape[0], k, Q.strides[0], Q.strides[1], sizeof(floating), "Q")
    prm.n_factors = n_factors if n_factors > 0 else k
    cdef Py_ssize_t n_sub = schedule.shape[0], width = schedule.shape[1], s, t, b
    cdef int64_t blk, start, n_runs
    cdef floating *gp = _ptr_or_null(user_grad_sq)
    cdef floating *gq = _ptr_or_null(item_grad_sq)
    cdef double total = 0, began
    cdef double min_work = (MIN_WORK_PER_THREAD if min_work_per_thread is None
                            else min_work_per_thread)
    cdef double overhead = RATING_OVERHEAD
    cdef int sub_threads
    cdef bint timed = block_seconds is not None
    cdef bint cpu_timed = block_cpu_seconds is not None
    cdef double began_cpu = 0
    if timed and block_seconds.shape[0] != block_sse.shape[0]:
        raise ValueError(f"block_seconds must have {block_sse.shape[0]} entries, got "
                         f"{block_seconds.shape[0]}")
    if cpu_timed and block_cpu_seconds.shape[0] != block_sse.shape[0]:
        raise ValueError(f"block_cpu_seconds must have {block_sse.shape[0]} entries, got "
                         f"{block_cpu_seconds.shape[0]}")
    cdef int64_t most_runs = 0
    for b in range(block_ptr.shape[0] - 1):
        most_runs = max(most_runs, block_ptr[b + 1] - block_ptr[b])
    segment_scratch = np.empty((width, most_runs // MF_SEGMENT_RUNS + 1), dtype=np.int32)
    cdef int32_t[:, ::1] segments = segment_scratch
    with nogil:
        for s in range(n_sub):
            sub_threads = _sub_epoch_threads(block_ptr, run_ptr, schedule, s, k, overhead,
                                             min_work, n_threads)
            # Column t of the schedule is always row block t, and a static schedule always gives
            # it to the same thread: each thread keeps its users' factor rows in its own cache
            # across sub-epochs.
            for t in prange(width, num_threads=sub_threads, schedule="static", chunksize=1):
                blk = schedule[s, t]
                start = block_ptr[blk]
                n_runs = block_ptr[blk + 1] - start
                block_sse[blk] = 0
                began = mf_seconds()
                if cpu_timed:
                    began_cpu = mf_thread_seconds()
                if n_runs > 0:
                    mf_block_order(&order[start], n_runs, mf_stream_seed(seed, blk),
                                   &segments[t, 0])
                    if floating is float:
                        block_sse[blk] = mf_sgd_block_f32(
                            &P[0, 0], &Q[0, 0], &user_bias[0], &item_bias[0], gp, gq,
                            &run_user[start], &run_ptr[start], &order[start], n_runs,
                            &items[0], &ratings[0], k, &prm)
                    else:
                        block_sse[blk] = mf_sgd_block_f64(
                            &P[0, 0], &Q[0, 0], &user_bias[0], &item_bias[0], gp, gq,
                            &run_user[start], &run_ptr[start], &order[start], n_runs,
                            &items[0], &ratings[0], k, &prm)
                if timed:
                    block_seconds[blk] = mf_seconds() - began
                if cpu_timed:
                    block_cpu_seconds[blk] = mf_thread_seconds() - began_cpu
        for b in range(block_sse.shape[0]):
            total += block_sse[b]
    return total


def predict(floating[:, :] P, floating[:, :] Q, floating[::1] user_bias,
            floating[::1] item_bias, double mu, const int64_t[::1] users,
            const int64_t[::1] items, double[::1] out, int n_threads=1,
            min_per_thread=None):
    """Predict ratings for index pairs into `out`; index -1 means unknown (no factors, no bias).

    Parameters
    ----------
    P, Q, user_bias, item_bias : ndarray
        Fitted factors and biases (pass zero biases for an unbiased model); the factor rows
        must be contiguous (row strides may be padded, see :func:`sgd_epoch`).
    mu : float
        Global mean (0 for an unbiased model).
    users, items : ndarray of int64
        Row indices into P / Q, or -1.
    out : ndarray of float64
        Receives the predictions (unclipped).
    n_threads : int
        Most threads (no effect on the result): one per `min_per_thread` predictions.
    min_per_thread : int, optional
        Default :data:`MIN_PREDICTIONS_PER_THREAD`; 0 uses `n_threads` whatever the size.
    """
    cdef Py_ssize_t n = users.shape[0], j
    cdef int k = P.shape[1]
    cdef int64_t u, i
    cdef double value
    _row_width(P.shape[0], k, P.strides[0], P.strides[1], sizeof(floating), "P")
    _row_width(Q.shape[0], k, Q.strides[0], Q.strides[1], sizeof(floating), "Q")
    n_threads = _threads_for(n, MIN_PREDICTIONS_PER_THREAD if min_per_thread is None
                             else min_per_thread, n_threads)
    with nogil:
        for j in prange(n, num_threads=n_threads, schedule="static"):
            u = users[j]
            i = items[j]
            value = mu
            if u >= 0:
                value = value + user_bias[u]
            if i >= 0:
                value = value + item_bias[i]
            if u >= 0 and i >= 0:
                if floating is float:
                    value = value + mf_dot_f32(&P[u, 0], &Q[i, 0], k)
                else:
                    value = value + mf_dot_f64(&P[u, 0], &Q[i, 0], k)
            out[j] = value


select_isa("auto")
