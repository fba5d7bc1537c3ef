/*
 * 16-bit float storage, read as float: bfloat16 and IEEE float16 (binary16).
 *
 * Include after fs_vector.h.  Both are stored as uint16_t bit patterns (C has
 * no portable 16-bit float type) and widen exactly to float, so a kernel that
 * loads them computes exactly what it computes on the same values as float32:
 *   bfloat16  the top half of a float: bits << 16 (NaN stays NaN, bit for bit)
 *   float16   F16C's VCVTPH2PS where the instruction set has it (AVX2 and
 *             AVX-512 builds), NEON's FCVTL on aarch64, elsewhere the integer steps of
 *             fs_f16_bits_to_f32_bits, which give the same float for every one
 *             of the 65536 patterns (tests/test_half.py and tools/isa_check.c
 *             check the tables; NaNs come out quiet in all three).  The steps take
 *             subnormal halves through an int-to-float conversion, not a float
 *             multiply, so a process running with denormals-are-zero still reads
 *             them exactly; FCVTL runs in the kernels' FPCR, whose FZ16 is clear.
 * Stores narrow a float to the nearest 16-bit value, ties to even (F16C's
 * VCVTPS2PH for float16 where the instruction set has it, NEON's FCVTN on aarch64,
 * the same integer rules elsewhere), for the kernels whose outputs are 16-bit
 * (fs_type_*_out.h).
 * The names follow fs_vector.h: vload/vstore/vload_partial/vstore_partial/
 * sload/sstore_<type>, FS_LANES_<type>; and vstore_pair_<type>, two vectors' worth.
 */
#ifndef FS_HALF_H
#define FS_HALF_H

#include <stdint.h>
#include <string.h>

typedef uint16_t storage_bf16;
typedef uint16_t storage_f16;

/* A float16's bits as a float's bits: one lane of the integer steps, in scalar code. */
static inline uint32_t fs_f16_bits_to_f32_bits(uint32_t h)
{
    const uint32_t sign = (h & 0x8000u) << 16, magnitude = h & 0x7FFFu;
    if (magnitude >= 0x7C00u) /* inf, or NaN made quiet */
        return sign | 0x7F800000u | (magnitude << 13) | (magnitude > 0x7C00u ? 0x00400000u : 0u);
    if (magnitude >= 0x0400u) /* normal: rebias the exponent from 15 to 127 */
        return sign | ((magnitude << 13) + (112u << 23));
    {   /* zero or subnormal: magnitude * 2^-24, both factors exact floats */
        const float v = (float)magnitude * 0x1p-24f;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        return sign | bits;
    }
}

static inline float fs_f16_to_f32(uint16_t h)
{
    const uint32_t bits = fs_f16_bits_to_f32_bits(h);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline float fs_bf16_to_f32(uint16_t h)
{
    const uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline float sload_bf16(const uint16_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return fs_bf16_to_f32(h);
}

static inline float sload_f16(const uint16_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return fs_f16_to_f32(h);
}

/*
 * Narrowing, for 16-bit outputs: round to nearest, ties to even, as F16C's
 * VCVTPS2PH does (and the vector forms below).  Overflow gives inf; NaN stays
 * NaN, made quiet, with the top bits of its payload.
 */
static inline uint16_t fs_f32_bits_to_bf16(uint32_t u)
{
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) /* NaN */
        return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* float16, from one lane's bits: NaN, overflow to inf, subnormal or zero, normal. */
static inline uint16_t fs_f32_bits_to_f16(uint32_t u)
{
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    uint32_t h;
    if (a > 0x7F800000u) /* NaN */
        h = 0x7E00u | ((a >> 13) & 0x03FFu);
    else if (a >= 0x47800000u) /* 2^16 and up, inf included: inf */
        h = 0x7C00u;
    else if (a < 0x38800000u) { /* below 2^-14: subnormal or zero, rounded by a float add */
        float v;
        memcpy(&v, &a, sizeof v);
        v += 0.5f; /* 0.5 = 2^-1: one float16 subnormal step (2^-24) is its ulp */
        memcpy(&h, &v, sizeof h);
        h -= 0x3F000000u;
    } else /* normal: rebias the exponent, round the 13 dropped bits to even */
        h = (a + ((uint32_t)(15 - 127) << 23) + 0x0FFFu + ((a >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | h);
}

static inline void sstore_bf16(uint16_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    const uint16_t h = fs_f32_bits_to_bf16(u);
    memcpy(p, &h, sizeof h);
}

static inline void sstore_f16(uint16_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    const uint16_t h = fs_f32_bits_to_f16(u);
    memcpy(p, &h, sizeof h);
}

#define FS_LANES_bf16 FS_LANES_f32
#define FS_LANES_f16 FS_LANES_f32

#if FS_VBYTES > 0

/*
 * aarch64's NEON converts float16 in one instruction each way, FCVTL and FCVTN (base
 * Armv8, not the FP16 arithmetic extension), where the integer steps below take a
 * dozen or two: in the kernels' FPCR (fs_fp_env.h: round to nearest, no flush of
 * either width (FZ, FZ16), IEEE half (AHP), NaNs propagated made quiet (DN)) they give
 * the steps' bits, as F16C does on x86.  Through inline asm: arm_neon.h's names clash
 * with fs_vector.h's, and GCC 12 splits the generic __builtin_convertvector to
 * _Float16 into four scalar conversions.
 */
#if defined(__aarch64__) && FS_VBYTES == 16 && (defined(__GNUC__) || defined(__clang__))
#define FS_F16_FCVT 1
#else
#define FS_F16_FCVT 0
#endif

/* LANES_f32 16-bit patterns: half a vector. */
typedef uint16_t vhalf_bits __attribute__((vector_size(FS_VBYTES / 2)));

static inline vhalf_bits fs_load_half_bits(const uint16_t *p)
{
    vhalf_bits h;
    memcpy(&h, p, sizeof h);
    return h;
}

/*
 * The first k (< lanes) patterns from p, zero after: never reads past p + k.
 * AVX512BW's masked 16-bit move where there is one, else in pieces
 * (fs_load_first_bytes says why not a memcpy).
 */
FS_ALWAYS_INLINE vhalf_bits fs_load_half_bits_partial(const uint16_t *p, fs_index k)
{
#if FS_X86_DISPATCH && FS_VBYTES == 64
    return (vhalf_bits)_mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)fs_tail16(k), p));
#else
    vhalf_bits h;
    fs_load_first_bytes(&h, sizeof h, p, FS_BELOW_LANES(k, vhalf_bits, uint16_t) * sizeof(uint16_t));
    return h;
#endif
}
/* The first k (< lanes) patterns of h to p: in pieces, as the float stores (fs_vector.h). */
FS_ALWAYS_INLINE void fs_store_half_bits_partial(uint16_t *p, vhalf_bits h, fs_index k)
{
    fs_store_first_bytes(p, &h, sizeof h, FS_BELOW_LANES(k, vhalf_bits, uint16_t) * sizeof(uint16_t));
}

/*
 * Lanes at or past k replaced by `fill` (the partial loads' padding).  A signed
 * compare (k < lanes): AVX2 has no unsigned one, and GCC emulates it with two
 * subtractions.
 */
FS_ALWAYS_INLINE vec_f32 fs_fill_from(vec_f32 v, fs_index k, float fill)
{
    typedef int32_t vlane_f32 __attribute__((vector_size(FS_VBYTES)));
    vlane_f32 lane;
    for (int i = 0; i < FS_LANES_f32; i++)
        lane[i] = i;
    return vselect_f32((vbits_f32)(lane < (int32_t)k), v, vsplat_f32(fill));
}

/* GCC splits the generic widening of 16 lanes into two halves: one VPMOVZXWD instead. */
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define fs_widen_bf16(h) ((vec_f32)_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)(h)), 16))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define fs_widen_bf16(h) ((vec_f32)_mm256_slli_epi32(_mm256_cvtepu16_epi32((__m128i)(h)), 16))
#else
static inline vec_f32 fs_widen_bf16(vhalf_bits h)
{
    return vfrom_bits_f32(__builtin_convertvector(h, vbits_f32) << 16);
}
#endif

/* The integer steps of fs_f16_bits_to_f32_bits, lane-wise (every lane takes all three forms). */
static inline vec_f32 fs_widen_f16_steps(vhalf_bits h)
{
    const vbits_f32 bits = __builtin_convertvector(h, vbits_f32);
    const vbits_f32 sign = (bits & 0x8000u) << 16, magnitude = bits & 0x7FFFu;
    const vbits_f32 special = (vbits_f32)(magnitude >= 0x7C00u);
    const vbits_f32 normal = (vbits_f32)(magnitude >= 0x0400u) & ~special;
    const vbits_f32 quiet = (vbits_f32)(magnitude > 0x7C00u) & 0x00400000u;
    typedef int32_t vint_f32 __attribute__((vector_size(FS_VBYTES)));
    const vec_f32 small = __builtin_convertvector((vint_f32)magnitude, vec_f32) * 0x1p-24f;
    const vbits_f32 wide = (special & (0x7F800000u | (magnitude << 13) | quiet)) |
                           (normal & ((magnitude << 13) + (112u << 23))) |
                           (~special & ~normal & vas_bits_f32(small));
    return vfrom_bits_f32(sign | wide);
}

#if FS_X86_DISPATCH && FS_VBYTES == 64
#define fs_widen_f16(h) ((vec_f32)_mm512_cvtph_ps((__m256i)(h)))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define fs_widen_f16(h) ((vec_f32)_mm256_cvtph_ps((__m128i)(h)))
#elif FS_F16_FCVT
static inline vec_f32 fs_widen_f16_fcvtl(vhalf_bits h)
{
    vec_f32 v;
    __asm__("fcvtl %0.4s, %1.4h" : "=w"(v) : "w"(h));
    return v;
}
#define fs_widen_f16(h) fs_widen_f16_fcvtl(h)
#else
#define fs_widen_f16(h) fs_widen_f16_steps(h)
#endif

/* The low 16 bits of each 32-bit lane, packed (values known to fit). */
#if FS_X86_DISPATCH && FS_VBYTES == 64
#define fs_pack_half_bits(b) ((vhalf_bits)_mm512_cvtepi32_epi16((__m512i)(b)))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
/* PACKUSDW packs within 128-bit halves: the permute puts the two halves' results together. */
#define fs_pack_half_bits(b)                                                                  \
    ((vhalf_bits)_mm256_castsi256_si128(_mm256_permute4x64_epi64(                             \
        _mm256_packus_epi32((__m256i)(b), (__m256i)(b)), 0xD8)))
#else
#define fs_pack_half_bits(b) __builtin_convertvector((b), vhalf_bits)
#endif

/*
 * fs_f32_bits_to_bf16, lane-wise, left in each lane's top 16 bits: u + 0x7FFF + the
 * lowest kept bit (ties to even), or a NaN's u with its quiet bit set.  NaN is found by
 * a float compare (v != v), one instruction, where an integer compare of |u| against
 * inf's bits takes two, or four on AVX2, which has no unsigned one.  AVX-512 keeps the
 * compare in a mask register and selects with a masked OR: GCC's generic select turns
 * the mask into a vector of -1s first.  Every lane's bits are the scalar rule's.
 */
static inline vbits_f32 fs_bf16_in_top_bits(vec_f32 v)
{
    const vbits_f32 u = vas_bits_f32(v);
    const vbits_f32 rounded = u + 0x7FFFu + ((u >> 16) & 1u);
#if FS_X86_DISPATCH && FS_VBYTES == 64
    const __mmask16 nan = _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q);
    return (vbits_f32)_mm512_mask_or_epi32((__m512i)rounded, nan, (__m512i)u,
                                           _mm512_set1_epi32(0x00400000));
#else
    const vbits_f32 nan = (vbits_f32)(v != v);
    return (nan & (u | 0x00400000u)) | (~nan & rounded);
#endif
}

static inline vhalf_bits fs_narrow_bf16(vec_f32 v) { return fs_pack_half_bits(fs_bf16_in_top_bits(v) >> 16); }

/* fs_f32_bits_to_f16, lane-wise: every lane computes all four forms and keeps its own. */
static inline vhalf_bits fs_narrow_f16_steps(vec_f32 v)
{
    const vbits_f32 u = vas_bits_f32(v);
    const vbits_f32 sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    const vbits_f32 nan = (vbits_f32)(a > 0x7F800000u);
    const vbits_f32 huge = (vbits_f32)(a >= 0x47800000u) & ~nan;
    const vbits_f32 tiny = (vbits_f32)(a < 0x38800000u);
    const vbits_f32 normal = ~nan & ~huge & ~tiny;
    const vbits_f32 small = vas_bits_f32(vfrom_bits_f32(a & tiny) + 0.5f) - 0x3F000000u;
    const vbits_f32 h = (nan & (0x7E00u | ((a >> 13) & 0x03FFu))) | (huge & 0x7C00u) |
                        (tiny & small) |
                        (normal & ((a + ((uint32_t)(15 - 127) << 23) + 0x0FFFu +
                                    ((a >> 13) & 1u)) >> 13));
    return fs_pack_half_bits(sign | h);
}

#if FS_X86_DISPATCH && FS_VBYTES == 64
#define fs_narrow_f16(v) ((vhalf_bits)_mm512_cvtps_ph((__m512)(v), _MM_FROUND_TO_NEAREST_INT))
#elif FS_X86_DISPATCH && FS_VBYTES == 32
#define fs_narrow_f16(v) ((vhalf_bits)_mm256_cvtps_ph((__m256)(v), _MM_FROUND_TO_NEAREST_INT))
#elif FS_F16_FCVT
static inline vhalf_bits fs_narrow_f16_fcvtn(vec_f32 v)
{
    vhalf_bits h;
    __asm__("fcvtn %0.4h, %1.4s" : "=w"(h) : "w"(v));
    return h;
}
#define fs_narrow_f16(v) fs_narrow_f16_fcvtn(v)
#else
#define fs_narrow_f16(v) fs_narrow_f16_steps(v)
#endif

static inline void vstore_bf16(uint16_t *p, vec_f32 v)
{
    const vhalf_bits h = fs_narrow_bf16(v);
    memcpy(p, &h, sizeof h);
}
static inline void vstore_f16(uint16_t *p, vec_f32 v)
{
    const vhalf_bits h = fs_narrow_f16(v);
    memcpy(p, &h, sizeof h);
}
FS_ALWAYS_INLINE void vstore_partial_bf16(uint16_t *p, vec_f32 v, fs_index k)
{
    fs_store_half_bits_partial(p, fs_narrow_bf16(v), k);
}
FS_ALWAYS_INLINE void vstore_partial_f16(uint16_t *p, vec_f32 v, fs_index k)
{
    fs_store_half_bits_partial(p, fs_narrow_f16(v), k);
}

/*
 * Two vectors narrowed and stored together, 2 * FS_LANES_f32 values from p: for a pass
 * that only narrows (narrow_span).  Packing two vectors' bfloat16s takes one shuffle:
 * AVX-512's VPERMT2W picks the top halves of both where each alone takes a shift and a
 * VPMOVDW, AVX2's PACKUSDW of both needs one VPERMQ where each alone needs its own.
 * (Zen 5, a C loop over 64 K floats in L1: AVX-512 0.057 ns an element against 0.070
 * one vector at a time.)  Elsewhere, and for float16, one vector after the other.
 */
#if FS_X86_DISPATCH && FS_VBYTES == 64
static inline void vstore_pair_bf16(uint16_t *p, vec_f32 a, vec_f32 b)
{
    /* result word i < 16: a's word 2i + 1, lane i's top half; word 16 + i: b's */
    const __m512i top_halves = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, /* b's (index bit 5) */
        31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i h = _mm512_permutex2var_epi16((__m512i)fs_bf16_in_top_bits(a), top_halves,
                                                (__m512i)fs_bf16_in_top_bits(b));
    memcpy(p, &h, sizeof h);
}
#elif FS_X86_DISPATCH && FS_VBYTES == 32
static inline void vstore_pair_bf16(uint16_t *p, vec_f32 a, vec_f32 b)
{
    /* PACKUSDW packs within 128-bit halves (a 0-3, b 0-3, a 4-7, b 4-7): 0xD8 orders them */
    const __m256i h = _mm256_permute4x64_epi64(
        _mm256_packus_epi32((__m256i)(fs_bf16_in_top_bits(a) >> 16),
                            (__m256i)(fs_bf16_in_top_bits(b) >> 16)),
        0xD8);
    memcpy(p, &h, sizeof h);
}
#else
static inline void vstore_pair_bf16(uint16_t *p, vec_f32 a, vec_f32 b)
{
    vstore_bf16(p, a);
    vstore_bf16(p + FS_LANES_f32, b);
}
#endif
static inline void vstore_pair_f16(uint16_t *p, vec_f32 a, vec_f32 b)
{
    vstore_f16(p, a);
    vstore_f16(p + FS_LANES_f32, b);
}

static inline vec_f32 vload_bf16(const uint16_t *p) { return fs_widen_bf16(fs_load_half_bits(p)); }
static inline vec_f32 vload_f16(const uint16_t *p) { return fs_widen_f16(fs_load_half_bits(p)); }
FS_ALWAYS_INLINE vec_f32 vload_partial_bf16(const uint16_t *p, fs_index k, float fill)
{
    return fs_fill_from(fs_widen_bf16(fs_load_half_bits_partial(p, k)), k, fill);
}
FS_ALWAYS_INLINE vec_f32 vload_partial_f16(const uint16_t *p, fs_index k, float fill)
{
    return fs_fill_from(fs_widen_f16(fs_load_half_bits_partial(p, k)), k, fill);
}

#else /* plain C: one lane */

#define vload_bf16(p) sload_bf16(p)
#define vload_f16(p) sload_f16(p)
#define vload_partial_bf16(p, k, fill) ((k) > 0 ? sload_bf16(p) : (fill))
#define vload_partial_f16(p, k, fill) ((k) > 0 ? sload_f16(p) : (fill))
#define vstore_bf16(p, v) sstore_bf16((p), (v))
#define vstore_f16(p, v) sstore_f16((p), (v))
#define vstore_partial_bf16(p, v, k) ((k) > 0 ? sstore_bf16((p), (v)) : (void)0)
#define vstore_partial_f16(p, v, k) ((k) > 0 ? sstore_f16((p), (v)) : (void)0)
#define vstore_pair_bf16(p, a, b) (sstore_bf16((p), (a)), sstore_bf16((p) + 1, (b)))
#define vstore_pair_f16(p, a, b) (sstore_f16((p), (a)), sstore_f16((p) + 1, (b)))

#endif /* FS_VBYTES */

#endif /* FS_HALF_H */
