/*
 * fastsoftmax C kernels: the interface the Cython layer calls.
 *
 * Every kernel sees a C-contiguous block of `outer` slabs, each slab an
 * (n, width) panel whose rows are `stride` elements apart (slabs are n*stride
 * elements apart).  `n` is the reduced axis.  width == stride == 1 is the
 * contiguous row case; otherwise the kernel vectorizes across the width
 * (any axis but the last) without transposing.  The Cython layer may hand a
 * kernel any sub-range of slabs or of columns: every slice is computed by one
 * fixed sequence of operations, so results do not depend on how the work was
 * split between threads.
 *
 * Kernels never allocate, never raise and never read outside the block.
 * `out` may be `x` itself (in place); partial overlap is not allowed.
 *
 * `mask` (NULL for none) is a `where=` mask, one byte per element, that
 * repeats every `mask_period` elements; x's first element sits at offset
 * `mask_start` of it.  The period is a multiple of n*stride, so one slab's mask
 * is contiguous.  Elements whose byte is 0 are excluded from every reduction.
 *
 * The kernels are compiled once per instruction set (src/fs_isa_*.c) and one
 * table of them is chosen at run time (src/fs_dispatch.c).  C code written
 * against the table's earlier flat names (table->softmax_f32) compiles with
 * tools/fs_kernels_flat_names.h.
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t fs_index;

/*
 * Long rows are reduced in chunks of FS_CHUNK elements whose partial sums are
 * added in chunk order.  A row split across threads uses the same chunks, so
 * one thread and many give bitwise identical results.
 */
#define FS_CHUNK ((fs_index)16384)

/* Length of the chunk that starts `start` elements into a row of n. */
static inline fs_index fs_chunk_length(fs_index n, fs_index start)
{
    return n - start < FS_CHUNK ? n - start : FS_CHUNK;
}

/*
 * The operations, one numbering for the C kernels, the Cython loops and the
 * Python layer (fastsoftmax._core exports them as OP_SOFTMAX, ...).  The
 * explicit values are that interface: do not reorder.
 */
typedef enum fs_op {
    FS_OP_SOFTMAX = 0,
    FS_OP_LOG_SOFTMAX = 1,
    FS_OP_LOGSUMEXP = 2,
    FS_OP_SOFTMAX_BACKWARD = 3,
    FS_OP_LOG_SOFTMAX_BACKWARD = 4,
    FS_OP_CROSS_ENTROPY = 5,
    FS_OP_TOP_K = 6,
    FS_OP_SAMPLE = 7
} fs_op;

/*
 * The `flags` of the softmax and cross-entropy kernels, or'ed:
 *   FS_LOG_OUTPUT     log_softmax rather than softmax (softmax only: the long
 *                     rows take the op itself)
 *   FS_STREAM_OUTPUT  the output (cross-entropy's gradient) is larger than
 *                     the last-level cache and will not be read back soon: the
 *                     last pass writes it with streaming stores (fs_vector.h)
 *                     where the ISA has them; a last pass that would compute
 *                     its exponentials again (softmax rows past the scratch
 *                     row, the gradient) only where stream_recomputes.
 *                     The same bits either way; never useful in place, where
 *                     the output's lines are already in the cache.
 */
#define FS_LOG_OUTPUT 1
#define FS_STREAM_OUTPUT 2
/*
 *   FS_IN_CACHE       the call's input and output (one array in place) take
 *                     at most half the last-level cache: softmax rows longer
 *                     than a chunk are pipelined (fs_softmax_tmpl.h's
 *                     pipelined_to) with ordinary stores too.  Beyond that,
 *                     the rows a pipeline keeps in the caches lose them to
 *                     its stores' line fetches.  The same bits either way.
 */
#define FS_IN_CACHE 4

/*
 * One row's sampling parameters (src/fs_sample_tmpl.h), resolved by the
 * Python layer (fastsoftmax/_sample.py): every field 8 bytes, so a NumPy
 * structured array of them has this layout on every platform.
 */
typedef struct fs_sample_params {
    double inv_temperature; /* 1 / temperature; 0: greedy (argmax) */
    int64_t top_k;          /* max(top_k, min_keep), in [1, n); 0: no top-k filter */
    double top_p;           /* in (0, 1]; 1: no top-p filter */
    double min_p;           /* in [0, 1]; 0: no min-p filter */
    int64_t min_keep;       /* in [1, n] */
    double u;               /* the uniform draw, in [0, 1) */
} fs_sample_params;

/* Why a row has no token (fs_sample_result.status); 0 (FS_SAMPLE_OK): it has one. */
typedef enum fs_sample_status {
    FS_SAMPLE_OK = 0,
    FS_SAMPLE_NAN = 1,       /* the row holds a NaN */
    FS_SAMPLE_POS_INF = 2,   /* the row holds +inf */
    FS_SAMPLE_NO_FINITE = 3, /* every entry is -inf */
    FS_SAMPLE_NO_MEMORY = 4  /* scratch space could not be allocated */
} fs_sample_status;

/* One row's outcome: 8-byte fields, as fs_sample_params. */
typedef struct fs_sample_result {
    int64_t token;   /* the sampled id */
    int64_t n_kept;  /* finite entries that survived the filters */
    double logprob;  /* the token's log-probability under the filtered distribution */
    int64_t status;  /* an fs_sample_status */
} fs_sample_result;

/*
 * One dtype's block sizes in one ISA build, from the constants the kernels
 * are compiled with (fastsoftmax._core.kernel_info() reports them): row
 * lengths on either side of each take different code paths.
 */
typedef struct fs_block_sizes {
    int lanes;       /* elements per vector */
    int unroll;      /* vectors per step of a row's max and sum of exp */
    int flush_steps; /* steps between flushes of float partial sums into double */
    int short_row;   /* rows up to this long run one row per lane (where lanes > 1) */
    int short_softmax_row; /* ... and softmax's up to this long */
    int short_log_row; /* ... but log_softmax's only up to this long */
    int short_logsumexp_row; /* ... and logsumexp's and cross_entropy's up to this long */
    fs_index chunk;  /* a long row is reduced in chunks of this many elements (FS_CHUNK) */
    int blocked_log_sum_from; /* log_softmax rows from this long sum in float blocks */
    int stream_scratch; /* streamed softmax rows up to this long keep their exps in a scratch row */
    int stream_row_scratch; /* ... on the stack; up to this long, on the heap (then x is re-read) */
    int stream_grad_from; /* cross_entropy's gradient streams in rows from this long */
    int stream_rows_from; /* ... and softmax's and log_softmax's rows from this long */
    int pipelined_from; /* unmasked softmax rows from this long are pipelined */
    int log_pipelined_from; /* ... and log_softmax's from this long */
    int pipelined_to;   /* ... up to this long */
    int pipelined_deep_to; /* log_softmax rows up to this long take their last pass two rows on */
    int walks_back_from; /* rows walked alone from this long walk their max and last passes back */
} fs_block_sizes;

/*
 * The kernels of one input element type: STORAGE is the inputs' element type,
 * OUT the outputs', REAL the type scalars, soft targets and class weights are
 * passed in (the type the kernels compute in).  float32 and float64 are all
 * three; float16 and bfloat16 (uint16_t bit patterns, src/fs_half.h) compute
 * in float with float outputs.  The table holds one such set per dtype, whose
 * fields the ISA builds fill by name (src/fs_isa_impl.h).  One macro, so the
 * dtypes cannot drift apart.
 */
#define FS_DEFINE_DTYPE_KERNELS(STORAGE, OUT, REAL, SFX)                                              \
    typedef struct fs_kernels_##SFX {                                                            \
        /* out = softmax((x - max) * scale), or log_softmax with FS_LOG_OUTPUT in `flags`. */    \
        void (*softmax)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,             \
                        fs_index mask_start, OUT *out, fs_index outer, fs_index n,           \
                        fs_index width, fs_index stride, REAL scale, int flags);                 \
        /* out[slab, column] = log(sum(exp(x))) over the n rows; out rows are `stride` apart. */ \
        void (*logsumexp)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,           \
                          fs_index mask_start, OUT *out, fs_index outer, fs_index n,         \
                          fs_index width, fs_index stride);                                      \
        /* logsumexp's two halves, for a caller that combines slices (fastsoftmax.dask): */     \
        /* max[s] = the slice's max (NaN if its logsumexp is, for an infinite max) and */        \
        /* log_sum[s] = log(sum(exp((x - max) * scale))) (0 for an infinite max). */             \
        void (*logsumexp_parts)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,     \
                                fs_index mask_start, OUT *max, double *log_sum, fs_index outer,  \
                                fs_index n, fs_index width, fs_index stride, REAL scale);        \
        /* softmax from a shift and an adjustment per slice computed elsewhere (laid out */     \
        /* as logsumexp's out): exp((x - shift) * scale) * adjust, or with log_output */        \
        /* (x - shift) * scale - adjust.  shift >= every kept x of its slice, or +inf. */      \
        void (*softmax_shifted)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,     \
                                fs_index mask_start, OUT *out, fs_index outer, fs_index n,       \
                                fs_index width, fs_index stride, REAL scale,                     \
                                const REAL *shift, const REAL *adjust, int log_output);          \
        /* A few long rows split across threads (src/fs_long_rows_tmpl.h): rows shorter */      \
        /* than the thread count, at least two chunks each.  Returns 0, or -1 without */         \
        /* writing anything if scratch space could not be allocated.  `flags`: */                \
        /* FS_STREAM_OUTPUT or 0. */                                                             \
        int (*softmax_long_rows)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,    \
                                 fs_index mask_start, OUT *out, fs_index rows, fs_index n,   \
                                 REAL scale, int op, int flags, int nthreads);                   \
        int (*backward_long_rows)(const STORAGE *g, const STORAGE *y, OUT *out,              \
                                  fs_index rows, fs_index n, int log_output, int nthreads);      \
        int (*cross_entropy_long_rows)(const STORAGE *x, const int64_t *labels,                  \
                                       const REAL *target, const REAL *weight,             \
                                       double weight_sum, double eps, int64_t ignore_index,      \
                                       double *loss, OUT *grad, double grad_scale,           \
                                       fs_index rows, fs_index n, int flags, int nthreads);      \
        /* The chunk steps of softmax_long_rows, for C test harnesses that rebuild the */        \
        /* split themselves (the emulated-ISA harness); the product calls the above. */          \
        REAL (*row_max)(const STORAGE *x, const uint8_t *mask, fs_index n);                      \
        /* sum(exp((x - shift) * scale)) over at most FS_CHUNK elements; stores the */           \
        /* exponentials into e_out unless it is NULL. */                                         \
        double (*chunk_sum_exp)(const STORAGE *x, const uint8_t *mask, OUT *e_out,           \
                                fs_index n, REAL shift, REAL scale);                             \
        /* out *= factor, where chunk_sum_exp stored exp((x - shift) * scale) in out */          \
        void (*scale_span)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,          \
                           REAL shift, REAL scale, REAL factor);                                 \
        /* out = (x - shift) * scale - lse (from_diffs: from x - shift stored in out) */         \
        void (*log_softmax_span)(const STORAGE *x, const uint8_t *mask, OUT *out,            \
                                 fs_index n, REAL shift, REAL scale, REAL lse, int from_diffs);  \
        /* logsumexp of a row from its max and sum of exp(x - max); reads x only when */         \
        /* the max is infinite, to tell +-inf from NaN. */                                       \
        REAL (*logsumexp_finish)(REAL max, double sum, const STORAGE *x, const uint8_t *mask,    \
                                 fs_index n, fs_index stride);                                   \
        /* out = exp(x), elementwise: exposed to test the exp's accuracy. */                     \
        void (*exp_span)(const STORAGE *x, OUT *out, fs_index n);                            \
        /* softmax_backward: out = y * (g - sum(g * y)); log_softmax_backward */                 \
        /* (log_output): out = g - exp(y) * sum(g).  out may be g or y. */                       \
        void (*backward)(const STORAGE *g, const STORAGE *y, OUT *out, fs_index outer,       \
                         fs_index n, fs_index width, fs_index stride, int log_output);           \
        /* Cross-entropy per sample (src/fs_cross_entropy_tmpl.h): labels or target, one */      \
        /* loss per sample laid out like labels, the gradient (may be x) unless NULL. */         \
        /* `flags`: FS_STREAM_OUTPUT (the gradient) or 0, here and in the long rows. */          \
        void (*cross_entropy)(const STORAGE *x, const int64_t *labels, const REAL *target,    \
                              const REAL *weight, double weight_sum, double eps,              \
                              int64_t ignore_index, double *loss, OUT *grad,                 \
                              double grad_scale, fs_index outer, fs_index n,                     \
                              fs_index width, fs_index stride, int flags);                       \
        /* The k best of each of `rows` contiguous rows of n, best first (src/fs_top_k_tmpl.h): */ \
        /* values and indices are (rows, k); `largest` picks the largest, else the smallest. */  \
        void (*top_k)(const STORAGE *x, OUT *values, int64_t *indices, fs_index rows,        \
                      fs_index n, fs_index k, int largest);                                      \
        /* One token per row of `rows` contiguous rows of n (src/fs_sample_tmpl.h), and the */  \
        /* n_top most likely ids with their log-probabilities, (rows, n_top), unless 0. */       \
        void (*sample)(const STORAGE *x, fs_index rows, fs_index n,                              \
                       const fs_sample_params *params, fs_sample_result *results,               \
                       int64_t *top_tokens, float *top_logprobs, fs_index n_top);              \
        fs_block_sizes sizes;                                                                    \
    } fs_kernels_##SFX;

FS_DEFINE_DTYPE_KERNELS(float, float, float, f32)
FS_DEFINE_DTYPE_KERNELS(double, double, double, f64)
FS_DEFINE_DTYPE_KERNELS(uint16_t, float, float, f16)
FS_DEFINE_DTYPE_KERNELS(uint16_t, float, float, bf16)

/*
 * The kernels with 16-bit outputs: float16 in and out, bfloat16 in and out
 * (src/fs_type_*_out.h), for the ops whose result is elementwise (and
 * cross_entropy, whose 16-bit output is its gradient).  Each output
 * is the float the fs_kernels_f16/bf16 kernels compute, rounded once to the
 * nearest 16-bit value (ties to even); `out` may be `x` (or g, y) itself.
 */
#define FS_DEFINE_NARROWING_KERNELS(SFX)                                                         \
    typedef struct fs_narrowing_kernels_##SFX {                                                  \
        void (*softmax)(const uint16_t *x, const uint8_t *mask, fs_index mask_period,            \
                        fs_index mask_start, uint16_t *out, fs_index outer, fs_index n,          \
                        fs_index width, fs_index stride, float scale, int flags);                \
        int (*softmax_long_rows)(const uint16_t *x, const uint8_t *mask, fs_index mask_period,   \
                                 fs_index mask_start, uint16_t *out, fs_index rows, fs_index n,  \
                                 float scale, int op, int flags, int nthreads);                  \
        void (*backward)(const uint16_t *g, const uint16_t *y, uint16_t *out, fs_index outer,    \
                         fs_index n, fs_index width, fs_index stride, int log_output);           \
        int (*backward_long_rows)(const uint16_t *g, const uint16_t *y, uint16_t *out,           \
                                  fs_index rows, fs_index n, int log_output, int nthreads);      \
        /* cross_entropy with a 16-bit gradient (may be x), as fs_kernels_##SFX's: targets */   \
        /* and weights in float32; `flags` 0 (a 16-bit gradient never streams) */               \
        void (*cross_entropy)(const uint16_t *x, const int64_t *labels, const float *target,     \
                              const float *weight, double weight_sum, double eps,                \
                              int64_t ignore_index, double *loss, uint16_t *grad,                \
                              double grad_scale, fs_index outer, fs_index n,                     \
                              fs_index width, fs_index stride, int flags);                       \
        /* out = x rounded: a float result stored as 16-bit (the vector rounding above) */       \
        void (*narrow)(const float *x, uint16_t *out, fs_index n);                               \
    } fs_narrowing_kernels_##SFX;

FS_DEFINE_NARROWING_KERNELS(f16_f16)
FS_DEFINE_NARROWING_KERNELS(bf16_bf16)

typedef struct fs_kernel_table {
    const char *isa; /* "avx512", "avx2", "baseline" or "scalar" */
    int vector_bytes;
    int can_stream;  /* FS_STREAM_OUTPUT streams (fs_vector.h's FS_CAN_STREAM) */
    /* ...also softmax rows past the scratch row and cross_entropy's gradient, whose
     * streamed last pass computes the exponentials again (fs_isa_impl.h) */
    int stream_recomputes;
    fs_kernels_f32 f32;
    fs_kernels_f64 f64;
    fs_kernels_f16 f16;   /* IEEE float16 input, float results */
    fs_kernels_bf16 bf16; /* bfloat16 input, float results */
    fs_narrowing_kernels_f16_f16 f16_f16;    /* float16 input and results */
    fs_narrowing_kernels_bf16_bf16 bf16_bf16; /* bfloat16 input and results */
} fs_kernel_table;

/* The table for `isa` (NULL: the best this CPU runs), or NULL if this build or CPU lacks it. */
const fs_kernel_table *fs_select_kernels(const char *isa);

/* Space-separated names of the ISAs this build holds and this CPU runs, best first. */
const char *fs_available_isas(void);

#ifdef __cplusplus
}
#endif

#endif /* FS_KERNELS_H */
