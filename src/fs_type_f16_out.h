/*
 * IEEE float16 in and out: the kernels of fs_type_f16.h, but storing their
 * results as IEEE float16, each rounded once from the float the float32 kernels
 * compute (round to nearest even, fs_half.h).  FS_OUT_NARROWS tells the
 * templates that a stored output cannot be read back unchanged, so the passes
 * that would keep intermediates in `out` (softmax's exponentials) keep them in
 * float scratch rows instead (pipelined rows: fs_softmax_tmpl.h's
 * FS_KEEPS_APART) or recompute them from x.  Only the ops with an elementwise
 * result are built so
 * (fs_kernels.h's fs_narrowing_kernels).  Included by fs_isa_impl.h.
 */
#undef FS_DTYPE
#undef FS_COMPUTE
#undef FS_OUT
#undef FS_NAME
#undef FS_OUT_NARROWS
#define FS_DTYPE f16
#define FS_COMPUTE f32
#define FS_OUT f16
#define FS_NAME f16_f16
#define FS_OUT_NARROWS 1
