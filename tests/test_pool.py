"""The output pool: large fresh results reuse dead results' memory, never a live array's."""
import gc
import os
import pickle
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _pool

MB = 1 << 20
X = np.random.default_rng(3).standard_normal((64, 8192)).astype(np.float32)  # 2 MB


@pytest.fixture(autouse=True)
def default_pool():
    fs.set_output_pool()
    _core.forget_pool()
    yield
    fs.set_output_pool()
    _core.forget_pool()


def _idle_bytes():
    return _core.pool_state()[0]


def _fresh_results():
    """One fresh result of each function that allocates a large one, and its expected value."""
    labels = np.arange(64) % 8192
    y = fs.softmax(X, out=np.empty_like(X))
    return [
        (lambda: fs.softmax(X), y),
        (lambda: fs.log_softmax(X), fs.log_softmax(X, out=np.empty_like(X))),
        (lambda: fs.cross_entropy(X, labels, return_grad=True)[1],
         fs.cross_entropy(X, labels, return_grad=True, grad_out=np.empty_like(X))[1]),
        (lambda: fs.softmax_backward(X, y), fs.softmax_backward(X, y, out=np.empty_like(X))),
        (lambda: fs.softmax(X, dtype=np.float64), fs.softmax(X, dtype=np.float64,
                                                             out=np.empty(X.shape))),
    ]


def test_results_are_plain_writeable_arrays_from_the_pool():
    for make, expected in _fresh_results():
        got = make()
        assert type(got) is np.ndarray and got.flags.c_contiguous and got.flags.writeable
        assert got.ctypes.data % 64 == 0
        np.testing.assert_array_equal(got, expected)
        del got
        assert _idle_bytes() > 0  # its block went back
        again = make()  # ... and is taken again
        np.testing.assert_array_equal(again, expected)


def test_results_start_at_their_inputs_offset_in_a_page():
    """A pooled result starts on the cache line half a page from where its input does in a
    4 KB page (or just before), new block or reused, whatever the input's offset: no 4 KB
    aliasing between their streams, and whole vector stores."""
    raw = np.empty(X.nbytes + 4096, np.uint8)
    for offset in (0, 16, 48, 64, 1000, 2064, 4080):
        start = (offset - raw.ctypes.data) % 4096
        x = raw[start:start + X.nbytes].view(X.dtype).reshape(X.shape)
        x[...] = X
        for make in (lambda: fs.softmax(x), lambda: fs.log_softmax(x),
                     lambda: fs.cross_entropy(x, np.zeros(len(x), np.int64), return_grad=True)[1],
                     lambda: fs.softmax_backward(x, x)):
            for _ in range(2):  # a new block, then (returned to the pool) a reused one
                got = make()
                assert got.ctypes.data % 4096 == (offset + 2048) % 4096 // 64 * 64, offset
                del got
                gc.collect()
    # with no input to follow (a loss array, say), a block starts on a cache line
    assert np.frombuffer(_core.take_block(2 * MB), np.uint8).ctypes.data % 64 == 0


def test_a_reused_block_never_holds_a_live_array():
    live = []
    for round_ in range(6):
        for make, expected in _fresh_results():
            result = make()
            for other in live:
                assert not np.shares_memory(result, other)
            np.testing.assert_array_equal(result, expected)
            if round_ % 2:  # a view keeps the block as much as the array does
                live.append(result[1:, ::2])
                live.append(result[:1].reshape(-1))
            del result
    # every live view still holds its own values
    for other in live:
        assert np.isfinite(other).all()


def _base_chain(array):
    """Every object an array's memory hangs on: its base, the base's base, and so on."""
    chain, obj = [], array
    while getattr(obj, "base", None) is not None:
        obj = obj.base
        chain.append(obj)
    return chain


@pytest.mark.parametrize("bound", [None, 0])
def test_nothing_reachable_from_a_result_hands_its_block_back(bound):
    """A result's block goes back only when the result and its views are gone.  Made with
    np.frombuffer(memoryview(block)), the result's base had been a memoryview: its
    release() gave the block back at once (the next result shared the memory), or, with
    the pool off, freed it under the live array (a read then crashed)."""
    x = np.random.default_rng(0).random((512, 1024))
    p = fs.softmax(x)  # 4 MB: pooled
    expected = p.copy()
    if bound is not None:
        fs.set_output_pool(bound)  # a block handed back now would be freed
    chain = _base_chain(p)
    assert isinstance(chain[-1], _core.PooledBlock)
    assert not any(isinstance(obj, memoryview) for obj in chain)
    for obj in chain:
        release = getattr(obj, "release", None)
        if release is not None:
            release()
    q = fs.softmax(2 * x)
    assert not np.shares_memory(p, q)
    np.testing.assert_array_equal(p, expected)


def test_results_alive_at_once_are_all_distinct():
    results = [fs.softmax(X) for _ in range(10)]
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            assert not np.shares_memory(a, b)
    expected = fs.softmax(X, out=np.empty_like(X))
    for a in results:
        np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("bound", [0, 1 * MB, 5 * MB, 64 * MB])
def test_the_bound_holds(bound):
    fs.set_output_pool(bound)
    results = [fs.softmax(X) for _ in range(40)]  # 80 MB alive
    del results
    gc.collect()
    assert _idle_bytes() <= bound
    if bound == 0:
        assert fs.softmax(X).base is None  # the pool is off: plain np.empty
    fs.set_output_pool(1 * MB)  # lowering the bound frees the blocks beyond it now
    assert _idle_bytes() <= 1 * MB


def test_the_default_bound_keeps_two_blocks_of_a_large_size():
    size = (_pool.DEFAULT_MAX_BYTES // 4) * 3  # 192 MB each: two exceed 256 MB
    a = np.frombuffer(_core.take_block(size), np.uint8)
    b = np.frombuffer(_core.take_block(size), np.uint8)
    c = np.frombuffer(_core.take_block(size), np.uint8)
    del a, b, c
    assert _idle_bytes() == 2 * size


def test_a_new_shape_evicts_an_earlier_larger_one():
    """Idle blocks of an earlier, larger shape make room: the new shape's blocks are kept."""
    big = [np.frombuffer(_core.take_block(130 * MB), np.uint8) for _ in range(2)]
    del big  # two blocks of one size: kept, 260 MB
    assert _core.pool_state()[:2] == (260 * MB, 2)
    first = fs.softmax(X)  # 2 MB: too small for them, and no room beside them
    address = first.ctypes.data
    del first
    assert _core.pool_state()[:2] == (132 * MB, 2)  # the oldest big block went
    again = fs.softmax(X)
    assert again.ctypes.data == address  # the small block was kept, and is reused


def test_small_results_do_not_use_the_pool():
    small = fs.softmax(np.ones((4, 16)))
    assert small.base is None and _idle_bytes() == 0


def test_rss_stays_flat_over_1000_calls():
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("reads RSS from /proc")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    labels = np.arange(64)
    for _ in range(20):  # warm up: the blocks this loop needs are in the pool
        fs.softmax(X)
        fs.cross_entropy(X, labels, return_grad=True)
    before = rss()
    for _ in range(1000):
        fs.softmax(X)
        fs.cross_entropy(X, labels, return_grad=True)
    assert rss() - before < 16 * MB


def _page_flags(array):
    """The kernel's flags (smaps VmFlags) on the page two pages into ``array``'s data: a
    whole page of it (advice covers whole pages only), or None without smaps."""
    address = array.__array_interface__["data"][0] + 2 * os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/proc/self/smaps") as smaps:
            inside = False
            for line in smaps:
                first = line.split(maxsplit=1)[0]
                if "-" in first and not first.endswith(":"):
                    low, high = (int(bound, 16) for bound in first.split("-"))
                    inside = low <= address < high
                elif inside and first == "VmFlags:":
                    return set(line.split()[1:])
    except OSError:
        pass
    return None


def _numpy_huge_page_switch():
    try:
        from numpy._core.multiarray import _set_madvise_hugepage as switch
    except ImportError:
        try:  # NumPy 1
            from numpy.core.multiarray import _set_madvise_hugepage as switch
        except ImportError:
            pytest.skip("needs NumPy's huge-page switch")
    if _page_flags(np.empty(8 * MB, np.uint8)) is None:
        pytest.skip("needs Linux's /proc/self/smaps")
    return switch


def test_new_blocks_get_numpys_huge_page_advice():
    """A pooled result of 4 MB or more sits on pages advised as NumPy advises its own
    arrays of that size: huge pages (MADV_HUGEPAGE, 'hg' in smaps), unless NumPy's switch
    is off."""
    switch = _numpy_huge_page_switch()
    before = switch(True)
    try:
        if "hg" not in _page_flags(np.empty(8 * MB, np.uint8)):
            pytest.skip("this kernel takes no huge-page advice")
        # 40 MB: past glibc's largest mmap threshold, so each block is new mapped memory,
        # never heap pages that earlier advice (NumPy's) covers already.
        x = np.ones((64, 163840), np.float32)
        for make in (lambda: fs.softmax(x), lambda: fs.log_softmax(x, dtype=np.float64),
                     lambda: fs.cross_entropy(x, np.zeros(64, np.int64), return_grad=True)[1]):
            result = make()
            assert result.base is not None  # pooled
            assert "hg" in _page_flags(result)
        switch(False)
        assert not _pool._numpy_advises_huge_pages()
        switch(True)
        assert _pool._numpy_advises_huge_pages()
    finally:
        switch(before)


def test_threads_take_and_return_blocks_at_once():
    expected = fs.softmax(X, out=np.empty_like(X))
    errors = []

    def work():
        try:
            kept = []
            for i in range(50):
                result = fs.softmax(X, n_threads=1)
                if not np.array_equal(result, expected):
                    errors.append("wrong values")
                if i % 5 == 0:
                    kept.append(result)
            for i, a in enumerate(kept):
                if not np.array_equal(a, expected):
                    errors.append("a kept result was overwritten")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_pooled_result_pickles_and_copies_as_any_array():
    result = fs.softmax(X)
    for copy in (pickle.loads(pickle.dumps(result)), result.copy(), np.array(result)):
        np.testing.assert_array_equal(copy, result)
        assert not np.shares_memory(copy, result)


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError),
                                          (True, TypeError), (-10**5000, ValueError),
                                          (-10**400, ValueError)],
                         ids=["-1", "1.5", "str", "True", "-10**5000", "-10**400"])
def test_bad_bounds(value, error):
    with pytest.raises(error, match="max_bytes") as raised:
        fs.set_output_pool(value)
    assert len(str(raised.value)) < 200  # an absurd int is described, not printed


_CHILD = """
import os, numpy as np, fastsoftmax as fs
from fastsoftmax import _core
x = np.ones((64, 8192), np.float32)
del_me = fs.softmax(x); del del_me
print("parent", _core.pool_state()[0] > 0, flush=True)
pid = os.fork()
if pid == 0:
    idle = _core.pool_state()[0]
    y = fs.softmax(x)
    os.write(1, f"child {idle} {bool(np.allclose(y, 1 / 8192))}\\n".encode())
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_an_empty_pool():
    result = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["parent True", "child 0 True"]


@pytest.mark.parametrize("value, pooled, warns", [("0", False, False), ("4194304", True, False),
                                                  ("lots", True, True)])
def test_the_environment_variable(value, pooled, warns):
    code = ("import warnings, numpy as np\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastsoftmax as fs\n"
            "print(fs.softmax(np.ones((64, 8192), np.float32)).base is not None, len(w) > 0)")
    env = dict(os.environ, FASTSOFTMAX_OUTPUT_POOL=value)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(pooled), str(warns)]


@pytest.mark.parametrize("value, configured, warns", [
    (None, (), False), ("  ", (), False), (" 12 ", (12,), False), ("+12", (12,), False),
    ("0", (0,), False), ("9" * 5000, (10**100,), False), ("1_000", (), True),
    ("\u0663", (), True), ("-5", (), True), ("1e3", (), True), ("x" * 5000, (), True),
    ("++5", (), True), ("+ 5", (), True)])
def test_byte_counts_from_the_environment(monkeypatch, value, configured, warns):
    """FASTSOFTMAX_OUTPUT_POOL's and FASTSOFTMAX_STREAM_MIN_BYTES's one reader: a 5000-digit
    number is a huge one (the setters cap it), not 'not a number'; a bad value is named
    in a warning cut short, never printed in full (audit, 2026-12-06)."""
    from fastsoftmax._messages import configure_from_environment
    if value is None:
        monkeypatch.delenv("FS_TEST_BYTES", raising=False)
    else:
        monkeypatch.setenv("FS_TEST_BYTES", value)
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure_from_environment("FS_TEST_BYTES", lambda *n: calls.append(n), "the default")
    assert calls == [configured]
    assert len(caught) == warns
    if warns:
        message = str(caught[0].message)
        assert message.startswith("FS_TEST_BYTES=") and message.endswith("the default is used")
        assert len(message) < 150


@pytest.mark.parametrize("case", ["short rows", "rows", "panels", "16-bit gradient",
                                  "sample weights"])
def test_cross_entropy_writes_every_pooled_loss(case):
    """cross_entropy's per-sample losses (1 MB or more) come from the pool unzeroed: the
    kernels write every one, 0 for an ignored label, over a block that held NaNs."""
    samples = 200_000  # 1.6 MB of float64 losses
    rng = np.random.default_rng(5)
    classes, shape, axis = {"short rows": (3, (samples, 3), -1), "rows": (40, (samples, 40), -1),
                            "panels": (3, (samples // 4, 3, 4), 1)}.get(case, (5, (samples, 5), -1))
    dtype = np.float16 if case == "16-bit gradient" else np.float64
    logits = rng.standard_normal(shape).astype(dtype)
    sample_shape = shape[:1] + shape[2:] if axis == 1 else shape[:1]
    labels = rng.integers(0, classes, sample_shape)
    labels[rng.random(sample_shape) < 0.3] = -100
    options = {"sample_weight": rng.random(sample_shape)} if case == "sample weights" else {}
    for _ in range(2):  # the first call may find the pool empty
        junk = fs.softmax(np.full(samples, np.nan))  # 1.6 MB of NaN, back in the pool below
        junk_at = junk.ctypes.data
        del junk
        gc.collect()
        loss, grad = fs.cross_entropy(logits, labels, axis=axis, reduction="none",
                                      return_grad=True, **options)
        if dtype == np.float64 and not options:  # the losses are the result: in junk's block
            assert abs(loss.ctypes.data - junk_at) < 4096  # (placed by the page: take_block)
        assert np.isfinite(loss).all() and (loss[labels == -100] == 0).all()
        want = fs.reference.cross_entropy(logits, labels, axis=axis, reduction="none", **options)
        np.testing.assert_allclose(loss, want, rtol=1e-2 if dtype == np.float16 else 1e-12)
