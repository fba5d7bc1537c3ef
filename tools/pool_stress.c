/*
 * A stress test of the executor (src/fs_pool.c) on its own, for ThreadSanitizer:
 * tools/pool_tsan.sh builds it with -fsanitize=thread and runs it.
 *
 * Several caller threads run jobs of 1..70 parts on 1..8 threads at once (one
 * owns the pool, the others run alone), each part adding its own value to its
 * own element, so a part run twice, run with another job's context or not run
 * shows in the sums; one job in 50 has parts that take 30 us, so that the jobs
 * after it time their parts (the back-off's claim times, FS_TIMED_AFTER_NS).
 * The main thread forks meanwhile, and each child checks it starts with no
 * workers and runs jobs on a pool of its own.  Prints "ok" and
 * exits 0, or says what failed.  NOFORK=1 leaves the forks out (ThreadSanitizer
 * does not support threads started in the child of a threaded process well).
 */
#include "fs_pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int64_t *out;
    int slow; /* each part takes 30 us */
} job_ctx;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void part(void *arg, int64_t i)
{
    job_ctx *c = (job_ctx *)arg;
    if (c->slow)
        for (const int64_t start = now_ns(); now_ns() - start < 30000;)
            ;
    c->out[i] += i * 3 + 1;
}

static int check_job(int nthreads, int64_t n, int slow)
{
    int64_t *out = (int64_t *)calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
    job_ctx c = {out, slow};
    int bad = 0;
    fs_parallel_run(nthreads, n, part, &c);
    for (int64_t i = 0; i < n; i++)
        if (out[i] != i * 3 + 1) {
            printf("part %lld of %lld on %d threads: %lld\n", (long long)i, (long long)n,
                   nthreads, (long long)out[i]);
            bad = 1;
            break;
        }
    free(out);
    return bad;
}

static int check(int nthreads, int64_t n) { return check_job(nthreads, n, 0); }

static void *caller(void *arg)
{
    const int seed = (int)(intptr_t)arg;
    int bad = 0;
    for (int k = 0; k < 20000 && !bad; k++)
        bad = check_job(1 + (k + seed) % 8, (k * 7 + seed) % 71, k % 50 == 0);
    return (void *)(intptr_t)bad;
}

int main(void)
{
    enum { CALLERS = 4 };
    pthread_t threads[CALLERS];
    int bad = 0;
    for (int i = 0; i < CALLERS; i++)
        pthread_create(&threads[i], NULL, caller, (void *)(intptr_t)i);
    const int forks = getenv("NOFORK") ? 0 : 20;
    for (int f = 0; f < forks; f++) {
        const pid_t pid = fork();
        if (pid == 0) {
            int child_bad = fs_pool_workers() != 0;
            for (int k = 0; k < 2000 && !child_bad; k++)
                child_bad = check(2 + k % 4, 50);
            _exit(child_bad);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("fork child %d failed (status %d)\n", f, status);
            bad = 1;
        }
    }
    for (int i = 0; i < CALLERS; i++) {
        void *result;
        pthread_join(threads[i], &result);
        bad |= (int)(intptr_t)result;
    }
    bad |= check(4, 9000000); /* more parts than claims: runs of parts per claim */
    fs_pool_set_spin_us(0);    /* workers asleep at every call */
    for (int k = 0; k < 5000 && !bad; k++)
        bad |= check(3, 10);
    printf("%s (%d workers)\n", bad ? "FAILED" : "ok", fs_pool_workers());
    return bad;
}
