/*
 * The executor of fs_pool.h: its header says what it guarantees, this file how.
 *
 * The job slot.  One static job at a time, owned by the caller that set
 * `busy`.  Its description (fn, ctx, the number of claims, the helpers wanted)
 * is written by that caller before it publishes the job by storing `state`:
 *
 *     state = generation << FS_GEN_SHIFT | next claim
 *
 * A claim is a run of `per` consecutive parts (per = 1 unless a job has more
 * than FS_MAX_CLAIMS parts).  Threads take claims by raising the low bits of
 * `state`.  A worker does it with a compare-and-swap that also checks the
 * generation it read the description under, so it never runs a claim with
 * another job's function and context:
 *
 *   - Before rewriting the description, the owner closes the previous
 *     generation: it stores a new generation whose claim counter is already
 *     past any job's claims (FS_CLOSED), and only then writes the fields, with
 *     release stores, and publishes the generation after that.
 *   - A worker reads `state` (acquire), then the fields (acquire), then CASes
 *     `state` from the value it read.  If any field it read is the next job's,
 *     that field's release store comes after the close, so the close happens
 *     before the CAS, which therefore fails (the generation changed).  If the
 *     CAS succeeds, every field was this generation's.
 *
 * The fields are atomics, so a late worker's read of them while the next owner
 * rewrites them is no data race; it is never acted on.
 *
 * Completion.  `done` counts finished claims of the current generation; the
 * caller waits until it equals the number of claims, that is, only for claims
 * some thread took.  The owner resets `done` before publishing; a worker only
 * adds to it after a successful claim, so it always counts the current job.
 *
 * Generation numbers have 40 bits, two per job (closed, then published): for a
 * worker to mistake a new job for the one it read, it would have to stay
 * descheduled between two instructions for 2^39 jobs (six days at a million
 * jobs a second).
 *
 * Sleeping.  An idle worker spins for a short while (the next call, or the
 * next phase of the long-row driver, usually comes within microseconds), then
 * sleeps on its own condition.  A job of k threads wakes workers 0 .. k - 2
 * only, and only those whose `sleeping` flag is set: a pool that an earlier
 * call grew to 63 workers does not wake 63 threads for every 2-thread call.
 * The flag and `state` are both seq_cst, and each side writes its own then
 * reads the other's, so either the caller sees the sleeper or the sleeper sees
 * the new job (no lost wake-up).  A worker that a job does not need goes back
 * to sleep at once, without spinning.  The caller's wait for taken claims
 * works the same way with `caller_waiting` and `done`.
 *
 * Backing off.  A worker that took a claim and was then descheduled (other
 * processes hold the cores) still makes the owner wait, for a time slice of
 * the OS; and where the worker shares a CPU with the owner (the OS put it
 * there), or the owner is the one descheduled, the job gains nothing while
 * each thread's share takes twice as long.  So every thread times each claim
 * it runs, and the owner times the whole job: a job that took longer than
 * one thread would have taken for all its claims (the median claim's time,
 * which a claim slowed by descheduling or a short last chunk does not move,
 * times the number of claims, plus FS_SLACK_NS) lost to one thread, and so
 * did one that spent most of its time waiting for a worker's claims
 * (fs_pool_job_lost).  The next jobs then run on their calling thread alone:
 * FS_BACKOFF_MIN of them, doubling to FS_BACKOFF_MAX while it keeps
 * happening, back to normal after a job that gained.  Results are the same
 * on any number of threads, so this only changes the time.
 *
 * Claims are timed only in a job that follows one of FS_TIMED_AFTER_NS or
 * more: reading the clock after every claim cost 2% of a 1x128256 softmax on
 * two threads (passes of about 5 us), and in a job that short a descheduled
 * thread shows as a wait, which needs no claim times.
 *
 * The median is of each thread's claims' times, not of the owner's alone: a
 * test that timed only the owner took the owner's slowed pace for one
 * thread's and missed the loss when the owner itself had been descheduled or
 * shared its CPU with its worker, and had nothing left to wait for (16384x512
 * log_softmax, both cores busy: a worker ran 15 of 16 claims, and the job took
 * 4.3 ms where one thread took 2.8 to 3.5).  The price: a loaded machine slows
 * every thread, and a job counts as gained only if it beat one thread that
 * ran undisturbed, so large calls there keep their threads less often
 * (benchmarks/oversubscribed.py, 2048x32000: 0.87 to 1.02 of one thread's
 * time over seven runs, down to 0.75 with the owner's pace, which also let a
 * call lose 1.35; docs/performance-log.md, 2026-12-06).
 */
#if defined(__unix__) || defined(__APPLE__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif

#include "fs_pool.h"
#include "fs_fp_env.h"

#include <stddef.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#define FS_POOL_PTHREADS 1
#else
#define FS_POOL_PTHREADS 0
#endif

#define FS_DEFAULT_SPIN_US 50
/* The back-off's loss test (see the top): time a job may take beyond one thread's. */
#define FS_SLACK_NS 20000

static int fs_spin_us = FS_DEFAULT_SPIN_US; /* atomic */
static int fs_use_openmp = 0;               /* atomic */
static int fs_spawn_disabled = 0;           /* under the pool's lock */

/*
 * Claims of `per` parts: [claim * per, min(nparts, claim * per + per)), in the
 * kernels' floating-point environment (fs_fp_env.h) on whichever thread takes
 * them: the pool's workers and OpenMP's inherit their creator's, or have
 * another library's.
 */
static void fs_run_claim(fs_part_fn fn, void *ctx, int64_t claim, int64_t per, int64_t nparts)
{
    const fs_fp_env env = fs_fp_env_enter();
    const int64_t first = claim * per;
    const int64_t last = first + per < nparts ? first + per : nparts;
    for (int64_t part = first; part < last; part++)
        fn(ctx, part);
    fs_fp_env_leave(env);
}

static void fs_run_serial(int64_t nparts, fs_part_fn fn, void *ctx)
{
    fs_run_claim(fn, ctx, 0, nparts, nparts);
}

#ifdef _OPENMP
/* The old executor: an OpenMP dynamic loop (its end barrier waits for every thread). */
static void fs_run_openmp(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx)
{
    /* MSVC's OpenMP 2.0 wants an int loop variable: claims of several parts past INT_MAX. */
    const int64_t per = nparts / 0x40000000 + 1;
    const int claims = (int)((nparts + per - 1) / per);
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
    for (int claim = 0; claim < claims; claim++)
        fs_run_claim(fn, ctx, claim, per, nparts);
}
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FS_EXCHANGE(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELAXED)
#else /* (test settings only: without the pool, nothing reads them concurrently) */
static int fs_exchange(int *p, int v)
{
    const int old = *p;
    *p = v;
    return old;
}
#define FS_EXCHANGE(p, v) fs_exchange((p), (v))
#endif

int fs_pool_set_spin_us(int us)
{
    return FS_EXCHANGE(&fs_spin_us, us < 0 ? FS_DEFAULT_SPIN_US : us);
}

int fs_pool_set_openmp(int on) { return FS_EXCHANGE(&fs_use_openmp, on != 0); }

/* k-th smallest of v[0 .. n) (0-based), reordering v (Hoare's selection). */
static int64_t fs_select(int64_t *v, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t pivot = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                const int64_t t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

int fs_pool_job_lost(int64_t wall_ns, int64_t wait_ns, int64_t claims, int64_t *claim_ns,
                     int64_t timed)
{
    if (2 * wait_ns > wall_ns)
        return 1; /* most of the job waited for workers' claims */
    if (timed <= 0 || claims <= 0)
        return 0;
    const double one_thread = (double)claims * (double)fs_select(claim_ns, timed, timed / 2);
    return (double)wall_ns > one_thread + FS_SLACK_NS;
}

#if FS_POOL_PTHREADS

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#define FS_GEN_SHIFT 24
#define FS_CLAIM_MASK (((uint64_t)1 << FS_GEN_SHIFT) - 1)
/* The claim counter of a closed generation: no claim can be taken in it. */
#define FS_CLOSED FS_CLAIM_MASK
/* At most this many claims per job (the claim counter may pass it by one). */
#define FS_MAX_CLAIMS ((int64_t)1 << 22)
/* The back-off (see the top): jobs run alone after a job that lost to one thread. */
#define FS_BACKOFF_MIN 8
#define FS_BACKOFF_MAX 256
/* Workers a process starts at most (MAX_THREADS in fastsoftmax/_threads.py is far below). */
#define FS_MAX_WORKERS 1024
/* Claims whose times the loss test sees: the first ones of a job, enough for a median. */
#define FS_TIMED_CLAIMS 256
/* Claims are timed in a job that follows one of this many ns or more (see the top). */
#define FS_TIMED_AFTER_NS 100000

#define LOAD(p, order) __atomic_load_n((p), __ATOMIC_##order)
#define STORE(p, v, order) __atomic_store_n((p), (v), __ATOMIC_##order)

static struct {
    uint64_t state;          /* generation << FS_GEN_SHIFT | next claim */
    /* The current job's description (see the top of this file). */
    fs_part_fn fn;
    void *ctx;
    int64_t nparts, per, claims;
    int64_t timed;           /* claims 0 .. timed - 1 record their times in fs_claim_ns */
    int helpers;             /* workers 0 .. helpers - 1 take part */
    int64_t done;            /* claims of the current generation finished */
    int busy;                /* a caller owns the job slot */
    int caller_waiting;      /* the owner sleeps on `finished` */
    int sleepers;            /* workers asleep (a fast path: none, nothing to wake) */
    int workers;             /* workers started; grows under `lock` */
    int64_t spawn_failed_ns; /* when pthread_create last failed (0: never): start no more */
                             /* until FS_SPAWN_RETRY_NS have passed */
    /* The owner's (under `busy`): jobs still to run alone, the next back-off, and how */
    /* long the last job took. */
    int skip, backoff;
    int64_t last_ns;
    pthread_mutex_t lock;
    pthread_cond_t finished;
} fs_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .finished = PTHREAD_COND_INITIALIZER};

/* The current job's claim times, by claim (atomic; each written once, by the thread that */
/* ran the claim, before it counts the claim done). */
static int64_t fs_claim_ns[FS_TIMED_CLAIMS];

/* Worker i's sleep: its flag (atomic) and condition, set up when it starts. */
static struct {
    int sleeping;
    pthread_cond_t wake;
} fs_slot[FS_MAX_WORKERS];

static pthread_once_t fs_pool_once = PTHREAD_ONCE_INIT;

static inline void fs_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t fs_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/*
 * Spin until check(arg) is true or the spin time has passed; whether it became
 * true.  After the first few microseconds it yields between checks, so that on
 * a loaded machine the spinning thread lets the thread it waits for (or
 * another process) have the core.
 */
static int fs_spin_until(int (*check)(const void *), const void *arg)
{
    const int64_t spin_ns = (int64_t)LOAD(&fs_spin_us, RELAXED) * 1000;
    if (spin_ns <= 0)
        return check(arg);
    const int64_t start = fs_now_ns();
    for (unsigned i = 1;; i++) {
        if (check(arg))
            return 1;
        if (i % 64 == 0) {
            const int64_t spent = fs_now_ns() - start;
            if (spent > spin_ns)
                return 0;
            if (spent > 5000)
                sched_yield();
        }
        fs_cpu_relax();
    }
}

/*
 * Run a claim of the current job and record its time if the job times it
 * (claim < timed); `since` is when it started, or 0 if unknown.  Returns the
 * time it ended (0 if not read), the next claim's start.
 */
static int64_t fs_run_timed_claim(fs_part_fn fn, void *ctx, int64_t claim, int64_t per,
                                  int64_t nparts, int64_t timed, int64_t since)
{
    if (claim >= timed) {
        fs_run_claim(fn, ctx, claim, per, nparts);
        return 0;
    }
    if (since == 0)
        since = fs_now_ns();
    fs_run_claim(fn, ctx, claim, per, nparts);
    const int64_t now = fs_now_ns();
    STORE(&fs_claim_ns[claim], now - since, RELAXED);
    return now;
}

/* Finish a claim: count it, and wake the owner if it sleeps and this was the last. */
static void fs_claim_done(int64_t claims)
{
    if (__atomic_add_fetch(&fs_pool.done, 1, __ATOMIC_SEQ_CST) == claims &&
        LOAD(&fs_pool.caller_waiting, SEQ_CST)) {
        pthread_mutex_lock(&fs_pool.lock);
        pthread_cond_broadcast(&fs_pool.finished);
        pthread_mutex_unlock(&fs_pool.lock);
    }
}

/*
 * A worker's share of the job published as `seen` (state read with acquire);
 * 0 if the job does not want this worker.
 */
static int fs_help(int id, uint64_t seen)
{
    if (id >= LOAD(&fs_pool.helpers, RELAXED))
        return 0;
    /* Possibly a later job's fields: then the CAS below fails and none is used (acquire: */
    /* see the top of this file). */
    const fs_part_fn fn = LOAD(&fs_pool.fn, ACQUIRE);
    void *const ctx = LOAD(&fs_pool.ctx, ACQUIRE);
    const int64_t nparts = LOAD(&fs_pool.nparts, ACQUIRE);
    const int64_t per = LOAD(&fs_pool.per, ACQUIRE);
    const int64_t claims = LOAD(&fs_pool.claims, ACQUIRE);
    const int64_t timed = LOAD(&fs_pool.timed, ACQUIRE);
    const uint64_t gen = seen >> FS_GEN_SHIFT;
    uint64_t expected = seen;
    int64_t ended = 0; /* when this worker's last claim ended: the next one's start */
    for (;;) {
        if (expected >> FS_GEN_SHIFT != gen || (int64_t)(expected & FS_CLAIM_MASK) >= claims)
            return 1;
        if (__atomic_compare_exchange_n(&fs_pool.state, &expected, expected + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            ended = fs_run_timed_claim(fn, ctx, (int64_t)(expected & FS_CLAIM_MASK), per, nparts,
                                       timed, ended);
            fs_claim_done(claims);
            expected++; /* a guess at the next claim; a failed CAS corrects it */
        }
    }
}

static int fs_new_generation(const void *gen)
{
    return LOAD(&fs_pool.state, ACQUIRE) >> FS_GEN_SHIFT != *(const uint64_t *)gen;
}

static void *fs_worker_main(void *arg)
{
    const int id = (int)(intptr_t)arg;
    /* None seen yet: a worker started for a job that is already published still joins it. */
    uint64_t seen_gen = UINT64_MAX;
    for (;;) {
        const uint64_t state = LOAD(&fs_pool.state, ACQUIRE);
        if (state >> FS_GEN_SHIFT != seen_gen) {
            seen_gen = state >> FS_GEN_SHIFT;
            /* Wanted: spin for the next job, it likely wants this worker too.  Else sleep. */
            if (fs_help(id, state) && fs_spin_until(fs_new_generation, &seen_gen))
                continue;
        } else if (fs_spin_until(fs_new_generation, &seen_gen)) {
            continue;
        }
        pthread_mutex_lock(&fs_pool.lock);
        STORE(&fs_slot[id].sleeping, 1, SEQ_CST);
        __atomic_add_fetch(&fs_pool.sleepers, 1, __ATOMIC_SEQ_CST);
        while (LOAD(&fs_pool.state, SEQ_CST) >> FS_GEN_SHIFT == seen_gen)
            pthread_cond_wait(&fs_slot[id].wake, &fs_pool.lock);
        __atomic_sub_fetch(&fs_pool.sleepers, 1, __ATOMIC_SEQ_CST);
        STORE(&fs_slot[id].sleeping, 0, RELAXED);
        pthread_mutex_unlock(&fs_pool.lock);
    }
    return NULL;
}

/*
 * Fork.  prepare: hold the lock, so that no thread is inside it (starting a
 * worker, waking one) when the process is copied.  child: the workers and any
 * caller that was running in another thread do not exist in the child, so the
 * pool starts over: no workers, no owner, and a new generation with no claims,
 * so that the child's first workers cannot take a claim of the parent's job
 * that was running.  The lock and conditions are made anew (a condition may
 * hold the vanished threads' waiting state).
 */
static void fs_pool_prepare(void) { pthread_mutex_lock(&fs_pool.lock); }
static void fs_pool_parent(void) { pthread_mutex_unlock(&fs_pool.lock); }

static void fs_pool_child(void)
{
    const uint64_t gen = (LOAD(&fs_pool.state, RELAXED) >> FS_GEN_SHIFT) + 1;
    STORE(&fs_pool.claims, 0, RELAXED);
    STORE(&fs_pool.timed, 0, RELAXED);
    STORE(&fs_pool.helpers, 0, RELAXED);
    STORE(&fs_pool.done, 0, RELAXED);
    STORE(&fs_pool.state, gen << FS_GEN_SHIFT | FS_CLOSED, RELAXED);
    STORE(&fs_pool.busy, 0, RELAXED);
    STORE(&fs_pool.caller_waiting, 0, RELAXED);
    STORE(&fs_pool.sleepers, 0, RELAXED);
    STORE(&fs_pool.workers, 0, RELAXED);
    STORE(&fs_pool.spawn_failed_ns, 0, RELAXED);
    fs_pool.skip = fs_pool.backoff = 0;
    fs_pool.last_ns = 0;
    pthread_mutex_init(&fs_pool.lock, NULL);
    pthread_cond_init(&fs_pool.finished, NULL);
    /* (The workers' slots are set up again as each new worker starts.) */
}

static void fs_pool_register_fork(void)
{
    pthread_atfork(fs_pool_prepare, fs_pool_parent, fs_pool_child);
}

/*
 * How long after a failed pthread_create no worker is tried again.  A failure is
 * often passing (a thread limit or an address-space limit met while other threads
 * held memory): never trying again would leave every later call of the process on
 * one thread; trying on every call would cost each a failing pthread_create.
 */
#define FS_SPAWN_RETRY_NS 1000000000

/* Start workers until there are `wanted`; how many there are (fewer if creation fails). */
static int fs_start_workers(int wanted)
{
    int have = LOAD(&fs_pool.workers, ACQUIRE);
    if (have >= wanted)
        return have;
    pthread_once(&fs_pool_once, fs_pool_register_fork);
    pthread_mutex_lock(&fs_pool.lock);
    have = fs_pool.workers;
    if (have < wanted && (fs_pool.spawn_failed_ns == 0 ||
                          fs_now_ns() - fs_pool.spawn_failed_ns >= FS_SPAWN_RETRY_NS)) {
        /* Workers block every signal: Python's handlers must run in Python's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        while (have < wanted) {
            pthread_t thread;
            STORE(&fs_slot[have].sleeping, 0, RELAXED);
            pthread_cond_init(&fs_slot[have].wake, NULL);
            if (fs_spawn_disabled ||
                pthread_create(&thread, NULL, fs_worker_main, (void *)(intptr_t)have) != 0) {
                /* No more threads (a limit, no memory): the callers do the work. */
                const int64_t now = fs_now_ns();
                fs_pool.spawn_failed_ns = now > 0 ? now : 1;
                break;
            }
            pthread_detach(thread);
            have++;
            STORE(&fs_pool.workers, have, RELEASE);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&fs_pool.lock);
    return have;
}

static int fs_all_done(const void *claims)
{
    return LOAD(&fs_pool.done, ACQUIRE) == *(const int64_t *)claims;
}

static void fs_run_pool(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx)
{
    int expected_busy = 0;
    if (!__atomic_compare_exchange_n(&fs_pool.busy, &expected_busy, 1, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
        fs_run_serial(nparts, fn, ctx); /* another call owns the pool: never wait for it */
        return;
    }
    if (fs_pool.skip > 0) { /* backing off (see the top) */
        fs_pool.skip--;
        STORE(&fs_pool.busy, 0, RELEASE);
        fs_run_serial(nparts, fn, ctx);
        return;
    }
    const int64_t per = nparts / FS_MAX_CLAIMS + 1;
    const int64_t claims = (nparts + per - 1) / per;
    int64_t wanted = nthreads - 1;
    wanted = wanted < claims - 1 ? wanted : claims - 1;
    wanted = wanted < FS_MAX_WORKERS ? wanted : FS_MAX_WORKERS;
    const int workers = fs_start_workers((int)wanted);
    const int helpers = workers < wanted ? workers : (int)wanted;
    if (helpers < 1) {
        STORE(&fs_pool.busy, 0, RELEASE);
        fs_run_serial(nparts, fn, ctx);
        return;
    }

    /* Time the claims of a job that follows a long one (see the top). */
    const int64_t timed = fs_pool.last_ns < FS_TIMED_AFTER_NS ? 0
                        : claims < FS_TIMED_CLAIMS            ? claims
                                                              : FS_TIMED_CLAIMS;

    /* Close the last generation, so that no late worker's CAS succeeds in it (its job is */
    /* done, but its claim counter may be below the new job's count), then describe the */
    /* job and publish it (release: the description and the caller's data before it). */
    const uint64_t gen = (LOAD(&fs_pool.state, RELAXED) >> FS_GEN_SHIFT) + 2;
    STORE(&fs_pool.state, (gen - 1) << FS_GEN_SHIFT | FS_CLOSED, SEQ_CST);
    STORE(&fs_pool.fn, fn, RELEASE);
    STORE(&fs_pool.ctx, ctx, RELEASE);
    STORE(&fs_pool.nparts, nparts, RELEASE);
    STORE(&fs_pool.per, per, RELEASE);
    STORE(&fs_pool.claims, claims, RELEASE);
    STORE(&fs_pool.timed, timed, RELEASE);
    STORE(&fs_pool.helpers, helpers, RELEASE);
    STORE(&fs_pool.done, 0, RELAXED);
    STORE(&fs_pool.state, gen << FS_GEN_SHIFT, SEQ_CST);
    if (LOAD(&fs_pool.sleepers, SEQ_CST) > 0) {
        /* Wake the sleepers among the workers this job wants (a flag read is cheap; a */
        /* lock and a signal are not). */
        int locked = 0;
        for (int i = 0; i < helpers; i++)
            if (LOAD(&fs_slot[i].sleeping, SEQ_CST)) {
                if (!locked)
                    pthread_mutex_lock(&fs_pool.lock);
                locked = 1;
                pthread_cond_signal(&fs_slot[i].wake);
            }
        if (locked)
            pthread_mutex_unlock(&fs_pool.lock);
    }

    /* The owner alone publishes, so the generation cannot change under it: a plain add. */
    const int64_t start = fs_now_ns();
    int64_t ended = start;
    for (;;) {
        const int64_t claim =
            (int64_t)(__atomic_fetch_add(&fs_pool.state, 1, __ATOMIC_ACQ_REL) & FS_CLAIM_MASK);
        if (claim >= claims)
            break;
        ended = fs_run_timed_claim(fn, ctx, claim, per, nparts, timed, ended);
        fs_claim_done(claims);
    }

    /* Every claim is taken: wait for those still running on workers, only those. */
    const int64_t finished = fs_all_done(&claims) ? 0 : fs_now_ns();
    if (finished && !fs_spin_until(fs_all_done, &claims)) {
        pthread_mutex_lock(&fs_pool.lock);
        STORE(&fs_pool.caller_waiting, 1, SEQ_CST);
        while (LOAD(&fs_pool.done, SEQ_CST) != claims)
            pthread_cond_wait(&fs_pool.finished, &fs_pool.lock);
        STORE(&fs_pool.caller_waiting, 0, RELAXED);
        pthread_mutex_unlock(&fs_pool.lock);
    }
    /* Every claim is done, so every time in fs_claim_ns is this job's (acquire on `done`). */
    const int64_t end = fs_now_ns();
    fs_pool.last_ns = end - start;
    int64_t claim_ns[FS_TIMED_CLAIMS];
    for (int64_t i = 0; i < timed; i++)
        claim_ns[i] = LOAD(&fs_claim_ns[i], RELAXED);
    if (fs_pool_job_lost(end - start, finished ? end - finished : 0, claims, claim_ns, timed)) {
        fs_pool.backoff = fs_pool.backoff < FS_BACKOFF_MIN ? FS_BACKOFF_MIN
                        : fs_pool.backoff < FS_BACKOFF_MAX ? 2 * fs_pool.backoff
                                                            : FS_BACKOFF_MAX;
        fs_pool.skip = fs_pool.backoff;
    } else {
        fs_pool.backoff = 0;
    }
    STORE(&fs_pool.busy, 0, RELEASE);
}

int fs_pool_would_share(int nthreads)
{
    if (nthreads <= 1)
        return 0;
#ifdef _OPENMP
    if (LOAD(&fs_use_openmp, RELAXED))
        return 1;
#endif
    int expected_busy = 0;
    if (!__atomic_compare_exchange_n(&fs_pool.busy, &expected_busy, 1, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return 0; /* another call owns the pool: this one's jobs would run alone */
    const int share = fs_pool.skip <= 0;
    if (!share)
        fs_pool.skip--; /* this call, run alone, counts as one job of the back-off */
    STORE(&fs_pool.busy, 0, RELEASE);
    return share;
}

int fs_pool_set_backoff_jobs(int jobs)
{
    /* Owning the pool, as a caller does, to touch its back-off state. */
    int expected_busy = 0;
    while (!__atomic_compare_exchange_n(&fs_pool.busy, &expected_busy, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
        expected_busy = 0;
        sched_yield();
    }
    const int old = fs_pool.skip;
    if (jobs >= 0)
        fs_pool.skip = jobs;
    STORE(&fs_pool.busy, 0, RELEASE);
    return old;
}

void fs_parallel_run(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx)
{
    if (nparts <= 0)
        return;
    if (nthreads <= 1 || nparts == 1) {
        fs_run_serial(nparts, fn, ctx);
        return;
    }
#ifdef _OPENMP
    if (LOAD(&fs_use_openmp, RELAXED)) {
        fs_run_openmp(nthreads, nparts, fn, ctx);
        return;
    }
#endif
    fs_run_pool(nthreads, nparts, fn, ctx);
}

const char *fs_pool_kind(void) { return "pthreads"; }

int fs_pool_fail_spawn(int on)
{
    /* Under the lock, with spawn_failed_ns: turning it off lets workers start again. */
    pthread_once(&fs_pool_once, fs_pool_register_fork);
    pthread_mutex_lock(&fs_pool.lock);
    const int old = fs_spawn_disabled;
    fs_spawn_disabled = on != 0;
    fs_pool.spawn_failed_ns = 0;
    pthread_mutex_unlock(&fs_pool.lock);
    return old;
}

int fs_pool_workers(void) { return LOAD(&fs_pool.workers, ACQUIRE); }

#else /* !FS_POOL_PTHREADS */

void fs_parallel_run(int nthreads, int64_t nparts, fs_part_fn fn, void *ctx)
{
    if (nparts <= 0)
        return;
#ifdef _OPENMP
    if (nthreads > 1 && nparts > 1) {
        fs_run_openmp(nthreads, nparts, fn, ctx);
        return;
    }
#endif
    (void)nthreads;
    fs_run_serial(nparts, fn, ctx);
}

const char *fs_pool_kind(void)
{
#ifdef _OPENMP
    return "openmp";
#else
    return "serial";
#endif
}

int fs_pool_workers(void) { return 0; }

int fs_pool_fail_spawn(int on) { return FS_EXCHANGE(&fs_spawn_disabled, on != 0); }

/* OpenMP's loop shares every job it is given (and without OpenMP nothing is shared). */
int fs_pool_would_share(int nthreads)
{
#ifdef _OPENMP
    return nthreads > 1;
#else
    (void)nthreads;
    return 0;
#endif
}

int fs_pool_set_backoff_jobs(int jobs)
{
    (void)jobs;
    return 0;
}

#endif /* FS_POOL_PTHREADS */
