/* C inner loops of SVD++ (see _svdpp_impl.h for the update rules and their order): compiled
 * for the same instruction sets as the matrix-factorization kernel and chosen the same way
 * (AVX2 below MF_WIDE_K, AVX-512 from there when a row is whole cache lines).  _svdpp.pyx
 * owns the schedule (sub-epochs, threads); nothing here allocates or touches Python objects.
 */
#ifndef MFSGD_SVDPP_H
#define MFSGD_SVDPP_H

#include "_kernels.h"

typedef struct {
    double mu, lr, reg, bias_reg, lr_y, reg_y;
    int flags; /* MF_BIASED or 0 */
} svdpp_params;

/* The arrays the kernel updates, all of one real type; factor, V and D rows are k apart. */
typedef struct {
    void *P, *Q, *Y, *bu, *bi, *V, *D, *C;
} svdpp_state;

/* The layout: runs (as in the MF kernel, plus run_cell) and the cells' implicit items. */
typedef struct {
    const int32_t *run_user, *run_cell;
    const int64_t *run_ptr;
    const int32_t *items;
    const float *ratings;
    const int64_t *user_cell_ptr, *cell_item_ptr;
    const int32_t *cell_items;
} svdpp_layout_view;

/* Lanes of a 64-byte line and the butterfly that sums them into lane 0 (see svd_dot_sum):
 * GCC vector extensions, as the ISA dispatch itself. */
#if defined(__GNUC__) && !defined(__clang__)
#define SVD_VECTOR_DOT 1
typedef int32_t svd_mask16 __attribute__((vector_size(64)));
typedef int64_t svd_mask8 __attribute__((vector_size(64)));
#define SVD_BUTTERFLY_16(v)                                                                    \
    do {                                                                                       \
        v += __builtin_shuffle(v, (svd_mask16){8, 9, 10, 11, 12, 13, 14, 15,                   \
                                               0, 1, 2, 3, 4, 5, 6, 7});                       \
        v += __builtin_shuffle(v, (svd_mask16){4, 5, 6, 7, 0, 1, 2, 3,                         \
                                               12, 13, 14, 15, 8, 9, 10, 11});                 \
        v += __builtin_shuffle(v, (svd_mask16){2, 3, 0, 1, 6, 7, 4, 5,                         \
                                               10, 11, 8, 9, 14, 15, 12, 13});                 \
        v += __builtin_shuffle(v, (svd_mask16){1, 0, 3, 2, 5, 4, 7, 6,                         \
                                               9, 8, 11, 10, 13, 12, 15, 14});                 \
    } while (0)
#define SVD_BUTTERFLY_8(v)                                                                     \
    do {                                                                                       \
        v += __builtin_shuffle(v, (svd_mask8){4, 5, 6, 7, 0, 1, 2, 3});                        \
        v += __builtin_shuffle(v, (svd_mask8){2, 3, 0, 1, 6, 7, 4, 5});                        \
        v += __builtin_shuffle(v, (svd_mask8){1, 0, 3, 2, 5, 4, 7, 6});                        \
    } while (0)
#else
#define SVD_VECTOR_DOT 0
#endif

#define SVD_LANES 16
#define SVD_BUTTERFLY SVD_BUTTERFLY_16
#define MF_TARGET
#define MF_REAL float
#define MF_NAME(x) x##_f32_base
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef SVD_LANES
#undef SVD_BUTTERFLY
#define SVD_LANES 8
#define SVD_BUTTERFLY SVD_BUTTERFLY_8
#define MF_REAL double
#define MF_NAME(x) x##_f64_base
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET

#if MF_DISPATCH
#undef SVD_LANES
#undef SVD_BUTTERFLY
#define SVD_LANES 16
#define SVD_BUTTERFLY SVD_BUTTERFLY_16
#define MF_TARGET MF_TARGET_AVX2
#define MF_REAL float
#define MF_NAME(x) x##_f32_avx2
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef SVD_LANES
#undef SVD_BUTTERFLY
#define SVD_LANES 8
#define SVD_BUTTERFLY SVD_BUTTERFLY_8
#define MF_REAL double
#define MF_NAME(x) x##_f64_avx2
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET

#undef SVD_LANES
#undef SVD_BUTTERFLY
#define SVD_LANES 16
#define SVD_BUTTERFLY SVD_BUTTERFLY_16
#define MF_TARGET MF_TARGET_AVX512
#define MF_REAL float
#define MF_NAME(x) x##_f32_avx512
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef SVD_LANES
#undef SVD_BUTTERFLY
#define SVD_LANES 8
#define SVD_BUTTERFLY SVD_BUTTERFLY_8
#define MF_REAL double
#define MF_NAME(x) x##_f64_avx512
#include "_svdpp_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET
#endif
#undef SVD_LANES
#undef SVD_BUTTERFLY

typedef double (*svd_block_fn)(const svdpp_state *, const svdpp_layout_view *, const int32_t *,
                               int64_t, int, const svdpp_params *);
typedef void (*svd_refresh_f32_fn)(float *, const float *, const float *, const float *,
                                   const svdpp_layout_view *, int64_t, int64_t, int);
typedef void (*svd_refresh_f64_fn)(double *, const double *, const double *, const double *,
                                   const svdpp_layout_view *, int64_t, int64_t, int);

/* [type: 0 float, 1 double][0 narrow, 1 wide] */
static svd_block_fn svd_block_table[2][2] = {
    {svd_block_f32_base, svd_block_f32_base}, {svd_block_f64_base, svd_block_f64_base}};
static svd_refresh_f32_fn svd_refresh_f32_table[2] = {svd_refresh_cells_f32_base,
                                                      svd_refresh_cells_f32_base};
static svd_refresh_f64_fn svd_refresh_f64_table[2] = {svd_refresh_cells_f64_base,
                                                      svd_refresh_cells_f64_base};
static const char *svd_isa_names[2] = {"baseline", "baseline"};

static inline void svd_use_level(int level, int wide)
{
    svd_block_fn f32 = svd_block_f32_base, f64 = svd_block_f64_base;
    svd_refresh_f32_fn r32 = svd_refresh_cells_f32_base;
    svd_refresh_f64_fn r64 = svd_refresh_cells_f64_base;
    const char *name = "baseline";
#if MF_DISPATCH
    if (level == 2) {
        f32 = svd_block_f32_avx512; f64 = svd_block_f64_avx512;
        r32 = svd_refresh_cells_f32_avx512; r64 = svd_refresh_cells_f64_avx512;
        name = "avx512";
    }
    if (level == 1) {
        f32 = svd_block_f32_avx2; f64 = svd_block_f64_avx2;
        r32 = svd_refresh_cells_f32_avx2; r64 = svd_refresh_cells_f64_avx2;
        name = "avx2";
    }
#endif
    svd_block_table[0][wide] = f32;
    svd_block_table[1][wide] = f64;
    svd_refresh_f32_table[wide] = r32;
    svd_refresh_f64_table[wide] = r64;
    svd_isa_names[wide] = name;
}

/* Same contract as mf_select_isa: "auto", "avx512", "avx2" or "baseline"; NULL when that
 * instruction set is not available here. */
static inline const char *svd_select_isa(const char *wanted)
{
    return kernels_select_isa(wanted, svd_use_level);
}

static inline const char *svd_isa_for(int k, int size)
{
    return svd_isa_names[MF_IS_WIDE(k, size)];
}

/* V[x] <- C[x] sum(rows of x) + |x| D[x] for cells [x0, x1), with the selected ISA. */
static inline void svd_refresh_f32(float *V, const float *Y, const float *C, const float *D,
                                   const svdpp_layout_view *lay, int64_t x0, int64_t x1, int k)
{
    svd_refresh_f32_table[MF_IS_WIDE(k, 4)](V, Y, C, D, lay, x0, x1, k);
}

static inline void svd_refresh_f64(double *V, const double *Y, const double *C, const double *D,
                                   const svdpp_layout_view *lay, int64_t x0, int64_t x1, int k)
{
    svd_refresh_f64_table[MF_IS_WIDE(k, 8)](V, Y, C, D, lay, x0, x1, k);
}

static inline double svd_block(int is_double, const svdpp_state *st, const svdpp_layout_view *lay,
                               const int32_t *order, int64_t n_runs, int k, const svdpp_params *prm)
{
    svd_block_fn fn = svd_block_table[is_double][MF_IS_WIDE(k, is_double ? 8 : 4)];
    return fn(st, lay, order, n_runs, k, prm);
}

#endif
