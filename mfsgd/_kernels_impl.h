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
                                                      MF_REAL e, MF_REAL lr, MF_REAL reg, int k)
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
    *gp += sp / k;
    *gq += sq / k;
}

static inline MF_TARGET void MF_NAME(mf_clip_negative)(MF_REAL *restrict x, int k)
{
#pragma omp simd
    for (int f = 0; f < k; f++)
        x[f] = x[f] > 0 ? x[f] : 0;
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
    const int nonneg = prm->flags & MF_NONNEG;
    double sse = 0;
    for (int64_t t = 0; t < n_runs; t++) {
        const int64_t r = order[t];
        const int64_t u = run_user[r];
        const int64_t end = run_ptr[r + 1];
        MF_REAL *restrict p = P + u * k;
        MF_REAL b_u = biased ? bu[u] : 0;
        for (int64_t j = run_ptr[r]; j < end; j++) {
            const int64_t i = items[j];
            MF_REAL *restrict q = Q + i * k;
            if (j + 1 < end)
                __builtin_prefetch(Q + (int64_t)items[j + 1] * k, 1, 3);
            MF_REAL pred = MF_NAME(mf_dot)(p, q, k);
            if (biased)
                pred += mu + b_u + bi[i];
            const MF_REAL e = (MF_REAL)ratings[j] - pred;
            sse += (double)e * (double)e;
            if (biased) {
                b_u += lr * (e - bias_reg * b_u);
                bi[i] += lr * (e - bias_reg * bi[i]);
            }
            if (adagrad)
                MF_NAME(mf_step_adagrad)(p, q, gp + u, gq + i, e, lr, reg, k);
            else
                MF_NAME(mf_step)(p, q, e, lr, reg, k);
            if (nonneg) {
                MF_NAME(mf_clip_negative)(p, k);
                MF_NAME(mf_clip_negative)(q, k);
            }
        }
        if (biased)
            bu[u] = b_u;
    }
    return sse;
}
