/* One instantiation of the SGD block kernel.  _kernels.h includes this file once per
 * (real type, instruction set); it expects MF_REAL (float or double), MF_NAME(x) (appends the
 * type and ISA suffix to x) and MF_TARGET (a GCC target attribute, or nothing).
 *
 * A block is a list of runs; run r holds ratings [run_ptr[r], run_ptr[r + 1]) of user
 * run_user[r] (at least one).  The kernel works on MF_LANES runs at once, in lanes: lane j
 * starts with run order[j]; then, round after round, lanes 0, 1, ..., MF_LANES - 1 in turn
 * each apply the next rating of their run (ratings within a run in stored order), and a lane
 * whose run has just ended takes the next run of `order` (its first rating comes in the next
 * round), or falls idle when there is none.  The lanes' updates form independent dependency
 * chains that the CPU overlaps.  Each rating applies, from the values before the step:
 *     e   = r - (mu + b_u + b_i + p.q)        (mu, b_u, b_i only when biased)
 *     p  += lr_p * (e q - reg p)              q += lr_q * (e p - reg q)
 *     b_u += lr * (e - bias_reg b_u)          b_i += lr * (e - bias_reg b_i)
 * with lr_p = lr_q = lr, or under adagrad lr / sqrt(G_row) where G_row accumulates the mean
 * squared gradient of that factor row (G starts at 1, as in LIBMF).  Returns the sum of e^2.
 * Factor rows are k values apart; k may exceed prm->n_factors when rows are padded with zeros
 * (which every update leaves at zero), and the mean squared gradient divides by n_factors.
 */

static inline MF_TARGET MF_REAL MF_NAME(mf_dot)(const MF_REAL *restrict a,
                                                const MF_REAL *restrict b, int k)
{
    MF_REAL s = 0;
#pragma omp simd reduction(+:s)
    for (int f = 0; f < k; f++)
        s += a[f] * b[f];
    return s;
}

static inline MF_TARGET void MF_NAME(mf_step)(MF_REAL *restrict p, MF_REAL *restrict q,
                                              MF_REAL e, MF_REAL lr, MF_REAL reg, int k)
{
#pragma omp simd
    for (int f = 0; f < k; f++) {
        MF_REAL pf = p[f], qf = q[f];
        p[f] = pf + lr * (e * qf - reg * pf);
        q[f] = qf + lr * (e * pf - reg * qf);
    }
}

static inline MF_TARGET void MF_NAME(mf_step_adagrad)(MF_REAL *restrict p, MF_REAL *restrict q,
                                                      MF_REAL *restrict gp, MF_REAL *restrict gq,
                                                      MF_REAL e, MF_REAL lr, MF_REAL reg, int k,
                                                      int n_factors)
{
    MF_REAL lr_p = lr / (MF_REAL)sqrt((double)*gp), lr_q = lr / (MF_REAL)sqrt((double)*gq);
    MF_REAL sp = 0, sq = 0;
#pragma omp simd reduction(+:sp, sq)
    for (int f = 0; f < k; f++) {
        MF_REAL pf = p[f], qf = q[f];
        MF_REAL grad_p = reg * pf - e * qf, grad_q = reg * qf - e * pf;
        p[f] = pf - lr_p * grad_p;
        q[f] = qf - lr_q * grad_q;
        sp += grad_p * grad_p;
        sq += grad_q * grad_q;
    }
    *gp += sp / n_factors;
    *gq += sq / n_factors;
}

static inline MF_TARGET void MF_NAME(mf_clip_negative)(MF_REAL *restrict x, int k)
{
#pragma omp simd
    for (int f = 0; f < k; f++)
        x[f] = x[f] > 0 ? x[f] : 0;
}

/* Prefetch the whole factor row of the next item (a row spans k * sizeof(MF_REAL) bytes). */
static inline MF_TARGET void MF_NAME(mf_prefetch_row)(const MF_REAL *row, int k)
{
    for (int off = 0; off < k; off += 64 / (int)sizeof(MF_REAL))
        __builtin_prefetch(row + off, 1, 3);
}

/* One SGD step for rating j on the user row p (a local copy) and its bias b_u. */
static inline __attribute__((always_inline)) MF_TARGET double MF_NAME(mf_rating_step)(
    MF_REAL *restrict p, MF_REAL *restrict b_u, MF_REAL *restrict Q, MF_REAL *restrict bi,
    int64_t i, float rating, const int k, const int biased,
    MF_REAL lr, MF_REAL reg, MF_REAL bias_reg, MF_REAL mu)
{
    MF_REAL *restrict q = Q + i * k;
    MF_REAL pred = MF_NAME(mf_dot)(p, q, k);
    if (biased)
        pred += mu + *b_u + bi[i];
    const MF_REAL e = (MF_REAL)rating - pred;
    if (biased) {
        *b_u += lr * (e - bias_reg * *b_u);
        bi[i] += lr * (e - bias_reg * bi[i]);
    }
    MF_NAME(mf_step)(p, q, e, lr, reg, k);
    return (double)e * (double)e;
}

/* Generic step (any k, adagrad, non-negative), in place on the factor rows. */
static inline MF_TARGET double MF_NAME(mf_rating_step_generic)(
    MF_REAL *restrict P, MF_REAL *restrict Q, MF_REAL *restrict bu, MF_REAL *restrict bi,
    MF_REAL *restrict gp, MF_REAL *restrict gq, int64_t u, int64_t i, float rating, int k,
    int n_factors, int biased, int adagrad, int nonneg, MF_REAL lr, MF_REAL reg,
    MF_REAL bias_reg, MF_REAL mu)
{
    MF_REAL *restrict p = P + u * k;
    MF_REAL *restrict q = Q + i * k;
    MF_REAL pred = MF_NAME(mf_dot)(p, q, k);
    if (biased)
        pred += mu + bu[u] + bi[i];
    const MF_REAL e = (MF_REAL)rating - pred;
    if (biased) {
        bu[u] += lr * (e - bias_reg * bu[u]);
        bi[i] += lr * (e - bias_reg * bi[i]);
    }
    if (adagrad)
        MF_NAME(mf_step_adagrad)(p, q, gp + u, gq + i, e, lr, reg, k, n_factors);
    else
        MF_NAME(mf_step)(p, q, e, lr, reg, k);
    if (nonneg) {
        MF_NAME(mf_clip_negative)(p, k);
        MF_NAME(mf_clip_negative)(q, k);
    }
    return (double)e * (double)e;
}

/* Prefetch what run `r` will touch first: the user's factor row and bias, and the lines
 * holding its first and last ratings (runs are mostly a line or two long; the hardware
 * prefetcher follows longer ones).  No loop and no branch: this runs once per run. */
static inline __attribute__((always_inline)) MF_TARGET void MF_NAME(mf_prefetch_run)(
    const MF_REAL *P, const MF_REAL *bu, const int32_t *run_user, const int64_t *run_ptr,
    const int32_t *items, const float *ratings, int64_t r, int k)
{
    const int64_t u = run_user[r], begin = run_ptr[r], last = run_ptr[r + 1] - 1;
    MF_NAME(mf_prefetch_row)(P + u * k, k);
    __builtin_prefetch(bu + u, 1, 3);
    __builtin_prefetch(items + begin, 0, 3);
    __builtin_prefetch(ratings + begin, 0, 3);
    __builtin_prefetch(items + last, 0, 3);
    __builtin_prefetch(ratings + last, 0, 3);
}

/* The common case (constant learning rate, unconstrained factors) for a constant row length
 * K: each lane keeps its user's row and bias in local copies (registers, where they fit)
 * from taking the run to its end.  The lanes are spelt out (MF_LANE_*(0), (1), (2)) so that
 * each lane's row is its own array. */
#define MF_LANE_TAKE(J)                                                                        \
    do {                                                                                       \
        const int64_t r_ = order[next];                                                        \
        u##J = run_user[r_];                                                                   \
        pos##J = run_ptr[r_];                                                                  \
        end##J = run_ptr[r_ + 1];                                                              \
        const MF_REAL *restrict src_ = P + u##J * k;                                           \
        for (int f = 0; f < k; f++)                                                            \
            p##J[f] = src_[f];                                                                 \
        b##J = biased ? bu[u##J] : 0;                                                          \
        if (next + MF_LANES < n_runs)                                                          \
            MF_NAME(mf_prefetch_run)(P, bu, run_user, run_ptr, items, ratings,                 \
                                     order[next + MF_LANES], k);                               \
        if (next + 4 * MF_LANES < n_runs) {                                                    \
            __builtin_prefetch(run_ptr + order[next + 4 * MF_LANES], 0, 3);                    \
            __builtin_prefetch(run_user + order[next + 4 * MF_LANES], 0, 3);                   \
        }                                                                                      \
        next++;                                                                                \
    } while (0)

#define MF_LANE_STEP(J)                                                                        \
    if (pos##J < end##J) {                                                                     \
        if (pos##J + MF_QDIST < end##J)                                                        \
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[pos##J + MF_QDIST] * k, k);            \
        sse += MF_NAME(mf_rating_step)(p##J, &b##J, Q, bi, items[pos##J], ratings[pos##J], k,  \
                                       biased, lr, reg, bias_reg, mu);                         \
        if (++pos##J == end##J) {                                                              \
            MF_REAL *restrict dst_ = P + u##J * k;                                             \
            for (int f = 0; f < k; f++)                                                        \
                dst_[f] = p##J[f];                                                             \
            if (biased)                                                                        \
                bu[u##J] = b##J;                                                               \
            if (next < n_runs)                                                                 \
                MF_LANE_TAKE(J);                                                               \
            else                                                                               \
                active--;                                                                      \
        }                                                                                      \
    }

static inline __attribute__((always_inline)) MF_TARGET double MF_NAME(mf_lanes_fast)(
    MF_REAL *restrict P, MF_REAL *restrict bu, MF_REAL *restrict Q, MF_REAL *restrict bi,
    const int32_t *restrict run_user, const int64_t *restrict run_ptr,
    const int32_t *restrict order, int64_t n_runs,
    const int32_t *restrict items, const float *restrict ratings,
    const int k, const int biased, MF_REAL lr, MF_REAL reg, MF_REAL bias_reg, MF_REAL mu)
{
    /* Whole cache lines: where the rows spill to the stack, misaligned copies would split
     * lines and break store-to-load forwarding on every step. */
    MF_REAL p0[MF_FAST_MAX_K] __attribute__((aligned(64)));
    MF_REAL p1[MF_FAST_MAX_K] __attribute__((aligned(64)));
    MF_REAL p2[MF_FAST_MAX_K] __attribute__((aligned(64)));
    MF_REAL b0 = 0, b1 = 0, b2 = 0;
    int64_t u0 = 0, u1 = 0, u2 = 0;
    int64_t pos0 = 0, pos1 = 0, pos2 = 0, end0 = 0, end1 = 0, end2 = 0;
    int64_t next = 0;
    int active = 0;
    double sse = 0;
    if (next < n_runs) { MF_LANE_TAKE(0); active++; }
    if (next < n_runs) { MF_LANE_TAKE(1); active++; }
    if (next < n_runs) { MF_LANE_TAKE(2); active++; }
    while (active > 0) {
        MF_LANE_STEP(0)
        MF_LANE_STEP(1)
        MF_LANE_STEP(2)
    }
    return sse;
}

#undef MF_LANE_TAKE
#undef MF_LANE_STEP

/* Any k, adagrad, non-negative: the same lanes, updating the factor rows in place. */
#define MF_LANE_TAKE(J)                                                                        \
    do {                                                                                       \
        const int64_t r_ = order[next];                                                        \
        u##J = run_user[r_];                                                                   \
        pos##J = run_ptr[r_];                                                                  \
        end##J = run_ptr[r_ + 1];                                                              \
        if (next + MF_LANES < n_runs)                                                          \
            MF_NAME(mf_prefetch_run)(P, bu, run_user, run_ptr, items, ratings,                 \
                                     order[next + MF_LANES], k);                               \
        next++;                                                                                \
    } while (0)

#define MF_LANE_STEP(J)                                                                        \
    if (pos##J < end##J) {                                                                     \
        sse += MF_NAME(mf_rating_step_generic)(P, Q, bu, bi, gp, gq, u##J, items[pos##J],      \
                                               ratings[pos##J], k, n_factors, biased, adagrad, \
                                               nonneg, lr, reg, bias_reg, mu);                 \
        if (++pos##J == end##J) {                                                              \
            if (next < n_runs)                                                                 \
                MF_LANE_TAKE(J);                                                               \
            else                                                                               \
                active--;                                                                      \
        }                                                                                      \
    }

static MF_TARGET double MF_NAME(mf_lanes_generic)(
    MF_REAL *restrict P, MF_REAL *restrict Q, MF_REAL *restrict bu, MF_REAL *restrict bi,
    MF_REAL *restrict gp, MF_REAL *restrict gq,
    const int32_t *restrict run_user, const int64_t *restrict run_ptr,
    const int32_t *restrict order, int64_t n_runs,
    const int32_t *restrict items, const float *restrict ratings, int k, int n_factors,
    int biased, int adagrad, int nonneg, MF_REAL lr, MF_REAL reg, MF_REAL bias_reg, MF_REAL mu)
{
    int64_t u0 = 0, u1 = 0, u2 = 0;
    int64_t pos0 = 0, pos1 = 0, pos2 = 0, end0 = 0, end1 = 0, end2 = 0;
    int64_t next = 0;
    int active = 0;
    double sse = 0;
    if (next < n_runs) { MF_LANE_TAKE(0); active++; }
    if (next < n_runs) { MF_LANE_TAKE(1); active++; }
    if (next < n_runs) { MF_LANE_TAKE(2); active++; }
    while (active > 0) {
        MF_LANE_STEP(0)
        MF_LANE_STEP(1)
        MF_LANE_STEP(2)
    }
    return sse;
}

#undef MF_LANE_TAKE
#undef MF_LANE_STEP

#define MF_FAST_CASE(K)                                                                        \
    case K:                                                                                    \
        return biased ? MF_NAME(mf_lanes_fast)(P, bu, Q, bi, run_user, run_ptr, order, n_runs, \
                                               items, ratings, K, 1, lr, reg, bias_reg, mu)    \
                      : MF_NAME(mf_lanes_fast)(P, bu, Q, bi, run_user, run_ptr, order, n_runs, \
                                               items, ratings, K, 0, lr, reg, bias_reg, mu);

static MF_TARGET double MF_NAME(mf_sgd_block)(
    MF_REAL *restrict P, MF_REAL *restrict Q, MF_REAL *restrict bu, MF_REAL *restrict bi,
    MF_REAL *restrict gp, MF_REAL *restrict gq,
    const int32_t *restrict run_user, const int64_t *restrict run_ptr,
    const int32_t *restrict order, int64_t n_runs,
    const int32_t *restrict items, const float *restrict ratings,
    int k, const mf_params *prm)
{
    const MF_REAL lr = (MF_REAL)prm->lr, reg = (MF_REAL)prm->reg;
    const MF_REAL bias_reg = (MF_REAL)prm->bias_reg, mu = (MF_REAL)prm->mu;
    const int biased = prm->flags & MF_BIASED, adagrad = prm->flags & MF_ADAGRAD;
    const int nonneg = prm->flags & MF_NONNEG, n_factors = prm->n_factors;
    if (!(adagrad || nonneg)) {
        /* Widths with a register-resident specialisation; 112 is k = 97..112 padded.  More
         * cases cost the others speed through code layout. */
        switch (k) {
            MF_FAST_CASE(8)
            MF_FAST_CASE(16)
            MF_FAST_CASE(32)
            MF_FAST_CASE(64)
            MF_FAST_CASE(112)
            MF_FAST_CASE(128)
            MF_FAST_CASE(256)
            default: break;
        }
    }
    return MF_NAME(mf_lanes_generic)(P, Q, bu, bi, gp, gq, run_user, run_ptr, order, n_runs,
                                     items, ratings, k, n_factors, biased, adagrad, nonneg, lr,
                                     reg, bias_reg, mu);
}

#undef MF_FAST_CASE
