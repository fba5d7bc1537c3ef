# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False
"""The parallel loops: split validated arrays into blocks and call the C kernels.

Everything here takes arrays that the Python layer (``fastsoftmax._checks``)
has already checked: C-contiguous, float32 or float64, output of the right
shape and dtype, and a thread count >= 1.  Nothing here validates or raises for bad input; the GIL is
released around every kernel call.

An array is seen as ``(outer, n, inner)`` with ``n`` the reduced axis.  Work is
split between threads by whole slices (rows, or runs of columns when the
reduced axis is not the last), or, for a few very long rows, by the kernels'
fixed-size chunks (``FS_CHUNK``) combined in chunk order, which the C
kernels do themselves (src/fs_long_rows_tmpl.h).  Either way every slice sees
the same operations in the same order, so the results are bitwise identical
for every thread count.

The threads are fastsoftmax's own executor (src/fs_pool.h), not OpenMP
regions: the calling thread takes parts of the work from a shared counter
with the pool's workers and waits only for parts a worker actually took, so a
call never waits for a worker the OS has not scheduled.
"""
cimport numpy as cnp
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.math cimport INFINITY, NAN, copysign, fabsf, log
from libc.string cimport memcpy, memset
from cpython.pyport cimport PY_SSIZE_T_MAX

cnp.import_array()

# The input element type a job runs in: float32, float64, or a 16-bit float's
# bits: uint16_t for IEEE float16, int16_t for bfloat16 (two C types only so
# that each gets its own copy; the kernels read both as uint16_t patterns,
# src/fs_half.h).  The 16-bit kinds compute in float and write float32 outputs.
ctypedef fused real:
    float
    double
    uint16_t
    int16_t

cdef extern from "fs_kernels.h" nogil:
    ctypedef Py_ssize_t fs_index
    fs_index FS_CHUNK
    int FS_LOG_OUTPUT, FS_STREAM_OUTPUT, FS_IN_CACHE
    ctypedef enum fs_op:
        FS_OP_SOFTMAX
        FS_OP_LOG_SOFTMAX
        FS_OP_LOGSUMEXP
        FS_OP_SOFTMAX_BACKWARD
        FS_OP_LOG_SOFTMAX_BACKWARD
        FS_OP_CROSS_ENTROPY
        FS_OP_TOP_K
        FS_OP_SAMPLE
    ctypedef struct fs_sample_params:
        double inv_temperature
        int64_t min_keep
    ctypedef struct fs_sample_result:
        int64_t token
        int64_t status
    ctypedef struct fs_block_sizes:
        int lanes, unroll, flush_steps, short_row, short_softmax_row, short_log_row
        int short_logsumexp_row
        fs_index chunk
        int blocked_log_sum_from, stream_scratch, stream_row_scratch, stream_grad_from
        int stream_rows_from
        int pipelined_from, log_pipelined_from, pipelined_to, pipelined_deep_to
        int walks_back_from

    # fs_kernels_f32 and fs_kernels_f64, declared once for both dtypes.  Cython
    # passes kernel arguments to C uncast, so the C compiler still checks every
    # call against the typed structs in fs_kernels.h (a pointer of the wrong
    # dtype is a warning in GCC 12, an error from GCC 14 on); here an element
    # pointer is `void *`, an element value `double` (float converts exactly
    # both ways).  Only for calls through table.f32 / table.f64: no C type has
    # this name.
    ctypedef struct fs_dtype_kernels:
        void (*softmax)(const void *x, const uint8_t *mask, fs_index mask_period,
                        fs_index mask_start, void *out, fs_index outer, fs_index n,
                        fs_index width, fs_index stride, double scale,
                        int flags) noexcept nogil
        void (*logsumexp)(const void *x, const uint8_t *mask, fs_index mask_period,
                          fs_index mask_start, void *out, fs_index outer, fs_index n,
                          fs_index width, fs_index stride) noexcept nogil
        void (*logsumexp_parts)(const void *x, const uint8_t *mask, fs_index mask_period,
                                fs_index mask_start, void *max, double *log_sum, fs_index outer,
                                fs_index n, fs_index width, fs_index stride,
                                double scale) noexcept nogil
        void (*softmax_shifted)(const void *x, const uint8_t *mask, fs_index mask_period,
                                fs_index mask_start, void *out, fs_index outer, fs_index n,
                                fs_index width, fs_index stride, double scale, const void *shift,
                                const void *adjust, int log_output) noexcept nogil
        int (*softmax_long_rows)(const void *x, const uint8_t *mask, fs_index mask_period,
                                 fs_index mask_start, void *out, fs_index rows, fs_index n,
                                 double scale, int op, int flags, int nthreads) noexcept nogil
        int (*backward_long_rows)(const void *g, const void *y, void *out, fs_index rows,
                                  fs_index n, int log_output, int nthreads) noexcept nogil
        int (*cross_entropy_long_rows)(const void *x, const int64_t *labels, const void *target,
                                       const void *weight, double weight_sum, double eps,
                                       int64_t ignore_index, double *loss, void *grad,
                                       double grad_scale, fs_index rows, fs_index n,
                                       int flags, int nthreads) noexcept nogil
        void (*exp_span)(const void *x, void *out, fs_index n) noexcept nogil
        void (*backward)(const void *g, const void *y, void *out, fs_index outer, fs_index n,
                         fs_index width, fs_index stride, int log_output) noexcept nogil
        void (*cross_entropy)(const void *x, const int64_t *labels, const void *target,
                              const void *weight, double weight_sum, double eps,
                              int64_t ignore_index, double *loss, void *grad, double grad_scale,
                              fs_index outer, fs_index n, fs_index width,
                              fs_index stride, int flags) noexcept nogil
        void (*top_k)(const void *x, void *values, int64_t *indices, fs_index rows, fs_index n,
                      fs_index k, int largest) noexcept nogil
        void (*sample)(const void *x, fs_index rows, fs_index n, const fs_sample_params *params,
                       fs_sample_result *results, int64_t *top_tokens, float *top_logprobs,
                       fs_index n_top) noexcept nogil
        fs_block_sizes sizes

    # fs_narrowing_kernels_f16_f16 and _bf16_bf16: 16-bit in and out, the elementwise ops
    # and cross_entropy's gradient.
    ctypedef struct fs_narrowing_kernels:
        void (*softmax)(const void *x, const uint8_t *mask, fs_index mask_period,
                        fs_index mask_start, void *out, fs_index outer, fs_index n,
                        fs_index width, fs_index stride, float scale,
                        int flags) noexcept nogil
        int (*softmax_long_rows)(const void *x, const uint8_t *mask, fs_index mask_period,
                                 fs_index mask_start, void *out, fs_index rows, fs_index n,
                                 float scale, int op, int flags, int nthreads) noexcept nogil
        void (*backward)(const void *g, const void *y, void *out, fs_index outer, fs_index n,
                         fs_index width, fs_index stride, int log_output) noexcept nogil
        int (*backward_long_rows)(const void *g, const void *y, void *out, fs_index rows,
                                  fs_index n, int log_output, int nthreads) noexcept nogil
        void (*cross_entropy)(const void *x, const int64_t *labels, const float *target,
                              const float *weight, double weight_sum, double eps,
                              int64_t ignore_index, double *loss, void *grad,
                              double grad_scale, fs_index outer, fs_index n, fs_index width,
                              fs_index stride, int flags) noexcept nogil
        void (*narrow)(const float *x, void *out, fs_index n) noexcept nogil

    ctypedef struct fs_kernel_table:
        const char *isa
        int vector_bytes
        int can_stream, stream_recomputes
        fs_dtype_kernels f32
        fs_dtype_kernels f64
        fs_dtype_kernels f16
        fs_dtype_kernels bf16
        fs_narrowing_kernels f16_f16
        fs_narrowing_kernels bf16_bf16

    const fs_kernel_table *fs_select_kernels(const char *isa)
    const char *fs_available_isas()

cdef extern from "fs_threads.h" nogil:
    int FS_HAVE_OPENMP
    int fs_max_threads()

cdef extern from "fs_pool.h" nogil:
    ctypedef void (*fs_part_fn)(void *ctx, int64_t part) noexcept nogil
    void fs_parallel_run(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx)
    const char *fs_pool_kind()
    int fs_pool_workers()
    int fs_pool_set_spin_us(int us)
    int fs_pool_set_openmp(int on)
    int fs_pool_fail_spawn(int on)
    int fs_pool_would_share(int nthreads)
    int fs_pool_set_backoff_jobs(int jobs)
    int fs_pool_job_lost(int64_t wall_ns, int64_t wait_ns, int64_t claims, int64_t *claim_ns,
                         int64_t timed)

cdef extern from "fs_fp_env.h" nogil:
    # The kernels' floating-point environment on the calling thread, for one call
    # (fs_fp_env.h says why): _run, and the sums below.
    ctypedef struct fs_fp_env:
        pass
    fs_fp_env fs_fp_env_enter()
    void fs_fp_env_leave(fs_fp_env env)
    uint64_t fs_fp_env_get_raw()
    void fs_fp_env_set_raw(uint64_t raw)
    uint64_t fs_fp_env_hostile(int flush, int rounding, int traps)

cdef extern from "fs_pages.h" nogil:
    void fs_advise_huge_pages(void *start, size_t nbytes)

cdef extern from "fs_openmp_runtime.h" nogil:
    int fs_openmp_runtime_file(const char **path, uintptr_t *base)
    int fs_openmp_runtime_users()

cdef enum:
    # Columns handed to one thread start at multiples of this many elements
    # (a cache line or more), so threads never write into the same line.
    COLUMN_ALIGN = 16
    # Parts of the work per thread, taken dynamically (see _run_slabs).
    PARTS_PER_THREAD = 8

# The operations' numbers for the Python layer (softmax_family's `op`): fs_kernels.h's fs_op.
OP_SOFTMAX = FS_OP_SOFTMAX
OP_LOG_SOFTMAX = FS_OP_LOG_SOFTMAX
OP_LOGSUMEXP = FS_OP_LOGSUMEXP

# A float32 logsumexp is max + log(sum) of float32 exponentials, each rounded by up
# to 1.35 ULP (2**-23 units: 1.6e-7 of itself; the README's Numerics), so log(sum)
# may be off by 1.6e-7 * log(sum) <= 1.6e-7 * log(n), however exactly it is summed.
# Where a negative max cancels log(sum), that is more than the relative bound (1e-6)
# of a result under 0.16 * log(n): the logsumexp of log-probabilities, near 0, took
# 1.4e-8 of error for a result of 2.5e-8.  The Python layer computes the slices
# whose float32 result lies within this many log(n) of 0 (with a margin) again in
# float64 (_logsumexp._redo_near_zero); small_call leaves calls with one to it.
cdef double _NEAR_ZERO_PER_LOG_N = 0.25
NEAR_ZERO_PER_LOG_N = _NEAR_ZERO_PER_LOG_N

cdef const fs_kernel_table *kernels = fs_select_kernels(NULL)


# ---------------------------------------------------------------- configuration

def isa():
    """Name of the instruction set whose kernels run: avx512, avx2, baseline or scalar."""
    return kernels.isa.decode()


def available_isas():
    """The instruction sets this build holds and this CPU runs, best first."""
    return tuple(fs_available_isas().decode().split())


def set_isa(str name not None):
    """Run the kernels built for ``name`` (one of :func:`available_isas`, as spelled
    there); returns False if the build or CPU lacks it."""
    global kernels
    cdef const fs_kernel_table *table
    if "\0" in name:  # C would read the name up to it: "avx2\0junk" chose avx2
        raise ValueError(f"an ISA name holds no NUL character, got {name!r}")
    table = fs_select_kernels(name.encode())
    if table == NULL:
        return False
    kernels = table
    return True


cdef dict _block_sizes(fs_block_sizes sizes):
    return {"lanes": sizes.lanes, "unroll": sizes.unroll, "flush_steps": sizes.flush_steps,
            "short_row": sizes.short_row, "short_softmax_row": sizes.short_softmax_row,
            "short_log_row": sizes.short_log_row,
            "short_logsumexp_row": sizes.short_logsumexp_row, "chunk": sizes.chunk,
            "blocked_log_sum_from": sizes.blocked_log_sum_from,
            "stream_scratch": sizes.stream_scratch,
            "stream_row_scratch": sizes.stream_row_scratch,
            "stream_grad_from": sizes.stream_grad_from,
            "stream_rows_from": sizes.stream_rows_from,
            "pipelined_from": sizes.pipelined_from,
            "log_pipelined_from": sizes.log_pipelined_from, "pipelined_to": sizes.pipelined_to,
            "pipelined_deep_to": sizes.pipelined_deep_to,
            "walks_back_from": sizes.walks_back_from}


def kernel_info():
    """The kernels' block sizes per instruction set (those ``available_isas()``
    lists) and input dtype, read from the C tables: ``{isa: {"float32": {"lanes",
    "unroll", "flush_steps", "short_row", "short_softmax_row", "short_log_row",
    "short_logsumexp_row", "chunk", "blocked_log_sum_from", "stream_scratch",
    "stream_row_scratch", "stream_grad_from", "stream_rows_from", "pipelined_from",
    "log_pipelined_from", "pipelined_to", "pipelined_deep_to", "walks_back_from"},
    "float64": {...}, "float16": {...},
    "bfloat16": {...}}}`` (the 16-bit inputs run float32's blocks).  Row
    lengths on either side of each take different code paths (src/fs_kernels.h,
    fs_block_sizes; tests/test_kernel_boundaries.py tests them)."""
    cdef const fs_kernel_table *table
    info = {}
    for name in available_isas():
        table = fs_select_kernels(name.encode())
        info[name] = {"float32": _block_sizes(table.f32.sizes),
                      "float64": _block_sizes(table.f64.sizes),
                      "float16": _block_sizes(table.f16.sizes),
                      "bfloat16": _block_sizes(table.bf16.sizes)}
    return info


def openmp_enabled():
    """Whether this build was compiled with OpenMP."""
    return bool(FS_HAVE_OPENMP)


def max_threads():
    """OpenMP's current maximum thread count (1 without OpenMP)."""
    return fs_max_threads()


def executor():
    """Which executor runs multi-threaded calls: "pthreads" (fastsoftmax's own pool,
    src/fs_pool.h), "openmp" (an OpenMP loop, where there are no POSIX threads) or
    "serial"."""
    return fs_pool_kind().decode()


def pool_workers():
    """How many worker threads the pool has started in this process (0 until a call
    first runs on several threads, and in a fresh fork child)."""
    return fs_pool_workers()


def _pool_settings(spin_us=None, openmp=None, fail_spawn=None, backoff_jobs=None):
    """Test and measurement knobs of the executor (src/fs_pool.h); each given one is set,
    and the previous values are returned as a dict.  ``spin_us``: how long idle workers spin
    before sleeping (negative: the default).  ``openmp``: run the parts in an OpenMP loop,
    the old executor, to compare with.  ``fail_spawn``: act as if no thread can be
    started.  ``backoff_jobs``: how many more jobs run on their calling thread alone, as
    after a job that lost to one thread on a busy machine (0 ends the back-off; negative
    only reads it)."""
    old = {}
    if backoff_jobs is not None:
        old["backoff_jobs"] = fs_pool_set_backoff_jobs(backoff_jobs)
    if spin_us is not None:
        old["spin_us"] = fs_pool_set_spin_us(spin_us)
    if openmp is not None:
        old["openmp"] = bool(fs_pool_set_openmp(openmp))
    if fail_spawn is not None:
        old["fail_spawn"] = bool(fs_pool_fail_spawn(fail_spawn))
    return old


def _fp_env(raw=None):
    """The calling thread's floating-point control state as a number (MXCSR on x86-64,
    FPCR on AArch64, the rounding mode elsewhere; without exception flags); with ``raw``,
    set it first and return the previous one.  For the tests of src/fs_fp_env.h."""
    cdef uint64_t old = fs_fp_env_get_raw()
    if raw is not None:
        fs_fp_env_set_raw(raw)
    return old


def _hostile_fp_env(bint flush=False, int rounding=0, bint traps=False):
    """A state for :func:`_fp_env` that the kernels must not depend on: subnormals
    flushed to zero, rounding ``rounding`` (0 to nearest, 1 upward, 2 downward, 3 toward
    zero), traps on invalid operations, division by zero and overflow (each only where
    the platform has it; src/fs_fp_env.h)."""
    return fs_fp_env_hostile(flush, rounding, traps)


cdef struct SelfTest:
    int64_t *out
    int64_t parts


cdef void _self_test_part(void *arg, int64_t part) noexcept nogil:
    cdef const SelfTest *t = <const SelfTest *> arg
    t.out[part] += 3 * part + 1


def _pool_job_lost(int64_t wall_ns, int64_t wait_ns, int64_t claims, claim_ns):
    """The executor's back-off test (src/fs_pool.h, fs_pool_job_lost), for tests: whether a
    job of ``claims`` claims that took ``wall_ns`` nanoseconds, ``wait_ns`` of them waiting
    for workers, lost to one thread, given the times of its first claims (``claim_ns``, a
    sequence of at most 256 nanoseconds, as the executor times at most 256)."""
    cdef int64_t times[256]
    cdef Py_ssize_t timed = len(claim_ns), i
    if timed > 256:
        raise ValueError(f"claim_ns: at most 256 times, got {timed}")
    if wall_ns < 0 or wait_ns < 0 or wait_ns > wall_ns or claims < timed:
        raise ValueError(f"a job of {claims} claims, {timed} of them timed, that took {wall_ns} "
                         f"ns and waited {wait_ns}: not a job the executor runs")
    for i in range(timed):
        times[i] = claim_ns[i]
    return bool(fs_pool_job_lost(wall_ns, wait_ns, claims, times, timed))


def _pool_self_test(int nthreads, Py_ssize_t parts, int repeats=1):
    """Run ``repeats`` jobs of ``parts`` parts on ``nthreads`` threads, each part adding
    ``3 * part + 1`` to its own element; True if every part ran exactly once in each."""
    cdef int64_t *out = <int64_t *> calloc(max(1, parts), sizeof(int64_t))
    cdef SelfTest t
    cdef Py_ssize_t i
    cdef int r
    cdef bint ok = True
    if out == NULL:
        raise MemoryError()
    t.out = out
    t.parts = parts
    with nogil:
        for r in range(repeats):
            fs_parallel_run(nthreads, parts, _self_test_part, &t)
        for i in range(parts):
            ok = ok and out[i] == repeats * (3 * i + 1)
    free(out)
    return ok


def openmp_runtime():
    """``(path, load address)`` of the OpenMP runtime library this module calls, or None
    where that cannot be told (no OpenMP, not Linux with glibc)."""
    cdef const char *path = NULL
    cdef uintptr_t base = 0
    if not fs_openmp_runtime_file(&path, &base):
        return None
    return path.decode(errors="surrogateescape"), base


def openmp_runtime_users():
    """How many other loaded libraries link this module's OpenMP runtime; -1 where that
    cannot be told.  (src/fs_openmp_runtime.h: why fork safety needs it.)"""
    return fs_openmp_runtime_users()


# ---------------------------------------------------------------- kernel calls

cdef struct Mask:
    # A `where=` mask: one byte per element of x, repeating every `period`
    # elements (a mask broadcast over leading axes is not copied).  data is NULL
    # when there is no mask.
    const uint8_t *data
    fs_index period


cdef struct Shape:
    # The arrays seen as (outer, n, inner), n the reduced axis.
    fs_index outer, n, inner


# One call of each operation: its arrays and constants.  `_block` runs any
# slab/column range of one; all pointers are to C-contiguous arrays.

cdef struct SoftmaxJob:
    # softmax, log_softmax (one value per element) or logsumexp (one per slice)
    Shape shape
    fs_op op
    const void *x
    void *out              # like x, or (outer, inner) for logsumexp; may be x
    Mask mask
    double scale           # 1 / temperature
    bint narrow            # 16-bit input, out of the same 16-bit type (else out is float32)
    int stream             # FS_STREAM_OUTPUT or 0: the kernels' flag (see softmax_family)
    int in_cache           # FS_IN_CACHE or 0: the kernels' flag (see softmax_family)
    # The combining ops of fastsoftmax.dask (NULL otherwise), laid out as logsumexp's out:
    double *log_sums       # logsumexp: out gets each slice's max, log_sums its log(sum)
    const void *shift      # softmax, log_softmax: each slice's shift and adjustment are given
    const void *adjust     # (softmax_shifted in fs_kernels.h), in the compute type


cdef struct BackwardJob:
    # softmax_backward, or log_softmax_backward when log_output
    Shape shape
    const void *grad_output
    const void *output     # the forward result y
    void *out              # may be either input
    bint log_output
    bint narrow            # 16-bit inputs, out of the same 16-bit type (else out is float32)


cdef struct CrossEntropyJob:
    Shape shape
    const void *logits
    const int64_t *labels  # class indices, (outer, inner); NULL with probability targets
    const void *target     # probabilities like logits; NULL with labels
    const void *weight     # class weights, (n,); NULL: none
    double weight_sum, eps, grad_scale
    int64_t ignore_index
    double *loss           # one loss per sample, (outer, inner)
    void *grad             # like logits (may be logits), or NULL: no gradient
    int stream             # FS_STREAM_OUTPUT or 0: the kernels' flag (see cross_entropy)
    bint narrow            # a 16-bit grad of the logits' type (else grad is in the compute type)


cdef struct TopKJob:
    # rows of n, always contiguous (inner == 1): the Python layer moves the axis last
    Shape shape
    fs_op op               # FS_OP_TOP_K
    const void *x
    void *values           # (outer, k)
    int64_t *indices       # (outer, k)
    fs_index k
    bint largest


cdef struct SampleJob:
    # rows of n, contiguous; one fs_sample_params and fs_sample_result per row
    Shape shape
    fs_op op               # FS_OP_SAMPLE
    const void *x
    const fs_sample_params *params
    fs_sample_result *results
    int64_t *top_tokens    # (outer, n_top), or NULL when n_top == 0
    float *top_logprobs
    fs_index n_top


ctypedef fused AnyJob:
    SoftmaxJob
    BackwardJob
    CrossEntropyJob
    TopKJob
    SampleJob


cdef inline void *_computed_at(const void *p, fs_index offset,
                               const real *dtype_marker) noexcept nogil:
    """Element ``offset`` of an array in the job's compute type (outputs, soft targets,
    class weights): double for float64 input, float for float32 and the 16-bit inputs."""
    if real is double:
        return <void *> ((<const double *> p) + offset)
    return <void *> ((<const float *> p) + offset)


# Each block below calls the kernel set of its input type.  Cython passes the
# arguments uncast, so the C compiler checks every call against that set's
# typed signature (fs_kernels.h); the 16-bit inputs are handed over as
# `const void *`, since their marker types (uint16_t, int16_t) stand for
# kernels that take uint16_t bit patterns.

# The float32 results of the rows of a 16-bit result that one thread computes at a time
# (_narrowed_softmax_rows, _narrowed_cross_entropy_rows): 1 MB, in the caches between the
# kernel that writes it and the rounding that reads it.  On a Zen 5 (1 MB of L2 a core),
# 2026-12-06, blocks of 1 MB took 0.88-0.97 of the time of blocks of 256 KB (which stay
# in L2) on 16384x512, 2048x32000 and softmax's 32x50257, and the same elsewhere; blocks
# of 4 MB gained another 0-3%, for four times the memory.
cdef enum:
    NARROWED_ROWS_ELEMENTS = 262144
NARROWED_ROWS = NARROWED_ROWS_ELEMENTS


# cross_entropy's 16-bit gradient rows from this long go through the 16-bit kernels
# (narrowed_gradient_in_kernels).
cdef enum:
    NARROWED_GRADIENT_FROM = 256


cdef inline bint _narrowed_gradient_in_kernels(fs_index n) noexcept nogil:
    return (n <= kernels.f16.sizes.short_logsumexp_row
            or NARROWED_GRADIENT_FROM <= n <= NARROWED_ROWS_ELEMENTS)


def narrowed_gradient_in_kernels(Py_ssize_t n):
    """Whether cross_entropy's 16-bit gradient rows of ``n`` classes go through the 16-bit
    kernels, which keep each row's exponentials in a float32 scratch row and round each
    value once as they store it, rather than through float32 blocks rounded in a second
    pass (_narrowed_cross_entropy_rows): rows of one row per vector lane
    (``short_logsumexp_row``: cross_entropy's run one per lane as far as logsumexp's) and
    rows of NARROWED_GRADIENT_FROM to NARROWED_ROWS elements.  Zen 5, 2026-12-06,
    ``benchmarks/ab_builds.py`` (min of rounds, kernels / blocks): AVX-512, float16
    0.80-0.95 and bfloat16 0.84-0.99 on rows of 256 to 65536 (1 and 2 threads), 0.90-0.96
    on rows of 10 and 32, 1.04-1.10 on rows of 33 to 100 (then rows, not one per lane),
    about level at 128 to 200 (0.98-1.03; one thread).  AVX2 and SSE2 (bfloat16, one
    thread) crossed at 200 too.  Longer rows would compute their exponentials again (no
    scratch row stays in L2): 1.30-1.47 on 4x300000.  Rows of 33 to 64 classes, one per
    lane since 2026-12-07 (Zen 4, one thread, 1000000 elements, min of 7, two runs):
    AVX-512 float16 0.90-0.93 and bfloat16 0.94-0.96, AVX2 bfloat16 (33 to 48) 0.93-0.96,
    SSE2 0.98-1.01."""
    return _narrowed_gradient_in_kernels(n)


# For tests (_narrowing_scratch_failures): 0, or every block whose first row is a multiple
# of it finds no scratch, as if malloc had failed, so that the fallbacks run.
cdef fs_index _scratch_fails_every = 0


def _narrowing_scratch_failures(Py_ssize_t every):
    """For tests: from now on, the float32 scratch of a 16-bit result's block of rows
    (softmax, cross_entropy's gradient) is refused, as if malloc had failed, to each block
    whose first row is a multiple of ``every`` (0: never).  Returns the previous value."""
    global _scratch_fails_every
    if every < 0:
        raise ValueError(f"every must be >= 0, got {every}")
    previous, _scratch_fails_every = _scratch_fails_every, every
    return previous


cdef inline float *_narrowing_scratch(fs_index first_row, fs_index size) noexcept nogil:
    """malloc'ed float32 scratch for a block of rows of a 16-bit result starting at
    ``first_row``, or NULL (no memory, or the tests' _narrowing_scratch_failures)."""
    if _scratch_fails_every and first_row % _scratch_fails_every == 0:
        return NULL
    return <float *> malloc(size * sizeof(float))


cdef inline void _round_into(const real *dtype_marker, const float *values, void *out,
                             fs_index count) noexcept nogil:
    """``count`` float32 values rounded once into ``out``, of the 16-bit type that
    ``real`` stands for (uint16_t: float16, int16_t: bfloat16)."""
    if real is uint16_t:
        kernels.f16_f16.narrow(values, out, count)
    elif real is int16_t:
        kernels.bf16_bf16.narrow(values, out, count)


cdef bint _narrowed_softmax_rows(const SoftmaxJob *job, const real *dtype_marker, fs_index a,
                                 fs_index b) noexcept nogil:
    """softmax (or bfloat16's log_softmax) into a 16-bit result, rows a to b along the
    last axis: each group of rows that fits NARROWED_ROWS_ELEMENTS computed by the
    float32-result kernel into a scratch block, then rounded once into ``out``.  That is
    the 16-bit result's definition (the float32 result rounded once), with one
    exponential per element, where the narrowing kernels' last pass computes each one
    again (the sum pass cannot keep them in a 16-bit output).  On a Zen 5, 2026-12-06,
    2 threads, it took 0.66-0.76 of their time on 4x128256 (and 0.69-0.78 on 1x128256, one
    thread) and, through blocks of 256 KB timed against both that day, about 0.50-0.75 on
    32x50257, 16384x512 and 8192x100 and 0.78-0.90 from memory (2048x32000), but
    1.03-1.16 on rows of one row per lane (``short_softmax_row``: 1000000x10, 4096x32), which keep
    their kernels.  log_softmax's narrowing kernel computes no exponential again, but
    rounds each vector as it writes it: for bfloat16 (integer steps) the blocks, whose
    rounding packs two vectors a step, took 0.75-0.93 of its time on rows of 32 to 50257
    (1 and 2 threads, the same day); for float16 (VCVTPS2PH) 0.86-1.15, so float16 keeps
    it.  Unmasked runs of two rows or more that the kernels pipeline (``pipelined_from``, or
    log_softmax's ``log_pipelined_from``, to ``pipelined_to`` elements) keep their own
    float32 scratch rows, whose last pass rounds as it stores, one pass fewer than a block's (fs_softmax_tmpl.h's
    softmax_rows_pipelined): on the same Zen 5, 1 and 2 threads, 0.68-0.91 of the blocks'
    time for float16 and 0.90-0.96 for bfloat16 on rows of 512 to 65536.  bfloat16's rows
    shorter than one blocked step (lanes x unroll x flush_steps: 512 with AVX-512) keep the
    blocks: in the pipeline each such row's output starts anywhere in a line, and its head
    and tail take partial stores row by row, where the blocks' rounding pass walks all
    their rows as one span (1.00-1.07 of the blocks' time, with the pipeline's stores in
    pairs or not).  False, having written nothing, for those, for rows longer
    than the block, or if the block cannot be allocated: the narrowing kernels then give
    the same bits."""
    cdef fs_index n = job.shape.n, rows, r = a
    cdef const void *x
    if not (real is uint16_t or real is int16_t) or n > NARROWED_ROWS_ELEMENTS:
        return False
    cdef bint log_output = job.op == FS_OP_LOG_SOFTMAX
    if log_output and real is uint16_t:
        return False  # float16's log_softmax rounds as it writes: see the docstring
    cdef int flags = FS_IN_CACHE | (FS_LOG_OUTPUT if log_output else 0)
    cdef const fs_block_sizes *sizes = &kernels.bf16.sizes
    if real is uint16_t:
        sizes = &kernels.f16.sizes
    if n <= (sizes.short_log_row if log_output else sizes.short_softmax_row):
        return False
    cdef fs_index pipelined_from = (sizes.log_pipelined_from if log_output
                                    else sizes.pipelined_from)
    if (job.mask.data == NULL and b - a >= 2 and pipelined_from <= n
            and n <= sizes.pipelined_to
            and (real is uint16_t or n >= sizes.lanes * sizes.unroll * sizes.flush_steps)):
        return False  # the narrowing kernel's pipeline: see the docstring
    cdef fs_index group = min(NARROWED_ROWS_ELEMENTS // n, b - a)
    cdef float *scratch = _narrowing_scratch(a, group * n)
    if scratch == NULL:
        return False
    # Each kernel call's input and output, a group of rows and the scratch, fit the caches
    # whatever the whole call's size: FS_IN_CACHE, so that rows past a chunk are pipelined.
    while r < b:
        rows = min(group, b - r)
        x = (<const real *> job.x) + r * n
        if real is uint16_t:
            kernels.f16.softmax(x, job.mask.data, job.mask.period, r * n, scratch, rows, n, 1, 1,
                                <float> job.scale, flags)
        else:
            kernels.bf16.softmax(x, job.mask.data, job.mask.period, r * n, scratch, rows, n, 1,
                                 1, <float> job.scale, flags)
        _round_into(dtype_marker, scratch, (<uint16_t *> job.out) + r * n, rows * n)
        r += rows
    free(scratch)
    return True


cdef void _softmax_block(const SoftmaxJob *job, const real *dtype_marker, fs_index a, fs_index b,
                         fs_index j0, fs_index j1) noexcept nogil:
    cdef fs_index n = job.shape.n, inner = job.shape.inner
    cdef fs_index at = a * n * inner + j0     # flat offset of the first element
    cdef const void *x = (<const real *> job.x) + at
    cdef void *out
    cdef bint log_output = job.op == FS_OP_LOG_SOFTMAX
    cdef int flags = (FS_LOG_OUTPUT if log_output else 0) | job.stream | job.in_cache
    cdef fs_index slice_at = a * inner + j0    # the same, in per-slice arrays
    if job.op == FS_OP_LOGSUMEXP and job.log_sums != NULL:
        out = _computed_at(job.out, slice_at, dtype_marker)
        if real is float:
            kernels.f32.logsumexp_parts(<const float *> x, job.mask.data, job.mask.period, at,
                                        <float *> out, job.log_sums + slice_at, b - a, n, j1 - j0,
                                        inner, <float> job.scale)
        elif real is double:
            kernels.f64.logsumexp_parts(<const double *> x, job.mask.data, job.mask.period, at,
                                        <double *> out, job.log_sums + slice_at, b - a, n,
                                        j1 - j0, inner, job.scale)
        elif real is uint16_t:
            kernels.f16.logsumexp_parts(x, job.mask.data, job.mask.period, at, <float *> out,
                                        job.log_sums + slice_at, b - a, n, j1 - j0, inner,
                                        <float> job.scale)
        else:
            kernels.bf16.logsumexp_parts(x, job.mask.data, job.mask.period, at, <float *> out,
                                         job.log_sums + slice_at, b - a, n, j1 - j0, inner,
                                         <float> job.scale)
        return
    if job.shift != NULL:
        out = _computed_at(job.out, at, dtype_marker)
        if real is float:
            kernels.f32.softmax_shifted(<const float *> x, job.mask.data, job.mask.period, at,
                                        <float *> out, b - a, n, j1 - j0, inner,
                                        <float> job.scale,
                                        <const float *> _computed_at(job.shift, slice_at,
                                                                     dtype_marker),
                                        <const float *> _computed_at(job.adjust, slice_at,
                                                                     dtype_marker),
                                        log_output)
        elif real is double:
            kernels.f64.softmax_shifted(<const double *> x, job.mask.data, job.mask.period, at,
                                        <double *> out, b - a, n, j1 - j0, inner, job.scale,
                                        <const double *> _computed_at(job.shift, slice_at,
                                                                      dtype_marker),
                                        <const double *> _computed_at(job.adjust, slice_at,
                                                                      dtype_marker),
                                        log_output)
        elif real is uint16_t:
            kernels.f16.softmax_shifted(x, job.mask.data, job.mask.period, at, <float *> out,
                                        b - a, n, j1 - j0, inner, <float> job.scale,
                                        <const float *> _computed_at(job.shift, slice_at,
                                                                     dtype_marker),
                                        <const float *> _computed_at(job.adjust, slice_at,
                                                                     dtype_marker),
                                        log_output)
        else:
            kernels.bf16.softmax_shifted(x, job.mask.data, job.mask.period, at, <float *> out,
                                         b - a, n, j1 - j0, inner, <float> job.scale,
                                         <const float *> _computed_at(job.shift, slice_at,
                                                                      dtype_marker),
                                         <const float *> _computed_at(job.adjust, slice_at,
                                                                      dtype_marker),
                                         log_output)
        return
    if job.op == FS_OP_LOGSUMEXP:
        out = _computed_at(job.out, slice_at, dtype_marker)  # out has no reduced axis
        if real is float:
            kernels.f32.logsumexp(<const float *> x, job.mask.data, job.mask.period, at,
                                  <float *> out, b - a, n, j1 - j0, inner)
        elif real is double:
            kernels.f64.logsumexp(<const double *> x, job.mask.data, job.mask.period, at,
                                  <double *> out, b - a, n, j1 - j0, inner)
        elif real is uint16_t:
            kernels.f16.logsumexp(x, job.mask.data, job.mask.period, at, <float *> out, b - a, n,
                                  j1 - j0, inner)
        else:
            kernels.bf16.logsumexp(x, job.mask.data, job.mask.period, at, <float *> out, b - a,
                                   n, j1 - j0, inner)
        return
    if job.narrow:  # 16-bit in and out: the same offsets in both
        if inner == 1 and _narrowed_softmax_rows(job, dtype_marker, a, b):
            return
        out = (<real *> job.out) + at
        if real is uint16_t:
            kernels.f16_f16.softmax(x, job.mask.data, job.mask.period, at, out, b - a, n,
                                    j1 - j0, inner, <float> job.scale, flags)
        elif real is int16_t:
            kernels.bf16_bf16.softmax(x, job.mask.data, job.mask.period, at, out, b - a, n,
                                      j1 - j0, inner, <float> job.scale, flags)
        return
    out = _computed_at(job.out, at, dtype_marker)
    if real is float:
        kernels.f32.softmax(<const float *> x, job.mask.data, job.mask.period, at, <float *> out,
                            b - a, n, j1 - j0, inner, <float> job.scale, flags)
    elif real is double:
        kernels.f64.softmax(<const double *> x, job.mask.data, job.mask.period, at,
                            <double *> out, b - a, n, j1 - j0, inner, job.scale, flags)
    elif real is uint16_t:
        kernels.f16.softmax(x, job.mask.data, job.mask.period, at, <float *> out, b - a, n,
                            j1 - j0, inner, <float> job.scale, flags)
    else:
        kernels.bf16.softmax(x, job.mask.data, job.mask.period, at, <float *> out, b - a, n,
                             j1 - j0, inner, <float> job.scale, flags)


cdef void _backward_block(const BackwardJob *job, const real *dtype_marker, fs_index a,
                          fs_index b, fs_index j0, fs_index j1) noexcept nogil:
    cdef fs_index n = job.shape.n, inner = job.shape.inner
    cdef fs_index at = a * n * inner + j0
    cdef const void *g = (<const real *> job.grad_output) + at
    cdef const void *y = (<const real *> job.output) + at
    cdef void *out
    if job.narrow:  # 16-bit in and out: the same offsets in all three
        out = (<real *> job.out) + at
        if real is uint16_t:
            kernels.f16_f16.backward(g, y, out, b - a, n, j1 - j0, inner, job.log_output)
        elif real is int16_t:
            kernels.bf16_bf16.backward(g, y, out, b - a, n, j1 - j0, inner, job.log_output)
        return
    out = _computed_at(job.out, at, dtype_marker)
    if real is float:
        kernels.f32.backward(<const float *> g, <const float *> y, <float *> out, b - a, n,
                             j1 - j0, inner, job.log_output)
    elif real is double:
        kernels.f64.backward(<const double *> g, <const double *> y, <double *> out, b - a, n,
                             j1 - j0, inner, job.log_output)
    elif real is uint16_t:
        kernels.f16.backward(g, y, <float *> out, b - a, n, j1 - j0, inner, job.log_output)
    else:
        kernels.bf16.backward(g, y, <float *> out, b - a, n, j1 - j0, inner, job.log_output)


cdef bint _narrowed_cross_entropy_rows(const CrossEntropyJob *job, const real *dtype_marker,
                                       fs_index a, fs_index b) noexcept nogil:
    """cross_entropy with a 16-bit gradient, rows a to b of the lengths the 16-bit kernels
    take no faster (_narrowed_gradient_in_kernels): each group of rows that fits
    NARROWED_ROWS_ELEMENTS computed by the float32-gradient kernel into a scratch block
    that stays in the cache, then rounded once into ``grad`` (the 16-bit gradient's
    definition: the float32 gradient rounded once).  A group's logits are read before
    its gradient is written, so ``grad`` may be ``logits``.  False, having written
    nothing, for the other rows, or if the block cannot be allocated: the 16-bit kernels
    then give the same bits."""
    cdef fs_index n = job.shape.n, rows, r = a
    if not (real is uint16_t or real is int16_t) or _narrowed_gradient_in_kernels(n):
        return False
    cdef fs_index group = max(1, min(NARROWED_ROWS_ELEMENTS // n, b - a))
    cdef float *scratch = _narrowing_scratch(a, group * n)
    cdef const void *x  # (the kernels' 16-bit x is a bit pattern: no signedness to match)
    cdef const float *target
    cdef const int64_t *labels
    if scratch == NULL:
        return False
    while r < b:
        rows = min(group, b - r)
        target = (<const float *> job.target) + r * n if job.target != NULL else NULL
        labels = job.labels + r if job.labels != NULL else NULL
        x = (<const real *> job.logits) + r * n
        # (stream 0: the scratch is read back at once)
        if real is uint16_t:
            kernels.f16.cross_entropy(x, labels, target, <const float *> job.weight,
                                      job.weight_sum, job.eps, job.ignore_index, job.loss + r,
                                      scratch, job.grad_scale, rows, n, 1, 1, 0)
        elif real is int16_t:
            kernels.bf16.cross_entropy(x, labels, target, <const float *> job.weight,
                                       job.weight_sum, job.eps, job.ignore_index, job.loss + r,
                                       scratch, job.grad_scale, rows, n, 1, 1, 0)
        _round_into(dtype_marker, scratch, (<uint16_t *> job.grad) + r * n, rows * n)
        r += rows
    free(scratch)
    return True


cdef void _cross_entropy_block(const CrossEntropyJob *job, const real *dtype_marker, fs_index a,
                               fs_index b, fs_index j0, fs_index j1) noexcept nogil:
    cdef fs_index n = job.shape.n, inner = job.shape.inner
    cdef fs_index at = a * n * inner + j0     # flat offset of the first element
    cdef fs_index sample_at = a * inner + j0   # same, in the per-sample arrays
    cdef const void *x = (<const real *> job.logits) + at
    cdef const void *target = (_computed_at(job.target, at, dtype_marker)
                               if job.target != NULL else NULL)
    cdef const int64_t *labels = job.labels + sample_at if job.labels != NULL else NULL
    cdef void *grad
    if (real is uint16_t or real is int16_t) and job.narrow:  # at the logits' offsets
        if inner == 1 and _narrowed_cross_entropy_rows(job, dtype_marker, a, b):
            return
        grad = (<real *> job.grad) + at
        if real is uint16_t:
            kernels.f16_f16.cross_entropy(x, labels, <const float *> target,
                                          <const float *> job.weight, job.weight_sum, job.eps,
                                          job.ignore_index, job.loss + sample_at, grad,
                                          job.grad_scale, b - a, n, j1 - j0, inner, 0)
        elif real is int16_t:
            kernels.bf16_bf16.cross_entropy(x, labels, <const float *> target,
                                            <const float *> job.weight, job.weight_sum, job.eps,
                                            job.ignore_index, job.loss + sample_at, grad,
                                            job.grad_scale, b - a, n, j1 - j0, inner, 0)
        return
    grad = _computed_at(job.grad, at, dtype_marker) if job.grad != NULL else NULL
    if real is float:
        kernels.f32.cross_entropy(<const float *> x, labels, <const float *> target,
                                  <const float *> job.weight, job.weight_sum, job.eps,
                                  job.ignore_index, job.loss + sample_at, <float *> grad,
                                  job.grad_scale, b - a, n, j1 - j0, inner, job.stream)
    elif real is double:
        kernels.f64.cross_entropy(<const double *> x, labels, <const double *> target,
                                  <const double *> job.weight, job.weight_sum, job.eps,
                                  job.ignore_index, job.loss + sample_at, <double *> grad,
                                  job.grad_scale, b - a, n, j1 - j0, inner, job.stream)
    elif real is uint16_t:
        kernels.f16.cross_entropy(x, labels, <const float *> target, <const float *> job.weight,
                                  job.weight_sum, job.eps, job.ignore_index,
                                  job.loss + sample_at, <float *> grad, job.grad_scale, b - a, n,
                                  j1 - j0, inner, job.stream)
    else:
        kernels.bf16.cross_entropy(x, labels, <const float *> target, <const float *> job.weight,
                                   job.weight_sum, job.eps, job.ignore_index,
                                   job.loss + sample_at, <float *> grad, job.grad_scale, b - a,
                                   n, j1 - j0, inner, job.stream)


cdef void _top_k_block(const TopKJob *job, const real *dtype_marker, fs_index a, fs_index b,
                       fs_index j0, fs_index j1) noexcept nogil:
    cdef fs_index n = job.shape.n, k = job.k
    cdef const void *x = (<const real *> job.x) + a * n
    cdef void *values = _computed_at(job.values, a * k, dtype_marker)
    if real is float:
        kernels.f32.top_k(<const float *> x, <float *> values, job.indices + a * k, b - a, n, k,
                          job.largest)
    elif real is double:
        kernels.f64.top_k(<const double *> x, <double *> values, job.indices + a * k, b - a, n,
                          k, job.largest)
    elif real is uint16_t:
        kernels.f16.top_k(x, <float *> values, job.indices + a * k, b - a, n, k, job.largest)
    else:
        kernels.bf16.top_k(x, <float *> values, job.indices + a * k, b - a, n, k, job.largest)


cdef void _sample_block(const SampleJob *job, const real *dtype_marker, fs_index a, fs_index b,
                        fs_index j0, fs_index j1) noexcept nogil:
    cdef fs_index n = job.shape.n, n_top = job.n_top
    cdef const void *x = (<const real *> job.x) + a * n
    cdef int64_t *top_tokens = job.top_tokens + a * n_top if n_top else NULL
    cdef float *top_logprobs = job.top_logprobs + a * n_top if n_top else NULL
    if real is float:
        kernels.f32.sample(<const float *> x, b - a, n, job.params + a, job.results + a,
                           top_tokens, top_logprobs, n_top)
    elif real is double:
        kernels.f64.sample(<const double *> x, b - a, n, job.params + a, job.results + a,
                           top_tokens, top_logprobs, n_top)
    elif real is uint16_t:
        kernels.f16.sample(x, b - a, n, job.params + a, job.results + a, top_tokens,
                           top_logprobs, n_top)
    else:
        kernels.bf16.sample(x, b - a, n, job.params + a, job.results + a, top_tokens,
                            top_logprobs, n_top)


cdef inline void _block(const AnyJob *job, const real *dtype_marker, fs_index a, fs_index b,
                        fs_index j0, fs_index j1) noexcept nogil:
    """Run slabs [a, b) and columns [j0, j1) of a job (``dtype_marker`` only picks the dtype)."""
    if AnyJob is SoftmaxJob:
        _softmax_block(job, dtype_marker, a, b, j0, j1)
    elif AnyJob is BackwardJob:
        _backward_block(job, dtype_marker, a, b, j0, j1)
    elif AnyJob is CrossEntropyJob:
        _cross_entropy_block(job, dtype_marker, a, b, j0, j1)
    elif AnyJob is TopKJob:
        _top_k_block(job, dtype_marker, a, b, j0, j1)
    else:
        _sample_block(job, dtype_marker, a, b, j0, j1)


cdef inline fs_index _split(fs_index total, fs_index parts, fs_index part) noexcept nogil:
    """Start of part ``part`` of ``parts`` near-equal parts of range(total)."""
    return (total * part) // parts


cdef enum:
    # The job kinds and input types of a Slabs (AnyJob's and real's members, in order).
    KIND_SOFTMAX, KIND_BACKWARD, KIND_CROSS_ENTROPY, KIND_TOP_K, KIND_SAMPLE
    TYPE_F32, TYPE_F64, TYPE_F16, TYPE_BF16


cdef struct Slabs:
    # One _run_slabs call, for its parts (_slab_part), which the executor calls with
    # this struct only: the job's fused types travel as the two numbers below.
    const void *job
    int kind               # KIND_*: which AnyJob member `job` points to
    int dtype              # TYPE_*: which `real` the job runs in
    fs_index outer, inner, columns, parts
    bint by_columns        # parts are runs of columns (else runs of slabs)


cdef inline void _typed_block(const AnyJob *job, int dtype, fs_index a, fs_index b, fs_index j0,
                              fs_index j1) noexcept nogil:
    """_block in the job's input type, given as a TYPE_* number."""
    if dtype == TYPE_F32:
        _block(job, <const float *> NULL, a, b, j0, j1)
    elif dtype == TYPE_F64:
        _block(job, <const double *> NULL, a, b, j0, j1)
    elif dtype == TYPE_F16:
        _block(job, <const uint16_t *> NULL, a, b, j0, j1)
    else:
        _block(job, <const int16_t *> NULL, a, b, j0, j1)


cdef void _slab_part(void *arg, int64_t part) noexcept nogil:
    """Part ``part`` of a _run_slabs call: its run of slabs or of columns."""
    cdef const Slabs *s = <const Slabs *> arg
    cdef fs_index a, b, j0 = 0, j1 = s.inner
    if s.by_columns:
        a, b = 0, s.outer
        j0 = _split(s.columns, s.parts, part) * COLUMN_ALIGN
        j1 = s.inner if part == s.parts - 1 else _split(s.columns, s.parts, part + 1) * COLUMN_ALIGN
        if j1 <= j0:
            return
    else:
        a = _split(s.outer, s.parts, part)
        b = _split(s.outer, s.parts, part + 1)
        if b <= a:
            return
    if s.kind == KIND_SOFTMAX:
        _typed_block(<const SoftmaxJob *> s.job, s.dtype, a, b, j0, j1)
    elif s.kind == KIND_BACKWARD:
        _typed_block(<const BackwardJob *> s.job, s.dtype, a, b, j0, j1)
    elif s.kind == KIND_CROSS_ENTROPY:
        _typed_block(<const CrossEntropyJob *> s.job, s.dtype, a, b, j0, j1)
    elif s.kind == KIND_TOP_K:
        _typed_block(<const TopKJob *> s.job, s.dtype, a, b, j0, j1)
    else:
        _typed_block(<const SampleJob *> s.job, s.dtype, a, b, j0, j1)


cdef void _run_slabs(const AnyJob *job, const real *dtype_marker, int nthreads) noexcept nogil:
    """Threads take whole slices: runs of slabs, or of columns when there are few slabs.

    The work is cut into PARTS_PER_THREAD parts per thread, which the calling
    thread and the executor's workers take one at a time from a shared counter
    (src/fs_pool.h): a thread that the OS delays (a busy machine) holds up the
    call by at most the one part it took, and one that never starts holds up
    nothing.  Every slice is computed the same way whichever part it falls in
    and whichever thread runs it, so neither changes the results.
    """
    cdef fs_index outer = job.shape.outer, inner = job.shape.inner
    cdef Slabs s
    if nthreads == 1:
        _block(job, dtype_marker, 0, outer, 0, inner)
        return
    s.job = job
    s.kind = (KIND_SOFTMAX if AnyJob is SoftmaxJob else KIND_BACKWARD if AnyJob is BackwardJob
              else KIND_CROSS_ENTROPY if AnyJob is CrossEntropyJob
              else KIND_TOP_K if AnyJob is TopKJob else KIND_SAMPLE)
    s.dtype = (TYPE_F32 if real is float else TYPE_F64 if real is double
               else TYPE_F16 if real is uint16_t else TYPE_BF16)
    s.outer = outer
    s.inner = inner
    s.columns = inner // COLUMN_ALIGN
    s.by_columns = not (outer >= nthreads or inner == 1)
    if s.by_columns:
        s.parts = max(1, min(s.columns, <fs_index> nthreads * PARTS_PER_THREAD))
    else:
        s.parts = min(outer, <fs_index> nthreads * PARTS_PER_THREAD)
    fs_parallel_run(nthreads, s.parts, _slab_part, &s)


cdef int _long_rows(const AnyJob *job, const real *dtype_marker, int nthreads) noexcept nogil:
    """Split a few long rows across threads in C (src/fs_long_rows_tmpl.h); -1 if it could not."""
    cdef fs_index rows = job.shape.outer, n = job.shape.n
    if AnyJob is SoftmaxJob:
        if job.narrow:
            if real is uint16_t:
                return kernels.f16_f16.softmax_long_rows(job.x, job.mask.data, job.mask.period, 0,
                                                         job.out, rows, n, <float> job.scale,
                                                         job.op, job.stream, nthreads)
            elif real is int16_t:
                return kernels.bf16_bf16.softmax_long_rows(job.x, job.mask.data,
                                                           job.mask.period, 0, job.out, rows, n,
                                                           <float> job.scale, job.op, job.stream,
                                                           nthreads)
            return -1
        if real is float:
            return kernels.f32.softmax_long_rows(<const float *> job.x, job.mask.data,
                                                 job.mask.period, 0, <float *> job.out, rows, n,
                                                 job.scale, job.op, job.stream, nthreads)
        elif real is double:
            return kernels.f64.softmax_long_rows(<const double *> job.x, job.mask.data,
                                                 job.mask.period, 0, <double *> job.out, rows, n,
                                                 job.scale, job.op, job.stream, nthreads)
        elif real is uint16_t:
            return kernels.f16.softmax_long_rows(job.x, job.mask.data, job.mask.period, 0,
                                                 <float *> job.out, rows, n, job.scale, job.op,
                                                 job.stream, nthreads)
        else:
            return kernels.bf16.softmax_long_rows(job.x, job.mask.data, job.mask.period, 0,
                                                  <float *> job.out, rows, n, job.scale, job.op,
                                                  job.stream, nthreads)
    elif AnyJob is BackwardJob:
        if job.narrow:
            if real is uint16_t:
                return kernels.f16_f16.backward_long_rows(job.grad_output, job.output, job.out,
                                                          rows, n, job.log_output, nthreads)
            elif real is int16_t:
                return kernels.bf16_bf16.backward_long_rows(job.grad_output, job.output, job.out,
                                                            rows, n, job.log_output, nthreads)
            return -1
        if real is float:
            return kernels.f32.backward_long_rows(<const float *> job.grad_output,
                                                  <const float *> job.output, <float *> job.out,
                                                  rows, n, job.log_output, nthreads)
        elif real is double:
            return kernels.f64.backward_long_rows(<const double *> job.grad_output,
                                                  <const double *> job.output,
                                                  <double *> job.out, rows, n, job.log_output,
                                                  nthreads)
        elif real is uint16_t:
            return kernels.f16.backward_long_rows(job.grad_output, job.output, <float *> job.out,
                                                  rows, n, job.log_output, nthreads)
        else:
            return kernels.bf16.backward_long_rows(job.grad_output, job.output,
                                                   <float *> job.out, rows, n, job.log_output,
                                                   nthreads)
    elif AnyJob is CrossEntropyJob:
        if job.narrow:
            return -1  # a 16-bit gradient's rows are computed whole (by the narrowing kernels)
        if real is float:
            return kernels.f32.cross_entropy_long_rows(
                <const float *> job.logits, job.labels, <const float *> job.target,
                <const float *> job.weight, job.weight_sum, job.eps, job.ignore_index, job.loss,
                <float *> job.grad, job.grad_scale, rows, n, job.stream, nthreads)
        elif real is double:
            return kernels.f64.cross_entropy_long_rows(
                <const double *> job.logits, job.labels, <const double *> job.target,
                <const double *> job.weight, job.weight_sum, job.eps, job.ignore_index, job.loss,
                <double *> job.grad, job.grad_scale, rows, n, job.stream, nthreads)
        elif real is uint16_t:
            return kernels.f16.cross_entropy_long_rows(
                job.logits, job.labels, <const float *> job.target, <const float *> job.weight,
                job.weight_sum, job.eps, job.ignore_index, job.loss, <float *> job.grad,
                job.grad_scale, rows, n, job.stream, nthreads)
        else:
            return kernels.bf16.cross_entropy_long_rows(
                job.logits, job.labels, <const float *> job.target, <const float *> job.weight,
                job.weight_sum, job.eps, job.ignore_index, job.loss, <float *> job.grad,
                job.grad_scale, rows, n, job.stream, nthreads)
    else:
        return -1  # top_k, sample: a row is never split (each row is one thread's)


cdef inline bint _combining(const AnyJob *job) noexcept nogil:
    """Whether a job is one of fastsoftmax.dask's combining ops (whole rows per thread only)."""
    if AnyJob is SoftmaxJob:
        return job.log_sums != NULL or job.shift != NULL
    return False


cdef void _run(AnyJob *job, const real *dtype_marker, int nthreads) noexcept nogil:
    # In the kernels' floating-point environment: the parts' threads take it too (fs_pool.c),
    # and the long-row driver's steps between its parts run here.
    cdef fs_fp_env env = fs_fp_env_enter()
    cdef bint done = False
    # Fewer rows than threads, each of several chunks: split the rows themselves, in two to
    # four passes, unless the executor would run those passes on this thread alone (another
    # call owns the pool, or it is backing off on a busy machine): then each row takes the
    # one-thread path, whose bits are the same and which alone takes about 0.8 of the passes'
    # time (1x128256 float32 softmax, Zen 5).
    if not (AnyJob is TopKJob or AnyJob is SampleJob or nthreads <= 1 or job.shape.inner != 1
            or job.shape.outer >= nthreads or job.shape.n < 2 * FS_CHUNK or _combining(job)):
        if fs_pool_would_share(nthreads):
            done = _long_rows(job, dtype_marker, nthreads) == 0
        else:
            nthreads = 1
    if not done:
        _run_slabs(job, dtype_marker, nthreads)
    fs_fp_env_leave(env)


cdef int _run_job(AnyJob *job, int typenum, int nthreads) except -1:
    """Release the GIL and run a job in the type of its input: ``typenum`` is the input
    array's, NPY_FLOAT32, NPY_FLOAT64, NPY_HALF, or NPY_UINT16 for bfloat16 bit patterns
    (the Python layer hands bfloat16 over as uint16 views, and converts integer arrays
    to float64 before they get here).  TypeError for any other: never a guess."""
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            _run(job, <const float *> NULL, nthreads)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            _run(job, <const double *> NULL, nthreads)
    elif typenum == cnp.NPY_FLOAT16:
        with nogil:
            _run(job, <const uint16_t *> NULL, nthreads)
    elif typenum == cnp.NPY_UINT16:
        with nogil:
            _run(job, <const int16_t *> NULL, nthreads)
    else:
        raise TypeError(f"fastsoftmax._core: no kernels for NumPy type number {typenum}")
    return 0


cdef bint _narrows(cnp.ndarray x, cnp.ndarray out) except -1:
    """Whether a 16-bit ``x`` gets a result of its own type (else float32, or float64 for a
    float64 ``x``).

    The kernels with 16-bit outputs exist for the 16-bit inputs only, and write the
    input's own type: any other pairing is the Python layer's mistake, refused here
    rather than written past the end of ``out``.
    """
    cdef int x_type = cnp.PyArray_TYPE(x), out_type = cnp.PyArray_TYPE(out)
    cdef Py_ssize_t out_size = cnp.PyArray_ITEMSIZE(out)
    if out_size == 2 and x_type == out_type and (x_type == cnp.NPY_FLOAT16
                                                 or x_type == cnp.NPY_UINT16):
        return True
    if out_size != (8 if x_type == cnp.NPY_FLOAT64 else 4):
        raise TypeError(f"fastsoftmax._core: no kernels from type {x_type} to type {out_type}")
    return False


cdef struct Narrowing:
    # One narrow() call, for its parts (_narrow_part).
    const float *src
    uint16_t *dst
    Py_ssize_t size, parts
    bint f16               # float16 (else bfloat16)


cdef void _narrow_part(void *arg, int64_t part) noexcept nogil:
    cdef const Narrowing *w = <const Narrowing *> arg
    cdef Py_ssize_t a = _split(w.size, w.parts, part), b = _split(w.size, w.parts, part + 1)
    if w.f16:
        kernels.f16_f16.narrow(w.src + a, w.dst + a, b - a)
    else:
        kernels.bf16_bf16.narrow(w.src + a, w.dst + a, b - a)


def narrow(cnp.ndarray x, cnp.ndarray out, int nthreads):
    """``out = x`` rounded to nearest even: a C-contiguous float32 ``x`` into a C-contiguous
    float16 (NPY_FLOAT16) or bfloat16 (NPY_UINT16 bit patterns) ``out`` of its size, with
    the kernels' own rounding (cross_entropy's 16-bit gradient, and the tests)."""
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    cdef int out_type = cnp.PyArray_TYPE(out)
    cdef Narrowing w
    if (cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32 or cnp.PyArray_SIZE(out) != size
            or (out_type != cnp.NPY_FLOAT16 and out_type != cnp.NPY_UINT16)):
        raise TypeError("fastsoftmax._core.narrow: float32 into float16 or bfloat16 bits")
    w.src = <const float *> cnp.PyArray_DATA(x)
    w.dst = <uint16_t *> cnp.PyArray_DATA(out)
    w.size = size
    w.parts = max(1, min(<Py_ssize_t> nthreads * PARTS_PER_THREAD, size // 65536))
    w.f16 = out_type == cnp.NPY_FLOAT16
    with nogil:
        fs_parallel_run(nthreads, w.parts, _narrow_part, &w)
    return out


cdef Shape _shape(Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner):
    cdef Shape shape
    shape.outer = outer
    shape.n = n
    shape.inner = inner
    return shape


cdef void *_slice_values(object values, cnp.ndarray like, Py_ssize_t size) except? NULL:
    """The data of a per-slice array of the job: C-contiguous, ``size`` values of ``like``'s
    type; anything else is the Python layer's mistake, refused before the kernel reads past
    its end."""
    if values is None:
        return NULL
    cdef cnp.ndarray array = <cnp.ndarray?> values
    if (cnp.PyArray_TYPE(array) != cnp.PyArray_TYPE(like) or cnp.PyArray_SIZE(array) != size
            or not cnp.PyArray_IS_C_CONTIGUOUS(array)):
        raise TypeError("fastsoftmax._core: a per-slice array of the wrong type, size or layout")
    return cnp.PyArray_DATA(array)


def softmax_family(cnp.ndarray x, cnp.ndarray out, object where, Py_ssize_t outer, Py_ssize_t n,
                   Py_ssize_t inner, double scale, int op, int nthreads, object log_sums=None,
                   object shift=None, object adjust=None):
    """Run one operation (OP_SOFTMAX, OP_LOG_SOFTMAX or OP_LOGSUMEXP) over ``x`` into ``out``.

    ``x`` and ``out`` are C-contiguous, of one float dtype, ``x`` viewed as
    ``(outer, n, inner)``; ``out`` is ``(outer, n, inner)``, or ``(outer, inner)``
    for logsumexp.  ``out`` may be ``x`` itself.  ``scale`` is 1/temperature.
    ``where`` is None or a C-contiguous bool array whose size divides x's and
    is a multiple of ``n * inner``: x's element ``i`` is kept where
    ``where.flat[i % where.size]``.

    fastsoftmax.dask's combining forms (``(outer, inner)`` C-contiguous arrays, and
    float32 or float64 ``out``, never 16-bit): logsumexp with a float64 ``log_sums``
    writes each slice's max into ``out`` and its log(sum(exp((x - max) * scale))) into
    ``log_sums``; softmax and log_softmax with ``shift`` and ``adjust`` (of ``out``'s
    type) compute each slice from them (``softmax_shifted`` in src/fs_kernels.h).
    """
    cdef SoftmaxJob job
    memset(&job, 0, sizeof(job))  # every flag off: a field left unset would be stack garbage
    cdef Py_ssize_t slices = outer * inner
    job.log_sums = NULL
    job.shift = job.adjust = NULL
    if log_sums is not None or shift is not None:
        if cnp.PyArray_ITEMSIZE(out) == 2 or (op == FS_OP_LOGSUMEXP) != (log_sums is not None):
            raise TypeError("fastsoftmax._core: no combining kernels for this call")
        if log_sums is not None:
            job.log_sums = <double *> _slice_values(log_sums, cnp.PyArray_EMPTY(0, NULL,
                                                                               cnp.NPY_FLOAT64,
                                                                               0), slices)
        else:
            job.shift = _slice_values(shift, out, slices)
            job.adjust = _slice_values(adjust, out, slices)
            if job.adjust == NULL:
                raise TypeError("fastsoftmax._core: shift without adjust")
    job.shape = _shape(outer, n, inner)
    job.op = <fs_op> op
    job.x = cnp.PyArray_DATA(x)
    job.out = cnp.PyArray_DATA(out)
    job.mask.data = NULL
    job.mask.period = 1
    if where is not None:
        job.mask.data = <const uint8_t *> cnp.PyArray_DATA(<cnp.ndarray> where)
        job.mask.period = cnp.PyArray_SIZE(<cnp.ndarray> where)
    job.scale = scale
    job.narrow = _narrows(x, out)
    _set_output_hints(&job, x, out)
    _run_job(&job, cnp.PyArray_TYPE(x), nthreads)


cdef void _set_output_hints(SoftmaxJob *job, cnp.ndarray x, cnp.ndarray out) noexcept:
    """How a softmax-family job's stores go, by the sizes of ``x`` and ``out`` (the job's
    op, x, out and shift set): the same for every path into the kernels."""
    # Stream the result past the caches when it and x will not both fit in the
    # last-level cache, so nothing of it is there to be read back soon; never in
    # place, where the result's lines are x's, already in the cache.
    job.stream = 0
    if (job.op != FS_OP_LOGSUMEXP and job.shift == NULL and job.out != job.x
            and cnp.PyArray_NBYTES(x) >= _stream_min_bytes - cnp.PyArray_NBYTES(out)):
        job.stream = FS_STREAM_OUTPUT
    # Whether both stay in the caches, where long rows are pipelined with ordinary stores too.
    job.in_cache = 0
    if (cnp.PyArray_NBYTES(x) <= _in_cache_max_bytes
            - (0 if job.out == job.x else cnp.PyArray_NBYTES(out))):
        job.in_cache = FS_IN_CACHE


def backward(cnp.ndarray grad_output, cnp.ndarray output, cnp.ndarray out, Py_ssize_t outer,
             Py_ssize_t n, Py_ssize_t inner, bint log_output, int nthreads):
    """softmax_backward (or log_softmax_backward when ``log_output``) into ``out``.

    All three arrays are C-contiguous of one dtype and shape ``(outer, n, inner)``;
    ``out`` may be either input.
    """
    cdef BackwardJob job
    memset(&job, 0, sizeof(job))  # every field set below or off: no stack garbage
    job.shape = _shape(outer, n, inner)
    job.grad_output = cnp.PyArray_DATA(grad_output)
    job.output = cnp.PyArray_DATA(output)
    job.out = cnp.PyArray_DATA(out)
    job.log_output = log_output
    job.narrow = _narrows(output, out)
    _run_job(&job, cnp.PyArray_TYPE(output), nthreads)


def cross_entropy(cnp.ndarray logits, object labels, object target, object weight,
                  double weight_sum, double label_smoothing, long long ignore_index,
                  cnp.ndarray loss, object grad, double grad_scale, Py_ssize_t outer,
                  Py_ssize_t n, Py_ssize_t inner, int nthreads):
    """Per-sample cross-entropy into ``loss`` (float64, ``(outer, inner)``) and the gradient.

    ``labels`` (int64, ``(outer, inner)``, every one in [0, n) or ignore_index)
    or ``target`` (probabilities like ``logits``) is given, the other None;
    ``weight`` is None or ``(n,)`` in the logits' compute type; ``grad`` is None
    or like ``logits`` (and may be ``logits``), in the compute type or the
    logits' own 16-bit type: each value then the float32 gradient rounded once (the
    narrowing kernels, which never split a row across threads).  All C-contiguous.
    """
    cdef CrossEntropyJob job
    memset(&job, 0, sizeof(job))  # every flag off: a field left unset would be stack garbage
    job.narrow = grad is not None and _narrows(logits, <cnp.ndarray> grad)
    job.shape = _shape(outer, n, inner)
    job.logits = cnp.PyArray_DATA(logits)
    job.labels = NULL
    if labels is not None:
        job.labels = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> labels)
    job.target = NULL
    if target is not None:
        job.target = cnp.PyArray_DATA(<cnp.ndarray> target)
    job.weight = NULL
    if weight is not None:
        job.weight = cnp.PyArray_DATA(<cnp.ndarray> weight)
    job.weight_sum = weight_sum
    job.eps = label_smoothing
    job.grad_scale = grad_scale
    job.ignore_index = ignore_index
    job.loss = <double *> cnp.PyArray_DATA(loss)
    job.grad = cnp.PyArray_DATA(<cnp.ndarray> grad) if grad is not None else NULL
    job.stream = 0  # the gradient streams past the caches as softmax's output does
    if (job.grad != NULL and job.grad != job.logits and not job.narrow
            and cnp.PyArray_NBYTES(logits)
            >= _stream_min_bytes - cnp.PyArray_NBYTES(<cnp.ndarray> grad)):
        job.stream = FS_STREAM_OUTPUT
    _run_job(&job, cnp.PyArray_TYPE(logits), nthreads)


def top_k(cnp.ndarray x, cnp.ndarray values, cnp.ndarray indices, Py_ssize_t rows,
          Py_ssize_t n, Py_ssize_t k, bint largest, int nthreads):
    """The k best of each row of ``x`` (C-contiguous ``(rows, n)``), best first, into
    ``values`` (``(rows, k)``, x's dtype) and ``indices`` (``(rows, k)``, int64), both
    C-contiguous; ``0 <= k <= n``.  Whole rows go to threads (src/fs_top_k_tmpl.h).
    """
    cdef TopKJob job
    memset(&job, 0, sizeof(job))  # every field set below or off: no stack garbage
    job.shape = _shape(rows, n, 1)
    job.op = FS_OP_TOP_K
    job.x = cnp.PyArray_DATA(x)
    job.values = cnp.PyArray_DATA(values)
    job.indices = <int64_t *> cnp.PyArray_DATA(indices)
    job.k = k
    job.largest = largest
    _run_job(&job, cnp.PyArray_TYPE(x), nthreads)


def sample(cnp.ndarray logits, cnp.ndarray params, cnp.ndarray results,
           cnp.ndarray top_tokens, cnp.ndarray top_logprobs, Py_ssize_t rows, Py_ssize_t n,
           int nthreads):
    """One token per row of ``logits`` (C-contiguous ``(rows, n)``, n >= 1).

    ``params`` and ``results`` are C-contiguous structured arrays of ``rows``
    fs_sample_params and fs_sample_result (fs_kernels.h; the Python layer's
    PARAMS_DTYPE and RESULT_DTYPE); ``top_tokens`` (int64) and ``top_logprobs``
    (float32) are C-contiguous ``(rows, n_top)``, n_top possibly 0.  Whole
    rows go to threads (src/fs_sample_tmpl.h).  Returns the first row whose
    status is not FS_SAMPLE_OK, or -1.
    """
    cdef SampleJob job
    memset(&job, 0, sizeof(job))  # every field set below or off: no stack garbage
    job.shape = _shape(rows, n, 1)
    job.op = FS_OP_SAMPLE
    job.x = cnp.PyArray_DATA(logits)
    job.params = <const fs_sample_params *> cnp.PyArray_DATA(params)
    job.results = <fs_sample_result *> cnp.PyArray_DATA(results)
    job.n_top = cnp.PyArray_DIM(top_tokens, 1)
    job.top_tokens = <int64_t *> cnp.PyArray_DATA(top_tokens) if job.n_top else NULL
    job.top_logprobs = <float *> cnp.PyArray_DATA(top_logprobs) if job.n_top else NULL
    _run_job(&job, cnp.PyArray_TYPE(logits), nthreads)
    cdef Py_ssize_t row
    for row in range(rows):
        if job.results[row].status != 0:
            return row
    return -1


def greedy(cnp.ndarray logits, Py_ssize_t rows, Py_ssize_t n, int nthreads):
    """sample's greedy rows (temperature 0) over ``logits`` (C-contiguous ``(rows, n)``,
    rows, n >= 1), with its own parameters and results: (tokens, first bad row or -1,
    that row's fs_sample_status).  The shortcut of sample() when every other argument is
    at its default: no NumPy arrays of parameters or results to make.
    """
    cdef SampleJob job
    cdef cnp.ndarray tokens = cnp.PyArray_EMPTY(1, [rows], cnp.NPY_INT64, 0)
    cdef int64_t *out = <int64_t *> cnp.PyArray_DATA(tokens)
    cdef fs_sample_params *params = <fs_sample_params *> calloc(rows, sizeof(fs_sample_params))
    cdef fs_sample_result *results = <fs_sample_result *> malloc(rows * sizeof(fs_sample_result))
    cdef Py_ssize_t row, bad = -1
    cdef int64_t status = 0
    if params == NULL or results == NULL:
        free(params)
        free(results)
        raise MemoryError("sample: could not allocate the kernel's parameters")
    for row in range(rows):
        params[row].inv_temperature = 0.0  # greedy
        params[row].min_keep = 1
    job.shape = _shape(rows, n, 1)
    job.op = FS_OP_SAMPLE
    job.x = cnp.PyArray_DATA(logits)
    job.params = params
    job.results = results
    job.n_top = 0
    job.top_tokens = NULL
    job.top_logprobs = NULL
    _run_job(&job, cnp.PyArray_TYPE(logits), nthreads)
    for row in range(rows):
        out[row] = results[row].token
        if bad < 0 and results[row].status != 0:
            bad = row
            status = results[row].status
    free(params)
    free(results)
    return tokens, bad, status


def first_outside(cnp.ndarray values, double low, bint low_ok, double high, bint high_ok):
    """The first index of a 1-D float64 array (any strides) outside a range, NaN counting as
    outside, or -1: ``low``/``high`` are allowed when ``low_ok``/``high_ok``.  sample's check of
    its per-row parameters, one C loop instead of NumPy temporaries.
    """
    cdef const char *p = <const char *> cnp.PyArray_DATA(values)
    cdef Py_ssize_t i, n = cnp.PyArray_DIM(values, 0), stride = cnp.PyArray_STRIDE(values, 0)
    cdef double v
    for i in range(n):
        v = (<const double *> (p + i * stride))[0]
        if not ((v >= low if low_ok else v > low) and (v <= high if high_ok else v < high)):
            return i
    return -1


# Loops over a few labels or losses keep the GIL: releasing and taking it back costs more.
cdef Py_ssize_t _NOGIL_FROM = 4096


cdef double _pairwise_sum(const double *a, Py_ssize_t n) noexcept nogil:
    """NumPy's pairwise sum (``np.add.reduce`` of contiguous float64), in its order: runs of up
    to 128 in eight interleaved partial sums, longer runs halved at a multiple of 8, under 8
    terms one by one from 0.0.  The same bits as NumPy's sum, without its 1 us of ufunc set-up.
    """
    cdef double r[8]
    cdef double res
    cdef Py_ssize_t i, j, half
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(a, half) + _pairwise_sum(a + half, n - half)


def pairwise_sum(cnp.ndarray values):
    """The sum of a float64 array's elements in NumPy's pairwise order (as ``.sum()``), as a
    float: cross_entropy's reductions and their denominators, on the small-call path and the
    full path alike, so that both give the same bits.
    """
    if cnp.PyArray_TYPE(values) != cnp.NPY_FLOAT64:
        raise TypeError(f"pairwise_sum takes float64 values, not {values.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(values):
        values = _np.ascontiguousarray(values)
    cdef const double *a = <const double *> cnp.PyArray_DATA(values)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(values)
    cdef double total
    cdef fs_fp_env env
    if n < _NOGIL_FROM:
        env = fs_fp_env_enter()
        total = _pairwise_sum(a, n)
        fs_fp_env_leave(env)
        return total
    with nogil:
        env = fs_fp_env_enter()
        total = _pairwise_sum(a, n)
        fs_fp_env_leave(env)
    return total


cdef Py_ssize_t _count_kept_labels(const int64_t *y, Py_ssize_t size, Py_ssize_t n_classes,
                                   long long ignore_index, Py_ssize_t *kept) noexcept nogil:
    """The index of the first label in ``y[:size]`` that is neither a class nor
    ``ignore_index`` (-1 if none), and in ``*kept`` the number of classes before it."""
    cdef Py_ssize_t i, count = 0
    cdef int64_t label
    for i in range(size):
        memcpy(&label, y + i, sizeof(int64_t))
        if label == ignore_index:
            continue
        if label < 0 or label >= n_classes:
            kept[0] = count
            return i
        count += 1
    kept[0] = count
    return -1


cdef enum:
    # Labels per part of a threaded count: 512 KB, so 1000000 labels make 16 parts to share.
    _LABELS_PER_PART = 65536


cdef struct LabelCountJob:
    const int64_t *labels
    Py_ssize_t size, n_classes
    long long ignore_index
    Py_ssize_t *first_bad  # per part: the part's first bad label's index, or -1
    Py_ssize_t *kept       # per part: its classes (before its first bad label)


cdef void _count_part(void *ctx, int64_t part) noexcept nogil:
    cdef LabelCountJob *job = <LabelCountJob *> ctx
    cdef Py_ssize_t start = part * _LABELS_PER_PART
    cdef Py_ssize_t stop = min(job.size, start + _LABELS_PER_PART)
    cdef Py_ssize_t bad = _count_kept_labels(job.labels + start, stop - start, job.n_classes,
                                             job.ignore_index, job.kept + part)
    job.first_bad[part] = start + bad if bad >= 0 else -1


cdef int _count_kept_labels_threaded(const int64_t *y, Py_ssize_t size, Py_ssize_t n_classes,
                                     long long ignore_index, int nthreads, Py_ssize_t *first_bad,
                                     double *denominator) noexcept nogil:
    """:func:`_count_kept_labels` of parts of the labels on ``nthreads`` threads: the same
    first bad label (the first part's that has one) and the same exact count.  Returns -1
    if its scratch could not be allocated (nothing computed), else 0."""
    cdef Py_ssize_t parts = (size + _LABELS_PER_PART - 1) // _LABELS_PER_PART, p, total = 0
    cdef Py_ssize_t *scratch = <Py_ssize_t *> malloc(2 * parts * sizeof(Py_ssize_t))
    if scratch == NULL:
        return -1
    cdef LabelCountJob job
    job.labels = y
    job.size = size
    job.n_classes = n_classes
    job.ignore_index = ignore_index
    job.first_bad = scratch
    job.kept = scratch + parts
    fs_parallel_run(nthreads, parts, _count_part, &job)
    first_bad[0] = -1
    for p in range(parts):
        if job.first_bad[p] >= 0:
            first_bad[0] = job.first_bad[p]
            break
        total += job.kept[p]
    denominator[0] = <double> total
    free(scratch)
    return 0


cdef Py_ssize_t _label_stats(const int64_t *y, Py_ssize_t size, Py_ssize_t n_classes,
                             long long ignore_index, const float *w32, const double *w64,
                             double *denominator) noexcept nogil:
    """:func:`label_stats` over C arrays (``w32``/``w64`` the weights or both NULL): the first
    bad label's index or -1, and the denominator in ``*denominator``."""
    cdef Py_ssize_t i, first_bad = -1, kept
    cdef double total = 0.0, carry = 0.0, term, t
    cdef float term32
    cdef int64_t label
    if w32 == NULL and w64 == NULL:
        # Unweighted, the denominator is a count: exact as an integer, and the
        # same number the compensated sum of ones below gives, without its chain
        # of four dependent additions per label (2.2 ms of 1000000 labels).
        first_bad = _count_kept_labels(y, size, n_classes, ignore_index, &kept)
        denominator[0] = <double> kept
        return first_bad
    cdef fs_fp_env env = fs_fp_env_enter()  # (Kahan's steps need round to nearest)
    for i in range(size):
        memcpy(&label, y + i, sizeof(int64_t))
        if label == ignore_index:
            continue
        if label < 0 or label >= n_classes:
            first_bad = i
            break
        if w32 != NULL:
            memcpy(&term32, w32 + label, sizeof(float))
            term = term32
        elif w64 != NULL:
            memcpy(&term, w64 + label, sizeof(double))
        else:
            term = 1.0
        term = term - carry  # Kahan: what the last addition lost, added back
        t = total + term
        # Once the total is inf or NaN (t - t != 0), (t - total) - term is
        # inf - inf = NaN and would turn an inf denominator into NaN: no carry then.
        carry = (t - total) - term if t - t == 0 else 0.0
        total = t
    fs_fp_env_leave(env)
    denominator[0] = total
    return first_bad


def label_stats(cnp.ndarray labels, Py_ssize_t n_classes, long long ignore_index, object weight,
                int nthreads=1):
    """``(first_bad, denominator)`` of int64 class labels, in one pass (without the GIL from
    ``_NOGIL_FROM`` labels).

    ``first_bad`` is the flat index of the first label that is neither in
    ``[0, n_classes)`` nor ``ignore_index`` (-1 when all are valid), for the
    API layer's error message.  ``denominator`` is the mean's: the number of
    labels kept (not ``ignore_index``), or with ``weight`` (None or ``(n_classes,)``
    float32/float64) the Kahan-compensated sum of their classes' weights (an
    inf weight on a kept label gives an inf denominator, as torch's, not NaN).
    Unweighted labels are counted on up to ``nthreads`` threads (the weights' sum
    is serial: its bits depend on its order).
    Replaces six NumPy passes (masks, count, fancy index, sum), which cost
    ~15 us even on a handful of labels.  Labels and weights are read through
    memcpy: either array may be C-contiguous yet unaligned.
    """
    cdef const int64_t *y = <const int64_t *> cnp.PyArray_DATA(labels)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(labels), first_bad
    cdef const float *w32 = NULL
    cdef const double *w64 = NULL
    cdef double total
    if weight is not None:
        if cnp.PyArray_TYPE(<cnp.ndarray> weight) == cnp.NPY_FLOAT32:
            w32 = <const float *> cnp.PyArray_DATA(<cnp.ndarray> weight)
        else:
            w64 = <const double *> cnp.PyArray_DATA(<cnp.ndarray> weight)
    cdef int counted = -1
    if size < _NOGIL_FROM:
        first_bad = _label_stats(y, size, n_classes, ignore_index, w32, w64, &total)
    else:
        with nogil:
            if w32 == NULL and w64 == NULL and nthreads > 1 and size > _LABELS_PER_PART:
                counted = _count_kept_labels_threaded(y, size, n_classes, ignore_index, nthreads,
                                                      &first_bad, &total)
            if counted != 0:
                first_bad = _label_stats(y, size, n_classes, ignore_index, w32, w64, &total)
    return first_bad, total


def overlap(cnp.ndarray a, cnp.ndarray b):
    """How two C-contiguous arrays share memory: 0 not at all, 1 exactly (same
    start and size: in place), 2 partly.  A pointer comparison, for the API
    layer's out= checks, far cheaper than numpy.may_share_memory.
    """
    return _overlap(a, b)


cdef int _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """:func:`overlap`, for Cython callers."""
    cdef char *a0 = <char *> cnp.PyArray_DATA(a)
    cdef char *b0 = <char *> cnp.PyArray_DATA(b)
    cdef Py_ssize_t a_bytes = cnp.PyArray_NBYTES(a), b_bytes = cnp.PyArray_NBYTES(b)
    if a_bytes == 0 or b_bytes == 0 or a0 + a_bytes <= b0 or b0 + b_bytes <= a0:
        return 0
    if a0 == b0 and a_bytes == b_bytes:
        return 1
    return 2


def exp(cnp.ndarray x, cnp.ndarray out):
    """``out = exp(x)`` with the kernels' vector exp (for the accuracy tests)."""
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    cdef fs_fp_env env
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            env = fs_fp_env_enter()
            kernels.f32.exp_span(<const float *> cnp.PyArray_DATA(x), <float *> cnp.PyArray_DATA(out), size)
            fs_fp_env_leave(env)
    else:
        with nogil:
            env = fs_fp_env_enter()
            kernels.f64.exp_span(<const double *> cnp.PyArray_DATA(x), <double *> cnp.PyArray_DATA(out), size)
            fs_fp_env_leave(env)


# ---------------------------------------------------------------- the output pool
# Large fresh outputs (fastsoftmax/_pool.py) come from blocks kept here after their
# array died, instead of new pages that the OS must zero on every call.  Every
# function below runs with the GIL held, which is what makes the pool thread-safe.

# New results of this many bytes or more come from the pool (smaller ones from np.empty,
# whose memory malloc reuses).
cdef Py_ssize_t _POOL_MIN_BYTES = 1 << 20
POOL_MIN_BYTES = _POOL_MIN_BYTES
cdef list _idle_blocks = []          # (capacity, raw address) of blocks no array uses
cdef Py_ssize_t _idle_bytes = 0
cdef Py_ssize_t _pool_limit = 0      # idle bytes kept at most (0: keep none)...
cdef bint _pool_keeps_two = False    # ... or two blocks of the size being returned, if larger
cdef enum:
    POOL_ALIGN = 64                  # a cache line: the kernels' vector loads stay aligned
    # Every block has a page of slack, so that its data can start on any line of a page
    # (take_block's beside).
    POOL_PAGE = 4096


cdef void _release(void *raw, Py_ssize_t capacity) noexcept:
    """A block whose array died: kept for the next output, the oldest idle blocks freed to
    make room under the bound (the newest is the likeliest to fit the next call: a pool
    full of an earlier, larger shape's blocks must not make every new shape fault); freed
    itself where it alone exceeds the bound."""
    global _idle_bytes
    cdef Py_ssize_t bound = _pool_limit
    if _pool_keeps_two and 2 * capacity > bound:
        bound = 2 * capacity
    if _idle_blocks is None or capacity > bound:  # (None: the module is being torn down)
        free(raw)
        return
    while _idle_blocks and _idle_bytes + capacity > bound:
        oldest_capacity, address = _idle_blocks.pop(0)
        _idle_bytes -= oldest_capacity
        free(<void *> <uintptr_t> address)
    _idle_blocks.append((capacity, <uintptr_t> raw))
    _idle_bytes += capacity


cdef class PooledBlock:
    """The memory of one pooled output, exported (buffer protocol) to the one ndarray made
    on it; back to the pool when that array and every view of it are gone, so a block is
    never in two live arrays."""
    cdef void *raw
    cdef char *data
    cdef Py_ssize_t capacity
    cdef Py_ssize_t length[1]
    cdef Py_ssize_t step[1]

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = self.data
        view.obj = self
        view.len = self.length[0]
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self.length
        view.strides = self.step
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self.raw != NULL:
            _release(self.raw, self.capacity)
            self.raw = NULL


def take_block(Py_ssize_t nbytes, size_t beside=0, bint huge_pages=False):
    """A block of at least ``nbytes`` (a pooled one of at most twice that, else a new one).

    Its data starts on a cache line; given ``beside`` (an input's address, not 0), on
    the line half a 4 KB page from where that input starts in one, or just before
    (fastsoftmax._pool.fresh: a kernel loading the input then never finds its stores
    just ahead in the low 12 address bits, 4 KB aliasing).  With ``huge_pages``, a new
    block of 4 MB or more is advised onto transparent huge pages (src/fs_pages.h)."""
    global _idle_bytes
    cdef PooledBlock block = PooledBlock.__new__(PooledBlock)
    cdef Py_ssize_t i, best = -1, best_capacity = 0, capacity
    for i in range(len(_idle_blocks)):
        capacity = _idle_blocks[i][0]
        if nbytes <= capacity <= 2 * nbytes and (best < 0 or capacity < best_capacity):
            best, best_capacity = i, capacity
    if best >= 0:
        capacity, address = _idle_blocks.pop(best)
        _idle_bytes -= capacity
        block.raw = <void *> <uintptr_t> address
    else:
        capacity = nbytes
        block.raw = malloc(capacity + POOL_PAGE)
        if block.raw == NULL:
            raise MemoryError(f"fastsoftmax: cannot allocate an output of {nbytes} bytes")
        if huge_pages:
            fs_advise_huge_pages(block.raw, capacity + POOL_PAGE)
    block.capacity = capacity
    if beside:
        block.data = <char *> block.raw + (
            ((beside + POOL_PAGE // 2) % POOL_PAGE & ~(<uintptr_t> POOL_ALIGN - 1))
            - <uintptr_t> block.raw) % POOL_PAGE
    else:
        block.data = <char *> ((<uintptr_t> block.raw + POOL_ALIGN - 1)
                               & ~(<uintptr_t> POOL_ALIGN - 1))
    block.length[0] = nbytes
    block.step[0] = 1
    return block


def take_array(Py_ssize_t nbytes, size_t beside=0, bint huge_pages=False):
    """A uint8 array of ``nbytes`` on a block of :func:`take_block`, whose base object is
    the block itself (fastsoftmax._pool.fresh views it as the result's dtype and shape).
    Not ``np.frombuffer``: the memoryview that NumPy keeps as such an array's base has a
    ``release()``, which would hand the block back to the pool, or free it, while the
    array is alive."""
    cdef PooledBlock block = take_block(nbytes, beside, huge_pages)
    cdef cnp.npy_intp length = nbytes
    cdef cnp.ndarray array = cnp.PyArray_SimpleNewFromData(1, &length, cnp.NPY_UINT8, block.data)
    cnp.set_array_base(array, block)
    return array


def set_pool_bound(Py_ssize_t limit, bint keeps_two):
    """Keep at most ``limit`` idle bytes (or two blocks of a returned size, with
    ``keeps_two``); idle blocks beyond the new bound are freed now, oldest first."""
    global _pool_limit, _pool_keeps_two, _idle_bytes
    _pool_limit, _pool_keeps_two = limit, keeps_two
    while _idle_blocks and _idle_bytes > limit:
        capacity, address = _idle_blocks.pop(0)
        _idle_bytes -= capacity
        free(<void *> <uintptr_t> address)


def forget_pool():
    """Free every idle block (a forked child starts with an empty pool)."""
    global _idle_bytes
    while _idle_blocks:
        capacity, address = _idle_blocks.pop()
        free(<void *> <uintptr_t> address)
    _idle_bytes = 0


def pool_state():
    """(idle bytes, idle blocks, the bound in bytes, whether two blocks may exceed it)."""
    return _idle_bytes, len(_idle_blocks), _pool_limit, _pool_keeps_two


# ---------------------------------------------------------------- streaming stores

# softmax and log_softmax calls whose input and output take at least this many
# bytes together write the output with streaming stores (softmax_family), and
# cross_entropy its gradient; fastsoftmax._stream sets it from the last-level
# cache's size.
cdef Py_ssize_t _stream_min_bytes = PY_SSIZE_T_MAX


cdef Py_ssize_t _byte_count(Py_ssize_t nbytes) except -1:
    """nbytes, checked for the settings below (the public setters check their own arguments)."""
    if nbytes < 0:
        raise ValueError(f"fastsoftmax._core: a negative byte count {nbytes}")
    return nbytes


def set_stream_min_bytes(Py_ssize_t nbytes):
    """Stream the outputs of calls whose input and output take at least ``nbytes`` (>= 0)."""
    global _stream_min_bytes
    _stream_min_bytes = _byte_count(nbytes)


def stream_min_bytes():
    """The bound set_stream_min_bytes set (PY_SSIZE_T_MAX: nothing streams)."""
    return _stream_min_bytes


# softmax and log_softmax calls whose input and output (one array in place) take at most this
# many bytes pass the kernels FS_IN_CACHE; fastsoftmax._stream sets it to half the last-level
# cache.  0 until then: no call claims the cache.
cdef Py_ssize_t _in_cache_max_bytes = 0


def set_in_cache_max_bytes(Py_ssize_t nbytes):
    """Tell the kernels that calls of at most ``nbytes`` (>= 0) of input and output stay cached."""
    global _in_cache_max_bytes
    _in_cache_max_bytes = _byte_count(nbytes)


def in_cache_max_bytes():
    """The bound set_in_cache_max_bytes set."""
    return _in_cache_max_bytes


def can_stream():
    """Whether the chosen kernels have streaming stores (x86-64's vector builds)."""
    return bool(kernels.can_stream)


def stream_recomputes():
    """Whether the chosen kernels also stream the outputs whose last pass computes the
    exponentials again: softmax rows and cross_entropy's gradient rows split across threads
    (AVX-512 only: elsewhere the exp costs more than the streaming saves)."""
    return bool(kernels.stream_recomputes)


# ---------------------------------------------------------------- small calls
# A tiny call is mostly overhead: its checks, the output's allocation, Python frames.
# small_call does the common case in one step; everything else takes the full path.

import numpy as _np

cdef object _NATIVE_FLOAT32 = _np.dtype(_np.float32)  # the exact dtypes _checks keeps as they are
cdef object _NATIVE_FLOAT64 = _np.dtype(_np.float64)


def small_call(object x, int op, Py_ssize_t limit, object out=None, object n_threads=None,
               object resolve_threads=None, object redo_near_zero=None):
    """softmax, log_softmax or logsumexp (``op``) of an array over its last axis, with every
    other argument but ``out`` and ``n_threads`` at its default, or None where that is not
    the call.

    The call: ``x`` an ndarray (not a subclass) of native float32 or float64,
    C-contiguous, with a dimension and at least one element; fewer than ``limit``
    elements with ``n_threads`` None (one thread, as the full path would pick), or with
    ``n_threads`` the int 1 or None (then ``resolve_threads(None, size)`` gives the count,
    the full path's function; without it, None) either that, or an ``out`` at any size, or
    a new result under ``POOL_MIN_BYTES`` (a larger one is the full path's to take from
    its pool).  ``out``:
    None, or an ndarray (not a subclass) of x's dtype and the result's shape,
    C-contiguous and writeable,
    sharing no memory with x, or for softmax and log_softmax exactly x's (in
    place); any other ``out`` returns None, and the full path checks it and
    raises its error.  The result is the full path's: ``out`` itself, else a
    new array, logsumexp's 0-d result a NumPy scalar.  Under ``limit`` elements the
    kernel runs with the GIL held: it takes microseconds, less than releasing the GIL
    costs.

    A float32 logsumexp with a result near zero (NEAR_ZERO_PER_LOG_N) is finished by
    ``redo_near_zero(x, result, None, rows, n, 1, threads)``, the full path's
    ``_logsumexp._redo_near_zero``, which computes those rows again; without it the
    call returns None, and the full path runs the kernel over the whole array again.
    """
    if type(x) is not cnp.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray> x
    cdef object dtype = <object> cnp.PyArray_DESCR(a)
    cdef int ndim = cnp.PyArray_NDIM(a)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(a)
    cdef bint small = size < limit
    if n_threads is not None and not (type(n_threads) is int and n_threads == 1):
        return None
    if ((dtype is not _NATIVE_FLOAT32 and dtype is not _NATIVE_FLOAT64) or ndim == 0
            or size == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(a)):
        return None
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef bint reduces = op == FS_OP_LOGSUMEXP
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, ndim - 1)
    cdef Py_ssize_t result_bytes = (size // n if reduces else size) * cnp.PyArray_ITEMSIZE(a)
    if not (small or ((n_threads is not None or resolve_threads is not None)
                      and (out is not None or result_bytes < _POOL_MIN_BYTES))):
        return None
    cdef int result_ndim = ndim - 1 if reduces else ndim, i, shared
    cdef cnp.ndarray result
    cdef double near
    cdef Py_ssize_t row
    if out is None:
        result = cnp.PyArray_EMPTY(result_ndim, cnp.PyArray_DIMS(a), typenum, 0)
    else:
        if type(out) is not cnp.ndarray:
            return None
        result = <cnp.ndarray> out
        if (<object> cnp.PyArray_DESCR(result) is not dtype
                or cnp.PyArray_NDIM(result) != result_ndim
                or not cnp.PyArray_IS_C_CONTIGUOUS(result) or not cnp.PyArray_ISWRITEABLE(result)):
            return None
        for i in range(result_ndim):
            if cnp.PyArray_DIM(result, i) != cnp.PyArray_DIM(a, i):
                return None
        shared = _overlap(result, a)
        if shared == 2 or (shared == 1 and reduces):  # the full path copies x first
            return None
    cdef SoftmaxJob job
    memset(&job, 0, sizeof(job))  # every flag off: a field left unset would be stack garbage
    job.shape = _shape(size // n, n, 1)
    job.op = <fs_op> op
    job.x = cnp.PyArray_DATA(a)
    job.out = cnp.PyArray_DATA(result)
    job.mask.data = NULL
    job.mask.period = 1
    job.scale = 1.0
    job.narrow = False
    job.log_sums = NULL
    job.shift = job.adjust = NULL
    _set_output_hints(&job, a, result)
    cdef int nthreads = 1
    if not small:
        if n_threads is None:  # (a small call is one thread's, without asking)
            nthreads = resolve_threads(None, size)
        _run_job(&job, typenum, nthreads)
    elif typenum == cnp.NPY_FLOAT32:
        _run(&job, <const float *> NULL, 1)
    else:
        _run(&job, <const double *> NULL, 1)
    if reduces and typenum == cnp.NPY_FLOAT32 and n >= 2:
        near = _NEAR_ZERO_PER_LOG_N * log(<double> n)
        for row in range(size // n):
            if fabsf((<const float *> job.out)[row]) < near:
                if redo_near_zero is None:
                    return None  # (the full path computes it again: NEAR_ZERO_PER_LOG_N)
                redo_near_zero(a, result, None, size // n, n, 1, nthreads)
                break
    if reduces and ndim == 1 and out is None:
        return result[()]
    return result


cdef object _NATIVE_INT64 = _np.dtype(_np.int64)


cdef extern from "numpy/arrayobject.h":
    # (not in numpy's .pxd) a NumPy scalar of `descr` holding the value at `data`
    object _PyArray_Scalar "PyArray_Scalar" (void *data, cnp.dtype descr, object base)


cdef object _float_scalar(double value, object dtype):
    """``dtype.type(value)`` for a native float32 or float64 dtype, the same rounding (a C
    cast, as NumPy's), without the array machinery NumPy's constructor goes through."""
    cdef float narrow
    if dtype is _NATIVE_FLOAT32:
        narrow = <float> value
        return _PyArray_Scalar(&narrow, <cnp.dtype> dtype, None)
    return _PyArray_Scalar(&value, <cnp.dtype> dtype, None)


def small_cross_entropy(object logits, object target, long long ignore_index, bint mean,
                        Py_ssize_t limit, bint return_grad=False, object grad_out=None):
    """cross_entropy's loss (``mean``, else the sum) of small (N, C) logits and int64 labels,
    with every option but ``ignore_index``, ``reduction``, ``return_grad`` and ``grad_out``
    at its default (``n_threads`` None or 1: the caller's test), or None where that is not
    the call: the loss, or with ``return_grad`` the pair ``(loss, grad)``.

    ``grad_out`` (with ``return_grad``): None for a new gradient, or an ndarray (not a
    subclass) of the logits' dtype and shape, C-contiguous and writeable, sharing no memory
    with the labels and either none with the logits or exactly theirs (in place); any other
    returns None before anything is written, and the full path checks it and raises its
    error or copies what it must.

    The call: ``logits`` a C-contiguous ndarray (not a subclass) of native float32 or
    float64 with 1 to ``limit - 1`` elements, ``target`` a C-contiguous native int64
    ndarray of shape (N,) whose labels are all classes or ``ignore_index`` (a bad label
    returns None: the full path raises its error).  The result is the full path's, bit
    for bit: the same kernel on one thread, the same float64 sum and division.
    """
    if type(logits) is not cnp.ndarray or type(target) is not cnp.ndarray:
        return None
    cdef cnp.ndarray x = <cnp.ndarray> logits, labels = <cnp.ndarray> target
    cdef object dtype = <object> cnp.PyArray_DESCR(x)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    if ((dtype is not _NATIVE_FLOAT32 and dtype is not _NATIVE_FLOAT64)
            or cnp.PyArray_NDIM(x) != 2 or size == 0 or size >= limit
            or not cnp.PyArray_IS_C_CONTIGUOUS(x)):
        return None
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), n = cnp.PyArray_DIM(x, 1)
    if (<object> cnp.PyArray_DESCR(labels) is not _NATIVE_INT64 or cnp.PyArray_NDIM(labels) != 1
            or cnp.PyArray_DIM(labels, 0) != rows or not cnp.PyArray_IS_C_CONTIGUOUS(labels)):
        return None
    cdef double denominator
    if _label_stats(<const int64_t *> cnp.PyArray_DATA(labels), rows, n, ignore_index, NULL, NULL,
                    &denominator) >= 0:
        return None
    # The gradient: the full path's scale, 1 / denominator (inf for none) or 1 for the sum.
    cdef cnp.ndarray grad = None
    cdef double grad_scale = 1.0
    if grad_out is not None:
        if not return_grad or type(grad_out) is not cnp.ndarray:
            return None
        grad = <cnp.ndarray> grad_out
        if (<object> cnp.PyArray_DESCR(grad) is not dtype or cnp.PyArray_NDIM(grad) != 2
                or cnp.PyArray_DIM(grad, 0) != rows or cnp.PyArray_DIM(grad, 1) != n
                or not cnp.PyArray_IS_C_CONTIGUOUS(grad) or not cnp.PyArray_ISWRITEABLE(grad)
                or _overlap(grad, x) == 2 or _overlap(grad, labels) != 0):
            return None
    if return_grad:
        if grad is None:
            grad = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), 0)
        if mean:
            grad_scale = 1.0 / denominator if denominator != 0 else INFINITY
    # The losses: on the stack for a few rows (an ndarray's allocation would cost more than
    # their kernel), else in a zeroed buffer of our own.
    cdef double few_losses[64]
    cdef double *losses = few_losses
    if rows > 64:
        losses = <double *> calloc(rows, sizeof(double))
        if losses == NULL:
            raise MemoryError()
    else:
        memset(few_losses, 0, sizeof(few_losses))
    cdef CrossEntropyJob job
    memset(&job, 0, sizeof(job))  # every flag off (narrow, stream): no stack garbage
    job.shape = _shape(rows, n, 1)
    job.logits = cnp.PyArray_DATA(x)
    job.labels = <const int64_t *> cnp.PyArray_DATA(labels)
    job.target = NULL
    job.weight = NULL
    job.weight_sum = <double> n
    job.eps = 0.0
    job.grad_scale = grad_scale
    job.ignore_index = ignore_index
    job.loss = losses
    job.grad = NULL if grad is None else cnp.PyArray_DATA(grad)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        _run(&job, <const float *> NULL, 1)
    else:
        _run(&job, <const double *> NULL, 1)
    cdef double total = _pairwise_sum(losses, rows)
    if losses != few_losses:
        free(losses)
    loss = _float_scalar(_mean_or_sum(total, denominator, mean), dtype)
    return (loss, grad) if return_grad else loss


cdef double _mean_or_sum(double total, double denominator, bint mean) noexcept nogil:
    """The full path's reduction of the losses' ``total``: itself, or divided by the mean's
    ``denominator`` as IEEE divides (0/0 and NaN/0 NaN, else a signed inf)."""
    if not mean:
        return total
    if denominator != 0:
        return total / denominator
    if total == 0 or total != total:
        return NAN
    return copysign(INFINITY, total) * copysign(1.0, denominator)
