/* C inner loops of mfsgd: the SGD block kernel (float and double, compiled for several
 * instruction sets and dispatched once at import), a seeded permutation RNG and helpers.
 * The Cython module _sgd.pyx owns the schedule (epochs, sub-epochs, threads); this file owns
 * what happens to one block of ratings.  Nothing here allocates or touches Python objects.
 */
#ifndef MFSGD_KERNELS_H
#define MFSGD_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

enum { MF_BIASED = 1, MF_ADAGRAD = 2, MF_NONNEG = 4 };

typedef struct {
    double mu, lr, reg, bias_reg;
    int flags;
    int n_factors; /* k; the kernels' row length may be larger (zero padding) */
} mf_params;

/* ---- random numbers: splitmix64, and Fisher-Yates driven by it ---------------------------- */

static inline uint64_t mf_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* An independent stream for a (seed, stream) pair, e.g. one per block of an epoch. */
static inline uint64_t mf_stream_seed(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed ^ ((stream + 1) * 0xD1B54A32D192ED03ULL);
    return mf_splitmix64(&s);
}

/* Uniform integer in [0, n) by Lemire's multiply-shift (bias below 2^-32 for n < 2^32). */
static inline uint64_t mf_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)mf_splitmix64(state) * n) >> 64);
}

/* out = a permutation of 0..n-1: identity, then Fisher-Yates from the top. */
static inline void mf_permutation(int32_t *out, int64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++)
        out[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mf_below(&s, (uint64_t)(i + 1));
        int32_t t = out[i]; out[i] = out[j]; out[j] = t;
    }
}

/* Runs of a block are visited in segments of this many consecutive runs. */
#define MF_SEGMENT_RUNS 32

/* out = the visiting order of a block of n runs: the runs cut into segments of
 * MF_SEGMENT_RUNS consecutive runs (the last may be shorter), the segments in the order of
 * mf_permutation(seed), each segment's runs in stored order.  Stored order within a segment
 * lets the prefetchers stream the runs' ratings and user rows, which a fully random order of
 * runs defeats, while the segments' random order keeps SGD's test RMSE (README, Benchmarks).
 * `segments` is scratch space for ceil(n / MF_SEGMENT_RUNS) entries. */
static inline void mf_block_order(int32_t *out, int64_t n, uint64_t seed, int32_t *segments)
{
    const int64_t n_segments = (n + MF_SEGMENT_RUNS - 1) / MF_SEGMENT_RUNS;
    mf_permutation(segments, n_segments, seed);
    int64_t pos = 0;
    for (int64_t s = 0; s < n_segments; s++) {
        const int64_t first = (int64_t)segments[s] * MF_SEGMENT_RUNS;
        const int64_t last = first + MF_SEGMENT_RUNS < n ? first + MF_SEGMENT_RUNS : n;
        for (int64_t r = first; r < last; r++)
            out[pos++] = (int32_t)r;
    }
}

/* Shuffle a run of (item, rating) pairs in place, same Fisher-Yates as mf_permutation. */
static inline void mf_shuffle_pairs(int32_t *items, float *ratings, int64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mf_below(&s, (uint64_t)(i + 1));
        int32_t ti = items[i]; items[i] = items[j]; items[j] = ti;
        float tr = ratings[i]; ratings[i] = ratings[j]; ratings[j] = tr;
    }
}

/* ---- the block kernel, instantiated per type and instruction set -------------------------- */

/* Runs the block kernel works on at once, one rating of each in turn (see _kernels_impl.h);
 * the kernel spells out three lanes.  Three lanes' user rows stay in registers up to 32
 * floats with AVX2 and 128 with AVX-512, where a fourth would spill them. */
#define MF_LANES 3

/* Largest row length with a register-resident fast path (the MF_FAST_CASEs). */
#define MF_FAST_MAX_K 256

/* How many ratings ahead the next item rows are prefetched. */
#ifndef MF_QDIST
#define MF_QDIST 2
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MFSGD_NO_DISPATCH)
#define MF_DISPATCH 1
#define MF_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512")))
#define MF_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define MF_DISPATCH 0
#endif

#define MF_TARGET
#define MF_REAL float
#define MF_NAME(x) x##_f32_base
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#define MF_REAL double
#define MF_NAME(x) x##_f64_base
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET

#if MF_DISPATCH
#define MF_TARGET MF_TARGET_AVX2
#define MF_REAL float
#define MF_NAME(x) x##_f32_avx2
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#define MF_REAL double
#define MF_NAME(x) x##_f64_avx2
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET

#define MF_TARGET MF_TARGET_AVX512
#define MF_REAL float
#define MF_NAME(x) x##_f32_avx512
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#define MF_REAL double
#define MF_NAME(x) x##_f64_avx512
#include "_kernels_impl.h"
#undef MF_REAL
#undef MF_NAME
#undef MF_TARGET
#endif

typedef double (*mf_block_f32_fn)(float *, float *, float *, float *, float *, float *,
                                  const int32_t *, const int64_t *, const int32_t *, int64_t,
                                  const int32_t *, const float *, int, const mf_params *);
typedef double (*mf_block_f64_fn)(double *, double *, double *, double *, double *, double *,
                                  const int32_t *, const int64_t *, const int32_t *, int64_t,
                                  const int32_t *, const float *, int, const mf_params *);

/* Kernels in use for k below MF_WIDE_K ("narrow") and from MF_WIDE_K up ("wide").
 * 512-bit vectors pay off once a user's factor row fills several registers: the three lanes'
 * rows of 64 floats fit in 12 of AVX-512's 32 registers but would need 24 of AVX2's 16, and
 * below 64 AVX2 is faster.  Only when a row of k floats is a whole number of 64-byte cache
 * lines, though: otherwise most 512-bit loads straddle two lines and AVX2 wins. */
#define MF_WIDE_K 64
#define MF_IS_WIDE(k, size) ((k) >= MF_WIDE_K && ((k) * (size)) % 64 == 0)
static mf_block_f32_fn mf_block_f32_narrow = mf_sgd_block_f32_base, mf_block_f32_wide = mf_sgd_block_f32_base;
static mf_block_f64_fn mf_block_f64_narrow = mf_sgd_block_f64_base, mf_block_f64_wide = mf_sgd_block_f64_base;
static const char *mf_isa_narrow = "baseline", *mf_isa_wide = "baseline";

static inline double mf_sgd_block_f32(float *P, float *Q, float *bu, float *bi, float *gp, float *gq,
                                      const int32_t *run_user, const int64_t *run_ptr,
                                      const int32_t *order, int64_t n_runs, const int32_t *items,
                                      const float *ratings, int k, const mf_params *prm)
{
    mf_block_f32_fn fn = MF_IS_WIDE(k, 4) ? mf_block_f32_wide : mf_block_f32_narrow;
    return fn(P, Q, bu, bi, gp, gq, run_user, run_ptr, order, n_runs, items, ratings, k, prm);
}

static inline double mf_sgd_block_f64(double *P, double *Q, double *bu, double *bi, double *gp,
                                      double *gq, const int32_t *run_user, const int64_t *run_ptr,
                                      const int32_t *order, int64_t n_runs, const int32_t *items,
                                      const float *ratings, int k, const mf_params *prm)
{
    mf_block_f64_fn fn = MF_IS_WIDE(k, 8) ? mf_block_f64_wide : mf_block_f64_narrow;
    return fn(P, Q, bu, bi, gp, gq, run_user, run_ptr, order, n_runs, items, ratings, k, prm);
}

/* Which instruction sets this build and this CPU can run, best first: 2 avx512, 1 avx2, 0 base. */
static inline int mf_best_isa(void)
{
#if MF_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

static inline void mf_use_level(int level, int wide)
{
    mf_block_f32_fn f32 = mf_sgd_block_f32_base;
    mf_block_f64_fn f64 = mf_sgd_block_f64_base;
    const char *name = "baseline";
#if MF_DISPATCH
    if (level == 2) { f32 = mf_sgd_block_f32_avx512; f64 = mf_sgd_block_f64_avx512; name = "avx512"; }
    if (level == 1) { f32 = mf_sgd_block_f32_avx2; f64 = mf_sgd_block_f64_avx2; name = "avx2"; }
#endif
    if (wide) { mf_block_f32_wide = f32; mf_block_f64_wide = f64; mf_isa_wide = name; }
    else { mf_block_f32_narrow = f32; mf_block_f64_narrow = f64; mf_isa_narrow = name; }
}

/* Select a kernel family's instruction set through its `use_level(level, wide)`: "auto"
 * (the best for each row width on this CPU), or "avx512", "avx2", "baseline" for every width.
 * Returns NULL when that instruction set is not available here.  Shared by every kernel
 * family, so that they all accept the same names. */
static inline const char *kernels_select_isa(const char *wanted, void (*use_level)(int, int))
{
    int best = mf_best_isa(), level;
    if (strcmp(wanted, "auto") == 0) {
        use_level(best >= 1 ? 1 : 0, 0);
        use_level(best, 1);
        return "auto";
    }
    if (strcmp(wanted, "avx512") == 0) level = 2;
    else if (strcmp(wanted, "avx2") == 0) level = 1;
    else if (strcmp(wanted, "baseline") == 0) level = 0;
    else return NULL;
    if (level > best) return NULL;
    use_level(level, 0);
    use_level(level, 1);
    return wanted;
}

/* The MF kernels' instruction set (see kernels_select_isa). */
static inline const char *mf_select_isa(const char *wanted)
{
    return kernels_select_isa(wanted, mf_use_level);
}

/* Name of the instruction set used for factor count k. */
static inline const char *mf_isa_for(int k) { return MF_IS_WIDE(k, 4) ? mf_isa_wide : mf_isa_narrow; }



/* Seconds on a monotonic clock where there is one (per-block timing). */
static inline double mf_seconds(void)
{
    struct timespec ts;
#if defined(CLOCK_MONOTONIC)
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    timespec_get(&ts, TIME_UTC);
#endif
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the calling thread where the system counts them (else mf_seconds): time
 * taken from this thread by other processes does not count, so per-block figures stay
 * meaningful on a busy machine. */
static inline double mf_thread_seconds(void)
{
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return mf_seconds();
#endif
}

#ifdef _OPENMP
static const int mf_have_openmp = 1;
#else
static const int mf_have_openmp = 0;
#endif

/* Dot products for prediction (not on the training hot path, baseline ISA is enough). */
static inline float mf_dot_f32(const float *a, const float *b, int k) { return mf_dot_f32_base(a, b, k); }
static inline double mf_dot_f64(const double *a, const double *b, int k) { return mf_dot_f64_base(a, b, k); }

#endif
