"""Axes and dtypes as SciPy and PyTorch take them: 0-d input, several axes at once, ``dtype=``.

Each behaviour is checked against the peer's own value.  The peers' values are
hard-coded (computed once with scipy 1.17.1 and torch 2.13.0+cpu, as each
comment says), so these tests run in CI without torch; the live comparisons
at the end of each part run where SciPy or PyTorch is installed.

- 0-d input: NumPy's reductions, ``scipy.special`` and PyTorch accept
  ``axis=0``, ``-1`` and ``None`` on a 0-d array, which is one slice, itself.
- A tuple of axes: each slice spans them all (SciPy's ``axis=(0, 2)``,
  ``torch.logsumexp(t, dim=(0, 2))``; ``torch.softmax`` takes one dim, so its
  value over several is that of the axes flattened into one).  ``()`` follows
  SciPy and NumPy: every element is a slice of its own.
- ``dtype=`` for softmax and log_softmax: PyTorch's, the dtype the input is cast
  to before computing, and the result's.
"""
import math

import numpy as np
import pytest
from numpy.exceptions import AxisError

import fastsoftmax as fs
from conftest import check_log_softmax, check_logsumexp, check_softmax
from fastsoftmax import reference
from test_interop import _bytes_allocated_during

nan, inf = math.nan, math.inf
FLOATS = [np.float32, np.float64]
RTOL = {np.float32: 1e-6, np.float64: 1e-13}
ELEMENTWISE = [fs.softmax, fs.log_softmax]
BACKWARD = [fs.softmax_backward, fs.log_softmax_backward]


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def _unchanged_on_error(call, x, out, error, match):
    """``call(x, out)`` raises ``error``, with ``x`` and ``out`` untouched."""
    x_before, out_before = x.copy(), out.copy()
    with pytest.raises(error, match=match):
        call(x, out)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(out, out_before)


# ================================================================ 0-d input

# scipy.special.{softmax, log_softmax, logsumexp}(np.array(v, dtype), axis=a) and
# torch.{softmax, log_softmax, logsumexp}(torch.tensor(v, dtype), a), for a in
# 0, -1 (and None for SciPy), float32 and float64: both give these values.
ZERO_D_PEER = {  # v: (softmax, log_softmax, logsumexp)
    2.0: (1.0, 0.0, 2.0),
    -1e30: (1.0, 0.0, -1e30),
    nan: (nan, nan, nan),
    inf: (nan, nan, inf),
    -inf: (nan, nan, -inf),
}
ZERO_D_AXES = [0, -1, None, ()]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", ZERO_D_AXES)
@pytest.mark.parametrize("value", list(ZERO_D_PEER))
def test_0d_input_is_one_slice_as_scipy_and_torch(value, axis, dtype):
    x = np.array(value, dtype)
    peer_softmax, peer_log_softmax, peer_lse = (np.array(v, dtype) for v in ZERO_D_PEER[value])
    for func, expected in ((fs.softmax, peer_softmax), (fs.log_softmax, peer_log_softmax)):
        got = func(x, axis)
        assert type(got) is np.ndarray and got.shape == () and got.dtype == dtype  # torch: 0-d
        np.testing.assert_array_equal(got, expected, err_msg=func.__name__)
    lse = fs.logsumexp(x, axis)
    assert type(lse) is np.dtype(dtype).type  # a NumPy scalar, as SciPy's and np.sum's
    np.testing.assert_array_equal(lse, peer_lse)
    # keepdims follows NumPy (np.sum(x0, 0, keepdims=True).shape == ()) and torch
    # (keepdim=True gives a 0-d tensor); SciPy 1.17 gives shape (1,) here.
    assert fs.logsumexp(x, axis, keepdims=True).shape == ()


def test_0d_python_and_numpy_scalars():
    # The examples.
    assert fs.logsumexp(np.float64(2.0), axis=0) == 2.0
    assert fs.softmax(np.float32(1.0)) == 1.0 and fs.softmax(np.float32(1.0)).dtype == np.float32
    assert fs.log_softmax(np.float32(1.0)) == 0.0
    assert fs.softmax(7) == 1.0 and fs.softmax(7).dtype == np.float64  # a Python int: float64
    assert fs.logsumexp(-3.5, -1) == -3.5


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", ZERO_D_AXES)
def test_0d_with_where_out_temperature_and_in_place(axis, dtype):
    x = np.array(1.5, dtype)
    # where=: True keeps the one entry, False masks the whole (one-entry) slice.
    for where in (True, np.array(True), np.array([[True]])[0, 0]):
        assert fs.softmax(x, axis, where=where) == 1.0
        assert fs.logsumexp(x, axis, where=where) == np.float32(1.5)
    assert fs.softmax(x, axis, where=np.array(False)) == 0.0
    assert fs.log_softmax(x, axis, where=False) == -inf
    assert fs.logsumexp(x, axis, where=False) == -inf
    for func in (fs.softmax, fs.log_softmax, fs.logsumexp):
        for where in (True, False):
            np.testing.assert_array_equal(func(x, axis, where=where),
                                          getattr(reference, func.__name__)(x, axis, where=where))
    # out= of shape (): returned as given (an array, also for logsumexp).
    out = np.full((), 12345, dtype)
    assert fs.softmax(x, axis, temperature=0.25, out=out) is out and out == 1.0
    assert fs.logsumexp(x, axis, out=out) is out and out == np.float32(1.5)
    assert fs.log_softmax(x, axis, out=out) is out and out == 0.0
    inplace = x.copy()
    assert fs.softmax(inplace, axis, out=inplace) is inplace and inplace == 1.0
    with pytest.raises(ValueError, match=r"out must have shape \(\), got \(1,\)"):
        fs.softmax(x, axis, out=np.empty(1, dtype))


def test_0d_axes_that_numpy_refuses():
    x0 = np.array(2.0)
    # As np.sum(x0, axis=1): out of range.
    for axis in (1, -2):
        with pytest.raises(AxisError, match=f"axis={axis} is out of range for an array of 0"):
            fs.softmax(x0, axis)
        with pytest.raises(AxisError):
            np.sum(x0, axis=axis)
    # As np.sum(x0, axis=(0,)) (and scipy.special.softmax): a tuple names real axes only.
    for func in (fs.softmax, fs.log_softmax, fs.logsumexp):
        with pytest.raises(AxisError, match=r"axis=0 in \(0,\) is out of range"):
            func(x0, (0,))
    with pytest.raises(AxisError):
        np.sum(x0, axis=(0,))


@pytest.mark.parametrize("axis", ZERO_D_AXES)
def test_0d_backward_helpers_match_torch(axis):
    # torch 2.13: x = tensor(2.0, float64, requires_grad=True); softmax(x, 0) (or
    # log_softmax) .backward(tensor(3.0)) gives x.grad == 0.0 for both; and
    # torch._softmax_backward_data(tensor(3.0), tensor(0.25), 0, float64) == 0.5625,
    # torch._log_softmax_backward_data(tensor(3.0), tensor(-0.5), 0, float64)
    # == 1.1804080208620997.
    g = np.array(3.0)
    assert fs.softmax_backward(g, fs.softmax(np.array(2.0), axis), axis) == 0.0
    assert fs.log_softmax_backward(g, fs.log_softmax(np.array(2.0), axis), axis) == 0.0
    assert fs.softmax_backward(g, np.array(0.25), axis) == 0.5625
    np.testing.assert_allclose(fs.log_softmax_backward(g, np.array(-0.5), axis),
                               1.1804080208620997, rtol=1e-15)
    for func in BACKWARD:
        out = np.empty(())
        assert func(g, np.array(0.25), axis, out=out) is out
        assert func(np.float32(3.0), np.float32(0.25), axis).shape == ()
        np.testing.assert_array_equal(func(g, np.array(0.25), axis),
                                      getattr(reference, func.__name__)(g, 0.25, axis))


def test_0d_cross_entropy_still_needs_a_class_axis():
    """Unchanged: logits hold one score per class, so a 0-d array has no classes.

    torch.nn.functional.cross_entropy refuses 0-d logits too.
    """
    with pytest.raises(ValueError, match="logits must have at least one dimension"):
        fs.cross_entropy(np.float64(2.0), np.int64(0))
    with pytest.raises(ValueError, match="logits must have at least one dimension"):
        fs.cross_entropy(np.float64(2.0), np.int64(0), axis=0)
    with pytest.raises(TypeError, match=r"axis must be an int.*got \(0, 1\)"):
        fs.cross_entropy(np.zeros((2, 3)), np.zeros(2, np.int64), axis=(0, 1))


# ================================================================ several axes

X = np.array([[[0.5, -1.0, 2.0], [3.0, 0.0, -2.5]],
              [[1.5, 1.0, -0.5], [-3.0, 2.5, 0.25]]])  # exact in float32 too

# torch.logsumexp(torch.tensor(X), dim=axes) == scipy.special.logsumexp(X, axis=axes),
# to the last bit, for each of these.
LSE_PEER = {
    (0, 1): [3.2682652126137475, 2.7892402644857746, 2.236626596056384],
    (1, 2): [3.420126383426425, 3.0597772981422695],
    (0, 2): [2.8456160160327895, 3.5462764202253476],
    (0, 1, 2): 3.94924338726905,
}
# torch.softmax / log_softmax over `axes` (moved last and flattened into one dim,
# since torch's softmax takes one dim); scipy.special.softmax(X, axis=axes) agrees
# within 3e-17.
SOFTMAX_PEER = {
    (1, 2): [[[0.053926871406872336, 0.012032711453319203, 0.24168347018170605],
              [0.656963785233855, 0.03270830089064863, 0.0026848608335989597]],
             [[0.21018287410555084, 0.12748235729153712, 0.02844515879856003],
              [0.0023349208208363822, 0.571336287334414, 0.06021840164910174]]],
    (0, 2): [[[0.09578817689939916, 0.02137323125188906, 0.4292928254776463],
              [0.5791021337123847, 0.028831797523114384, 0.0023666580600093727]],
             [[0.26037926064685724, 0.15792800473562604, 0.03523850098858222],
              [0.0014354506744517063, 0.3512431992015664, 0.03702076082847354]]],
}
LOG_SOFTMAX_PEER = {
    (1, 2): [[[-2.9201263834264246, -4.420126383426425, -1.4201263834264248],
              [-0.42012638342642483, -3.4201263834264246, -5.920126383426425]],
             [[-1.5597772981422695, -2.0597772981422695, -3.5597772981422695],
              [-6.0597772981422695, -0.5597772981422695, -2.8097772981422695]]],
    (0, 2): [[[-2.3456160160327895, -3.8456160160327895, -0.8456160160327896],
              [-0.5462764202253474, -3.5462764202253476, -6.046276420225348]],
             [[-1.3456160160327895, -1.8456160160327895, -3.3456160160327895],
              [-6.546276420225348, -1.0462764202253474, -3.2962764202253476]]],
}
# Every spelling of the same axes: negative, unordered, NumPy ints.
SPELLINGS = {
    (0, 1): [(0, 1), (1, 0), (-3, -2), (np.int64(0), np.int32(1))],
    (1, 2): [(1, 2), (2, 1), (-1, -2), (1, -1)],
    (0, 2): [(0, 2), (2, 0), (-1, 0), (0, -1), (np.int8(-3), 2)],
    (0, 1, 2): [(0, 1, 2), (2, 0, 1), (-1, -2, -3)],
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axes", list(LSE_PEER))
def test_logsumexp_over_several_axes_matches_torch_and_scipy(axes, dtype):
    x = X.astype(dtype)
    for spelling in SPELLINGS[axes]:
        got = fs.logsumexp(x, spelling)
        assert np.asarray(got).dtype == dtype
        np.testing.assert_allclose(got, LSE_PEER[axes], rtol=RTOL[dtype], atol=0)
        kept = fs.logsumexp(x, spelling, keepdims=True)
        assert kept.shape == np.sum(x, axis=spelling, keepdims=True).shape
        np.testing.assert_array_equal(kept.reshape(np.shape(got)), got)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axes", list(SOFTMAX_PEER))
def test_softmax_over_several_axes_matches_torch_and_scipy(axes, dtype):
    x = X.astype(dtype)
    for spelling in SPELLINGS[axes]:
        p = fs.softmax(x, spelling)
        assert p.dtype == dtype and p.flags.c_contiguous
        np.testing.assert_allclose(p, SOFTMAX_PEER[axes], rtol=RTOL[dtype], atol=0)
        np.testing.assert_allclose(np.sum(p, axis=axes, dtype=np.float64), 1.0, rtol=1e-6)
        logp = fs.log_softmax(x, spelling)
        np.testing.assert_allclose(logp, LOG_SOFTMAX_PEER[axes], rtol=RTOL[dtype], atol=0)


def test_all_axes_is_the_whole_array():
    for func in (fs.softmax, fs.log_softmax, fs.logsumexp):
        np.testing.assert_array_equal(func(X, (0, 1, 2)), func(X, None))
        np.testing.assert_array_equal(func(X, (2, 0, 1)), func(X, None))
    np.testing.assert_array_equal(fs.logsumexp(X, (0, 1, 2), keepdims=True),
                                  fs.logsumexp(X, None, keepdims=True))


def test_one_axis_tuple_is_that_axis():
    for func in (fs.softmax, fs.log_softmax, fs.logsumexp, *BACKWARD):
        args = (X, X) if func in BACKWARD else (X,)
        np.testing.assert_array_equal(func(*args, (1,)), func(*args, 1))
        np.testing.assert_array_equal(func(*args, (-1,)), func(*args, 2))


# scipy.special.softmax / log_softmax / logsumexp(E, axis=()) for this E: every
# element is its own slice (NumPy's np.sum(E, axis=()) is E).  PyTorch differs:
# torch.sum(t, dim=()) sums everything and torch.logsumexp(t, dim=()) raises, so
# SciPy's reading is the one followed.
E = np.array([[1.0, -inf, inf], [nan, 0.0, -3.0]])
EMPTY_AXES_PEER = {
    "softmax": [[1.0, nan, nan], [nan, 1.0, 1.0]],
    "log_softmax": [[0.0, nan, nan], [nan, 0.0, 0.0]],
    "logsumexp": [[1.0, -inf, inf], [nan, 0.0, -3.0]],
}


@pytest.mark.parametrize("dtype", FLOATS)
def test_empty_tuple_makes_every_element_a_slice_as_scipy(dtype):
    e = E.astype(dtype)
    for func in (fs.softmax, fs.log_softmax, fs.logsumexp):
        got = func(e, ())
        assert got.shape == e.shape and got.dtype == dtype
        np.testing.assert_array_equal(got, EMPTY_AXES_PEER[func.__name__], err_msg=func.__name__)
        np.testing.assert_array_equal(got, getattr(reference, func.__name__)(e, ()))
    assert fs.logsumexp(e, (), keepdims=True).shape == e.shape
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(fs.softmax(e, (), where=mask), [[1, 0, nan], [nan, 0, 1]])
    np.testing.assert_array_equal(fs.logsumexp(e, (), where=mask),
                                  [[1, -inf, inf], [nan, -inf, -3]])
    # The backward helpers over single-element slices: softmax's Jacobian is 0,
    # log_softmax's is 1 - exp(y).
    g = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(fs.softmax_backward(g, np.ones((2, 3)), ()), np.zeros((2, 3)))
    np.testing.assert_array_equal(fs.log_softmax_backward(g, np.zeros((2, 3)), ()),
                                  np.zeros((2, 3)))


@pytest.mark.parametrize("axes", [(1, 2), (0, 2), (0, 3), (1, 3), (0, 1, 3), (0, 2, 3), ()])
@pytest.mark.parametrize("dtype", FLOATS)
def test_several_axes_with_where_temperature_out_and_threads(rng, axes, dtype):
    x = (rng.standard_normal((3, 4, 5, 6)) * 4).astype(dtype)
    causal = np.tril(np.ones((5, 6), bool))  # broadcast over the leading axes
    for where in (None, causal, rng.random((4, 1, 6)) < 0.7, rng.random(x.shape) < 0.7):
        for func, check in ((fs.softmax, check_softmax), (fs.log_softmax, check_log_softmax)):
            got = func(x, axes, temperature=0.7, where=where)
            check(got, x, axes, 0.7, dtype, where)
            out = np.full_like(x, 12345)
            assert func(x, axes, temperature=0.7, where=where, out=out, n_threads=3) is out
            np.testing.assert_array_equal(out, got)
            inplace = x.copy()
            assert func(inplace, axes, temperature=0.7, where=where, out=inplace) is inplace
            np.testing.assert_array_equal(inplace, got)
        for keepdims in (False, True):
            got = fs.logsumexp(x, axes, keepdims=keepdims, where=where)
            check_logsumexp(got, x, axes, keepdims, dtype, where)
            out = np.full(np.shape(got), 12345, dtype)
            assert fs.logsumexp(x, axes, keepdims=keepdims, where=where, out=out,
                                n_threads=2) is out
            np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("axes", [(1, 2), (0, 2), (0, 1, 3)])
def test_backward_helpers_over_several_axes(rng, axes):
    x = rng.standard_normal((3, 4, 2, 5))
    g = rng.standard_normal(x.shape)
    for func, forward in ((fs.softmax_backward, fs.softmax),
                          (fs.log_softmax_backward, fs.log_softmax)):
        y = forward(x, axes)
        got = func(g, y, axes)
        np.testing.assert_allclose(got, getattr(reference, func.__name__)(g, y, axes),
                                   rtol=1e-12, atol=1e-15)
        out = g.copy()  # out= either input: the inputs are gathered into copies first
        assert func(out, y, axes, out=out) is out
        np.testing.assert_array_equal(out, got)
        out = y.copy()
        assert func(g, out, axes, out=out) is out
        np.testing.assert_array_equal(out, got)


# torch 2.13: t = torch.tensor(X, requires_grad=True); y = softmax (or log_softmax)
# of t over dims (0, 2) (moved last, flattened); y.backward(torch.tensor(G)); t.grad.
G = np.array([[[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], [[-0.5, 2.0, 1.5], [1.0, -1.0, 0.25]]])
SOFTMAX_GRAD_PEER = [
    [[0.04729902760394759, -0.05356585415153335, -0.0026668776885928305],
     [0.14849558350344325, 0.09388855233755494, -0.0017597905506094452]],
    [[-0.26199680373069234, 0.23591091762968697, 0.03501959033718397],
     [0.0018035344252862072, -0.26117607497481055, 0.018748195259135556]]]
LOG_SOFTMAX_GRAD_PEER = [
    [[0.7605295577515021, -2.0534330781297228, -0.5732320636941157],
     [-1.3029798008528657, 2.935128455572993, -1.005324980635021]],
    [[-1.1509481516171431, 1.6051799881609348, 1.4119037475285445],
     [0.9967702359824837, -1.7902971982035243, 0.16670328813593455]]]


def test_backward_over_apart_axes_matches_torch_autograd():
    got = fs.softmax_backward(G, fs.softmax(X, (0, 2)), (0, 2))
    np.testing.assert_allclose(got, SOFTMAX_GRAD_PEER, rtol=1e-13, atol=1e-16)
    got = fs.log_softmax_backward(G, fs.log_softmax(X, (2, 0)), (2, 0))
    np.testing.assert_allclose(got, LOG_SOFTMAX_GRAD_PEER, rtol=1e-13, atol=1e-16)


def test_empty_arrays_over_several_axes():
    x = np.zeros((0, 3, 4))
    assert fs.softmax(x, (1, 2)).shape == x.shape
    assert fs.log_softmax(x, (0, 2)).shape == x.shape
    assert fs.logsumexp(x, (1, 2)).shape == (0,)
    # Empty slices: -inf, as np.log(np.sum(np.exp(x), axis=(0, 2))) and the reference.
    np.testing.assert_array_equal(fs.logsumexp(x, (0, 2)), [-inf, -inf, -inf])
    np.testing.assert_array_equal(fs.logsumexp(x, (0, 2), keepdims=True),
                                  reference.logsumexp(x, (0, 2), keepdims=True))
    assert fs.softmax_backward(x, x, (0, 2)).shape == x.shape


def test_adjacent_axes_are_read_in_place_and_apart_axes_are_copied():
    """The docstrings' promise: no copy for adjacent axes; copies of x for the others."""
    x = np.random.default_rng(5).standard_normal((4, 64, 32, 8)).astype(np.float32)
    out = np.empty_like(x)
    lse_out = np.empty((4, 8), np.float32)
    # Adjacent: as cheap in memory as one axis (nothing but Python objects).
    for call in (lambda: fs.softmax(x, (1, 2), out=out),
                 lambda: fs.log_softmax(x, (2, 3), out=out),
                 lambda: fs.logsumexp(x, (1, 2), out=lse_out),
                 lambda: fs.softmax_backward(x, x, (1, 2), out=out)):
        _, allocated = _bytes_allocated_during(call)
        assert allocated < x.nbytes // 16, f"{allocated} bytes: a copy for adjacent axes?"
    # Apart: softmax copies x (moved) and computes into a second array, logsumexp copies x.
    _, allocated = _bytes_allocated_during(lambda: fs.softmax(x, (0, 2), out=out))
    assert 2 * x.nbytes <= allocated < 3 * x.nbytes
    _, allocated = _bytes_allocated_during(lambda: fs.logsumexp(x, (0, 2)))
    assert x.nbytes <= allocated < 2 * x.nbytes


@pytest.mark.parametrize("func", [*ELEMENTWISE, fs.logsumexp])
def test_bad_axis_tuples_raise_as_numpy_before_writing(func):
    x = np.ones((2, 3, 4))
    out = np.full(x.shape if func in ELEMENTWISE else (2,), 7.0)
    def call(axis):
        return lambda x, out: func(x, axis, out=out)
    # Out of range: numpy.exceptions.AxisError (a ValueError), naming the axis, as
    # np.sum(x, axis=(0, 5)) and scipy.special.softmax raise.
    _unchanged_on_error(call((0, 5)), x, out, AxisError,
                        r"axis=5 in \(0, 5\) is out of range for an array of 3 dimension")
    _unchanged_on_error(call((-4, 1)), x, out, ValueError, r"axis=-4 in \(-4, 1\)")
    # Named twice (also through a negative alias): ValueError, as NumPy's
    # "duplicate value in 'axis'".
    _unchanged_on_error(call((1, -2)), x, out, ValueError, r"axis \(1, -2\) names an axis more")
    _unchanged_on_error(call((0, 0)), x, out, ValueError, "more than once")
    # Not ints: TypeError, as NumPy (a list is not a tuple there either).
    for bad in ([0, 1], (0, 1.0), (True, 1), (0, None), np.array([0, 1]), "01"):
        _unchanged_on_error(call(bad), x, out, TypeError,
                            "axis must be an int, a tuple of ints or None, got")
    absurd = 10**5000  # too long for repr (Python's int-to-str limit): described by its size
    _unchanged_on_error(call((0, absurd)), x, out, AxisError,
                        r"axis=an int of 16610 bits in \(0, an int of 16610 bits\) is out of")
    _unchanged_on_error(call((absurd, 0.5)), x, out, TypeError,
                        r"got \(an int of 16610 bits, 0.5\)")


def test_bad_axis_tuples_raise_in_the_backward_helpers():
    x = np.ones((2, 3))
    for func in BACKWARD:
        with pytest.raises(AxisError, match="axis=2 in"):
            func(x, x, (0, 2))
        with pytest.raises(ValueError, match="more than once"):
            func(x, x, (1, -1))
        with pytest.raises(TypeError, match="a tuple of ints"):
            func(x, x, [0])


def test_reference_takes_the_same_axes():
    for func in (reference.softmax, reference.log_softmax, reference.logsumexp):
        np.testing.assert_allclose(func(X, (0, 2)), getattr(fs, func.__name__)(X, (2, 0)),
                                   rtol=1e-13)
        with pytest.raises(AxisError):
            func(X, (0, 3))
        with pytest.raises(ValueError):
            func(X, (1, 1))
        assert np.shape(func(np.float64(1.0), 0)) == ()


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2), (0, 1, 2), (), (-1, 0)])
def test_several_axes_against_live_scipy(rng, axes):
    special = pytest.importorskip("scipy.special")
    x = rng.standard_normal((3, 4, 5)) * 5
    np.testing.assert_allclose(fs.softmax(x, axes), special.softmax(x, axis=axes), rtol=1e-13)
    np.testing.assert_allclose(fs.log_softmax(x, axes), special.log_softmax(x, axis=axes),
                               rtol=1e-13, atol=1e-14)
    for keepdims in (False, True):
        np.testing.assert_allclose(fs.logsumexp(x, axes, keepdims=keepdims),
                                   special.logsumexp(x, axis=axes, keepdims=keepdims),
                                   rtol=1e-13)


@pytest.mark.parametrize("dims", [(0, 1), (1, 2), (0, 2), (2, 0, 1)])
def test_logsumexp_against_live_torch(rng, dims):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 5)).astype(np.float32) * 5
    for keepdim in (False, True):
        expected = torch.logsumexp(torch.from_numpy(x).double(), dim=dims, keepdim=keepdim)
        np.testing.assert_allclose(fs.logsumexp(x, dims, keepdims=keepdim), expected.numpy(),
                                   rtol=1e-6)
    t = torch.tensor(2.0)  # 0-d, as torch takes it
    for dim in (0, -1):
        assert fs.softmax(t.numpy(), dim) == torch.softmax(t, dim).item()
        assert fs.log_softmax(t.numpy(), dim) == torch.log_softmax(t, dim).item()
        assert fs.logsumexp(t.numpy(), dim) == torch.logsumexp(t, dim).item()


# ================================================================ dtype=

X32 = np.array([0.1, -2.3, 5.7, 1e-3, 3.0], np.float32)
# torch.softmax(torch.tensor(X32), 0, dtype=torch.float64) and log_softmax likewise:
# X32 is cast to float64, then computed.
SOFTMAX_F64_PEER = [0.0034411922100294943, 0.0003121779285899678, 0.9305890677386571,
                    0.00311683474664525, 0.06254072737607813]
LOG_SOFTMAX_F64_PEER = [-5.671937294956278, -8.071937248762678, -0.07193748718125688,
                        -5.7709372963988965, -2.7719372964463935]
# torch.softmax(torch.tensor(X64), 0, dtype=torch.float32), X64 the same decimals in
# float64: cast to float32, then computed in float32.
X64 = np.array([0.1, -2.3, 5.7, 1e-3, 3.0])
SOFTMAX_F32_PEER = [0.003441191976889968, 0.0003121778427157551, 0.9305890798568726,
                    0.0031168346758931875, 0.06254072487354279]
LOG_SOFTMAX_F32_PEER = [-5.671937465667725, -8.071937561035156, -0.07193750143051147,
                        -5.770937442779541, -2.771937370300293]
# torch.softmax(torch.arange(4), 0, dtype=torch.float32): int64 input.
INT_SOFTMAX_F32_PEER = [0.032058604061603546, 0.08714432269334793, 0.23688283562660217,
                        0.6439142823219299]


@pytest.mark.parametrize("spelling", [np.float64, "float64", "f8", float, np.double,
                                      np.dtype(np.float64), np.dtype("=f8")])
def test_dtype_float64_matches_torch(spelling):
    before = X32.copy()
    p = fs.softmax(X32, dtype=spelling)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, SOFTMAX_F64_PEER, rtol=1e-15)
    logp = fs.log_softmax(X32, dtype=spelling)
    assert logp.dtype == np.float64
    # The contract's bound: torch's -0.07193748718125688 is 1.2e-15 from the exact
    # -0.0719374871812568 (mpmath), which the log1p of the dominant term gives.
    np.testing.assert_allclose(logp, LOG_SOFTMAX_F64_PEER, rtol=1e-13)
    np.testing.assert_array_equal(X32, before)  # cast into a new array, not in place
    # Computing in float32 and widening after would be off by ~1e-7: the cast comes first.
    assert not np.allclose(fs.softmax(X32).astype(np.float64), SOFTMAX_F64_PEER, rtol=1e-12)


@pytest.mark.parametrize("spelling", [np.float32, "float32", "f4", np.single, np.dtype("f4")])
def test_dtype_float32_matches_torch(spelling):
    p = fs.softmax(X64, dtype=spelling)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, SOFTMAX_F32_PEER, rtol=1e-6)
    logp = fs.log_softmax(X64, dtype=spelling)
    assert logp.dtype == np.float32
    np.testing.assert_allclose(logp, LOG_SOFTMAX_F32_PEER, rtol=1e-6)
    # The same as computing on X64 cast to float32 (cast first, then computed).
    np.testing.assert_array_equal(p, fs.softmax(X64.astype(np.float32)))
    ints = fs.softmax(np.arange(4), dtype=spelling)
    assert ints.dtype == np.float32
    np.testing.assert_allclose(ints, INT_SOFTMAX_F32_PEER, rtol=1e-6)


@pytest.mark.parametrize("func", ELEMENTWISE)
@pytest.mark.parametrize("bad", [np.int32, int, "int64", np.int16, np.uint16, bool, complex,
                                 np.complex64, str, "U3", object, "foo", 3, np.dtype(">f8"),
                                 np.dtype(">f4"), np.dtype(">f2"), "f4,f4", np.ones(2)])
def test_dtype_other_than_a_float_one_raises_before_writing(func, bad):
    x = np.ones((2, 3), np.float32)
    out = np.full((2, 3), 7.0, np.float32)
    _unchanged_on_error(lambda x, out: func(x, dtype=bad, out=out), x, out, TypeError,
                        r"dtype must name float32, float64, float16 or bfloat16 \(in the "
                        r"machine's byte order\), got ")
    with pytest.raises(TypeError,
                       match="dtype must name float32, float64, float16 or bfloat16, got "):
        getattr(reference, func.__name__)(x, dtype=bad)


@pytest.mark.parametrize("func", ELEMENTWISE)
def test_dtype_and_out(func):
    x32 = X32.reshape(1, 5)
    # out must have the requested dtype, not x's.
    _unchanged_on_error(lambda x, out: func(x, dtype=np.float64, out=out), x32,
                        np.full_like(x32, 7.0), TypeError,
                        r"out must have dtype float64 \(the result's\), got float32")
    out64 = np.full(x32.shape, 7.0)
    assert func(x32, dtype=np.float64, out=out64) is out64
    np.testing.assert_array_equal(out64, func(x32, dtype=np.float64))
    # In place needs x of the requested dtype already.
    _unchanged_on_error(lambda x, out: func(x, dtype=np.float64, out=out), x32.copy(),
                        x32.copy(), TypeError, "out must have dtype float64")
    x64 = X64.reshape(1, 5).copy()
    expected = func(x64)
    assert func(x64, dtype="float64", out=x64) is x64
    np.testing.assert_array_equal(x64, expected)
    # dtype=None is the default.
    np.testing.assert_array_equal(func(x32, dtype=None), func(x32))


@pytest.mark.parametrize("func", ELEMENTWISE)
@pytest.mark.parametrize("dtype", FLOATS)
def test_dtype_with_the_other_arguments(rng, func, dtype):
    x = rng.standard_normal((3, 4, 5)).astype(np.float64 if dtype is np.float32 else np.float32)
    where = rng.random((4, 5)) < 0.8
    got = func(x, (0, 2), dtype=dtype, where=where, temperature=2.0, n_threads=2)
    assert got.dtype == dtype
    expected = getattr(reference, func.__name__)(x, (0, 2), dtype=dtype, where=where,
                                                 temperature=2.0)
    assert expected.dtype == dtype
    check = check_softmax if func is fs.softmax else check_log_softmax
    check(got, x.astype(dtype), (0, 2), 2.0, dtype, where)
    # float16 input and 0-d input take dtype= too.
    assert func(np.float16([1, 2]), dtype=np.float64).dtype == np.float64
    assert func(np.float16(1), 0, dtype=np.float32).dtype == np.float32
    # A temperature whose inverse overflows float32 still works (computed in float64).
    check(func(x, dtype=dtype, temperature=1e-39), x.astype(dtype), -1, 1e-39, dtype)


def test_dtype_against_live_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 7)).astype(np.float32) * 4
    for dim in (0, 1, -1):
        for fs_func, torch_func in ((fs.softmax, torch.softmax),
                                    (fs.log_softmax, torch.log_softmax)):
            for np_dtype, torch_dtype in ((np.float64, torch.float64),
                                          (np.float32, torch.float32)):
                for source in (x, x.astype(np.float64)):
                    expected = torch_func(torch.from_numpy(source), dim, dtype=torch_dtype)
                    got = fs_func(source, dim, dtype=np_dtype)
                    assert got.dtype == np_dtype
                    np.testing.assert_allclose(got, expected.numpy(), rtol=RTOL[np_dtype],
                                               atol=RTOL[np_dtype])
