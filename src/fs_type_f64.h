/*
 * float64 arrays, computed in double (see fs_type_bindings.h).  Sums
 * accumulate in the double lanes themselves (vacc_f64 is vec_f64), Kahan-
 * compensated (fs_reduce_tmpl.h).  Storage is the compute type: loads and
 * stores (outputs too: FS_OUT) are fs_vector.h's plain double moves.  Included by fs_isa_impl.h
 * before the templates' double copy.
 */
#undef FS_DTYPE
#undef FS_COMPUTE
#undef FS_OUT
#undef FS_NAME
#undef FS_OUT_NARROWS
#define FS_DTYPE f64
#define FS_COMPUTE f64
#define FS_OUT f64
#define FS_NAME f64
#define FS_OUT_NARROWS 0

#ifndef FS_TYPE_F64_H
#define FS_TYPE_F64_H
typedef double storage_f64;
#endif
