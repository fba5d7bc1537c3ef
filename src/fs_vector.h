/*
 * The vector types the kernels are written in, for one instruction set.
 *
 * Include after defining FS_VBYTES: 64 (AVX-512), 32 (AVX2), 16 (SSE2 or
 * NEON, the platform baseline), or 0 for plain C with one element per
 * "vector" (compilers without GCC/Clang vector extensions, e.g. MSVC).
 *
 * The kernels are written once against this small vocabulary, one name per
 * operation and element type: v<operation>_<type>, the type f32 or f64
 * (fs_type_bindings.h binds the templates' generic names to them by suffix).
 *   real_f32, bits_f32     a float and its bits as an unsigned integer
 *   vec_f32, vbits_f32     FS_LANES_f32 lanes of them
 *   vacc_f32               FS_LANES_f32 lanes of double, where float sums
 *                          accumulate: vacc_zero/splat/from/add/sub/mul/div/inverse/
 *                          narrow/lane_f32, vacc_set_lane_f32(a, i, d) the one that
 *                          writes a lane (vacc_f64 is vec_f64 itself)
 *   vload/vstore_f32       unaligned, whole vector; *_partial for the first k lanes
 *   vstream_f32            a streaming store past the caches, to an aligned vector
 *                          (vstream_fence after the last; FS_CAN_STREAM says if real)
 *   sload/sstore_f32       one element, unaligned (every scalar access to an array)
 *   vsplat_f32             every lane one value
 *   vkeep_where_finite_f64 a Kahan carry zeroed where its total is inf or NaN
 *                          (vacc_keep_where_finite_f32 on float's accumulator)
 *   vmax_f32               lane-wise max that returns its *second* argument when
 *                          either is NaN, so a max accumulator never becomes NaN
 *                          (and the exp's vmax(floor, z) keeps a NaN z)
 *   vmax_lanes_f32         the largest lane of such an accumulator (vsum_lanes_f64,
 *                          vacc_sum_lanes_f32: the sum of the lanes), in a tree
 *   vany_greater_f32       whether any lane is above a scalar (NaN lanes are not)
 *   vnonzero_lanes_f32     the lanes where d is not 0, as bits (vadd_lanes_f32: a + e in
 *                          those lanes, a in the others)
 *   vas_bits/vfrom_bits_f32  reinterpret as unsigned integers and back
 *   vmask/vselect_f32      lanes of a `where=` mask (one byte per element) and a
 *                          lane-wise choice by them
 *   vtranspose_f32(r)      the LANES x LANES matrix of vectors r[0..LANES-1], transposed
 *   LANE(v, i)             one lane, of any vector type
 *   FS_OPAQUE(v)           v, hidden from multiply-add contraction (see below)
 * and likewise _f64.
 *
 * Explicit vector extensions rather than auto-vectorized scalar loops: GCC 12
 * did not vectorize the exp's float->int bit trick when written with a union
 * or memcpy, but does compile these types to straight zmm/ymm/xmm code.
 */
#ifndef FS_VECTOR_H
#define FS_VECTOR_H

#include <stdint.h>
#include <string.h>

typedef float real_f32;
typedef double real_f64;
typedef uint32_t bits_f32;
typedef uint64_t bits_f64;

/*
 * FS_OPAQUE(v): leaves v (a vector or a scalar) as it is, but hides how it was
 * computed from multiply-add contraction (-ffp-contract=fast).  With u and v
 * both opaque, u - v fuses in no copy of a template; whether GCC fuses a
 * product into a subtraction otherwise depends on the code around it (only
 * within one basic block, so on whether it unswitched the loop), and
 * cross_entropy's 16-bit gradient must be the float one rounded (the float and
 * the 16-bit-output copies of its gradient pass are other machine code).  An
 * empty asm that claims to change v in a register (SSE/AVX on x86, NEON on
 * AArch64), or in memory for a vector wider than the target's registers (the
 * logic build's 16 lanes on AVX2, tools/emulated_isas.sh).  Elsewhere nothing:
 * compilers there are not asked to contract.
 */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && FS_VBYTES == 64 && \
    !defined(__AVX512F__) && !defined(__clang__)
#define FS_OPAQUE(v) __asm__("" : "+m"(v))
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FS_OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define FS_OPAQUE(v) __asm__("" : "+w"(v))
#else
#define FS_OPAQUE(v) ((void)0)
#endif

#if FS_VBYTES > 0

#define FS_LANES_f32 (FS_VBYTES / 4)
#define FS_LANES_f64 (FS_VBYTES / 8)
typedef float vec_f32 __attribute__((vector_size(FS_VBYTES)));
typedef uint32_t vbits_f32 __attribute__((vector_size(FS_VBYTES)));
typedef double vec_f64 __attribute__((vector_size(FS_VBYTES)));
typedef uint64_t vbits_f64 __attribute__((vector_size(FS_VBYTES)));

#define LANE(v, i) ((v)[i])
#define vas_bits_f32(v) ((vbits_f32)(v))
#define vas_bits_f64(v) ((vbits_f64)(v))
#define vfrom_bits_f32(u) ((vec_f32)(u))
#define vfrom_bits_f64(u) ((vec_f64)(u))
/*
 * Float sums accumulate in double: a float vector widens into two native
 * double vectors.  (A single double vector twice the native width made GCC
 * spill it to the stack on every addition.)
 */
typedef struct {
    vec_f64 lo, hi;
} vacc_f32;
typedef float vhalf_f32 __attribute__((vector_size(FS_VBYTES / 2)));

static inline vacc_f32 vacc_from_f32(vec_f32 v)
{
    vacc_f32 a;
#if (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 64
    a.lo = (vec_f64)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)v));
    a.hi = (vec_f64)_mm512_cvtps_pd((__m256)_mm512_extractf64x4_pd((__m512d)v, 1));
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 32
    a.lo = (vec_f64)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v));
    a.hi = (vec_f64)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1));
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 16
    a.lo = (vec_f64)_mm_cvtps_pd((__m128)v);
    a.hi = (vec_f64)_mm_cvtps_pd(_mm_movehl_ps((__m128)v, (__m128)v));
#else
    vhalf_f32 lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    a.lo = __builtin_convertvector(lo, vec_f64);
    a.hi = __builtin_convertvector(hi, vec_f64);
#endif
    return a;
}
static inline vacc_f32 vacc_add_f32(vacc_f32 a, vacc_f32 b)
{
    a.lo += b.lo;
    a.hi += b.hi;
    return a;
}
static inline vacc_f32 vacc_sub_f32(vacc_f32 a, vacc_f32 b)
{
    a.lo -= b.lo;
    a.hi -= b.hi;
    return a;
}
static inline vacc_f32 vacc_mul_f32(vacc_f32 a, vacc_f32 b)
{
    a.lo *= b.lo;
    a.hi *= b.hi;
    return a;
}
/*
 * The two halves joined in registers: through memcpy GCC 12 stored them as two
 * half vectors and loaded them back as one, a load no store forwards to (about
 * 20 cycles, once per group of 16 short rows: 4% of float32 1000000x10 softmax
 * with AVX-512).
 */
static inline vec_f32 vacc_narrow_f32(vacc_f32 a)
{
#if (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 64
    const __m256 lo = _mm512_cvtpd_ps((__m512d)a.lo), hi = _mm512_cvtpd_ps((__m512d)a.hi);
    return (vec_f32)_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                                       _mm256_castps_pd(hi), 1);
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 32
    return (vec_f32)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps((__m256d)a.lo)),
                                         _mm256_cvtpd_ps((__m256d)a.hi), 1);
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 16
    return (vec_f32)_mm_movelh_ps(_mm_cvtpd_ps((__m128d)a.lo), _mm_cvtpd_ps((__m128d)a.hi));
#else
    vhalf_f32 lo = __builtin_convertvector(a.lo, vhalf_f32);
    vhalf_f32 hi = __builtin_convertvector(a.hi, vhalf_f32);
    vec_f32 v;
    memcpy(&v, &lo, sizeof lo);
    memcpy((char *)&v + sizeof lo, &hi, sizeof hi);
    return v;
#endif
}
/* a / b lane by lane, correctly rounded as each scalar division is. */
static inline vacc_f32 vacc_div_f32(vacc_f32 a, vacc_f32 b)
{
    a.lo /= b.lo;
    a.hi /= b.hi;
    return a;
}
/* 1 / a lane by lane, correctly rounded as each scalar division is. */
static inline vacc_f32 vacc_inverse_f32(vacc_f32 a)
{
    a.lo = 1.0 / a.lo;
    a.hi = 1.0 / a.hi;
    return a;
}
#define vacc_zero_f32() ((vacc_f32){{0}, {0}})
/* A double in every lane (not rounded to float). */
static inline vacc_f32 vacc_splat_f32(double d)
{
    vacc_f32 a;
    a.lo = a.hi = (vec_f64){0} + d; /* (vsplat_f64, defined below) */
    return a;
}
#define vacc_lane_f32(a, i) ((i) < FS_LANES_f64 ? (a).lo[(i)] : (a).hi[(i) - FS_LANES_f64])
#define vacc_set_lane_f32(a, i, d)                                                          \
    ((i) < FS_LANES_f64 ? (void)((a).lo[(i)] = (d)) : (void)((a).hi[(i) - FS_LANES_f64] = (d)))

/*
 * c in the lanes where t is finite, 0 where t is inf or NaN (t - t is 0 only
 * for a finite t).  For a Kahan carry: once a running total is infinite, its
 * carry (t - total) - y is inf - inf = NaN, which would turn the inf into NaN.
 */
static inline vec_f64 vkeep_where_finite_f64(vec_f64 c, vec_f64 t)
{
    return (vec_f64)((vbits_f64)c & (vbits_f64)(t - t == 0));
}
static inline vacc_f32 vacc_keep_where_finite_f32(vacc_f32 c, vacc_f32 t)
{
    c.lo = vkeep_where_finite_f64(c.lo, t.lo);
    c.hi = vkeep_where_finite_f64(c.hi, t.hi);
    return c;
}

/* One mask byte per lane (`where=`), widened to all-ones / zero lanes (vwiden_mask, below). */
typedef uint8_t vmask_bytes_f32 __attribute__((vector_size(FS_LANES_f32)));
typedef uint8_t vmask_bytes_f64 __attribute__((vector_size(FS_LANES_f64)));
/* a where the mask lane is set, else b */
#define vselect_f32(m, a, b) ((vec_f32)(((vbits_f32)(a) & (m)) | ((vbits_f32)(b) & ~(m))))
#define vselect_f64(m, a, b) ((vec_f64)(((vbits_f64)(a) & (m)) | ((vbits_f64)(b) & ~(m))))

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
/* MAXPS/MAXPD return the second operand when either is NaN. */
#if FS_VBYTES == 64
#define vmax_f32(a, b) ((vec_f32)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define vmax_f64(a, b) ((vec_f64)_mm512_max_pd((__m512d)(a), (__m512d)(b)))
#elif FS_VBYTES == 32
#define vmax_f32(a, b) ((vec_f32)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define vmax_f64(a, b) ((vec_f64)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#else
#define vmax_f32(a, b) ((vec_f32)_mm_max_ps((__m128)(a), (__m128)(b)))
#define vmax_f64(a, b) ((vec_f64)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#endif
#else
/* a > b is false for a NaN a, so the blend keeps b. */
static inline vec_f32 vmax_f32(vec_f32 a, vec_f32 b)
{
    vbits_f32 take_a = (vbits_f32)(a > b);
    return (vec_f32)(((vbits_f32)a & take_a) | ((vbits_f32)b & ~take_a));
}
static inline vec_f64 vmax_f64(vec_f64 a, vec_f64 b)
{
    vbits_f64 take_a = (vbits_f64)(a > b);
    return (vec_f64)(((vbits_f64)a & take_a) | ((vbits_f64)b & ~take_a));
}
#endif

/*
 * vwiden_mask_f32/f64(b): a vector of mask bytes widened to all-ones / zero
 * lanes, by the zero-extending moves where there are (x86's VPMOVZXBD and
 * kin, SSE2's interleave with zeros) or a byte test per lane: GCC 12 compiles
 * __builtin_convertvector from bytes into a byte-by-byte scalar sequence,
 * which made a `where=` call cost 2.8 (AVX2) to 6 (AVX-512) times an unmasked
 * one.  Other targets keep the conversion (and so does the AVX-512 template
 * compiled for AVX2 by tools/emulated_isas.sh, which turns the first
 * FS_X86_DISPATCH && FS_VBYTES == 64 case off).
 */
#if FS_X86_DISPATCH
/* The bytes of b (a vector of 2, 4, 8 or 16 of them) in the low bytes of an SSE register. */
#define FS_MASK_M128(b) fs_mask_bytes_m128(&(b), sizeof(b))
static inline __m128i fs_mask_bytes_m128(const void *b, size_t size)
{
    if (size == 16) {
        __m128i v;
        memcpy(&v, b, sizeof v);
        return v;
    }
    uint64_t bits = 0;
    memcpy(&bits, b, size);
    return _mm_cvtsi64_si128((long long)bits);
}
#endif
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define vwiden_mask_f32(b) ((vbits_f32)((vbits_f32)_mm512_cvtepu8_epi32(FS_MASK_M128(b)) != 0))
#define vwiden_mask_f64(b) ((vbits_f64)((vbits_f64)_mm512_cvtepu8_epi64(FS_MASK_M128(b)) != 0))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define vwiden_mask_f32(b) ((vbits_f32)((vbits_f32)_mm256_cvtepu8_epi32(FS_MASK_M128(b)) != 0))
#define vwiden_mask_f64(b) ((vbits_f64)((vbits_f64)_mm256_cvtepu8_epi64(FS_MASK_M128(b)) != 0))
#elif FS_X86_DISPATCH && FS_VBYTES == 16
/* SSE2 has no zero-extending moves (SSE4.1 does): interleave with zero bytes */
#define FS_WIDEN_BYTES_4(v) \
    _mm_unpacklo_epi16(_mm_unpacklo_epi8((v), _mm_setzero_si128()), _mm_setzero_si128())
#define vwiden_mask_f32(b) ((vbits_f32)((vbits_f32)FS_WIDEN_BYTES_4(FS_MASK_M128(b)) != 0))
/* and a 64-bit compare is SSE4.1's too: each 32-bit lane's result, doubled */
static inline vbits_f64 fs_widen_mask_sse2_f64(__m128i bytes)
{
    const __m128i set = (__m128i)((vbits_f32)FS_WIDEN_BYTES_4(bytes) != 0);
    return (vbits_f64)_mm_unpacklo_epi32(set, set);
}
#define vwiden_mask_f64(b) fs_widen_mask_sse2_f64(FS_MASK_M128(b))
#elif FS_VBYTES == 16 && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/*
 * 4 (float) or 2 (double) bytes as one integer in every lane, each lane
 * testing its own byte: a broadcast and NEON's CMTST.  (arm_neon.h's own
 * vmax_f32 would clash with this vocabulary's.)
 */
static inline vbits_f32 fs_widen_mask_bits_f32(vmask_bytes_f32 b)
{
    uint32_t bits;
    memcpy(&bits, &b, sizeof bits);
    const vbits_f32 all = {bits, bits, bits, bits}, own = {0xFFu, 0xFF00u, 0xFF0000u, 0xFF000000u};
    return (vbits_f32)((all & own) != 0);
}
static inline vbits_f64 fs_widen_mask_bits_f64(vmask_bytes_f64 b)
{
    uint16_t bits;
    memcpy(&bits, &b, sizeof bits);
    const vbits_f64 all = {bits, bits}, own = {0xFFu, 0xFF00u};
    return (vbits_f64)((all & own) != 0);
}
#define vwiden_mask_f32(b) fs_widen_mask_bits_f32(b)
#define vwiden_mask_f64(b) fs_widen_mask_bits_f64(b)
#else
#define vwiden_mask_f32(b) ((vbits_f32)(__builtin_convertvector((b), vbits_f32) != 0))
#define vwiden_mask_f64(b) ((vbits_f64)(__builtin_convertvector((b), vbits_f64) != 0))
#endif

/*
 * vsum_lanes_f64(v), vmax_lanes_f32/f64(v): a vector's lanes reduced to one
 * value by halving: the upper half of the lanes is added (or maxed) onto the
 * lower half, lane by lane, until one lane is left.  That is log2(LANES)
 * dependent steps where a walk from lane 0 takes LANES - 1; every row's max
 * and sum end in one, and on rows of a few hundred elements the walk's chain
 * was a third of the row's time.  The order is part of a sum's bits: every
 * path and thread count sums a vector's lanes in this one (each ISA with its
 * own number of lanes).  A max reduces a max accumulator, which never holds
 * NaN; its order only decides which of a +0 and a -0 wins, and both give one
 * result.
 */
#define FS_DEFINE_LANES_REDUCTION(NAME, V, T, STEP)                                \
    FS_ALWAYS_INLINE T NAME(V v)                                                   \
    {                                                                              \
        enum { lanes_ = sizeof(V) / sizeof(T) };                                   \
        T t[lanes_];                                                               \
        memcpy(t, &v, sizeof t);                                                   \
        _Pragma("GCC unroll 8") for (int w = lanes_ / 2; w > 0; w /= 2)            \
            _Pragma("GCC unroll 16") for (int i = 0; i < w; i++)                   \
                t[i] = STEP(t[i], t[i + w]);                                       \
        return t[0];                                                               \
    }
#define FS_ADD_STEP(a, b) ((a) + (b))
#define FS_MAX_STEP(a, b) ((b) > (a) ? (b) : (a))
FS_DEFINE_LANES_REDUCTION(vsum_lanes_f64, vec_f64, double, FS_ADD_STEP)
FS_DEFINE_LANES_REDUCTION(vmax_lanes_f32, vec_f32, float, FS_MAX_STEP)
FS_DEFINE_LANES_REDUCTION(vmax_lanes_f64, vec_f64, double, FS_MAX_STEP)
/* Float's double lanes: lo holds the lower half of them, so its first halving is lo + hi. */
FS_ALWAYS_INLINE double vacc_sum_lanes_f32(vacc_f32 a) { return vsum_lanes_f64(a.lo + a.hi); }

/* The number of the lowest set bit of an unsigned, or -1 if none is set. */
#define FS_FIRST_BIT(bits) ((bits) ? __builtin_ctz(bits) : -1)
/* The first lane of a comparison result that is set, or -1: one instruction and a bit scan. */
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define vfirst_f32(b) FS_FIRST_BIT((unsigned)_mm512_test_epi32_mask((__m512i)(b), (__m512i)(b)))
#define vfirst_f64(b) FS_FIRST_BIT((unsigned)_mm512_test_epi64_mask((__m512i)(b), (__m512i)(b)))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define vfirst_f32(b) FS_FIRST_BIT((unsigned)_mm256_movemask_ps((__m256)(b)))
#define vfirst_f64(b) FS_FIRST_BIT((unsigned)_mm256_movemask_pd((__m256d)(b)))
#elif (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && FS_VBYTES == 16
#define vfirst_f32(b) FS_FIRST_BIT((unsigned)_mm_movemask_ps((__m128)(b)))
#define vfirst_f64(b) FS_FIRST_BIT((unsigned)_mm_movemask_pd((__m128d)(b)))
#else
/* Any other vector width: the lanes in turn (comparison lanes are all ones or all zeros). */
#define FS_DEFINE_FIRST(VB, SFX)                                                   \
    static inline int vfirst_##SFX(VB b)                                           \
    {                                                                              \
        for (int i = 0; i < (int)(sizeof(VB) / sizeof(b[0])); i++)                 \
            if (b[i])                                                              \
                return i;                                                          \
        return -1;                                                                 \
    }
FS_DEFINE_FIRST(vbits_f32, f32)
FS_DEFINE_FIRST(vbits_f64, f64)
#endif
/*
 * vnonzero_lanes_f32(d): the lanes where d is not 0 (NaN is not), as the bits
 * of an unsigned (lane i, bit i); vadd_lanes_f32(a, e, d, bits): a + e in
 * those lanes, a in the others, given both d and bits = vnonzero_lanes_f32(d).
 * A sum pass leaves out every term of its row's max with them and counts the
 * terms (fs_reduce_tmpl.h's ADD_TERMS): the lanes where x - max is 0.
 * AVX-512 adds under the comparison's mask register, in place of the plain
 * add; the others clear the lanes with an and by d's comparison, which the
 * compiler shares with the one that made the bits.  (Written with a pointer
 * to the count instead, one helper kept the count in memory and made
 * log_softmax rows of 192-240 floats 3-5% slower.)
 */
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define vnonzero_lanes_f32(d) \
    ((unsigned)_mm512_cmp_ps_mask((__m512)(d), _mm512_setzero_ps(), _CMP_NEQ_UQ))
#define vnonzero_lanes_f64(d) \
    ((unsigned)_mm512_cmp_pd_mask((__m512d)(d), _mm512_setzero_pd(), _CMP_NEQ_UQ))
#define vadd_lanes_f32(a, e, d, bits) \
    ((vec_f32)_mm512_mask_add_ps((__m512)(a), (__mmask16)(bits), (__m512)(a), (__m512)(e)))
#define vadd_lanes_f64(a, e, d, bits) \
    ((vec_f64)_mm512_mask_add_pd((__m512d)(a), (__mmask8)(bits), (__m512d)(a), (__m512d)(e)))
#else
#if FS_X86_DISPATCH && FS_VBYTES == 32
#define vnonzero_lanes_f32(d) ((unsigned)_mm256_movemask_ps((__m256)((d) != (vec_f32){0})))
#define vnonzero_lanes_f64(d) ((unsigned)_mm256_movemask_pd((__m256d)((d) != (vec_f64){0})))
#elif (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && FS_VBYTES == 16
#define vnonzero_lanes_f32(d) ((unsigned)_mm_movemask_ps((__m128)((d) != (vec_f32){0})))
#define vnonzero_lanes_f64(d) ((unsigned)_mm_movemask_pd((__m128d)((d) != (vec_f64){0})))
#else
/* Any other vector width: each lane's bit, where it is not 0, summed. */
#define FS_DEFINE_NONZERO_LANES(V, VB, SFX)                                    \
    static inline unsigned vnonzero_lanes_##SFX(V d)                           \
    {                                                                          \
        const VB nonzero = (VB)(d != (V){0});                                  \
        unsigned bits = 0;                                                     \
        for (int i = 0; i < (int)(sizeof(VB) / sizeof(nonzero[0])); i++)       \
            bits |= (unsigned)(nonzero[i] & 1) << i;                           \
        return bits;                                                           \
    }
FS_DEFINE_NONZERO_LANES(vec_f32, vbits_f32, f32)
FS_DEFINE_NONZERO_LANES(vec_f64, vbits_f64, f64)
#endif
#define vadd_lanes_f32(a, e, d, bits) \
    ((a) + (vec_f32)((vbits_f32)(e) & (vbits_f32)((d) != (vec_f32){0})))
#define vadd_lanes_f64(a, e, d, bits) \
    ((a) + (vec_f64)((vbits_f64)(e) & (vbits_f64)((d) != (vec_f64){0})))
#endif

/*
 * vjoin_f32(a, b, vjoin_at_f32(at)): lanes at, ..., LANES-1 of a, then lanes
 * 0, ..., at-1 of b (0 < at < LANES; the index is made once per row).  A pass
 * whose vectors start at its input's lanes stores through it whole vectors at
 * its output's aligned addresses (fs_reduce_tmpl.h): a vector store that
 * straddles two cache lines costs about two, and NumPy aligns arrays to 16
 * bytes only, so a 64-byte store into its outputs nearly always straddles.
 * AVX-512 joins with one two-source permute; elsewhere (the logic build)
 * through memory.  FS_HAS_JOIN is 0 for narrower vectors: a 16-byte store
 * suits NumPy's alignment, and half of AVX2's 32-byte ones straddle, for less
 * than AVX2's join would cost, two one-source permutes and a blend (C harness,
 * float32 16384x512 softmax into the same output each call, 16 bytes past a
 * line: 0.36 ns per element unjoined, 0.43 joined).
 */
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define FS_HAS_JOIN 1
typedef __m512i vjoin_index_f32;
typedef __m512i vjoin_index_f64;
static inline vjoin_index_f32 vjoin_at_f32(fs_index at)
{
    return _mm512_add_epi32(_mm512_set1_epi32((int)at),
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
static inline vjoin_index_f64 vjoin_at_f64(fs_index at)
{
    return _mm512_add_epi64(_mm512_set1_epi64(at), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
}
/* (indices LANES and up pick b's lanes) */
#define vjoin_f32(a, b, at) ((vec_f32)_mm512_permutex2var_ps((__m512)(a), (at), (__m512)(b)))
#define vjoin_f64(a, b, at) ((vec_f64)_mm512_permutex2var_pd((__m512d)(a), (at), (__m512d)(b)))
#else
#define FS_HAS_JOIN (FS_VBYTES == 64)
/* (through memory: a lane-by-lane version gave wrong doubles in the logic build, GCC 12) */
#define FS_DEFINE_JOIN(V, REAL, SFX)                                               \
    typedef fs_index vjoin_index_##SFX;                                            \
    static inline fs_index vjoin_at_##SFX(fs_index at) { return at; }              \
    static inline V vjoin_##SFX(V a, V b, fs_index at)                             \
    {                                                                              \
        REAL both[2 * FS_LANES_##SFX];                                             \
        V joined;                                                                  \
        memcpy(both, &a, sizeof a);                                                \
        memcpy(both + FS_LANES_##SFX, &b, sizeof b);                               \
        memcpy(&joined, both + at, sizeof joined);                                 \
        return joined;                                                             \
    }
FS_DEFINE_JOIN(vec_f32, float, f32)
FS_DEFINE_JOIN(vec_f64, double, f64)
#endif

/*
 * The table exp's steps (fs_exp.h).  vmuladd_flush_f32(a, b, c, z, cut):
 * a * b + c, rounded once where the target fuses it, and +0 where z < cut (a
 * NaN z compares false and keeps its lane): a zero-masked VFMADD with
 * AVX-512, its mask the comparison's, elsewhere a compare and an and-not (and
 * vmuladd_flush_f64).
 *
 * vlookup_f32(table, i): table[i mod LANES] in every lane, for a table of
 * one vector's worth of float bit patterns (FS_LANES_f32 of them) and lanes i
 * of integers (the float exp's 2^(j/16) or 2^(j/8)).  One VPERMD, with AVX-512
 * and AVX2 alike; vlookup_f64 likewise, with AVX-512 only (VPERMQ; AVX2 has
 * no variable permute of 64-bit lanes).  FS_HAS_LOOKUP says whether the target
 * has such a permute: SSE2 has none, and there the exp keeps its table-free
 * polynomial.  (The lane loop serves the AVX-512 template compiled for AVX2,
 * which tools/emulated_isas.sh builds; it gives the same bits.)
 */
#if FS_X86_DISPATCH && FS_VBYTES >= 32
#define FS_HAS_LOOKUP 1
#else
#define FS_HAS_LOOKUP 0
#endif
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define vmuladd_flush_f32(a, b, c, z, cut) \
    ((vec_f32)_mm512_maskz_fmadd_ps(_mm512_cmp_ps_mask((__m512)(z), (__m512)(cut), _CMP_NLT_UQ), \
                                    (__m512)(a), (__m512)(b), (__m512)(c)))
#define vlookup_f32(table, i) \
    ((vbits_f32)_mm512_permutexvar_epi32((__m512i)(i), _mm512_loadu_si512((const void *)(table))))
#define vmuladd_flush_f64(a, b, c, z, cut) \
    ((vec_f64)_mm512_maskz_fmadd_pd(_mm512_cmp_pd_mask((__m512d)(z), (__m512d)(cut), _CMP_NLT_UQ), \
                                    (__m512d)(a), (__m512d)(b), (__m512d)(c)))
#define vlookup_f64(table, i) \
    ((vbits_f64)_mm512_permutexvar_epi64((__m512i)(i), _mm512_loadu_si512((const void *)(table))))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define vlookup_f32(table, i) \
    ((vbits_f32)_mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(table)), (__m256i)(i)))
#else
static inline vbits_f32 vlookup_f32(const uint32_t *table, vbits_f32 i)
{
    vbits_f32 looked_up;
    for (int lane = 0; lane < FS_LANES_f32; lane++)
        looked_up[lane] = table[i[lane] % FS_LANES_f32];
    return looked_up;
}
static inline vbits_f64 vlookup_f64(const uint64_t *table, vbits_f64 i)
{
    vbits_f64 looked_up;
    for (int lane = 0; lane < FS_LANES_f64; lane++)
        looked_up[lane] = table[i[lane] % FS_LANES_f64];
    return looked_up;
}
#endif
#ifndef vmuladd_flush_f32
#define vmuladd_flush_f32(a, b, c, z, cut) \
    ((vec_f32)((vbits_f32)((a) * (b) + (c)) & ~(vbits_f32)((z) < (cut))))
#define vmuladd_flush_f64(a, b, c, z, cut) \
    ((vec_f64)((vbits_f64)((a) * (b) + (c)) & ~(vbits_f64)((z) < (cut))))
#endif


/*
 * vtranspose_f32(r): the LANES x LANES matrix whose rows are r[0..LANES-1],
 * transposed in registers (the short-row kernels' gather and scatter, which
 * otherwise move every element through the stack one at a time and then
 * stall reading it back as vectors).  One butterfly stage per bit of the
 * lane number: stage B exchanges that bit between row and column, pairing
 * rows i and i + B (for i without bit B) through two two-vector shuffles:
 *   lo: a's lanes where bit B of the lane is clear, b's (moved down by B) where set
 *   hi: a's (moved up by B) where clear, b's own where set
 * Every stage is a shuffle that each ISA has in one or two instructions
 * (unpack/blend, shufps, vperm2f128 or vshuff32x4 on x86; trn1/trn2 on NEON).
 * __builtin_shufflevector is GCC >= 12's and Clang's spelling, __builtin_shuffle
 * with a mask vector older GCC's.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define FS_SHUFFLE(a, b, VB, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define FS_SHUFFLE(a, b, VB, ...) __builtin_shuffle((a), (b), (VB){__VA_ARGS__})
#endif
/* The shuffle indices (into a's lanes, then b's) of stage B for L lanes. */
#define FS_TRANSPOSE_LO_2_1 0, 2
#define FS_TRANSPOSE_HI_2_1 1, 3
#define FS_TRANSPOSE_LO_4_1 0, 4, 2, 6
#define FS_TRANSPOSE_HI_4_1 1, 5, 3, 7
#define FS_TRANSPOSE_LO_4_2 0, 1, 4, 5
#define FS_TRANSPOSE_HI_4_2 2, 3, 6, 7
#define FS_TRANSPOSE_LO_8_1 0, 8, 2, 10, 4, 12, 6, 14
#define FS_TRANSPOSE_HI_8_1 1, 9, 3, 11, 5, 13, 7, 15
#define FS_TRANSPOSE_LO_8_2 0, 1, 8, 9, 4, 5, 12, 13
#define FS_TRANSPOSE_HI_8_2 2, 3, 10, 11, 6, 7, 14, 15
#define FS_TRANSPOSE_LO_8_4 0, 1, 2, 3, 8, 9, 10, 11
#define FS_TRANSPOSE_HI_8_4 4, 5, 6, 7, 12, 13, 14, 15
#define FS_TRANSPOSE_LO_16_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define FS_TRANSPOSE_HI_16_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define FS_TRANSPOSE_LO_16_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define FS_TRANSPOSE_HI_16_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define FS_TRANSPOSE_LO_16_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define FS_TRANSPOSE_HI_16_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define FS_TRANSPOSE_LO_16_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define FS_TRANSPOSE_HI_16_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define FS_TRANSPOSE_STAGE(V, VB, r, L, B)                                              \
    for (int i_ = 0; i_ < (L); i_++)                                                   \
        if (!(i_ & (B))) {                                                             \
            const V a_ = (r)[i_], b_ = (r)[i_ + (B)];                                  \
            (r)[i_] = FS_SHUFFLE(a_, b_, VB, FS_TRANSPOSE_LO_##L##_##B);               \
            (r)[i_ + (B)] = FS_SHUFFLE(a_, b_, VB, FS_TRANSPOSE_HI_##L##_##B);          \
        }
#define FS_TRANSPOSE_2(V, VB, r) FS_TRANSPOSE_STAGE(V, VB, r, 2, 1)
#define FS_TRANSPOSE_4(V, VB, r) \
    FS_TRANSPOSE_STAGE(V, VB, r, 4, 1) FS_TRANSPOSE_STAGE(V, VB, r, 4, 2)
#define FS_TRANSPOSE_8(V, VB, r)                                                       \
    FS_TRANSPOSE_STAGE(V, VB, r, 8, 1) FS_TRANSPOSE_STAGE(V, VB, r, 8, 2)               \
    FS_TRANSPOSE_STAGE(V, VB, r, 8, 4)
#define FS_TRANSPOSE_16(V, VB, r)                                                      \
    FS_TRANSPOSE_STAGE(V, VB, r, 16, 1) FS_TRANSPOSE_STAGE(V, VB, r, 16, 2)             \
    FS_TRANSPOSE_STAGE(V, VB, r, 16, 4) FS_TRANSPOSE_STAGE(V, VB, r, 16, 8)
#define FS_TRANSPOSE_N_(L) FS_TRANSPOSE_##L
#define FS_TRANSPOSE_N(L) FS_TRANSPOSE_N_(L)
/* (FS_LANES_* are expressions; these are the same numbers as literals, for the names above.) */
#if FS_VBYTES == 64
#define FS_LANES_LITERAL_f32 16
#define FS_LANES_LITERAL_f64 8
#elif FS_VBYTES == 32
#define FS_LANES_LITERAL_f32 8
#define FS_LANES_LITERAL_f64 4
#else
#define FS_LANES_LITERAL_f32 4
#define FS_LANES_LITERAL_f64 2
#endif
FS_ALWAYS_INLINE void vtranspose_f32(vec_f32 *r)
{
    FS_TRANSPOSE_N(FS_LANES_LITERAL_f32)(vec_f32, vbits_f32, r)
}
FS_ALWAYS_INLINE void vtranspose_f64(vec_f64 *r)
{
    FS_TRANSPOSE_N(FS_LANES_LITERAL_f64)(vec_f64, vbits_f64, r)
}

#else /* FS_VBYTES == 0: plain C, one lane */

#define FS_HAS_JOIN 0 /* (one lane: nothing to join) */
#define FS_LANES_f32 1
#define FS_LANES_f64 1
typedef float vec_f32;
typedef uint32_t vbits_f32;
typedef double vec_f64;
typedef uint64_t vbits_f64;

#define LANE(v, i) (v)
static inline vbits_f32 vas_bits_f32(vec_f32 v) { vbits_f32 u; memcpy(&u, &v, sizeof u); return u; }
static inline vbits_f64 vas_bits_f64(vec_f64 v) { vbits_f64 u; memcpy(&u, &v, sizeof u); return u; }
static inline vec_f32 vfrom_bits_f32(vbits_f32 u) { vec_f32 v; memcpy(&v, &u, sizeof v); return v; }
static inline vec_f64 vfrom_bits_f64(vbits_f64 u) { vec_f64 v; memcpy(&v, &u, sizeof v); return v; }
typedef double vacc_f32;
#define vacc_from_f32(v) ((double)(v))
#define vacc_add_f32(a, b) ((a) + (b))
#define vacc_sub_f32(a, b) ((a) - (b))
#define vacc_mul_f32(a, b) ((a) * (b))
#define vacc_div_f32(a, b) ((a) / (b))
#define vacc_narrow_f32(a) ((float)(a))
#define vacc_zero_f32() 0.0
#define vacc_splat_f32(d) ((double)(d))
#define vacc_lane_f32(a, i) (a)
#define vacc_set_lane_f32(a, i, d) ((void)((a) = (d)))
#define vacc_inverse_f32(a) (1.0 / (a))
/* As above: c where t is finite, else 0. */
static inline double vkeep_where_finite_f64(double c, double t) { return t - t == 0 ? c : 0.0; }
#define vacc_keep_where_finite_f32(c, t) vkeep_where_finite_f64((c), (t))

typedef uint8_t vmask_bytes_f32;
typedef uint8_t vmask_bytes_f64;
#define vwiden_mask_f32(b) ((vbits_f32)((b) != 0 ? 0xFFFFFFFFu : 0u))
#define vwiden_mask_f64(b) ((vbits_f64)((b) != 0 ? ~(uint64_t)0 : 0u))
#define vselect_f32(m, a, b) ((m) ? (a) : (b))
#define vselect_f64(m, a, b) ((m) ? (a) : (b))
#define vfirst_f32(b) ((b) != 0 ? 0 : -1)
#define vfirst_f64(b) ((b) != 0 ? 0 : -1)
#define vnonzero_lanes_f32(d) ((unsigned)((d) != 0))
#define vnonzero_lanes_f64(d) ((unsigned)((d) != 0))
#define vadd_lanes_f32(a, e, d, bits) ((bits) ? (a) + (e) : (a))
#define vadd_lanes_f64(a, e, d, bits) ((bits) ? (a) + (e) : (a))
#define vmax_f32(a, b) ((a) > (b) ? (a) : (b))
#define vmax_f64(a, b) ((a) > (b) ? (a) : (b))
/* One lane is its own sum and max. */
#define vsum_lanes_f64(v) (v)
#define vmax_lanes_f32(v) (v)
#define vmax_lanes_f64(v) (v)
#define vacc_sum_lanes_f32(a) (a)
/* A 1 x 1 matrix is its own transpose. */
#define vtranspose_f32(r) ((void)(r))
#define vtranspose_f64(r) ((void)(r))

#endif /* FS_VBYTES */

/*
 * How many of the first `lanes` bits of `bits` are set (vnonzero_lanes' bits):
 * up to 4 lanes from a table of 16 counts of 4 bits in one constant, since
 * SSE2 has no POPCNT and GCC's __builtin_popcount is a call into libgcc there
 * (once a vector in log_softmax's sum pass: SSE2, Zen 4, one thread, float32
 * rows of 512 in cache took 1.33 times softmax's time).
 */
static inline unsigned fs_count_lanes(unsigned bits, int lanes)
{
    return lanes <= 4 ? (unsigned)(UINT64_C(0x4332322132212110) >> (4 * bits)) & 15u
                      : (unsigned)__builtin_popcount(bits);
}

/* Double sums accumulate in the double lanes themselves. */
typedef vec_f64 vacc_f64;
#define vacc_zero_f64() vsplat_f64(0)
#define vacc_splat_f64(d) vsplat_f64(d)
#define vacc_from_f64(v) (v)
#define vacc_add_f64(a, b) ((a) + (b))
#define vacc_sub_f64(a, b) ((a) - (b))
#define vacc_mul_f64(a, b) ((a) * (b))
#define vacc_div_f64(a, b) ((a) / (b))
#define vacc_lane_f64(a, i) LANE((a), (i))
#define vacc_set_lane_f64(a, i, d) ((void)(LANE((a), (i)) = (d)))
#define vacc_narrow_f64(a) (a)
#define vacc_inverse_f64(a) (vsplat_f64(1.0) / (a))
#define vacc_keep_where_finite_f64(c, t) vkeep_where_finite_f64((c), (t))
#define vacc_sum_lanes_f64(a) vsum_lanes_f64(a)

/*
 * How many elements of `size` bytes come before the first one at or after p
 * where a vector of `lanes` of them is aligned to its own size: 0 to lanes - 1,
 * or 0 when p is not a multiple of `size` (NumPy allows that), where none ever
 * is.  A vector load or store at another address straddles two cache lines
 * once in a few accesses (each one, for AVX-512's 64 bytes), and such a split
 * access costs about two: NumPy aligns its arrays to 16 bytes only, so a pass
 * bound by loads or stores runs a partial vector first, where its result does
 * not depend on which lane an element meets (a max, an element-wise output).
 */
FS_ALWAYS_INLINE fs_index fs_elements_before_aligned(const void *p, size_t size, size_t lanes)
{
    const uintptr_t address = (uintptr_t)p, vector = size * lanes;
    if (address % size != 0)
        return 0;
    return (fs_index)((vector - address % vector) % vector / size);
}

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
 * Before a `for` over a vector's lanes that must be unrolled whole: the tiles'
 * transposes' loads and stores (fs_softmax_tmpl.h's gather_rows_of and
 * scatter_rows_of), whose array of vectors then stays in registers.  GCC's size
 * limits roll such a loop once its body grows: with 16-bit partial loads in
 * pieces (fs_load_first_bytes), the SSE2 tiles' loads went through a stack
 * array, and float16 logsumexp rows of 37-40 took 1.5 times the time (AVX2:
 * 1.05-1.08 on rows of 16-48).  Up to 8 lanes only: unrolled whole, AVX-512's
 * 16 took 1.48 times the time on float32 softmax rows of 33 (Zen 4).
 */
#if (defined(__GNUC__) || defined(__clang__)) && FS_VBYTES <= 32
#define FS_UNROLL_LANES _Pragma("GCC unroll 8")
#else
#define FS_UNROLL_LANES
#endif

/*
 * The first k (< W) lanes from p, the rest `fill`, and the matching store: a
 * tail never touches memory past its end.  Loads use masked moves (which do
 * not fault on the masked-off lanes).  Stores write 8, 4, 2 and 1 lanes as k's
 * bits say, because masked stores are slow on AMD's cores beside streaming
 * stores, where the partial stores at the ends of streamed rows are:
 *  - AVX2's VMASKMOVPS/PD, Zen 3: streamed float32 softmax of 16384x512, out
 *    16 bytes past a line, C harness over the kernel table, 0.88-0.92 ns per
 *    element with it, 0.60-0.79 without;
 *  - AVX-512's masked VMOVUPS, Zen 4: a C loop writing rows of 512 floats with
 *    streaming stores, the first and last partial line with one masked store
 *    each, took 4.2x the time of the same with these (5.1 ms against 1.2).
 * k is the same for every row of a call, so the branches predict.  Elsewhere
 * a short memcpy.
 */
/*
 * k < lanes, a power of two: FS_BELOW_LANES(k, V, E) is k itself, masked so
 * that GCC sees the bound (its range analysis otherwise warns of a memcpy of
 * 2^64 bytes where it cannot prove k >= 0).
 */
#define FS_BELOW_LANES(k, V, E) ((size_t)(k) & (sizeof(V) / sizeof(E) - 1))

/*
 * fs_load_first_bytes(&v, sizeof v, p, n): v (a vector of 2 to 32 bytes) gets
 * the n < sizeof v bytes at p, zeros after; fs_store_first_bytes(p, &v, sizeof v,
 * n) writes v's first n bytes to p.  Neither touches memory past p + n.  They
 * move 16, 8, 4, 2 and 1 bytes as n's bits say, the pieces joined in integer
 * registers: a memcpy of n bytes into a vector on the stack stalls the vector
 * load after it on its narrow stores (no store forwards to a wider load), and
 * AVX-512, Zen 4, float16 softmax rows of 37 took 1.7 times float32's time per
 * element (65: 1.6, 129: 1.6).  For the partial vectors that have no masked
 * move of their width: 16-bit storage and `where=` mask bytes.  The size is a
 * constant, so the branches on it fold; n is the same for every row of a call,
 * so the others predict.  The joins assume little-endian lanes: elsewhere, the
 * plain copy.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
typedef uint64_t fs_u64x2 __attribute__((vector_size(16)));
typedef uint64_t fs_u64x4 __attribute__((vector_size(32)));
/* n < 8 */
FS_ALWAYS_INLINE uint64_t fs_load_first_bytes8(const unsigned char *p, size_t n)
{
    uint64_t r = 0;
    if (n & 4) {
        uint32_t w;
        memcpy(&w, p, sizeof w);
        r = w;
    }
    if (n & 2) {
        uint16_t w;
        memcpy(&w, p + (n & 4), sizeof w);
        r |= (uint64_t)w << (8 * (n & 4));
    }
    if (n & 1)
        r |= (uint64_t)p[n & 6] << (8 * (n & 6));
    return r;
}
FS_ALWAYS_INLINE void fs_store_first_bytes8(unsigned char *p, uint64_t r, size_t n)
{
    if (n & 4) {
        const uint32_t w = (uint32_t)r;
        memcpy(p, &w, sizeof w);
        r >>= 32;
        p += 4;
    }
    if (n & 2) {
        const uint16_t w = (uint16_t)r;
        memcpy(p, &w, sizeof w);
        r >>= 16;
        p += 2;
    }
    if (n & 1)
        *p = (unsigned char)r;
}
/* n < 16 */
FS_ALWAYS_INLINE fs_u64x2 fs_load_first_bytes16(const unsigned char *p, size_t n)
{
    if (n & 8) {
        uint64_t lo;
        memcpy(&lo, p, sizeof lo);
        return (fs_u64x2){lo, fs_load_first_bytes8(p + 8, n & 7)};
    }
    return (fs_u64x2){fs_load_first_bytes8(p, n & 7), 0};
}
FS_ALWAYS_INLINE void fs_store_first_bytes16(unsigned char *p, fs_u64x2 v, size_t n)
{
    uint64_t rest = v[0];
    if (n & 8) {
        memcpy(p, &rest, sizeof rest);
        rest = v[1];
        p += 8;
    }
    fs_store_first_bytes8(p, rest, n & 7);
}
FS_ALWAYS_INLINE void fs_load_first_bytes(void *v, size_t size, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    if (size <= 8) {
        const uint64_t r = fs_load_first_bytes8(b, n);
        memcpy(v, &r, size);
    } else if (size == 16) {
        const fs_u64x2 r = fs_load_first_bytes16(b, n);
        memcpy(v, &r, size);
    } else { /* 32 */
        fs_u64x2 lo, hi = {0, 0};
        if (n & 16) {
            memcpy(&lo, b, sizeof lo);
            hi = fs_load_first_bytes16(b + 16, n & 15);
        } else
            lo = fs_load_first_bytes16(b, n & 15);
        const fs_u64x4 r = {lo[0], lo[1], hi[0], hi[1]};
        memcpy(v, &r, size);
    }
}
FS_ALWAYS_INLINE void fs_store_first_bytes(void *p, const void *v, size_t size, size_t n)
{
    unsigned char *b = (unsigned char *)p;
    if (size <= 8) {
        uint64_t r = 0;
        memcpy(&r, v, size);
        fs_store_first_bytes8(b, r, n);
    } else if (size == 16) {
        fs_u64x2 r;
        memcpy(&r, v, size);
        fs_store_first_bytes16(b, r, n);
    } else { /* 32 */
        fs_u64x4 r;
        memcpy(&r, v, size);
        fs_u64x2 rest = {r[0], r[1]};
        if (n & 16) {
            memcpy(b, &rest, sizeof rest);
            rest = (fs_u64x2){r[2], r[3]};
            b += 16;
        }
        fs_store_first_bytes16(b, rest, n & 15);
    }
}
#else
FS_ALWAYS_INLINE void fs_load_first_bytes(void *v, size_t size, const void *p, size_t n)
{
    memset(v, 0, size);
    memcpy(v, p, n & (size - 1));
}
FS_ALWAYS_INLINE void fs_store_first_bytes(void *p, const void *v, size_t size, size_t n)
{
    memcpy(p, v, n & (size - 1));
}
#endif
#if FS_X86_DISPATCH && FS_VBYTES >= 32
/* The first k < 8 floats (k < 4 doubles) of v, in stores of 4, 2 and 1 as k's bits say. */
static inline void fs_store_first_f32x8(float *p, __m256 v, fs_index k)
{
    __m128 part = _mm256_castps256_ps128(v);
    if (k & 4) {
        _mm_storeu_ps(p, part);
        part = _mm256_extractf128_ps(v, 1);
        p += 4;
    }
    if (k & 2) {
        _mm_storel_pi((__m64 *)p, part);
        part = _mm_movehl_ps(part, part);
        p += 2;
    }
    if (k & 1)
        _mm_store_ss(p, part);
}
static inline void fs_store_first_f64x4(double *p, __m256d v, fs_index k)
{
    __m128d part = _mm256_castpd256_pd128(v);
    if (k & 2) {
        _mm_storeu_pd(p, part);
        part = _mm256_extractf128_pd(v, 1);
        p += 2;
    }
    if (k & 1)
        _mm_store_sd(p, part);
}
#endif
#if FS_X86_DISPATCH && FS_VBYTES == 64
static inline __mmask16 fs_tail16(fs_index k) { return (__mmask16)((1u << k) - 1); }
FS_ALWAYS_INLINE vec_f32 vload_partial_f32(const float *p, fs_index k, float fill)
{
    return (vec_f32)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), fs_tail16(k), p);
}
static inline void vstore_partial_f32(float *p, vec_f32 v, fs_index k)
{
    __m256 half = _mm512_castps512_ps256((__m512)v);
    if (k & 8) {
        _mm256_storeu_ps(p, half);
        half = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1));
        p += 8;
    }
    fs_store_first_f32x8(p, half, k & 7);
}
FS_ALWAYS_INLINE vec_f64 vload_partial_f64(const double *p, fs_index k, double fill)
{
    return (vec_f64)_mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)fs_tail16(k), p);
}
static inline void vstore_partial_f64(double *p, vec_f64 v, fs_index k)
{
    __m256d half = _mm512_castpd512_pd256((__m512d)v);
    if (k & 4) {
        _mm256_storeu_pd(p, half);
        half = _mm512_extractf64x4_pd((__m512d)v, 1);
        p += 4;
    }
    fs_store_first_f64x4(p, half, k & 3);
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
FS_ALWAYS_INLINE vec_f32 vload_partial_f32(const float *p, fs_index k, float fill)
{
    const __m256i m = fs_tail_mask32(k);
    return (vec_f32)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
FS_ALWAYS_INLINE void vstore_partial_f32(float *p, vec_f32 v, fs_index k)
{
    fs_store_first_f32x8(p, (__m256)v, k);
}
FS_ALWAYS_INLINE vec_f64 vload_partial_f64(const double *p, fs_index k, double fill)
{
    const __m256i m = fs_tail_mask64(k);
    return (vec_f64)_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
FS_ALWAYS_INLINE void vstore_partial_f64(double *p, vec_f64 v, fs_index k)
{
    fs_store_first_f64x4(p, (__m256d)v, k);
}
#elif FS_VBYTES == 16
/*
 * SSE2's and NEON's 4 floats or 2 doubles: the first k lanes an element at a
 * time, moved into or out of the vector in registers.  A memcpy of k elements
 * went through the stack, and the vector load after its scalar stores waits
 * for them (no store forwards to a wider load): SSE2, Zen 4, one thread,
 * float32 softmax rows of 65 elements took 1.50 times the time of rows of 64
 * (1.99 against 1.33 ns an element), of 33 1.9 times that of 36.
 */
#define FS_DEFINE_PARTIAL_OPS(V, REAL, SFX)                                        \
    FS_ALWAYS_INLINE V vload_partial_##SFX(const REAL *p, fs_index k, REAL fill)   \
    {                                                                              \
        V v = vsplat_##SFX(fill);                                                  \
        for (fs_index i = 0; i < (fs_index)(sizeof(V) / sizeof(REAL)) - 1; i++)    \
            if (i < k)                                                             \
                v[i] = sload_##SFX(p + i);                                         \
        return v;                                                                  \
    }                                                                              \
    FS_ALWAYS_INLINE void vstore_partial_##SFX(REAL *p, V v, fs_index k)           \
    {                                                                              \
        for (fs_index i = 0; i < (fs_index)(sizeof(V) / sizeof(REAL)) - 1; i++)    \
            if (i < k)                                                             \
                sstore_##SFX(p + i, v[i]);                                         \
    }
#else
#define FS_DEFINE_PARTIAL_OPS(V, REAL, SFX)                                        \
    FS_ALWAYS_INLINE V vload_partial_##SFX(const REAL *p, fs_index k, REAL fill)   \
    {                                                                              \
        V v = vsplat_##SFX(fill);                                                  \
        memcpy(&v, p, FS_BELOW_LANES(k, V, REAL) * sizeof(REAL));                  \
        return v;                                                                  \
    }                                                                              \
    FS_ALWAYS_INLINE void vstore_partial_##SFX(REAL *p, V v, fs_index k)           \
    {                                                                              \
        memcpy(p, &v, FS_BELOW_LANES(k, V, REAL) * sizeof(REAL));                  \
    }
#endif

FS_DEFINE_MEMORY_OPS(vec_f32, float, f32)
FS_DEFINE_MEMORY_OPS(vec_f64, double, f64)

/*
 * Streaming (non-temporal) stores, for a last pass whose output is larger than
 * the last-level cache (fs_softmax_tmpl.h): an ordinary store first reads the
 * line it writes from memory, and then evicts something to keep it; a
 * streaming store does neither.  vstream_f32(p, v) needs p aligned to the
 * vector.  x86 orders them weakly: vstream_fence() makes them visible before
 * any later store, so a kernel that streamed calls it before it returns (the
 * thread that waits for its results then sees them).  FS_CAN_STREAM is 0
 * where there are none (aarch64's STNP is only a hint, and the plain-C build):
 * there nothing streams, and the callers keep their ordinary passes.
 */
#if (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 64
#define FS_CAN_STREAM 1
#define vstream_f32(p, v) _mm512_stream_ps((p), (__m512)(v))
#define vstream_f64(p, v) _mm512_stream_pd((p), (__m512d)(v))
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 32
#define FS_CAN_STREAM 1
#define vstream_f32(p, v) _mm256_stream_ps((p), (__m256)(v))
#define vstream_f64(p, v) _mm256_stream_pd((p), (__m256d)(v))
#elif (defined(__x86_64__) || defined(_M_X64)) && FS_VBYTES == 16
#define FS_CAN_STREAM 1
#define vstream_f32(p, v) _mm_stream_ps((p), (__m128)(v))
#define vstream_f64(p, v) _mm_stream_pd((p), (__m128d)(v))
#else
#define FS_CAN_STREAM 0
#define vstream_f32(p, v) vstore_f32((p), (v))
#define vstream_f64(p, v) vstore_f64((p), (v))
#endif
#if FS_CAN_STREAM
#define vstream_fence() _mm_sfence()
#else
#define vstream_fence() ((void)0)
#endif

/* One class label, unaligned as above (an int64 array at an odd address is as legal). */
static inline int64_t sload_i64(const int64_t *p)
{
    int64_t s;
    memcpy(&s, p, sizeof s);
    return s;
}
#ifdef FS_DEFINE_PARTIAL_OPS
FS_DEFINE_PARTIAL_OPS(vec_f32, float, f32)
FS_DEFINE_PARTIAL_OPS(vec_f64, double, f64)
#endif

/* Mask lanes from W mask bytes; the partial form reads k bytes and clears the rest. */
#define FS_DEFINE_MASK_OPS(VB, VU, WIDEN, SFX)                                      \
    static inline VU vmask_##SFX(const uint8_t *p)                                 \
    {                                                                              \
        VB b;                                                                      \
        memcpy(&b, p, sizeof b);                                                   \
        return WIDEN(b);                                                           \
    }                                                                              \
    FS_ALWAYS_INLINE VU vmask_partial_##SFX(const uint8_t *p, fs_index k)          \
    {                                                                              \
        VB b;                                                                      \
        fs_load_first_bytes(&b, sizeof b, p, (size_t)k & (sizeof b - 1));          \
        return WIDEN(b);                                                           \
    }

FS_DEFINE_MASK_OPS(vmask_bytes_f32, vbits_f32, vwiden_mask_f32, f32)
FS_DEFINE_MASK_OPS(vmask_bytes_f64, vbits_f64, vwiden_mask_f64, f64)

/* Whether any lane of v is greater than the scalar c (a NaN lane is not): a compare and vfirst. */
#define vany_greater_f32(v, c) (vfirst_f32((vbits_f32)((v) > vsplat_f32(c))) >= 0)
#define vany_greater_f64(v, c) (vfirst_f64((vbits_f64)((v) > vsplat_f64(c))) >= 0)

#endif /* FS_VECTOR_H */
