/*
 * The names the kernel templates (fs_*_tmpl.h) are written in, bound by
 * suffix to one element type's helpers from fs_vector.h and fs_exp.h:
 * VLOAD is vload_<dtype>, VEXP is vexp_<compute>, VEC is vec_<compute>, ...
 *
 * A type header (fs_type_f32.h, fs_type_f64.h) sets the two suffixes:
 *   FS_DTYPE    the element type of the arrays (storage).  Loads and stores
 *               (VLOAD, SLOAD, ...) move it to and from the compute type, and
 *               the kernels are named by it (FN).
 *   FS_COMPUTE  the type the kernels compute in: vectors, exp, max, sums.
 * float32 and float64 are their own compute types, so their loads and stores
 * are plain moves.  A 16-bit float dtype would compute in f32: one new type
 * header with its storage type and converting loads/stores, plus its table
 * entries; the templates stay as they are.
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

/* A kernel's name for this dtype: FN(row_max) is row_max_f32 or row_max_f64. */
#define FN(name) FS_STORAGE_NAME(name)

/* Storage: the arrays' element type and its moves to and from compute vectors. */
#define STORAGE FS_STORAGE_NAME(storage)
#define VLOAD FS_STORAGE_NAME(vload)
#define VSTORE FS_STORAGE_NAME(vstore)
#define VLOAD_PARTIAL FS_STORAGE_NAME(vload_partial)
#define VSTORE_PARTIAL FS_STORAGE_NAME(vstore_partial)
#define SLOAD FS_STORAGE_NAME(sload)
#define SSTORE FS_STORAGE_NAME(sstore)

/* Compute: scalars, vectors of LANES of them, their bits, and the helpers on them. */
#define REAL FS_COMPUTE_NAME(real)
#define VEC FS_COMPUTE_NAME(vec)
#define LANES FS_COMPUTE_NAME(FS_LANES)
#define BITS FS_COMPUTE_NAME(bits)
#define VBITS FS_COMPUTE_NAME(vbits)
#define VSPLAT FS_COMPUTE_NAME(vsplat)
#define VMAX FS_COMPUTE_NAME(vmax)
#define VEXP FS_COMPUTE_NAME(vexp)
#define VEXP_ANY FS_COMPUTE_NAME(vexp_any)
#define VSELECT FS_COMPUTE_NAME(vselect)
#define VMASK FS_COMPUTE_NAME(vmask)
#define VMASK_PARTIAL FS_COMPUTE_NAME(vmask_partial)
#define VFIRST FS_COMPUTE_NAME(vfirst)

/* Sums: accumulator lanes of double (float's VACC holds LANES doubles). */
#define VACC FS_COMPUTE_NAME(vacc)
#define VACC_ZERO FS_COMPUTE_NAME(vacc_zero)
#define VACC_FROM FS_COMPUTE_NAME(vacc_from)
#define VACC_ADD FS_COMPUTE_NAME(vacc_add)
#define VACC_SUB FS_COMPUTE_NAME(vacc_sub)
#define VACC_LANE FS_COMPUTE_NAME(vacc_lane)
#define VACC_NARROW FS_COMPUTE_NAME(vacc_narrow)
#define VACC_KEEP_WHERE_FINITE FS_COMPUTE_NAME(vacc_keep_where_finite)
/* exp((v - shift) * scale) in double, into VACC lanes (the sampler's weights, fs_exp.h) */
#define VACC_WEIGHTS FS_COMPUTE_NAME(vacc_weights)

#endif /* FS_TYPE_BINDINGS_H */
