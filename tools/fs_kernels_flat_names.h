/*
 * The kernel table's flat field names from before its per-dtype structs
 * (table->softmax_f32 is now table->f32.softmax), for C code written against
 * them, such as an out-of-tree test harness:
 *
 *   cc -Isrc -include tools/fs_kernels_flat_names.h -c harness.c
 *
 * Only for such code's own translation units: the kernels in src/ use some of
 * these names for their functions (row_max_f32), which the macros would rename.
 */
#ifndef FS_KERNELS_FLAT_NAMES_H
#define FS_KERNELS_FLAT_NAMES_H

#include "fs_kernels.h"

#define softmax_f32 f32.softmax
#define logsumexp_f32 f32.logsumexp
#define row_max_f32 f32.row_max
#define chunk_sum_exp_f32 f32.chunk_sum_exp
#define scale_span_f32 f32.scale_span
#define log_softmax_span_f32 f32.log_softmax_span
#define logsumexp_finish_f32 f32.logsumexp_finish
#define exp_f32 f32.exp_span
#define backward_f32 f32.backward
#define cross_entropy_f32 f32.cross_entropy

#define softmax_f64 f64.softmax
#define logsumexp_f64 f64.logsumexp
#define row_max_f64 f64.row_max
#define chunk_sum_exp_f64 f64.chunk_sum_exp
#define scale_span_f64 f64.scale_span
#define log_softmax_span_f64 f64.log_softmax_span
#define logsumexp_finish_f64 f64.logsumexp_finish
#define exp_f64 f64.exp_span
#define backward_f64 f64.backward
#define cross_entropy_f64 f64.cross_entropy

#endif /* FS_KERNELS_FLAT_NAMES_H */
