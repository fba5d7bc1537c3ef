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
 * log_softmax rows from 64 elements sum in float blocks (fs_isa_impl.h): on
 * Zen 3 (C harness over the kernel table, float32, one thread, alternated
 * builds) the blocks were 2% ahead of the double sums at 64, 4-10% at 100 to
 * 191 (2048x128 0.86 -> 0.80 ns per element, 1638x160 0.83 -> 0.75), even at
 * 32 and 2-7% behind at 17-24.
 */
#define FS_BLOCKED_LOG_SUM_FROM 64
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
