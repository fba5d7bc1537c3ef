"""The small-call fast path (``_core.small_call``): the full path's results and errors, bit for bit."""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _logsumexp, _softmax
from fastsoftmax._threads import PARALLEL_MIN_ELEMENTS

RNG = np.random.default_rng(11)
FUNCTIONS = [fs.softmax, fs.log_softmax, fs.logsumexp]
# Shapes around the kernels' block sizes and the fast path's own limit.
SHAPES = [(1,), (4,), (1, 4), (3, 7), (2, 3, 5), (5, 16), (5, 17), (33, 31), (1, 1000),
          (PARALLEL_MIN_ELEMENTS - 1,), (1, PARALLEL_MIN_ELEMENTS - 1)]


def _full_path(function, x):
    """The same call through the full path: n_threads=1 is the fast path's thread count."""
    return function(x, n_threads=1)


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
