/*
 * What this compiler can build.  Included first by every kernel file.
 *
 * FS_HAVE_VECTOR_EXT  GCC >= 9 or Clang: vector extensions and
 *                     __builtin_convertvector, so the vector kernels build.
 * FS_X86_DISPATCH     also x86-64: build AVX-512 and AVX2+FMA copies of the
 *                     kernels beside the SSE2 baseline, chosen at run time.
 * Otherwise (e.g. MSVC) only the plain-C kernels are built; they give the
 * same answers to the stated accuracy, more slowly.
 */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#if (defined(__GNUC__) && __GNUC__ >= 9) || defined(__clang__)
#define FS_HAVE_VECTOR_EXT 1
#else
#define FS_HAVE_VECTOR_EXT 0
#endif

#if FS_HAVE_VECTOR_EXT && defined(__x86_64__) && !defined(FS_NO_DISPATCH)
#define FS_X86_DISPATCH 1
/* Included before any target pragma, with the compiler's own attributes. */
#include <immintrin.h>
#else
#define FS_X86_DISPATCH 0
#endif

/* OpenMP's header and the executor's (the long-row driver's passes), before any target pragma. */
#include "fs_threads.h"

#if defined(__GNUC__) || defined(__clang__)
#define FS_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FS_ALWAYS_INLINE static __forceinline
#else
#define FS_ALWAYS_INLINE static inline
#endif

/*
 * A function compiled once, never inlined: the chunk steps that both a row
 * kernel and the long-row driver (fs_long_rows_tmpl.h) call.  Inlined into
 * two callers, one expression could be contracted into FMAs differently in
 * each (-ffp-contract=fast), and a row's bits would depend on the thread count.
 */
#if defined(__GNUC__) || defined(__clang__)
#define FS_NOINLINE static __attribute__((noinline))
#elif defined(_MSC_VER)
#define FS_NOINLINE static __declspec(noinline)
#else
#define FS_NOINLINE static
#endif

/*
 * for (fs_index k = 0; k < n; k++) { ... }, unrolled whole where the compiler
 * knows n: the panel tiles' passes down short rows of one fixed length
 * (short_rows_fixed, n <= FS_SHORT_ROW = 32, the pragma's count), which GCC's
 * own size limits left rolled, a loop-carried chain with the exp's constants
 * reloaded each step.  Where n is not known (the other panels) the loop is as
 * written: unrolled there, logsumexp's short rows were 15-20% slower.
 * Float32 softmax, AVX-512, Zen 5, one thread, rows in cache: 0.70-0.78 of
 * the time for rows of 4 to 16, and 1000000 x 10 on two threads 2.03-2.07 ->
 * 1.44-1.46 ms.  The same operations in the same order: the same bits.
 */
#if defined(__GNUC__) || defined(__clang__)
#define FS_FOR_UNROLLED_IF_CONSTANT(k, n, ...)                                 \
    do {                                                                       \
        if (__builtin_constant_p(n)) {                                         \
            _Pragma("GCC unroll 32") for (fs_index k = 0; k < (n); k++) {      \
                __VA_ARGS__                                                    \
            }                                                                  \
        } else {                                                               \
            for (fs_index k = 0; k < (n); k++) {                               \
                __VA_ARGS__                                                    \
            }                                                                  \
        }                                                                      \
    } while (0)
#else
#define FS_FOR_UNROLLED_IF_CONSTANT(k, n, ...) \
    do { for (fs_index k = 0; k < (n); k++) { __VA_ARGS__ } } while (0)
#endif

/*
 * A compile-time check: C11's _Static_assert (GCC and Clang have it in every
 * mode), or else an array type of negative size.  MSVC compiles C as C11 only
 * under /std:c11, which the build does not pass; __COUNTER__ keeps the
 * fallback's names apart in templates included more than once.
 */
#if defined(__GNUC__) || defined(__clang__) || \
    (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L)
#define FS_STATIC_ASSERT(condition, why) _Static_assert(condition, why)
#else
#define FS_STATIC_ASSERT_NAME_(n) fs_static_assert_##n
#define FS_STATIC_ASSERT_NAME(n) FS_STATIC_ASSERT_NAME_(n)
#define FS_STATIC_ASSERT(condition, why) \
    typedef char FS_STATIC_ASSERT_NAME(__COUNTER__)[(condition) ? 1 : -1]
#endif

/*
 * Hints to fetch the cache line at p for reading (FS_PREFETCH_WRITE: for
 * writing); nothing where unsupported.
 * FS_PREFETCH brings it into every level (L1 too), FS_PREFETCH_L2 into L2 and
 * beyond only: for a next row of more than L1 holds, fetched over a whole pass
 * (prefetcht1 on x86, PLDL2KEEP on AArch64), which in L1 would only push out
 * the lines the pass is reading.
 */
#if defined(__GNUC__) || defined(__clang__)
#define FS_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define FS_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#define FS_PREFETCH_WRITE(p) __builtin_prefetch((p), 1, 3)
#else
#define FS_PREFETCH(p) ((void)(p))
#define FS_PREFETCH_L2(p) ((void)(p))
#define FS_PREFETCH_WRITE(p) ((void)(p))
#endif

/*
 * The cache line, in bytes: the unit of streaming stores (fs_softmax_tmpl.h's
 * stream_head).  64 on every x86-64 core, the only targets that stream.
 */
#define FS_CACHE_LINE_BYTES 64

/* The span of addresses whose low bits a load is matched against earlier stores by (4 KB aliasing). */
#define FS_PAGE_BYTES 4096

/*
 * Streamed rows walked alone, up to this many bytes of output, keep their sum
 * pass's values in a scratch row on the heap (fs_softmax_tmpl.h's
 * row_scratch_fits), which has to stay in L2 beside the row being read.
 * Streamed / ordinary time, AVX-512 on Zen 4 (1 MB of L2), float32, one
 * thread, outputs 0 and 16 bytes past a line: rows of 256 KB 0.74-0.88, of
 * 512 KB 0.82-0.92, of 1 MB 0.94-1.08 (computing from x again instead:
 * 1.0-3.2 there, by where out lies against x).  1 MB keeps 256k-token
 * vocabularies in float32.  Longer softmax and gradient rows take ordinary
 * stores (computing from x again, rows of 8 MB: 1.04-2.66).
 */
#define FS_STREAM_ROW_SCRATCH_BYTES (1024 * 1024)

/*
 * cross_entropy's gradient streams only in rows of at least this many bytes:
 * each row's label line takes ordinary stores (its own term is read back), and
 * the streaming stores behind it wait for that line, which costs shorter rows
 * more than streaming saves.  Float32, one thread, streamed / ordinary time of
 * the loss and gradient, outputs 0, 16 and 48 bytes past a line, Zen 4,
 * AVX-512 and AVX2: rows of 128 1.3-1.9, 512 1.2-1.3, 1024 0.87-1.06, 2048
 * 0.88-1.03, 4096 0.90-1.08, 8192 0.62-0.86 (16-core Xeon), 12000 0.60-0.73
 * (the same) and 32000 0.80-0.90.
 */
#define FS_STREAM_GRAD_FROM_BYTES 32768

/*
 * softmax and log_softmax rows stream their last pass only from this many
 * bytes of output: a shorter row holds few whole lines, the lines it shares
 * with its neighbours take ordinary stores, and the two kinds of stores mixed
 * cost more than streaming saves.  Zen 4, AVX-512, float32, 8M-element calls
 * (32 MB, streamed), ordinary / streamed time, medians of 7 alternated calls,
 * one or two threads: softmax rows of 33-63 0.51-0.97, 64-160 0.65-0.99,
 * 192-384 1.05-1.21, 512 1.25-1.62; log_softmax 33-128 0.57-1.01, 192-256
 * 0.89-1.05, 320 1.11-1.13, 512 1.41-1.53.  float64, one thread: 64-128
 * doubles 0.67-1.01, 160-192 1.06-1.10, 256 1.30-1.36.  One threshold for
 * both ops: 192 floats, 96 doubles.
 */
#define FS_STREAM_ROWS_FROM_BYTES 768

/*
 * Unmasked softmax and log_softmax rows of at least this many bytes (of the
 * compute type) are pipelined (fs_softmax_tmpl.h's softmax_rows_pipelined),
 * or from one blocked step of the sum (FS_PAIRED_BELOW) if that is shorter;
 * shorter rows go in pairs.  Float32, one thread, min of 3 alternated runs,
 * pipelined / paired time: AVX-512 on Zen 4, rows of 256-511 (below its
 * step of 512): softmax 0.77-0.87, log_softmax 0.65-0.92; AVX2 on Zen 4, rows
 * of 128-255 (below its step of 256): 0.95-1.09 and 1.02-1.22 (and no gain
 * on Zen 3 either).  An ISA file may set float rows' own
 * (FS_PIPELINED_FROM_FLOAT_BYTES): AVX-512's pipelines them from 64 elements.
 */
#define FS_PIPELINED_FROM_BYTES 1024

/*
 * Rows up to this many bytes (of the compute type) are pipelined, a chunk
 * (FS_CHUNK elements) at a time past one chunk (fs_softmax_tmpl.h's
 * row_sum_exp_beside), and past one chunk only where the rows the pipeline
 * keeps stay in the caches (streamed, or FS_IN_CACHE: fs_kernels.h).  Those
 * rows (the one summed, the next one's max, the one hinted ahead, and the
 * stored row being finished) share L2.  Zen 4 (1 MB
 * of L2), float32, one thread, 48 MB of rows into a fresh output, pipelined /
 * not, old and new builds alternated: AVX-512 0.70-0.84 for rows of 16385 to
 * 32000, 0.98-1.02 at 49152 and 65536; AVX2 0.80-0.89 and 0.94-0.98; float64
 * (AVX-512) 0.83-0.91 for rows of 16385 to 32768.
 */
#define FS_PIPELINED_TO_BYTES (256 * 1024)

/*
 * A row walked alone (fs_softmax_tmpl.h's softmax_row) of more than this many
 * bytes (of the compute type; kernel_info()'s `walks_back_from` elements) takes its max pass and its last pass from its
 * end back to its start, and only the sum pass between them forward: each
 * pass then starts on the lines the pass before it touched last.  Walked the
 * same way three times, a row whose input and output together outgrow L2
 * (float32 1x128256: 1 MB) evicted, pass after pass, the very lines the next
 * pass was about to read.  The max is the same in either order (but for the
 * sign of a zero max, which no result depends on), and the last pass is
 * element-wise: the same bits.  Zen 5 (1 MB of L2), one thread, in cache,
 * new / old time, medians of 300 calls, builds alternated six times: AVX-512
 * float32 softmax and log_softmax 0.97 on 1x128256, 0.93-0.95 on 1x160000;
 * by the best of 6-14 rounds 0.96-0.99 on 1x128256, 0.92-0.94 on 1x262144,
 * 0.96 on two rows of 128256; float64 0.96-0.97 on 1x65536 and 1x131072;
 * AVX2 float32 0.97-0.98.  Rows of 1x65536 and 1x98304, which fit, and
 * 1x1000000, which does not fit anywhere near, are level (0.98-1.02).
 */
#define FS_WALK_BACK_FROM_BYTES FS_PIPELINED_TO_BYTES

/*
 * The longest next row (in bytes) that a row's sum pass hints into L1
 * (FS_PREFETCH) rather than L2: one that fits beside the row being read and
 * written.  AVX-512, float32, one thread, alternated builds: rows of 512 and
 * 1024 in L3 (33 MB) took 3-9% less time with L1 hints (softmax 16384x512
 * 0.32 against 0.33-0.45 ns per element), 2048 was level, and from 8192 on
 * L2 was as fast or faster (logsumexp of 32000 from memory: 8% faster).
 */
#define FS_PREFETCH_L1_ROW_BYTES 8192

/*
 * A sum pass that also stores (softmax's exponentials, log_softmax's
 * differences, cross_entropy's), over a chunk of more than
 * FS_PREFETCH_SHARE_FROM_BYTES, hints only the first 1/2^this of the next
 * row's chunk into L2, at a 2^this of the pace: its own stores' line fetches
 * queue behind the hints, and a whole next row's worth slowed it down.
 * AVX-512, float32, one thread, x and out 16 bytes past a line, rows in L3:
 * 32x50257, 256x16384 and 16x32000 took 4-10% less time in a C harness over
 * the kernel table (a half or an eighth gained less, none 0-5%), 6-11% less
 * through Python; 2048x32000 into an output in memory took 3-7% more, but a
 * call that size streams its output (fastsoftmax/_stream.py) and its sum pass
 * stores nothing.  Rows of 1024x4096 took about 5% more through Python (and
 * 2-7% less in the harness): rows of 32 KB or less keep the whole hint.
 * Stores into a scratch row that stays in the caches (a streamed call's sum
 * pass: fs_softmax_tmpl.h's row_scratch_fits) fetch nothing from memory, and
 * those passes hint the whole next row: AVX-512, Zen 4, float32, one thread,
 * streamed 2048x32000 softmax, log_softmax and the loss and gradient took
 * 0.81-0.88x the ordinary stores' time with the whole hint, 1.01-1.05x with
 * the share; streamed 4096x12000 (pipelined rows) 0.50-0.54x, against
 * 0.87-0.91x before.
 */
#define FS_PREFETCH_STORING_SHARE_LOG2 2
#define FS_PREFETCH_SHARE_FROM_BYTES 32768

/*
 * A streamed pipeline's sum pass (fs_softmax_tmpl.h's softmax_rows_pipelined
 * with scratch rows) reads the next row for its max, hinted into L2 a row
 * earlier, and hints it again this many bytes ahead of that read.  The first
 * hint does not always hold: with the cheaper float exp (fs_exp.h's table),
 * the pass outran memory and its next-row loads went to DRAM (AVX-512, Zen 4,
 * float32 2048x32000 softmax, one thread: 0.28-0.30 ns per element with the
 * old exp, 0.32-0.35 with the new; and 0.29-0.31 with the new one slowed by
 * three dependent multiply-adds).  The second hint: 0.26, and 0.13 at two
 * threads against 0.15; a 4 KB hint into L1 gave 0.26-0.27.  Without any hint
 * it took 0.50, a quarter of the first hint 0.41, the whole into L1 0.42.
 * Calls whose rows stay cached do without: 32x50257 gained nothing from it.
 */
#define FS_NEXT_ROW_REHINT_BYTES 16384

/*
 * Pipelined log_softmax rows up to this many bytes (of the compute type) take
 * their last pass two sum passes after their own rather than one
 * (fs_softmax_tmpl.h's softmax_rows_pipelined), the log of their sum taken
 * one sum pass after theirs.  glibc's log takes about 10 ns from its argument
 * to its result here, and on short rows the next row's pass waited on it,
 * whether the next pass used its result or only stored it: a build whose
 * pipelined rows took no log at all was 0.81 of the time on rows of 256, 0.85
 * on 512.  With the log one pass later, its argument has long been ready.
 * Float32 log_softmax, AVX-512, Zen 5, one thread, in cache, min of four
 * alternated runs, new / old time: rows of 256 0.89, 300 0.90, 512 0.93, 700
 * 0.93, 1024 0.96 (2048: 1.00, left out).  softmax's last pass needs 1 / sum,
 * whose division waits less: level within this VM's noise (0.99-1.01), so it
 * keeps one row.  The row that waits the extra pass stays in L1.
 */
#define FS_PIPELINED_DEEP_TO_BYTES 4096

#endif /* FS_CONFIG_H */
