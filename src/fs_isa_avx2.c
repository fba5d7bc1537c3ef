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
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
