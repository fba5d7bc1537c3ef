/*
 * Every entry of one kernel table (src/fs_kernels.h), every dtype it holds, against a
 * reference computed here in double precision (long double for the exp's ULP sweep), to
 * the README's accuracy contract.  Written for ISAs no development machine runs natively:
 * tools/emulated_isas.sh runs it for AVX-512 under Bochs and for aarch64 (NEON baseline
 * and plain C) under qemu-user; it runs natively for the x86 tables this CPU has.
 *
 *   cc -O3 -fno-math-errno -ffp-contract=fast -Wno-psabi -fopenmp -Isrc \
 *      tools/emu_harness.c src/fs_dispatch.c src/fs_isa_*.c -lm
 *   ./a.out ISA [ISA ...] [--exp-step N]     (ISA: avx512 avx2 baseline scalar, or "available"
 *                                             for every one this CPU runs; default step 97;
 *                                             --exp-step 1 sweeps every float;
 *                                             --f16-ties-either: see narrowed_ok, for Bochs)
 *
 * The last line is "N passed, N failed"; the exit status is 1 on any failure, or if a named
 * ISA is not available (the emulator did not give the CPU features: that must fail too).
 *
 * Covered, per dtype (float32, float64, float16 and bfloat16 inputs, and the 16-bit-output
 * kernels): softmax / log_softmax / logsumexp / logsumexp_parts / softmax_shifted over rows
 * of every length 1..40 (the short-row path n <= 32 and the lane and unroll boundaries) and
 * longer, row counts around multiples of 4/8/16, panels (width and stride not 1, partial
 * tiles, column sub-ranges that must leave the other columns alone), where= masks (whole
 * array, broadcast with a period, an offset start, fully masked slices), temperatures
 * (scale != 1), slices holding NaN, +inf, -inf or only -inf; streamed last passes
 * (FS_STREAM_OUTPUT, at an aligned and a misaligned output: bitwise the ordinary ones);
 * calls that fit the caches (FS_IN_CACHE: long rows pipelined, bitwise the ordinary ones);
 * x and out off their vector alignment (bitwise the aligned ones);
 * the long-row entries
 * (softmax_long_rows, backward_long_rows, cross_entropy_long_rows) on rows longer than
 * 2 * FS_CHUNK with 1 and 3 threads and streamed (bitwise equal), and the chunk steps (row_max,
 * chunk_sum_exp, scale_span, log_softmax_span, logsumexp_finish) rebuilt into a row;
 * backward; cross-entropy (labels, ignore_index, probability targets, class weights, label
 * smoothing, gradient, streamed gradient, the 16-bit gradient rounded once); top_k; sample (filters, draw, logprobs, top logprobs, bad rows);
 * exp_span (ULP sweep, specials, tails that must not be overrun); narrow.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_fp_env.h"
#include "fs_kernels.h"

typedef fs_index idx;
enum { F32, F64, F16, BF16 };
static const char *const DT_NAME[] = {"f32", "f64", "f16", "bf16"};

static const fs_kernel_table *T;
static int DT;
static long n_pass, n_fail, case_fails;
static char ctx[256];

/* The contract (README "Numerics", fastsoftmax/_testing.py) for the type the kernels compute
 * in: float for float32 and the 16-bit inputs, double for float64. */
static double RTOL(void) { return DT == F64 ? 1e-13 : 1e-6; }
static double U(void) { return DT == F64 ? 0x1p-53 : 0x1p-24; }
static double ATOL(void) { return DT == F64 ? 3e-308 : 2e-38; }  /* flushed subnormal results */
static double LOSS_RTOL(void) { return DT == F64 ? 1e-12 : 2e-6; }
static double GRAD_TOL(void) { return DT == F64 ? 1e-13 : 2e-6; }

/* ---------------------------------------------------------------- random numbers */
static uint64_t rs = 88172645463325252ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* ---------------------------------------------------------------- 16-bit formats */
static double half_to_double(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    const double s = (h & 0x8000) ? -1 : 1;
    if (e == 31) return m ? NAN : s * INFINITY;
    return e ? s * ldexp(1024 + m, e - 25) : s * ldexp(m, -24);
}
/* float to float16, rounded to nearest even, from the float's bits (one rounding). */
static uint16_t float_to_half(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    const float a = fabsf(f);
    if (a != a) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < 0x1p-14f) return sign | (uint16_t)lrintf(a * 0x1p24f); /* exact product, RNE */
    uint32_t m = (b & 0x7fffffffu) - (112u << 23);
    m += 0xfffu + ((m >> 13) & 1);
    return sign | (uint16_t)(m >> 13);
}
static double bf16_to_double(uint16_t h)
{
    const uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint16_t float_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    if (f != f) return (uint16_t)((b >> 16) | 0x40);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
}

/* ---------------------------------------------------------------- buffers of the current dtype */
/* Inputs (STORAGE) and outputs (OUT, which is also REAL) of the current dtype, as double. */
static size_t in_bytes(void) { return DT == F64 ? 8 : DT == F32 ? 4 : 2; }
static size_t out_bytes(void) { return DT == F64 ? 8 : 4; }
static void *zalloc(size_t bytes) { return calloc(bytes + 64, 1); }
static void *in_alloc(idx n) { return zalloc((size_t)n * in_bytes()); }
static void *out_alloc(idx n) { return zalloc((size_t)n * out_bytes()); }
static double in_get(const void *p, idx i)
{
    switch (DT) {
    case F32: return ((const float *)p)[i];
    case F64: return ((const double *)p)[i];
    case F16: return half_to_double(((const uint16_t *)p)[i]);
    default: return bf16_to_double(((const uint16_t *)p)[i]);
    }
}
/* Stores v rounded to the input type and returns the value stored. */
static double in_set(void *p, idx i, double v)
{
    switch (DT) {
    case F32: ((float *)p)[i] = (float)v; break;
    case F64: ((double *)p)[i] = v; break;
    case F16: ((uint16_t *)p)[i] = float_to_half((float)v); break;
    default: ((uint16_t *)p)[i] = float_to_bf16((float)v); break;
    }
    return in_get(p, i);
}
static double out_get(const void *p, idx i) { return DT == F64 ? ((const double *)p)[i] : ((const float *)p)[i]; }
static double out_set(void *p, idx i, double v)
{
    if (DT == F64) ((double *)p)[i] = v; else ((float *)p)[i] = (float)v;
    return out_get(p, i);
}
static const void *in_at(const void *p, idx i) { return (const char *)p + i * (idx)in_bytes(); }
static void *out_at(void *p, idx i) { return (char *)p + i * (idx)out_bytes(); }
static double as_real(double v) { return DT == F64 ? v : (double)(float)v; }

/* A call of one field of the current dtype's kernels (the pointer types are the dtype's:
 * the void pointers of this file convert to them). */
#define CALL(FIELD, ...)                                  \
    (DT == F32   ? (double)T->f32.FIELD(__VA_ARGS__)      \
     : DT == F64 ? (double)T->f64.FIELD(__VA_ARGS__)      \
     : DT == F16 ? (double)T->f16.FIELD(__VA_ARGS__)      \
                 : (double)T->bf16.FIELD(__VA_ARGS__))
#define CALL_VOID(FIELD, ...)                                   \
    do {                                                        \
        if (DT == F32) T->f32.FIELD(__VA_ARGS__);               \
        else if (DT == F64) T->f64.FIELD(__VA_ARGS__);          \
        else if (DT == F16) T->f16.FIELD(__VA_ARGS__);          \
        else T->bf16.FIELD(__VA_ARGS__);                        \
    } while (0)
/* The 16-bit-output kernels (float16 in and out, bfloat16 in and out). */
#define NARROW(FIELD, ...) (DT == F16 ? T->f16_f16.FIELD(__VA_ARGS__) : T->bf16_bf16.FIELD(__VA_ARGS__))
static uint16_t round16(double v) { return DT == F16 ? float_to_half((float)v) : float_to_bf16((float)v); }
/*
 * Whether h is the float v rounded to the 16-bit type: to nearest, ties to even (any NaN for
 * a NaN).  With --f16-ties-either a float16 tie may go to either neighbour: Bochs 2.7
 * emulates VCVTPS2PH (the AVX-512 table's float16 rounding, _mm512_cvtps_ph) with ties
 * away from zero whatever the rounding immediate, where real AVX-512 hardware rounds ties
 * to even (the native stage holds the same code to that).  Only the Bochs stage passes it.
 */
static int f16_ties_either;
static int narrowed_ok(uint16_t h, double v)
{
    if (isnan(v)) return (h & 0x7fff) > (DT == F16 ? 0x7c00 : 0x7f80);
    const uint16_t want = round16(v);
    if (h == want) return 1;
    if (!f16_ties_either || DT != F16) return 0;
    const double a = half_to_double(h), b = half_to_double(want);
    return a != b && fabs(a - v) == fabs(b - v); /* v halfway between the two: a tie */
}

/* ---------------------------------------------------------------- checks */
static int same(double got, double want) { return got == want || (isnan(got) && isnan(want)); }
static void expect(double got, double want, double bound, const char *what, idx at)
{
    if (same(got, want) || fabs(got - want) <= bound) return;
    if (case_fails++ < 4)
        printf("FAIL [%s %s] %s at %ld: got %.17g want %.17g (|diff| %.3g > bound %.3g) | %s\n",
               T->isa, DT_NAME[DT], what, (long)at, got, want, fabs(got - want), bound, ctx);
}
static void expect_true(int ok, const char *what, idx at)
{
    if (!ok && case_fails++ < 4)
        printf("FAIL [%s %s] %s at %ld | %s\n", T->isa, DT_NAME[DT], what, (long)at, ctx);
}
static void end_case(void)
{
    if (case_fails) n_fail++; else n_pass++;
    case_fails = 0;
}

/* ---------------------------------------------------------------- one slice's reference */
typedef struct {
    int any, nan, pinf; /* kept entries: any at all, a NaN, a +inf */
    double m;           /* max of the kept non-NaN entries (-inf if none) */
    double log_sum;     /* log(sum(exp(z))), z = (x - m) * scale: log1p of all but the first max */
    double sum;         /* sum(exp(z)) */
    double spread;      /* sum(p |z|): what rounding z moves log_sum by, / u */
} slice_ref;

/* v[r] kept where keep[r]; scale as the kernel sees it (already rounded to REAL). */
static slice_ref reference(const double *v, const int *keep, idx n, double scale)
{
    slice_ref s = {0, 0, 0, -INFINITY, 0, 1, 0};
    idx first = -1;
    for (idx r = 0; r < n; r++) {
        if (!keep[r]) continue;
        s.any = 1;
        if (isnan(v[r])) s.nan = 1;
        else if (v[r] > s.m) { s.m = v[r]; first = r; }
        if (v[r] == INFINITY) s.pinf = 1;
    }
    if (s.nan || !isfinite(s.m)) return s;
    double rest = 0;
    for (idx r = 0; r < n; r++)
        if (keep[r] && r != first) rest += exp((v[r] - s.m) * scale);
    s.sum = 1 + rest;
    s.log_sum = log1p(rest);
    for (idx r = 0; r < n; r++)
        if (keep[r] && v[r] > -INFINITY) {
            const double z = (v[r] - s.m) * scale;
            s.spread += exp(z) / s.sum * fabs(z);
        }
    return s;
}
static int slice_bad(const slice_ref *s) { return s->nan || (s->any && !isfinite(s->m)); }
/* softmax / log_softmax of one entry from its slice's reference. */
static double want_softmax(const slice_ref *s, double v, int kept, double scale)
{
    if (!kept) return 0;
    if (slice_bad(s)) return NAN;
    return exp((v - s->m) * scale) / s->sum;
}
static double want_log_softmax(const slice_ref *s, double v, int kept, double scale)
{
    if (!kept) return -INFINITY;
    if (slice_bad(s)) return NAN;
    return (v - s->m) * scale - s->log_sum;
}
static double want_logsumexp(const slice_ref *s)
{
    if (s->nan) return NAN;
    if (!isfinite(s->m)) return s->m; /* -inf (all -inf, masked, empty) or +inf */
    return s->m + s->log_sum;         /* scale 1 */
}
static double softmax_bound(double want, double z) { return want * (RTOL() + 3 * U() * fabs(z)) + ATOL(); }
/*
 * The log domain's bound: the README's (RTOL relative, 3u (|z| + sum p|z|) from rounding z,
 * the flushed terms), plus the rounding of the terms exp(z) themselves, which the README's
 * wording leaves out: the kernels compute exp in the working precision (within 0.89-1.35
 * ULP, about 2.7u relative) and each term moves log(sum) by p times its error, so by at
 * most 3u (1 - p_max) in all (the max's own term, exp(0) = 1, is exact).  That vanishes
 * where one entry dominates, as the README promises; it matters only where log(sum) is
 * near 0 with no dominant entry (logsumexp([-0.46, -0.98]) = 1e-9 in float32 is off by
 * ~0.6u absolute on every ISA: no float kernel can hold that to 1e-6 relative).
 */
static double exp_rounding(const slice_ref *s) { return 3 * U() * (1 - 1 / s->sum); }
static double log_bound(double want, double z, const slice_ref *s, idx n)
{
    return RTOL() * fabs(want) + 3 * U() * (fabs(z) + s->spread) + exp_rounding(s) + (double)n * ATOL();
}
static double lse_bound(double want, const slice_ref *s, idx n)
{
    return RTOL() * fabs(want) + 3 * U() * s->spread + exp_rounding(s) + (double)n * ATOL();
}

/* ---------------------------------------------------------------- softmax family */
enum { MASK_NONE, MASK_FULL, MASK_SLAB, MASK_OFFSET, MASK_MODES };
enum { SP_NONE, SP_MIXED, SP_MODES };
static const char *const MASK_NAME[] = {"none", "full", "slab-period", "offset-start"};

/*
 * One block: `outer` slabs of (n, stride), the kernels called on columns [j0, j1) with
 * scale `scale`.  special SP_MIXED gives slice (o, j) a kind by (o * stride + j) % 5:
 * ordinary, all -inf, a NaN, a +inf, some -inf.
 */
static int bits_equal(const void *a, const void *b, idx n, size_t size)
{
    return memcmp(a, b, (size_t)n * size) == 0;
}

static void family(idx outer, idx n, idx stride, idx j0, idx j1, double scale, int mask_mode,
                   int special)
{
    const idx slab = n * stride, size = outer * slab, width = j1 - j0;
    const double se = as_real(scale);
    void *x = in_alloc(size), *sm = out_alloc(size), *ls = out_alloc(size), *sh = out_alloc(size),
         *shl = out_alloc(size), *lse = out_alloc(outer * stride), *mx = out_alloc(outer * stride),
         *shift = out_alloc(outer * stride), *adjust = out_alloc(outer * stride),
         *adjust_l = out_alloc(outer * stride);
    double *parts = calloc((size_t)(outer * stride) + 1, sizeof(double));
    uint16_t *sm16 = calloc((size_t)size + 1, 2), *ls16 = calloc((size_t)size + 1, 2);
    idx period = size, start = j0;
    if (mask_mode == MASK_SLAB) period = slab;
    if (mask_mode == MASK_OFFSET) { period = 2 * slab; start = slab + j0; }
    uint8_t *mask = mask_mode ? malloc((size_t)period + 1) : NULL;
    for (idx i = 0; mask && i < period; i++) mask[i] = urand() < 0.7;
    if (mask && n > 2 && stride > 1 && mask_mode != MASK_OFFSET) /* column 1 of slab 0 fully masked */
        for (idx r = 0; r < n; r++) mask[r * stride + 1] = 0;
    if (mask && outer > 1 && mask_mode == MASK_FULL) /* and row 1 of a contiguous block */
        for (idx r = 0; r < n; r++) mask[slab + r * stride + (stride > 1 ? 2 % stride : 0)] = 0;
    for (idx i = 0; i < size; i++) {
        in_set(x, i, 3 * nrand());
        out_set(sm, i, -7); out_set(ls, i, -7); out_set(sh, i, -7); out_set(shl, i, -7);
    }
    for (idx i = 0; i < outer * stride; i++) { out_set(lse, i, -7); out_set(mx, i, -7); parts[i] = -7; }
    if (special == SP_MIXED)
        for (idx o = 0; o < outer; o++)
            for (idx j = 0; j < stride; j++) {
                const int kind = (int)((o * stride + j) % 5);
                for (idx r = 0; r < n; r++) {
                    const idx i = o * slab + r * stride + j;
                    if (kind == 1) in_set(x, i, -INFINITY);
                    if (kind == 2 && r == n / 2) in_set(x, i, NAN);
                    if (kind == 3 && r == (n - 1) / 3) in_set(x, i, INFINITY);
                    if (kind == 4 && r % 3 == 1) in_set(x, i, -INFINITY);
                }
            }
    snprintf(ctx, sizeof ctx, "outer=%ld n=%ld stride=%ld cols=[%ld,%ld) scale=%g mask=%s special=%d",
             (long)outer, (long)n, (long)stride, (long)j0, (long)j1, se, MASK_NAME[mask_mode], special);

    const void *xj = in_at(x, j0);
    CALL_VOID(softmax, xj, mask, period, start, out_at(sm, j0), outer, n, width, stride, scale, 0);
    CALL_VOID(softmax, xj, mask, period, start, out_at(ls, j0), outer, n, width, stride, scale, 1);
    CALL_VOID(logsumexp, xj, mask, period, start, out_at(lse, j0), outer, n, width, stride);
    CALL_VOID(logsumexp_parts, xj, mask, period, start, out_at(mx, j0), parts + j0, outer, n, width,
              stride, scale);
    if (DT >= F16) {
        NARROW(softmax, (const uint16_t *)xj, mask, period, start, sm16 + j0, outer, n, width, stride,
               (float)scale, 0);
        NARROW(softmax, (const uint16_t *)xj, mask, period, start, ls16 + j0, outer, n, width, stride,
               (float)scale, 1);
    }
    if (stride == 1) { /* streamed last passes (FS_STREAM_OUTPUT), one element off alignment too */
        for (idx shift_by = 0; shift_by < 2; shift_by++)
            for (int log_ = 0; log_ < 2; log_++) {
                void *streamed = out_alloc(size + 1);
                CALL_VOID(softmax, xj, mask, period, start, out_at(streamed, shift_by + j0), outer, n,
                          width, stride, scale, log_ | FS_STREAM_OUTPUT);
                expect_true(bits_equal(out_at(streamed, shift_by + j0), out_at(log_ ? ls : sm, j0),
                                       size - j0, out_bytes()),
                            log_ ? "streamed log_softmax differs from the ordinary one's bits"
                                 : "streamed softmax differs from the ordinary one's bits", 0);
                free(streamed);
            }
        /* a call that fits the caches (FS_IN_CACHE): rows past a chunk pipelined with ordinary
         * stores, the same bits */
        for (int log_ = 0; log_ < 2; log_++) {
            void *cached = out_alloc(size);
            CALL_VOID(softmax, xj, mask, period, start, out_at(cached, j0), outer, n, width, stride,
                      scale, log_ | FS_IN_CACHE);
            expect_true(bits_equal(out_at(cached, j0), out_at(log_ ? ls : sm, j0), size - j0,
                                   out_bytes()),
                        log_ ? "log_softmax in the caches differs from the ordinary one's bits"
                             : "softmax in the caches differs from the ordinary one's bits", 0);
            free(cached);
        }
        /* x and out elements off their alignment, apart and together: the row passes peel a
         * partial vector up to an aligned address (fs_elements_before_aligned), which must not
         * change a bit. */
        static const idx x_out_shifts[][2] = {{1, 0}, {0, 1}, {3, 3}};
        for (int k = 0; k < 3; k++) {
            const idx sx = x_out_shifts[k][0], so = x_out_shifts[k][1];
            void *xs = in_alloc(size + sx), *lse_s = out_alloc(outer * stride);
            memcpy((char *)xs + sx * (idx)in_bytes(), x, (size_t)size * in_bytes());
            for (int log_ = 0; log_ < 2; log_++) {
                void *os = out_alloc(size + so);
                CALL_VOID(softmax, in_at(xs, sx + j0), mask, period, start, out_at(os, so + j0),
                          outer, n, width, stride, scale, log_);
                expect_true(bits_equal(out_at(os, so + j0), out_at(log_ ? ls : sm, j0), size - j0,
                                       out_bytes()),
                            log_ ? "log_softmax off alignment differs from the aligned bits"
                                 : "softmax off alignment differs from the aligned bits", 0);
                free(os);
            }
            CALL_VOID(logsumexp, in_at(xs, sx + j0), mask, period, start, out_at(lse_s, j0),
                      outer, n, width, stride);
            expect_true(bits_equal(out_at(lse_s, j0), out_at(lse, j0), outer * stride - j0,
                                   out_bytes()),
                        "logsumexp off alignment differs from the aligned bits", 0);
            free(xs);
            free(lse_s);
        }
    }

    /* The references, and softmax_shifted's inputs from them (as fastsoftmax.dask makes them:
     * the slice's max, or above it, and 1/sum or log(sum) of that shift). */
    double *v = malloc(sizeof(double) * (size_t)n);
    int *keep = malloc(sizeof(int) * (size_t)n);
    slice_ref *refs = malloc(sizeof(slice_ref) * (size_t)(outer * stride));
    slice_ref *refs1 = malloc(sizeof(slice_ref) * (size_t)(outer * stride));
    for (idx o = 0; o < outer; o++)
        for (idx j = j0; j < j1; j++) {
            for (idx r = 0; r < n; r++) {
                const idx i = o * slab + r * stride + j;
                v[r] = in_get(x, i);
                keep[r] = !mask || mask[(start - j0 + i) % period];
            }
            const idx s = o * stride + j;
            refs[s] = reference(v, keep, n, se);
            refs1[s] = reference(v, keep, n, 1.0);
            double sft = isfinite(refs[s].m) && !refs[s].nan ? refs[s].m : INFINITY;
            if (isfinite(sft) && (o + j) % 3 == 1) sft += 0.75; /* a shift above the max */
            sft = out_set(shift, s, sft);
            double sum = 0;
            for (idx r = 0; r < n; r++)
                if (keep[r] && isfinite(sft)) sum += exp((v[r] - sft) * se);
            out_set(adjust, s, sum > 0 ? 1 / sum : 1);
            out_set(adjust_l, s, sum > 0 ? log(sum) : 0);
        }
    CALL_VOID(softmax_shifted, xj, mask, period, start, out_at(sh, j0), outer, n, width, stride,
              scale, out_at(shift, j0), out_at(adjust, j0), 0);
    CALL_VOID(softmax_shifted, xj, mask, period, start, out_at(shl, j0), outer, n, width, stride,
              scale, out_at(shift, j0), out_at(adjust_l, j0), 1);

    for (idx o = 0; o < outer; o++)
        for (idx j = 0; j < stride; j++) {
            const idx s = o * stride + j;
            if (j < j0 || j >= j1) { /* columns outside the range are left alone */
                for (idx r = 0; r < n; r++) {
                    const idx i = o * slab + r * stride + j;
                    expect(out_get(sm, i), -7, 0, "softmax wrote outside its columns", i);
                    expect(out_get(ls, i), -7, 0, "log_softmax wrote outside its columns", i);
                    expect(out_get(sh, i), -7, 0, "softmax_shifted wrote outside its columns", i);
                }
                expect(out_get(lse, s), -7, 0, "logsumexp wrote outside its columns", s);
                expect(out_get(mx, s), -7, 0, "logsumexp_parts wrote outside its columns", s);
                continue;
            }
            const slice_ref *R = &refs[s], *R1 = &refs1[s];
            const double want_lse = want_logsumexp(R1);
            expect(out_get(lse, s), want_lse, lse_bound(want_lse, R1, n), "logsumexp", s);
            /* logsumexp_parts: the max (NaN for a NaN slice with an infinite max) and log(sum) */
            if (R->nan) expect_true(isnan(out_get(mx, s)) || isnan(parts[s]), "logsumexp_parts of a NaN slice", s);
            else if (!isfinite(R->m)) {
                expect(out_get(mx, s), R->m, 0, "logsumexp_parts max (infinite)", s);
                expect(parts[s], 0, 0, "logsumexp_parts log_sum (infinite max)", s);
            } else {
                expect(out_get(mx, s), R->m, 0, "logsumexp_parts max", s);
                expect(parts[s], R->log_sum, lse_bound(R->log_sum, R, n), "logsumexp_parts log_sum", s);
            }
            const double sft = out_get(shift, s), adj = out_get(adjust, s), adjl = out_get(adjust_l, s);
            for (idx r = 0; r < n; r++) {
                const idx i = o * slab + r * stride + j;
                const int kept = !mask || mask[(start - j0 + i) % period];
                const double xv = in_get(x, i), z = kept && xv > -INFINITY ? (xv - R->m) * se : 0;
                const double p = want_softmax(R, xv, kept, se), lp = want_log_softmax(R, xv, kept, se);
                const double got = out_get(sm, i), got_l = out_get(ls, i);
                expect(got, p, softmax_bound(p, z), "softmax", i);
                expect(got_l, lp, log_bound(lp, z, R, n), "log_softmax", i);
                if (DT >= F16) { /* the 16-bit results: the float results rounded once */
                    expect_true(narrowed_ok(sm16[i], got),
                                "16-bit softmax is not the float softmax rounded", i);
                    expect_true(narrowed_ok(ls16[i], got_l),
                                "16-bit log_softmax is not the float log_softmax rounded", i);
                }
                if (R->nan || R->pinf) continue; /* softmax_shifted: only ordinary slices */
                const double zs = kept && isfinite(sft) ? (xv - sft) * se : -INFINITY;
                const double ps = !kept ? 0 : exp(zs) * adj, lps = !kept ? -INFINITY : zs - adjl;
                expect(out_get(sh, i), ps, ps * (RTOL() + 3 * U() * fabs(zs)) + ATOL(), "softmax_shifted", i);
                expect(out_get(shl, i), lps, RTOL() * fabs(lps) + 3 * U() * (isfinite(zs) ? fabs(zs) : 0),
                       "softmax_shifted log", i);
            }
        }
    end_case();
    free(x); free(sm); free(ls); free(sh); free(shl); free(lse); free(mx); free(shift); free(adjust);
    free(adjust_l); free(parts); free(sm16); free(ls16); free(mask); free(v); free(keep); free(refs);
    free(refs1);
}

/* ---------------------------------------------------------------- long rows */

/* softmax_long_rows (1 and 3 threads, bitwise equal), against the reference and against
 * the block kernel on the same rows (bitwise: a row's result never depends on the split),
 * and the chunk-step entries rebuilt into a row. */
static void long_rows(idx rows, idx n, int masked, int special, double scale)
{
    const idx size = rows * n;
    const double se = as_real(scale);
    void *x = in_alloc(size), *a = out_alloc(size), *b = out_alloc(size), *blk = out_alloc(size),
         *steps = out_alloc(size);
    uint16_t *a16 = calloc((size_t)size + 1, 2);
    uint8_t *mask = masked ? malloc((size_t)size) : NULL;
    for (idx i = 0; i < size; i++) {
        in_set(x, i, 4 * nrand());
        if (mask) mask[i] = urand() < 0.8;
    }
    if (special) { /* row 1: a NaN in its last chunk; the first row's max in its last element */
        if (rows > 1) in_set(x, 2 * n - 5, NAN);
        in_set(x, n - 1, 30);
        if (mask) mask[n - 1] = 1;
    }
    double *v = malloc(sizeof(double) * (size_t)n);
    int *keep = malloc(sizeof(int) * (size_t)n);
    static const char *const OPS[] = {"softmax", "log_softmax", "logsumexp"};
    for (int op = 0; op < 3; op++) {
        snprintf(ctx, sizeof ctx, "long rows: rows=%ld n=%ld mask=%d special=%d scale=%g op=%s",
                 (long)rows, (long)n, masked, special, se, OPS[op]);
        const double sc = op == 2 ? 1.0 : scale;
        const int ra = (int)CALL(softmax_long_rows, x, mask, size, 0, a, rows, n, sc, op, 0, 1);
        const int rb = (int)CALL(softmax_long_rows, x, mask, size, 0, b, rows, n, sc, op, 0, 3);
        expect_true(ra == 0 && rb == 0, "softmax_long_rows returned an error", 0);
        expect_true(bits_equal(a, b, op == 2 ? rows : size, out_bytes()),
                    "softmax_long_rows: 1 and 3 threads differ", 0);
        if (op < 2) { /* streamed (FS_STREAM_OUTPUT): the same bits */
            void *streamed = out_alloc(size);
            const int rs = (int)CALL(softmax_long_rows, x, mask, size, 0, streamed, rows, n, sc, op,
                                     FS_STREAM_OUTPUT, 3);
            expect_true(rs == 0 && bits_equal(a, streamed, size, out_bytes()),
                        "streamed softmax_long_rows differs from the ordinary one's bits", 0);
            free(streamed);
        }
        if (op < 2) CALL_VOID(softmax, x, mask, size, 0, blk, rows, n, 1, 1, sc, op);
        else CALL_VOID(logsumexp, x, mask, size, 0, blk, rows, n, 1, 1);
        expect_true(bits_equal(a, blk, op == 2 ? rows : size, out_bytes()),
                    "softmax_long_rows differs from the block kernel's bits", 0);
        if (DT >= F16 && op < 2) {
            expect_true(NARROW(softmax_long_rows, x, mask, size, 0, a16, rows, n, (float)sc, op, 0, 3) == 0,
                        "16-bit softmax_long_rows returned an error", 0);
            for (idx i = 0; i < size; i++)
                if (!narrowed_ok(a16[i], out_get(a, i)))
                    expect_true(0, "16-bit softmax_long_rows is not the float result rounded", i);
        }
        for (idx r = 0; r < rows; r++) {
            for (idx c = 0; c < n; c++) {
                v[c] = in_get(x, r * n + c);
                keep[c] = !mask || mask[r * n + c];
            }
            const slice_ref R = reference(v, keep, n, as_real(sc));
            if (op == 2) {
                const double w = want_logsumexp(&R);
                expect(out_get(a, r), w, lse_bound(w, &R, n), "long-row logsumexp", r);
                continue;
            }
            for (idx c = 0; c < n; c++) {
                const double z = keep[c] ? (v[c] - R.m) * as_real(sc) : 0;
                const double w = op ? want_log_softmax(&R, v[c], keep[c], as_real(sc))
                                    : want_softmax(&R, v[c], keep[c], as_real(sc));
                expect(out_get(a, r * n + c), w, op ? log_bound(w, z, &R, n) : softmax_bound(w, z),
                       op ? "long-row log_softmax" : "long-row softmax", r * n + c);
            }
        }
        /* The chunk steps, rebuilt into each row as a harness would split it (scale 1). */
        for (idx r = 0; r < rows && sc == 1.0; r++) {
            const void *xr = in_at(x, r * n);
            const uint8_t *mr = mask ? mask + r * n : NULL;
            double m = -INFINITY, sum = 0;
            for (idx c0 = 0; c0 < n; c0 += FS_CHUNK) {
                const double cm = CALL(row_max, in_at(xr, c0), mr ? mr + c0 : NULL, fs_chunk_length(n, c0));
                if (c0 == 0 || cm > m) m = cm;
            }
            for (idx c0 = 0; c0 < n; c0 += FS_CHUNK)
                sum += CALL(chunk_sum_exp, in_at(xr, c0), mr ? mr + c0 : NULL,
                            op == 0 ? out_at(steps, r * n + c0) : NULL, fs_chunk_length(n, c0), m, 1.0);
            for (idx c = 0; c < n; c++) {
                v[c] = in_get(x, r * n + c);
                keep[c] = !mr || mr[c];
            }
            const slice_ref R = reference(v, keep, n, 1.0);
            if (slice_bad(&R) || R.pinf) continue; /* the steps are for ordinary rows */
            expect(m, R.m, 0, "row_max over the chunks", r);
            expect(sum, R.sum, RTOL() * R.sum + 3 * U() * R.spread * R.sum, "chunk_sum_exp over the chunks", r);
            if (op == 2) {
                const double got = CALL(logsumexp_finish, m, sum, xr, mr, n, 1), w = want_logsumexp(&R);
                expect(got, w, lse_bound(w, &R, n), "logsumexp_finish", r);
                continue;
            }
            for (idx c0 = 0; c0 < n; c0 += FS_CHUNK) {
                const idx len = fs_chunk_length(n, c0);
                if (op == 0) CALL_VOID(scale_span, in_at(xr, c0), mr ? mr + c0 : NULL, out_at(steps, r * n + c0),
                                       len, m, 1.0, 1 / sum);
                else CALL_VOID(log_softmax_span, in_at(xr, c0), mr ? mr + c0 : NULL, out_at(steps, r * n + c0),
                               len, m, 1.0, log(sum), 0);
            }
            /* log_softmax_span is held to what it is given, log(sum): a harness's plain log, not the
             * driver's log1p of a dominated row (which the long-row entry is checked for above) */
            const double lse_given = as_real(log(sum));
            for (idx c = 0; c < n; c++) {
                const double z = keep[c] ? v[c] - R.m : 0;
                const double w = op ? (keep[c] ? z - lse_given : -INFINITY) : want_softmax(&R, v[c], keep[c], 1);
                const double got = out_get(steps, r * n + c);
                /* scale_span leaves masked entries as chunk_sum_exp wrote them: 0 */
                expect(got, w, op ? RTOL() * fabs(w) + 3 * U() * fabs(z) : softmax_bound(w, z),
                       op ? "log_softmax_span over the chunks" : "scale_span over the chunks", r * n + c);
            }
        }
        end_case();
    }
    free(x); free(a); free(b); free(blk); free(steps); free(a16); free(mask); free(v); free(keep);
}

/* ---------------------------------------------------------------- backward */
/* ref: the exact result on the inputs; mag: the size of the terms it is the difference of, whose
 * rounding in the working precision (exp(y) in particular) no kernel avoids: a result that
 * cancels to nearly 0 (one class: g - exp(log 1) g) is held to that, not to its own size. */
static void backward_ref(const void *g, const void *y, double *ref, double *mag, idx outer, idx n, idx stride,
                         int log_)
{
    for (idx o = 0; o < outer; o++)
        for (idx j = 0; j < stride; j++) {
            double s = 0;
            for (idx r = 0; r < n; r++) {
                const idx i = (o * n + r) * stride + j;
                s += log_ ? in_get(g, i) : in_get(g, i) * in_get(y, i);
            }
            for (idx r = 0; r < n; r++) {
                const idx i = (o * n + r) * stride + j;
                ref[i] = log_ ? in_get(g, i) - exp(in_get(y, i)) * s : in_get(y, i) * (in_get(g, i) - s);
                mag[i] = log_ ? fabs(in_get(g, i)) + exp(in_get(y, i)) * fabs(s)
                              : fabs(in_get(y, i)) * (fabs(in_get(g, i)) + fabs(s));
            }
        }
}
static void backward_check(const void *out, const double *ref, const double *mag, idx size, const char *what)
{
    double big = 0;
    for (idx i = 0; i < size; i++) big = fmax(big, fabs(ref[i]));
    const double tol = DT == F64 ? 1e-13 : 2e-6; /* tests/test_backward.py: rtol, atol * max|ref| */
    for (idx i = 0; i < size; i++) expect(out_get(out, i), ref[i], tol * fabs(ref[i]) + tol * big + 4 * U() * mag[i], what, i);
}
static void fill_backward(void *g, void *y, idx outer, idx n, idx stride, int log_)
{
    for (idx o = 0; o < outer; o++)
        for (idx j = 0; j < stride; j++) { /* y: a softmax (or its log) of random logits */
            double s = 0, *l = malloc(sizeof(double) * (size_t)n);
            for (idx r = 0; r < n; r++) { l[r] = 2 * nrand(); s += exp(l[r]); }
            for (idx r = 0; r < n; r++) {
                const idx i = (o * n + r) * stride + j;
                in_set(y, i, log_ ? l[r] - log(s) : exp(l[r]) / s);
                in_set(g, i, nrand());
            }
            free(l);
        }
}
static void backward(idx outer, idx n, idx stride, int log_)
{
    const idx size = outer * n * stride;
    void *g = in_alloc(size), *y = in_alloc(size), *out = out_alloc(size);
    double *ref = malloc(sizeof(double) * (size_t)size), *mag = malloc(sizeof(double) * (size_t)size);
    uint16_t *o16 = calloc((size_t)size + 1, 2);
    fill_backward(g, y, outer, n, stride, log_);
    snprintf(ctx, sizeof ctx, "backward outer=%ld n=%ld stride=%ld log=%d", (long)outer, (long)n, (long)stride, log_);
    CALL_VOID(backward, g, y, out, outer, n, stride, stride, log_);
    backward_ref(g, y, ref, mag, outer, n, stride, log_);
    backward_check(out, ref, mag, size, "backward");
    if (DT >= F16) {
        NARROW(backward, g, y, o16, outer, n, stride, stride, log_);
        for (idx i = 0; i < size; i++)
            if (!narrowed_ok(o16[i], out_get(out, i))) expect_true(0, "16-bit backward is not the float result rounded", i);
    }
    end_case();
    free(g); free(y); free(out); free(ref); free(mag); free(o16);
}
static void backward_long(idx rows, idx n, int log_)
{
    const idx size = rows * n;
    void *g = in_alloc(size), *y = in_alloc(size), *a = out_alloc(size), *b = out_alloc(size);
    double *ref = malloc(sizeof(double) * (size_t)size), *mag = malloc(sizeof(double) * (size_t)size);
    uint16_t *o16 = calloc((size_t)size + 1, 2);
    fill_backward(g, y, rows, n, 1, log_);
    snprintf(ctx, sizeof ctx, "backward_long_rows rows=%ld n=%ld log=%d", (long)rows, (long)n, log_);
    expect_true(CALL(backward_long_rows, g, y, a, rows, n, log_, 1) == 0 &&
                CALL(backward_long_rows, g, y, b, rows, n, log_, 3) == 0, "backward_long_rows returned an error", 0);
    expect_true(bits_equal(a, b, size, out_bytes()), "backward_long_rows: 1 and 3 threads differ", 0);
    backward_ref(g, y, ref, mag, rows, n, 1, log_);
    backward_check(a, ref, mag, size, "backward_long_rows");
    if (DT >= F16) {
        expect_true(NARROW(backward_long_rows, g, y, o16, rows, n, log_, 3) == 0, "16-bit backward_long_rows error", 0);
        for (idx i = 0; i < size; i++)
            if (!narrowed_ok(o16[i], out_get(a, i))) expect_true(0, "16-bit backward_long_rows is not the float result rounded", i);
    }
    end_case();
    free(g); free(y); free(a); free(b); free(ref); free(mag); free(o16);
}

/* ---------------------------------------------------------------- cross-entropy */
/* The reference of one sample, per the formulas at the top of src/fs_cross_entropy_tmpl.h. */
static void ce_reference(const void *x, const int64_t *lab, const void *t, const void *w, double wsum,
                         double eps, double gscale, idx outer, idx n, idx stride, double *loss, double *grad,
                         double *zmax, double *amax)
{
    for (idx o = 0; o < outer; o++)
        for (idx j = 0; j < stride; j++) {
            const idx s = o * stride + j, b = o * n * stride + j;
            double m = -INFINITY, S = 0, A = 0, B = 0, zm = 0;
            for (idx c = 0; c < n; c++) m = fmax(m, in_get(x, b + c * stride));
            for (idx c = 0; c < n; c++) {
                const double z = m - in_get(x, b + c * stride);
                S += exp(-z);
                zm = fmax(zm, z);
            }
            const double L = log(S);
            zmax[s] = zm;
            amax[s] = 1;
            if (lab && lab[s] == -100) {
                loss[s] = 0;
                for (idx c = 0; c < n; c++) grad[b + c * stride] = 0;
                continue;
            }
            if (lab) {
                const idx y = (idx)lab[s];
                const double wy = w ? out_get(w, y) : 1;
                double gap = 0;
                for (idx c = 0; c < n; c++) gap += (w ? out_get(w, c) : 1) * (m - in_get(x, b + c * stride));
                loss[s] = (1 - eps) * wy * (m - in_get(x, b + y * stride) + L) + (eps > 0 ? eps / n * (gap + wsum * L) : 0);
                amax[s] = fmax(1, wy + eps * wsum / n);
                for (idx c = 0; c < n; c++) {
                    const double p = exp(in_get(x, b + c * stride) - m) / S, wc = w ? out_get(w, c) : 1;
                    grad[b + c * stride] = gscale * (p * ((1 - eps) * wy + eps * wsum / n) - eps / n * wc -
                                                     (c == y ? (1 - eps) * wy : 0));
                }
            } else {
                for (idx c = 0; c < n; c++) {
                    const double tp = (1 - eps) * out_get(t, b + c * stride) + eps / n, wc = w ? out_get(w, c) : 1;
                    A += wc * tp;
                    B += wc * tp * (m - in_get(x, b + c * stride));
                }
                loss[s] = B + A * L;
                amax[s] = fmax(1, A);
                for (idx c = 0; c < n; c++) {
                    const double tp = (1 - eps) * out_get(t, b + c * stride) + eps / n, wc = w ? out_get(w, c) : 1;
                    grad[b + c * stride] = gscale * (exp(in_get(x, b + c * stride) - m) / S * A - wc * tp);
                }
            }
        }
}
static void ce_check(const double *loss, const void *grad, const double *rl, const double *rg,
                     const double *zmax, const double *amax, idx samples, idx size, const char *what)
{
    char w[96];
    for (idx s = 0; s < samples; s++) { /* fastsoftmax/_testing.py: LOSS_RTOL, 6u max|z| (times A) */
        snprintf(w, sizeof w, "%s loss", what);
        expect(loss[s], rl[s], LOSS_RTOL() * fabs(rl[s]) + 6 * U() * zmax[s] * amax[s], w, s);
    }
    if (!grad) return;
    double big = 0;
    for (idx i = 0; i < size; i++) big = fmax(big, fabs(rg[i]));
    snprintf(w, sizeof w, "%s gradient", what);
    for (idx i = 0; i < size; i++) expect(out_get(grad, i), rg[i], GRAD_TOL() * (big ? big : 1), w, i);
}
static void ce_inputs(void *x, int64_t *lab, void *t, void *w, double *wsum, idx outer, idx n, idx stride)
{
    const idx size = outer * n * stride, samples = outer * stride;
    for (idx i = 0; i < size; i++) in_set(x, i, 3 * nrand());
    for (idx o = 0; t && o < outer; o++) /* probability targets: each sample's sum to 1 */
        for (idx j = 0; j < stride; j++) {
            double s = 0;
            for (idx c = 0; c < n; c++) s += out_set(t, (o * n + c) * stride + j, urand());
            for (idx c = 0; c < n; c++) out_set(t, (o * n + c) * stride + j, out_get(t, (o * n + c) * stride + j) / s);
        }
    *wsum = 0;
    for (idx c = 0; c < n; c++) *wsum += w ? out_set(w, c, 0.2 + urand()) : 1;
    for (idx s = 0; lab && s < samples; s++) lab[s] = s % 5 == 3 ? -100 : (int64_t)(urand() * (double)n);
}
static void cross_entropy(idx outer, idx n, idx stride, int probs, int weighted, double eps, int with_grad)
{
    const idx size = outer * n * stride, samples = outer * stride;
    void *x = in_alloc(size), *t = probs ? out_alloc(size) : NULL, *w = weighted ? out_alloc(n) : NULL;
    void *grad = with_grad ? out_alloc(size) : NULL;
    int64_t *lab = probs ? NULL : malloc(sizeof(int64_t) * (size_t)samples);
    double *loss = malloc(sizeof(double) * (size_t)samples), *rl = malloc(sizeof(double) * (size_t)samples);
    double *zmax = malloc(sizeof(double) * (size_t)samples), *amax = malloc(sizeof(double) * (size_t)samples);
    double *rg = malloc(sizeof(double) * (size_t)size), wsum;
    ce_inputs(x, lab, t, w, &wsum, outer, n, stride);
    const double gscale = 0.5;
    snprintf(ctx, sizeof ctx, "cross_entropy outer=%ld n=%ld stride=%ld probs=%d weight=%d eps=%g grad=%d",
             (long)outer, (long)n, (long)stride, probs, weighted, eps, with_grad);
    CALL_VOID(cross_entropy, x, lab, t, w, wsum, eps, -100, loss, grad, gscale, outer, n, stride, stride,
              0);
    ce_reference(x, lab, t, w, wsum, eps, gscale, outer, n, stride, rl, rg, zmax, amax);
    ce_check(loss, grad, rl, rg, zmax, amax, samples, size, "cross_entropy");
    if (grad) { /* the gradient streamed (FS_STREAM_OUTPUT), one element off alignment: the same bits */
        void *streamed = out_alloc(size + 1);
        double *streamed_loss = malloc(sizeof(double) * (size_t)samples);
        CALL_VOID(cross_entropy, x, lab, t, w, wsum, eps, -100, streamed_loss, out_at(streamed, 1),
                  gscale, outer, n, stride, stride, FS_STREAM_OUTPUT);
        expect_true(bits_equal(out_at(streamed, 1), grad, size, out_bytes()) &&
                        bits_equal(streamed_loss, loss, samples, 8),
                    "streamed cross_entropy differs from the ordinary one's bits", 0);
        free(streamed);
        free(streamed_loss);
    }
    if (grad && DT >= F16) { /* a 16-bit gradient: the float one rounded once, off alignment and in place */
        uint16_t *g16 = zalloc((size_t)(size + 1) * 2), *in_place = zalloc((size_t)size * 2);
        double *loss16 = malloc(sizeof(double) * (size_t)samples);
        NARROW(cross_entropy, x, lab, t, w, wsum, eps, -100, loss16, g16 + 1, gscale, outer, n, stride,
               stride, 0);
        for (idx i = 0; i < size; i++)
            expect_true(narrowed_ok(g16[1 + i], out_get(grad, i)),
                        "16-bit cross_entropy gradient is not the float one rounded", i);
        expect_true(bits_equal(loss16, loss, samples, 8), "16-bit cross_entropy's loss differs", 0);
        memcpy(in_place, x, (size_t)size * 2);
        NARROW(cross_entropy, in_place, lab, t, w, wsum, eps, -100, loss16, in_place, gscale, outer, n,
               stride, stride, 0);
        expect_true(bits_equal(in_place, g16 + 1, size, 2), "16-bit cross_entropy in place differs", 0);
        free(g16);
        free(in_place);
        free(loss16);
    }
    end_case();
    free(x); free(t); free(w); free(grad); free(lab); free(loss); free(rl); free(zmax); free(amax); free(rg);
}
static void cross_entropy_long(idx rows, idx n, int probs, int weighted, double eps)
{
    const idx size = rows * n;
    void *x = in_alloc(size), *t = probs ? out_alloc(size) : NULL, *w = weighted ? out_alloc(n) : NULL;
    void *ga = out_alloc(size), *gb = out_alloc(size);
    int64_t *lab = probs ? NULL : malloc(sizeof(int64_t) * (size_t)rows);
    double *la = malloc(sizeof(double) * (size_t)rows), *lb = malloc(sizeof(double) * (size_t)rows);
    double *rl = malloc(sizeof(double) * (size_t)rows), *zmax = malloc(sizeof(double) * (size_t)rows);
    double *amax = malloc(sizeof(double) * (size_t)rows), *rg = malloc(sizeof(double) * (size_t)size), wsum;
    ce_inputs(x, lab, t, w, &wsum, rows, n, 1);
    if (lab && rows > 3) lab[3] = -100;
    snprintf(ctx, sizeof ctx, "cross_entropy_long_rows rows=%ld n=%ld probs=%d weight=%d eps=%g",
             (long)rows, (long)n, probs, weighted, eps);
    expect_true(CALL(cross_entropy_long_rows, x, lab, t, w, wsum, eps, -100, la, ga, 1.0 / 3, rows, n, 0, 1) == 0 &&
                CALL(cross_entropy_long_rows, x, lab, t, w, wsum, eps, -100, lb, gb, 1.0 / 3, rows, n, 0, 3) == 0,
                "cross_entropy_long_rows returned an error", 0);
    expect_true(bits_equal(la, lb, rows, 8) && bits_equal(ga, gb, size, out_bytes()),
                "cross_entropy_long_rows: 1 and 3 threads differ", 0);
    expect_true(CALL(cross_entropy_long_rows, x, lab, t, w, wsum, eps, -100, lb, gb, 1.0 / 3, rows, n,
                     FS_STREAM_OUTPUT, 3) == 0 &&
                    bits_equal(la, lb, rows, 8) && bits_equal(ga, gb, size, out_bytes()),
                "streamed cross_entropy_long_rows differs from the ordinary one's bits", 0);
    ce_reference(x, lab, t, w, wsum, eps, 1.0 / 3, rows, n, 1, rl, rg, zmax, amax);
    ce_check(la, ga, rl, rg, zmax, amax, rows, size, "cross_entropy_long_rows");
    /* and without a gradient: the same losses */
    expect_true(CALL(cross_entropy_long_rows, x, lab, t, w, wsum, eps, -100, lb, NULL, 1.0 / 3, rows, n, 0, 3) == 0,
                "cross_entropy_long_rows (no gradient) returned an error", 0);
    expect_true(bits_equal(la, lb, rows, 8), "cross_entropy_long_rows: loss differs without the gradient", 0);
    end_case();
    free(x); free(t); free(w); free(ga); free(gb); free(lab); free(la); free(lb); free(rl); free(zmax);
    free(amax); free(rg);
}

/* ---------------------------------------------------------------- top_k */
/* a ranks before b: larger value (NaN above +inf) for `largest`, smaller (NaN last) otherwise,
 * then the lower index. */
static const double *tk_v;
static int tk_largest;
static int tk_cmp(const void *pa, const void *pb)
{
    const idx a = *(const idx *)pa, b = *(const idx *)pb;
    const double va = tk_v[a], vb = tk_v[b];
    const int na = isnan(va), nb = isnan(vb);
    int c;
    if (na || nb) c = na && nb ? 0 : na ? -1 : 1; /* NaN ranks first when largest */
    else c = va > vb ? -1 : va < vb ? 1 : 0;
    if (!tk_largest) c = -c;
    return c ? c : a < b ? -1 : 1;
}
static void top_k(idx rows, idx n, idx k, int largest, int ties)
{
    void *x = in_alloc(rows * n), *vals = out_alloc(rows * k);
    int64_t *ind = malloc(sizeof(int64_t) * (size_t)(rows * k));
    double *v = malloc(sizeof(double) * (size_t)n);
    idx *order = malloc(sizeof(idx) * (size_t)n);
    for (idx i = 0; i < rows * n; i++) in_set(x, i, ties ? floor(2 * nrand()) : 3 * nrand());
    if (rows > 1) { in_set(x, n + n / 2, NAN); in_set(x, n + n / 3, INFINITY); in_set(x, n, -INFINITY); }
    if (rows > 2 && n > 1) { in_set(x, 2 * n, -0.0); in_set(x, 2 * n + 1, 0.0); }
    snprintf(ctx, sizeof ctx, "top_k rows=%ld n=%ld k=%ld largest=%d ties=%d", (long)rows, (long)n, (long)k, largest, ties);
    CALL_VOID(top_k, x, vals, ind, rows, n, k, largest);
    for (idx r = 0; r < rows; r++) {
        for (idx i = 0; i < n; i++) { v[i] = in_get(x, r * n + i); order[i] = i; }
        tk_v = v;
        tk_largest = largest;
        qsort(order, (size_t)n, sizeof(idx), tk_cmp);
        for (idx j = 0; j < k; j++) {
            expect((double)ind[r * k + j], (double)order[j], 0, "top_k index", r * k + j);
            expect(out_get(vals, r * k + j), v[order[j]], 0, "top_k value", r * k + j);
        }
    }
    end_case();
    free(x); free(vals); free(ind); free(v); free(order);
}

/* ---------------------------------------------------------------- sample */
static int rank_cmp(const void *pa, const void *pb) /* value descending, then id */
{
    const idx a = *(const idx *)pa, b = *(const idx *)pb;
    return tk_v[a] > tk_v[b] ? -1 : tk_v[a] < tk_v[b] ? 1 : a < b ? -1 : 1;
}
static int id_cmp(const void *pa, const void *pb)
{
    const idx a = *(const idx *)pa, b = *(const idx *)pb;
    return a < b ? -1 : 1;
}
/* fastsoftmax/_reference_sample.py's oracle for one finite row: token, n_kept, logprob. */
static void sample_reference(const double *s, idx n, const fs_sample_params *p, int64_t *token,
                             int64_t *n_kept, double *logprob)
{
    double m = -INFINITY;
    idx am = 0;
    for (idx i = 0; i < n; i++) if (s[i] > m) { m = s[i]; am = i; }
    *n_kept = 1;
    *logprob = 0;
    if (p->inv_temperature == 0) { *token = am; return; }
    double *w = malloc(sizeof(double) * (size_t)n);
    idx *order = malloc(sizeof(idx) * (size_t)n), kept_n = n;
    for (idx i = 0; i < n; i++) { w[i] = s[i] == -INFINITY ? 0 : exp((s[i] - m) * p->inv_temperature); order[i] = i; }
    tk_v = s;
    qsort(order, (size_t)n, sizeof(idx), rank_cmp);
    const idx keep_min = (idx)p->min_keep;
    if (p->top_k > 0) {
        const double kth = s[order[p->top_k - 1]];
        while (kept_n > 0 && s[order[kept_n - 1]] < kth) kept_n--;
    }
    if (p->top_p < 1) {
        double total = 0, before = 0;
        if (p->top_k > 0) for (idx i = 0; i < kept_n; i++) total += w[order[i]];
        else for (idx i = 0; i < n; i++) total += w[i];
        idx keep = 0;
        for (; keep < kept_n; keep++) {
            if (!(before < p->top_p * total) && keep >= keep_min) break;
            before += w[order[keep]];
        }
        kept_n = keep;
    }
    if (p->min_p > 0) {
        idx keep = 0;
        while (keep < kept_n && (w[order[keep]] >= p->min_p || keep < keep_min)) keep++;
        kept_n = keep;
    }
    *n_kept = 0;
    for (idx i = 0; i < kept_n; i++) *n_kept += isfinite(s[order[i]]);
    qsort(order, (size_t)kept_n, sizeof(idx), id_cmp);
    double total = 0;
    for (idx i = 0; i < kept_n; i++) total += w[order[i]];
    double cum = 0;
    idx pick = -1, last_pos = 0;
    for (idx i = 0; i < kept_n; i++) {
        cum += w[order[i]];
        if (w[order[i]] > 0) last_pos = i;
        if (pick < 0 && cum > p->u * total) pick = i;
    }
    if (pick < 0) pick = last_pos;
    *token = order[pick];
    *logprob = (s[order[pick]] - m) * p->inv_temperature - log(total);
    free(w); free(order);
}
static void sample(idx n)
{
    enum { ROWS = 5, CONFIGS = 6, TOP = 4 };
    static const fs_sample_params configs[CONFIGS] = {
        {1.0 / 0.7, 50, 0.9, 0.0, 1, 0}, {1.0 / 0.7, 0, 1.0, 0.0, 1, 0}, {1.0, 0, 0.9, 0.0, 1, 0},
        {1.0 / 1.3, 0, 1.0, 0.05, 3, 0}, {0.0, 0, 1.0, 0.0, 1, 0},      {1.0, 7, 0.5, 0.01, 2, 0},
    };
    void *x = in_alloc(ROWS * n);
    double *s = malloc(sizeof(double) * (size_t)n);
    const idx top = n < TOP ? n : TOP;
    for (idx i = 0; i < ROWS * n; i++) in_set(x, i, 3 * nrand());
    for (idx i = 0; i < n; i += 3) in_set(x, 2 * n + i, -INFINITY); /* masked tokens in row 2 */
    for (int c = 0; c < CONFIGS; c++) {
        fs_sample_params params[ROWS];
        fs_sample_result res[ROWS];
        int64_t top_tokens[ROWS * TOP];
        float top_lp[ROWS * TOP];
        for (int r = 0; r < ROWS; r++) {
            params[r] = configs[c];
            if (params[r].top_k >= n) params[r].top_k = 0;
            if (params[r].min_keep > n) params[r].min_keep = n;
            params[r].u = (r + 0.37) / (ROWS + 0.5);
        }
        snprintf(ctx, sizeof ctx, "sample n=%ld config=%d", (long)n, c);
        CALL_VOID(sample, x, ROWS, n, params, res, top_tokens, top_lp, top);
        for (int r = 0; r < ROWS; r++) {
            for (idx i = 0; i < n; i++) s[i] = in_get(x, r * n + i);
            int64_t tok, kept;
            double lp;
            sample_reference(s, n, &params[r], &tok, &kept, &lp);
            expect((double)res[r].status, FS_SAMPLE_OK, 0, "sample status", r);
            expect((double)res[r].token, (double)tok, 0, "sample token", r);
            if (params[r].inv_temperature != 0) {
                expect((double)res[r].n_kept, (double)kept, 0, "sample n_kept", r);
                expect(res[r].logprob, lp, 2e-6 * fabs(lp) + 1e-6, "sample logprob", r);
            }
            /* the n_top most likely ids, and their log-probabilities at temperature (1 if greedy) */
            const double tau = params[r].inv_temperature == 0 ? 1 : params[r].inv_temperature;
            idx *order = malloc(sizeof(idx) * (size_t)n);
            double m = -INFINITY, tot = 0;
            for (idx i = 0; i < n; i++) { order[i] = i; m = fmax(m, s[i]); }
            for (idx i = 0; i < n; i++) tot += s[i] == -INFINITY ? 0 : exp((s[i] - m) * tau);
            tk_v = s;
            qsort(order, (size_t)n, sizeof(idx), rank_cmp);
            for (idx j = 0; j < top; j++) {
                const double want = s[order[j]] == -INFINITY ? -INFINITY : (s[order[j]] - m) * tau - log(tot);
                expect((double)top_tokens[r * top + j], (double)order[j], 0, "sample top token", r * top + j);
                expect(top_lp[r * top + j], want, 2e-6 * fabs(want) + 1e-6, "sample top logprob", r * top + j);
            }
            free(order);
        }
        end_case();
    }
    /* rows with no token: a NaN, a +inf, every entry -inf */
    fs_sample_params p3[3];
    fs_sample_result r3[3];
    for (int r = 0; r < 3; r++) { p3[r] = configs[1]; p3[r].top_k = 0; p3[r].u = 0.5; }
    for (idx i = 0; i < 3 * n; i++) in_set(x, i, i < 2 * n ? nrand() : -INFINITY);
    in_set(x, n / 2, NAN);
    in_set(x, n + n / 2, INFINITY);
    snprintf(ctx, sizeof ctx, "sample n=%ld: bad rows", (long)n);
    CALL_VOID(sample, x, 3, n, p3, r3, NULL, NULL, 0);
    expect((double)r3[0].status, FS_SAMPLE_NAN, 0, "sample status of a NaN row", 0);
    expect((double)r3[1].status, FS_SAMPLE_POS_INF, 0, "sample status of a +inf row", 1);
    expect((double)r3[2].status, FS_SAMPLE_NO_FINITE, 0, "sample status of an all -inf row", 2);
    end_case();
    free(x); free(s);
}

/* ---------------------------------------------------------------- exp */
/* |got - exp(x)| in ULP of the correctly rounded result (float ULPs for every dtype but f64). */
static double exp_ulp(double got, long double want)
{
    if (DT == F64) {
        const double w = (double)want;
        return (double)(fabsl((long double)got - want) / (long double)(nextafter(w, INFINITY) - w));
    }
    const float w = (float)want;
    return (double)(fabsl((long double)got - want) / (long double)(nextafterf(w, INFINITY) - w));
}
static void exp_checks(long step)
{
    /* README / src/fs_exp.h: float 1.00 ULP with AVX-512 and 0.89 with AVX2 (a table of 16 or
     * 8 powers: 0.9989 and 0.8895 measured over every float), double 0.61 with AVX-512 (a
     * table of 8: 0.6035 over 6*10^7 samples) and 0.94 with AVX2; 1.35 and 1.22 without FMA
     * (SSE2, plain C; aarch64 builds, which contract to FMA, are held to that too). */
    const int fma_isa = T->vector_bytes >= 32, table_f64 = T->vector_bytes >= 64;
    const double bound = DT == F64 ? (table_f64 ? 0.61 : fma_isa ? 0.94 : 1.22)
                                   : (T->vector_bytes >= 64 ? 1.0 : fma_isa ? 0.9 : 1.35);
    const double tiny = DT == F64 ? DBL_MIN : FLT_MIN, huge = DT == F64 ? DBL_MAX : FLT_MAX;
    double worst = 0, worst_x = 0;
    long total = 0;
    snprintf(ctx, sizeof ctx, "exp_span sweep");
    enum { BLOCK = 1 << 16 };
    void *x = in_alloc(BLOCK), *e = out_alloc(BLOCK);
    /* float32: every step-th float of [-104, 88.75] by bit pattern, both signs; float64:
     * sampled uniformly over [-745, 710] and [-1, 1]; 16-bit: every value. */
    const uint64_t f32_neg = (0xc2d00000u - 0x80000000u) / (uint64_t)step + 1, f32_pos = 0x42b18000u / (uint64_t)step + 1;
    const uint64_t count = DT == F32 ? f32_neg + f32_pos : DT == F64 ? (step > 97 ? 100000 : 400000) : 65536;
    for (uint64_t b0 = 0; b0 < count; b0 += BLOCK) {
        const idx n = (idx)(count - b0 < BLOCK ? count - b0 : BLOCK);
        for (idx i = 0; i < n; i++) {
            const uint64_t k = b0 + (uint64_t)i;
            if (DT == F32) {
                const uint32_t bits = k < f32_neg ? 0x80000000u + (uint32_t)(k * (uint64_t)step)
                                                  : (uint32_t)((k - f32_neg) * (uint64_t)step);
                float f;
                memcpy(&f, &bits, 4);
                ((float *)x)[i] = f;
            } else if (DT == F64) {
                ((double *)x)[i] = k % 4 == 0 ? 2 * urand() - 1 : -745 + 1455 * urand();
            } else {
                ((uint16_t *)x)[i] = (uint16_t)k;
            }
        }
        CALL_VOID(exp_span, x, e, n);
        total += (long)n;
        for (idx i = 0; i < n; i++) {
            const double xi = in_get(x, i), got = out_get(e, i);
            const long double want = expl((long double)xi);
            if (isnan(xi)) { expect_true(isnan(got), "exp(NaN) is not NaN", i); continue; }
            if (want < tiny) { expect(got, (double)want, tiny, "exp below the smallest normal", i); continue; }
            if (want > (long double)huge * (1 + 0x1p-20L)) { expect(got, INFINITY, 0, "exp overflow", i); continue; }
            if (want > huge) continue; /* within rounding of overflow: either */
            const double ulp = exp_ulp(got, want);
            if (!(ulp <= worst)) { worst = ulp; worst_x = xi; }
        }
    }
    printf("  [%s %s] exp max %.3f ULP (at x=%.9g) over %ld inputs, bound %.2f\n", T->isa, DT_NAME[DT], worst,
           worst_x, total, bound);
    expect(worst, 0, bound, "exp max ULP", 0);
    end_case();
    free(x); free(e);
    /* specials, and tails: the entry writes exactly n outputs */
    x = in_alloc(80);
    e = out_alloc(80);
    const double sp[6] = {0.0, -0.0, -INFINITY, NAN, INFINITY, -1e30};
    const double want[6] = {1, 1, 0, NAN, INFINITY, 0};
    for (int i = 0; i < 6; i++) in_set(x, i, sp[i]);
    snprintf(ctx, sizeof ctx, "exp_span specials and tails");
    CALL_VOID(exp_span, x, e, 6);
    for (int i = 0; i < 6; i++) expect(out_get(e, i), want[i], 0, "exp special", i);
    expect_true(!signbit(out_get(e, 2)), "exp(-inf) is -0", 2);
    for (idx len = 1; len < 70; len++) {
        for (idx i = 0; i < len; i++) in_set(x, i, -20.0 * (double)i / (double)(len > 1 ? len - 1 : 1));
        out_set(e, len, 12345);
        CALL_VOID(exp_span, x, e, len);
        for (idx i = 0; i < len; i++) {
            const double xi = in_get(x, i);
            expect(out_get(e, i), exp(xi), 1.5 * (DT == F64 ? 0x1p-52 : 0x1p-23) * exp(xi), "exp tail", i);
        }
        expect(out_get(e, len), 12345, 0, "exp_span wrote past its end", len);
    }
    end_case();
    free(x); free(e);
}

/* ---------------------------------------------------------------- narrow */
static void narrow_checks(void)
{
    enum { N = 70000 };
    float *f = malloc(sizeof(float) * N);
    uint16_t *h = calloc(N + 8, 2);
    long ties_away = 0;
    for (idx i = 0; i < N; i++) {
        uint32_t b = (uint32_t)(urand() * 4294967296.0);
        if (i % 4 == 0) b = (b & 0x8000ffffu) | (0x38000000u + ((uint32_t)i << 12 & 0x07ff0000u)); /* near f16's range */
        memcpy(&f[i], &b, 4);
    }
    const float sp[] = {0, -0.0f, INFINITY, -INFINITY, NAN, 65504, 65520, 65519.99f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f,
                        1.0009765625f, 1.00048828125f, 1.00146484375f, 3.4e38f, 1.0039062f, 1.0019531f};
    memcpy(f, sp, sizeof sp);
    h[N] = 0xabcd;
    snprintf(ctx, sizeof ctx, "narrow");
    NARROW(narrow, f, h, N);
    for (idx i = 0; i < N; i++) {
        const uint16_t want = round16(f[i]);
        if (narrowed_ok(h[i], f[i])) {
            ties_away += h[i] != want && !isnan(f[i]);
            continue;
        }
        if (case_fails++ < 4)
            printf("FAIL [%s %s] narrow(%.9g) = 0x%04x, want 0x%04x\n", T->isa, DT_NAME[DT], f[i], h[i], want);
    }
    if (ties_away)
        printf("  [%s %s] narrow: %ld ties not rounded to even (allowed by --f16-ties-either)\n", T->isa,
               DT_NAME[DT], ties_away);
    expect(h[N], 0xabcd, 0, "narrow wrote past its end", N);
    end_case();
    free(f); free(h);
}

/* ---------------------------------------------------------------- one table */
static void run_dtype(long exp_step)
{
    const fs_block_sizes *bs = DT == F32 ? &T->f32.sizes : DT == F64 ? &T->f64.sizes
                             : DT == F16 ? &T->f16.sizes : &T->bf16.sizes;
    printf("  [%s %s] lanes %d, unroll %d, short rows <= %d (softmax's %d), chunk %ld\n", T->isa,
           DT_NAME[DT], bs->lanes, bs->unroll, bs->short_row, bs->short_softmax_row, (long)bs->chunk);
    exp_checks(exp_step);
    if (DT >= F16) narrow_checks();
    /* rows: every length 1..40, the block sizes' boundaries above that (softmax's short rows, the blocked sum's
     * step, from which rows are walked alone, the shortest pipelined row, one pipelined a chunk
     * at a time (pytest covers pipelined_to), and the longest rows whose
     * streamed softmax keeps its exponentials in a scratch row, on the stack and on the heap),
     * row counts around
     * multiples of 4, 8 and 16 (short rows run one row per lane) */
    static const idx outers[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33};
    const idx step = (idx)bs->lanes * bs->unroll, block = step * bs->flush_steps;
    const idx extra[] = {step - 1, step, step + 1, 2 * step - 1, 2 * step + 1, 4 * step + 3, 63, 64, 65,
                         127, 129, 255, 257, 1000, 4099, bs->stream_scratch - 1, bs->stream_scratch,
                         bs->stream_scratch + 1, block - 1, block, block + 1,
                         bs->pipelined_from - 1, bs->pipelined_from, bs->pipelined_from + 1,
                         bs->log_pipelined_from - 1, bs->log_pipelined_from, bs->log_pipelined_from + 1,
                         bs->stream_rows_from - 1, bs->stream_rows_from, bs->stream_rows_from + 1,
                         bs->short_softmax_row - 1, bs->short_softmax_row, bs->short_softmax_row + 1,
                         bs->chunk + bs->lanes + 1,
                         block + (idx)bs->lanes * bs->flush_steps + 1};
    idx ns[40 + sizeof extra / sizeof extra[0]], nn = 0;
    for (idx n = 1; n <= 40; n++) ns[nn++] = n;
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) if (extra[k] > 40) ns[nn++] = extra[k];
    for (idx k = 0; k < nn; k++) {
        const idx n = ns[k], outer = outers[k % 12], o2 = outers[(k + 5) % 12];
        family(outer, n, 1, 0, 1, 1.0, (int)(k % MASK_MODES), SP_NONE);
        family(o2, n, 1, 0, 1, k % 3 == 0 ? 0.5 : 2.5, (int)((k + 1) % MASK_MODES), SP_NONE);
        family(outer, n, 1, 0, 1, 1.0, (int)((k + 2) % MASK_MODES), SP_MIXED);
        family(o2 + 10, n, 1, 0, 1, 1.0 / 0.7, (int)((k + 3) % MASK_MODES), SP_MIXED);
    }
    /* the longest rows whose streamed sum pass keeps its values in a scratch row on the heap, +-1 */
    for (idx d = -1; d <= 1; d++)
        family(2, (idx)bs->stream_row_scratch + d, 1, 0, 1, d ? 1.0 : 0.5, (int)((d + 1) % MASK_MODES),
               SP_NONE);
    family(1, 0, 1, 0, 1, 1.0, MASK_FULL, SP_NONE); /* an empty reduced axis */
    /* panels: widths around the lanes, partial tiles, column sub-ranges */
    static const idx widths[] = {2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 40, 70};
    static const idx pn[] = {1, 2, 5, 16, 17, 33};
    for (size_t a = 0; a < sizeof widths / sizeof widths[0]; a++)
        for (size_t b = 0; b < sizeof pn / sizeof pn[0]; b++) {
            const idx w = widths[a];
            family(2, pn[b], w, 0, w, 1.0, (int)((a + b) % MASK_MODES), (int)(b % 2));
            if (w >= 3) family(3, pn[b], w, 1, w - 1, 0.7, (int)((a + b + 1) % MASK_MODES), (int)((a + b) % 2));
            if (w >= 32) family(1, pn[b], w, 16, w, 1.5, MASK_SLAB, SP_NONE);
        }
    /* long rows: more than 2 chunks, and exactly 3, 1 and 3 threads */
    for (int masked = 0; masked < 2; masked++) {
        long_rows(2, 2 * FS_CHUNK + 1234, masked, masked, 1.0);
        long_rows(1, 3 * FS_CHUNK, masked, 0, masked ? 1.0 / 0.7 : 1.0);
    }
    for (int lg = 0; lg < 2; lg++) {
        static const idx bshape[][3] = {{3, 1, 1}, {4, 7, 1}, {9, 16, 1}, {17, 17, 1}, {5, 64, 1}, {1, 129, 3},
                                        {2, 5000, 1}, {3, 17, 5}, {2, 9, 33}, {2, 3, 16}};
        for (size_t k = 0; k < sizeof bshape / sizeof bshape[0]; k++) backward(bshape[k][0], bshape[k][1], bshape[k][2], lg);
        backward_long(2, 2 * FS_CHUNK + 77, lg);
    }
    /* rows one per lane up to 64 (48 with AVX2) classes: each limit and the lengths beside it */
    static const idx cshape[][3] = {{7, 33, 1}, {4, 10, 1}, {17, 16, 1}, {9, 3, 1}, {16, 1000, 1}, {3, 17, 5},
                                    {2, 5, 40}, {5, 1, 1}, {2, 9, 8}, {3, 2 * FS_CHUNK + 5, 1}, {19, 47, 1},
                                    {33, 48, 1}, {9, 49, 1}, {17, 63, 1}, {35, 64, 1}, {11, 65, 1}};
    for (size_t k = 0; k < sizeof cshape / sizeof cshape[0]; k++)
        for (int probs = 0; probs < 2; probs++)
            for (int wt = 0; wt < 2; wt++)
                cross_entropy(cshape[k][0], cshape[k][1], cshape[k][2], probs, wt, (k + wt) % 2 ? 0.1 : 0.0,
                              (int)((k + probs) % 3 != 2));
    for (int probs = 0; probs < 2; probs++) cross_entropy_long(4, 2 * FS_CHUNK + 31, probs, probs, probs ? 0.0 : 0.1);
    cross_entropy_long(4, 2 * FS_CHUNK + 31, 0, 1, 0.0);
    static const idx tn[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 100, 1000};
    for (size_t a = 0; a < sizeof tn / sizeof tn[0]; a++) {
        const idx n = tn[a], ks[4] = {1, n < 2 ? 1 : 2, n < 5 ? n : 5, n};
        for (int k = 0; k < 4; k++)
            for (int largest = 0; largest < 2; largest++) top_k(3, n, ks[k], largest, (int)((a + k) % 2));
    }
    static const idx sn[] = {2, 5, 16, 17, 100, 1000, 4099};
    for (size_t a = 0; a < sizeof sn / sizeof sn[0]; a++) sample(sn[a]);
}

/*
 * src/fs_fp_env.h on this machine's control register (MXCSR, or FPCR: AArch64 runs
 * only here, under qemu): from each hostile state the tests of tests/test_fp_env.py
 * use, entering gives round to nearest and keeps subnormal results, and leaving gives
 * the state back.  Counted as one case per state, before the kernels' own.
 */
static void fp_env_checks(void)
{
    const uint64_t own = fs_fp_env_get_raw();
    static const int states[][3] = {{1, 0, 0}, {0, 1, 0}, {0, 2, 0}, {0, 3, 1}, {1, 1, 1}};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        const uint64_t hostile = fs_fp_env_hostile(states[i][0], states[i][1], states[i][2]);
        fs_fp_env_set_raw(hostile);
        const uint64_t held = fs_fp_env_get_raw(); /* (a core without trapping drops those bits) */
        const fs_fp_env env = fs_fp_env_enter();
        volatile float tiny = 0x1p-100f, small = 0x1p-30f, one = 1.0f, half_ulp = 0x1p-24f;
        const float subnormal = tiny * small;   /* 2^-130: flushed to 0 under FTZ */
        const float sum = one + half_ulp;       /* a tie: 1 to nearest even, not 1 + 2^-23 */
        const float down = -one - half_ulp;     /* -1 to nearest, not -1 - 2^-23 */
        fs_fp_env_leave(env);
        const uint64_t back = fs_fp_env_get_raw();
        fs_fp_env_set_raw(own);
        snprintf(ctx, sizeof ctx, "fp_env state %zu", i);
        expect(subnormal, 0x1p-130, 0, "a subnormal result kept", (idx)i);
        expect(sum, 1.0, 0, "round to nearest", (idx)i);
        expect(down, -1.0, 0, "round to nearest (negative)", (idx)i);
        expect_true(back == held, "the thread's own state given back", (idx)i);
        end_case();
    }
}

int main(int argc, char **argv)
{
    long exp_step = 97;
    const char *isas[8];
    int n_isas = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--exp-step") && i + 1 < argc) exp_step = atol(argv[++i]);
        else if (!strcmp(argv[i], "--f16-ties-either")) f16_ties_either = 1;
        else if (n_isas < 8) isas[n_isas++] = argv[i];
    }
    if (exp_step < 1) exp_step = 1;
    printf("ISAs this build and CPU run: %s\n", fs_available_isas());
    if (n_isas == 0) {
        printf("usage: %s ISA [ISA ...] [--exp-step N]\n", argv[0]);
        return 2;
    }
    /* "available": every table this build and CPU run (the x86 ones natively, in CI) */
    char names[64];
    snprintf(names, sizeof names, "%s", fs_available_isas());
    if (n_isas == 1 && !strcmp(isas[0], "available")) {
        n_isas = 0;
        for (char *name = strtok(names, " "); name && n_isas < 8; name = strtok(NULL, " ")) isas[n_isas++] = name;
    }
    T = fs_select_kernels(isas[0]); /* (named in fp_env_checks' messages) */
    if (T) {
        DT = F32;
        fp_env_checks();
        printf("[fp_env] %ld passed, %ld failed\n", n_pass, n_fail);
    }
    for (int k = 0; k < n_isas; k++) {
        T = fs_select_kernels(isas[k]);
        if (!T) {
            printf("FAIL: ISA %s is not available here\n", isas[k]);
            n_fail++;
            continue;
        }
        const long p0 = n_pass, f0 = n_fail;
        for (DT = F32; DT <= BF16; DT++) {
            run_dtype(exp_step);
            fflush(stdout);
        }
        printf("[%s] %ld passed, %ld failed\n", T->isa, n_pass - p0, n_fail - f0);
        fflush(stdout);
    }
    printf("%ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail != 0;
}
