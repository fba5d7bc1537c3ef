/* The kernels built for AVX2 with FMA (256-bit vectors). */
#include "fs_config.h"
#if FS_X86_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#define FS_VBYTES 32
#define FS_ISA_NAME "avx2"
#define FS_TABLE fs_kernels_avx2
/*
 * logsumexp's rows run one row per lane up to 48 elements, not 64
 * (fs_isa_impl.h): Zen 4, one thread, 8192 rows in cache, one row per lane /
 * row pairs' time for rows of 33, 40, 48 and 64: float32 0.66, 0.81, 0.88,
 * 1.04; float64 0.85 (33), 1.00 (48), 1.04 (64).
 */
#define FS_SHORT_LOGSUMEXP_ROW 48
/*
 * softmax rows run one row per lane up to 36 elements (fs_isa_impl.h's
 * FS_SHORT_SOFTMAX_ROW; fs_isa_avx512.c says why no further): Zen 4, one
 * thread, 8192 rows in cache, tiles / row pairs' time (tools/kernel_ab.sh
 * --in-cache): float32 0.80-0.85 for rows of 33-36, 0.86-0.96 for 37-47 but
 * 0.99 for 40, 1.09 for 48; float64 0.92-0.95 for 33-35, 1.00 for 36.
 */
#define FS_SHORT_SOFTMAX_ROW 36
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
