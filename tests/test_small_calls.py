"""The one-step fast path (``_core.small_call``, ``_core.small_cross_entropy``): the full
path's results and errors, bit for bit."""
import contextlib
import math

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _logsumexp, _softmax
from fastsoftmax._threads import PARALLEL_MIN_ELEMENTS, resolve_threads
from conftest import random_logits

RNG = np.random.default_rng(11)
FUNCTIONS = [fs.softmax, fs.log_softmax, fs.logsumexp]
OPS = {fs.softmax: _core.OP_SOFTMAX, fs.log_softmax: _core.OP_LOG_SOFTMAX,
       fs.logsumexp: _core.OP_LOGSUMEXP}
# Shapes around the kernels' block sizes and the fast path's own limit.
SHAPES = [(1,), (4,), (1, 4), (3, 7), (2, 3, 5), (5, 16), (5, 17), (33, 31), (1, 1000),
          (PARALLEL_MIN_ELEMENTS - 1,), (1, PARALLEL_MIN_ELEMENTS - 1)]


@contextlib.contextmanager
def _fast_path_off():
    """Every call within takes the full path: both fast-path entries decline it."""
    saved = _core.small_call, _core.small_cross_entropy
    _core.small_call = _core.small_cross_entropy = lambda *args, **kwargs: None
    try:
        yield
    finally:
        _core.small_call, _core.small_cross_entropy = saved


def _full_path(function, x, **kwargs):
    """The same call through the full path."""
    with _fast_path_off():
        return function(x, **kwargs)


@pytest.fixture
def no_full_path(monkeypatch):
    """Fail any call that reaches the full path."""
    def refuse(*args, **kwargs):
        raise AssertionError("took the full path")
    monkeypatch.setattr(_softmax, "_softmax_like", refuse)
    monkeypatch.setattr(_logsumexp, "_as_kernel_array", refuse)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_small_calls_match_the_full_path(function, shape, dtype):
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    x.flat[::7] = [-np.inf, np.inf, np.nan, 1e30][:len(x.flat[::7])] + [0.0] * max(
        0, len(x.flat[::7]) - 4)
    want = _full_path(function, x)
    got = function(x)
    assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_the_common_small_call_skips_the_full_path(function, no_full_path):
    result = function(np.ones((2, 4), np.float32))
    assert np.asarray(result).dtype == np.float32


def _declined_inputs():
    base = RNG.standard_normal((6, 8))
    return {
        "float16": base.astype(np.float16),
        "int": np.arange(12).reshape(3, 4),
        "list": base.tolist(),
        "0-d": np.float64(2.0),
        "empty": np.ones((0, 4)),
        "non-contiguous": base[:, ::2],
        "big-endian": base.astype(">f8"),
        "subclass": base.view(np.matrix)[:1].view(type("Sub", (np.ndarray,), {})),
        "large": RNG.standard_normal((2, PARALLEL_MIN_ELEMENTS)),
    }


@pytest.mark.parametrize("name", list(_declined_inputs()))
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_other_inputs_take_the_full_path_unchanged(function, name):
    x = _declined_inputs()[name]
    np.testing.assert_array_equal(function(x), _full_path(function, x))


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_errors_are_the_full_paths(function):
    for bad, error in ((np.ones(3, complex), TypeError), (np.array(["a"]), TypeError)):
        with pytest.raises(error) as fast:
            function(bad)
        with pytest.raises(error) as full:
            _full_path(function, bad)
        assert str(fast.value) == str(full.value)


def test_any_other_argument_takes_the_full_path():
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    out = np.empty_like(x)
    assert fs.softmax(x, out=out) is out
    np.testing.assert_array_equal(fs.softmax(x, axis=0), fs.softmax(x.T.copy()).T)
    np.testing.assert_array_equal(fs.softmax(x, axis=1), fs.softmax(x))
    assert fs.logsumexp(x, keepdims=True).shape == (3, 1)
    assert fs.logsumexp(x[0]).shape == ()
    assert np.asarray(fs.softmax(x, dtype=np.float64)).dtype == np.float64


# -- out= ---------------------------------------------------------------------------------


def _result_shape(function, shape):
    return shape[:-1] if function is fs.logsumexp else shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_small_calls_with_out_match_the_full_path(function, shape, dtype):
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    x.flat[::5] = np.nan if x.size > 3 else x.flat[::5]
    want = _full_path(function, x)
    out = np.full(_result_shape(function, shape), 7.0, dtype)
    assert function(x, out=out) is out  # out itself, even for logsumexp's 0-d result
    np.testing.assert_array_equal(out, want)
    # and the small path did take the call
    out[...] = 7.0
    op = OPS[function]
    assert _core.small_call(x, op, PARALLEL_MIN_ELEMENTS, out) is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("function", [fs.softmax, fs.log_softmax], ids=lambda f: f.__name__)
def test_small_calls_in_place_match_the_full_path(function, no_full_path):
    x = (RNG.standard_normal((33, 31)) * 5).astype(np.float32)
    want = function(x.copy())
    assert function(x, out=x) is x
    np.testing.assert_array_equal(x, want)


def _declined_outs(function, x):
    """out= arguments the small path leaves to the full path, each with the error the full
    path raises (None: it computes), and a copy of x in the memory just after the partial
    overlap's out."""
    shape = _result_shape(function, x.shape)
    read_only = np.empty(shape, x.dtype)
    read_only.flags.writeable = False
    buffer = np.empty(x.size * 2, x.dtype)
    x_in_buffer = buffer[1:1 + x.size].reshape(x.shape)
    x_in_buffer[...] = x
    outs = {
        "other dtype": (np.empty(shape, np.float64), TypeError),
        "big-endian": (np.empty(shape, x.dtype.newbyteorder(">")), TypeError),
        "other shape": (np.empty(shape + (1,), x.dtype), ValueError),
        "non-contiguous": (np.empty(shape + (2,), x.dtype)[..., 0], ValueError),
        "read-only": (read_only, ValueError),
        "list": ([0.0] * read_only.size, TypeError),
        "subclass": (np.empty(shape, x.dtype).view(type("Sub", (np.ndarray,), {})), None),
        # out inside x's memory, not x: the full path copies x first
        "partial overlap": (buffer[:read_only.size].reshape(shape), None),
    }
    assert list(outs) == DECLINED_OUTS
    return outs, x_in_buffer


DECLINED_OUTS = ["other dtype", "big-endian", "other shape", "non-contiguous", "read-only",
                 "list", "subclass", "partial overlap"]


@pytest.mark.parametrize("name", DECLINED_OUTS)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_other_outs_take_the_full_path_unchanged(function, name):
    x = (RNG.standard_normal((3, 7)) * 5).astype(np.float32)
    outs, x_in_buffer = _declined_outs(function, x)
    out, error = outs[name]
    if name == "partial overlap":
        x = x_in_buffer
    op = OPS[function]
    assert _core.small_call(x, op, PARALLEL_MIN_ELEMENTS, out) is None
    if error is not None:
        with pytest.raises(error) as fast:
            function(x, out=out)
        with pytest.raises(error) as full:
            _full_path(function, x, out=out)
        assert str(fast.value) == str(full.value)
        return
    want = _full_path(function, x.copy())
    assert function(x, out=out) is out
    np.testing.assert_array_equal(out, want)


# -- n_threads=1 ----------------------------------------------------------------------------

# Small, at the fast path's own limit, and large: several rows, long rows over chunks, and
# results just under and at the pool's size in float64 (1 MB: 131072 doubles).
ONE_THREAD_SHAPES = [(3, 7), (PARALLEL_MIN_ELEMENTS - 1,), (2, PARALLEL_MIN_ELEMENTS),
                     (1, 3 * 16384 + 5), (300, 513), (1, 131071), (2, 65536), (131072, 1)]


@pytest.mark.parametrize("n_threads", [1, None], ids=["one thread", "automatic"])
@pytest.mark.parametrize("stream", [False, True], ids=["cached", "streamed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ONE_THREAD_SHAPES, ids=str)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_calls_take_the_fast_path_at_any_size_with_out(function, shape, dtype, stream,
                                                       n_threads):
    """n_threads=1, and automatic threads (their count from the full path's own
    resolve_threads), take the fast path with out= at any size (releasing the GIL past the
    limit), and with a new result under the pool's size, streamed or not as the full path
    would; every result the full path's, bit for bit."""
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    x.flat[::997] = np.nan
    x.flat[5::1009] = -np.inf
    op = OPS[function]
    pooled = np.prod(_result_shape(function, shape)) * x.itemsize >= _core.POOL_MIN_BYTES
    args = (op, PARALLEL_MIN_ELEMENTS)
    count = (n_threads, resolve_threads)
    fs.set_stream_threshold(0 if stream else None)
    try:
        want = _full_path(function, x, n_threads=n_threads)
        out = np.full(_result_shape(function, shape), 7.0, dtype)
        assert _core.small_call(x, *args, out, *count) is out
        np.testing.assert_array_equal(out, want)
        out[...] = 7.0
        assert function(x, out=out, n_threads=n_threads) is out
        np.testing.assert_array_equal(out, want)
        fresh = _core.small_call(x, *args, None, *count)
        assert (fresh is None) == pooled  # (a result that large: the full path's pool)
        if fresh is not None:
            assert fresh.base is None and fresh.flags.c_contiguous and fresh.dtype == dtype
            np.testing.assert_array_equal(fresh, want)
        np.testing.assert_array_equal(function(x, n_threads=n_threads), want)
        if function is not fs.logsumexp:  # in place
            inplace = x.copy()
            assert _core.small_call(inplace, *args, inplace, *count) is inplace
            np.testing.assert_array_equal(inplace, want)
        if n_threads is None and x.size >= PARALLEL_MIN_ELEMENTS:  # no count to run on
            assert _core.small_call(x, *args, out, None) is None
    finally:
        fs.set_stream_threshold()


@pytest.mark.parametrize("n_threads", [2, -1, np.int64(1), True, 1.0, "1", 0],
                         ids=["2", "-1", "int64", "True", "1.0", "str", "0"])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_other_thread_counts_take_the_full_path(function, n_threads):
    """Only None and the int 1 are the fast path's: any other count, valid or not, gets the
    full path's threads or error."""
    x = (RNG.standard_normal((3, 7)) * 5).astype(np.float32)
    assert _core.small_call(x, OPS[function], PARALLEL_MIN_ELEMENTS, None, n_threads) is None
    try:
        want = _full_path(function, x, n_threads=n_threads)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)) as fast:
            function(x, n_threads=n_threads)
        assert str(fast.value) == str(error)
    else:
        np.testing.assert_array_equal(function(x, n_threads=n_threads), want)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_one_thread_and_automatic_calls_with_out_skip_the_full_path(function, no_full_path):
    x = RNG.standard_normal((2, PARALLEL_MIN_ELEMENTS)).astype(np.float32)
    out = np.empty(_result_shape(function, x.shape), np.float32)
    assert function(x, out=out, n_threads=1) is out
    assert function(x, out=out) is out  # automatic threads
    assert np.asarray(function(x[:1, :8], n_threads=1)).dtype == np.float32


def test_one_thread_cross_entropy_takes_the_fast_path(monkeypatch):
    from fastsoftmax import _cross_entropy
    x = RNG.standard_normal((4, 10)).astype(np.float32)
    labels = np.array([1, 2, 3, 4])
    want = _full_path(fs.cross_entropy, x, target=labels, return_grad=True, n_threads=1)

    def refuse(*args, **kwargs):
        raise AssertionError("took the full path")

    monkeypatch.setattr(_cross_entropy, "losses_and_gradient", refuse)
    for got, expected in zip(fs.cross_entropy(x, labels, return_grad=True, n_threads=1), want):
        np.testing.assert_array_equal(got, expected)


def test_logsumexp_of_one_column_into_its_own_memory_takes_the_full_path():
    # (k, 1) logits and a (k,) out over the same bytes overlap exactly: the full path copies x.
    x = (RNG.standard_normal((5, 1)) * 5)
    out = x.reshape(5)
    want = _full_path(fs.logsumexp, x.copy())
    assert _core.small_call(x, OPS[fs.logsumexp], PARALLEL_MIN_ELEMENTS, out) is None
    assert fs.logsumexp(x, out=out) is out
    np.testing.assert_array_equal(out, want)


# -- cross_entropy's loss ------------------------------------------------------------------

# (64 rows and fewer keep their losses on the stack, more in a heap buffer.)
CE_SHAPES = [(1, 1), (1, 4), (4, 10), (3, 17), (64, 255), (65, 3), (300, 7),
             (1, PARALLEL_MIN_ELEMENTS - 1)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_small_cross_entropy_matches_the_full_path(shape, dtype, reduction):
    rows, classes = shape
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    labels = RNG.integers(0, classes, rows)
    for ignore_index, kept in ((-100, labels), (0, labels), (-100, np.full(rows, -100))):
        want = _full_path(fs.cross_entropy, x, target=kept, reduction=reduction,
                          ignore_index=ignore_index)
        got = fs.cross_entropy(x, kept, reduction=reduction, ignore_index=ignore_index)
        assert type(got) is type(want)
        np.testing.assert_array_equal(got, want)
        # (and the small path did take the call)
        small = _core.small_cross_entropy(x, kept, ignore_index, reduction == "mean",
                                          PARALLEL_MIN_ELEMENTS)
        assert type(small) is type(want)
        np.testing.assert_array_equal(small, want)
    x[0, 0] = np.inf  # non-finite logits too
    np.testing.assert_array_equal(fs.cross_entropy(x, labels, reduction=reduction),
                                  _full_path(fs.cross_entropy, x, target=labels,
                                             reduction=reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_small_cross_entropy_with_gradient_matches_the_full_path(shape, dtype, reduction):
    """return_grad=True: a fresh gradient of the full path's bits, its scale 1/denominator
    (inf when every label is ignored) or 1, and no memory shared with the logits."""
    rows, classes = shape
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    labels = RNG.integers(0, classes, rows)
    for ignore_index, kept in ((-100, labels), (0, labels), (-100, np.full(rows, -100))):
        want_loss, want_grad = _full_path(fs.cross_entropy, x, target=kept, reduction=reduction,
                                          return_grad=True, ignore_index=ignore_index)
        for loss, grad in (fs.cross_entropy(x, kept, reduction=reduction, return_grad=True,
                                            ignore_index=ignore_index),
                           _core.small_cross_entropy(x, kept, ignore_index, reduction == "mean",
                                                     PARALLEL_MIN_ELEMENTS, True)):
            assert type(loss) is type(want_loss)
            np.testing.assert_array_equal(loss, want_loss)
            assert type(grad) is np.ndarray and grad.dtype == dtype and grad.shape == shape
            assert grad.flags.c_contiguous and grad.flags.owndata
            np.testing.assert_array_equal(grad, want_grad)
    x[0, 0] = np.inf  # non-finite logits too
    for got, want in zip(fs.cross_entropy(x, labels, reduction=reduction, return_grad=True),
                         _full_path(fs.cross_entropy, x, target=labels, reduction=reduction,
                                    return_grad=True)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_cross_entropy_grad_out(dtype):
    """grad_out: filled and returned; in place over the logits; and every grad_out the small
    path declines (overlaps, a wrong dtype, shape or layout, read-only, without return_grad)
    gets the full path's copy or error, with nothing written before it."""
    x = (RNG.standard_normal((5, 10)) * 3).astype(dtype)
    labels = np.array([1, 2, -100, 4, 9])
    want_loss, want_grad = _full_path(fs.cross_entropy, x, target=labels, return_grad=True)
    out = np.full_like(x, 7.0)
    loss, grad = fs.cross_entropy(x, labels, return_grad=True, grad_out=out)
    assert grad is out and loss == want_loss
    np.testing.assert_array_equal(out, want_grad)
    inplace = x.copy()
    loss, grad = fs.cross_entropy(inplace, labels, return_grad=True, grad_out=inplace)
    assert grad is inplace and loss == want_loss
    np.testing.assert_array_equal(inplace, want_grad)
    # Partly over the logits: the small path declines, the full path reads a copy.
    both = np.concatenate([x.ravel(), np.zeros(10, dtype)])
    logits, shifted = both[:50].reshape(5, 10), both[10:].reshape(5, 10)
    assert _core.small_cross_entropy(logits, labels, -100, True, PARALLEL_MIN_ELEMENTS, True,
                                     shifted) is None
    loss, grad = fs.cross_entropy(logits, labels, return_grad=True, grad_out=shifted)
    assert grad is shifted and loss == want_loss
    np.testing.assert_array_equal(shifted, want_grad)
    # Over the labels' memory: declined, and the full path copies the labels first.
    raw = np.zeros(x.nbytes, np.uint8)
    label_view = raw[:40].view(np.int64)
    label_view[:] = labels
    over_labels = raw.view(dtype).reshape(5, 10)
    assert _core.small_cross_entropy(x, label_view, -100, True, PARALLEL_MIN_ELEMENTS, True,
                                     over_labels) is None
    loss, grad = fs.cross_entropy(x, label_view, return_grad=True, grad_out=over_labels)
    assert loss == want_loss
    np.testing.assert_array_equal(grad, want_grad)
    # Wrong grad_out: the full path's errors, and the array left as it was.
    other = np.float64 if dtype == np.float32 else np.float32
    read_only = np.zeros_like(x)
    read_only.flags.writeable = False
    for bad in (np.zeros((5, 10), other), np.zeros((5, 9), dtype), np.zeros((10, 5), dtype).T,
                read_only, [[0.0] * 10] * 5):
        before = np.array(bad, copy=True)
        with pytest.raises((TypeError, ValueError)) as fast:
            fs.cross_entropy(x, labels, return_grad=True, grad_out=bad)
        with pytest.raises(type(fast.value)) as full:
            _full_path(fs.cross_entropy, x, target=labels, return_grad=True, grad_out=bad)
        assert str(fast.value) == str(full.value)
        np.testing.assert_array_equal(np.asarray(bad), before)
    with pytest.raises(ValueError, match="grad_out"):
        fs.cross_entropy(x, labels, grad_out=np.zeros_like(x))
    # A bad label: nothing written to grad_out.
    out[...] = 7.0
    with pytest.raises(ValueError, match="label 10"):
        fs.cross_entropy(x, np.array([1, 2, 3, 4, 10]), return_grad=True, grad_out=out)
    assert (out == 7.0).all()


def test_small_cross_entropy_skips_the_full_path(monkeypatch):
    from fastsoftmax import _cross_entropy

    def refuse(*args, **kwargs):
        raise AssertionError("took the full path")

    monkeypatch.setattr(_cross_entropy, "losses_and_gradient", refuse)
    assert np.isfinite(fs.cross_entropy(np.ones((4, 10), np.float32), np.arange(4)))
    loss, grad = fs.cross_entropy(np.ones((4, 10), np.float32), np.arange(4), return_grad=True)
    assert np.isfinite(loss) and grad.shape == (4, 10)


@pytest.mark.parametrize("labels", [np.array([0, 10, 1, 2]), np.array([0, -1, 1, 2]),
                                    np.array([0, 1, 2, 2**40])], ids=range(3))
def test_small_cross_entropy_bad_labels_raise_the_full_paths_error(labels):
    x = np.ones((4, 10), np.float32)
    with pytest.raises(ValueError) as fast:
        fs.cross_entropy(x, labels)
    with pytest.raises(ValueError) as full:
        _full_path(fs.cross_entropy, x, target=labels)
    assert str(fast.value) == str(full.value)


@pytest.mark.parametrize("call", [
    lambda x, y: fs.cross_entropy(x, y.astype(np.int32)),
    lambda x, y: fs.cross_entropy(x, y.astype(np.float64)),
    lambda x, y: fs.cross_entropy(x, y, reduction="none"),
    lambda x, y: fs.cross_entropy(x, y, weight=np.ones(10)),
    lambda x, y: fs.cross_entropy(x, y, label_smoothing=0.1),
    lambda x, y: fs.cross_entropy(x, y, ignore_index=np.int64(3)),
    lambda x, y: fs.cross_entropy(x.T.copy(), y, axis=0),
    lambda x, y: fs.cross_entropy(x[:, ::2].copy(), y % 5),
    lambda x, y: fs.cross_entropy(x[0], y[0]),
    lambda x, y: fs.cross_entropy(x, y, return_grad=True, grad_out=np.empty_like(x)),
    lambda x, y: fs.cross_entropy(x, y, return_grad=np.True_),
    lambda x, y: fs.cross_entropy(x, y, reduction="none", return_grad=True),
], ids=range(12))
def test_small_cross_entropy_other_calls_are_unchanged(call):
    x = RNG.standard_normal((4, 10)).astype(np.float32)
    y = np.array([1, 2, 3, 4])
    # The same call through the full path gives the same bits.
    got = call(x, y)
    with _fast_path_off():
        want = call(x, y)
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))  # (loss, grad)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# -- the loss's sum ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [*range(0, 140), 255, 256, 257, 1000, 4095, 4096, 65537])
def test_pairwise_sum_gives_numpys_bits(n):
    # cross_entropy's mean and sum, on the small-call and full paths, add their float64
    # losses in NumPy's pairwise order: every run length (under 8, up to 128, halved) and
    # the GIL's threshold, with terms of mixed signs and magnitudes.
    values = RNG.standard_normal(n) * 10.0 ** RNG.integers(-8, 8, n)
    assert _core.pairwise_sum(values) == float(np.add.reduce(values))
    assert _core.pairwise_sum(values[::-1]) == float(np.add.reduce(values[::-1].copy()))


def test_pairwise_sum_keeps_ieee_results_and_refuses_other_dtypes():
    assert np.isnan(_core.pairwise_sum(np.array([np.inf, 1.0, -np.inf])))
    assert _core.pairwise_sum(np.array([np.inf] * 9)) == np.inf
    assert np.copysign(1.0, _core.pairwise_sum(np.array([-0.0, -0.0]))) == 1.0  # as NumPy: 0.0 + ...
    assert _core.pairwise_sum(np.zeros((0,))) == 0.0
    with pytest.raises(TypeError, match="float32"):
        _core.pairwise_sum(np.ones(3, np.float32))


# -- logsumexp results near zero ----------------------------------------------------------


def _near_zero_slices(shape, axis, every, seed):
    """Random float32 logits whose every `every`-th slice along `axis` holds log-probabilities
    (a logsumexp of about 1e-7: the float32 exponentials' rounding alone would miss it by
    more than the bound), and the exact logsumexp of each slice, in float64."""
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(np.moveaxis((rng.standard_normal(shape) * 3).astype(np.float32),
                                         axis, -1))
    planted = x.reshape(-1, x.shape[-1])[::every]
    planted -= np.log(np.exp(planted.astype(np.float64)).sum(-1, keepdims=True)).astype(
        np.float32)
    x.reshape(-1, x.shape[-1])[::every] = planted
    exact = np.array([math.log(math.fsum(np.exp(row.astype(np.float64))))
                      for row in x.reshape(-1, x.shape[-1])]).reshape(x.shape[:-1])
    return np.ascontiguousarray(np.moveaxis(x, -1, axis)), exact


@pytest.mark.parametrize("shape, axis", [((3000, 10), -1), ((600, 7), -1), ((4, 10, 6), 1),
                                         ((10, 50), 0)], ids=str)
def test_logsumexp_near_zero_keeps_its_precision_on_every_path(monkeypatch, shape, axis):
    """A float32 slice whose logsumexp is near 0 is computed again in float64 (the small
    path and the full path alike, any slice layout), and only those slices are: the
    small path once ran the kernel over the whole array a second time (the full path's)."""
    x, exact = _near_zero_slices(shape, axis, 7, seed=len(shape) + shape[0])
    near = np.abs(exact) < _core.NEAR_ZERO_PER_LOG_N * math.log(x.shape[axis])
    assert np.abs(exact.reshape(-1)[::7]).max() < 1e-5 and near.any()
    want = _full_path(lambda v: fs.logsumexp(v, axis=axis, n_threads=1), x)
    kernel_calls = []
    real = _core.softmax_family

    def counted(x, out, *args, **kwargs):
        kernel_calls.append((x.shape, x.dtype))
        return real(x, out, *args, **kwargs)

    monkeypatch.setattr(_core, "softmax_family", counted)
    out = np.full(exact.shape, 7.0, np.float32)
    assert fs.logsumexp(x, axis=axis, out=out, n_threads=1) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_allclose(out, exact, rtol=1e-6, atol=0)
    redone = (int(near.sum()), x.shape[axis])
    if axis == -1:  # the small path: its own kernel, then the near slices alone
        assert kernel_calls == [(redone, np.float64)]
    else:
        assert kernel_calls == [(x.shape, np.float32), (redone, np.float64)]


def test_logsumexp_near_zero_redone_a_few_slices_at_a_time(monkeypatch):
    """Rows of log-probabilities are all near 0: their float64 copy is taken a few rows at
    a time (_REDO_ELEMENTS), not at once (three times x's memory once, an audit found),
    with the same bits however many go at a time."""
    logp = fs.log_softmax(random_logits((300, 1000), np.float32, seed=21))
    logp[::7] += 0.5  # and some rows that are not near 0
    want = fs.logsumexp(logp, n_threads=1)
    exact = np.log(np.exp(logp.astype(np.float64)).sum(axis=1))
    np.testing.assert_allclose(want, exact, rtol=1e-6, atol=1e-12)
    for elements in (1, 999, 1000, 1001, 5000, 10**9):
        monkeypatch.setattr(_logsumexp, "_REDO_ELEMENTS", elements)
        for threads in (1, 2):
            assert fs.logsumexp(logp, n_threads=threads).tobytes() == want.tobytes(), elements
            got = fs.logsumexp(logp.T, axis=0, n_threads=threads)
            assert got.tobytes() == want.tobytes(), (elements, "axis 0")


class _NoUfuncs(np.ndarray):
    """An ndarray subclass that refuses every ufunc (as some array wrappers do)."""
    __array_ufunc__ = None


def test_outputs_that_refuse_ufuncs_are_written_whole():
    """An out= / grad_out= subclass is written through and returned as it came.  One that
    refuses ufuncs once raised TypeError after the kernels had written it: logsumexp's
    float64 redo of results near 0, and cross_entropy's sample weights (audit, 2026-12-07)."""
    logp = fs.log_softmax(random_logits((40, 300), np.float32, seed=22))
    out = np.zeros(40, np.float32).view(_NoUfuncs)
    assert fs.logsumexp(logp, out=out) is out
    assert out.view(np.ndarray).tobytes() == fs.logsumexp(logp).tobytes()
    x = random_logits((6, 5), np.float64, seed=23)
    labels = np.array([0, 1, 2, 3, 4, 0])
    weights = np.linspace(0.5, 2.0, 6)
    grad = np.zeros_like(x).view(_NoUfuncs)
    loss, got = fs.cross_entropy(x, labels, sample_weight=weights, return_grad=True,
                                 grad_out=grad)
    want_loss, want = fs.cross_entropy(x, labels, sample_weight=weights, return_grad=True)
    assert got is grad and loss == want_loss
    assert grad.view(np.ndarray).tobytes() == want.tobytes()
