"""softmax_backward and log_softmax_backward against the reference and finite differences."""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import reference
from conftest import random_logits

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-6, np.float64: 1e-13}
SHAPES = [((3, 1), -1), ((4, 7), -1), ((5, 64), -1), ((3, 129), 1), ((2, 50000), -1),
          ((9, 17, 5), 1), ((9, 17, 5), 0), ((4, 3, 33), None), ((40, 70), 0)]


def _pair(shape, dtype, axis, log):
    x = random_logits(shape, dtype, seed=sum(shape))
    y = (fs.log_softmax if log else fs.softmax)(x, axis)
    g = random_logits(shape, dtype, seed=1, scale=1.0)
    return g, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("log", [False, True])
def test_against_reference(isa, dtype, shape, axis, log):
    g, y = _pair(shape, dtype, axis, log)
    func = fs.log_softmax_backward if log else fs.softmax_backward
    ref = (reference.log_softmax_backward if log else reference.softmax_backward)(g, y, axis)
    got = func(g, y, axis)
    assert got.dtype == dtype
    # Entries are differences of like-sized terms: compare on the scale of the slice.
    scale = np.abs(g).max() * (1 + np.abs(ref).max())
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * scale)
    for n_threads in (2, 3):
        np.testing.assert_array_equal(func(g, y, axis, n_threads=n_threads), got)


@pytest.mark.parametrize("log", [False, True])
def test_finite_differences(log):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6))
    upstream = rng.standard_normal((3, 6))
    forward = fs.log_softmax if log else fs.softmax
    backward = fs.log_softmax_backward if log else fs.softmax_backward
    for axis in (0, 1):
        analytic = backward(upstream, forward(x, axis), axis)
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[i] += 1e-6
            down[i] -= 1e-6
            numeric[i] = ((forward(up, axis) - forward(down, axis)) * upstream).sum() / 2e-6
        np.testing.assert_allclose(analytic, numeric, atol=1e-8)


@pytest.mark.parametrize("log", [False, True])
def test_out_may_be_either_input(log):
    g, y = _pair((6, 300), np.float64, -1, log)
    func = fs.log_softmax_backward if log else fs.softmax_backward
    expected = func(g, y)
    for which in ("g", "y"):
        g2, y2 = g.copy(), y.copy()
        target = g2 if which == "g" else y2
        assert func(g2, y2, out=target) is target
        np.testing.assert_array_equal(target, expected)


def test_mixed_dtypes_promote():
    g, y = _pair((2, 5), np.float32, -1, False)
    assert fs.softmax_backward(g, y.astype(np.float64)).dtype == np.float64
    assert fs.softmax_backward(g.astype(np.float16), y).dtype == np.float32


def test_log_softmax_backward_with_positive_output():
    # Not a log-probability, but the formula still holds: exp must not overflow wrongly.
    g = np.array([[1.0, 1.0, 1.0]])
    y = np.array([[0.5, 100.0, 800.0]])
    np.testing.assert_allclose(fs.log_softmax_backward(g, y), reference.log_softmax_backward(g, y))


@pytest.mark.parametrize("func", [fs.softmax_backward, fs.log_softmax_backward])
def test_errors(func):
    with pytest.raises(ValueError, match=r"grad_output and output must have the same shape, got \(2, 3\) and \(3, 2\)"):
        func(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="grad_output must hold real numbers"):
        func(np.ones(3, complex), np.ones(3))
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        func(np.ones((2, 3)), np.ones((2, 3)), 3)
    out = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="out must have dtype float64"):
        func(np.ones((2, 3)), np.ones((2, 3)), out=out)
