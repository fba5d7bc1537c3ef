/* Run-time choice of the kernel table: the widest instruction set the CPU runs. */
#include <string.h>

#include "fs_config.h"
#include "fs_kernels.h"

#if FS_X86_DISPATCH
extern const fs_kernel_table fs_kernels_avx512;
extern const fs_kernel_table fs_kernels_avx2;
#endif
#if FS_HAVE_VECTOR_EXT
extern const fs_kernel_table fs_kernels_baseline;
#endif
extern const fs_kernel_table fs_kernels_scalar;

/* Best first; an entry is used only where its CPU test passes. */
static const fs_kernel_table *const candidates[] = {
#if FS_X86_DISPATCH
    &fs_kernels_avx512,
    &fs_kernels_avx2,
#endif
#if FS_HAVE_VECTOR_EXT
    &fs_kernels_baseline,
#endif
    &fs_kernels_scalar,
};
#define N_CANDIDATES (sizeof candidates / sizeof candidates[0])

static int cpu_runs(const fs_kernel_table *table)
{
#if FS_X86_DISPATCH
    __builtin_cpu_init();
    if (table == &fs_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (table == &fs_kernels_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
#endif
    (void)table;
    return 1;
}

const fs_kernel_table *fs_select_kernels(const char *isa)
{
    for (size_t i = 0; i < N_CANDIDATES; i++)
        if ((isa == NULL || strcmp(isa, candidates[i]->isa) == 0) && cpu_runs(candidates[i]))
            return candidates[i];
    return NULL;
}

const char *fs_available_isas(void)
{
    static char names[64];
    if (names[0] == '\0') {
        for (size_t i = 0; i < N_CANDIDATES; i++) {
            if (!cpu_runs(candidates[i]))
                continue;
            if (names[0] != '\0')
                strcat(names, " ");
            strcat(names, candidates[i]->isa);
        }
    }
    return names;
}
