/*
 * New / old time of one instruction set's softmax kernel, two builds timed call
 * by call in one process (tools/kernel_ab.sh builds it).
 *
 * benchmarks/ab_builds.py alternates two builds round by round, each in a
 * process of its own.  On a VM whose speed swings by 2x from one minute to the
 * next (other tenants), the rounds drift apart faster than they average out.
 * Here the two tables (the same ISA's kernels from two source trees, their
 * table symbols renamed fs_kernels_old and fs_kernels_new) run on the same
 * arrays in alternation, in the order old-new, new-old, ..., so each ratio
 * compares two calls a few milliseconds apart; the median of those ratios and
 * its quartiles are the result.  Before timing, each table's output is
 * compared bit for bit with the other's: a change meant to keep the bits must
 * print "same bits".
 *
 *   kernel_ab [--op softmax|log_softmax|logsumexp] [--dtype float32|float64] [--stream]
 *             [--in-cache] [--calls N] [--offset BYTES] ROWSxN [ROWSxN ...]
 *
 * --stream and --in-cache set the kernels' FS_STREAM_OUTPUT and FS_IN_CACHE
 * flags (src/fs_kernels.h), which the Python layer sets by the call's size;
 * --offset places x and out that many bytes past a 2 MB boundary (default 0:
 * aligned to a line).  One thread: the kernels' own entry, not the pool.
 */
#include "fs_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

extern const fs_kernel_table fs_kernels_old, fs_kernels_new;

#define HUGE_PAGE ((size_t)2 << 20)

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A zeroed buffer of at least `bytes`, on 2 MB pages where the OS gives them (as NumPy asks). */
static char *big_buffer(size_t bytes)
{
    bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    char *p = aligned_alloc(HUGE_PAGE, bytes);
    if (!p) {
        fprintf(stderr, "kernel_ab: cannot allocate %zu bytes\n", bytes);
        exit(2);
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

enum { OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LOGSUMEXP };

typedef struct {
    int op, stream, in_cache, float64, calls;
    long offset;
} options;

static void run(const fs_kernel_table *t, const options *o, const void *x, void *out,
                fs_index rows, fs_index n)
{
    const int flags = (o->op == OP_LOG_SOFTMAX ? FS_LOG_OUTPUT : 0) |
                      (o->stream ? FS_STREAM_OUTPUT : 0) | (o->in_cache ? FS_IN_CACHE : 0);
    if (o->op == OP_LOGSUMEXP && o->float64)
        t->f64.logsumexp(x, NULL, 0, 0, out, rows, n, 1, 1);
    else if (o->op == OP_LOGSUMEXP)
        t->f32.logsumexp(x, NULL, 0, 0, out, rows, n, 1, 1);
    else if (o->float64)
        t->f64.softmax(x, NULL, 0, 0, out, rows, n, 1, 1, 1.0, flags);
    else
        t->f32.softmax(x, NULL, 0, 0, out, rows, n, 1, 1, 1.0f, flags);
}

static void measure(const options *o, fs_index rows, fs_index n)
{
    const size_t size = o->float64 ? sizeof(double) : sizeof(float);
    const size_t bytes = (size_t)rows * (size_t)n * size;
    /* logsumexp writes one value a row */
    const size_t out_bytes = o->op == OP_LOGSUMEXP ? (size_t)rows * size : bytes;
    char *x_buffer = big_buffer(bytes + (size_t)o->offset);
    char *out_buffer = big_buffer(out_bytes + (size_t)o->offset);
    char *kept = big_buffer(out_bytes);
    void *x = x_buffer + o->offset, *out = out_buffer + o->offset;
    unsigned state = 1; /* the same logits for every run: values in [-8, 8) */
    for (size_t i = 0; i < (size_t)rows * (size_t)n; i++) {
        state = state * 1103515245u + 12345u;
        const double v = (double)((state >> 8) & 0xffff) / 4096.0 - 8.0;
        if (o->float64)
            ((double *)x)[i] = v;
        else
            ((float *)x)[i] = (float)v;
    }
    run(&fs_kernels_old, o, x, out, rows, n);
    memcpy(kept, out, out_bytes);
    run(&fs_kernels_new, o, x, out, rows, n);
    const int same = memcmp(kept, out, out_bytes) == 0;

    double *old_time = malloc(sizeof(double) * (size_t)o->calls);
    double *new_time = malloc(sizeof(double) * (size_t)o->calls);
    double *ratio = malloc(sizeof(double) * (size_t)o->calls);
    for (int c = 0; c < o->calls; c++) {
        for (int k = 0; k < 2; k++) {
            const int is_new = k ^ (c & 1); /* old-new, then new-old: no order favoured */
            const double start = now_seconds();
            run(is_new ? &fs_kernels_new : &fs_kernels_old, o, x, out, rows, n);
            (is_new ? new_time : old_time)[c] = now_seconds() - start;
        }
        ratio[c] = new_time[c] / old_time[c];
    }
    qsort(old_time, (size_t)o->calls, sizeof(double), compare_doubles);
    qsort(new_time, (size_t)o->calls, sizeof(double), compare_doubles);
    qsort(ratio, (size_t)o->calls, sizeof(double), compare_doubles);
    const double per_element = 1e9 / ((double)rows * (double)n);
    printf("%ldx%ld  old %.4f  new %.4f ns per element (medians)  new / old %.3f "
           "[%.3f-%.3f]  %s\n",
           (long)rows, (long)n, old_time[o->calls / 2] * per_element,
           new_time[o->calls / 2] * per_element, ratio[o->calls / 2], ratio[o->calls / 4],
           ratio[3 * o->calls / 4], same ? "same bits" : "BITS DIFFER");
    fflush(stdout);
    free(ratio);
    free(new_time);
    free(old_time);
    free(kept);
    free(out_buffer);
    free(x_buffer);
}

static void usage(void)
{
    fprintf(stderr, "usage: kernel_ab [--op softmax|log_softmax|logsumexp] [--dtype float32|float64] "
                    "[--stream] [--in-cache] [--calls N] [--offset BYTES] ROWSxN ...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options o = {OP_SOFTMAX, 0, 0, 0, 0, 0};
    int shapes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--op") && i + 1 < argc) {
            const char *op = argv[++i];
            if (!strcmp(op, "softmax"))
                o.op = OP_SOFTMAX;
            else if (!strcmp(op, "log_softmax"))
                o.op = OP_LOG_SOFTMAX;
            else if (!strcmp(op, "logsumexp"))
                o.op = OP_LOGSUMEXP;
            else
                usage();
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *dtype = argv[++i];
            if (strcmp(dtype, "float32") && strcmp(dtype, "float64"))
                usage();
            o.float64 = !strcmp(dtype, "float64");
        } else if (!strcmp(a, "--stream")) {
            o.stream = 1;
        } else if (!strcmp(a, "--in-cache")) {
            o.in_cache = 1;
        } else if (!strcmp(a, "--calls") && i + 1 < argc) {
            o.calls = atoi(argv[++i]);
            if (o.calls < 1)
                usage();
        } else if (!strcmp(a, "--offset") && i + 1 < argc) {
            o.offset = atol(argv[++i]);
            if (o.offset < 0 || o.offset >= (long)HUGE_PAGE)
                usage();
        } else {
            long rows, n;
            char tail;
            if (sscanf(a, "%ldx%ld%c", &rows, &n, &tail) != 2 || rows < 1 || n < 1)
                usage();
            options shape_options = o;
            if (!shape_options.calls) /* about 0.2 s of calls at 0.3 ns per element, 20 at least */
                shape_options.calls = (int)(6e8 / ((double)rows * (double)n)) + 20;
            measure(&shape_options, (fs_index)rows, (fs_index)n);
            shapes++;
        }
    }
    if (!shapes)
        usage();
    return 0;
}
