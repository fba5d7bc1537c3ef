/* OpenMP, where the build has it; one thread where it does not. */
#ifndef FS_THREADS_H
#define FS_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#define FS_HAVE_OPENMP 1
static int fs_max_threads(void) { return omp_get_max_threads(); }
#else
#define FS_HAVE_OPENMP 0
static int fs_max_threads(void) { return 1; }
#endif

#endif /* FS_THREADS_H */
