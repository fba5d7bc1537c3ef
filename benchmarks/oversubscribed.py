#!/usr/bin/env python
"""fastsoftmax on a loaded machine: automatic threads against one thread, with every core busy.

    python benchmarks/oversubscribed.py
    python benchmarks/oversubscribed.py --workloads inference_row inference_batch --min-time 0.2
    python benchmarks/oversubscribed.py --busy 0          # the same table on an idle machine

Starts --busy processes (default: one per CPU, os.cpu_count()), each spinning in a tight Python
loop, so that every core already has a runnable process when fastsoftmax asks for its threads.
Then, on the float32 workloads of benchmarks/scaling.py (its WORKLOADS; --workloads picks some),
times softmax (out=), log_softmax (out=), logsumexp (out=) and cross_entropy loss+grad
(grad_out=) with automatic threads (n_threads=None) and with n_threads=1, the two alternating
round by round so that both see the same load, until each has run for --min-time seconds (and
at least 5 rounds). It stops the busy processes and prints a Markdown table of the two medians
and of the median of the rounds' ratios, auto / one thread: above 1 means the automatic thread
count lost to a single thread on the oversubscribed machine.

Why the rounds' ratios, not the ratio of the medians: on a loaded machine the OS moves a thread
between a core of its own and one it shares, for tens to hundreds of milliseconds at a time,
and the same call then takes 15 or 30 ms (2048x32000 logsumexp, Zen 5, 2 cores). The median of
such two-valued times jumps between them: with both sides on one thread, the ratio of the
medians reached 1.03-1.09 in the worst cell of each of four runs, the rounds' ratio 1.01
(2026-12-06). The two calls of a round run within milliseconds of each other, in the same
placement, so their ratio measures the threads and not the placement.

The two results of each op are checked against each other before timing (fastsoftmax gives the
same bits whatever the thread count) and against fastsoftmax.reference on the first row.

The busy processes are daemons, terminated in a finally block (reached on Ctrl-C and on SIGTERM
too), and each also exits by itself once its parent is gone (SIGKILL), so that none outlives the
script. A script, not a test:
pytest does not collect it.
"""

import argparse
import functools
import multiprocessing
import os
import signal
import sys
import time

import numpy as np

import fastsoftmax as fs
import fastsoftmax.reference as ref
from conftest import cpu_model  # benchmarks/ is this script's first sys.path entry
from scaling import WORKLOADS

OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")
MIN_ROUNDS = 5
MAX_ROUNDS = 1000


# --- The busy processes -------------------------------------------------------------------------


def _spin(parent_pid, ready):
    """A tight pure-Python loop on one core, until terminated or orphaned."""
    try:
        ready.put(os.getpid())
        while os.getppid() == parent_pid:  # orphaned (the parent was killed): stop
            for _ in range(200_000):  # about 5 ms of pure interpreter work between checks
                pass
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: leave quietly
        pass


def start_busy(n):
    """Start n spinning daemon processes and wait until each one is running."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with OpenMP threads
    ready = context.Queue()
    procs = []
    try:
        for _ in range(n):
            proc = context.Process(target=_spin, args=(os.getpid(), ready), daemon=True)
            proc.start()
            procs.append(proc)
        for _ in range(n):
            ready.get(timeout=60)
    except BaseException:
        stop_busy(procs)
        raise
    return procs


def stop_busy(procs):
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


# --- Timing ---------------------------------------------------------------------------------------


def paired_medians(func_a, func_b, min_time):
    """Two calls timed alternately, each for at least min_time and MIN_ROUNDS: the median seconds
    of each, and the median over rounds of a's time over b's."""
    func_a(), func_b()  # warm-up: thread pool, first touch of the outputs
    times_a, times_b = [], []
    spent_a = spent_b = 0.0
    while len(times_a) < MIN_ROUNDS or min(spent_a, spent_b) < min_time:
        for func, times in ((func_a, times_a), (func_b, times_b)):
            t0 = time.perf_counter()
            func()
            times.append(time.perf_counter() - t0)
        spent_a, spent_b = sum(times_a), sum(times_b)
        if len(times_a) >= MAX_ROUNDS:
            break
    ratios = np.array(times_a) / np.array(times_b)
    return float(np.median(times_a)), float(np.median(times_b)), float(np.median(ratios))


def make_calls(op, x, labels):
    """Zero-argument calls of `op` with automatic threads and with one thread, both writing into
    the same preallocated output(s).  With an output each, one thread timed against one thread
    (this script with both sides n_threads=1) gave up to 1.27 on log_softmax 1000000x10 after the
    larger workloads had run, in one run of three; with one output, 0.99-1.01 on every cell in
    four runs (Zen 5, 2026-12-06).  The two arrays' memory is not alike (how the OS backs
    them, likely), and that is not what this script measures."""
    if op == "cross_entropy":
        grad = np.full_like(x, 0)  # filled: pages faulted in before timing

        def call(n_threads):
            return fs.cross_entropy(x, labels, return_grad=True, grad_out=grad, n_threads=n_threads)
    else:
        out = np.full(x.shape[:-1], 0, x.dtype) if op == "logsumexp" else np.full_like(x, 0)
        fn = getattr(fs, op)

        def call(n_threads):
            return fn(x, out=out, n_threads=n_threads)
    return functools.partial(call, None), functools.partial(call, 1)


def copied(result):
    """A result kept from the next call into the same buffer."""
    if isinstance(result, tuple):
        return tuple(np.copy(part) for part in result)
    return np.copy(result)


def check(op, x, labels, auto, one):
    """auto and one-thread results bitwise equal; the first row (and the whole loss) as the reference."""
    close = np.testing.assert_allclose
    if op == "cross_entropy":
        (loss_a, grad_a), (loss_1, grad_1) = auto, one
        assert loss_a == loss_1 and np.array_equal(grad_a, grad_1), f"{op}: threads change the result"
        block = max(1, 2**20 // x.shape[1])  # float64 copies of ~8 MB at a time
        total = sum(float(ref.cross_entropy(x[i:i + block].astype(np.float64), labels[i:i + block],
                                            reduction="sum")) for i in range(0, len(x), block))
        close(loss_a, total / len(x), rtol=1e-4)
        _, grad_row = ref.cross_entropy(x[:1].astype(np.float64), labels[:1], return_grad=True)
        close(grad_a[:1] * len(x), grad_row, rtol=1e-4, atol=1e-7)  # mean over 1 row vs over all
        return
    assert np.array_equal(auto, one), f"{op}: threads change the result"
    close(auto[:1], getattr(ref, op)(x[:1].astype(np.float64), axis=-1), rtol=1e-4, atol=1e-7)


def measure(workloads, min_time, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for name in workloads:
        shape = WORKLOADS[name]
        x = rng.standard_normal(shape, dtype=np.float32)
        labels = rng.integers(0, shape[1], shape[0])
        for op in OPS:
            auto, one = make_calls(op, x, labels)
            check(op, x, labels, copied(auto()), one())
            auto_s, one_s, ratio = paired_medians(auto, one, min_time)
            rows.append((op, name, f"{shape[0]}x{shape[1]}", auto_s, one_s, ratio))
        print(f"{name} done", file=sys.stderr, flush=True)
    return rows


def table(rows):
    lines = ["| op | workload | shape | auto threads | 1 thread | auto ÷ 1 thread, by round |",
             "|---|---|---|---:|---:|---:|"]
    for op, name, shape, auto_s, one_s, ratio in rows:
        lines.append(f"| {op} | {name} | {shape} | {auto_s * 1e3:.3f} ms | {one_s * 1e3:.3f} ms "
                     f"| {ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS),
                        metavar="NAME", help=f"some of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                        help="busy processes to start (default: os.cpu_count(), one per CPU)")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds each of the two thread settings is timed for, per op and workload")
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error("--busy must be >= 0")

    # `kill` (SIGTERM) unwinds through the finally below, as Ctrl-C (KeyboardInterrupt) does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    procs = start_busy(args.busy)
    try:
        rows = measure(args.workloads, args.min_time)
    finally:
        stop_busy(procs)

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, {args.busy} busy processes (pure-Python loops); "
          f"fastsoftmax {fs.__version__}, kernels {fs._core.isa()}, automatic threads = "
          f"{fs.get_num_threads()}; float32; medians of rounds alternating auto / 1 thread, "
          f"at least {args.min_time:g} s each\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
