/* OpenMP, where the build has it; one thread where it does not. */
#ifndef FS_THREADS_H
#define FS_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#define FS_HAVE_OPENMP 1
static inline int fs_max_threads(void) { return omp_get_max_threads(); }
#else
#define FS_HAVE_OPENMP 0
static inline int fs_max_threads(void) { return 1; }
#endif

/*
 * The loop that follows runs on `nthreads` threads (a variable of that name
 * must be in scope), its iterations handed out one at a time: the kernels'
 * long-row driver (fs_long_rows_tmpl.h), whose iterations are whole chunks.
 * Nothing without OpenMP: the loop then runs on the calling thread.
 */
#if defined(_OPENMP) && defined(_MSC_VER) && !defined(__clang__)
#define FS_PARALLEL_FOR __pragma(omp parallel for schedule(dynamic) num_threads(nthreads))
#elif defined(_OPENMP)
#define FS_PARALLEL_FOR _Pragma("omp parallel for schedule(dynamic) num_threads(nthreads)")
#else
#define FS_PARALLEL_FOR
#endif

#endif /* FS_THREADS_H */
