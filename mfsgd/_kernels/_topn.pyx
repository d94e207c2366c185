# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Typed nogil top-n selection: the n best-scoring items of each user, in parallel over users.

A user's score for item i is the model's unclipped prediction, computed exactly as
``mfsgd._kernels._sgd.predict`` does: ((mu + b_u) + b_i) + p_u . q_i in double, with the same dot
product, so that scores equal ``predict`` bit for bit.  Ranking uses that score, descending,
with ties broken by the lower item index.

Selection keeps the n best candidates seen so far in a binary heap whose root is the worst of
them, stored in the user's own output row (no scratch memory), then heap-sorts the row.  A
user's rated items are skipped by merging their sorted CSR row with the ascending candidates.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t

cdef extern from "_kernels.h" nogil:
    float mf_dot_f32(const float *a, const float *b, int k)
    double mf_dot_f64(const double *a, const double *b, int k)


cdef inline bint _better(double score_a, int32_t item_a, double score_b,
                         int32_t item_b) noexcept nogil:
    return score_a > score_b or (score_a == score_b and item_a < item_b)


cdef inline void _put(double *score, int32_t *item, Py_ssize_t pos, double s,
                      int32_t it) noexcept nogil:
    """Store the entry (s, it) at `pos`: scores and items always move together."""
    score[pos] = s
    item[pos] = it


cdef inline void _sift_up(double *score, int32_t *item, Py_ssize_t pos) noexcept nogil:
    """Restore the heap (worst at the root) after placing a candidate at `pos`."""
    cdef double s = score[pos]
    cdef int32_t it = item[pos]
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) // 2
        if not _better(score[parent], item[parent], s, it):
            break
        _put(score, item, pos, score[parent], item[parent])
        pos = parent
    _put(score, item, pos, s, it)


cdef inline void _sift_down(double *score, int32_t *item, Py_ssize_t size,
                            Py_ssize_t pos) noexcept nogil:
    """Restore the heap of `size` entries after replacing the entry at `pos`."""
    cdef double s = score[pos]
    cdef int32_t it = item[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _better(score[child], item[child], score[child + 1],
                                        item[child + 1]):
            child += 1
        if not _better(s, it, score[child], item[child]):
            break
        _put(score, item, pos, score[child], item[child])
        pos = child
    _put(score, item, pos, s, it)


cdef void _top_n_row(const floating *p, const floating *Q, const floating *item_bias, int k,
                     double base, const int32_t *candidates, int64_t n_candidates,
                     const int32_t *seen, int64_t n_seen, double *score, int32_t *item,
                     Py_ssize_t n) noexcept nogil:
    """Fill `score`/`item` (length n) with one user's best candidates, best first.

    `candidates` NULL means every item 0..n_candidates-1.  Unused slots get item -1, -inf.
    """
    cdef Py_ssize_t size = 0, end
    cdef int64_t c, s_pos = 0
    cdef int32_t i, tmp_item
    cdef double value, tmp_score
    for c in range(n_candidates):
        i = <int32_t>c if candidates == NULL else candidates[c]
        while s_pos < n_seen and seen[s_pos] < i:
            s_pos += 1
        if s_pos < n_seen and seen[s_pos] == i:
            continue
        value = base + item_bias[i]
        if floating is float:
            value = value + mf_dot_f32(p, &Q[<int64_t>i * k], k)
        else:
            value = value + mf_dot_f64(p, &Q[<int64_t>i * k], k)
        if size < n:
            _put(score, item, size, value, i)
            _sift_up(score, item, size)
            size += 1
        elif _better(value, i, score[0], item[0]):
            _put(score, item, 0, value, i)
            _sift_down(score, item, size, 0)
    end = size - 1
    while end > 0:
        tmp_score = score[0]
        tmp_item = item[0]
        _put(score, item, 0, score[end], item[end])
        _put(score, item, end, tmp_score, tmp_item)
        _sift_down(score, item, end, 0)
        end -= 1
    for end in range(size, n):
        _put(score, item, end, -INFINITY, -1)


def top_n(floating[:, ::1] P, floating[:, ::1] Q, floating[::1] user_bias,
          floating[::1] item_bias, double mu, const int64_t[::1] users,
          const int32_t[::1] candidates, bint all_items, const int64_t[::1] seen_indptr,
          const int32_t[::1] seen_indices, int32_t[:, ::1] out_items,
          double[:, ::1] out_scores, int n_threads=1):
    """The best ``n = out_items.shape[1]`` items of each user, by unclipped predicted rating.

    Parameters
    ----------
    P, Q : ndarray, shape (n_users, k) and (n_items, k), C-contiguous, same float dtype
        User and item factors.
    user_bias, item_bias : ndarray, shape (n_users,) and (n_items,)
        Biases (zeros for an unbiased model).
    mu : float
        Global mean (0 for an unbiased model).
    users : ndarray of int64
        Rows of `P` to rank items for; each must be in [0, n_users).
    candidates : ndarray of int32
        Ascending, unique item indices to rank when `all_items` is false (ignored otherwise).
    all_items : bool
        Rank every item 0..n_items-1.
    seen_indptr, seen_indices : ndarray of int64, int32
        CSR of items to skip per user row, indices sorted within rows; rows past
        ``len(seen_indptr) - 1`` skip nothing.  Empty arrays skip nothing for anyone.
    out_items : ndarray of int32, shape (len(users), n)
        Receives item indices, best first; -1 where a user has fewer than n candidates.
    out_scores : ndarray of float64, shape (len(users), n)
        Receives the scores ((mu + b_u) + b_i) + p_u . q_i; -inf in unused slots.
    n_threads : int
        OpenMP threads over users (no effect on the result).
    """
    cdef Py_ssize_t n_rows = users.shape[0], n = out_items.shape[1], r
    cdef int k = P.shape[1]
    cdef int64_t n_seen_rows = max(seen_indptr.shape[0] - 1, 0), u, start, stop
    cdef int64_t n_candidates = Q.shape[0] if all_items else candidates.shape[0]
    cdef const int32_t *cand = NULL
    cdef const int32_t *seen = NULL
    if out_items.shape[0] != n_rows or out_scores.shape[0] != n_rows or out_scores.shape[1] != n:
        raise ValueError("out_items and out_scores must have shape (len(users), n)")
    if Q.shape[1] != k or item_bias.shape[0] != Q.shape[0] or user_bias.shape[0] != P.shape[0]:
        raise ValueError("factor and bias shapes do not match")
    if n == 0 or n_rows == 0:
        return
    if not all_items and n_candidates > 0:
        cand = &candidates[0]
    if seen_indices.shape[0] > 0:
        seen = &seen_indices[0]
    if Q.shape[0] == 0:
        out_items[:, :] = -1
        out_scores[:, :] = -INFINITY
        return
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=4):
            u = users[r]
            start = 0
            stop = 0
            if u < n_seen_rows and seen != NULL:
                start = seen_indptr[u]
                stop = seen_indptr[u + 1]
            _top_n_row(&P[u, 0], &Q[0, 0], &item_bias[0], k, mu + user_bias[u], cand,
                       n_candidates, seen + start if seen != NULL else NULL, stop - start,
                       &out_scores[r, 0], &out_items[r, 0], n)
