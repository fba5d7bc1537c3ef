"""The thread policy (fastsoftmax/_threads.py): bounds, the thread-local block, OpenMP's per-thread limit;
and the executor (src/fs_pool.h): the same bits on every thread count, concurrent callers, fork.

The policy's fork rule is tested in test_reliability.py; the executor's own fork
safety (a child forked mid-call starts with an empty pool that works) here.  Calls that once ended the process
(an absurd thread count reached libgomp, which aborted allocating the
threads) run in a child interpreter, so a regression fails a test instead of
killing the run.
"""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _threads

OPENMP = _core.openmp_enabled()
FUNCS = [fs.softmax, fs.log_softmax, fs.logsumexp,
         lambda x, **kw: fs.cross_entropy(x, np.zeros(x.shape[0], np.int64), **kw),
         lambda x, **kw: fs.softmax_backward(x, x, **kw)]


def _child(code, env=None):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, **(env or {})})
    assert result.returncode == 0, (
        f"child exited with {result.returncode} (negative: killed by that signal)\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def test_max_threads_rule():
    assert _threads.MAX_THREADS == max(64, 4 * (os.cpu_count() or 1))


@pytest.mark.parametrize("func", FUNCS)
def test_absurd_thread_counts_are_refused_before_openmp_sees_them(func):
    x = np.random.default_rng(0).standard_normal((64, 512))
    limit = _threads.MAX_THREADS
    expected = func(x, n_threads=1)
    np.testing.assert_array_equal(func(x, n_threads=limit), expected)
    np.testing.assert_array_equal(func(x, n_threads=-limit), expected)
    for bad in (limit + 1, -limit - 1, 2**31 - 1, -2**31, 2**63, np.int64(2**62), 10**400):
        with pytest.raises(ValueError, match=r"n_threads=.* is more threads than allowed: at "
                                             rf"most MAX_THREADS = {limit}"):
            func(x, n_threads=bad)


def test_absurd_counts_in_the_settings_are_refused():
    default = fs.get_num_threads()
    limit = _threads.MAX_THREADS
    for bad in (limit + 1, 2**31 - 1, 10**400, 10**5000):
        with pytest.raises(ValueError, match="n=.* is more threads than allowed"):
            fs.set_num_threads(bad)
        with pytest.raises(ValueError, match="n=.* is more threads than allowed"):
            with fs.num_threads(bad):
                pass
    assert fs.get_num_threads() == default
    with pytest.raises(ValueError, match="int of 16610 bits"):  # not a 5001-digit message
        fs.set_num_threads(10**5000)


def test_the_reported_calls_leave_the_process_alive():
    out = _child("""
import numpy as np, fastsoftmax as fs
x = np.random.default_rng(0).standard_normal((64, 4096)).astype('f4')
for call in (lambda: fs.softmax(x, n_threads=2**31 - 1), lambda: fs.set_num_threads(2**31 - 1)):
    try:
        call()
    except ValueError as e:
        print("ValueError")
""")
    assert out.split() == ["ValueError", "ValueError"]


@pytest.mark.parametrize("count", ["100000", "2147483648", "4294967296", "4294967301",
                                   str(2**63 - 1), " 2147483649 ,2"])
def test_openmp_maximum_is_capped(tmp_path, count):
    """OMP_NUM_THREADS far above the cap: automatic calls use MAX_THREADS, and run.  From
    2**31 on, omp_get_max_threads() returns libgomp's count cut to an int (negative, 0, or
    2**32 + 5 as 5), which once gave automatic calls one thread (or five)."""
    out = _child("""
import numpy as np, fastsoftmax as fs
from fastsoftmax import _threads
print(fs.get_num_threads(), _threads.MAX_THREADS, fs.get_num_threads() == _threads.resolve_threads(-1, 10**9))
x = np.random.default_rng(0).standard_normal((64, 1024)).astype('f4')
np.testing.assert_array_equal(fs.softmax(x), fs.softmax(x, n_threads=1))
""", env={"OMP_NUM_THREADS": count})
    threads, limit, negative_alike = out.split()
    assert int(threads) == (int(limit) if OPENMP else 1)
    assert negative_alike == "True"


def _in_two_threads(first, second):
    """Run ``first(step)`` and ``second(step)`` in two threads, interleaved by ``step(k)``.

    ``step(k)`` blocks until both threads have reached their step ``k``, so the
    order of what each does between steps is fixed.
    """
    barrier = threading.Barrier(2, timeout=30)
    errors = []

    def run(body):
        try:
            body(lambda: barrier.wait())
        except BaseException as e:  # reported in the main thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(body,)) for body in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]


@pytest.mark.skipif(not OPENMP, reason="built without OpenMP: always one thread")
def test_num_threads_blocks_in_two_threads_do_not_leak():
    """The report: A enters num_threads(1), B enters num_threads(2), A exits, then B exits.

    With one process-wide setting, B's exit restored A's 1 for good.  Each
    block now belongs to its own thread, and each thread sees its own count.
    """
    default = fs.get_num_threads()
    seen = {}

    def a(step):
        with fs.num_threads(1):
            step()                               # 1: both inside
            seen["a inside"] = fs.get_num_threads()
            step()                               # 2
        seen["a after"] = fs.get_num_threads()
        step()                                   # 3: A has left, B is still inside
        step()                                   # 4: B has left

    def b(step):
        with fs.num_threads(2):
            step()                               # 1
            seen["b inside"] = fs.get_num_threads()
            step()                               # 2
            step()                               # 3
            seen["b inside after a left"] = fs.get_num_threads()
        step()                                   # 4
        seen["b after"] = fs.get_num_threads()

    _in_two_threads(a, b)
    assert seen == {"a inside": 1, "b inside": 2, "a after": default,
                    "b inside after a left": 2, "b after": default}
    assert fs.get_num_threads() == default


def test_num_threads_block_inside_set_num_threads():
    default = fs.get_num_threads()
    try:
        fs.set_num_threads(1)
        with fs.num_threads(None):  # None inside a block: OpenMP's maximum, not the setting
            assert fs.get_num_threads() == (_threads._openmp_maximum() if OPENMP else 1)
            fs.set_num_threads(3)   # process-wide; the block still wins here
            assert fs.get_num_threads() == (_threads._openmp_maximum() if OPENMP else 1)
        assert fs.get_num_threads() == (3 if OPENMP else 1)
    finally:
        fs.set_num_threads(None)
    assert fs.get_num_threads() == default


@pytest.mark.skipif(not OPENMP, reason="built without OpenMP")
def test_threadpoolctl_limit_is_per_thread():
    """libgomp keeps OpenMP's maximum per thread: a limit in one thread leaves the others alone.

    (README, Threads: documented, and checked here so the README stays true.)
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if _core.max_threads() < 2:
        pytest.skip("one CPU: the limit cannot be told from the default")
    default = fs.get_num_threads()
    seen = {}

    def limited(step):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            step()
            seen["limited thread"] = fs.get_num_threads()
            step()

    def other(step):
        step()
        seen["other thread"] = fs.get_num_threads()
        step()

    _in_two_threads(limited, other)
    assert seen == {"limited thread": 1, "other thread": default}


# ---------------------------------------------------------------- the CPU quota

def _fake_files(monkeypatch, files):
    """Make _threads read ``files`` (path -> text) instead of the kernel's; others are absent."""
    monkeypatch.setattr(_threads, "_read_text", files.get)


@pytest.mark.parametrize("files,limit", [
    ({}, None),
    ({"/sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
    ({"/sys/fs/cgroup/cpu.max": "200000 100000\n"}, 2.0),
    ({"/sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
    # v2 without a cgroup namespace: this process's cgroup and its ancestors, the smallest wins
    ({"/proc/self/cgroup": "0::/system.slice/job.scope\n",
      "/sys/fs/cgroup/system.slice/job.scope/cpu.max": "max 100000\n",
      "/sys/fs/cgroup/system.slice/cpu.max": "400000 100000\n",
      "/sys/fs/cgroup/cpu.max": "800000 100000\n"}, 4.0),
    # v1
    ({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"/sys/fs/cgroup/cpu.max": "garbage"}, None),
])
def test_cgroup_cpu_limit(monkeypatch, files, limit):
    _fake_files(monkeypatch, files)
    assert _threads._cgroup_cpu_limit() == limit


def test_cpu_limit_rounds_the_quota_up_and_is_at_least_one(monkeypatch):
    cpus = _threads._cpu_limit()
    _fake_files(monkeypatch, {"/sys/fs/cgroup/cpu.max": "150000 100000"})
    assert _threads._cpu_limit() == min(2, cpus)
    _fake_files(monkeypatch, {"/sys/fs/cgroup/cpu.max": "1000 100000"})
    assert _threads._cpu_limit() == 1


@pytest.mark.skipif(not OPENMP, reason="built without OpenMP: always one thread")
def test_quota_caps_the_automatic_count_only(monkeypatch):
    """A container limited to 2 CPUs on a 64-core host: n_threads=None uses 2 threads.

    An explicit n_threads=k, set_num_threads and num_threads still mean exactly k.
    """
    if _threads._pool_may_be_stale:
        pytest.skip("a forked child runs on one thread")
    monkeypatch.setattr(_threads._core, "max_threads", lambda: 64)
    monkeypatch.setattr(_threads, "_AUTOMATIC_CAP", 2)
    big = _threads.PARALLEL_MIN_ELEMENTS
    assert fs.get_num_threads() == 2
    assert _threads.resolve_threads(None, big) == 2
    assert _threads.resolve_threads(-1, big) == 2
    assert _threads.resolve_threads(5, big) == 5
    with fs.num_threads(3):
        assert _threads.resolve_threads(None, big) == 3
    try:
        fs.set_num_threads(4)
        assert _threads.resolve_threads(None, big) == 4
    finally:
        fs.set_num_threads(None)


_AFFINITY_CHILD = """
import os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import fastsoftmax as fs
from fastsoftmax import _threads
print(_threads._CPU_LIMIT, fs.get_num_threads())
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no os.sched_setaffinity")
@pytest.mark.skipif(not OPENMP, reason="built without OpenMP: always one thread")
def test_affinity_mask_caps_the_automatic_count():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may run on one CPU only")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", _AFFINITY_CHILD], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]
    # An explicit OMP_NUM_THREADS still wins over the mask.
    assert _child(_AFFINITY_CHILD, env={"OMP_NUM_THREADS": "2"}).split() == ["1", "2"]
    # One libgomp ignores (it then uses every CPU it sees) is no choice: the mask still caps.
    for ignored in (" ", "0", "abc", "1e3", "-2", "2,"):
        assert _child(_AFFINITY_CHILD, env={"OMP_NUM_THREADS": ignored}).split() == ["1", "1"], \
            ignored


@pytest.mark.parametrize("value,sets", [
    (None, False), ("", False), (" ", False), ("0", False), ("abc", False), ("1e3", False),
    ("-2", False), ("0x10", False), ("4,", False), ("\u0663", False), (str(2**63), False),
    ("4", True), (" 4 ", True), ("+4", True), ("04", True), ("4, 2", True),
    (str(2**63 - 1), True)])
def test_omp_num_threads_counts_only_where_libgomp_takes_it(value, sets):
    assert _threads._sets_thread_count(value) is sets


# ---------------------------------------------------------------- the executor (src/fs_pool.h)

POOL = _core.executor() == "pthreads"
CPUS = os.cpu_count() or 1
# 1..8 threads, and more threads than this machine has cores (its workers time-share).
THREAD_COUNTS = sorted(set(range(1, 9)) | {2 * CPUS + 1, min(4 * CPUS, _threads.MAX_THREADS)})
CHUNK = _core.kernel_info()[_core.isa()]["float32"]["chunk"]


def _ops(dtype):
    """(name, call(x, n_threads)) of every threaded op; cross_entropy returns loss and grad."""
    def ce(x, t):
        labels = np.arange(x.shape[0]) % x.shape[-1]
        return fs.cross_entropy(x, labels, return_grad=True, reduction="none", n_threads=t)

    def ce_soft(x, t):
        target = fs.softmax(x[::-1].copy(), n_threads=1)
        return fs.cross_entropy(x, target, label_smoothing=0.1, return_grad=True, n_threads=t)

    return [("softmax", lambda x, t: fs.softmax(x, n_threads=t)),
            ("log_softmax", lambda x, t: fs.log_softmax(x, n_threads=t)),
            ("logsumexp", lambda x, t: fs.logsumexp(x, n_threads=t)),
            ("softmax/T", lambda x, t: fs.softmax(x, temperature=0.7, n_threads=t)),
            ("softmax axis 0", lambda x, t: fs.softmax(x, axis=0, n_threads=t)),
            ("logsumexp axis 0", lambda x, t: fs.logsumexp(x, axis=0, n_threads=t)),
            ("backward", lambda x, t: fs.softmax_backward(x, x, n_threads=t)),
            ("log backward", lambda x, t: fs.log_softmax_backward(x, x, n_threads=t)),
            ("cross_entropy", ce),
            ("cross_entropy soft", ce_soft)]


# Rows: many (threads take runs of rows), few long ones (the long-row driver splits
# them in chunks), and a wide few-row array whose axis-0 ops split columns.
SHAPES = [(257, 300), (1, 5 * CHUNK + 17), (3, 2 * CHUNK + 1), (6, 40 * 16 + 3)]


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(u, v) for u, v in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def _expected(x, dtype):
    return {name: op(x, 1) for name, op in _ops(dtype)}


def _inputs(dtype=np.float32):
    rng = np.random.default_rng(15)
    out = []
    for shape in SHAPES:
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        x.flat[::97] = -np.inf  # masked-out logits in some rows
        x[0, 0] = np.inf if shape[0] > 2 else x[0, 0]
        out.append(x)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_same_bits_on_every_thread_count(dtype):
    """Every op, every split (rows, columns, long rows), threads 1..8 and past the cores."""
    for x in _inputs(dtype):
        expected = _expected(x, dtype)
        for t in THREAD_COUNTS:
            for name, op in _ops(dtype):
                assert _same(op(x, t), expected[name]), (name, x.shape, t)


def test_narrow_same_bits_on_every_thread_count():
    x = np.random.default_rng(1).standard_normal(3 * 65536 * 8 + 5).astype(np.float32)
    for kind in (np.float16, np.uint16):
        expected = _core.narrow(x, np.empty(x.size, kind), 1)
        for t in THREAD_COUNTS:
            assert np.array_equal(_core.narrow(x, np.empty(x.size, kind), t), expected)


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
@pytest.mark.parametrize("nthreads", THREAD_COUNTS)
def test_pool_runs_every_part_once(nthreads):
    """Parts fewer than, equal to and many more than the threads, one after another."""
    for parts in (0, 1, 2, nthreads - 1, nthreads, nthreads + 1, 3 * nthreads + 7, 1000):
        assert _core._pool_self_test(nthreads, max(0, parts), repeats=50), parts


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
def test_pool_without_spinning_and_with_the_openmp_loop():
    """Workers that sleep at once (every call wakes them) and the old OpenMP executor: same bits."""
    x = _inputs()[1]
    expected = _expected(x, np.float32)
    for settings in ({"spin_us": 0}, {"openmp": OPENMP}):
        old = _core._pool_settings(**settings)
        try:
            for _ in range(20):
                assert _core._pool_self_test(3, 17, repeats=5)
            for t in (2, 3, 5):
                for name, op in _ops(np.float32):
                    assert _same(op(x, t), expected[name]), (settings, name, t)
        finally:
            _core._pool_settings(**old)


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_on_a_backing_off_pool_take_the_one_thread_path(dtype):
    """While the pool backs off (after a job that lost to one thread on a busy machine), a call
    on a few long rows runs the rows' one-thread path instead of the long-row driver's passes
    on one thread, which took 1.25x its time, and counts as one job of the back-off, not two
    to four.  Either way the bits are those of every other thread count."""
    long_rows = [x.astype(dtype) for x in _inputs()[1:3]]  # 1 and 3 rows of several chunks
    for x in long_rows:
        expected = _expected(x, dtype)
        for name, op in _ops(dtype):
            for t in (2, x.shape[0] + 1, 8):
                _core._pool_settings(backoff_jobs=5)
                try:
                    result = op(x, t)
                finally:
                    left = _core._pool_settings(backoff_jobs=0)["backoff_jobs"]
                assert _same(result, expected[name]), (name, x.shape, t)
                if "axis 0" not in name and x.shape[0] < t:  # rows the driver would split
                    assert left == 4, (name, x.shape, t, left)


def test_the_back_off_judges_a_job_by_the_median_time_of_its_claims():
    """The executor's loss test (src/fs_pool.c, fs_pool_job_lost): a job lost to one thread
    when it took longer than its claims at the median claim's time, plus 20 us, or waited
    most of its time for workers' claims.  The median is of every thread's claims, so a
    descheduled owner's slow claim, or a short last chunk, does not change the verdict."""
    us = 1000
    lost = _core._pool_job_lost
    rng = np.random.default_rng(7)

    def shuffled(times):
        return [int(t) for t in rng.permutation(np.array(times, dtype=np.int64))]

    # Two threads that ran side by side: 16 claims of 200 us in 1.7 ms gained.
    assert not lost(1700 * us, 0, 16, shuffled([200 * us] * 16))
    # The owner descheduled for 4 ms in its one claim while a worker ran the other 15:
    # 4.3 ms against one thread's 3.2 ms, with no wait at the end.  Timing the owner alone
    # (4 ms a claim) missed this loss.
    assert lost(4300 * us, 0, 16, shuffled([4000 * us] + [200 * us] * 15))
    assert not lost(3000 * us, 0, 16, shuffled([4000 * us] + [200 * us] * 15))
    # Two threads on one CPU, one running while the other waited: no gain is a loss.
    assert lost(3570 * us, 0, 16, shuffled([218 * us] * 16))
    # The slack: up to 20 us beyond one thread's time is not a loss.
    assert not lost(3200 * us + 20 * us, 0, 16, [200 * us] * 16)
    assert lost(3200 * us + 21 * us, 0, 16, [200 * us] * 16)
    # A third of the claims are short last chunks of long rows: the median is a full chunk's.
    chunks = [4 * us] * 20 + [1 * us] * 10
    assert not lost(70 * us, 0, 30, shuffled(chunks))
    assert lost(150 * us, 0, 30, shuffled(chunks))
    # Claims past the 256 timed ones count at the median's time.
    assert not lost(10_000 * us, 0, 1000, [10 * us] * 256)
    assert lost(10_030 * us, 0, 1000, [10 * us] * 256)
    # Most of the job spent waiting for a descheduled worker's claim: lost, however fast.
    assert lost(3000 * us, 1501 * us, 16, [1000 * us] * 16)
    assert not lost(3000 * us, 1499 * us, 16, [1000 * us] * 16)
    # Nothing timed (a job after a short one): only the wait can tell.
    assert not lost(10_000 * us, 0, 16, [])
    assert lost(10_000 * us, 5001 * us, 16, [])
    with pytest.raises(ValueError, match="claim_ns"):
        lost(1, 0, 300, [1] * 257)
    with pytest.raises(ValueError, match="4 claims, 5 of them timed"):
        lost(1000, 0, 4, [1] * 5)
    with pytest.raises(ValueError, match="waited 2000"):
        lost(1000, 2000, 4, [1] * 4)


def test_concurrent_python_threads():
    """Several Python threads calling at once, the GIL released: each gets its own right answer.

    One call owns the pool at a time; the others run on their own thread (src/fs_pool.h).
    """
    inputs = _inputs()
    expected = [_expected(x, np.float32) for x in inputs]
    errors = []
    start = threading.Barrier(6, timeout=60)

    def caller(k):
        try:
            start.wait()
            for i in range(12):
                j = (k + i) % len(inputs)
                for name, op in _ops(np.float32):
                    t = 1 + (k + i) % 5
                    if not _same(op(inputs[j], t), expected[j][name]):
                        errors.append((k, name, j, t))
                assert _core._pool_self_test(2 + k % 3, 50 + k, repeats=20)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    assert not errors, errors[:5]


def test_nested_in_a_dask_like_thread_pool():
    """Tasks of a thread pool (as dask's threaded scheduler runs them) calling with threads."""
    x = np.random.default_rng(2).standard_normal((64, 3 * CHUNK // 4)).astype(np.float32)
    chunks = np.array_split(x, 16)
    expected = [fs.log_softmax(c, n_threads=1) for c in chunks]

    def task(i):
        with fs.num_threads(1 + i % 4):
            return fs.log_softmax(chunks[i], n_threads=None if i % 2 else 3)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            results = list(pool.map(task, range(len(chunks))))
            assert all(np.array_equal(r, e) for r, e in zip(results, expected))


def _wait_child(pid, timeout=60):
    """The exit status of child ``pid``; kills it and fails if it runs past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"fork child hung for {timeout} s")
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork of a threaded process
def test_fork_while_calls_run_in_other_threads():
    """Children forked while two other threads are inside multi-threaded calls.

    Each child must start with an empty pool (no workers, no job), run
    multi-threaded calls on a pool of its own, and get the same bits.  The
    child lifts the policy's one-thread rule (which exists for libgomp's pool,
    not this one) so that its calls really do use threads.
    """
    x = _inputs()[1]
    expected = _expected(x, np.float32)
    stop = threading.Event()
    errors = []

    def busy(t):
        try:
            while not stop.is_set():
                assert _same(fs.softmax(x, n_threads=t), expected["softmax"])
                assert _core._pool_self_test(t, 64, repeats=3)
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=busy, args=(t,)) for t in (3, 4)]
    for t in threads:
        t.start()
    try:
        for k in range(8):
            time.sleep(0.002 * k)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    ok = _core.pool_workers() == 0
                    _threads._pool_may_be_stale = False
                    for t in (2, 4):
                        ok = ok and _core._pool_self_test(t, 100, repeats=20)
                        for name, op in _ops(np.float32):
                            ok = ok and _same(op(x, t), expected[name])
                    ok = ok and _core.pool_workers() >= 1
                    code = 0 if ok else 3
                finally:
                    os._exit(code)
            assert _wait_child(pid) == 0, f"fork child {k} gave wrong answers or a stale pool"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors


_NO_THREADS_CHILD = """
import numpy as np, fastsoftmax as fs
from fastsoftmax import _core
_core._pool_settings(fail_spawn=True)
x = np.random.default_rng(0).standard_normal((2, 200000)).astype('f4')
y = np.random.default_rng(0).standard_normal((300, 500)).astype('f4')
for a in (x, y):
    for t in (2, 8):
        assert np.array_equal(fs.softmax(a, n_threads=t), fs.softmax(a, n_threads=1))
        assert np.array_equal(fs.logsumexp(a, n_threads=t), fs.logsumexp(a, n_threads=1))
assert _core._pool_self_test(4, 100, repeats=10)
print(_core.pool_workers())
"""


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
def test_calls_run_when_no_worker_can_start():
    """pthread_create failing (a thread limit, no memory): the calling thread does the work."""
    assert _child(_NO_THREADS_CHILD).split() == ["0"]


_SHORT_OF_MEMORY_CHILD = """
import resource, time
import numpy as np, fastsoftmax as fs
from fastsoftmax import _core
def address_space():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
x = np.random.default_rng(0).standard_normal((8, 100000)).astype('f4')
o, want = np.empty_like(x), fs.softmax(x, n_threads=1)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (address_space() + (4 << 20), hard))  # no room for a stack
fs.softmax(x, out=o, n_threads=2)
short = _core.pool_workers()
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
time.sleep(1.1)                             # (within a second of the failure: not tried)
fs.softmax(x, out=o, n_threads=2)
assert np.array_equal(o, want)
print(short, _core.pool_workers())
"""


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_workers_start_again_after_a_passing_failure():
    """A pthread_create that failed for want of memory once left every later call of the
    process on one thread (audit, 2026-12-07).  No worker is tried again for a second,
    then one is."""
    short, later = _child(_SHORT_OF_MEMORY_CHILD).split()
    if short != "0":
        pytest.skip(f"a worker started under the address-space limit ({short})")
    assert later == "1"


def test_show_config_names_the_executor(capsys):
    fs.show_config()
    assert f"executor: {_core.executor()}" in capsys.readouterr().out


@pytest.mark.skipif(not POOL, reason="no POSIX threads: the executor is an OpenMP loop")
def test_pool_stress_in_c(tmp_path):
    """tools/pool_stress.c against src/fs_pool.c: concurrent callers, forks, no spinning.

    (tools/pool_tsan.sh runs the same under ThreadSanitizer.)
    """
    import shutil

    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = os.path.join(root, "tools", "pool_stress.c")
    if cc is None or not os.path.exists(source):
        pytest.skip("no C compiler, or not a source checkout")
    exe = str(tmp_path / "pool_stress")
    subprocess.run([cc, "-O2", "-pthread", "-I", os.path.join(root, "src"), source,
                    os.path.join(root, "src", "fs_pool.c"), "-o", exe], check=True, timeout=120)
    # Without an LD_PRELOAD: under tools/sanitize.sh that would load GCC 12's ASan runtime
    # into this plain binary, and that runtime's allocator is not fork-safe (a child forked
    # while another thread holds its lock waits on it forever; newer runtimes lock it
    # around fork).  pool_tsan.sh checks this program under ThreadSanitizer instead.
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    result = subprocess.run([exe], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout + result.stderr


def test_a_block_left_open_in_a_suspended_generator_applies_to_its_caller():
    """As the README says (contextvars: a generator shares its caller's context)."""
    def generator():
        with fs.num_threads(before + 1):
            yield

    before = fs.get_num_threads()
    suspended = generator()
    next(suspended)
    assert fs.get_num_threads() == before + 1
    suspended.close()  # GeneratorExit closes the block
    assert fs.get_num_threads() == before
