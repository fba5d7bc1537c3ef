"""Reliability: fork safety, concurrency and the GIL, memory leaks, and (opt-in) arrays over 2**31.

Every public op runs in them (``CALLS``): the softmax family, cross_entropy, the
backward helpers and top_k.

- Fork: a process that ran threads then forks must give correct results in
  the child and never hang.  fastsoftmax's own executor starts the child with
  an empty pool, so the child keeps its threads; where calls run in OpenMP
  regions instead (libgomp deadlocks there, GCC bug 60035) the API makes a
  forked child run single-threaded.  Every wait has a timeout, so a hang fails
  the test instead of blocking CI.
- Concurrency: many Python threads calling at once get the same bits as one
  thread; the GIL is released while a kernel runs (a Python thread keeps
  running meanwhile, and two calling threads overlap in time).
- Leaks: 100k small calls, a few hundred large ones and calls that raise do not
  grow the resident set, nor the bytes malloc holds, between two rounds.
- Big arrays: one slice of more than 2**31 elements (opt-in:
  ``FASTSOFTMAX_TEST_BIG=1``; needs ~9 GB of free memory and about a minute).
"""
import ctypes
import ctypes.util
import math
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _threads
from conftest import CHUNK

# Seconds a forked child may take before the test calls it hung (it needs well under 1 s).
FORK_TIMEOUT = 60.0
# Whether the one-thread fork rule applies: only where calls run in OpenMP regions.
FORK_RULE = _threads._OPENMP_REGIONS


def _labels(x, axis):
    """Class labels for logits ``x`` with classes along ``axis``: the argmax, every 5th ignored."""
    labels = np.argmax(x, axis=axis)
    labels.flat[::5] = -100
    return labels


def _cross_entropy(x, axis, n_threads=None, out=None, **kw):
    """cross_entropy of ``x`` against :func:`_labels`: ``(gradient into out, per-sample losses)``."""
    loss, grad = fs.cross_entropy(x, _labels(x, axis), axis=axis, reduction="none",
                                  return_grad=True, grad_out=out, n_threads=n_threads, **kw)
    return grad, loss


def _backward(func):
    """A backward helper called as the forward ops are: ``x`` is both the incoming gradient
    and the forward output (any finite values are valid for both)."""
    def call(x, axis, n_threads=None, out=None):
        return func(x, x, axis, out=out, n_threads=n_threads)
    return call


def _top_k(x, axis, n_threads=None, out=None):
    """top_k's 5 largest as ``(values, indices)``.  top_k has no out=: given one (of the
    values' shape), the values are copied into it, so the out= rounds run it too."""
    values, indices = fs.top_k(x, 5, axis, n_threads=n_threads)
    if out is not None:
        out[...] = values
        values = out
    return values, indices


# (name, function, keyword arguments): every public op, called as
# function(x, axis, n_threads=..., out=..., **kw); the fork, concurrency, GIL
# and leak tests run each.  A function returns an array, or a tuple of arrays
# whose first is ``out``.
CALLS = [
    ("softmax", fs.softmax, {}),
    ("softmax_t", fs.softmax, {"temperature": 0.7}),
    ("log_softmax", fs.log_softmax, {}),
    ("logsumexp", fs.logsumexp, {}),
    ("cross_entropy", _cross_entropy, {}),
    ("cross_entropy_smoothed", _cross_entropy, {"label_smoothing": 0.1}),
    ("softmax_backward", _backward(fs.softmax_backward), {}),
    ("log_softmax_backward", _backward(fs.log_softmax_backward), {}),
    ("top_k", _top_k, {}),
]

OPENMP = _core.openmp_enabled()


def _inputs():
    """Arrays (and axes) big enough that n_threads=2 really opens a parallel region,
    one per way the work is split between threads."""
    rng = np.random.default_rng(42)
    return [
        (rng.standard_normal((64, 4096)).astype(np.float32) * 4, -1),   # many rows
        (rng.standard_normal((1, 3 * CHUNK + 17)) * 4, -1),               # one long row, split
        (rng.standard_normal((4000, 37)).astype(np.float32), 0),         # panel, split by columns
        (rng.standard_normal((9, 300, 40)), 1),                          # panel over slabs
    ]


def _compute_all(inputs, n_threads):
    return [func(x, axis, n_threads=n_threads, **kw)
            for x, axis in inputs for _, func, kw in CALLS]


def _arrays(results):
    """The arrays of a list of results, tuples (cross_entropy's) spread out."""
    return [a for r in results for a in (r if isinstance(r, tuple) else (r,))]


def _assert_same_bits(got, expected, what):
    got, expected = _arrays(got), _arrays(expected)
    assert len(got) == len(expected), what
    for i, (g, e) in enumerate(zip(got, expected)):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape, (what, i)
        assert g.tobytes() == e.tobytes(), f"{what}: result {i} differs from the expected bits"


# ---------------------------------------------------------------- fork

# Set before forking; the children inherit them (nothing big is pickled to them).
_FORK_INPUTS = None


def _child_task(n_threads):
    """Run in a forked Pool worker: every call on every input, and the thread count it sees."""
    return fs.get_num_threads(), _compute_all(_FORK_INPUTS, n_threads)


@pytest.fixture
def parent_used_threads():
    """The parent's results, computed with 2 OpenMP threads (so libgomp's pool exists)."""
    global _FORK_INPUTS
    _FORK_INPUTS = _inputs()
    expected = _compute_all(_FORK_INPUTS, 2)
    yield expected
    _FORK_INPUTS = None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork of a threaded process
def test_fork_pool_children_after_parent_used_threads(parent_used_threads):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:  # __exit__ terminates the workers, hung or not
        pending = pool.map_async(_child_task, [None, 2, -1, 1, 2, None])
        try:
            answers = pending.get(timeout=FORK_TIMEOUT)
        except multiprocessing.TimeoutError:
            pytest.fail(f"forked Pool workers hung for {FORK_TIMEOUT} s after the parent used "
                        "OpenMP threads (GCC bug 60035)")
    for threads, results in answers:
        if FORK_RULE:
            assert threads == 1, "a forked child must run single-threaded"
        else:
            assert threads == fs.get_num_threads(), "the executor's fork child keeps its threads"
        _assert_same_bits(results, parent_used_threads, "Pool child")
    # The parent still runs threaded and right after its children.
    _assert_same_bits(_compute_all(_FORK_INPUTS, 2), parent_used_threads, "parent after fork")
    if OPENMP and _core.max_threads() > 1:
        assert fs.get_num_threads() > 1


def _run_in_fork(body, timeout=FORK_TIMEOUT):
    """Run ``body()`` in a child made by os.fork(); return its pickled result or raise.

    The child sends ``(ok, payload)`` back through a pipe and leaves with
    os._exit.  A child that does not finish within `timeout` is killed and the
    test fails.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            try:
                message = (True, body())
            except BaseException:
                message = (False, traceback.format_exc())
                code = 1
            data = pickle.dumps(message)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    pytest.fail(f"os.fork() child hung for {timeout} s (GCC bug 60035?)")
                ready, _, _ = select.select([pipe], [], [], left)
                if ready:
                    chunk = os.read(pipe.fileno(), 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
    if not chunks:
        pytest.fail(f"os.fork() child died without an answer (wait status {status})")
    ok, payload = pickle.loads(b"".join(chunks))
    assert ok, f"os.fork() child raised:\n{payload}"
    assert os.waitstatus_to_exitcode(status) == 0
    return payload


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_raw_fork_child_after_parent_used_threads(parent_used_threads):
    def child():
        return (fs.get_num_threads(), _compute_all(_FORK_INPUTS, None),
                _compute_all(_FORK_INPUTS, 2))

    threads, automatic, explicit = _run_in_fork(child)
    assert threads == (1 if FORK_RULE else fs.get_num_threads())
    _assert_same_bits(automatic, parent_used_threads, "fork child, n_threads=None")
    _assert_same_bits(explicit, parent_used_threads, "fork child, n_threads=2")
    # A grandchild: forked from a forked child.
    grandchild = _run_in_fork(lambda: _run_in_fork(lambda: _compute_all(_FORK_INPUTS, 2)))
    _assert_same_bits(grandchild, parent_used_threads, "grandchild")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_while_another_thread_is_inside_a_parallel_kernel(parent_used_threads):
    """The child is born with libgomp's state mid-region: it must still finish."""
    big = np.random.default_rng(3).standard_normal((256, 8192)).astype(np.float32)
    stop = threading.Event()

    def keep_busy():
        while not stop.is_set():
            fs.softmax(big, n_threads=2)

    worker = threading.Thread(target=keep_busy, daemon=True)
    worker.start()
    try:
        for _ in range(5):
            time.sleep(0.01)
            results = _run_in_fork(lambda: _compute_all(_FORK_INPUTS, 2))
            _assert_same_bits(results, parent_used_threads, "child forked mid-kernel")
    finally:
        stop.set()
        worker.join(timeout=FORK_TIMEOUT)
    assert not worker.is_alive()


# A parent that ran OpenMP threads through another library, then forked; the
# child imports fastsoftmax only then (so no at-fork hook of ours ran).  The
# parent kills a child that does not answer within FORK_TIMEOUT and says so.
_FORK_BEFORE_IMPORT = """
import os, sys, signal, time
{parent_setup}
pid = os.fork()
if pid == 0:
    import numpy as np, fastsoftmax as fs
    x = np.random.default_rng(0).standard_normal((512, 8192)).astype("f4")
    p = fs.softmax(x, n_threads=2)
    assert np.array_equal(p, fs.softmax(x, n_threads=1))
    from fastsoftmax import _core
    print("child", fs.get_num_threads(), os.path.realpath(_core.openmp_runtime()[0]), flush=True)
    os._exit(0)
deadline = time.monotonic() + {timeout}
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("child hung", flush=True)
        sys.exit(3)
    time.sleep(0.05)
"""

# Another OpenMP user without PyTorch: libgomp driven through ctypes.
_CTYPES_OPENMP_PARENT = """
import ctypes
gomp = ctypes.CDLL("libgomp.so.1")
body = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: None)
gomp.GOMP_parallel.argtypes = [type(body), ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
gomp.GOMP_parallel(body, None, 2, 0)  # a parallel region on 2 threads: libgomp's pool exists
print("runtime", [line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line][0])
"""

_TORCH_OPENMP_PARENT = """
import torch
torch.set_num_threads(2)
a = torch.randn(256, 4096)
for _ in range(3):
    torch.softmax(a, -1).sum()
print("runtime", [line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line][0])
"""


def _fork_before_import(parent_setup):
    """Run the scenario; returns (child's thread count, whether it shares the parent's runtime)."""
    code = _FORK_BEFORE_IMPORT.format(parent_setup=parent_setup, timeout=FORK_TIMEOUT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=FORK_TIMEOUT + 60)
    assert "child hung" not in result.stdout, (
        "a child forked after another library ran OpenMP threads hung in fastsoftmax "
        "(GCC bug 60035)")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    threads, child_runtime = lines["child"].split(" ", 1)
    return int(threads), os.path.realpath(lines["runtime"]) == child_runtime


needs_libgomp = pytest.mark.skipif(
    not OPENMP or not sys.platform.startswith("linux") or ctypes.util.find_library("gomp") is None,
    reason="the fork hang is libgomp's (Linux, OpenMP build)")


@needs_libgomp
def test_fork_before_import_after_another_library_ran_openmp_threads():
    threads, shared = _fork_before_import(_CTYPES_OPENMP_PARENT)
    if shared and FORK_RULE:  # the same libgomp: its stale pool would hang a parallel region
        assert threads == 1


@needs_libgomp
def test_fork_before_import_after_torch_ran_openmp_threads():
    pytest.importorskip("torch")
    threads, shared = _fork_before_import(_TORCH_OPENMP_PARENT)
    if shared and FORK_RULE:
        assert threads == 1


_NEVER_RAN_THREADS = """
import os, sys, numpy as np, fastsoftmax as fs
from fastsoftmax import _core
print("parent", fs.get_num_threads(), _core.openmp_runtime_users(), flush=True)
x = np.random.default_rng(0).standard_normal((64, 4096)).astype("f4")
pid = os.fork()
if pid == 0:
    print("child", fs.get_num_threads(), flush=True)
    p = fs.softmax(x, n_threads=2)  # the child's own pool...
    pid = os.fork()
    if pid == 0:                    # ...makes its own children single-threaded (OpenMP regions)
        print("grandchild", fs.get_num_threads(), flush=True)
        assert np.array_equal(fs.softmax(x, n_threads=2), p)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not OPENMP or _core.max_threads() < 2, reason="needs OpenMP threads")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_of_a_process_that_never_ran_threads_keeps_them():
    result = subprocess.run([sys.executable, "-c", _NEVER_RAN_THREADS], capture_output=True,
                            text=True, timeout=FORK_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    parent_threads, runtime_users = map(int, lines["parent"].split())
    if runtime_users != 0:
        pytest.skip("another loaded library links the OpenMP runtime: children are held to "
                    "one thread, by design")
    assert int(lines["child"]) == parent_threads > 1
    assert int(lines["grandchild"]) == (1 if FORK_RULE else parent_threads)


def _threads_in_worker():
    return fs.get_num_threads()


@pytest.mark.skipif(not OPENMP or _core.max_threads() < 2, reason="needs OpenMP threads")
def test_forkserver_child_keeps_its_threads():
    """Python 3.14's default start method: the server never ran OpenMP threads."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fastsoftmax"])
    with ctx.Pool(1) as pool:
        threads = pool.apply_async(_threads_in_worker).get(timeout=FORK_TIMEOUT)
    assert threads == fs._threads._openmp_maximum()


# ---------------------------------------------------------------- threads and the GIL

def test_many_python_threads_at_once():
    """8 Python threads, 480 calls of every function on every split, with and without out=."""
    inputs = _inputs()
    rng = np.random.default_rng(5)
    jobs = []
    for i in range(240):
        x, axis = inputs[i % len(inputs)]
        _, func, kw = CALLS[(i // len(inputs)) % len(CALLS)]  # every op on every input
        jobs.append((x, axis, func, kw, [None, 1, 2, 3][rng.integers(4)], bool(rng.integers(2))))
    expected = [func(x, axis, n_threads=1, **kw) for x, axis, func, kw, _, _ in jobs]
    firsts = [e[0] if isinstance(e, tuple) else e for e in expected]
    shapes = [(np.shape(e), np.asarray(e).dtype) for e in firsts]

    def run(i):
        x, axis, func, kw, n_threads, use_out = jobs[i]
        out = np.empty(*shapes[i]) if use_out else None
        result = func(x, axis, n_threads=n_threads, out=out, **kw)
        assert out is None or (result[0] if isinstance(result, tuple) else result) is out
        return result

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(run, range(len(jobs))))
        _assert_same_bits(got, expected, "concurrent call")


@pytest.mark.parametrize("func,kw", [(func, kw) for _, func, kw in CALLS],
                         ids=[name for name, _, _ in CALLS])
def test_gil_is_released_while_a_kernel_runs(func, kw):
    """A pure-Python thread keeps making progress while another thread is inside a kernel.

    Were the GIL held, the Python thread would stall for the whole call, on
    every try.  With it released, the OS shares the CPU: on a loaded machine a
    try may still see the Python thread descheduled for a whole short call
    (top_k's takes a few ms), so it tries for up to 3 s, at least 5 times,
    before it calls the GIL held.
    """
    x = np.random.default_rng(7).standard_normal((64, 131072))  # 20-50 ms single-threaded
    # (no page faults in the call; logsumexp and top_k return fewer values than x holds)
    out = np.empty_like(x) if func not in (fs.logsumexp, _top_k) else None
    call = lambda: func(x, -1, n_threads=1, out=out, **kw)  # noqa: E731
    call()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        give_up = time.perf_counter() + 3.0
        tries = 0
        while tries < 5 or time.perf_counter() < give_up:
            tries += 1
            go, done, window, stamps = threading.Event(), threading.Event(), [], []

            def kernel_thread():
                go.wait()
                start = time.perf_counter()
                call()
                window.extend([start, time.perf_counter()])
                done.set()

            worker = threading.Thread(target=kernel_thread)
            worker.start()
            go.set()
            while not done.is_set():
                stamps.append(time.perf_counter())
                sum(range(50))  # pure Python work
            worker.join()
            start, end = window
            inside = [t for t in stamps if start < t < end]
            longest = float(np.diff([start] + inside + [end]).max())
            if longest < 0.5 * (end - start):
                return
    finally:
        sys.setswitchinterval(old_interval)
    pytest.fail(f"a Python thread stalled for {longest * 1e3:.1f} ms of a "
                f"{(end - start) * 1e3:.1f} ms kernel call in another thread "
                f"({len(inside)} steps inside; {tries} tries): GIL held?")


def test_kernel_calls_from_two_threads_interleave():
    """Short kernel calls in one thread complete while a long call runs in another.

    Were calls serialized (the GIL held, or a lock of ours or of the OpenMP
    runtime), no short call could start and finish inside the long one.  This
    checks that calls overlap, not that they speed up: a timing ratio would
    depend on the machine (two vCPUs that are SMT siblings share one core's
    FMA units, so two exp-bound calls there barely beat one), and it holds on
    one core too, where the OS shares the CPU between the two threads.
    """
    long_input = np.random.default_rng(8).standard_normal((64, 131072))  # 20-50 ms
    short_input = np.random.default_rng(9).standard_normal((8, 4096)).astype(np.float32)
    fs.logsumexp(long_input, n_threads=1)
    for _ in range(5):
        started, window, inside = threading.Event(), [], []

        def long_call():
            window.append(time.perf_counter())
            started.set()
            fs.logsumexp(long_input, n_threads=1)
            window.append(time.perf_counter())

        worker = threading.Thread(target=long_call)
        worker.start()
        started.wait()
        while worker.is_alive():
            begin = time.perf_counter()
            fs.softmax(short_input, n_threads=1)
            inside.append((begin, time.perf_counter()))
        worker.join()
        start, end = window
        completed_inside = [b for b, e in inside if start < b and e < end]
        if completed_inside:
            return
    pytest.fail(f"none of {len(inside)} short calls ran inside a {(end - start) * 1e3:.1f} ms "
                "call in another thread: calls are serialized (GIL or a lock held?)")


# ---------------------------------------------------------------- leaks

def _sanitized():
    """Running under AddressSanitizer (tools/sanitize.sh): its quarantine keeps freed memory."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use():
    """Bytes malloc has handed out and not got back (glibc's mallinfo2), or None."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def _calls_that_raise(x):
    bad = [
        lambda: fs.softmax(x, axis=5),
        lambda: fs.softmax(x, axis=1.5),
        lambda: fs.log_softmax(x, temperature=0.0),
        lambda: fs.log_softmax(x, temperature=math.nan),
        lambda: fs.logsumexp(x.astype(np.complex64)),
        lambda: fs.softmax(["a", "b"]),
        lambda: fs.softmax(x, out=np.empty(3, x.dtype)),
        lambda: fs.softmax(x, out=np.empty(x.shape, np.float64)),
        lambda: fs.logsumexp(x, out=[0.0]),
        lambda: fs.softmax(x, n_threads=0),
        lambda: fs.softmax(x, n_threads="2"),
        lambda: fs.cross_entropy(x, np.full(x.shape[0], x.shape[-1])),        # a label out of range
        lambda: fs.cross_entropy(x, np.zeros(x.shape[0], np.int64), reduction="avg"),
        lambda: fs.softmax_backward(x, x[:1]),                               # shapes differ
        lambda: fs.log_softmax_backward(x, x, out=np.empty(3, x.dtype)),
    ]
    for call in bad:
        try:
            call()
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError("a bad call did not raise")


def _leak_round(small_calls, large_calls):
    """`small_calls` calls on tiny arrays and ~6 * `large_calls` on 1-4 MB ones, some raising.

    Nearly all run on one thread: on a busy machine every parallel region can
    wait milliseconds for a CPU, and the leak this looks for does not need it.
    """
    rng = np.random.default_rng(8)
    small = [rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(10),
             np.arange(12, dtype=np.int16).reshape(3, 4), rng.standard_normal((3, 5)).T]
    out = np.empty((4, 8), np.float32)
    for i in range(small_calls // 10):
        x = small[i % len(small)]
        fs.softmax(x)
        fs.log_softmax(x, 0, temperature=2.0)
        fs.logsumexp(x)
        fs.logsumexp(x, None, keepdims=True)
        fs.softmax(small[0], out=out)
        fs.softmax(out, out=out)                                # in place
        fs.log_softmax(small[0], out=out, n_threads=1)
        fs.softmax([1.0, 2.0, 3.0])                             # a list: converted
        fs.logsumexp(np.float32(1.0), None)                     # 0-d: a NumPy scalar back
        fs.softmax(small[0], -1, temperature=0.5)
        if i % 10 == 0:  # every public op (cross_entropy, the backward helpers...)
            for _, func, kw in CALLS:
                func(small[0], -1, **kw)
        if i % 100 == 0:
            _calls_that_raise(small[0])
    large = rng.standard_normal((64, 16384)).astype(np.float32)
    long_row = rng.standard_normal((1, 48 * CHUNK + 5)).astype(np.float32)  # 49 chunks
    shared = rng.standard_normal(large.size + 32).astype(np.float32)
    behind, ahead = shared[:-32].reshape(large.shape), shared[32:].reshape(large.shape)
    for i in range(large_calls):
        fs.softmax(large, n_threads=1)                      # a fresh 4 MB output each time
        fs.log_softmax(large, 0, n_threads=1)               # the panel path
        fs.logsumexp(large[:, ::2], n_threads=1)            # a copy of the input first
        fs.log_softmax(behind, out=ahead, n_threads=1)      # partial overlap: a copy first
        fs.softmax(long_row, n_threads=2)                   # a row split across threads:
        fs.log_softmax(long_row, n_threads=2)               # its scratch is malloc'd and freed
        fs.logsumexp(long_row, n_threads=2)
        if i % 10 == 0:
            fs.softmax(large, n_threads=2)
            _calls_that_raise(large)
            for _, func, kw in CALLS:
                func(large, -1, n_threads=1, **kw)


# Growth allowed between the two rounds.  A leaked output of the large calls
# would be ~1 GB, a leaked small result ~10 MB, a leaked long-row scratch ~0.12 MB
# (malloc'd bytes vary by ~2 KB between rounds).
RSS_SLACK = 8 << 20
MALLOC_SLACK = 64 << 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.skipif(_sanitized(), reason="under ASan (tools/sanitize.sh): its quarantine holds "
                    "on to freed memory")
def test_repeated_calls_do_not_leak():
    small_calls, large_calls = 100_000, 60  # ~450 large calls a round
    _leak_round(small_calls, large_calls)  # warm up: caches, pools, arenas, malloc's thresholds
    rss_before, malloc_before = _rss_bytes(), _malloc_in_use()
    _leak_round(small_calls, large_calls)
    rss_after, malloc_after = _rss_bytes(), _malloc_in_use()
    grew = rss_after - rss_before
    assert grew < RSS_SLACK, f"RSS grew by {grew / 2**20:.1f} MiB over a round of calls"
    if malloc_before is not None:
        held = malloc_after - malloc_before
        assert held < MALLOC_SLACK, f"malloc holds {held / 2**10:.0f} KiB more after a round"


# ---------------------------------------------------------------- big arrays

def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


BIG_N = 2**31 + 2**20 + 5  # float32: 8.6 GB per array


@pytest.mark.skipif(os.environ.get("FASTSOFTMAX_TEST_BIG") != "1",
                    reason="opt-in: FASTSOFTMAX_TEST_BIG=1 (needs ~9 GB of free memory, ~1 min)")
def test_one_slice_longer_than_2_31():
    """softmax, log_softmax and logsumexp of a float32 row of 2**31 + 2**20 + 5 elements.

    The row is 0 except at a few places (around 2**31, and the very last
    element holds the max), each worth log(n) + c so that every one of them
    carries a large share of the sum: a kernel that indexed with 32 bits, or
    stopped early, would get the sum and those entries visibly wrong.  The
    zeros come from calloc, so the input costs no memory; the output does.
    """
    n = BIG_N
    available = _mem_available()
    if available is not None and available < n * 4 + (1 << 30):
        pytest.skip(f"needs {(n * 4 + (1 << 30)) / 2**30:.1f} GiB available, "
                    f"have {available / 2**30:.1f}")
    import resource

    specials = {0: 0.0, 2**31 - 1: 1.0, 2**31: -1.0, 2**31 + 1: 0.5, n - 2: -2.0, n - 1: 2.0}
    x = np.zeros(n, np.float32)
    log_n = math.log(n)
    for i, c in specials.items():
        x[i] = np.float32(log_n + c)
    values = {i: float(x[i]) for i in specials}
    m = max(values.values())
    total = (n - len(values)) * math.exp(-m) + sum(math.exp(v - m) for v in values.values())
    lse = m + math.log(total)
    p_zero = math.exp(-m) / total
    timings = {}

    def timed(name, func):
        start = time.perf_counter()
        result = func()
        timings[name] = time.perf_counter() - start
        return result

    def check_softmax_output(out, what):
        for i, v in values.items():
            np.testing.assert_allclose(out[i], math.exp(v - m) / total, rtol=5e-6, err_msg=what)
        assert out[5] == out[n - 3], what
        np.testing.assert_allclose(out[5], p_zero, rtol=5e-6, err_msg=what)
        step = 1 << 27  # every element: the zeros' outputs are all the same bits
        for start in range(0, n, step):
            block = out[start:start + step]
            bad = np.flatnonzero(block != out[5])
            wrong = {start + int(b) for b in bad} - set(values)
            assert not wrong, f"{what}: wrong at {sorted(wrong)[:5]}"
        s = float(np.sum(out, dtype=np.float64))
        assert abs(s - 1.0) < 1e-5, f"{what}: sums to {s!r}"

    np.testing.assert_allclose(timed("logsumexp (2 threads)", lambda: fs.logsumexp(x)), lse,
                               rtol=1e-6)
    np.testing.assert_allclose(timed("logsumexp (1 thread)",
                                     lambda: fs.logsumexp(x, n_threads=1)), lse, rtol=1e-6)
    out = timed("softmax (2 threads, fresh output)", lambda: fs.softmax(x))
    check_softmax_output(out, "softmax, threads")
    timed("softmax (1 thread, out=)", lambda: fs.softmax(x, out=out, n_threads=1))
    check_softmax_output(out, "softmax, 1 thread")
    timed("log_softmax (2 threads, out=)", lambda: fs.log_softmax(x, out=out))
    for i, v in values.items():
        np.testing.assert_allclose(out[i], v - lse, rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose(out[7], -lse, rtol=1e-6)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report = ", ".join(f"{name} {t:.1f} s" for name, t in timings.items())
    print(f"\nbig-array test, n = {n}: {report}; peak RSS {peak / 2**30:.2f} GiB")
