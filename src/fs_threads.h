/*
 * Threads: OpenMP's settings, where the build has OpenMP, and fastsoftmax's
 * own executor (fs_pool.h), which runs every parallel pass.
 *
 * OpenMP is used for its maximum thread count only (omp_get_max_threads:
 * OMP_NUM_THREADS, threadpoolctl's limits), which fastsoftmax/_threads.py
 * turns into each call's thread count; no OpenMP parallel region runs (see
 * fs_pool.h for why: their end barriers wait for descheduled threads).
 */
#ifndef FS_THREADS_H
#define FS_THREADS_H

#include "fs_pool.h"

#ifdef _OPENMP
#include <omp.h>
#define FS_HAVE_OPENMP 1
static inline int fs_max_threads(void) { return omp_get_max_threads(); }
#else
#define FS_HAVE_OPENMP 0
static inline int fs_max_threads(void) { return 1; }
#endif

#endif /* FS_THREADS_H */
