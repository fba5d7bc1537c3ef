/*
 * The vector types the kernels are written in, for one instruction set.
 *
 * Include after defining FS_VBYTES: 64 (AVX-512), 32 (AVX2), 16 (SSE2 or
 * NEON, the platform baseline), or 0 for plain C with one element per
 * "vector" (compilers without GCC/Clang vector extensions, e.g. MSVC).
 *
 * The kernels are written once against this small vocabulary:
 *   VF32/VF64        W32/W64 lanes of float/double
 *   VACC32           W32 lanes of double, where float sums accumulate, with
 *                    acc32_from/add/sub/narrow and ACC32_LANE
 *   vload/vstore     unaligned, whole vector; *_partial for the first k lanes
 *   sload/sstore     one element, unaligned (every scalar access to an array)
 *   keep_where_finite  a Kahan carry zeroed where its total is inf or NaN
 *   vmax             lane-wise max that returns its *second* argument when the
 *                    first is NaN, so a max accumulator never becomes NaN
 *   AS_BITS/FROM_BITS  reinterpret as unsigned integers and back
 *   ZERO_WHERE_LESS  e, with lanes where z < c set to +0 (NaN z compares false)
 *   vmask/SELECT     lanes of a `where=` mask (one byte per element) and a
 *                    lane-wise choice by them
 *   LANE(v, i)       one lane
 *
 * Explicit vector extensions rather than auto-vectorized scalar loops: GCC 12
 * did not vectorize the exp's float->int bit trick when written with a union
 * or memcpy, but does compile these types to straight zmm/ymm/xmm code.
 */
#ifndef FS_VECTOR_H
#define FS_VECTOR_H

#include <stdint.h>
#include <string.h>

#if FS_VBYTES > 0

#define W32 (FS_VBYTES / 4)
#define W64 (FS_VBYTES / 8)
typedef float VF32 __attribute__((vector_size(FS_VBYTES)));
typedef uint32_t VU32 __attribute__((vector_size(FS_VBYTES)));
typedef int32_t VI32 __attribute__((vector_size(FS_VBYTES)));
typedef double VF64 __attribute__((vector_size(FS_VBYTES)));
typedef uint64_t VU64 __attribute__((vector_size(FS_VBYTES)));
typedef int64_t VI64 __attribute__((vector_size(FS_VBYTES)));

#define LANE(v, i) ((v)[i])
#define AS_BITS32(v) ((VU32)(v))
#define AS_BITS64(v) ((VU64)(v))
#define FROM_BITS32(u) ((VF32)(u))
#define FROM_BITS64(u) ((VF64)(u))
/* A vector comparison gives -1 (all bits set) in true lanes and 0 elsewhere. */
#define ZERO_WHERE_LESS32(e, z, c) ((VF32)((VU32)(e) & ~(VU32)((z) < (c))))
#define ZERO_WHERE_LESS64(e, z, c) ((VF64)((VU64)(e) & ~(VU64)((z) < (c))))
/*
 * Float sums accumulate in double: a float vector widens into two native
 * double vectors.  (A single double vector twice the native width made GCC
 * spill it to the stack on every addition.)
 */
typedef struct {
    VF64 lo, hi;
} VACC32;
typedef float VF32H __attribute__((vector_size(FS_VBYTES / 2)));

static inline VACC32 acc32_from(VF32 v)
{
    VACC32 a;
#if (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 64
    a.lo = (VF64)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)v));
    a.hi = (VF64)_mm512_cvtps_pd((__m256)_mm512_extractf64x4_pd((__m512d)v, 1));
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 32
    a.lo = (VF64)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v));
    a.hi = (VF64)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1));
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 16
    a.lo = (VF64)_mm_cvtps_pd((__m128)v);
    a.hi = (VF64)_mm_cvtps_pd(_mm_movehl_ps((__m128)v, (__m128)v));
#else
    VF32H lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    a.lo = __builtin_convertvector(lo, VF64);
    a.hi = __builtin_convertvector(hi, VF64);
#endif
    return a;
}
static inline VACC32 acc32_add(VACC32 a, VACC32 b) { a.lo += b.lo; a.hi += b.hi; return a; }
static inline VACC32 acc32_sub(VACC32 a, VACC32 b) { a.lo -= b.lo; a.hi -= b.hi; return a; }
static inline VF32 acc32_narrow(VACC32 a)
{
    VF32H lo = __builtin_convertvector(a.lo, VF32H), hi = __builtin_convertvector(a.hi, VF32H);
    VF32 v;
    memcpy(&v, &lo, sizeof lo);
    memcpy((char *)&v + sizeof lo, &hi, sizeof hi);
    return v;
}
#define ACC32_ZERO ((VACC32){{0}, {0}})
#define ACC32_LANE(a, i) ((i) < W64 ? (a).lo[(i)] : (a).hi[(i) - W64])

/*
 * c in the lanes where t is finite, 0 where t is inf or NaN (t - t is 0 only
 * for a finite t).  For a Kahan carry: once a running total is infinite, its
 * carry (t - total) - y is inf - inf = NaN, which would turn the inf into NaN.
 */
static inline VF64 vkeep_where_finite64(VF64 c, VF64 t)
{
    return (VF64)((VU64)c & (VU64)(t - t == 0));
}
static inline VACC32 acc32_keep_where_finite(VACC32 c, VACC32 t)
{
    c.lo = vkeep_where_finite64(c.lo, t.lo);
    c.hi = vkeep_where_finite64(c.hi, t.hi);
    return c;
}

/* One mask byte per lane (`where=`), widened to all-ones / zero lanes. */
typedef uint8_t VB32 __attribute__((vector_size(W32)));
typedef uint8_t VB64 __attribute__((vector_size(W64)));
#define WIDEN_MASK32(b) ((VU32)(__builtin_convertvector((b), VU32) != 0))
#define WIDEN_MASK64(b) ((VU64)(__builtin_convertvector((b), VU64) != 0))
/* a where the mask lane is set, else b */
#define SELECT32(m, a, b) ((VF32)(((VU32)(a) & (m)) | ((VU32)(b) & ~(m))))
#define SELECT64(m, a, b) ((VF64)(((VU64)(a) & (m)) | ((VU64)(b) & ~(m))))

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
/* MAXPS/MAXPD return the second operand when either is NaN. */
#if FS_VBYTES == 64
#define vmax32(a, b) ((VF32)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define vmax64(a, b) ((VF64)_mm512_max_pd((__m512d)(a), (__m512d)(b)))
#elif FS_VBYTES == 32
#define vmax32(a, b) ((VF32)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define vmax64(a, b) ((VF64)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#else
#define vmax32(a, b) ((VF32)_mm_max_ps((__m128)(a), (__m128)(b)))
#define vmax64(a, b) ((VF64)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#endif
#else
/* a > b is false for a NaN a, so the blend keeps b. */
static inline VF32 vmax32(VF32 a, VF32 b)
{
    VU32 take_a = (VU32)(a > b);
    return (VF32)(((VU32)a & take_a) | ((VU32)b & ~take_a));
}
static inline VF64 vmax64(VF64 a, VF64 b)
{
    VU64 take_a = (VU64)(a > b);
    return (VF64)(((VU64)a & take_a) | ((VU64)b & ~take_a));
}
#endif

#else /* FS_VBYTES == 0: plain C, one lane */

#define W32 1
#define W64 1
typedef float VF32;
typedef uint32_t VU32;
typedef double VF64;
typedef uint64_t VU64;
typedef double VACC32;

#define LANE(v, i) (v)
static inline VU32 AS_BITS32(VF32 v) { VU32 u; memcpy(&u, &v, sizeof u); return u; }
static inline VU64 AS_BITS64(VF64 v) { VU64 u; memcpy(&u, &v, sizeof u); return u; }
static inline VF32 FROM_BITS32(VU32 u) { VF32 v; memcpy(&v, &u, sizeof v); return v; }
static inline VF64 FROM_BITS64(VU64 u) { VF64 v; memcpy(&v, &u, sizeof v); return v; }
#define ZERO_WHERE_LESS32(e, z, c) ((z) < (c) ? 0.0f : (e))
#define ZERO_WHERE_LESS64(e, z, c) ((z) < (c) ? 0.0 : (e))
typedef double VACC32;
#define acc32_from(v) ((double)(v))
#define acc32_add(a, b) ((a) + (b))
#define acc32_sub(a, b) ((a) - (b))
#define acc32_narrow(a) ((float)(a))
#define ACC32_ZERO 0.0
#define ACC32_LANE(a, i) (a)
/* As above: c where t is finite, else 0. */
static inline double vkeep_where_finite64(double c, double t) { return t - t == 0 ? c : 0.0; }
#define acc32_keep_where_finite(c, t) vkeep_where_finite64((c), (t))

typedef uint8_t VB32;
typedef uint8_t VB64;
#define WIDEN_MASK32(b) ((VU32)((b) != 0 ? 0xFFFFFFFFu : 0u))
#define WIDEN_MASK64(b) ((VU64)((b) != 0 ? ~(uint64_t)0 : 0u))
#define SELECT32(m, a, b) ((m) ? (a) : (b))
#define SELECT64(m, a, b) ((m) ? (a) : (b))
#define vmax32(a, b) ((a) > (b) ? (a) : (b))
#define vmax64(a, b) ((a) > (b) ? (a) : (b))

#endif /* FS_VBYTES */

/*
 * Loads and stores through memcpy: unaligned, and free of aliasing trouble.
 * The s* forms move one element: NumPy arrays may be C-contiguous yet not
 * aligned to their element size (np.frombuffer at an odd offset), and a plain
 * p[i] on them is undefined behaviour (which a vectorizer may turn into an
 * aligned vector move that faults).  A memcpy of 4 or 8 bytes compiles to one
 * scalar move, so these cost nothing over p[i].
 */
#define FS_DEFINE_MEMORY_OPS(V, REAL, SFX)                                          \
    static inline V vload_##SFX(const REAL *p)                                     \
    {                                                                              \
        V v;                                                                       \
        memcpy(&v, p, sizeof v);                                                   \
        return v;                                                                  \
    }                                                                              \
    static inline void vstore_##SFX(REAL *p, V v) { memcpy(p, &v, sizeof v); }     \
    static inline V vsplat_##SFX(REAL s) { return (V){0} + s; }                    \
    static inline REAL sload_##SFX(const REAL *p)                                  \
    {                                                                              \
        REAL s;                                                                    \
        memcpy(&s, p, sizeof s);                                                   \
        return s;                                                                  \
    }                                                                              \
    static inline void sstore_##SFX(REAL *p, REAL s) { memcpy(p, &s, sizeof s); }

/*
 * The first k (< W) lanes from p, the rest `fill`, and the matching store: a
 * tail never touches memory past its end.  AVX-512 and AVX2 use masked moves
 * (which do not fault on the masked-off lanes); elsewhere a short memcpy.
 */
#if FS_X86_DISPATCH && FS_VBYTES == 64
static inline __mmask16 fs_tail16(fs_index k) { return (__mmask16)((1u << k) - 1); }
static inline VF32 vload_partial_f32(const float *p, fs_index k, float fill)
{
    return (VF32)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), fs_tail16(k), p);
}
static inline void vstore_partial_f32(float *p, VF32 v, fs_index k)
{
    _mm512_mask_storeu_ps(p, fs_tail16(k), (__m512)v);
}
static inline VF64 vload_partial_f64(const double *p, fs_index k, double fill)
{
    return (VF64)_mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)fs_tail16(k), p);
}
static inline void vstore_partial_f64(double *p, VF64 v, fs_index k)
{
    _mm512_mask_storeu_pd(p, (__mmask8)fs_tail16(k), (__m512d)v);
}
#elif FS_X86_DISPATCH && FS_VBYTES == 32
/* Lanes below k all ones: the sign bits VMASKMOV reads. */
static inline __m256i fs_tail_mask32(fs_index k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i fs_tail_mask64(fs_index k)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline VF32 vload_partial_f32(const float *p, fs_index k, float fill)
{
    const __m256i m = fs_tail_mask32(k);
    return (VF32)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline void vstore_partial_f32(float *p, VF32 v, fs_index k)
{
    _mm256_maskstore_ps(p, fs_tail_mask32(k), (__m256)v);
}
static inline VF64 vload_partial_f64(const double *p, fs_index k, double fill)
{
    const __m256i m = fs_tail_mask64(k);
    return (VF64)_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
static inline void vstore_partial_f64(double *p, VF64 v, fs_index k)
{
    _mm256_maskstore_pd(p, fs_tail_mask64(k), (__m256d)v);
}
#else
#define FS_DEFINE_PARTIAL_OPS(V, REAL, SFX)                                        \
    static inline V vload_partial_##SFX(const REAL *p, fs_index k, REAL fill)      \
    {                                                                              \
        V v = vsplat_##SFX(fill);                                                  \
        memcpy(&v, p, (size_t)k * sizeof(REAL));                                   \
        return v;                                                                  \
    }                                                                              \
    static inline void vstore_partial_##SFX(REAL *p, V v, fs_index k)              \
    {                                                                              \
        memcpy(p, &v, (size_t)k * sizeof(REAL));                                   \
    }
#endif

FS_DEFINE_MEMORY_OPS(VF32, float, f32)
FS_DEFINE_MEMORY_OPS(VF64, double, f64)

/* One class label, unaligned as above (an int64 array at an odd address is as legal). */
static inline int64_t sload_i64(const int64_t *p)
{
    int64_t s;
    memcpy(&s, p, sizeof s);
    return s;
}
#ifdef FS_DEFINE_PARTIAL_OPS
FS_DEFINE_PARTIAL_OPS(VF32, float, f32)
FS_DEFINE_PARTIAL_OPS(VF64, double, f64)
#endif

/* Mask lanes from W mask bytes; the partial form reads k bytes and clears the rest. */
#define FS_DEFINE_MASK_OPS(VB, VU, WIDEN, SFX)                                      \
    static inline VU vmask_##SFX(const uint8_t *p)                                 \
    {                                                                              \
        VB b;                                                                      \
        memcpy(&b, p, sizeof b);                                                   \
        return WIDEN(b);                                                           \
    }                                                                              \
    static inline VU vmask_partial_##SFX(const uint8_t *p, fs_index k)             \
    {                                                                              \
        VB b;                                                                      \
        memset(&b, 0, sizeof b);                                                   \
        memcpy(&b, p, (size_t)k);                                                  \
        return WIDEN(b);                                                           \
    }

FS_DEFINE_MASK_OPS(VB32, VU32, WIDEN_MASK32, f32)
FS_DEFINE_MASK_OPS(VB64, VU64, WIDEN_MASK64, f64)

#endif /* FS_VECTOR_H */
