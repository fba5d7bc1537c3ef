/*
 * Which OpenMP runtime this module runs on, and whether other libraries in the
 * process use the same one: the facts behind the fork-safety rule of
 * fastsoftmax/_threads.py.
 *
 * Why: libgomp keeps its thread pool in the master thread's thread-local
 * state.  A process created by fork() (without exec) inherits that state but
 * not the pool's threads, so its first parallel region waits for threads that
 * no longer exist (GCC bug 60035).  A library that shares fastsoftmax's
 * runtime (PyTorch's wheel loads a libgomp.so.1 that ours then resolves to)
 * may have started that pool without fastsoftmax ever running a thread.
 *
 * Linux with glibc only: elsewhere the answers are "unknown" (-1) and the
 * Python layer stays conservative.  Nothing here allocates or raises.
 */
#ifndef FS_OPENMP_RUNTIME_H
#define FS_OPENMP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(_OPENMP) && defined(__linux__) && defined(__GLIBC__)
#define FS_CAN_INSPECT_RUNTIME 1
#include <dlfcn.h> /* dladdr: _GNU_SOURCE is set by Python.h, included first */
#include <link.h>  /* dl_iterate_phdr */
#include <omp.h>
#else
#define FS_CAN_INSPECT_RUNTIME 0
#endif

#if FS_CAN_INSPECT_RUNTIME

/* The file and load address of the OpenMP runtime this module calls. */
static int fs_openmp_runtime_file(const char **path, uintptr_t *base)
{
    Dl_info info;
    if (!dladdr((void *)&omp_get_max_threads, &info) || info.dli_fname == NULL)
        return 0;
    *path = info.dli_fname;
    *base = (uintptr_t)info.dli_fbase;
    return 1;
}

/*
 * The string table and dynamic entries of one loaded object, checked to lie
 * inside its loaded segments.  glibc relocates the d_ptr entries of .dynamic
 * in place on most targets but not all (nor in the vDSO): an address below
 * the load base is taken as unrelocated.
 */
typedef struct {
    const ElfW(Dyn) *dyn;
    const char *strtab;
    size_t strsz;
} fs_dynamic_info;

static int fs_inside_segments(const struct dl_phdr_info *info, uintptr_t p, size_t size)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && p >= start && p + size <= start + ph->p_memsz)
            return 1;
    }
    return 0;
}

static int fs_dynamic(const struct dl_phdr_info *info, fs_dynamic_info *out)
{
    out->dyn = NULL;
    out->strtab = NULL;
    out->strsz = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            out->dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (out->dyn == NULL)
        return 0;
    uintptr_t strtab = 0;
    for (const ElfW(Dyn) *d = out->dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_STRTAB)
            strtab = (uintptr_t)d->d_un.d_ptr;
        else if (d->d_tag == DT_STRSZ)
            out->strsz = (size_t)d->d_un.d_val;
    }
    if (strtab != 0 && strtab < info->dlpi_addr)
        strtab += info->dlpi_addr;
    if (strtab == 0 || out->strsz == 0 || !fs_inside_segments(info, strtab, out->strsz))
        return 0;
    out->strtab = (const char *)strtab;
    return 1;
}

/* The `index`-th DT_NEEDED name of an object (NULL past the last). */
static const char *fs_needed(const fs_dynamic_info *dyn, int index)
{
    for (const ElfW(Dyn) *d = dyn->dyn; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_NEEDED && index-- == 0)
            return d->d_un.d_val < dyn->strsz ? dyn->strtab + d->d_un.d_val : NULL;
    return NULL;
}

typedef struct {
    uintptr_t self_code;     /* an address inside this module */
    uintptr_t runtime_code;  /* an address inside the OpenMP runtime */
    char soname[64];         /* how this module names the runtime (DT_NEEDED) */
    int others;              /* other objects that name it too */
} fs_runtime_search;

static int fs_find_soname(struct dl_phdr_info *info, size_t size, void *data)
{
    fs_runtime_search *s = (fs_runtime_search *)data;
    fs_dynamic_info dyn;
    (void)size;
    if (!fs_inside_segments(info, s->self_code, 1) || !fs_dynamic(info, &dyn))
        return 0;
    for (int i = 0;; i++) {
        const char *name = fs_needed(&dyn, i);
        if (name == NULL)
            return 1;
        if (strstr(name, "omp") != NULL && strlen(name) < sizeof s->soname) {
            strcpy(s->soname, name);
            return 1;
        }
    }
}

static int fs_count_users(struct dl_phdr_info *info, size_t size, void *data)
{
    fs_runtime_search *s = (fs_runtime_search *)data;
    fs_dynamic_info dyn;
    (void)size;
    if (fs_inside_segments(info, s->self_code, 1) ||
        fs_inside_segments(info, s->runtime_code, 1) || !fs_dynamic(info, &dyn))
        return 0;
    for (int i = 0;; i++) {
        const char *name = fs_needed(&dyn, i);
        if (name == NULL)
            return 0;
        if (strcmp(name, s->soname) == 0) {
            s->others++;
            return 0;
        }
    }
}

/*
 * How many other loaded objects link this module's OpenMP runtime (by the
 * soname this module links it with), or -1 if that cannot be told.  A
 * runtime opened with dlopen() by name, rather than linked, is not counted.
 */
static int fs_openmp_runtime_users(void)
{
    fs_runtime_search s;
    memset(&s, 0, sizeof s);
    s.self_code = (uintptr_t)&fs_openmp_runtime_users;
    s.runtime_code = (uintptr_t)&omp_get_max_threads;
    dl_iterate_phdr(fs_find_soname, &s);
    if (s.soname[0] == '\0')
        return -1;
    dl_iterate_phdr(fs_count_users, &s);
    return s.others;
}

#else /* FS_CAN_INSPECT_RUNTIME */

static int fs_openmp_runtime_file(const char **path, uintptr_t *base)
{
    (void)path;
    (void)base;
    return 0;
}

static int fs_openmp_runtime_users(void) { return -1; }

#endif /* FS_CAN_INSPECT_RUNTIME */

#endif /* FS_OPENMP_RUNTIME_H */
