/*
 * What this compiler can build.  Included first by every kernel file.
 *
 * FS_HAVE_VECTOR_EXT  GCC >= 9 or Clang: vector extensions and
 *                     __builtin_convertvector, so the vector kernels build.
 * FS_X86_DISPATCH     also x86-64: build AVX-512 and AVX2+FMA copies of the
 *                     kernels beside the SSE2 baseline, chosen at run time.
 * Otherwise (e.g. MSVC) only the plain-C kernels are built; they give the
 * same answers to the stated accuracy, more slowly.
 */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#if (defined(__GNUC__) && __GNUC__ >= 9) || defined(__clang__)
#define FS_HAVE_VECTOR_EXT 1
#else
#define FS_HAVE_VECTOR_EXT 0
#endif

#if FS_HAVE_VECTOR_EXT && defined(__x86_64__) && !defined(FS_NO_DISPATCH)
#define FS_X86_DISPATCH 1
/* Included before any target pragma, with the compiler's own attributes. */
#include <immintrin.h>
#else
#define FS_X86_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FS_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FS_ALWAYS_INLINE static __forceinline
#else
#define FS_ALWAYS_INLINE static inline
#endif

/* A hint to fetch the cache line at p for reading; nothing where unsupported. */
#if defined(__GNUC__) || defined(__clang__)
#define FS_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define FS_PREFETCH(p) ((void)(p))
#endif

#endif /* FS_CONFIG_H */
