/*
 * IEEE float16 arrays (uint16_t bit patterns, fs_half.h), computed in float:
 * the loads widen in registers, exactly (F16C where the instruction set has
 * it), and every result is float32 (the outputs' type FS_OUT is the compute
 * type), so a float16 input gives bit for bit the float32 kernels' answer on
 * the same values.  Included by fs_isa_impl.h before the templates' float16 copy.
 */
#undef FS_DTYPE
#undef FS_COMPUTE
#undef FS_OUT
#undef FS_NAME
#undef FS_OUT_NARROWS
#define FS_DTYPE f16
#define FS_COMPUTE f32
#define FS_OUT f32
#define FS_NAME f16
#define FS_OUT_NARROWS 0
