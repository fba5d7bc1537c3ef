"""Streaming stores: softmax, log_softmax and cross_entropy's gradient write large outputs
past the caches.

The last pass streams its whole cache lines (src/fs_softmax_tmpl.h's
last_pass_streamed from scratch rows, result_span_streamed from x, the pipelined
rows' side_streams, src/fs_cross_entropy_tmpl.h's ce_chunk_grad_apart;
FS_STREAM_OUTPUT in src/fs_kernels.h) when the input and output together take at least the threshold
(``fastsoftmax.set_stream_threshold``), and its results must be the ordinary pass's,
bit for bit.  These tests set the threshold to 0 so that small arrays take that path:
row lengths around each ISA's vector and unroll sizes, outputs at every element offset
from vector alignment and one not aligned to its element size, masks, temperatures,
non-finite values, long rows split across threads, 16-bit inputs, other axes and in
place.  Then the threshold's own API.
"""
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _stream
from conftest import CHUNK, VECTOR_BYTES, out_at, random_logits, streaming_every_call

DTYPES = [np.float32, np.float64]
OPS = [fs.softmax, fs.log_softmax]


@pytest.fixture
def streaming():
    """Every softmax and log_softmax call streams (where the kernels can); restored after."""
    with streaming_every_call():
        yield


def _ordinary(op, x, **kwargs):
    previous = _core.stream_min_bytes()
    _core.set_stream_min_bytes(sys.maxsize)
    try:
        return op(x, **kwargs)
    finally:
        _core.set_stream_min_bytes(previous)


def assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    mismatch = np.flatnonzero(got.reshape(-1).view(np.uint8) != want.reshape(-1).view(np.uint8))
    assert mismatch.size == 0, (
        f"{mismatch.size} bytes differ, first at byte {mismatch[0]}: "
        f"{got.reshape(-1)[mismatch[0] // got.itemsize]!r} != "
        f"{want.reshape(-1)[mismatch[0] // want.itemsize]!r}")


def _lengths(isa, dtype):
    """Row lengths on either side of the vector, the unrolled step, the flush block, the
    shortest row that streams (shorter ones take ordinary stores: the same bits) and the
    longest row whose softmax streams from a scratch row."""
    info = _core.kernel_info()[isa][np.dtype(dtype).name]
    lanes, step = info["lanes"], info["lanes"] * info["unroll"]
    block = step * info["flush_steps"]
    scratch = info["stream_scratch"]
    lengths = {info["short_row"] + 1, 2 * lanes - 1, 2 * lanes + 1, 3 * step, 3 * step + lanes - 1,
               block - 1, block + 1, 2 * block + lanes + 1, scratch - 1, scratch, scratch + 1,
               info["stream_rows_from"] - 1, info["stream_rows_from"],
               info["stream_rows_from"] + 1}
    return sorted(n for n in lengths if n > 0)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_rows_are_the_ordinary_bits(isa, dtype, op, streaming):
    """Every length, every element offset from vector alignment: the same bits."""
    itemsize = np.dtype(dtype).itemsize
    for n in _lengths(isa, dtype):
        for rows in (1, 3):
            x = random_logits((rows, n), dtype, seed=n + rows)
            want = _ordinary(op, x)
            for offset in range(0, VECTOR_BYTES + itemsize, itemsize):
                out = out_at(x.shape, dtype, offset)
                op(x, out=out)
                assert_same_bits(out, want)
            out = out_at(x.shape, dtype, 1)  # not aligned to its element size: no streaming
            op(x, out=out)
            assert_same_bits(out, want)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_with_mask_and_temperature(isa, dtype, op, streaming):
    rng = np.random.default_rng(5)
    for n in (_lengths(isa, dtype)[-1], 1000):
        x = random_logits((4, n), dtype, seed=n)
        where = rng.random(x.shape) < 0.7
        where[1] = False  # a row with nothing kept
        for kwargs in ({"where": where}, {"temperature": 0.7}, {"where": where[2],
                                                                  "temperature": 1.9}):
            want = _ordinary(op, x, **kwargs)
            for offset in (0, np.dtype(dtype).itemsize):
                out = out_at(x.shape, dtype, offset)
                op(x, out=out, **kwargs)
                assert_same_bits(out, want)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_rows_at_the_heap_scratch_bound(isa, dtype, op, streaming):
    """Rows walked alone up to kernel_info()'s stream_row_scratch keep their sum pass's values
    in a scratch row on the heap; longer ones take ordinary stores (log_softmax's stream
    from x).
    Either side of the bound, one row and two (each walked alone: longer than a chunk),
    masked, at a temperature, at outputs on and off a line and one not aligned to its
    element size: the same bits.  One thread: a single row would be split across threads."""
    bound = _core.kernel_info()[isa][np.dtype(dtype).name]["stream_row_scratch"]
    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(11)
    for n in (bound - 1, bound, bound + 1):
        x = random_logits((2, n), dtype, seed=n)
        x[1, n // 3] = np.inf if op is fs.softmax else -np.inf
        where = rng.random(n) < 0.8
        for rows, kwargs in ((1, {}), (2, {}), (1, {"where": where, "temperature": 0.6})):
            kwargs["n_threads"] = 1
            want = _ordinary(op, x[:rows], **kwargs)
            for offset in (0, 3 * itemsize, 1):
                out = out_at((rows, n), dtype, offset)
                with np.errstate(all="ignore"):
                    op(x[:rows], out=out, **kwargs)
                assert_same_bits(out, want)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [300, 1000])
def test_streamed_non_finite_rows(isa, dtype, op, n, streaming):
    """NaN, +inf and -inf rows give the ordinary pass's NaN, inf and zeros exactly."""
    x = random_logits((6, n), dtype, seed=2)
    x[0, 17] = np.nan
    x[1, 250] = np.inf
    x[2, :] = -np.inf
    x[3, ::3] = -np.inf
    x[4, 5] = np.finfo(dtype).max
    x[5, 7] = -np.finfo(dtype).max
    want = _ordinary(op, x)
    out = out_at(x.shape, dtype, 0)
    with np.errstate(all="ignore"):
        op(x, out=out)
    assert_same_bits(out, want)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_long_rows(dtype, op, n_threads, streaming):
    """Rows split across threads (fewer rows than threads) and whole rows per thread."""
    rng = np.random.default_rng(9)
    for shape in [(1, 2 * CHUNK + 5), (2, 3 * CHUNK - 1), (5, CHUNK + 3)]:
        x = random_logits(shape, dtype, seed=shape[1])
        where = rng.random(shape) < 0.9
        for kwargs in ({}, {"where": where, "temperature": 0.5}):
            want = _ordinary(op, x, n_threads=1, **kwargs)
            out = out_at(shape, dtype, 3 * np.dtype(dtype).itemsize)
            op(x, out=out, n_threads=n_threads, **kwargs)
            assert_same_bits(out, want)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
def test_streamed_16_bit_inputs(isa, op, streaming):
    """float16 logits: float32 results stream, float16 ones never do; both as ordinary."""
    x = random_logits((3, 777), np.float32, seed=4).astype(np.float16)
    want = _ordinary(op, x)
    assert_same_bits(op(x), want)
    want16 = _ordinary(op, x, out=np.empty(x.shape, np.float16))
    assert_same_bits(op(x, out=np.empty(x.shape, np.float16)), want16)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_other_axes(isa, dtype, op, streaming):
    """In place (never streamed) and panels (axis not last) are as without streaming."""
    x = random_logits((7, 5, 333), dtype, seed=8)
    for axis in (0, 1, -1):
        assert_same_bits(op(x, axis=axis), _ordinary(op, x, axis=axis))
    y = x.copy()
    op(y, out=y)
    assert_same_bits(y, _ordinary(op, x))


def test_fresh_outputs_stream_too(streaming):
    """Without out=, the pooled or new result is streamed into just the same."""
    x = random_logits((64, 5000), np.float32, seed=1)
    for _ in range(3):
        assert_same_bits(fs.softmax(x), _ordinary(fs.softmax, x))
        assert_same_bits(fs.log_softmax(x), _ordinary(fs.log_softmax, x))


# ---------------------------------------------------------------- the threshold


def test_threshold_default_is_three_quarters_of_the_cache_at_most_96_mb():
    fs.set_stream_threshold()
    cache = _stream.last_level_cache_bytes()
    expected = min(cache * 3 // 4, 96 << 20) if cache else 96 << 20
    assert _core.stream_min_bytes() == expected
    fs.set_stream_threshold(12345)
    assert _core.stream_min_bytes() == 12345
    fs.set_stream_threshold(np.int64(7))
    assert _core.stream_min_bytes() == 7
    fs.set_stream_threshold(2**80)  # beyond any array: clipped, never streams
    assert _core.stream_min_bytes() == sys.maxsize
    fs.set_stream_threshold(None)
    assert _core.stream_min_bytes() == expected


@pytest.mark.parametrize("cache, expected", [(32 << 20, 24 << 20), (1 << 20, 3 << 18),
                                             (480 << 20, 96 << 20), (None, 96 << 20)])
def test_threshold_default_for_each_cache(monkeypatch, cache, expected):
    """Three quarters of a 32 MB L3 (a Zen 4's, shared with other cores), the cap for a
    large one, and the cap where the size is unknown."""
    monkeypatch.setattr(_stream, "last_level_cache_bytes", lambda: cache)
    assert _stream.default_threshold() == expected


def test_in_cache_bound_is_half_the_cache_whatever_the_threshold():
    """FS_IN_CACHE (long rows pipelined with ordinary stores) follows the cache, not the
    stream threshold a user may move."""
    cache = _stream.last_level_cache_bytes()
    expected = (cache if cache else _stream.UNKNOWN_CACHE_BYTES) // 2
    assert _core.in_cache_max_bytes() == expected
    fs.set_stream_threshold(sys.maxsize)
    try:
        assert _core.in_cache_max_bytes() == expected
    finally:
        fs.set_stream_threshold()
    with pytest.raises(ValueError, match="negative"):
        _core.set_in_cache_max_bytes(-1)
    assert _core.in_cache_max_bytes() == expected


@pytest.mark.parametrize("bad", [1.5, "64", True, [1]])
def test_threshold_rejects_non_integers(bad):
    before = _core.stream_min_bytes()
    with pytest.raises(TypeError, match="min_bytes"):
        fs.set_stream_threshold(bad)
    assert _core.stream_min_bytes() == before


def test_threshold_rejects_negative():
    before = _core.stream_min_bytes()
    with pytest.raises(ValueError, match=r"min_bytes must be >= 0.*-1"):
        fs.set_stream_threshold(-1)
    # an absurd int is described, not printed (Python refuses to print 10**5000 at all)
    with pytest.raises(ValueError, match=r"min_bytes must be >= 0.*a negative int of \d+ bits"):
        fs.set_stream_threshold(-10**5000)
    assert _core.stream_min_bytes() == before


def test_cache_sizes_parse():
    assert _stream._size_in_bytes("32768K\n") == 32 << 20
    assert _stream._size_in_bytes("480M") == 480 << 20
    assert _stream._size_in_bytes("1G") == 1 << 30
    assert _stream._size_in_bytes("512") == 512


def test_only_x86_vector_kernels_stream(isa):
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if not x86 or isa == "scalar":
        assert not _core.can_stream()
        assert not _core.stream_recomputes()
    elif isa in ("avx2", "baseline"):
        assert _core.can_stream()
        assert not _core.stream_recomputes()  # their exp costs more than the streaming saves
    # (avx512: yes, but not in tools/emulated_isas.sh's build of its template for AVX2)


@pytest.mark.parametrize("value, expected", [("123", "123"), (" 0 ", "0"),
                                             ("lots", "default"), ("-5", "default")])
def test_environment_variable(value, expected):
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            import fastsoftmax
        from fastsoftmax import _core, _stream
        print(_core.stream_min_bytes(), _stream.default_threshold(), len(caught))
    """)
    env = dict(os.environ, FASTSOFTMAX_STREAM_MIN_BYTES=value)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True)
    bound, default, warned = result.stdout.split()
    if expected == "default":
        assert bound == default and warned == "1", result.stdout
    else:
        assert bound == expected and warned == "0", result.stdout


def test_show_config_says_when_outputs_stream(capsys):
    fs.set_stream_threshold(64 << 20)
    fs.show_config()
    line = [s for s in capsys.readouterr().out.splitlines() if "streaming stores" in s]
    if not _core.can_stream():
        assert line == ["  streaming stores: none in these kernels"]
    else:
        row_mb = _core.kernel_info()[_core.isa()]["float32"]["stream_row_scratch"] * 4 / 2**20
        split = "" if _core.stream_recomputes() else ", nor those split across threads"
        assert line == ["  streaming stores: from 64 MB of input and output (not softmax rows nor"
                        f" cross_entropy's gradient rows over {row_mb:g} MB{split})"]
    fs.set_stream_threshold()


# ---------------------------------------------------------------- cross_entropy's gradient


def _cross_entropy_cases(n, rows, dtype, rng):
    x = random_logits((rows, n), dtype, seed=n)
    labels = rng.integers(0, n, rows)
    labels[-1] = -100  # ignored: a zero gradient row
    probabilities = rng.random((rows, n)).astype(dtype)
    probabilities /= probabilities.sum(-1, keepdims=True)
    weight = rng.random(n).astype(dtype) + 0.5
    return x, [(labels, {}), (labels, {"weight": weight, "label_smoothing": 0.1}),
               (probabilities, {}), (probabilities, {"weight": weight})]


@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_cross_entropy_gradient(isa, dtype, streaming):
    """Labels, probabilities, class weights, smoothing, ignored rows: the same loss and bits.
    Rows either side of stream_grad_from, the shortest whose gradient streams."""
    rng = np.random.default_rng(3)
    itemsize = np.dtype(dtype).itemsize
    grad_from = _core.kernel_info()[isa][np.dtype(dtype).name]["stream_grad_from"]
    for n in (_lengths(isa, dtype)[-1], 1001, grad_from - 1, grad_from):
        x, cases = _cross_entropy_cases(n, 5, dtype, rng)
        for target, kwargs in cases:
            want_loss, want = _ordinary(fs.cross_entropy, x, target=target, return_grad=True,
                                        **kwargs)
            for offset in (0, itemsize, 5 * itemsize, 1):
                grad = out_at(x.shape, dtype, offset)
                loss, got = fs.cross_entropy(x, target, return_grad=True, grad_out=grad, **kwargs)
                assert got is grad
                assert_same_bits(np.asarray(loss), np.asarray(want_loss))
                assert_same_bits(grad, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_cross_entropy_at_the_heap_scratch_bound(isa, dtype, streaming):
    """The gradient's exponentials kept in a scratch row up to stream_row_scratch, stored the
    ordinary way beyond it: the same loss and bits."""
    bound = _core.kernel_info()[isa][np.dtype(dtype).name]["stream_row_scratch"]
    rng = np.random.default_rng(12)
    for n in (bound - 1, bound, bound + 1):
        x, cases = _cross_entropy_cases(n, 2, dtype, rng)
        for target, kwargs in cases[:3]:
            want_loss, want = _ordinary(fs.cross_entropy, x, target=target, return_grad=True,
                                        **kwargs)
            for offset in (0, 5 * np.dtype(dtype).itemsize):
                grad = out_at(x.shape, dtype, offset)
                loss, _ = fs.cross_entropy(x, target, return_grad=True, grad_out=grad,
                                           n_threads=1, **kwargs)
                assert_same_bits(np.asarray(loss), np.asarray(want_loss))
                assert_same_bits(grad, want)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_cross_entropy_long_rows(dtype, n_threads, streaming):
    rng = np.random.default_rng(4)
    for rows, n in [(1, 2 * CHUNK + 3), (2, 3 * CHUNK - 1)]:
        x, cases = _cross_entropy_cases(n, rows, dtype, rng)
        for target, kwargs in cases:
            if np.ndim(target) == 1:
                target = rng.integers(0, n, rows)  # (no ignored row: every row computed here)
            want_loss, want = _ordinary(fs.cross_entropy, x, target=target, return_grad=True,
                                        n_threads=1, **kwargs)
            grad = out_at(x.shape, dtype, 2 * np.dtype(dtype).itemsize)
            loss, _ = fs.cross_entropy(x, target, return_grad=True, grad_out=grad,
                                       n_threads=n_threads, **kwargs)
            assert_same_bits(np.asarray(loss), np.asarray(want_loss))
            assert_same_bits(grad, want)


def test_streamed_cross_entropy_in_place_and_16_bit(streaming):
    x = random_logits((4, 3000), np.float32, seed=6)
    labels = np.array([0, 2999, 17, 5])
    want_loss, want = _ordinary(fs.cross_entropy, x, target=labels, return_grad=True)
    y = x.copy()
    loss, grad = fs.cross_entropy(y, labels, return_grad=True, grad_out=y)
    assert grad is y
    assert_same_bits(y, want)
    h = x.astype(np.float16)
    for grad_out in (None, np.empty(h.shape, np.float16)):
        kwargs = {} if grad_out is None else {"grad_out": grad_out}
        _, want16 = _ordinary(fs.cross_entropy, h, target=labels, return_grad=True,
                              **({} if grad_out is None else
                                 {"grad_out": np.empty(h.shape, np.float16)}))
        _, got16 = fs.cross_entropy(h, labels, return_grad=True, **kwargs)
        assert_same_bits(got16, want16)
