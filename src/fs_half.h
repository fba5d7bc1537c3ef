/*
 * 16-bit float storage, read as float: bfloat16 and IEEE float16 (binary16).
 *
 * Include after fs_vector.h.  Both are stored as uint16_t bit patterns (C has
 * no portable 16-bit float type) and widen exactly to float, so a kernel that
 * loads them computes exactly what it computes on the same values as float32:
 *   bfloat16  the top half of a float: bits << 16 (NaN stays NaN, bit for bit)
 *   float16   F16C's VCVTPH2PS where the instruction set has it (AVX2 and
 *             AVX-512 builds), elsewhere the integer steps of fs_f16_bits_to_f32,
 *             which give the same float for every one of the 65536 patterns
 *             (tools/sample_isa_check.c compares the tables; NaNs come out quiet
 *             in both).  Subnormal halves go through an int-to-float conversion,
 *             not a float multiply, so a process running with denormals-are-zero
 *             still reads them exactly.
 * The names follow fs_vector.h: vload/vload_partial/sload_<type>, FS_LANES_<type>.
 * There are no stores: the kernels' outputs are float (fs_type_bindings.h).
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

#define FS_LANES_bf16 FS_LANES_f32
#define FS_LANES_f16 FS_LANES_f32

#if FS_VBYTES > 0

/* LANES_f32 16-bit patterns: half a vector. */
typedef uint16_t vhalf_bits __attribute__((vector_size(FS_VBYTES / 2)));

static inline vhalf_bits fs_load_half_bits(const uint16_t *p)
{
    vhalf_bits h;
    memcpy(&h, p, sizeof h);
    return h;
}

/* The first k (< lanes) patterns from p, zero after: never reads past p + k. */
static inline vhalf_bits fs_load_half_bits_partial(const uint16_t *p, fs_index k)
{
    vhalf_bits h;
    memset(&h, 0, sizeof h);
    memcpy(&h, p, FS_BELOW_LANES(k, vhalf_bits, uint16_t) * sizeof(uint16_t));
    return h;
}

/* Lanes at or past k replaced by `fill` (the partial loads' padding). */
static inline vec_f32 fs_fill_from(vec_f32 v, fs_index k, float fill)
{
    vbits_f32 lane;
    for (int i = 0; i < FS_LANES_f32; i++)
        lane[i] = (uint32_t)i;
    return vselect_f32((vbits_f32)(lane < (uint32_t)k), v, vsplat_f32(fill));
}

static inline vec_f32 fs_widen_bf16(vhalf_bits h)
{
    return vfrom_bits_f32(__builtin_convertvector(h, vbits_f32) << 16);
}

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
#else
#define fs_widen_f16(h) fs_widen_f16_steps(h)
#endif

static inline vec_f32 vload_bf16(const uint16_t *p) { return fs_widen_bf16(fs_load_half_bits(p)); }
static inline vec_f32 vload_f16(const uint16_t *p) { return fs_widen_f16(fs_load_half_bits(p)); }
static inline vec_f32 vload_partial_bf16(const uint16_t *p, fs_index k, float fill)
{
    return fs_fill_from(fs_widen_bf16(fs_load_half_bits_partial(p, k)), k, fill);
}
static inline vec_f32 vload_partial_f16(const uint16_t *p, fs_index k, float fill)
{
    return fs_fill_from(fs_widen_f16(fs_load_half_bits_partial(p, k)), k, fill);
}

#else /* plain C: one lane */

#define vload_bf16(p) sload_bf16(p)
#define vload_f16(p) sload_f16(p)
#define vload_partial_bf16(p, k, fill) ((k) > 0 ? sload_bf16(p) : (fill))
#define vload_partial_f16(p, k, fill) ((k) > 0 ? sload_f16(p) : (fill))

#endif /* FS_VBYTES */

#endif /* FS_HALF_H */
