/*
 * The names the kernel templates (fs_*_tmpl.h) are written in, bound by
 * suffix to one element type's helpers from fs_vector.h and fs_exp.h:
 * VLOAD is vload_<dtype>, VEXP is vexp_<compute>, VEC is vec_<compute>, ...
 *
 * A type header (fs_type_f32.h, fs_type_f64.h, fs_type_f16.h, fs_type_bf16.h)
 * sets three suffixes:
 *   FS_DTYPE    the element type of the input arrays (storage).  Loads (VLOAD,
 *               SLOAD, ...) widen it to the compute type, and the kernels are
 *               named by it (FN).
 *   FS_COMPUTE  the type the kernels compute in: vectors, exp, max, sums; also
 *               the type of the arrays they take in it (soft targets, class
 *               weights: REAL, moved by VLOAD_REAL, ...).
 *   FS_OUT      the element type of the outputs (OUT, moved by VLOAD_OUT,
 *               VSTORE_OUT, ...).  When it is narrower than the compute type
 *               (FS_OUT_NARROWS: the 16-bit outputs of fs_type_*_out.h), a
 *               stored value does not read back as it was computed, and the
 *               templates never keep an intermediate there.
 * float32 and float64 are all three, so their moves are plain.  float16 and
 * bfloat16 store 16-bit patterns and compute in f32 with f32 outputs
 * (fs_half.h): their type headers and table entries are all they add; the
 * templates stay as they are.  In those copies the input and output pointer
 * types differ, so a template that mixes them up does not compile.
 *
 * The macros expand where the templates use them, so they are defined once and
 * follow whichever type header was included last: no #undef list to keep.
 */
#ifndef FS_TYPE_BINDINGS_H
#define FS_TYPE_BINDINGS_H

#define FS_PASTE_(name, sfx) name##_##sfx
#define FS_PASTE(name, sfx) FS_PASTE_(name, sfx)
#define FS_STORAGE_NAME(name) FS_PASTE(name, FS_DTYPE)
#define FS_COMPUTE_NAME(name) FS_PASTE(name, FS_COMPUTE)
#define FS_OUT_NAME(name) FS_PASTE(name, FS_OUT)

/*
 * A kernel's name for this type header: FN(row_max) is row_max_f32, row_max_f64,
 * ..., row_max_bf16_bf16 (FS_NAME: the input dtype, and the output's when it differs
 * from the compute type's: fs_type_*_out.h).
 */
#define FN(name) FS_PASTE(name, FS_NAME)

/* Storage: the input arrays' element type and its loads into compute vectors. */
#define STORAGE FS_STORAGE_NAME(storage)
#define VLOAD FS_STORAGE_NAME(vload)
#define VLOAD_PARTIAL FS_STORAGE_NAME(vload_partial)
#define SLOAD FS_STORAGE_NAME(sload)

/* Outputs: their element type and its moves (a kernel may write one and read it back). */
#define OUT FS_OUT_NAME(storage)
#define VLOAD_OUT FS_OUT_NAME(vload)
#define VSTORE_OUT FS_OUT_NAME(vstore)
#define VLOAD_PARTIAL_OUT FS_OUT_NAME(vload_partial)
#define VSTORE_PARTIAL_OUT FS_OUT_NAME(vstore_partial)
#define SLOAD_OUT FS_OUT_NAME(sload)
#define SSTORE_OUT FS_OUT_NAME(sstore)
/* Two vectors' worth (fs_half.h): 16-bit outputs only. */
#define VSTORE_OUT_PAIR FS_OUT_NAME(vstore_pair)
/* A streaming store (fs_vector.h): float outputs only, where FS_CAN_STREAM; 16-bit ones never stream. */
#define VSTREAM_OUT FS_OUT_NAME(vstream)

/*
 * Arrays in the compute type itself (soft targets, class weights, constants), and what
 * a sum pass keeps for its row's last pass (exponentials, differences): in out itself
 * where OUT is REAL, or in a scratch row of REAL where it narrows.
 */
#define VLOAD_REAL FS_COMPUTE_NAME(vload)
#define VLOAD_PARTIAL_REAL FS_COMPUTE_NAME(vload_partial)
#define VSTORE_REAL FS_COMPUTE_NAME(vstore)
#define VSTORE_PARTIAL_REAL FS_COMPUTE_NAME(vstore_partial)
#define SLOAD_REAL FS_COMPUTE_NAME(sload)

/* Compute: scalars, vectors of LANES of them, their bits, and the helpers on them. */
#define REAL FS_COMPUTE_NAME(real)
#define VEC FS_COMPUTE_NAME(vec)
#define LANES FS_COMPUTE_NAME(FS_LANES)
#define BITS FS_COMPUTE_NAME(bits)
#define VBITS FS_COMPUTE_NAME(vbits)
#define VSPLAT FS_COMPUTE_NAME(vsplat)
#define VMAX FS_COMPUTE_NAME(vmax)
#define VMAX_LANES FS_COMPUTE_NAME(vmax_lanes)
#define VEXP FS_COMPUTE_NAME(vexp)
#define VEXP_ANY FS_COMPUTE_NAME(vexp_any)
#define VSELECT FS_COMPUTE_NAME(vselect)
#define VMASK FS_COMPUTE_NAME(vmask)
#define VMASK_PARTIAL FS_COMPUTE_NAME(vmask_partial)
#define VFIRST FS_COMPUTE_NAME(vfirst)
#define VNONZERO_LANES FS_COMPUTE_NAME(vnonzero_lanes)
#define VADD_LANES FS_COMPUTE_NAME(vadd_lanes)
#define VTRANSPOSE FS_COMPUTE_NAME(vtranspose)
#define VJOIN FS_COMPUTE_NAME(vjoin)
#define VJOIN_AT FS_COMPUTE_NAME(vjoin_at)
#define VJOIN_INDEX FS_COMPUTE_NAME(vjoin_index)

/* Sums: accumulator lanes of double (float's VACC holds LANES doubles). */
#define VACC FS_COMPUTE_NAME(vacc)
#define VACC_ZERO FS_COMPUTE_NAME(vacc_zero)
#define VACC_FROM FS_COMPUTE_NAME(vacc_from)
#define VACC_ADD FS_COMPUTE_NAME(vacc_add)
#define VACC_SUB FS_COMPUTE_NAME(vacc_sub)
#define VACC_MUL FS_COMPUTE_NAME(vacc_mul)
#define VACC_DIV FS_COMPUTE_NAME(vacc_div)
#define VACC_SPLAT FS_COMPUTE_NAME(vacc_splat)
#define VACC_LANE FS_COMPUTE_NAME(vacc_lane)
#define VACC_SET_LANE FS_COMPUTE_NAME(vacc_set_lane)
#define VACC_SUM_LANES FS_COMPUTE_NAME(vacc_sum_lanes)
#define VACC_NARROW FS_COMPUTE_NAME(vacc_narrow)
#define VACC_INVERSE FS_COMPUTE_NAME(vacc_inverse)
#define VACC_LOG FS_COMPUTE_NAME(vacc_log)
#define VACC_LOG1P FS_COMPUTE_NAME(vacc_log1p)
#define VACC_KEEP_WHERE_FINITE FS_COMPUTE_NAME(vacc_keep_where_finite)
/* exp((v - shift) * scale) in double, into VACC lanes (the sampler's weights, fs_exp.h) */
#define VACC_WEIGHTS FS_COMPUTE_NAME(vacc_weights)

#endif /* FS_TYPE_BINDINGS_H */
