/* One instantiation of the SVD++ block kernel.  _svdpp.h includes this file once per
 * (real type, instruction set), with MF_REAL, MF_NAME(x) and MF_TARGET defined as for
 * _kernels_impl.h, whose helpers of the same instantiation (mf_prefetch_row) it uses, and
 * SVD_LANES / SVD_BUTTERFLY for the dot product.
 *
 * The model: r_ui = mu + b_u + b_i + q_i . (p_u + z_u), z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j.
 *
 * State.  Besides P, Q, Y and the biases, every *cell* (a user u and a column block c in
 * which N(u) has items; N_c(u) = those items) holds
 *     V[x]  the sum of the y rows of N_c(u) as last read, advanced by u's own updates since;
 *     C[x], D[x]  u's y-updates not yet written to those rows: an affine map y <- C y + D.
 * A user's cells are consecutive (user_cell_ptr), and so are the items of a cell
 * (cell_item_ptr, cell_items), so the items of all of a user's cells are N(u).
 *
 * A run (user u, cell x in column block c, ratings R_c(u) in stored order) does, in order:
 *   1. V[x] <- C[x] (sum of the y rows of N_c(u)) + |N_c(u)| D[x]: the rows re-read, with the
 *      pending map applied to the sum (to the rows themselves in step 4).
 *   2. z <- |N(u)|^-1/2 * sum over u's cells of V (in cell order); z0 <- z.
 *   3. For each rating, from the values before the step, with x = p + z:
 *          e   = r - (q.x + mu + b_u + b_i)              (mu, b_u, b_i only when biased)
 *          b_u += lr (e - bias_reg b_u)      b_i += lr (e - bias_reg b_i)
 *          p  += lr (e q - reg p)            q  += lr (e x - reg q)
 *          z  += lr_y (e q - reg_y z)        m  *= 1 - lr_y reg_y   (m starts at 1)
 *      z's step is exactly what Koren's per-rating rule y_j += lr_y (e |N(u)|^-1/2 q - reg_y y_j)
 *      for every j in N(u) does to |N(u)|^-1/2 sum y_j; over the run that rule amounts to the
 *      affine map y_j <- m y_j + d with d = |N(u)|^-1/2 (z - m z0).
 *   4. y_j <- (m C[x]) y_j + (m D[x] + d) for j in N_c(u) (the pending map, then the run's),
 *      V[x] <- sum of those rows; C[x], D[x] <- 1, 0.
 *   5. For every other cell x' of u: (C, D)[x'] <- the map composed with (m, d), and
 *      V[x'] <- m V[x'] + |N_c'(u)| d.
 * A run without ratings only writes its pending map to its rows (y_j <- C[x] y_j + D[x]),
 * re-reads V[x] and sets C[x], D[x] <- 1, 0.  Steps 1 and 4 touch only y rows of the
 * run's own column block; steps 2 and 5 touch only the user's own cells: so the blocks of a
 * sub-epoch, which share no row block and no column block, never touch the same memory.
 * With three or more blocks, svd_refresh_cells re-reads every cell between sub-epochs, when
 * every row is at rest: V[x] <- C[x] (sum of its rows) + |N_c(u)| D[x].
 *
 * What a run does not see (its staleness), exactly: z is u's implicit sum with all of u's own
 * updates, and with every row of N_c(u) as it is now, except that
 *   (a) rows of N_c'(u), c' != c, are taken as they were when last read: at the end of the
 *       previous sub-epoch (the refresh), or with two blocks at u's previous run in c' (one or
 *       two sub-epochs before); the writes other users' runs made to them since are missing;
 *   (b) another user's updates to rows outside the column block of the run that made them
 *       are written at that user's next run in their column block (within one epoch), and are
 *       missing until then.
 * With one block (one cell per user) neither applies: training is Koren's sequential SGD.
 */

/* Step 1 / 4: y_j <- c y_j + d for the n rows `items` (skipped when `apply` is 0), and
 * v <- their sum (accumulated in a local row, which a constant k keeps in registers). */
static inline __attribute__((always_inline)) MF_TARGET void MF_NAME(svd_apply_sum)(
    MF_REAL *restrict Y, const int32_t *restrict items, int64_t n, MF_REAL c,
    const MF_REAL *restrict d, MF_REAL *restrict v, const int k, const int apply)
{
    MF_REAL sum[k];
    for (int f = 0; f < k; f++)
        sum[f] = 0;
    for (int64_t t = 0; t < n; t++) {
        if (t + MF_QDIST < n)
            MF_NAME(mf_prefetch_row)(Y + (int64_t)items[t + MF_QDIST] * k, k);
        MF_REAL *restrict y = Y + (int64_t)items[t] * k;
        if (apply) {
#pragma omp simd
            for (int f = 0; f < k; f++) {
                MF_REAL yf = c * y[f] + d[f];
                y[f] = yf;
                sum[f] += yf;
            }
        } else {
#pragma omp simd
            for (int f = 0; f < k; f++)
                sum[f] += y[f];
        }
    }
    for (int f = 0; f < k; f++)
        v[f] = sum[f];
}

/* q . (p + z).  When k is a whole number of 64-byte lines (padded rows) and GCC's vector
 * extensions are there: per-lane sums in two line-wide vectors (alternate lines), then a
 * butterfly of SVD_LANES-wide shuffles over the lanes: a dependency chain of log2(lanes)
 * adds where a reduction loop adds the lanes one after the other. */
static inline __attribute__((always_inline)) MF_TARGET MF_REAL MF_NAME(svd_dot_sum)(
    const MF_REAL *restrict q, const MF_REAL *restrict p, const MF_REAL *restrict z, const int k)
{
#if SVD_VECTOR_DOT
    if (k % SVD_LANES == 0) {
        typedef MF_REAL line_t __attribute__((vector_size(64)));
        line_t even = {0}, odd = {0}, a, b, c;
        int f = 0;
        for (; f + 2 * SVD_LANES <= k; f += 2 * SVD_LANES) {
            memcpy(&a, q + f, 64); memcpy(&b, p + f, 64); memcpy(&c, z + f, 64);
            even += a * (b + c);
            memcpy(&a, q + f + SVD_LANES, 64); memcpy(&b, p + f + SVD_LANES, 64);
            memcpy(&c, z + f + SVD_LANES, 64);
            odd += a * (b + c);
        }
        if (f < k) {
            memcpy(&a, q + f, 64); memcpy(&b, p + f, 64); memcpy(&c, z + f, 64);
            even += a * (b + c);
        }
        even += odd;
        SVD_BUTTERFLY(even);
        return even[0];
    }
#endif
    MF_REAL s = 0;
#pragma omp simd reduction(+:s)
    for (int f = 0; f < k; f++)
        s += q[f] * (p[f] + z[f]);
    return s;
}

/* Step 3 for one rating, on local copies of the user's p, z and b_u. */
static inline __attribute__((always_inline)) MF_TARGET double MF_NAME(svd_rating_step)(
    MF_REAL *restrict p, MF_REAL *restrict z, MF_REAL *restrict b_u, MF_REAL *restrict Q,
    MF_REAL *restrict bi, int64_t i, float rating, const int k, const int biased, MF_REAL mu,
    MF_REAL lr, MF_REAL reg, MF_REAL bias_reg, MF_REAL lr_y, MF_REAL reg_y)
{
    MF_REAL *restrict q = Q + i * k;
    MF_REAL pred = MF_NAME(svd_dot_sum)(q, p, z, k);
    if (biased)
        pred += mu + *b_u + bi[i];
    const MF_REAL e = (MF_REAL)rating - pred;
    if (biased) {
        *b_u += lr * (e - bias_reg * *b_u);
        bi[i] += lr * (e - bias_reg * bi[i]);
    }
#pragma omp simd
    for (int f = 0; f < k; f++) {
        const MF_REAL pf = p[f], qf = q[f], zf = z[f];
        p[f] = pf + lr * (e * qf - reg * pf);
        z[f] = zf + lr_y * (e * qf - reg_y * zf);
        q[f] = qf + lr * (e * (pf + zf) - reg * qf);
    }
    return (double)e * (double)e;
}

/* V[x] = C[x] * (sum of the y rows of cell x) + |cell x| * D[x]: the sum of the cell's rows
 * once its pending map is applied, as the rows are now. */
static inline __attribute__((always_inline)) MF_TARGET void MF_NAME(svd_refresh_cell)(
    MF_REAL *restrict V, const MF_REAL *restrict Y, const MF_REAL *restrict C,
    const MF_REAL *restrict D, const svdpp_layout_view *lay, int64_t x, const int k)
{
    MF_REAL *restrict v = V + x * k;
    const MF_REAL *restrict d = D + x * k;
    const int64_t n = lay->cell_item_ptr[x + 1] - lay->cell_item_ptr[x];
    MF_NAME(svd_apply_sum)((MF_REAL *)Y, lay->cell_items + lay->cell_item_ptr[x], n, 1, NULL, v,
                           k, 0);
    const MF_REAL c = C[x], size = (MF_REAL)n;
#pragma omp simd
    for (int f = 0; f < k; f++)
        v[f] = c * v[f] + size * d[f];
}

/* Steps 1-5 for run r (see the top of this file). */
static inline __attribute__((always_inline)) MF_TARGET double MF_NAME(svd_run)(
    const svdpp_state *st, const svdpp_layout_view *lay, int64_t r, const int k,
    const int biased, const svdpp_params *prm)
{
    MF_REAL *restrict P = (MF_REAL *)st->P, *restrict Q = (MF_REAL *)st->Q;
    MF_REAL *restrict Y = (MF_REAL *)st->Y, *restrict V = (MF_REAL *)st->V;
    MF_REAL *restrict D = (MF_REAL *)st->D, *restrict C = (MF_REAL *)st->C;
    MF_REAL *restrict bu = (MF_REAL *)st->bu, *restrict bi = (MF_REAL *)st->bi;
    const int64_t u = lay->run_user[r], x = lay->run_cell[r];
    const int64_t first = lay->user_cell_ptr[u], last = lay->user_cell_ptr[u + 1];
    const int64_t n_implicit = lay->cell_item_ptr[last] - lay->cell_item_ptr[first];
    const MF_REAL norm = n_implicit > 0 ? (MF_REAL)(1.0 / sqrt((double)n_implicit)) : 0;
    const int32_t *restrict cell_items = lay->cell_items + lay->cell_item_ptr[x];
    const int64_t n_cell = lay->cell_item_ptr[x + 1] - lay->cell_item_ptr[x];
    MF_REAL *restrict vx = V + x * k, *restrict dx = D + x * k;

    const int64_t a0 = lay->run_ptr[r], a1 = lay->run_ptr[r + 1];
    if (a0 == a1) {
        /* no ratings: write the pending map (none when C = 1 and D = 0), re-read the sum */
        int pending = C[x] != 1;
        for (int f = 0; f < k && !pending; f++)
            pending = dx[f] != 0;
        MF_NAME(svd_apply_sum)(Y, cell_items, n_cell, C[x], dx, vx, k, pending);
        C[x] = 1;
        for (int f = 0; f < k; f++)
            dx[f] = 0;
        return 0;
    }

    /* 1. the fresh sum, the pending map applied on the fly (written in step 4) */
    MF_NAME(svd_refresh_cell)(V, Y, C, D, lay, x, k);

    /* 2. the implicit sum */
    MF_REAL z[k], z0[k], p[k], d[k];
    for (int f = 0; f < k; f++)
        z[f] = 0;
    for (int64_t c = first; c < last; c++) {
        const MF_REAL *restrict vc = V + c * k;
        for (int f = 0; f < k; f++)
            z[f] += vc[f];
    }
    MF_REAL *restrict p_row = P + u * k;
    for (int f = 0; f < k; f++) {
        z[f] *= norm;
        z0[f] = z[f];
        p[f] = p_row[f];
    }

    /* 3. the ratings */
    const int32_t *restrict items = lay->items;
    const float *restrict ratings = lay->ratings;
    const MF_REAL mu = (MF_REAL)prm->mu, lr = (MF_REAL)prm->lr, reg = (MF_REAL)prm->reg;
    const MF_REAL bias_reg = (MF_REAL)prm->bias_reg;
    const MF_REAL lr_y = (MF_REAL)prm->lr_y, reg_y = (MF_REAL)prm->reg_y;
    const MF_REAL keep = 1 - lr_y * reg_y;
    MF_REAL b = biased ? bu[u] : 0, m = 1;
    double sse = 0;
    for (int64_t j = a0; j < a1; j++) {
        if (j + MF_QDIST < a1)
            MF_NAME(mf_prefetch_row)(Q + (int64_t)items[j + MF_QDIST] * k, k);
        sse += MF_NAME(svd_rating_step)(p, z, &b, Q, bi, items[j], ratings[j], k, biased, mu, lr,
                                        reg, bias_reg, lr_y, reg_y);
        m *= keep;
    }
    for (int f = 0; f < k; f++) {
        p_row[f] = p[f];
        d[f] = norm * (z[f] - m * z0[f]);
    }
    if (biased)
        bu[u] = b;

    /* 4. this cell's rows now: the pending map, then the run's, in one pass */
    const MF_REAL c_x = m * C[x];
    for (int f = 0; f < k; f++)
        dx[f] = m * dx[f] + d[f];
    MF_NAME(svd_apply_sum)(Y, cell_items, n_cell, c_x, dx, vx, k, 1);
    C[x] = 1;
    for (int f = 0; f < k; f++)
        dx[f] = 0;
    /* 5. the user's other cells at their next run */
    for (int64_t c = first; c < last; c++) {
        if (c == x)
            continue;
        const MF_REAL n_c = (MF_REAL)(lay->cell_item_ptr[c + 1] - lay->cell_item_ptr[c]);
        MF_REAL *restrict vc = V + c * k, *restrict dc = D + c * k;
        C[c] *= m;
#pragma omp simd
        for (int f = 0; f < k; f++) {
            dc[f] = m * dc[f] + d[f];
            vc[f] = m * vc[f] + n_c * d[f];
        }
    }
    return sse;
}

#define SVD_FAST_CASE(K)                                                                       \
    case K:                                                                                    \
        sse += biased ? MF_NAME(svd_run)(st, lay, r, K, 1, prm)                               \
                      : MF_NAME(svd_run)(st, lay, r, K, 0, prm);                              \
        continue;

/* The runs order[0..n_runs) (indices into the layout's runs) of one block, in that order. */
static MF_TARGET double MF_NAME(svd_block)(const svdpp_state *st, const svdpp_layout_view *lay,
                                           const int32_t *order, int64_t n_runs, int k,
                                           const svdpp_params *prm)
{
    const int biased = prm->flags & MF_BIASED;
    double sse = 0;
    for (int64_t t = 0; t < n_runs; t++) {
        if (t + 1 < n_runs) {
            const int64_t next = order[t + 1];
            MF_NAME(mf_prefetch_row)((const MF_REAL *)st->P + (int64_t)lay->run_user[next] * k, k);
            __builtin_prefetch(lay->cell_items + lay->cell_item_ptr[lay->run_cell[next]], 0, 3);
            __builtin_prefetch(lay->items + lay->run_ptr[next], 0, 3);
        }
        const int64_t r = order[t];
        /* Register-resident widths (k = 100 in float32 pads to 112); others run generic. */
        switch (k) {
            SVD_FAST_CASE(16)
            SVD_FAST_CASE(32)
            SVD_FAST_CASE(64)
            SVD_FAST_CASE(112)
            SVD_FAST_CASE(128)
            default: break;
        }
        sse += MF_NAME(svd_run)(st, lay, r, k, biased, prm);
    }
    return sse;
}

#undef SVD_FAST_CASE

/* Write every cell's pending map into Y, for the cells cells[0..n) in that order (the cells of
 * one column block, in user order); leaves C, D untouched.  Not on the training path (the
 * Python layer calls the baseline instantiation), nor is svd_user_vectors. */
static __attribute__((unused)) MF_TARGET void MF_NAME(svd_apply_pending)(
    MF_REAL *Y, const MF_REAL *C, const MF_REAL *D, const svdpp_layout_view *lay,
    const int32_t *cells, int64_t n, int k)
{
    for (int64_t t = 0; t < n; t++) {
        const int64_t x = cells[t];
        const MF_REAL c = C[x];
        const MF_REAL *restrict d = D + x * k;
        for (int64_t s = lay->cell_item_ptr[x]; s < lay->cell_item_ptr[x + 1]; s++) {
            MF_REAL *restrict y = Y + (int64_t)lay->cell_items[s] * k;
#pragma omp simd
            for (int f = 0; f < k; f++)
                y[f] = c * y[f] + d[f];
        }
    }
}

/* out[u] = P[u] + |N(u)|^-1/2 sum_{j in N(u)} Y[j] for users [u0, u1): the user vector that
 * predictions use. */
static __attribute__((unused)) MF_TARGET void MF_NAME(svd_user_vectors)(
    MF_REAL *out, const MF_REAL *P, const MF_REAL *Y, const svdpp_layout_view *lay, int64_t u0,
    int64_t u1, int k)
{
    for (int64_t u = u0; u < u1; u++) {
        const int64_t s0 = lay->cell_item_ptr[lay->user_cell_ptr[u]];
        const int64_t s1 = lay->cell_item_ptr[lay->user_cell_ptr[u + 1]];
        MF_REAL *restrict o = out + u * k;
        const MF_REAL *restrict p = P + u * k;
        for (int f = 0; f < k; f++)
            o[f] = 0;
        for (int64_t s = s0; s < s1; s++) {
            const MF_REAL *restrict y = Y + (int64_t)lay->cell_items[s] * k;
#pragma omp simd
            for (int f = 0; f < k; f++)
                o[f] += y[f];
        }
        const MF_REAL norm = s1 > s0 ? (MF_REAL)(1.0 / sqrt((double)(s1 - s0))) : 0;
        for (int f = 0; f < k; f++)
            o[f] = p[f] + norm * o[f];
    }
}

#define SVD_REFRESH_CASE(K)                                                                    \
    case K:                                                                                    \
        for (int64_t x = x0; x < x1; x++)                                                      \
            MF_NAME(svd_refresh_cell)(V, Y, C, D, lay, x, K);                                  \
        return;

/* svd_refresh_cell for cells [x0, x1). */
static MF_TARGET void MF_NAME(svd_refresh_cells)(MF_REAL *V, const MF_REAL *Y, const MF_REAL *C,
                                                 const MF_REAL *D, const svdpp_layout_view *lay,
                                                 int64_t x0, int64_t x1, int k)
{
    switch (k) {
        SVD_REFRESH_CASE(16)
        SVD_REFRESH_CASE(32)
        SVD_REFRESH_CASE(64)
        SVD_REFRESH_CASE(112)
        SVD_REFRESH_CASE(128)
        default: break;
    }
    for (int64_t x = x0; x < x1; x++)
        MF_NAME(svd_refresh_cell)(V, Y, C, D, lay, x, k);
}

#undef SVD_REFRESH_CASE
