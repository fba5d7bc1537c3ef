/*
 * The sampler, top_k and the 16-bit kernels of every ISA table this build and CPU
 * have, on the same deterministic rows, printed one line per case: for the sampler
 * the token, n_kept, the logprob to 1e-6, and a hash of top_k's indices; for the
 * float16/bfloat16 kernels (softmax, log_softmax, logsumexp and the backward helpers,
 * float32 and 16-bit results, and the rounding of floats to 16 bits) a hash of every
 * output bit.  Built natively and for aarch64 (run under qemu-user), the outputs must
 * be identical line for line: tools/isa_check.sh compares them.  This is how the NEON
 * build, which no test machine runs natively, is held to the x86 builds that
 * tests/test_sample.py and tests/test_half.py check against the reference.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_kernels.h"

static uint64_t lcg_state = 88172645463325252ull;

/* A standard normal, by Box-Muller on a 64-bit LCG: the same numbers on every platform. */
static double normal(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u1 = ((double)(lcg_state >> 11) + 0.5) / 9007199254740992.0;
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u2 = ((double)(lcg_state >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

enum { CONFIGS = 6 };
/* inv_temperature, top_k, top_p, min_p, min_keep (u is per row) */
static const fs_sample_params configs[CONFIGS] = {
    {1.0 / 0.7, 50, 0.9, 0.0, 1, 0},  /* Hugging Face's chain: the heap */
    {1.0 / 0.7, 0, 1.0, 0.0, 1, 0},   /* temperature alone: the block draw */
    {1.0, 0, 0.9, 0.0, 1, 0},         /* top-p alone: the threshold list */
    {1.0 / 1.3, 0, 1.0, 0.05, 3, 0},  /* min-p alone */
    {0.0, 0, 1.0, 0.0, 1, 0},         /* greedy */
    {1.0, 7, 0.5, 0.01, 2, 0},        /* everything, on ties */
};

static int run(const fs_kernel_table *table, fs_index n, int ties)
{
    enum { ROWS = 5, TOP = 4 };
    float *x = malloc(sizeof(float) * ROWS * n);
    double *y = malloc(sizeof(double) * ROWS * n);
    float *values32 = malloc(sizeof(float) * ROWS * 50);
    double *values64 = malloc(sizeof(double) * ROWS * 50);
    int64_t *indices = malloc(sizeof(int64_t) * ROWS * 50);
    int64_t top_tokens[ROWS * TOP] = {0};
    float top_logprobs[ROWS * TOP] = {0};
    const fs_index top = n < TOP ? n : TOP; /* the kernel's contract: n_top <= n */
    if (!x || !y || !values32 || !values64 || !indices)
        return 1;
    lcg_state = 88172645463325252ull + (uint64_t)n + (uint64_t)ties;
    for (fs_index i = 0; i < ROWS * n; i++) {
        const double v = ties ? floor(normal() * 2.0) : normal() * 3.0;
        x[i] = (float)v;
        y[i] = (double)x[i];
    }
    for (fs_index i = 0; i < n; i += 3)
        x[2 * n + i] = y[2 * n + i] = -INFINITY; /* masked tokens in row 2 */
    const fs_index k = n < 50 ? n : 50;
    for (int dtype = 0; dtype < 2; dtype++) {
        for (int c = 0; c < CONFIGS; c++) {
            fs_sample_params params[ROWS];
            fs_sample_result results[ROWS];
            for (int r = 0; r < ROWS; r++) {
                params[r] = configs[c];
                if (params[r].top_k >= n)
                    params[r].top_k = 0;
                if (params[r].min_keep > n)
                    params[r].min_keep = n;
                params[r].u = (r + 0.37) / (ROWS + 0.5);
            }
            if (dtype == 0)
                table->f32.sample(x, ROWS, n, params, results, top_tokens, top_logprobs, top);
            else
                table->f64.sample(y, ROWS, n, params, results, top_tokens, top_logprobs, top);
            for (int r = 0; r < ROWS; r++) {
                if (results[r].status != FS_SAMPLE_OK) { /* nothing else is written */
                    printf("n=%ld ties=%d %s config=%d row=%d: status %ld\n", (long)n, ties,
                           dtype ? "f64" : "f32", c, r, (long)results[r].status);
                    continue;
                }
                printf("n=%ld ties=%d %s config=%d row=%d: status %ld token %ld kept %ld "
                       "logprob %.6f top %ld %ld %.5f\n", (long)n, ties,
                       dtype ? "f64" : "f32", c, r, (long)results[r].status,
                       (long)results[r].token, (long)results[r].n_kept, results[r].logprob,
                       (long)top_tokens[r * top], (long)top_tokens[r * top + top - 1],
                       top_logprobs[r * top]);
            }
        }
        if (dtype == 0)
            table->f32.top_k(x, values32, indices, ROWS, n, k, 1);
        else
            table->f64.top_k(y, values64, indices, ROWS, n, k, 1);
        uint64_t hash = 1469598103934665603ull;
        for (fs_index i = 0; i < ROWS * k; i++)
            hash = (hash ^ (uint64_t)indices[i]) * 1099511628211ull;
        printf("n=%ld ties=%d %s top_k=%ld: %016llx\n", (long)n, ties,
               dtype ? "f64" : "f32", (long)k, (unsigned long long)hash);
    }
    free(x);
    free(y);
    free(values32);
    free(values64);
    free(indices);
    return 0;
}

static uint64_t hash_bytes(uint64_t hash, const void *p, size_t bytes)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++)
        hash = (hash ^ b[i]) * 1099511628211ull;
    return hash;
}

/* A 16-bit pattern of a value of magnitude near 2^-3 .. 2^3 (either type), or a special. */
static uint16_t half_pattern(int bfloat, int special)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t r = (uint32_t)(lcg_state >> 33);
    static const uint16_t specials16[] = {0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8000, 0x7BFF};
    static const uint16_t specials_bf[] = {0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8000, 0x7F7F};
    if (special)
        return (bfloat ? specials_bf : specials16)[r % 6];
    const uint32_t sign = (r >> 31) << 15;
    return bfloat ? (uint16_t)(sign | ((124u + r % 7u) << 7) | ((r >> 8) & 0x7Fu))
                  : (uint16_t)(sign | ((12u + r % 7u) << 10) | ((r >> 8) & 0x3FFu));
}

/* A 16-bit pattern as a float, written here independently of src/fs_half.h. */
static float widen(uint16_t h, int bfloat)
{
    if (bfloat) {
        const uint32_t bits = (uint32_t)h << 16;
        float v;
        memcpy(&v, &bits, 4);
        return v;
    }
    const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 31)
        return m ? NAN : (float)(sign * INFINITY);
    return (float)(sign * (e ? ldexp(1024 + m, e - 25) : ldexp(m, -24)));
}

static const char *same(const void *a, const void *b, size_t elements, int size)
{
    /* bit for bit, but any NaN matches any NaN (payloads are not part of the contract) */
    for (size_t i = 0; i < elements; i++) {
        const unsigned char *p = (const unsigned char *)a + i * size;
        const unsigned char *q = (const unsigned char *)b + i * size;
        if (memcmp(p, q, size) == 0)
            continue;
        if (size == 4) {
            float u, v;
            memcpy(&u, p, 4);
            memcpy(&v, q, 4);
            if (u != u && v != v)
                continue;
        } else {
            uint16_t u, v;
            memcpy(&u, p, 2);
            memcpy(&v, q, 2);
            if ((u & 0x7FFF) > 0x7C00 && (v & 0x7FFF) > 0x7C00 && !(u & 0x0080) == !(v & 0x0080))
                continue;
        }
        return "DIFFERENT";
    }
    return "same";
}

/*
 * The 16-bit kernels on ROWS rows of n, one line per op: whether this ISA's float32
 * result from 16-bit input is bit for bit its float32 kernel's on the widened values,
 * and whether its 16-bit result is that float32 result rounded by its own narrow.
 * (Float32 results may differ between ISAs by an ulp: their sums take other orders.)
 * Then a hash of narrow's rounding of floats over every binade and on the ties, which
 * must be the same everywhere.
 */
static int run_half(const fs_kernel_table *table, fs_index n)
{
    enum { ROWS = 5 };
    const size_t size = (size_t)ROWS * n;
    uint16_t *x = malloc(size * 2), *y = malloc(size * 2), *out16 = malloc(size * 2);
    uint16_t *rounded = malloc(size * 2);
    float *out32 = malloc(size * 4), *wide_x = malloc(size * 4), *wide_y = malloc(size * 4);
    float *expected = malloc(size * 4);
    if (!x || !y || !out16 || !rounded || !out32 || !wide_x || !wide_y || !expected)
        return 1;
    for (int bfloat = 0; bfloat < 2; bfloat++) {
        const char *name = bfloat ? "bf16" : "f16";
        const fs_kernels_f16 *in = bfloat ? (const fs_kernels_f16 *)&table->bf16 : &table->f16;
        const fs_narrowing_kernels_f16_f16 *both =
            bfloat ? (const fs_narrowing_kernels_f16_f16 *)&table->bf16_bf16 : &table->f16_f16;
        lcg_state = 88172645463325252ull + (uint64_t)n * 7u + (uint64_t)bfloat;
        for (size_t i = 0; i < size; i++) { /* row 3 holds the specials */
            x[i] = half_pattern(bfloat, i / n == 3 && (i % n) % 5 == 0);
            y[i] = half_pattern(bfloat, 0);
            wide_x[i] = widen(x[i], bfloat);
            wide_y[i] = widen(y[i], bfloat);
        }
        for (int op = 0; op < 4; op++) {
            const int log_output = op & 1, backward = op >> 1;
            if (backward) {
                in->backward(x, y, out32, ROWS, n, 1, 1, log_output);
                table->f32.backward(wide_x, wide_y, expected, ROWS, n, 1, 1, log_output);
                both->backward(x, y, out16, ROWS, n, 1, 1, log_output);
            } else {
                in->softmax(x, NULL, 1, 0, out32, ROWS, n, 1, 1, 0.7f, log_output);
                table->f32.softmax(wide_x, NULL, 1, 0, expected, ROWS, n, 1, 1, 0.7f,
                                   log_output);
                both->softmax(x, NULL, 1, 0, out16, ROWS, n, 1, 1, 0.7f, log_output);
            }
            both->narrow(expected, rounded, (fs_index)size);
            printf("n=%ld %s %s%s: float32 result %s, 16-bit result %s\n", (long)n, name,
                   log_output ? "log_softmax" : "softmax", backward ? "_backward" : "",
                   same(out32, expected, size, 4),
                   same(out16, rounded, size, 2));
        }
        in->logsumexp(x, NULL, 1, 0, out32, ROWS, n, 1, 1);
        table->f32.logsumexp(wide_x, NULL, 1, 0, expected, ROWS, n, 1, 1);
        printf("n=%ld %s logsumexp: %s\n", (long)n, name, same(out32, expected, ROWS, 4));
        /* Rounding: floats spread over every binade, and ties between 16-bit values. */
        for (size_t i = 0; i < size; i++) {
            lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t bits = (uint32_t)(lcg_state >> 32);
            if (i % 4 == 0)
                bits = (bits & 0xFFFF0000u) | (bfloat ? 0x8000u : (bits & 0xE000u) | 0x1000u);
            memcpy(out32 + i, &bits, 4);
        }
        both->narrow(out32, out16, (fs_index)size);
        for (size_t i = 0; i < size; i++) /* NaN payloads are not part of the contract */
            if ((out16[i] & 0x7FFF) > (bfloat ? 0x7F80 : 0x7C00))
                out16[i] = (uint16_t)((out16[i] & 0x8000) | (bfloat ? 0x7FC0 : 0x7E00));
        printf("n=%ld %s narrow: %016llx\n", (long)n, name,
               (unsigned long long)hash_bytes(1469598103934665603ull, out16, size * 2));
    }
    free(x);
    free(y);
    free(out16);
    free(rounded);
    free(out32);
    free(wide_x);
    free(wide_y);
    free(expected);
    return 0;
}

int main(int argc, char **argv)
{
    /* Lengths around the vectors, the compare step, the draw's block (1024), top_k's bound. */
    static const fs_index lengths[] = {1, 2, 3, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025,
                                       3199, 3200, 3201, 50257};
    if (argc != 2) {
        fprintf(stderr, "usage: %s ISA (avx512, avx2, baseline or scalar)\n", argv[0]);
        return 2;
    }
    const fs_kernel_table *table = fs_select_kernels(argv[1]);
    if (table == NULL) {
        fprintf(stderr, "%s: not in this build, or not run by this CPU\n", argv[1]);
        return 3;
    }
    for (size_t j = 0; j < sizeof lengths / sizeof *lengths; j++)
        for (int ties = 0; ties < 2; ties++)
            if (run(table, lengths[j], ties) != 0)
                return 1;
    /* The 16-bit kernels: around the vector widths, the unroll, the flush, the short rows. */
    static const fs_index half_lengths[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64,
                                            65, 511, 512, 513, 16385, 40000};
    for (size_t j = 0; j < sizeof half_lengths / sizeof *half_lengths; j++)
        if (run_half(table, half_lengths[j]) != 0)
            return 1;
    return 0;
}
