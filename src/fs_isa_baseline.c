/*
 * The kernels built for the platform's baseline 128-bit vectors, with no
 * extra target flags: SSE2 on x86-64, NEON on aarch64.
 */
#include "fs_config.h"
#if FS_HAVE_VECTOR_EXT
#define FS_VBYTES 16
#define FS_ISA_NAME "baseline"
#define FS_TABLE fs_kernels_baseline
#include "fs_isa_impl.h"
#endif
