/*
 * Vectorized natural log in double: vlog_f64 (and vlog1p_f64) for the log ops'
 * per-lane sums of exponentials (fs_log_sum_tmpl.h's tile_log_sum_exp: panels and short
 * rows, a log per row or column).  One libm call per lane cost more than the rest of
 * a short row's work: 8 calls per group of 8 rows of 10 classes.
 *
 * x = 2^k * m with m in [sqrt(2)/2, sqrt(2)), f = m - 1, and
 *   log(1 + f) = 2 atanh(s) = 2s + s*R,  s = f / (2 + f),  R = sum_j 2 z^j / (2j + 1), z = s^2.
 * |s| <= 3 - 2 sqrt(2) = 0.1716, so z <= 0.0295: ten terms of R leave a
 * truncation error near 1e-19 of the result (the series' own coefficients,
 * no fit).  The terms are arranged as in the classic fdlibm log so that the
 * division's rounding in s is multiplied by small quantities only:
 *   log(x) = k*LN2_HI - ((f^2/2 - (s*(f^2/2 + R) + k*LN2_LO)) - f)
 * with LN2_HI holding 32 significant bits, so k*LN2_HI is exact.  Error below
 * 1 ULP in double, far inside the log ops' tolerance (fs_log_sum_tmpl.h's
 * LOG_SUM_RTOL); tests/test_short_rows.py holds the results to the long-double
 * reference.
 *
 * The formula is for positive normal finite x.  Any other lane (a sum of 0
 * from a fully masked slice, inf, NaN) takes libm's log instead, so special
 * values keep exactly libm's answers.  Only that lane: a row's result must not
 * depend on which rows share its vector (that changes with the thread count).
 */
#ifndef FS_LOG_H
#define FS_LOG_H

#if FS_VBYTES > 0
FS_ALWAYS_INLINE vec_f64 vlog_normal_f64(vec_f64 x)
{
    /* m's bits: x's mantissa under the exponent of sqrt(2)/2 or 1/2's neighbour,
     * chosen by adding the gap so that the carry moves m into [sqrt(2)/2, sqrt(2)). */
    const vbits_f64 sqrt_half = (vbits_f64){0} + 0x3fe6a09e667f3bcdULL;
    const vbits_f64 one = (vbits_f64){0} + 0x3ff0000000000000ULL;
    const vbits_f64 mantissa = (vbits_f64){0} + 0x000fffffffffffffULL;
    const vbits_f64 shifted = vas_bits_f64(x) + (one - sqrt_half);
    /* k = biased exponent of `shifted` - 1023, as a double through the 2^52 trick */
    const vbits_f64 exponent = shifted >> 52;
    const vec_f64 k = vfrom_bits_f64(exponent | 0x4330000000000000ULL) - vsplat_f64(0x1p52 + 1023.0);
    const vec_f64 m = vfrom_bits_f64((shifted & mantissa) + sqrt_half);
    const vec_f64 f = m - vsplat_f64(1.0);
    const vec_f64 s = f / (vsplat_f64(2.0) + f);
    const vec_f64 z = s * s;
    vec_f64 r = vsplat_f64(2.0 / 21);
    r = r * z + vsplat_f64(2.0 / 19);
    r = r * z + vsplat_f64(2.0 / 17);
    r = r * z + vsplat_f64(2.0 / 15);
    r = r * z + vsplat_f64(2.0 / 13);
    r = r * z + vsplat_f64(2.0 / 11);
    r = r * z + vsplat_f64(2.0 / 9);
    r = r * z + vsplat_f64(2.0 / 7);
    r = r * z + vsplat_f64(2.0 / 5);
    r = r * z + vsplat_f64(2.0 / 3);
    r = r * z;
    const vec_f64 half_f2 = vsplat_f64(0.5) * f * f;
    const vec_f64 ln2_hi = vsplat_f64(0x1.62e42feep-1), ln2_lo = vsplat_f64(0x1.a39ef35793c76p-33);
    return k * ln2_hi - ((half_f2 - (s * (half_f2 + r) + k * ln2_lo)) - f);
}

/* log(x) lane by lane: the formula above, or libm's log where any lane is not normal. */
FS_ALWAYS_INLINE vec_f64 vlog_f64(vec_f64 x)
{
    const vbits_f64 normal = (vbits_f64)(x >= vsplat_f64(0x1p-1022)) &
                             (vbits_f64)(x <= vsplat_f64(0x1.fffffffffffffp1023));
    vec_f64 r = vlog_normal_f64(x);
    if (vfirst_f64(~normal) >= 0) /* lane by lane: a lane's bits never depend on its neighbours */
        for (int i = 0; i < FS_LANES_f64; i++)
            if (!LANE(normal, i))
                LANE(r, i) = log(LANE(x, i));
    return r;
}

/*
 * log1p(y) lane by lane for y >= 0 (the log ops' sums without their dominant
 * term): log(u) for u = 1 + y, corrected by the rounding of u,
 * (y - (u - 1)) / u, which is exact to first order (u - 1 is exact by
 * Sterbenz); a y too small to move u gives y itself.  libm's log1p in a lane
 * whose u is not a normal number (an infinite or NaN y).
 */
FS_ALWAYS_INLINE vec_f64 vlog1p_f64(vec_f64 y)
{
    const vec_f64 u = vsplat_f64(1.0) + y;
    const vbits_f64 normal = (vbits_f64)(u >= vsplat_f64(0x1p-1022)) &
                             (vbits_f64)(u <= vsplat_f64(0x1.fffffffffffffp1023));
    vec_f64 r = vlog_normal_f64(u) + (y - (u - vsplat_f64(1.0))) / u;
    if (vfirst_f64(~normal) >= 0)
        for (int i = 0; i < FS_LANES_f64; i++)
            if (!LANE(normal, i))
                LANE(r, i) = log1p(LANE(y, i));
    return r;
}

/* The log (log1p) of each lane of a float accumulator (two double vectors) or a double one. */
FS_ALWAYS_INLINE vacc_f32 vacc_log_f32(vacc_f32 a)
{
    a.lo = vlog_f64(a.lo);
    a.hi = vlog_f64(a.hi);
    return a;
}
FS_ALWAYS_INLINE vacc_f32 vacc_log1p_f32(vacc_f32 a)
{
    a.lo = vlog1p_f64(a.lo);
    a.hi = vlog1p_f64(a.hi);
    return a;
}
#define vacc_log_f64(a) vlog_f64(a)
#define vacc_log1p_f64(a) vlog1p_f64(a)
#else /* plain C: libm */
#define vlog_f64(x) log(x)
#define vlog1p_f64(x) log1p(x)
#define vacc_log_f32(a) log(a)
#define vacc_log_f64(a) log(a)
#define vacc_log1p_f32(a) log1p(a)
#define vacc_log1p_f64(a) log1p(a)
#endif

#endif /* FS_LOG_H */
