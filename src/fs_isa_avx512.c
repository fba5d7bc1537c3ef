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
 * float32 softmax rows from the first past the short rows (33 elements): Zen 4,
 * one thread, 8192 rows in cache, pipelined / paired time (tools/kernel_ab.sh,
 * alternated, the same bits): 0.84-0.86 for rows of 33, 40, 47, 56 and 63, and
 * 1.00-1.01 from 64 (the code the longer rows run, unchanged).  Not
 * log_softmax's: 1.08-1.13 there.  Nor float64's (0.89-1.07 on 33-63), nor
 * AVX2's float32 rows (1.03-1.12 on 33-63, level from 128), nor SSE2's (0.95-1.07).
 */
#define FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES (4 * (FS_SHORT_ROW + 1)) /* (fs_isa_impl.h) */
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
