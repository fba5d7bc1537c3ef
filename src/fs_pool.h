/*
 * fastsoftmax's executor: a persistent thread pool in which the calling
 * thread works too and never waits for a thread that has not started.
 *
 * Why not OpenMP: every OpenMP parallel region ends in a barrier that waits
 * for all of its threads, including one the OS has not scheduled yet.  On a
 * loaded machine (other processes keep the cores busy, or a container's CPU
 * quota is spent) a call then waits milliseconds for a worker that would do
 * microseconds of work: 1x128256 softmax took 20 ms on 2 threads against
 * 123 us on 1 (issue 15, item 6).
 *
 * Here a call is a set of numbered parts.  The caller publishes the job and
 * takes parts from a shared atomic counter itself; workers take parts from the
 * same counter when they wake.  The call is complete when every part is done,
 * and it waits only for parts some thread actually took: a worker that wakes
 * after the caller took the last part finds nothing left and never touches
 * the finished job (the counter carries the job's generation number).
 *
 * A worker that took a part and was then descheduled still delays the call,
 * and threads that the OS runs on one CPU gain nothing.  When a call loses to
 * one thread (judged from the times of its parts, fs_pool_job_lost), the next
 * calls run on the calling thread alone for a while (8 calls, doubling to 256
 * while it repeats).
 *
 * Results do not depend on which thread runs a part: callers make each part's
 * work, and every combination of parts' results, independent of the thread
 * count.
 *
 * Concurrency: one call at a time owns the pool.  A call made while another
 * owns it (another Python thread, or a part that calls back in) runs all its
 * parts on its own calling thread, in order, which is correct and never waits
 * on the other call.
 *
 * Fork: a child made by fork() starts with an empty pool (no workers, no job)
 * and starts its own workers when it first needs them (pthread_atfork).
 *
 * Without POSIX threads (MSVC) the parts run in an OpenMP loop where the build
 * has OpenMP, else one after another on the calling thread.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One part of a job: fn(ctx, part) for part in [0, nparts). */
typedef void (*fs_part_fn)(void *ctx, int64_t part);

/*
 * Run fn(ctx, part) once for every part in [0, nparts), on at most `nthreads`
 * threads: the calling thread and up to nthreads - 1 of the pool's workers.
 * Returns when every part has run (its writes visible to the caller).  Never
 * fails: if workers cannot be started, the calling thread runs the parts.
 */
void fs_parallel_run(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx);

/*
 * Whether a call on `nthreads` threads would share its parts with the pool's
 * workers now: 0 where they would run on the calling thread alone (nthreads
 * <= 1, another call owns the pool, or the pool is backing off on a busy
 * machine, in which case this answer takes one of the back-off's jobs, as a job
 * run alone would).  A call of several jobs (the long-row driver's passes)
 * asks once, and where the answer is 0 takes its one-thread path instead,
 * which on one thread is faster than its passes.  A hint, not a promise: a
 * later fs_parallel_run decides again.
 */
int fs_pool_would_share(int nthreads);

/* Which executor runs the parts: "pthreads", "openmp" or "serial". */
const char *fs_pool_kind(void);

/* The workers this process has started (0 in a fresh fork child). */
int fs_pool_workers(void);

/*
 * For tests and measurements.  fs_pool_set_spin_us: how long an idle worker,
 * or a caller waiting for taken parts, spins before it sleeps (microseconds;
 * negative restores the default).  fs_pool_set_openmp(1): run parts in an
 * OpenMP loop instead (the old executor, to compare with; no effect without
 * OpenMP).  fs_pool_fail_spawn(1): act as if no worker thread can be created
 * (the calls must still be right).  Each returns the previous setting.
 */
int fs_pool_set_spin_us(int us);
int fs_pool_set_openmp(int on);
int fs_pool_fail_spawn(int on);
/*
 * The back-off's test of a finished job (fs_pool.c): whether a job that took
 * wall_ns, wait_ns of them waiting for workers' claims, lost to one thread.
 * claim_ns[0 .. timed) are the times of its first `timed` claims, of the
 * `claims` it had; they are reordered.  Exposed for tests.
 */
int fs_pool_job_lost(int64_t wall_ns, int64_t wait_ns, int64_t claims, int64_t *claim_ns,
                     int64_t timed);
/* For tests: set how many more jobs the pool runs alone (the back-off's count; 0 */
/* ends it), returning the count before; negative leaves it as it is.  0 and no */
/* effect without the pthreads pool. */
int fs_pool_set_backoff_jobs(int jobs);

#ifdef __cplusplus
}
#endif

#endif /* FS_POOL_H */
