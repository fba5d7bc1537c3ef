/* The kernels built for AVX-512 (512-bit vectors, FMA; AVX512BW for 16-bit words: fs_half.h). */
#include "fs_config.h"
#if FS_X86_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx2,fma")
#endif
#define FS_VBYTES 64
#define FS_ISA_NAME "avx512"
#define FS_TABLE fs_kernels_avx512
/*
 * float32 rows are pipelined from 64 elements, not 256 (FS_PIPELINED_FROM_BYTES,
 * fs_config.h).  Zen 5, one thread, 4096 rows in cache, min of three
 * alternated runs, pipelined / paired time: softmax 0.83-0.89 for rows of 65,
 * 100, 127, 129 and 250, 0.90-0.94 for 192-240, 0.99 for 80-160 in whole vectors
 * (64 and 128 level); log_softmax, pipelined from FS_BLOCKED_LOG_SUM_FROM's
 * 192 then, level at 192-255 (0.98-1.03), and with blocked sums from 17 since
 * (fs_isa_impl.h) pipelined from 64 too.  Not float64: level at 40-48 and
 * 80-128 doubles but 1.07-1.12 at 64-72.
 */
#define FS_PIPELINED_FROM_FLOAT_BYTES 256
/*
 * softmax rows run one row per lane up to 36 elements (fs_isa_impl.h's
 * FS_SHORT_SOFTMAX_ROW; 32 before 2026-12-07), in the tiles' general copy.
 * Zen 4, one thread, tiles / row kernels' time (tools/kernel_ab.sh), float32
 * against the pipeline: 8192 rows in cache 0.68 (33), 0.71 (36), 0.76 (40),
 * 0.80 (44), 0.96 (48), 0.88-0.94 (49-55), 1.14 (64); but from memory (9.6M
 * elements) 0.82-1.02 (33), 0.97-1.09 (36), 1.04-1.22 (40), 1.13-1.23 (44),
 * 1.3-1.6 (48-55), where the pipeline's rows read and write in order and the
 * tiles' in strides.  float64 in cache, against the pairs: 0.75-0.84 for
 * 33-39, but 1.00-1.08 for 40 and 48 (whole vectors).
 */
#define FS_SHORT_SOFTMAX_ROW 36
/*
 * float32 softmax rows from the first past the short rows (33 elements then): Zen 4,
 * one thread, 8192 rows in cache, pipelined / paired time (tools/kernel_ab.sh,
 * alternated, the same bits): 0.84-0.86 for rows of 33, 40, 47, 56 and 63, and
 * 1.00-1.01 from 64 (the code the longer rows run, unchanged).  Not
 * log_softmax's: 1.08-1.13 there.  Nor float64's (0.89-1.07 on 33-63), nor
 * AVX2's float32 rows (1.03-1.12 on 33-63, level from 128), nor SSE2's (0.95-1.07).
 */
#define FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES (4 * (FS_SHORT_SOFTMAX_ROW + 1))
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
