/*
 * The body of one instruction-set build (src/fs_isa_*.c): the kernels for
 * float and double, and their table, named FS_TABLE.
 *
 * The including file defines FS_VBYTES, FS_ISA_NAME and FS_TABLE, and turns
 * on the instruction set (a target pragma) before including this.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fs_kernels.h"
#include "fs_vector.h"
#include "fs_exp.h"

#define FS_UNROLL 4       /* independent accumulators in a row's sum */
#define FS_FLUSH_STEPS 8  /* additions per lane before a flush into double */
#define FS_SHORT_ROW 16   /* rows up to this long run one row per lane (fs_softmax_tmpl.h) */

/* ---- float ---- */
#define REAL float
#define V VF32
#define W W32
#define VACC VACC32
#define ACC_ZERO ACC32_ZERO
#define ACC_FROM(v) acc32_from(v)
#define ACC_ADD(a, b) acc32_add((a), (b))
#define ACC_SUB(a, b) acc32_sub((a), (b))
#define ACC_LANE(a, i) ACC32_LANE((a), (i))
#define ACC_KEEP_WHERE_FINITE(c, t) acc32_keep_where_finite((c), (t))
#define VEXP vexp_f32
#define VMAX vmax32
#define VLOAD vload_f32
#define VSTORE vstore_f32
#define SLOAD sload_f32
#define SSTORE sstore_f32
#define VSPLAT vsplat_f32
#define VLOAD_PARTIAL vload_partial_f32
#define VSTORE_PARTIAL vstore_partial_f32
#define VMASK vmask_f32
#define VMASK_PARTIAL vmask_partial_f32
#define SELECT SELECT32
#define VU_T VU32
#define VU_T_LANE uint32_t
#define ACC_NARROW(a) acc32_narrow(a)
#define FN(name) name##_f32
#include "fs_reduce_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"
#undef REAL
#undef V
#undef W
#undef VACC
#undef ACC_ZERO
#undef ACC_FROM
#undef ACC_ADD
#undef ACC_SUB
#undef ACC_LANE
#undef ACC_KEEP_WHERE_FINITE
#undef VEXP
#undef VMAX
#undef VLOAD
#undef VSTORE
#undef SLOAD
#undef SSTORE
#undef VSPLAT
#undef VLOAD_PARTIAL
#undef VSTORE_PARTIAL
#undef VMASK
#undef VMASK_PARTIAL
#undef SELECT
#undef VU_T
#undef VU_T_LANE
#undef ACC_NARROW
#undef CLASS_WEIGHTS
#undef FN
#undef ZERO_V
#undef EXP_ARG
#undef ACCUMULATE
#undef LOAD_MASKED
#undef LOAD_MASKED_PARTIAL
#undef KEEP_MASKED
#undef KEEP_MASKED_PARTIAL
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_MASK

/* ---- double: its own lanes are the accumulator ---- */
#define REAL double
#define V VF64
#define W W64
#define VACC VF64
#define ACC_ZERO VSPLAT(0)
#define ACC_FROM(v) (v)
#define ACC_ADD(a, b) ((a) + (b))
#define ACC_SUB(a, b) ((a) - (b))
#define ACC_LANE(a, i) LANE((a), (i))
#define ACC_KEEP_WHERE_FINITE(c, t) vkeep_where_finite64((c), (t))
#define VEXP vexp_f64
#define VMAX vmax64
#define VLOAD vload_f64
#define VSTORE vstore_f64
#define SLOAD sload_f64
#define SSTORE sstore_f64
#define VSPLAT vsplat_f64
#define VLOAD_PARTIAL vload_partial_f64
#define VSTORE_PARTIAL vstore_partial_f64
#define VMASK vmask_f64
#define VMASK_PARTIAL vmask_partial_f64
#define SELECT SELECT64
#define VU_T VU64
#define VU_T_LANE uint64_t
#define ACC_NARROW(a) (a)
#define FN(name) name##_f64
#include "fs_reduce_tmpl.h"
#include "fs_softmax_tmpl.h"
#include "fs_backward_tmpl.h"
#include "fs_cross_entropy_tmpl.h"

/* One dtype's kernels, by field name (fs_kernels.h's fs_kernels_f32 / fs_kernels_f64). */
#define FS_DTYPE_TABLE(SFX)                              \
    {                                                    \
        .softmax = softmax_block_##SFX,                  \
        .logsumexp = logsumexp_block_##SFX,              \
        .row_max = row_max_##SFX,                        \
        .chunk_sum_exp = chunk_sum_exp_##SFX,            \
        .scale_span = scale_span_##SFX,                  \
        .log_softmax_span = log_softmax_span_##SFX,      \
        .logsumexp_finish = logsumexp_finish_##SFX,      \
        .exp_span = exp_span_##SFX,                      \
        .backward = backward_block_##SFX,                \
        .cross_entropy = cross_entropy_block_##SFX,      \
    }

const fs_kernel_table FS_TABLE = {
    .isa = FS_ISA_NAME,
    .vector_bytes = FS_VBYTES,
    .f32 = FS_DTYPE_TABLE(f32),
    .f64 = FS_DTYPE_TABLE(f64),
};
