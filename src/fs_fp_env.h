/*
 * The floating-point environment the kernels run in, whatever the calling
 * thread's: round to nearest, subnormal inputs and results kept (no flush to
 * zero), and no exception trapping.
 *
 * The kernels depend on all three.  The exp rounds n = z*log2(e) by adding a
 * magic number (fs_exp.h), which is round-to-nearest only under that mode; the
 * sampler and top_k seed their heaps below a bound with nextafter, which a flush
 * of subnormals to zero makes equal to a zero bound (top_k then returned
 * indices past the row, and `sample(top_k=)` read them); and the padding lanes
 * of partial vectors compute -inf - -inf, which an unmasked invalid-operation
 * trap turns into SIGFPE.  A thread's settings are the caller's business, and
 * common: torch.set_flush_denormal(True) sets the flush bits (FTZ and DAZ) of
 * the thread that calls it, and a debugging session may enable traps with
 * feenableexcept.  Threads inherit their creator's settings, so the pool's
 * workers or OpenMP's may differ from the caller's, and from each other: a
 * row's bits would then depend on the thread that ran it.
 *
 * So every thread that runs kernel work takes the kernels' environment for it
 * (fs_fp_env_enter) and gives the thread its own back afterwards
 * (fs_fp_env_leave).  Entering costs a read of the control register and
 * a compare where the thread already has the kernels' settings (the usual
 * case); a write of it, and another on leaving, where not.
 *
 * x86-64: MXCSR (SSE, AVX and AVX-512 arithmetic).  AArch64: FPCR.  Elsewhere
 * (the plain-C builds) only the rounding mode, through <fenv.h>.
 */
#ifndef FS_FP_ENV_H
#define FS_FP_ENV_H

#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE2__))
#include <xmmintrin.h>
#define FS_FP_ENV_MXCSR 1
/* MXCSR: the six exception flags (bits 0-5) are kept as they are; every other bit is
 * the default's: exceptions masked (bits 7-12), round to nearest (bits 13-14 clear),
 * no flush of subnormal inputs (DAZ, bit 6) or results (FTZ, bit 15). */
#define FS_MXCSR_FLAGS 0x3Fu
#define FS_MXCSR_DEFAULT 0x1F80u
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define FS_FP_ENV_FPCR 1
/* FPCR bits the kernels need clear: FIZ, AH and NEP (0-2), the trap enables (8-12,
 * 15), FZ16 (19), RMode (22-23: round to nearest), FZ (24), DN (25) and AHP (26). */
#define FS_FPCR_CLEARED ((uint64_t)0x07u | (uint64_t)0x9F00u | ((uint64_t)1 << 19) | \
                         ((uint64_t)3 << 22) | ((uint64_t)7 << 24))
#else
#include <fenv.h>
#endif

/* A thread's own environment, saved by fs_fp_env_enter. */
typedef struct {
    uint64_t saved;
    int changed;
} fs_fp_env;

#if FS_FP_ENV_FPCR
static inline uint64_t fs_read_fpcr(void)
{
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
}

static inline void fs_write_fpcr(uint64_t fpcr) { __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr)); }
#endif

/* Give the calling thread the kernels' environment; returns its own, for fs_fp_env_leave. */
static inline fs_fp_env fs_fp_env_enter(void)
{
    fs_fp_env env = {0, 0};
#if FS_FP_ENV_MXCSR
    const unsigned int csr = _mm_getcsr();
    const unsigned int wanted = FS_MXCSR_DEFAULT | (csr & FS_MXCSR_FLAGS);
    env.saved = csr;
    if (csr != wanted) {
        _mm_setcsr(wanted);
        env.changed = 1;
    }
#elif FS_FP_ENV_FPCR
    const uint64_t fpcr = fs_read_fpcr();
    env.saved = fpcr;
    if (fpcr & FS_FPCR_CLEARED) {
        fs_write_fpcr(fpcr & ~FS_FPCR_CLEARED);
        env.changed = 1;
    }
#else
    const int mode = fegetround();
    env.saved = (uint64_t)(int64_t)mode;
    if (mode != FE_TONEAREST) {
        fesetround(FE_TONEAREST);
        env.changed = 1;
    }
#endif
    return env;
}

/*
 * Give the thread back its own environment, where entering changed it (with
 * MXCSR's exception flags as they were then).  Exception flags the kernels
 * raise in a thread that had their settings stay raised, as they always have:
 * NumPy clears the flags before each of its own loops and reads them after.
 */
static inline void fs_fp_env_leave(fs_fp_env env)
{
#if FS_FP_ENV_MXCSR
    if (env.changed)
        _mm_setcsr((unsigned int)env.saved);
#elif FS_FP_ENV_FPCR
    if (env.changed)
        fs_write_fpcr(env.saved);
#else
    if (env.changed)
        fesetround((int)(int64_t)env.saved);
#endif
}

/*
 * For the tests (fastsoftmax._core._fp_env): the calling thread's control
 * state as a number (MXCSR without its exception flags, which any arithmetic
 * may raise; FPCR; or the <fenv.h> rounding mode), and a state the
 * kernels must not depend on: subnormals flushed (`flush`), rounding mode
 * `rounding` (0 to nearest, 1 upward, 2 downward, 3 toward zero), and traps on
 * invalid operations, division by zero and overflow (`traps`).  0 where this
 * platform cannot express one of them (a plain-C build's flush or traps).
 */
static inline uint64_t fs_fp_env_get_raw(void)
{
#if FS_FP_ENV_MXCSR
    return _mm_getcsr() & ~FS_MXCSR_FLAGS;
#elif FS_FP_ENV_FPCR
    return fs_read_fpcr();
#else
    return (uint64_t)(int64_t)fegetround();
#endif
}

static inline void fs_fp_env_set_raw(uint64_t raw)
{
#if FS_FP_ENV_MXCSR
    _mm_setcsr((unsigned int)raw);
#elif FS_FP_ENV_FPCR
    fs_write_fpcr(raw);
#else
    fesetround((int)(int64_t)raw);
#endif
}

static inline uint64_t fs_fp_env_hostile(int flush, int rounding, int traps)
{
#if FS_FP_ENV_MXCSR
    /* MXCSR rounding control: 1 down, 2 up, 3 toward zero (bits 13-14) */
    static const unsigned int rc[4] = {0u, 2u, 1u, 3u};
    unsigned int csr = FS_MXCSR_DEFAULT | ((rc[rounding & 3] & 3u) << 13);
    if (flush)
        csr |= 0x8040u; /* FTZ, DAZ */
    if (traps)
        csr &= ~((1u << 7) | (1u << 9) | (1u << 10)); /* invalid, divide by zero, overflow */
    return csr;
#elif FS_FP_ENV_FPCR
    /* FPCR RMode: 1 toward +inf, 2 toward -inf, 3 toward zero (bits 22-23) */
    uint64_t fpcr = (uint64_t)(rounding & 3) << 22;
    if (flush)
        fpcr |= (uint64_t)1 << 24;
    if (traps)
        fpcr |= (uint64_t)0x700u; /* IOE, DZE, OFE (a core without trapping ignores them) */
    return fpcr;
#else
    static const int mode[4] = {FE_TONEAREST,
#ifdef FE_UPWARD
                                FE_UPWARD,
#else
                                FE_TONEAREST,
#endif
#ifdef FE_DOWNWARD
                                FE_DOWNWARD,
#else
                                FE_TONEAREST,
#endif
#ifdef FE_TOWARDZERO
                                FE_TOWARDZERO
#else
                                FE_TONEAREST
#endif
    };
    (void)flush;
    (void)traps;
    return (uint64_t)(int64_t)mode[rounding & 3];
#endif
}

#endif /* FS_FP_ENV_H */
