"""Every op at the row lengths where the kernels change blocks, from the kernels' own sizes.

``fastsoftmax._core.kernel_info()`` reports each ISA's block sizes per dtype
(lanes per vector, vectors per unrolled step, steps per flush into double,
the short-row limit, the row length from which log_softmax sums in float
blocks, the chunk of a long row), read from the C constants.
The row lengths here are each block size and its neighbours, so a change of
vector width or unroll is tested where it matters without editing this file.
Rows of twice the chunk also take the path that splits one row across
threads (when there are fewer rows than threads), which must give the same
bits as one thread: the checks run with 2 and 3 threads.
"""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from conftest import CHUNK, check_log_softmax, check_logsumexp, check_softmax, random_logits
from test_cross_entropy import check_against_reference

INFO = _core.kernel_info()
DTYPES = [np.float32, np.float64]
BACKWARD_TOL = {np.float32: 2e-6, np.float64: 1e-13}
# Thread counts whose results must equal one thread's bits: 3 > the 2 rows of
# the longest cases, so their rows are split across threads in chunks.
THREADS = (2, 3)


def _block_lengths(sizes):
    """Each block size of one ISA and dtype, and its neighbours."""
    lanes, unroll, flush = sizes["lanes"], sizes["unroll"], sizes["flush_steps"]
    blocks = [lanes, unroll * lanes, unroll * flush * lanes, sizes["short_row"],
              sizes["short_softmax_row"], sizes["short_log_row"], sizes["short_logsumexp_row"],
              sizes["blocked_log_sum_from"], sizes["pipelined_from"],
              sizes["log_pipelined_from"], sizes["chunk"],
              2 * sizes["chunk"], sizes["walks_back_from"]]
    return sorted({n for block in blocks for n in (block - 1, block, block + 1) if n >= 1})


CASES = [(isa, dtype, n) for isa in INFO for dtype in DTYPES
         for n in _block_lengths(INFO[isa][np.dtype(dtype).name])]


@pytest.fixture
def on_isa(request):
    previous = _core.isa()
    yield lambda name: _core.set_isa(name)
    _core.set_isa(previous)


def test_set_isa_takes_only_the_names_it_lists(on_isa):
    """The developer switch: None is a TypeError, a name cut by a NUL a ValueError (C read
    "avx2\0junk" as avx2), another spelling False (audit, 2026-12-06)."""
    with pytest.raises(TypeError):
        _core.set_isa(None)
    with pytest.raises(ValueError, match="NUL"):
        _core.set_isa(_core.isa() + "\0junk")
    assert _core.set_isa(_core.isa().upper()) is False
    for name in _core.available_isas():
        assert on_isa(name) is True and _core.isa() == name


def test_kernel_info_describes_every_isa():
    assert set(INFO) == set(_core.available_isas())
    for isa, per_dtype in INFO.items():
        assert set(per_dtype) == {"float32", "float64", "float16", "bfloat16"}
        # the 16-bit inputs are computed in float32, by its blocks
        assert per_dtype["float16"] == per_dtype["bfloat16"] == per_dtype["float32"]
        for dtype, sizes in per_dtype.items():
            assert set(sizes) == {"lanes", "unroll", "flush_steps", "short_row",
                                  "short_softmax_row", "short_log_row", "short_logsumexp_row",
                                  "chunk",
                                  "blocked_log_sum_from", "stream_scratch",
                                  "stream_row_scratch", "stream_grad_from", "stream_rows_from",
                                  "pipelined_from",
                                  "log_pipelined_from",
                                  "pipelined_to", "pipelined_deep_to", "walks_back_from"}
            assert all(isinstance(v, int) and v >= 1 for v in sizes.values()), (isa, dtype)
        # float lanes are half as wide as double's, except one-lane plain C
        assert per_dtype["float32"]["lanes"] in (1, 2 * per_dtype["float64"]["lanes"])


def _rows_for(n, lanes):
    """Several groups of short rows (one row per lane), a few rows otherwise."""
    return 2 * lanes + 3 if n <= 64 else (2 if n <= 40000 else 1)


@pytest.mark.parametrize("isa,dtype,n", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_softmax_family(on_isa, isa, dtype, n):
    assert on_isa(isa)
    x = random_logits((_rows_for(n, INFO[isa][np.dtype(dtype).name]["lanes"]), n), dtype, seed=n)
    where = np.random.default_rng(n).random(x.shape) < 0.8
    for kwargs in ({}, {"where": where}):
        sm, ls = fs.softmax(x, **kwargs), fs.log_softmax(x, temperature=0.7, **kwargs)
        lse = fs.logsumexp(x, **kwargs)
        check_softmax(sm, x, **kwargs)
        check_log_softmax(ls, x, temperature=0.7, **kwargs)
        check_logsumexp(lse, x, **kwargs)
        for threads in THREADS:
            with fs.num_threads(threads):
                np.testing.assert_array_equal(fs.softmax(x, **kwargs), sm)
                np.testing.assert_array_equal(fs.log_softmax(x, temperature=0.7, **kwargs), ls)
                np.testing.assert_array_equal(fs.logsumexp(x, **kwargs), lse)


def _placed(a, offset):
    """A C-contiguous copy of `a` whose first element lies `offset` bytes past a 64-byte line."""
    raw = np.empty(a.nbytes + 128, np.uint8)
    start = (offset - raw.ctypes.data) % 64
    copy = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    copy[...] = a
    return copy


@pytest.mark.parametrize("isa,dtype", [(isa, dtype) for isa in INFO for dtype in DTYPES],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_rows_walked_back(on_isa, isa, dtype):
    """Rows walked alone from `walks_back_from` elements on take their max pass and their last
    pass from the row's end back (FS_WALK_BACK_FROM_BYTES).  Every way the last pass splits
    a row (a head before out's first aligned vector, whole vectors, a tail; out at x's offset
    or not, so the partial vectors come from x or from out), in place, masked, with a
    temperature, and 16-bit results: the values of the reference and the bits of the same
    row split across threads, whose chunks walk forward."""
    assert on_isa(isa)
    sizes = INFO[isa][np.dtype(dtype).name]
    start, lanes, size = sizes["walks_back_from"], sizes["lanes"], np.dtype(dtype).itemsize
    for n in (start - 1, start, start + lanes + 1):
        x = random_logits((1, n), dtype, seed=n)
        where = np.random.default_rng(n).random(x.shape) < 0.9
        for x_offset, out_offset in ((0, 0), (size, 3 * size), (48, 16)):
            xs = _placed(x, x_offset)
            for op, check, kw in ((fs.softmax, check_softmax, {}),
                                  (fs.log_softmax, check_log_softmax, {"temperature": 0.7}),
                                  (fs.softmax, check_softmax, {"where": where}),
                                  (fs.log_softmax, check_log_softmax, {"where": where})):
                got = op(xs, out=_placed(np.full_like(x, np.nan), out_offset), n_threads=1,
                         **kw)
                check(got, x, **kw)
                np.testing.assert_array_equal(op(xs, n_threads=2, **kw), got)
                in_place = _placed(x, x_offset)
                op(in_place, out=in_place, n_threads=1, **kw)
                np.testing.assert_array_equal(in_place, got)
            # the max pass's partial vectors: the max in the head, the tail, or between
            for at in (0, lanes - 1, n // 2, n - 1):
                peaked = xs.copy() if x_offset == 0 else _placed(x, x_offset)
                peaked[0, at] = 40.0
                for op, check in ((fs.softmax, check_softmax), (fs.log_softmax, check_log_softmax)):
                    got = op(peaked, n_threads=1)
                    check(got, peaked)
                    np.testing.assert_array_equal(op(peaked, n_threads=2), got)
    if dtype == np.float32:  # 16-bit results recompute each exponential in the last pass
        x16 = random_logits((1, start + 5), np.float16)
        for op in (fs.softmax, fs.log_softmax):
            np.testing.assert_array_equal(op(x16, n_threads=1), op(x16, n_threads=2))


@pytest.mark.parametrize("isa,dtype", [(isa, dtype) for isa in INFO for dtype in DTYPES],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_cross_entropy_rows_walked_back(on_isa, isa, dtype):
    """cross_entropy's rows walked alone from `walks_back_from` elements on take their max pass
    from the row's end back: the reference's values and the bits of the same row split
    across threads, whose chunks walk forward, for the label in the first vector, the last
    (partial) one or between, every kind of target, the gradient at any offset from a
    cache line and in place."""
    assert on_isa(isa)
    sizes = INFO[isa][np.dtype(dtype).name]
    start, lanes, size = sizes["walks_back_from"], sizes["lanes"], np.dtype(dtype).itemsize
    for n in (start - 1, start, start + lanes + 1):
        rng = np.random.default_rng(n)
        x = random_logits((1, n), dtype, seed=n)
        weight = (rng.random(n) + 0.5).astype(dtype)
        probabilities = reference.softmax(rng.standard_normal((1, n)), axis=-1).astype(dtype)
        for label in (0, lanes - 1, n // 2, n - 1):
            labels = np.array([label])
            for target, kw in ((labels, {}), (labels, {"weight": weight, "label_smoothing": 0.1}),
                               (probabilities, {})):
                check_against_reference(x, target, -1, reduction="none", **kw)
                for x_offset, grad_offset in ((0, 0), (size, 3 * size), (48, 16)):
                    xs = _placed(x, x_offset)
                    grad = _placed(np.full_like(x, np.nan), grad_offset)
                    loss = fs.cross_entropy(xs, target, reduction="none", return_grad=True,
                                            grad_out=grad, n_threads=1, **kw)[0]
                    loss2, grad2 = fs.cross_entropy(xs, target, reduction="none",
                                                    return_grad=True, n_threads=2, **kw)
                    np.testing.assert_array_equal(loss2, loss)
                    np.testing.assert_array_equal(grad2, grad)
                    np.testing.assert_array_equal(
                        fs.cross_entropy(xs, target, reduction="none", n_threads=1, **kw), loss)
                    in_place = _placed(x, x_offset)
                    fs.cross_entropy(in_place, target, reduction="none", return_grad=True,
                                     grad_out=in_place, n_threads=1, **kw)
                    np.testing.assert_array_equal(in_place, grad)


@pytest.mark.parametrize("isa,dtype,n", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_cross_entropy(on_isa, isa, dtype, n):
    assert on_isa(isa)
    rows = _rows_for(n, INFO[isa][np.dtype(dtype).name]["lanes"])
    rng = np.random.default_rng(n)
    logits = random_logits((rows, n), dtype, seed=n)
    labels = rng.integers(0, n, rows)
    labels[::3] = -100
    probabilities = reference.softmax(rng.standard_normal((rows, n)), axis=-1).astype(dtype)
    weight = (rng.random(n) + 0.5).astype(dtype)
    check_against_reference(logits, labels, -1, weight=weight, label_smoothing=0.1,
                            reduction="none")
    check_against_reference(logits, probabilities, -1, reduction="sum")
    for target, kwargs in ((labels, {"weight": weight, "label_smoothing": 0.1}),
                           (probabilities, {})):
        loss, grad = fs.cross_entropy(logits, target, reduction="none", return_grad=True,
                                      **kwargs)
        for threads in THREADS:
            with fs.num_threads(threads):
                loss2, grad2 = fs.cross_entropy(logits, target, reduction="none",
                                                return_grad=True, **kwargs)
            np.testing.assert_array_equal(loss2, loss)
            np.testing.assert_array_equal(grad2, grad)


@pytest.mark.parametrize("isa,dtype,n", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("log", [False, True])
def test_backward(on_isa, isa, dtype, n, log):
    assert on_isa(isa)
    rows = _rows_for(n, INFO[isa][np.dtype(dtype).name]["lanes"])
    x = random_logits((rows, n), dtype, seed=n)
    y = (fs.log_softmax if log else fs.softmax)(x)
    g = random_logits((rows, n), dtype, seed=n + 1, scale=1.0)
    func = fs.log_softmax_backward if log else fs.softmax_backward
    ref = (reference.log_softmax_backward if log else reference.softmax_backward)(g, y)
    got = func(g, y)
    assert got.dtype == dtype
    # Entries are differences of like-sized terms: compared on the scale of the slice.
    scale = np.abs(g).max() * (1 + np.abs(ref).max())
    np.testing.assert_allclose(got, ref, rtol=BACKWARD_TOL[dtype], atol=BACKWARD_TOL[dtype] * scale)
    for threads in THREADS:
        with fs.num_threads(threads):
            np.testing.assert_array_equal(func(g, y), got)


# ---- one long row split across threads: every cross_entropy option, in place too

LONG_ROWS = [(rows, n) for rows in (1, 2) for n in (2 * CHUNK, 3 * CHUNK + 17)]


def _long_row_cases(dtype, rows, n):
    """(name, target, keyword arguments) for cross_entropy on `rows` rows of n classes."""
    rng = np.random.default_rng(n + rows)
    labels = rng.integers(0, n, rows)
    weight = (rng.random(n) + 0.5).astype(dtype)
    inf_weight = weight.copy()
    inf_weight[labels[0]] = np.inf  # a non-finite weighted sum: summed class by class
    probabilities = reference.softmax(rng.standard_normal((rows, n)), axis=-1).astype(dtype)
    ignored = labels.copy()
    ignored[-1] = -100
    return [
        ("labels", labels, {}),
        ("ignored", ignored, {"weight": weight}),
        ("smoothed", labels, {"weight": weight, "label_smoothing": 0.1}),
        ("inf weight", labels, {"weight": inf_weight, "label_smoothing": 0.2}),
        ("probabilities", probabilities, {"weight": weight, "label_smoothing": 0.05}),
    ]


@pytest.mark.parametrize("isa", list(INFO))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rows,n", LONG_ROWS)
def test_cross_entropy_long_rows_split_across_threads(on_isa, isa, dtype, rows, n):
    """Fewer rows than threads: each row's chunks run on several threads (fs_long_rows_tmpl.h)."""
    assert on_isa(isa)
    logits = random_logits((rows, n), dtype, seed=n)
    for name, target, kwargs in _long_row_cases(dtype, rows, n):
        with np.errstate(invalid="ignore", over="ignore"):
            if name != "inf weight":
                check_against_reference(logits, target, -1, reduction="none", **kwargs)
            loss, grad = fs.cross_entropy(logits, target, reduction="none", return_grad=True,
                                          n_threads=1, **kwargs)
            for threads in (2, 3, 4):
                loss2, grad2 = fs.cross_entropy(logits, target, reduction="none",
                                                return_grad=True, n_threads=threads, **kwargs)
                np.testing.assert_array_equal(loss2, loss, err_msg=f"{name}, {threads} threads")
                np.testing.assert_array_equal(grad2, grad, err_msg=f"{name}, {threads} threads")
                # the gradient written over the logits: every read comes before the writes
                buffer = logits.copy()
                loss3, grad3 = fs.cross_entropy(buffer, target, reduction="none",
                                                return_grad=True, grad_out=buffer,
                                                n_threads=threads, **kwargs)
                assert grad3 is buffer
                np.testing.assert_array_equal(loss3, loss, err_msg=f"{name} in place")
                np.testing.assert_array_equal(grad3, grad, err_msg=f"{name} in place")


@pytest.mark.parametrize("isa", list(INFO))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rows,n", LONG_ROWS)
@pytest.mark.parametrize("log", [False, True])
def test_backward_long_rows_split_across_threads(on_isa, isa, dtype, rows, n, log):
    assert on_isa(isa)
    x = random_logits((rows, n), dtype, seed=n)
    y = (fs.log_softmax if log else fs.softmax)(x)
    g = random_logits((rows, n), dtype, seed=n + 1, scale=1.0)
    func = fs.log_softmax_backward if log else fs.softmax_backward
    expected = func(g, y, n_threads=1)
    for threads in (2, 3, 4):
        np.testing.assert_array_equal(func(g, y, n_threads=threads), expected)
        # in place over either input: every sum is taken before the first write
        g_in_place, y_in_place = g.copy(), y.copy()
        np.testing.assert_array_equal(func(g_in_place, y, out=g_in_place, n_threads=threads),
                                      expected)
        np.testing.assert_array_equal(func(g, y_in_place, out=y_in_place, n_threads=threads),
                                      expected)
