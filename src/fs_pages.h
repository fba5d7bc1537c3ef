/*
 * Page advice for the output pool's blocks (fastsoftmax/_pool.py).
 *
 * Why: NumPy asks Linux for transparent huge pages over every array of 4 MB or
 * more (madvise(MADV_HUGEPAGE), the kernel's default THP mode being
 * "madvise").  The pool's blocks come from malloc, which does not, so a pooled
 * result sat on 4 KB pages while an `out=` array from np.empty sat on 2 MB
 * ones: on a Zen 4, softmax of 2048 x 32000 float32 into a pooled block took
 * 1.13x the time into np.empty's memory on two threads and 1.25x on one (the
 * TLB misses of a 262 MB stream), which broke "a fresh result costs no more
 * than `out=`".  Advising the block's whole pages as NumPy does, before they
 * are first touched, puts both on the same pages.
 *
 * Advice only: an error (an old kernel, THP compiled out) leaves the pages as
 * they were, and elsewhere than Linux nothing is done.
 */
#ifndef FS_PAGES_H
#define FS_PAGES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Blocks from this size up get the advice: NumPy's own bound. */
#define FS_HUGE_PAGES_FROM ((size_t)1 << 22)

/* Advise huge pages over the whole pages inside [start, start + nbytes). */
static inline void fs_advise_huge_pages(void *start, size_t nbytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const long page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0 || nbytes < FS_HUGE_PAGES_FROM)
        return;
    const uintptr_t page = (uintptr_t)page_size;
    const uintptr_t first = ((uintptr_t)start + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)start + nbytes) & ~(page - 1);
    if (end > first)
        (void)madvise((void *)first, end - first, MADV_HUGEPAGE);
#else
    (void)start;
    (void)nbytes;
#endif
}

#endif /* FS_PAGES_H */
