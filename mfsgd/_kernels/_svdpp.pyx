# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Typed nogil SVD++ kernels: the blocked SGD epoch, pending implicit updates, user vectors.

The model is r_ui = mu + b_u + b_i + q_i . (p_u + z_u) with the implicit sum
z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j (Koren, KDD 2008).  The epoch runs on the blocked,
segment-shuffled schedule of :mod:`mfsgd._sgd` (same row/column blocks, sub-epochs, segment
order of a block's runs from ``block_order``), with one run per *cell*: a user u and a column
block c in which N(u) has items (a cell may have no ratings).  Within a run the ratings follow
Koren's per-rating SGD rules exactly, with the implicit sum carried along in O(k) per rating;
the run's y-updates are applied once, O(|N_c(u)| k), to the rows of its own column block at
the end of the run, and to the other column blocks' rows at the user's next run there.  After
every sub-epoch each cell's sum is re-read.  The exact order and what a run does not see are
in ``_svdpp_impl.h`` and the README.

Every write goes to rows the thread owns in its sub-epoch (y rows of the block's column block,
and the user's own P row, bias and cells), and the refresh between sub-epochs writes each
cell's sum from rows nobody writes then; so the result does not depend on the thread count.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "_svdpp.h" nogil:
    ctypedef struct svdpp_params:
        double mu, lr, reg, bias_reg, lr_y, reg_y
        int flags
    ctypedef struct svdpp_state:
        void *P
        void *Q
        void *Y
        void *bu
        void *bi
        void *V
        void *D
        void *C
    ctypedef struct svdpp_layout_view:
        const int32_t *run_user
        const int32_t *run_cell
        const int64_t *run_ptr
        const int32_t *items
        const float *ratings
        const int64_t *user_cell_ptr
        const int64_t *cell_item_ptr
        const int32_t *cell_items
    int MF_BIASED
    uint64_t mf_stream_seed(uint64_t seed, uint64_t stream)
    int MF_SEGMENT_RUNS
    void mf_block_order(int32_t *out, int64_t n, uint64_t seed, int32_t *segments)
    void mf_shuffle_pairs(int32_t *items, float *ratings, int64_t n, uint64_t seed)
    double svd_block(int is_double, const svdpp_state *st, const svdpp_layout_view *lay,
                     const int32_t *order, int64_t n_runs, int k, const svdpp_params *prm)
    const char *svd_select_isa(const char *wanted)
    const char *svd_isa_for(int k, int size)
    void svd_apply_pending_f32_base(float *Y, const float *C, const float *D,
                                    const svdpp_layout_view *lay, const int32_t *cells,
                                    int64_t n, int k)
    void svd_apply_pending_f64_base(double *Y, const double *C, const double *D,
                                    const svdpp_layout_view *lay, const int32_t *cells,
                                    int64_t n, int k)
    void svd_user_vectors_f32_base(float *out, const float *P, const float *Y,
                                   const svdpp_layout_view *lay, int64_t u0, int64_t u1, int k)
    void svd_user_vectors_f64_base(double *out, const double *P, const double *Y,
                                   const svdpp_layout_view *lay, int64_t u0, int64_t u1, int k)
    void svd_refresh_f32(float *V, const float *Y, const float *C, const float *D,
                         const svdpp_layout_view *lay, int64_t x0, int64_t x1, int k)
    void svd_refresh_f64(double *V, const double *Y, const double *C, const double *D,
                         const svdpp_layout_view *lay, int64_t x0, int64_t x1, int k)

FLAG_BIASED = MF_BIASED
cdef enum:
    CHUNK = 256  # users or cells per parallel task


def select_isa(str wanted="auto"):
    """Select the instruction set of the SVD++ kernel ("auto", "avx512", "avx2", "baseline").

    Returns
    -------
    str
        `wanted`.
    """
    cdef bytes name = wanted.encode()
    cdef const char *got = svd_select_isa(name)
    if got == NULL:
        raise ValueError(f"instruction set {wanted!r} is not available on this CPU or build")
    return got.decode()


def current_isa(int width, int itemsize=4):
    """Instruction set the SVD++ kernel uses for factor rows of `width` values."""
    return svd_isa_for(width, itemsize).decode()


def shuffle_runs(const int64_t[::1] run_ptr, int32_t[::1] items, float[::1] ratings,
                 uint64_t seed):
    """Shuffle each run's (item, rating) pairs in place, run r with stream_seed(seed, r)."""
    cdef int64_t r, n_runs = run_ptr.shape[0] - 1
    with nogil:
        for r in range(n_runs):
            if run_ptr[r + 1] - run_ptr[r] > 1:
                mf_shuffle_pairs(&items[run_ptr[r]], &ratings[run_ptr[r]],
                                 run_ptr[r + 1] - run_ptr[r], mf_stream_seed(seed, r))


def count_cells(const int64_t[::1] n_indptr, const int32_t[::1] n_indices,
                const int64_t[::1] indptr, const int32_t[::1] row_block,
                const int32_t[::1] col_block, int n_blocks, double[::1] implicit_weights):
    """Count the cells (user, column block with items of N(u)) per block of the layout, and
    add to ``implicit_weights[j]`` the number of ratings of every user with j in N(u).

    Returns
    -------
    n_cells : int
    cells_per_block : ndarray of int64, shape (n_blocks ** 2,)
    cells_per_column : ndarray of int64, shape (n_blocks,)
    """
    cdef int64_t n_users = n_indptr.shape[0] - 1, u, s, cb, n_cells = 0
    cdef double rated
    per_block = np.zeros(n_blocks * n_blocks, dtype=np.int64)
    per_column = np.zeros(n_blocks, dtype=np.int64)
    last = np.full(n_blocks, -1, dtype=np.int64)
    cdef int64_t[::1] block_count = per_block, column_count = per_column, last_user = last
    with nogil:
        for u in range(n_users):
            rated = <double>(indptr[u + 1] - indptr[u])
            for s in range(n_indptr[u], n_indptr[u + 1]):
                implicit_weights[n_indices[s]] += rated
                cb = col_block[n_indices[s]]
                if last_user[cb] != u:
                    last_user[cb] = u
                    block_count[row_block[u] * n_blocks + cb] += 1
                    column_count[cb] += 1
                    n_cells += 1
    return n_cells, per_block, per_column


def fill_cells(const int64_t[::1] n_indptr, const int32_t[::1] n_indices,
               const int64_t[::1] indptr, const int32_t[::1] indices, const float[::1] data,
               const int32_t[::1] row_block, const int32_t[::1] col_block, int n_blocks,
               const int64_t[::1] block_ptr, const int64_t[::1] column_cell_ptr,
               int64_t[::1] user_cell_ptr, int64_t[::1] cell_item_ptr, int32_t[::1] cell_items,
               int32_t[::1] run_user, int32_t[::1] run_cell, int64_t[::1] run_ptr,
               int32_t[::1] items, float[::1] ratings, int32_t[::1] column_cells):
    """Write the SVD++ layout into preallocated arrays (see
    :func:`mfsgd.training.svdpp_layout.build_svdpp_layout`) in two passes over the users with
    O(n_blocks) scratch besides one int32 per cell: first the cells (user by user, column
    blocks ascending, each listing its items ascending), their runs (block by block, users
    ascending), the cells of each column block and the runs' rating counts; then, once
    ``run_ptr`` is summed, the ratings, in CSR order within each run (not shuffled).

    Raises
    ------
    ValueError
        When a rated item is not in its user's N(u).
    """
    cdef int64_t n_users = n_indptr.shape[0] - 1, n_cells = cell_item_ptr.shape[0] - 1
    cdef int64_t n_runs = run_ptr.shape[0] - 1
    cdef int64_t u, s, j, cb, blk, cell = 0, run, cursor = 0, missing = -1
    run_cursor_arr = np.array(block_ptr[:block_ptr.shape[0] - 1], dtype=np.int64)
    column_cursor_arr = np.array(column_cell_ptr[:column_cell_ptr.shape[0] - 1],
                                 dtype=np.int64)
    run_of_cb_arr = np.full(n_blocks, -1, dtype=np.int64)
    write_arr = np.zeros(n_blocks, dtype=np.int64)
    cell_run_arr = np.empty(n_cells, dtype=np.int32)
    cdef int64_t[::1] run_cursor = run_cursor_arr, column_cursor = column_cursor_arr
    cdef int64_t[::1] run_of_cb = run_of_cb_arr, write_at = write_arr
    cdef int32_t[::1] cell_run = cell_run_arr
    with nogil:
        for run in range(n_runs + 1):
            run_ptr[run] = 0
        for u in range(n_users):
            user_cell_ptr[u] = cell
            for s in range(n_indptr[u], n_indptr[u + 1]):
                write_at[col_block[n_indices[s]]] += 1
            for cb in range(n_blocks):
                if write_at[cb] == 0:
                    continue
                cell_item_ptr[cell] = cursor
                cursor += write_at[cb]
                write_at[cb] = cell_item_ptr[cell]
                blk = row_block[u] * n_blocks + cb
                run = run_cursor[blk]
                run_cursor[blk] += 1
                run_user[run] = <int32_t>u
                run_cell[run] = <int32_t>cell
                cell_run[cell] = <int32_t>run
                run_of_cb[cb] = run
                column_cells[column_cursor[cb]] = <int32_t>cell
                column_cursor[cb] += 1
                cell += 1
            for s in range(n_indptr[u], n_indptr[u + 1]):
                cb = col_block[n_indices[s]]
                cell_items[write_at[cb]] = n_indices[s]
                write_at[cb] += 1
            s = n_indptr[u]
            for j in range(indptr[u], indptr[u + 1]):
                # both rows are sorted: walk N(u) along the ratings
                while s < n_indptr[u + 1] and n_indices[s] < indices[j]:
                    s += 1
                if s == n_indptr[u + 1] or n_indices[s] != indices[j]:
                    missing = u
                    break
                run_ptr[run_of_cb[col_block[indices[j]]] + 1] += 1
            if missing >= 0:
                break
            for cb in range(n_blocks):
                run_of_cb[cb] = -1
                write_at[cb] = 0
        if missing < 0:
            user_cell_ptr[n_users] = cell
            cell_item_ptr[n_cells] = cursor
            for run in range(n_runs):
                run_ptr[run + 1] += run_ptr[run]
            for u in range(n_users):
                for cell in range(user_cell_ptr[u], user_cell_ptr[u + 1]):
                    cb = col_block[cell_items[cell_item_ptr[cell]]]
                    write_at[cb] = run_ptr[cell_run[cell]]
                for j in range(indptr[u], indptr[u + 1]):
                    cb = col_block[indices[j]]
                    items[write_at[cb]] = indices[j]
                    ratings[write_at[cb]] = data[j]
                    write_at[cb] += 1
    if missing >= 0:
        raise ValueError(f"the implicit sets N(u) must hold every rated item (user row "
                         f"{missing} rates an item outside it)")


cdef inline svdpp_layout_view _view(const int32_t[::1] run_user, const int32_t[::1] run_cell,
                                    const int64_t[::1] run_ptr, const int32_t[::1] items,
                                    const float[::1] ratings, const int64_t[::1] user_cell_ptr,
                                    const int64_t[::1] cell_item_ptr,
                                    const int32_t[::1] cell_items) noexcept:
    cdef svdpp_layout_view lay
    lay.run_user = &run_user[0] if run_user.shape[0] else NULL
    lay.run_cell = &run_cell[0] if run_cell.shape[0] else NULL
    lay.run_ptr = &run_ptr[0]
    lay.items = &items[0] if items.shape[0] else NULL
    lay.ratings = &ratings[0] if ratings.shape[0] else NULL
    lay.user_cell_ptr = &user_cell_ptr[0]
    lay.cell_item_ptr = &cell_item_ptr[0]
    lay.cell_items = &cell_items[0] if cell_items.shape[0] else NULL
    return lay


cdef int _check_rows(str name, Py_ssize_t width, Py_ssize_t got) except -1:
    if got != width:
        raise ValueError(f"{name} must have rows of {width} values like P, got {got}")
    return 0


cdef inline void *_data(floating[:, ::1] a) noexcept nogil:
    return <void *>&a[0, 0] if a.shape[0] > 0 else NULL


def svdpp_epoch(floating[:, ::1] P, floating[:, ::1] Q, floating[:, ::1] Y,
                floating[::1] user_bias, floating[::1] item_bias,
                floating[:, ::1] V, floating[:, ::1] D, floating[::1] C,
                const int64_t[::1] block_ptr, const int32_t[::1] run_user,
                const int32_t[::1] run_cell, const int64_t[::1] run_ptr,
                const int32_t[::1] items, const float[::1] ratings,
                const int64_t[::1] user_cell_ptr, const int64_t[::1] cell_item_ptr,
                const int32_t[::1] cell_items, const int32_t[:, ::1] schedule,
                int32_t[::1] order, double[::1] block_sse, double mu, double lr, double reg,
                double bias_reg, double implicit_lr, double implicit_reg, int flags,
                uint64_t seed, int refresh_every, int n_threads):
    """Run one SVD++ SGD epoch over the blocked layout, in place on the state.

    Parameters
    ----------
    P, Q, Y : ndarray, shape (n_users, w), (n_items, w), (n_items, w)
        User factors p, item factors q and implicit factors y, C-contiguous, all with rows of
        the same width w (k, or k padded with zero columns, which stay zero).
    user_bias, item_bias : ndarray
    V, D : ndarray, shape (n_cells, w)
        Per cell: the sum of its y rows as last seen, and the pending additive term.
    C : ndarray, shape (n_cells,)
        Per cell: the pending multiplicative term (1 with D = 0: nothing pending).
    block_ptr, run_user, run_cell, run_ptr, items, ratings : ndarray
        Runs of each block (``block_ptr``), the user and cell of each run, each run's
        (item, rating) pairs (see :func:`mfsgd._svdpp_layout.build_svdpp_layout`).
    user_cell_ptr, cell_item_ptr, cell_items : ndarray
        The cells of each user (consecutive, by column block) and the items of each cell.
    schedule : ndarray of int32, shape (n_sub_epochs, width)
        Blocks of each sub-epoch (no two share a row or column block).
    order : ndarray of int32, shape (n_runs,)
        Scratch for the visiting order.
    block_sse : ndarray of float64, shape (n_blocks ** 2,)
        Scratch, receives each block's sum of squared errors.
    mu, lr, reg, bias_reg : float
        Global mean, learning rate, factor and bias regularization.
    implicit_lr, implicit_reg : float
        Learning rate and regularization of the implicit factors y.
    flags : int
        FLAG_BIASED or 0.
    seed : int
        Seed of this epoch's visiting order.
    refresh_every : int
        After every `refresh_every`-th sub-epoch (counting from 1), every cell's V is
        recomputed from the y rows as they are then (:func:`refresh_cells`); 0: never.
    n_threads : int
        Threads for the blocks of a sub-epoch (no effect on the result).

    Returns
    -------
    float
        Sum of squared errors seen during the epoch.
    """
    cdef Py_ssize_t w = P.shape[1]
    _check_rows("Q", w, Q.shape[1])
    _check_rows("Y", w, Y.shape[1])
    _check_rows("V", w, V.shape[1])
    _check_rows("D", w, D.shape[1])
    if Y.shape[0] != Q.shape[0]:
        raise ValueError(f"Y must have a row per item like Q ({Q.shape[0]}), got {Y.shape[0]}")
    if C.shape[0] != V.shape[0] or D.shape[0] != V.shape[0]:
        raise ValueError("V, D and C must have a row per cell")
    if V.shape[0] != cell_item_ptr.shape[0] - 1 or run_cell.shape[0] != run_user.shape[0]:
        raise ValueError("the cell state does not match the layout")
    cdef svdpp_params prm
    prm.mu = mu
    prm.lr = lr
    prm.reg = reg
    prm.bias_reg = bias_reg
    prm.lr_y = implicit_lr
    prm.reg_y = implicit_reg
    prm.flags = flags
    cdef svdpp_state st
    st.P = _data(P)
    st.Q = _data(Q)
    st.Y = _data(Y)
    st.bu = <void *>&user_bias[0] if user_bias.shape[0] else NULL
    st.bi = <void *>&item_bias[0] if item_bias.shape[0] else NULL
    st.V = _data(V)
    st.D = _data(D)
    st.C = <void *>&C[0] if C.shape[0] else NULL
    cdef svdpp_layout_view lay = _view(run_user, run_cell, run_ptr, items, ratings,
                                       user_cell_ptr, cell_item_ptr, cell_items)
    cdef int is_double = floating is double
    cdef Py_ssize_t n_sub = schedule.shape[0], width = schedule.shape[1], s, t, b
    cdef int64_t blk, start, n_runs, j, chunk, most_runs = 0
    cdef int64_t n_cells = V.shape[0], n_chunks = (n_cells + CHUNK - 1) // CHUNK
    cdef double total = 0
    for b in range(block_ptr.shape[0] - 1):
        most_runs = max(most_runs, block_ptr[b + 1] - block_ptr[b])
    segment_scratch = np.empty((width, most_runs // MF_SEGMENT_RUNS + 1), dtype=np.int32)
    cdef int32_t[:, ::1] segments = segment_scratch
    with nogil:
        for s in range(n_sub):
            for t in prange(width, num_threads=n_threads, schedule="static", chunksize=1):
                blk = schedule[s, t]
                start = block_ptr[blk]
                n_runs = block_ptr[blk + 1] - start
                block_sse[blk] = 0
                if n_runs == 0:
                    continue
                mf_block_order(&order[start], n_runs, mf_stream_seed(seed, blk), &segments[t, 0])
                # order holds positions within the block; the kernel wants run indices
                for j in range(start, start + n_runs):
                    order[j] = order[j] + <int32_t>start
                block_sse[blk] = svd_block(is_double, &st, &lay, &order[start], n_runs,
                                           <int>w, &prm)
            if refresh_every > 0 and (s + 1) % refresh_every == 0 and n_cells > 0:
                for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
                    if floating is float:
                        svd_refresh_f32(&V[0, 0], &Y[0, 0], &C[0], &D[0, 0], &lay,
                                        chunk * CHUNK, min(chunk * CHUNK + CHUNK, n_cells), <int>w)
                    else:
                        svd_refresh_f64(&V[0, 0], &Y[0, 0], &C[0], &D[0, 0], &lay,
                                        chunk * CHUNK, min(chunk * CHUNK + CHUNK, n_cells), <int>w)
        for b in range(block_sse.shape[0]):
            total += block_sse[b]
    return total


def refresh_cells(floating[:, ::1] V, floating[:, ::1] Y, floating[::1] C,
                  floating[:, ::1] D, const int64_t[::1] user_cell_ptr,
                  const int64_t[::1] cell_item_ptr, const int32_t[::1] cell_items,
                  int n_threads=1):
    """V[x] = C[x] * (the sum of the y rows of cell x) + |cell x| * D[x], for every cell: the
    sum of the cell's rows once its pending map is applied (with C = 1, D = 0: the plain sum)."""
    _check_rows("Y", V.shape[1], Y.shape[1])
    _check_rows("D", V.shape[1], D.shape[1])
    if C.shape[0] != V.shape[0] or D.shape[0] != V.shape[0]:
        raise ValueError("V, D and C must have a row per cell")
    cdef svdpp_layout_view lay
    lay.user_cell_ptr = &user_cell_ptr[0]
    lay.cell_item_ptr = &cell_item_ptr[0]
    lay.cell_items = &cell_items[0] if cell_items.shape[0] else NULL
    cdef int64_t n_cells = V.shape[0], chunk
    cdef int w = V.shape[1]
    if n_cells == 0:
        return
    with nogil:
        for chunk in prange((n_cells + CHUNK - 1) // CHUNK, num_threads=n_threads,
                            schedule="static"):
            if floating is float:
                svd_refresh_f32(&V[0, 0], &Y[0, 0], &C[0], &D[0, 0], &lay, chunk * CHUNK,
                                min(chunk * CHUNK + CHUNK, n_cells), w)
            else:
                svd_refresh_f64(&V[0, 0], &Y[0, 0], &C[0], &D[0, 0], &lay, chunk * CHUNK,
                                min(chunk * CHUNK + CHUNK, n_cells), w)


def apply_pending(floating[:, ::1] Y, floating[::1] C, floating[:, ::1] D,
                  const int64_t[::1] cell_item_ptr, const int32_t[::1] cell_items,
                  const int64_t[::1] column_cell_ptr, const int32_t[::1] column_cells,
                  int n_threads=1):
    """Write every cell's pending map (C, D) into Y (C and D are left as they are).

    The cells of column block c are ``column_cells[column_cell_ptr[c]:column_cell_ptr[c+1]]``,
    in user order: a y row receives its users' pending maps in user order, in parallel over
    column blocks (each row belongs to one).
    """
    _check_rows("D", Y.shape[1], D.shape[1])
    cdef svdpp_layout_view lay
    lay.cell_item_ptr = &cell_item_ptr[0]
    lay.cell_items = &cell_items[0] if cell_items.shape[0] else NULL
    cdef Py_ssize_t n_columns = column_cell_ptr.shape[0] - 1, c
    cdef int w = Y.shape[1]
    cdef int64_t n
    with nogil:
        for c in prange(n_columns, num_threads=n_threads, schedule="static", chunksize=1):
            n = column_cell_ptr[c + 1] - column_cell_ptr[c]
            if n == 0:
                continue
            if floating is float:
                svd_apply_pending_f32_base(&Y[0, 0], &C[0], &D[0, 0], &lay,
                                           &column_cells[column_cell_ptr[c]], n, w)
            else:
                svd_apply_pending_f64_base(&Y[0, 0], &C[0], &D[0, 0], &lay,
                                           &column_cells[column_cell_ptr[c]], n, w)


def user_vectors(floating[:, ::1] out, floating[:, ::1] P, floating[:, ::1] Y,
                 const int64_t[::1] user_cell_ptr, const int64_t[::1] cell_item_ptr,
                 const int32_t[::1] cell_items, int n_threads=1):
    """out[u] = P[u] + |N(u)|^-1/2 sum_{j in N(u)} Y[j] for every user (P may be out)."""
    _check_rows("P", out.shape[1], P.shape[1])
    _check_rows("Y", out.shape[1], Y.shape[1])
    if out.shape[0] != P.shape[0] or P.shape[0] != user_cell_ptr.shape[0] - 1:
        raise ValueError("out and P must have a row per user of the layout")
    cdef svdpp_layout_view lay
    lay.user_cell_ptr = &user_cell_ptr[0]
    lay.cell_item_ptr = &cell_item_ptr[0]
    lay.cell_items = &cell_items[0] if cell_items.shape[0] else NULL
    cdef int64_t n_users = out.shape[0], chunk
    cdef int w = out.shape[1]
    if n_users == 0:
        return
    with nogil:
        for chunk in prange((n_users + CHUNK - 1) // CHUNK, num_threads=n_threads,
                            schedule="static"):
            if floating is float:
                svd_user_vectors_f32_base(&out[0, 0], &P[0, 0], &Y[0, 0], &lay, chunk * CHUNK,
                                          min(chunk * CHUNK + CHUNK, n_users), w)
            else:
                svd_user_vectors_f64_base(&out[0, 0], &P[0, 0], &Y[0, 0], &lay, chunk * CHUNK,
                                          min(chunk * CHUNK + CHUNK, n_users), w)


select_isa("auto")
