"""softmax_backward and log_softmax_backward against the reference and finite differences."""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import reference
from conftest import CHUNK, random_logits
from test_exp import LAST_FINITE

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


# exp's arguments at the top of the range: finite results up to the largest argument with a
# finite exp (88.72283, 709.782712893384), +inf above it, and both sides of 127.5 ln 2 (1023.5 ln 2),
# where round(y / ln 2) reaches 128 (1024) and 2^n alone is no longer a float.
TOP_OF_EXP = {
    np.float32: [0.0, 1.0, 88.0, 88.3762, 88.37628, 88.5, LAST_FINITE[np.float32], 88.72284, 89.0, 1000.0],
    np.float64: [0.0, 1.0, 709.0, 709.4361393, 709.4361394, 709.6, LAST_FINITE[np.float64],
                 709.7827128933841, 710.0, 1e300],
}


def _as_panel_and_row(g, y):
    """(g, y, axis) as given, along the last axis, and transposed to a panel along axis 0."""
    yield g, y, -1
    yield np.ascontiguousarray(g.T), np.ascontiguousarray(y.T), 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_backward_saturates_like_the_reference(isa, dtype):
    # Not a log-probability, but the formula holds: exp(y) * sum(g) is the reference's huge finite
    # number, or overflows to -inf or +inf where it does, never NaN from exp itself.
    top = np.array(TOP_OF_EXP[dtype], dtype)
    y = np.tile(np.tile(top, 5), (6, 1))  # 50 long: vectors and a tail on every ISA
    g = np.zeros_like(y)
    g[:, 0] = [1.0, -1.0, 0.5, 2.0, 1e-30, 0.0]  # sum(g) of each row
    for gs, ys, axis in _as_panel_and_row(g, y):
        ref = reference.log_softmax_backward(gs, ys, axis)
        # The reference's exp is float64's.  In float32, exp(y) is +inf above 88.72283, and so
        # is |exp(y) * sum(g)|, whatever sum(g) (inf * 0 = NaN, as in the reference above 709.78).
        sums = np.broadcast_to(gs.sum(axis, keepdims=True), gs.shape)
        over = ys > LAST_FINITE[dtype]
        with np.errstate(invalid="ignore"):
            ref[over] = -np.inf * np.sign(sums[over])
        got = fs.log_softmax_backward(gs, ys, axis)
        assert np.isinf(ref).any() and (np.abs(ref[np.isfinite(ref)]) > 1e38).any()
        np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=0)  # inf and NaN where ref has them
        assert not np.isnan(got[sums != 0]).any()


def test_log_softmax_backward_issue_examples(isa):
    # The reference's values (fastsoftmax.reference, float64 NumPy), which NaN replaced before.
    got = fs.log_softmax_backward(np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 88.5]], np.float32))
    np.testing.assert_allclose(got, [[0.0, -2.723088e38]], rtol=TOL[np.float32])
    got = fs.log_softmax_backward(np.array([1.0]), np.array([709.6]))
    np.testing.assert_allclose(got, [-1.4974914744969295e308], rtol=TOL[np.float64])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward_saturates_like_the_reference(isa, dtype):
    # Outputs as large as exp's largest finite results: y * (g - sum(g * y)) is huge and finite or
    # overflows as in the reference (sums themselves kept within the float range).
    top = np.exp(np.array(TOP_OF_EXP[dtype][:7], np.float64)).astype(dtype)  # up to the largest finite
    y = np.tile(np.tile(np.append(top, dtype(1e-30)), 5), (4, 1))
    g = np.zeros_like(y)
    g[:, 1] = [1.0, -1.0, 0.25, 1e-30]  # sum(g * y) = g[1] * e: finite
    for gs, ys, axis in _as_panel_and_row(g, y):
        ref = reference.softmax_backward(gs, ys, axis)
        got = fs.softmax_backward(gs, ys, axis)
        assert np.isinf(ref).any() and not np.isnan(ref).any()
        np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=0)


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


@pytest.mark.parametrize("n", [4, 40, 2 * CHUNK + 5])
@pytest.mark.parametrize("layout", ["row", "panel"])
def test_float32_sum_that_overflows_float(isa, n, layout):
    """softmax_backward of outputs far from probabilities (1e38): sum(g * y) = 4e38 overflows
    float32, not double.  Only the entries whose own result overflows become infinite, as in
    the reference; before, the whole slice was -inf.  Every layout, 1 and 3 threads."""
    g = np.zeros(n, np.float32)
    y = np.linspace(0.0, 1e-3, n).astype(np.float32)  # times -4e38: finite
    g[:2], y[:2] = 2.0, 1e38
    y[2] = 1e-30
    if layout == "panel" and n > 100:
        return  # the panel path has no long-row split
    ref = reference.softmax_backward(g, y)
    assert np.isfinite(ref[2:]).all() and np.isinf(ref[:2]).all()
    if layout == "row":
        got = [fs.softmax_backward(g[None], y[None], n_threads=t)[0] for t in (1, 3)]
    else:  # the same slice down a leading axis, beside columns of ordinary values
        gp = np.stack([g, np.zeros(n, np.float32)], axis=1)
        yp = np.stack([y, np.full(n, 1.0 / n, np.float32)], axis=1)
        got = [fs.softmax_backward(gp, yp, axis=0, n_threads=t)[:, 0] for t in (1, 3)]
    np.testing.assert_allclose(got[0], ref, rtol=2e-6)
    np.testing.assert_array_equal(got[1], got[0])


def _opposite_overflows(n, dtype, first, last):
    """g, y whose products at `first` and `last` overflow with opposite signs; the rest 0.1."""
    big = {np.float32: 1e20, np.float64: 1e300}[dtype]
    g = np.ones(n, dtype)
    y = np.full(n, 0.1, dtype)
    g[first], y[first] = big, big
    g[last], y[last] = -big, big
    return g, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 17, 33, 64, 65, 129, 2 * CHUNK + 5])
@pytest.mark.parametrize("layout", ["row", "panel"])
def test_products_that_overflow_with_opposite_signs(isa, dtype, n, layout):
    """softmax_backward where two products g * y overflow with opposite signs, at every pair of
    places a vector, a block, a chunk and a tail put them.  The reference's sum is inf - inf:
    float64 gives a NaN slice, whatever the order (before, the vector pass fused each product
    into its sum and the slice came out +inf or -inf by which came last).  float32's products
    do not overflow in double: its slice is finite but where its own entries overflow, as
    the reference's (whose values there depend on the order of the sum: 1e40 + 0.1 - 1e40
    is 0 in double).  Rows on 1 and 3 threads (a long row is split), and panels."""
    if layout == "panel" and n > 200:
        return  # the panel path has no long-row split
    places = sorted({0, 1, n // 2, n - 2, n - 1})
    for first, last in ((a, b) for a in places for b in places if a != b):
        g, y = _opposite_overflows(n, dtype, first, last)
        ref = reference.softmax_backward(g, y)
        if layout == "row":
            got = [fs.softmax_backward(g[None], y[None], n_threads=t)[0] for t in (1, 3)]
        else:  # down a leading axis, beside a column of ordinary values
            gp = np.stack([g, np.ones(n, dtype)], axis=1)
            yp = np.stack([y, np.full(n, 1.0 / n, dtype)], axis=1)
            got = [fs.softmax_backward(gp, yp, axis=0, n_threads=t)[:, 0] for t in (1, 3)]
        where = f"{first} and {last}"
        if dtype == np.float64:
            assert np.isnan(ref).all()
            assert np.isnan(got[0]).all(), where
        else:
            np.testing.assert_array_equal(np.isfinite(got[0]), np.isfinite(ref), err_msg=where)
            np.testing.assert_array_equal(got[0][~np.isfinite(ref)], ref[~np.isfinite(ref)])
        np.testing.assert_array_equal(got[1], got[0])
