/*
 * float32 arrays, computed in float (see fs_type_bindings.h).  Sums of float
 * terms accumulate in double lanes (vacc_f32, fs_vector.h).  Storage is the
 * compute type: loads and stores (outputs too: FS_OUT) are fs_vector.h's plain float moves.
 * Included by fs_isa_impl.h before the templates' float copy.
 */
#undef FS_DTYPE
#undef FS_COMPUTE
#undef FS_OUT
#undef FS_NAME
#undef FS_OUT_NARROWS
#define FS_DTYPE f32
#define FS_COMPUTE f32
#define FS_OUT f32
#define FS_NAME f32
#define FS_OUT_NARROWS 0

#ifndef FS_TYPE_F32_H
#define FS_TYPE_F32_H
typedef float storage_f32;
#endif
