/*
 * The body of one instruction-set build (src/fs_isa_*.c): the kernels for
 * float, double, float16 and bfloat16 input, and their table, named FS_TABLE.
 *
 * The including file defines FS_VBYTES, FS_ISA_NAME and FS_TABLE, and turns
 * on the instruction set (a target pragma) before including this.
 *
 * The templates are included once per element type, after its type header
 * (fs_type_f32.h, fs_type_f64.h), which points the generic names of
 * fs_type_bindings.h at that type's helpers.  The templates' own helper macros
 * (EXP_ARG, TILE_LOAD, ...) are written in those generic names only, so both
 * copies define them identically, which C allows without an #undef.
 */
/*
 * The templates pass pointers to inputs (STORAGE) and to outputs (OUT), which
 * differ in the 16-bit copies: a mix-up there must not compile.
 */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic error "-Wincompatible-pointer-types"
#pragma GCC diagnostic error "-Wimplicit-function-declaration"
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs_kernels.h"
#include "fs_vector.h"
#include "fs_exp.h"
#include "fs_log.h"
#include "fs_half.h"
#include "fs_type_bindings.h"

/*
 * The kernels' block sizes (fastsoftmax._core.kernel_info() reports them, and
 * tests/test_kernel_boundaries.py tests the row lengths around them).
 *
 * FS_ROW_ACCUMULATORS is a constant, not a setting: a row's max and sum of exp
 * (rows_max_impl, rows_sum_exp_impl) are written out for exactly four independent
 * vector accumulators (m0..m3, a0..a3), which hide the add latency.  The
 * static assertion stops an edit of the number alone, which would break their
 * strides.  Changing it means rewriting both loops, and every sum's bits.
 */
#define FS_ROW_ACCUMULATORS 4
FS_STATIC_ASSERT(FS_ROW_ACCUMULATORS == 4, "rows_max_impl and rows_sum_exp_impl use m0..m3 and a0..a3");
#define FS_FLUSH_STEPS 8  /* additions per lane before a flush into double */
FS_STATIC_ASSERT(FS_FLUSH_STEPS % FS_ROW_ACCUMULATORS == 0, "rows_sum_exp_impl's one-row loop flushes after whole steps");
/*
 * Rows up to FS_SHORT_ROW elements run one row per lane (fs_softmax_tmpl.h's
 * short rows; softmax's up to FS_SHORT_SOFTMAX_ROW, below, and cross_entropy's
 * up to FS_SHORT_LOGSUMEXP_ROW); log_softmax's up to
 * FS_SHORT_LOG_ROW of their compute type's size: 32 floats, 24 doubles.  Past
 * those, rows run alone or in pairs, log_softmax's summed in float blocks
 * without the max's term (FS_BLOCKED_LOG_SUM_FROM), where the tiles add every
 * term into double and take a log per lane.  Zen 5, one thread, 8192 rows in
 * cache, min of three alternated runs, one row per lane / the row kernels'
 * time for rows of 17-32 (16 was the limit for every op before 2026-12-05):
 * AVX-512 softmax 0.42-0.66 in float32, 0.55-0.91 in float64; logsumexp
 * 0.25-0.36 and 0.35-0.55; cross_entropy's loss 0.30-0.40 and 0.64-0.83, with
 * its gradient 0.31-0.45 and 0.60-0.85.  log_softmax took 0.65-1.12 in float32
 * and 1.09-1.59 in float64 then, and stayed at 16 until its short rows had a
 * copy for each length (fs_softmax_tmpl.h's fixed_short_row_to); with those,
 * Zen 4, 8192 rows in cache, new / old time (tools/kernel_ab.sh): float32
 * 0.51-0.75 with AVX-512 and 0.54-0.88 with AVX2 for rows of 17-32, float64
 * 0.62 and 0.78 for rows of 17, 0.88 and 1.02 for 24, but 1.10 and 1.07 for 32.
 */
#define FS_SHORT_ROW 32
#define FS_SHORT_LOG_ROW(real_bytes) ((real_bytes) == 8 ? 24 : FS_SHORT_ROW)
/*
 * softmax's rows run one row per lane up to this long: FS_SHORT_ROW unless the
 * ISA file sets its own (fs_isa_avx512.c, fs_isa_avx2.c), where the tiles,
 * past the copies for each length (in the general copy, n not known), beat the
 * row kernels on rows of a few vectors with a partial last one.
 */
#ifndef FS_SHORT_SOFTMAX_ROW
#define FS_SHORT_SOFTMAX_ROW FS_SHORT_ROW
#endif
/* X(1) ... X(FS_SHORT_ROW): each short row's length (fs_softmax_tmpl.h's copies for each) */
#define FS_SHORT_ROW_LENGTHS(X)                                                                  \
    X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16)      \
    X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31)   \
    X(32)
FS_STATIC_ASSERT(FS_SHORT_ROW == 32 && FS_SHORT_LOG_ROW(8) <= FS_SHORT_ROW,
                 "FS_SHORT_ROW_LENGTHS lists every length up to FS_SHORT_ROW");
/*
 * logsumexp's rows run one row per lane up to this long, and so do
 * cross_entropy's (ce_short_rows, whose loss is a logsumexp less the label's
 * term): its tiles write one value a row and transpose nothing back, so they
 * keep their pace past FS_SHORT_ROW, where the row pairs' took up to twice
 * theirs.  Zen 4, one thread, 8192 rows in cache, new / old time (tools/kernel_ab.sh --op
 * logsumexp) for rows of 33, 48 and 64: AVX-512 float32 0.44, 0.61, 0.79
 * (0.47-0.52 ns an element against 0.59-1.22), float64 0.70, 0.87, 0.93; SSE2
 * float32 0.55, 0.83, 0.89, float64 0.60, 0.72, 0.95.  AVX2 sets its own.  Past
 * 64 the panel (in the general copy, on the stack) would pass 4 KB.
 */
#ifndef FS_SHORT_LOGSUMEXP_ROW
#define FS_SHORT_LOGSUMEXP_ROW 64
#endif
FS_STATIC_ASSERT(FS_SHORT_LOGSUMEXP_ROW >= FS_SHORT_SOFTMAX_ROW &&
                     FS_SHORT_SOFTMAX_ROW >= FS_SHORT_ROW,
                 "logsumexp's short rows include softmax's, and those the copies for each length");
/*
 * log_softmax rows from this long sum in float blocks without the max's term
 * (row_log_sum_dropped): in the vector builds every row past the short rows.
 * Shorter ones (the plain-C copy's, which has no short-row kernel) add every
 * term into double, and take log(sum), summing again without the max's term
 * where that log may have rounded a result near zero away: in float64 that is
 * most rows a few entries dominate (LOG_SUM_RTOL's 1e-13 leaves a log(sum)
 * under about 1.1 unsafe).  Until 2026-12-05 rows up to 191 (63 with AVX2)
 * took that path, level with the blocks at 192 (2026-12-02, AVX-512, through
 * Python); pairs have since taken their logs after the next pair's sum
 * (log_softmax_pairs) and AVX-512 pipelines float rows from 64.  Zen 5, one
 * thread, 4096 rows in cache, min of three alternated runs, blocked / exact
 * time: AVX-512 float32 0.76-0.88 for rows of 17-63, 0.82-0.87 for 64-191,
 * float64 0.36-0.59 for 17-191; AVX2 float32 0.87-0.92 and float64 0.44-0.55
 * for 17-63; SSE2 float32 0.76-0.89 and float64 0.50-0.65 for 17-191.  Below
 * 2 * FS_CHUNK: a row split across threads is always summed the blocked way.
 * An ISA file may set its own; kernel_info() reports each.
 */
#ifndef FS_BLOCKED_LOG_SUM_FROM
#define FS_BLOCKED_LOG_SUM_FROM 17
#endif
/* Float rows' FS_PIPELINED_FROM_BYTES (fs_config.h): an ISA file may set its own (fs_isa_avx512.c). */
#ifndef FS_PIPELINED_FROM_FLOAT_BYTES
#define FS_PIPELINED_FROM_FLOAT_BYTES FS_PIPELINED_FROM_BYTES
#endif
/* ... and float softmax rows' alone (log_softmax's stay at FS_PIPELINED_FROM_FLOAT_BYTES) */
#ifndef FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES
#define FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES FS_PIPELINED_FROM_FLOAT_BYTES
#endif
/*
 * softmax rows whose output takes up to this many bytes keep their
 * exponentials in a scratch row on the stack when the last pass streams
 * (fs_softmax_tmpl.h's softmax_row): the sum pass stores them there, in L1,
 * and the last pass scales them from there.  Longer rows walked alone keep
 * them in a scratch row on the heap (FS_STREAM_ROW_SCRATCH_BYTES, fs_config.h).
 * Before that, they computed every exponential again in the last pass:
 * AVX2 (Zen 3, one thread, float32,
 * streamed, C harness over the kernel table): 16384x512 0.95-0.98 ns per
 * element with the exp computed twice, 0.53-0.79 from the scratch row (0.58
 * with ordinary stores); 2048x4096 0.80 and 0.52.  16 KB: beside the row it
 * reads, L1 holds it, and any thread's stack has room for it.
 */
#define FS_STREAM_SCRATCH_BYTES 16384
/*
 * Whether a streamed last pass may compute its exponentials again: softmax
 * rows and cross_entropy's gradient rows split across threads
 * (fs_long_rows_tmpl.h, whose passes run on any thread, so no scratch row
 * carries a chunk from one pass to the next; one 64 MB row on two threads,
 * Zen 4: 0.88-0.91 of the ordinary time, with the output at its input's
 * offset in a page or half a page from it, as fresh outputs are; 1.4 one line
 * past it).  Where it may not, those take
 * ordinary stores even when asked to stream (log_softmax, which has no
 * exponential in its last pass, still streams).  Only AVX-512's
 * exp is cheap enough beside the memory traffic a streamed output saves
 * (2-core Xeon VM, float32, one thread: streamed / ordinary time 0.82-0.89 for
 * softmax from 125 MB on, 0.82-0.90 for the loss and gradient; fastsoftmax/
 * _stream.py).  AVX2 (Zen 3, same measure through Python): softmax 1.24 at
 * 2048x32000, 1.13 at 512x16384, 1.54 at 256x8192; loss and gradient 1.31,
 * 1.20 and 1.43.  SSE2's exp has half AVX2's lanes.
 */
#define FS_STREAM_RECOMPUTES (FS_VBYTES == 64)
/* Vectors of adjacent columns one panel tile reduces together (its arrays' size). */
#define FS_TILE_VECTORS 2

#include "fs_type_f32.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"
#include "fs_top_k_tmpl.h"
#include "fs_sample_tmpl.h"

#include "fs_type_f64.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"
#include "fs_top_k_tmpl.h"
#include "fs_sample_tmpl.h"

/* The 16-bit dtypes after float, whose panel tiles their short rows reuse. */
#include "fs_type_f16.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"
#include "fs_top_k_tmpl.h"
#include "fs_sample_tmpl.h"

#include "fs_type_bf16.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"
#include "fs_top_k_tmpl.h"
#include "fs_sample_tmpl.h"

/* 16-bit outputs: the elementwise ops and cross_entropy's gradient (fs_kernels.h's fs_narrowing_kernels). */
#include "fs_type_f16_out.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"

#include "fs_type_bf16_out.h"
#include "fs_reduce_tmpl.h"
#include "fs_log_sum_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#include "fs_long_rows_tmpl.h"

/* One dtype's kernels, by field name (fs_kernels.h's fs_kernels_f32 / fs_kernels_f64). */
#define FS_DTYPE_TABLE(SFX)                              \
    {                                                    \
        .softmax = softmax_block_##SFX,                  \
        .logsumexp = logsumexp_block_##SFX,              \
        .logsumexp_parts = logsumexp_parts_block_##SFX,  \
        .softmax_shifted = softmax_shifted_block_##SFX,  \
        .softmax_long_rows = softmax_long_rows_##SFX,    \
        .backward_long_rows = backward_long_rows_##SFX,  \
        .cross_entropy_long_rows =                       \
            cross_entropy_long_rows_##SFX,               \
        .row_max = row_max_##SFX,                        \
        .chunk_sum_exp = chunk_sum_exp_##SFX,            \
        .scale_span = scale_span_##SFX,                  \
        .log_softmax_span = log_softmax_span_##SFX,      \
        .logsumexp_finish = logsumexp_finish_##SFX,      \
        .exp_span = exp_span_##SFX,                      \
        .backward = backward_block_##SFX,                \
        .cross_entropy = cross_entropy_block_##SFX,      \
        .top_k = top_k_block_##SFX,                      \
        .sample = sample_block_##SFX,                    \
        .sizes = {                                       \
            .lanes = FS_LANES_##SFX,                     \
            .unroll = FS_ROW_ACCUMULATORS,               \
            .flush_steps = FS_FLUSH_STEPS,               \
            .short_row = FS_SHORT_ROW,                   \
            .short_softmax_row = short_softmax_row_##SFX, \
            .short_log_row = short_log_row_##SFX,        \
            .short_logsumexp_row = FS_SHORT_LOGSUMEXP_ROW, \
            .chunk = FS_CHUNK,                           \
            .blocked_log_sum_from = FS_BLOCKED_LOG_SUM_FROM, \
            .stream_scratch = stream_scratch_length_##SFX, \
            .stream_row_scratch = stream_row_scratch_length_##SFX, \
            .stream_grad_from = stream_grad_from_##SFX,  \
            .stream_rows_from = stream_rows_from_##SFX,  \
            .pipelined_from = pipelined_from_##SFX,        \
            .log_pipelined_from = log_pipelined_from_##SFX, \
            .pipelined_to = pipelined_to_##SFX,            \
            .pipelined_deep_to = pipelined_deep_to_##SFX,  \
            .walks_back_from = walks_back_from_##SFX,      \
        },                                               \
    }

#define FS_NARROWING_TABLE(SFX)                         \
    {                                                   \
        .softmax = softmax_block_##SFX,                 \
        .softmax_long_rows = softmax_long_rows_##SFX,   \
        .backward = backward_block_##SFX,               \
        .backward_long_rows = backward_long_rows_##SFX, \
        .cross_entropy = cross_entropy_block_##SFX,     \
        .narrow = narrow_span_##SFX,                    \
    }

const fs_kernel_table FS_TABLE = {
    .isa = FS_ISA_NAME,
    .vector_bytes = FS_VBYTES,
    .can_stream = FS_CAN_STREAM,
    .stream_recomputes = FS_CAN_STREAM && FS_STREAM_RECOMPUTES,
    .f32 = FS_DTYPE_TABLE(f32),
    .f64 = FS_DTYPE_TABLE(f64),
    .f16 = FS_DTYPE_TABLE(f16),
    .bf16 = FS_DTYPE_TABLE(bf16),
    .f16_f16 = FS_NARROWING_TABLE(f16_f16),
    .bf16_bf16 = FS_NARROWING_TABLE(bf16_bf16),
};
