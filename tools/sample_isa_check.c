/*
 * The sampler and top_k of every ISA table this build and CPU have, on the same
 * deterministic rows, printed one line per row: the token, n_kept, the logprob to
 * 1e-6, and a hash of top_k's indices.  Built natively and for aarch64 (run under
 * qemu-user), the outputs must be identical line for line: tools/sample_isa_check.sh
 * compares them.  This is how the NEON build, which no test machine runs natively,
 * is held to the x86 builds that tests/test_sample.py checks against the reference.
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
    return 0;
}
