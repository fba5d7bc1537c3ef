"""The thread policy (fastsoftmax/_threads.py): bounds, the thread-local block, OpenMP's per-thread limit.

Forks are tested in test_reliability.py.  Calls that once ended the process
(an absurd thread count reached libgomp, which aborted allocating the
threads) run in a child interpreter, so a regression fails a test instead of
killing the run.
"""
import os
import subprocess
import sys
import threading

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


def test_openmp_maximum_is_capped(tmp_path):
    """OMP_NUM_THREADS far above the cap: automatic calls use MAX_THREADS, and run."""
    out = _child("""
import numpy as np, fastsoftmax as fs
from fastsoftmax import _threads
print(fs.get_num_threads(), _threads.MAX_THREADS)
x = np.random.default_rng(0).standard_normal((64, 1024)).astype('f4')
np.testing.assert_array_equal(fs.softmax(x), fs.softmax(x, n_threads=1))
""", env={"OMP_NUM_THREADS": "100000"})
    threads, limit = map(int, out.split())
    assert threads == (limit if OPENMP else 1)


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
