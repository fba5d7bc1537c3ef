/*
 * The kernels in plain C, one element at a time: what a compiler without
 * vector extensions (MSVC) builds.  Built everywhere so the tests hold it to
 * the same contract.
 */
#include "fs_config.h"
#define FS_VBYTES 0
#define FS_ISA_NAME "scalar"
#define FS_TABLE fs_kernels_scalar
#include "fs_isa_impl.h"
