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
#include "fs_isa_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
