/* The kernels built for AVX-512 (512-bit vectors, FMA). */
#include "fs_config.h"
#if FS_X86_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#define FS_VBYTES 64
#define FS_ISA_NAME "avx512"
#define FS_TABLE fs_kernels_avx512
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
