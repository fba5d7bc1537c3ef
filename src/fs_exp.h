/*
 * Vectorized exp: vexp_f32/f64 for the kernels' arguments z = (x - max) * scale
 * <= 0, and vexp_any_f32/f64 for any z (the backward pass, the accuracy tests).
 *
 * exp(z) = 2^n * exp(r), n = round(z / ln2), r = z - n*ln2 in [-ln2/2, ln2/2]:
 *
 *  1. n by magic-number rounding.  Adding MAGIC = 1.5*2^23 (float) to
 *     z*log2(e) leaves no bits for a fraction, so the sum's low mantissa bits
 *     hold round-to-nearest(z*log2 e) as an integer.  MAGIC also carries the
 *     exponent bias (+127), which step 3 needs.  Subtracting MAGIC gives n as a
 *     float.  Valid while |z*log2 e| < 2^22: n is in [-127, 128] wherever
 *     the result is used (step 5).
 *  2. Cody-Waite reduction r = (z - n*LN2_HI) - n*LN2_LO.  LN2_HI has 16 (float)
 *     or 40 (double) significant bits, so n*LN2_HI is exact and z - n*LN2_HI is
 *     exact by Sterbenz, with or without a fused multiply-add.
 *  3. p * 2^(n-k), 2^(n-k) straight from bits: shifting the magic sum's
 *     integer bits, less k, left by the mantissa width puts n - k + bias in
 *     the exponent field (the sum's own exponent bits fall off the top), exact
 *     for n - k in [-126, 127], and +0 for n - k = -127.  k is 0 in vexp_f32,
 *     whose z <= 0 keeps n <= 0.  Scaling by a power of two is exact for every
 *     normal result.
 *  4. exp(r) ~ p = 1 + r*q(r), q a degree-5 (float) / degree-10 (double)
 *     polynomial fitted for minimax relative error by tools/exp_coefficients.py
 *     (2.0e-9 and 3.5e-18 before rounding), evaluated by Horner's rule, its
 *     last step adding the dominant term 1 (one rounding with FMA).
 *  5. Results under the smallest normal number.  z is first raised to
 *     Z_FLOOR = -88 (-709), where n is -127 (-1023): 2^n built from bits is
 *     then +0 and so is the product, for every z below Z_FLOOR, -inf included.
 *     That one max replaces a compare and a mask after step 3, which on AVX2
 *     made the sum of exp 5-8% faster (Zen 3; the compare takes an FMA port
 *     there).  The arguments between -87.68 and -87.34 (-708.74 and -708.40),
 *     where n is -126 (-1022), then get the subnormal product 2^n * p rounded,
 *     not +0: within 1.2e-38 (2.3e-308) of exp(z), and never negative.  A NaN
 *     z is kept by the max (vmax's second argument) and propagates through 1-4.
 *
 * This polynomial serves float on SSE2, NEON and plain C, and double there
 * and on AVX2.  (AVX-512 had applied 2^n and the flush in one VSCALEF; its
 * float and double now take the tables below.)
 *
 * Float with AVX2 or AVX-512 (FS_HAS_LOOKUP) takes a table of N = 16
 * (AVX-512) or 8 (AVX2) powers instead, one vector register's worth, for a
 * polynomial of degree 3 or 4 in place of 6: the kernels' softmax and sums
 * are bound by the exp's multiply-adds, and this exp has 7 (8) where the
 * other has 10 (counting the scaling).  (A 16-entry table with AVX2 took two
 * permutes, a blend and one more register in loops that already spilled:
 * slower than 8 entries on most shapes, log_softmax 3-7% slower than the
 * polynomial.)  exp(z) = 2^(m/N) * exp(r), m = round(N z / ln2),
 * r = z - m*ln2/N in [-ln2/2N, ln2/2N]:
 *
 *  1. m by the magic number 1.5*2^23 as above, without the bias.
 *  2. Cody-Waite with ln2 = LN2_HI + LN2_LO, LN2_HI of 12 significant bits,
 *     both divided by N (exactly): |m| <= 2048 keeps m*LN2_HI/N exact.
 *  3. 2^(m/N) = 2^(j/N) * 2^e, m = Ne + j, j = m mod N: the magic sum's low
 *     bits pick the table's entry (vlookup), and its bits above them, shifted
 *     into the exponent field, add e to the entry's exponent, wrapping modulo
 *     2^32 as two's complement does.  One shift does both: the sum's bits
 *     shifted left by 23 - log2(N) are e << 23 plus j << (23 - log2 N), so
 *     each entry holds the bits of 2^(j/N) rounded to float, less that.  Exact
 *     while the exponent stays in range: s = 2^(m/N) is exact but for the
 *     entry's rounding (at most 0.45 ULP, j = 3 of 16).
 *  4. exp(r) - 1 ~ u = r + r^2 P(r), P of degree 1 (N = 16) or 2 (N = 8),
 *     fitted by tools/exp_coefficients.py (1.7e-9 and 1.7e-10 relative error
 *     before rounding; |u| < 0.045, so its own rounding is at most 0.03 ULP
 *     of the result), and exp(z) = s + s*u, rounded once by a multiply-add.
 *  5. That multiply-add's result is +0 where z < ln(FLT_MIN) = -87.34
 *     (vmuladd_flush: zero-masked with AVX-512, a compare and an and-not with
 *     AVX2, which measured as fast as a floor for z).  No floor is needed:
 *     whatever steps 1-4 make of a lower z, -inf included, is masked.  So
 *     every result under the smallest normal number is +0 with AVX2 and
 *     AVX-512 alike.  (s itself is no help there: it is not a float below
 *     2^-126, where e = -127 leaves the exponent field 0.)  A NaN z keeps its
 *     lane and propagates through r.
 *
 * Double with AVX-512 takes a table too: N = 8 doubles fill one register (AVX2
 * has no variable permute of 64-bit lanes, and keeps the polynomial).  Steps
 * 1-5 as for float, with the magic number 1.5*2^52, LN2_HI of 40 bits (|m| <=
 * 8192), the shift 49 and P of degree 5 (2.9e-18 before rounding).  A double
 * entry's own rounding (up to 0.5 ULP) would cost as much as the rest of the
 * error, so a second table holds each entry's relative rounding error c_j, and
 * the result is s + s*(u + c_j), rounded once: 12 multiply-adds and an add in
 * place of 15.
 *
 * vexp_any: above z = 127.5*ln2 = 88.38 (1023.5*ln2 = 709.44), n reaches 128
 * (1024) and 2^n is not a float: built as one power from bits it is inf, and
 * so is 2^n * p, although exp(z) is finite up to ln(FLT_MAX) = 88.72284
 * (709.78).  So, as SLEEF splits its scaling into two
 * factors, vexp_any takes k = 1 where z > 0 and multiplies steps 1-5's
 * exp(z)/2 by 2, which is exact, and overflows to +inf by itself when the
 * rounded result exceeds FLT_MAX.  (The table's step 3 takes N*k from m's
 * magic sum: e - k for the same j.)  Where z <= 0, k = 0 and the factor is 1:
 * the same bits as vexp.  z above the largest float with a finite exp
 * (88.72283, 709.782712893384), where n would outgrow step 3, gives +inf.
 * A vector with no lane above 88.0 (709.0) skips all this for vexp itself, so
 * log-probabilities (the backward pass's usual y <= 0) pay one test and a
 * predictable branch.  The forward kernels call vexp and pay nothing.
 *
 * Accuracy for results in the normal range, checked for every float from
 * -87.34 to 88.72 against libm in double and for 6*10^7 random doubles of
 * [-708, 709.78] against long double: float with the table at most 0.9989
 * ULP (AVX-512, N = 16) and 0.8895 (AVX2, N = 8); double with the table
 * (AVX-512) 0.61 ULP (0.6035 measured), with the polynomial and FMA (AVX2)
 * 0.94 ULP (0.9326 measured); without FMA (SSE2 baseline, plain C)
 * 1.35 ULP for float and 1.22 for double (1.2129).  The float polynomial with
 * FMA, which the table replaced there, was within 1.06; double's with
 * AVX-512 within 0.94.  tests/test_exp.py
 * sweeps every 97th float of [-104, 88.72], 10^6 doubles of [-708, 0] and of
 * [0, 709.78], and the edges above, and holds every build to 1.5 ULP;
 * tools/emu_harness.c holds each ISA to its own figure.
 */
#ifndef FS_EXP_H
#define FS_EXP_H

#if FS_HAS_LOOKUP
/*
 * The table: bits of 2^(j/N) rounded to float, less j << (23 - log2 N) (step
 * 3 of the table's exp), and P's coefficients, by tools/exp_coefficients.py.
 */
#define FS_EXP_TABLE_SIZE FS_LANES_f32
#if FS_EXP_TABLE_SIZE == 16
#define FS_EXP_TABLE_SHIFT 19
static const uint32_t fs_exp2_table[16] __attribute__((aligned(64))) = {
    0x3f800000, 0x3f7daac3, 0x3f7b95c2, 0x3f79c3d3, 0x3f7837f0, 0x3f76f532, 0x3f75fed7, 0x3f75583f,
    0x3f7504f3, 0x3f7508a4, 0x3f75672a, 0x3f76248c, 0x3f7744fd, 0x3f78ccdf, 0x3f7ac0c7, 0x3f7d257d,
};
#define FS_EXP_TABLE_P(r) (vsplat_f32(0x1.555634p-3f) * (r) + vsplat_f32(0x1.000216p-1f))
#elif FS_EXP_TABLE_SIZE == 8
#define FS_EXP_TABLE_SHIFT 20
static const uint32_t fs_exp2_table[8] __attribute__((aligned(32))) = {
    0x3f800000, 0x3f7b95c2, 0x3f7837f0, 0x3f75fed7, 0x3f7504f3, 0x3f75672a, 0x3f7744fd, 0x3f7ac0c7,
};
#define FS_EXP_TABLE_P(r) \
    ((vsplat_f32(0x1.5548e0p-5f) * (r) + vsplat_f32(0x1.555c68p-3f)) * (r) + vsplat_f32(0.5f))
#endif

/* The table's steps 1-5: exp(z) / 2^k, k 0 or 1 in each lane. */
FS_ALWAYS_INLINE vec_f32 vexp_scaled_f32(vec_f32 z, vec_f32 k)
{
    const vec_f32 size = vsplat_f32((float)FS_EXP_TABLE_SIZE);
    const vec_f32 magic = vsplat_f32(0x1.8p23f);
    const vec_f32 log2e_n = vsplat_f32(0x1.715476p+0f) * size;  /* N / ln2 */
    const vec_f32 ln2_hi_n = vsplat_f32(0x1.62ep-1f) / size;    /* (exact: N is a power of 2) */
    const vec_f32 ln2_lo_n = vsplat_f32(0x1.0bfbe8p-15f) / size;

    const vec_f32 t = z * log2e_n + magic;                   /* 1 */
    const vec_f32 m = t - magic;
    vec_f32 r = z - m * ln2_hi_n;                            /* 2 */
    r = r - m * ln2_lo_n;

    const vbits_f32 m_bits = vas_bits_f32(t - k * size);     /* 3 */
    const vec_f32 s = vfrom_bits_f32(vlookup_f32(fs_exp2_table, m_bits) + (m_bits << FS_EXP_TABLE_SHIFT));

    const vec_f32 u = (r * r) * FS_EXP_TABLE_P(r) + r;       /* 4 */
    const vec_f32 cutoff = vsplat_f32(-0x1.5d589ep+6f); /* -87.33654, the float just above ln(FLT_MIN) */
    return vmuladd_flush_f32(s, u, s, z, cutoff);             /* 4 and 5 */
}
#else
/* Steps 1-5 with 2^(n-k) for 2^n: exp(z) / 2^k, k 0 or 1 in each lane. */
FS_ALWAYS_INLINE vec_f32 vexp_scaled_f32(vec_f32 z, vec_f32 k)
{
    const vec_f32 magic = vsplat_f32(0x1.8000FEp23f); /* 1.5*2^23 + 127 */
    const vec_f32 log2e = vsplat_f32(0x1.715476p+0f);
    const vec_f32 ln2_hi = vsplat_f32(0x1.62e400p-1f);
    const vec_f32 ln2_lo = vsplat_f32(0x1.7f7d1cp-20f);

    z = vmax_f32(vsplat_f32(-88.0f), z);                     /* 5: Z_FLOOR, n = -127 */
    vec_f32 t = z * log2e + magic;                           /* 1 */
    vec_f32 n = t - magic;
    vec_f32 r = z - n * ln2_hi;                              /* 2 */
    r = r - n * ln2_lo;

    vec_f32 q = vsplat_f32(0x1.6b074ap-10f);                 /* 4 */
    q = q * r + vsplat_f32(0x1.1267b2p-7f);
    q = q * r + vsplat_f32(0x1.5557f6p-5f);
    q = q * r + vsplat_f32(0x1.555418p-3f);
    q = q * r + vsplat_f32(0x1.fffffcp-2f);
    q = q * r + vsplat_f32(1.0f);
    const vec_f32 p = q * r + vsplat_f32(1.0f);
    return vfrom_bits_f32(vas_bits_f32(t - k) << 23) * p;     /* 3 */
}

#endif

#if FS_HAS_LOOKUP && FS_LANES_f64 == 8
/*
 * Double's table (AVX-512, N = 8): 2^(j/8) rounded to double, its bits less
 * j << 49, and the rounding's relative error (2^(j/8) - entry) / entry, as
 * bits; P of degree 5.  By tools/exp_coefficients.py.
 */
static const uint64_t fs_exp2_table_f64[8] __attribute__((aligned(64))) = {
    0x3ff0000000000000, 0x3fef72b83c7d517b, 0x3fef06fe0a31b715, 0x3feebfdad5362a27,
    0x3feea09e667f3bcd, 0x3feeace5422aa0db, 0x3feee89f995ad3ad, 0x3fef5818dcfba487,
};
static const uint64_t fs_exp2_correction_f64[8] __attribute__((aligned(64))) = {
    0x0000000000000000, 0xbc801b15eaa59348, 0x3c834d754db0abb6, 0x3c7690cebb7aafb0,
    0xbc93b3efbf5e2228, 0x3c8db72fc1f0eab4, 0x3c8c1a7792cb3387, 0x3c74a385a63d07a7,
};

/* The table's steps 1-5 in double: exp(z) / 2^k, k 0 or 1 in each lane. */
FS_ALWAYS_INLINE vec_f64 vexp_scaled_f64(vec_f64 z, vec_f64 k)
{
    const vec_f64 size = vsplat_f64(8.0);
    const vec_f64 magic = vsplat_f64(0x1.8p52);
    const vec_f64 log2e_n = vsplat_f64(0x1.71547652b82fep+0) * size;  /* N / ln2 */
    const vec_f64 ln2_hi_n = vsplat_f64(0x1.62e42fefa2000p-1) / size; /* (exact: N is a power of 2) */
    const vec_f64 ln2_lo_n = vsplat_f64(0x1.9ef35793c7673p-41) / size;

    const vec_f64 t = z * log2e_n + magic;                   /* 1 */
    const vec_f64 m = t - magic;
    vec_f64 r = z - m * ln2_hi_n;                            /* 2 */
    r = r - m * ln2_lo_n;

    const vbits_f64 m_bits = vas_bits_f64(t - k * size);     /* 3 */
    const vec_f64 s = vfrom_bits_f64(vlookup_f64(fs_exp2_table_f64, m_bits) + (m_bits << 49));
    const vec_f64 correction = vfrom_bits_f64(vlookup_f64(fs_exp2_correction_f64, m_bits));

    vec_f64 p = vsplat_f64(0x1.a0183fa486103p-13) * r + vsplat_f64(0x1.6c1cc13dbb086p-10); /* 4 */
    p = p * r + vsplat_f64(0x1.1111111f51bcfp-7);
    p = p * r + vsplat_f64(0x1.55555547f6403p-5);
    p = p * r + vsplat_f64(0x1.555555555527bp-3);
    p = p * r + vsplat_f64(0x1.000000000010fp-1);
    const vec_f64 u = (r * r) * p + r;
    const vec_f64 cutoff = vsplat_f64(-0x1.6232bdd7abcd2p+9); /* -708.39642 */
    return vmuladd_flush_f64(s, u + correction, s, z, cutoff); /* 4 and 5 */
}
#else
FS_ALWAYS_INLINE vec_f64 vexp_scaled_f64(vec_f64 z, vec_f64 k)
{
    const vec_f64 magic = vsplat_f64(0x1.80000000003FFp52); /* 1.5*2^52 + 1023 */
    const vec_f64 log2e = vsplat_f64(0x1.71547652b82fep+0);
    const vec_f64 ln2_hi = vsplat_f64(0x1.62e42fefa2000p-1);
    const vec_f64 ln2_lo = vsplat_f64(0x1.9ef35793c7673p-41);

    z = vmax_f64(vsplat_f64(-709.0), z);                     /* 5: Z_FLOOR, n = -1023 */
    vec_f64 t = z * log2e + magic;                           /* 1 */
    vec_f64 n = t - magic;
    vec_f64 r = z - n * ln2_hi;                              /* 2 */
    r = r - n * ln2_lo;

    vec_f64 q = vsplat_f64(0x1.ad582e392876bp-26);           /* 4 */
    q = q * r + vsplat_f64(0x1.28af925a0e27ap-22);
    q = q * r + vsplat_f64(0x1.71df49e17e4fdp-19);
    q = q * r + vsplat_f64(0x1.a0199763ee633p-16);
    q = q * r + vsplat_f64(0x1.a01a01111dbc5p-13);
    q = q * r + vsplat_f64(0x1.6c16c1855600bp-10);
    q = q * r + vsplat_f64(0x1.111111112fb14p-7);
    q = q * r + vsplat_f64(0x1.55555555501bbp-5);
    q = q * r + vsplat_f64(0x1.55555555554b2p-3);
    q = q * r + vsplat_f64(0x1.000000000000bp-1);
    q = q * r + vsplat_f64(1.0);
    const vec_f64 p = q * r + vsplat_f64(1.0);
    return vfrom_bits_f64(vas_bits_f64(t - k) << 52) * p;     /* 3 */
}
#endif

/*
 * exp(z) for z <= 0 (correct up to z = 127.5*ln2, where n reaches 128).  Always
 * inlined, as are the partial loads and stores (fs_vector.h): GCC's growth limits
 * left one SSE2 copy of this out of line in a pair kernel once those grew, a call
 * per vector, and bfloat16 log_softmax rows of 40 took 1.17 times the time.
 */
FS_ALWAYS_INLINE vec_f32 vexp_f32(vec_f32 z) { return vexp_scaled_f32(z, vsplat_f32(0.0f)); }
FS_ALWAYS_INLINE vec_f64 vexp_f64(vec_f64 z) { return vexp_scaled_f64(z, vsplat_f64(0.0)); }

/* exp(z) for any z: +inf above the largest finite result, never NaN but for a NaN z. */
static inline vec_f32 vexp_any_f32(vec_f32 z)
{
    if (!vany_greater_f32(z, 88.0f)) /* n <= 127 in every lane */
        return vexp_f32(z);
    const vec_f32 k = vselect_f32((vbits_f32)(z > vsplat_f32(0.0f)), vsplat_f32(1.0f), vsplat_f32(0.0f));
    const vec_f32 e = vexp_scaled_f32(z, k) * (vsplat_f32(1.0f) + k);
    return vselect_f32((vbits_f32)(z > vsplat_f32(0x1.62e42ep+6f)), vsplat_f32(INFINITY), e); /* 88.72283 */
}
static inline vec_f64 vexp_any_f64(vec_f64 z)
{
    if (!vany_greater_f64(z, 709.0)) /* n <= 1023 in every lane */
        return vexp_f64(z);
    const vec_f64 k = vselect_f64((vbits_f64)(z > vsplat_f64(0.0)), vsplat_f64(1.0), vsplat_f64(0.0));
    const vec_f64 e = vexp_scaled_f64(z, k) * (vsplat_f64(1.0) + k);
    return vselect_f64((vbits_f64)(z > vsplat_f64(0x1.62e42fefa39efp+9)), vsplat_f64(INFINITY), e); /* 709.782712893384 */
}

/*
 * The sampler's weights, exp((v - shift) * scale) computed in double, for one
 * vector of a dtype's values: in its sum accumulator's double lanes (VACC:
 * float's two double vectors, double's one).  For z = (v - shift) * scale <= 0:
 * shift is the row's max.  fs_sample_tmpl.h takes every weight, one or a
 * vector of them, from here, so all its sums and tests see the same bits.
 */
#if FS_VBYTES > 0
static inline vacc_f32 vacc_weights_f32(vec_f32 v, double shift, double scale)
{
    vacc_f32 a = vacc_from_f32(v);
    a.lo = vexp_f64((a.lo - vsplat_f64(shift)) * vsplat_f64(scale));
    a.hi = vexp_f64((a.hi - vsplat_f64(shift)) * vsplat_f64(scale));
    return a;
}
#else
static inline vacc_f32 vacc_weights_f32(vec_f32 v, double shift, double scale)
{
    return vexp_f64(((double)v - shift) * scale);
}
#endif
static inline vacc_f64 vacc_weights_f64(vec_f64 v, double shift, double scale)
{
    return vexp_f64((v - vsplat_f64(shift)) * vsplat_f64(scale));
}

#endif /* FS_EXP_H */
