/* One instantiation of the SGD block kernel.  _kernels.h includes this file once per
 * (real type, instruction set); it expects MF_REAL (float or double), MF_NAME(x) (appends the
 * type and ISA suffix to x) and MF_TARGET (a GCC target attribute, or nothing).
 *
 * A block is a list of runs; run r holds ratings [run_ptr[r], run_ptr[r + 1]) of user
 * run_user[r].  Runs are visited in the order given by `order`; ratings within a run in stored
 * order.  Each rating applies, from the values before the step:
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

/* The common case (constant learning rate, unconstrained factors) for a pair of runs A and B,
 * interleaved: A[0], B[0], A[1], B[1], ..., then the rest of the longer run.  The two users'
 * updates form independent dependency chains that the CPU overlaps.  Both user rows live in
 * local copies (registers, for the constant k this is inlined with) across the pair. */
static inline __attribute__((always_inline)) MF_TARGET double MF_NAME(mf_pair_fast)(
    MF_REAL *restrict P, MF_REAL *restrict bu, MF_REAL *restrict Q, MF_REAL *restrict bi,
    const int32_t *restrict items, const float *restrict ratings,
    int64_t ua, int64_t a0, int64_t a1, int64_t ub, int64_t b0, int64_t b1,
    const int k, const int biased, MF_REAL lr, MF_REAL reg, MF_REAL bias_reg, MF_REAL mu)
{
    MF_REAL pa[k], pb[k];
    MF_REAL ba = biased ? bu[ua] : 0, bb = (biased && ub >= 0) ? bu[ub] : 0;
    double sse_a = 0, sse_b = 0;
    MF_REAL *restrict pa_row = P + ua * k;
    MF_REAL *restrict pb_row = P + (ub >= 0 ? ub : ua) * k;
    for (int f = 0; f < k; f++) {
        pa[f] = pa_row[f];
        pb[f] = pb_row[f];
    }
    const int64_t common = (a1 - a0) < (b1 - b0) ? (a1 - a0) : (b1 - b0);
    for (int64_t t = 0; t < common; t++) {
        if (t + MF_QDIST < common) {
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[a0 + t + MF_QDIST] * k, k);
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[b0 + t + MF_QDIST] * k, k);
        }
        sse_a += MF_NAME(mf_rating_step)(pa, &ba, Q, bi, items[a0 + t], ratings[a0 + t], k,
                                         biased, lr, reg, bias_reg, mu);
        sse_b += MF_NAME(mf_rating_step)(pb, &bb, Q, bi, items[b0 + t], ratings[b0 + t], k,
                                         biased, lr, reg, bias_reg, mu);
    }
    for (int64_t j = a0 + common; j < a1; j++) {
        if (j + MF_QDIST < a1)
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[j + MF_QDIST] * k, k);
        sse_a += MF_NAME(mf_rating_step)(pa, &ba, Q, bi, items[j], ratings[j], k, biased,
                                         lr, reg, bias_reg, mu);
    }
    for (int64_t j = b0 + common; j < b1; j++) {
        if (j + MF_QDIST < b1)
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[j + MF_QDIST] * k, k);
        sse_b += MF_NAME(mf_rating_step)(pb, &bb, Q, bi, items[j], ratings[j], k, biased,
                                         lr, reg, bias_reg, mu);
    }
    for (int f = 0; f < k; f++)
        pa_row[f] = pa[f];
    if (biased)
        bu[ua] = ba;
    if (ub >= 0) {
        for (int f = 0; f < k; f++)
            pb_row[f] = pb[f];
        if (biased)
            bu[ub] = bb;
    }
    return sse_a + sse_b;
}

#define MF_FAST_CASE(K)                                                                        \
    case K:                                                                                    \
        if (biased)                                                                            \
            sse += MF_NAME(mf_pair_fast)(P, bu, Q, bi, items, ratings, ua, a0, a1, ub, b0, b1, \
                                         K, 1, lr, reg, bias_reg, mu);                         \
        else                                                                                   \
            sse += MF_NAME(mf_pair_fast)(P, bu, Q, bi, items, ratings, ua, a0, a1, ub, b0, b1, \
                                         K, 0, lr, reg, bias_reg, mu);                         \
        continue;

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

/* Prefetch what run `r` will touch first: the user's factor row and bias, its first ratings. */
static inline MF_TARGET void MF_NAME(mf_prefetch_run)(
    const MF_REAL *P, const MF_REAL *bu, const int32_t *run_user, const int64_t *run_ptr,
    const int32_t *items, const float *ratings, int64_t r, int k)
{
    const int64_t u = run_user[r], begin = run_ptr[r], end = run_ptr[r + 1];
    MF_NAME(mf_prefetch_row)(P + u * k, k);
    __builtin_prefetch(bu + u, 1, 3);
    for (int64_t j = begin; j < end; j += 16) {
        __builtin_prefetch(items + j, 0, 3);
        __builtin_prefetch(ratings + j, 0, 3);
    }
}

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
    const int fast = !(adagrad || nonneg);
    double sse = 0;
    for (int64_t t = 0; t < n_runs; t += 2) {
        if (t + 8 < n_runs) {
            __builtin_prefetch(run_ptr + order[t + 8], 0, 3);
            __builtin_prefetch(run_user + order[t + 8], 0, 3);
            __builtin_prefetch(run_ptr + order[t + 9 < n_runs ? t + 9 : t + 8], 0, 3);
            __builtin_prefetch(run_user + order[t + 9 < n_runs ? t + 9 : t + 8], 0, 3);
        }
        for (int64_t ahead = t + 2; ahead < t + 4 && ahead < n_runs; ahead++)
            MF_NAME(mf_prefetch_run)(P, bu, run_user, run_ptr, items, ratings, order[ahead], k);
        const int64_t ra = order[t], rb = t + 1 < n_runs ? order[t + 1] : -1;
        const int64_t ua = run_user[ra], a0 = run_ptr[ra], a1 = run_ptr[ra + 1];
        const int64_t ub = rb >= 0 ? run_user[rb] : -1;
        const int64_t b0 = rb >= 0 ? run_ptr[rb] : 0, b1 = rb >= 0 ? run_ptr[rb + 1] : 0;
        if (fast) {
            /* Widths with a register-resident specialisation; 112 is k = 97..112 padded
             * (k = 100: 1.13x the generic path on MovieLens 100K).  More cases cost the
             * others speed through code layout (adding 96 too: k = 128 4 % slower). */
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
        const int64_t common = (a1 - a0) < (b1 - b0) ? (a1 - a0) : (b1 - b0);
        for (int64_t j = 0; j < common; j++) {
            sse += MF_NAME(mf_rating_step_generic)(P, Q, bu, bi, gp, gq, ua, items[a0 + j],
                                                   ratings[a0 + j], k, n_factors, biased,
                                                   adagrad, nonneg, lr, reg, bias_reg, mu);
            sse += MF_NAME(mf_rating_step_generic)(P, Q, bu, bi, gp, gq, ub, items[b0 + j],
                                                   ratings[b0 + j], k, n_factors, biased,
                                                   adagrad, nonneg, lr, reg, bias_reg, mu);
        }
        for (int64_t j = a0 + common; j < a1; j++)
            sse += MF_NAME(mf_rating_step_generic)(P, Q, bu, bi, gp, gq, ua, items[j], ratings[j],
                                                   k, n_factors, biased, adagrad, nonneg, lr, reg,
                                                   bias_reg, mu);
        for (int64_t j = b0 + common; j < b1; j++)
            sse += MF_NAME(mf_rating_step_generic)(P, Q, bu, bi, gp, gq, ub, items[j], ratings[j],
                                                   k, n_factors, biased, adagrad, nonneg, lr, reg,
                                                   bias_reg, mu);
    }
    return sse;
}

#undef MF_FAST_CASE
