"""logsumexp's ``b=`` (weights) and ``return_sign=``: SciPy's semantics, on SciPy's own edge cases.

The expected values were computed once with SciPy 1.17.1
(``scipy.special.logsumexp``), and the exact ones with mpmath at 60 digits;
they are written here so that the tests run without SciPy and do not move with
its version.  The live comparisons below run where SciPy is installed.
"""
import math

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import reference
from fastsoftmax._testing import RTOL, check_logsumexp

inf, nan = np.inf, np.nan

# (x, b, SciPy 1.17.1's (log|sum|, sign) with return_sign=True).  Without
# return_sign, the value is the same where the sign is not negative, NaN where it is.
SCIPY_CASES = [
    ([1.0, 10000.0], [1, 0], (1.0, 1.0)),  # SciPy's test_logsumexp_b_zero
    ([1.0, 1.0, 1.0], [1, -1, -1], (1.0, -1.0)),  # test_logsumexp_sign
    ([1.0, 1.0], [1, -1], (-inf, 0.0)),  # test_logsumexp_sign_zero: exact cancellation
    ([1.0, 2.0], [1, -1], (1.5413248546129181, -1.0)),  # SciPy's docstring example
    ([2.0, 1.0], [1, -1], (1.5413248546129181, 1.0)),  # test_dtypes_ab: log(e^2 - e)
    ([1000.0, 1000.0], [1.2, 1.2], (1000.8754687373539, 1.0)),  # test_logsumexp_b
    ([3.06409428, 0.37251854, 3.87471931], [1.88190708, 2.84174795, -0.85016884],
     (1.245216515790739, 1.0)),  # test_gh22903: the largest term negative, the sum not
    ([3.06409428, 0.37251854, 3.87471931], [1.88190708, 2.84174795, -3.85016884],
     (4.948999865385332, -1.0)),  # test_gh22903: a negative sum
    ([0.0, -40.0], [1, 1], (4.248354255291589e-18, 1.0)),  # gh-18295, with weights
    ([0.0, -40.0], [1, -1], (-4.248354255291589e-18, 1.0)),
    ([0.0, -40.0], [-1, 1], (-4.248354255291589e-18, -1.0)),
    ([-inf, 1.0], [0, 1], (1.0, 1.0)),  # -inf with b = 0
    ([-inf, -inf], [1, 1], (-inf, 0.0)),
    ([-inf], [-1], (-inf, 0.0)),
    ([inf, 1.0], [0, 1], (1.0, 1.0)),  # b = 0 hides inf and NaN
    ([nan, 1.0], [0, 1], (1.0, 1.0)),
    ([inf, -inf], [-1, 0], (inf, -1.0)),
    ([inf, 1.0], [-1, 1], (inf, -1.0)),  # inf with a negative b
    ([inf], [-1], (inf, -1.0)),  # test_gh23548
    ([inf, inf], [1, 1], (inf, 1.0)),
    ([inf, inf], [1, -1], (nan, nan)),  # inf - inf
    ([1.0, 2.0], [0, 0], (-inf, 0.0)),  # all-zero b
    ([1.0, 2.0], [nan, 1], (nan, nan)),
    ([1.0, nan], [1, 1], (nan, nan)),
    ([nan], [nan], (nan, nan)),
    ([1.0, 2.0], [inf, 1], (inf, 1.0)),
    ([1.0, 2.0], [-inf, 1], (inf, -1.0)),
    ([1.0, 2.0], [inf, -inf], (nan, nan)),
]

# Where fastsoftmax differs from SciPy 1.17.1 on purpose (see logsumexp's Notes):
# (x, b, SciPy's (value, sign), the exact (value, sign), from mpmath).
DIFFERENT_FROM_SCIPY = [
    # The weights of the maximum cancel; SciPy's fallback overflows (inf - inf).
    ([1000.0, 1000.0, 999.0], [1, -1, 1], (nan, nan), (999.0, 1.0)),
    # An infinite term decides alone; SciPy overflows e^800 and gets inf - inf.
    ([inf, 800.0], [1, -1], (nan, nan), (inf, 1.0)),
    # b = 0 leaves the term out even when every other term is 0 (SciPy: 0 * nan).
    ([-inf, nan], [1, 0], (nan, nan), (-inf, 0.0)),
    ([inf], [0], (nan, nan), (-inf, 0.0)),
    # The dominant term is the largest b exp(x), not the largest x alone.
    ([0.0, 0.0], [1, 1e-30], (0.0, 1.0), (1e-30, 1.0)),
    ([0.0, 0.0], [1e308, 1e308], (inf, 1.0), (709.889355822726, 1.0)),
    ([1000.0, 0.0], [1e-300, 1e300], (309.2244721017863, 1.0), (690.7755278982137, 1.0)),
]


def assert_same(got, expected, rtol):
    """Equal specials (NaN, infinities) and signs; finite values within ``rtol``."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=0)


EXACT_CASES = SCIPY_CASES + [(x, b, exact) for x, b, _, exact in DIFFERENT_FROM_SCIPY]


@pytest.mark.parametrize("x,b,expected", EXACT_CASES)
def test_edge_cases_float64(x, b, expected):
    value, sign = fs.logsumexp(np.array(x), b=np.array(b, np.float64), return_sign=True)
    assert_same(value, expected[0], rtol=RTOL[np.dtype(np.float64)])
    assert_same(sign, expected[1], rtol=0)
    plain = fs.logsumexp(np.array(x), b=np.array(b, np.float64))
    assert_same(plain, nan if expected[1] < 0 else expected[0], rtol=RTOL[np.dtype(np.float64)])
    ref_value, ref_sign = reference.logsumexp(x, b=b, return_sign=True)
    assert_same(ref_sign, expected[1], rtol=0)
    sizes = np.abs(np.array(b, np.float64))
    sizes = sizes[sizes > 0]
    if sizes.size and sizes.max() < 1e300 and sizes.max() / sizes.min() < 1e200:
        # (beyond, the reference's terms b exp(x - max) under- or overflow: its docstring)
        assert_same(ref_value, expected[0], rtol=RTOL[np.dtype(np.float64)])


@pytest.mark.parametrize("x,b,expected", SCIPY_CASES)
def test_edge_cases_float32(x, b, expected):
    x32, b32 = np.array(x, np.float32), np.array(b, np.float32)
    value, sign = fs.logsumexp(x32, b=b32, return_sign=True)
    assert value.dtype == sign.dtype == np.float32
    exact, exact_sign = reference.logsumexp(x32.astype(np.float64), b=b32.astype(np.float64),
                                            return_sign=True)  # the float32 inputs, exactly
    assert_same(value, exact, rtol=RTOL[np.dtype(np.float32)])
    assert_same(sign, exact_sign, rtol=0)
    assert_same(sign, expected[1], rtol=0)


def test_results_near_zero_keep_their_relative_precision():
    # mpmath: log(1 + e^-40), log(1 - e^-40), log(1 + e^-20), log(0.5 - 0.25/e + 1e-10/e^2).
    assert fs.logsumexp(np.array([0.0, -40.0]), b=np.ones(2)) == 4.248354255291589e-18
    assert fs.logsumexp(np.array([0.0, -40.0]), b=np.array([1.0, -1.0])) == -4.248354255291589e-18
    got32 = fs.logsumexp(np.array([0.0, -20.0], np.float32), b=np.ones(2, np.float32))
    assert got32.dtype == np.float32
    assert abs(got32 / 2.061153620314381e-09 - 1) <= RTOL[np.dtype(np.float32)]
    got = fs.logsumexp(np.array([0.0, -1.0, -2.0]), b=np.array([0.5, -0.25, 1e-10]))
    assert abs(got / -0.8964142354419726 - 1) <= RTOL[np.dtype(np.float64)]
    # A large shared offset stays exact: mpmath gives 99999999.10358576.
    offset = fs.logsumexp(np.array([1e8, 1e8 - 1, 1e8 - 50]), b=np.array([0.5, -0.25, 3.0]))
    assert abs(offset - 99999999.10358576) <= 2 * 2.0**-53 * 1e8


@pytest.mark.parametrize("scale", [1e15, 1e19, 1e30, 1e300])
@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("weights", [[1e-300, 1e300], [-1e-300, 1e300], [-0.5, 1e308],
                                     [1e300, -1e-10, 1e-300, 2.0], [-1e308, 1e-308, 1e-320]])
def test_huge_logits_with_weights_beyond_the_float_range(scale, sign, weights):
    """Equal logits so large that x + log|b| rounds log|b|'s differences away (beyond about
    3e18), weights spanning more than the float range: the dominant term is still the
    largest weight's, in every order of the terms (before, a tie picked the first, and the
    largest's ratio to it overflowed: inf, NaN or the wrong sign).  Exactly x + log|sum(b)|,
    with sum(b)'s sign."""
    b = np.array(weights)
    total = b[np.argmax(np.abs(b))]  # the others are below its rounding
    want = sign * scale + math.log(abs(total))
    for order in (b, b[::-1], np.roll(b, 1)):
        x = np.full(len(b), sign * scale)
        # one row, and beside a row of zeros (whose dominant term needs no second look)
        for rows, wants in ((x, want), (np.stack([np.zeros(len(b)), x]),
                                        np.array([math.log(abs(total)), want]))):
            weight = np.broadcast_to(order, rows.shape)
            value, got_sign = fs.logsumexp(rows, b=weight, axis=-1, return_sign=True)
            np.testing.assert_allclose(value, wants, rtol=1e-15)
            np.testing.assert_array_equal(got_sign, np.sign(total))
            unsigned = fs.logsumexp(rows, b=weight, axis=-1)  # NaN for a negative sum
            np.testing.assert_allclose(unsigned, wants if total > 0 else np.nan, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1, None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_random_weights_against_the_reference(dtype, axis, keepdims):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((7, 300)) * 10).astype(dtype)
    b = rng.standard_normal((7, 300)).astype(dtype)
    b[:, ::7] = 0.0
    b[2] = np.abs(b[2])  # a row of one sign
    value, sign = fs.logsumexp(x, axis, b=b, return_sign=True, keepdims=keepdims)
    assert np.asarray(value).dtype == np.asarray(sign).dtype == dtype
    check_logsumexp(value, x, axis, keepdims, b=b, sign=sign)
    check_logsumexp(fs.logsumexp(x, axis, b=b, keepdims=keepdims), x, axis, keepdims, b=b)
    # Unweighted with return_sign: the kernels' value, bitwise, and a sign of 1.
    plain, plain_sign = fs.logsumexp(x, axis, return_sign=True, keepdims=keepdims)
    np.testing.assert_array_equal(plain, fs.logsumexp(x, axis, keepdims=keepdims))
    np.testing.assert_array_equal(plain_sign, np.ones_like(plain_sign))


def test_broadcasting_x_and_b_against_each_other():
    # SciPy's test_logsumexp_b_shape: x (4, 1, 2, 1) and b (3, 1, 5) broadcast to (4, 3, 2, 5).
    x, b = np.zeros((4, 1, 2, 1)), np.ones((3, 1, 5))
    assert fs.logsumexp(x, b=b).shape == (4, 3, 2)
    assert fs.logsumexp(x, None, b=b) == pytest.approx(math.log(120))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    for b in [rng.standard_normal(4), rng.standard_normal((3, 1)), -2.0, [[1.0], [0.0], [-1.0]]]:
        for axis in (0, 1, None):
            value, sign = fs.logsumexp(x, axis, b=b, return_sign=True)
            check_logsumexp(value, x, axis, b=b, sign=sign)
            with np.errstate(divide="ignore"):  # (a row of b == 0: log(0) = -inf)
                expected = np.log(np.abs(np.sum(b * np.exp(x), axis=axis)))
            np.testing.assert_allclose(value, expected, rtol=1e-12)


# Several axes and 0-d input with b, as without b (and as SciPy reads them).  X (2, 3, 2)
# and B (3, 2), broadcast over X's first axis; SciPy 1.17.1's
# logsumexp(X, axis, b=B, return_sign=True): {axis: (log|sum|, sign)}.
X_AXES = np.array([[[0.5, -1.0], [2.0, 0.0], [1.0, 3.0]],
                   [[-2.0, 1.5], [0.25, -0.5], [4.0, 1.0]]])
B_AXES = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]])
SCIPY_AXES = {
    (0, 2): ([2.0687698599372997, 1.4670769698781418, 2.4064967549704104], [-1.0, 1.0, 1.0]),
    (1, 2): ([4.129483549063914, 4.000571003985725], [1.0, -1.0]),
    (0, 1): ([3.935658172287748, 4.072649572479668], [-1.0, 1.0]),
    (0, 1, 2): (2.0170985661755783, 1.0),
    (): ([[[0.5, -0.3068528194400547], [1.3068528194400546, -inf], [1.0, 4.09861228866811]],
          [[-2.0, 2.1931471805599454], [-0.4431471805599453, -inf], [4.0, 2.09861228866811]]],
         [[[1.0, -1.0], [1.0, 0.0], [-1.0, 1.0]], [[1.0, -1.0], [1.0, 0.0], [-1.0, 1.0]]]),
}


@pytest.mark.parametrize("axis", list(SCIPY_AXES))
def test_several_axes_match_scipy(axis):
    expected_value, expected_sign = SCIPY_AXES[axis]
    for func in (fs.logsumexp, reference.logsumexp):
        value, sign = func(X_AXES, axis, b=B_AXES, return_sign=True)
        assert_same(value, expected_value, rtol=RTOL[np.dtype(np.float64)])
        assert_same(sign, expected_sign, rtol=0)
        plain = func(X_AXES, axis, b=B_AXES)  # a negative sum is NaN, as in SciPy
        assert_same(plain, np.where(np.array(expected_sign) < 0, nan, expected_value),
                    rtol=RTOL[np.dtype(np.float64)])
        kept = func(X_AXES, axis, b=B_AXES, keepdims=True)
        assert kept.shape == tuple(1 if i in axis else n for i, n in enumerate(X_AXES.shape))
    # (0, 1, 2) is every axis: as None; a one-axis tuple is that axis.
    np.testing.assert_array_equal(fs.logsumexp(X_AXES, None, b=B_AXES),
                                  fs.logsumexp(X_AXES, (2, 0, 1), b=B_AXES))
    np.testing.assert_array_equal(fs.logsumexp(X_AXES, (1,), b=B_AXES),
                                  fs.logsumexp(X_AXES, -2, b=B_AXES))


@pytest.mark.parametrize("axes", [(0, 2), (1, 2), (0, 1, 3), (0, 3), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_axes_with_where_out_and_threads(axes, dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((3, 4, 5, 6)) * 4).astype(dtype)
    b = rng.standard_normal((5, 6)).astype(dtype)
    b[1] = np.abs(b[1])
    where = rng.random((4, 1, 6)) < 0.7
    for keepdims in (False, True):
        value, sign = fs.logsumexp(x, axes, b=b, where=where, keepdims=keepdims,
                                   return_sign=True)
        check_logsumexp(value, x, axes, keepdims, b=b, where=where, sign=sign)
        out = np.full(np.shape(value), 12345, dtype)
        assert fs.logsumexp(x, axes, b=b, where=where, keepdims=keepdims, out=out,
                            n_threads=2) is out
        np.testing.assert_array_equal(out, np.where(sign < 0, nan, value))


# SciPy 1.17.1: logsumexp(np.float64(2.0), axis, b=-3.0, return_sign=True) is
# (log 3 + 2, -1) for axis 0, -1 and None; b=0.0 gives (-inf, 0).  (Its axis=()
# and keepdims=True give shape (1,); fastsoftmax keeps NumPy's 0-d, as without b.)
@pytest.mark.parametrize("axis", [0, -1, None, ()])
def test_0d_input_with_b(axis):
    x = np.float64(2.0)
    for func in (fs.logsumexp, reference.logsumexp):
        value, sign = func(x, axis, b=-3.0, return_sign=True)
        assert isinstance(value, np.float64) and isinstance(sign, np.float64)
        assert (value, sign) == (3.09861228866811, -1.0)
        assert np.isnan(func(x, axis, b=-3.0))
        assert func(x, axis, b=3.0) == 3.09861228866811
        assert func(x, axis, b=0.0, return_sign=True) == (-inf, 0.0)
        assert func(x, axis, b=3.0, keepdims=True).shape == ()
    assert fs.logsumexp(np.float32(2.0), axis, b=np.float32(3.0)).dtype == np.float32


def test_bad_axes_with_b_raise_before_anything_is_written():
    from numpy.exceptions import AxisError

    x, out = np.zeros((2, 3)), np.full(2, 7.0)
    for axis, error, message in [((0, 0), ValueError, "names an axis more than once"),
                                 ((0, 2), AxisError, "out of range"),
                                 ((0, 1.0), TypeError, "axis must be an int, a tuple"),
                                 ("1", TypeError, "axis must be an int, a tuple")]:
        with pytest.raises(error, match=message):
            fs.logsumexp(x, axis, b=1.0, out=out, return_sign=True)
        assert np.all(out == 7.0)
    with pytest.raises(AxisError):  # a 0-d array has no axis 0 in a tuple, as in NumPy
        fs.logsumexp(np.float64(1.0), (0,), b=2.0)


def test_where_leaves_entries_out_as_b_zero_does():
    x = np.array([[1.0, nan, 3.0], [inf, 2.0, -inf], [5.0, 6.0, 7.0]])
    b = np.array([2.0, -1.0, 0.5])
    mask = np.array([[True, False, True], [False, True, True], [False, False, False]])
    value, sign = fs.logsumexp(x, b=b, where=mask, return_sign=True)
    as_zero = fs.logsumexp(np.where(mask, x, 0.0), b=np.where(mask, b, 0.0), return_sign=True)
    np.testing.assert_array_equal(value, as_zero[0])
    np.testing.assert_array_equal(sign, as_zero[1])
    np.testing.assert_allclose(value[:2], [np.log(2 * np.e + 0.5 * np.e**3), 2.0], rtol=1e-15)
    np.testing.assert_array_equal(sign, [1.0, -1.0, 0.0])  # fully masked: a zero sum
    assert value[2] == -inf
    check_logsumexp(value, x, b=b, where=mask, sign=sign)


def test_empty():
    for kwargs in ({"b": np.ones((1, 1))}, {"b": 1.0}, {}):
        value, sign = fs.logsumexp(np.zeros((2, 0)), return_sign=True, **kwargs)
        np.testing.assert_array_equal(value, [-inf, -inf])
        np.testing.assert_array_equal(sign, [0.0, 0.0])  # SciPy 1.17.1: -1.0 (see Notes)
        value, sign = fs.logsumexp(np.zeros((0, 3)), 0, return_sign=True, **kwargs)
        np.testing.assert_array_equal(value, [-inf] * 3)
        np.testing.assert_array_equal(sign, [0.0] * 3)
        value, sign = fs.logsumexp(np.zeros((0, 3)), return_sign=True, **kwargs)
        assert value.shape == sign.shape == (0,)
    assert fs.logsumexp([], b=[]) == -inf
    ref = reference.logsumexp(np.zeros((2, 0)), b=1.0, return_sign=True)
    np.testing.assert_array_equal(ref, [[-inf, -inf], [0.0, 0.0]])


def test_shapes_scalars_and_dtypes():
    x = np.zeros((2, 3), np.float32)
    # The result dtype is NumPy's promotion, as in SciPy 1.17.1.
    assert fs.logsumexp(x, b=np.ones(3, np.float32)).dtype == np.float32
    assert fs.logsumexp(x, b=np.ones(3)).dtype == np.float64
    assert fs.logsumexp(x, b=np.ones(3, np.int64)).dtype == np.float64
    assert fs.logsumexp(x, b=np.ones(3, np.int8)).dtype == np.float32
    assert fs.logsumexp(x, b=np.ones(3, bool)).dtype == np.float32
    assert fs.logsumexp(x, b=2.0).dtype == np.float32  # a Python scalar promotes weakly
    assert fs.logsumexp(x, b=[1, 2, 3]).dtype == np.float64
    # float16 is computed as float32 (fastsoftmax's rule; SciPy returns float16).
    assert fs.logsumexp(x.astype(np.float16), b=np.ones(3, np.float16)).dtype == np.float32
    # The rule in full: b's dtype promoted with the one x's result has without b.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtypes = [np.bool_, np.int8, np.uint16, np.int64, np.float16, ml_dtypes.bfloat16,
              np.float32, np.float64]
    for x_dtype in dtypes:
        alone = fs.logsumexp(np.zeros(3, x_dtype)).dtype
        for b_dtype in dtypes:  # (a bfloat16 b counts as float32, which NumPy cannot promote)
            b_as = np.float32 if b_dtype is ml_dtypes.bfloat16 else b_dtype
            want = np.result_type(alone, b_as)
            got = fs.logsumexp(np.zeros(3, x_dtype), b=np.ones(3, b_dtype)).dtype
            assert got == want, (np.dtype(x_dtype), np.dtype(b_dtype), got, want)
    for kwargs in ({"b": 2.0}, {}):
        value, sign = fs.logsumexp(x, None, return_sign=True, **kwargs)
        assert isinstance(value, np.float32) and isinstance(sign, np.float32)
        value, sign = fs.logsumexp(x, None, return_sign=True, keepdims=True, **kwargs)
        assert value.shape == sign.shape == (1, 1)
    assert float(fs.logsumexp(x, None, b=2.0)) == pytest.approx(math.log(12), rel=1e-6)


def test_out_receives_log_abs_sum():
    x = np.array([[1.0, 2.0], [3.0, 0.0]])
    b = np.array([1.0, -1.0])
    out = np.full(2, 7.0)
    value, sign = fs.logsumexp(x, b=b, out=out, return_sign=True)
    assert value is out
    np.testing.assert_allclose(out, [math.log(math.e**2 - math.e), math.log(math.e**3 - 1)])
    np.testing.assert_array_equal(sign, [-1.0, 1.0])
    assert fs.logsumexp(x, b=b, out=out) is out
    assert np.isnan(out[0]) and out[1] == pytest.approx(math.log(math.e**3 - 1))
    # out may be memory of x or b: everything is read before out is written.
    buffer = np.array([1.0, 2.0, 3.0, 0.0])
    fs.logsumexp(buffer.reshape(2, 2), b=b, out=buffer[:2])
    np.testing.assert_array_equal(buffer[:2], out)
    scalar_out = np.empty(())
    value, sign = fs.logsumexp([1.0, 2.0], b=b, out=scalar_out, return_sign=True)
    assert value is scalar_out and sign == -1.0


def test_bad_arguments_raise_before_anything_is_written():
    x = np.zeros((2, 3))
    out = np.full(2, 7.0)
    bad = [
        ({"b": np.ones(4)}, ValueError, r"b with shape \(4,\) does not broadcast against "
                                        r"x's shape \(2, 3\)"),
        ({"b": np.ones((3, 3))}, ValueError, r"b with shape \(3, 3\)"),
        ({"b": np.ones(3, complex)}, TypeError, "b must hold real numbers.*complex128"),
        ({"b": np.array(["1", "2", "3"])}, TypeError, "b must hold real numbers"),
        ({"b": 10**400}, ValueError, "b is too large for a float"),
        ({"b": 1.0, "out": np.empty(2, np.float32)}, TypeError, "out must have dtype float64"),
        ({"b": 1.0, "out": np.empty(3)}, ValueError, r"out must have shape \(2,\)"),
        ({"b": 1.0, "n_threads": 0}, ValueError, "n_threads must be nonzero"),
        ({"b": 1.0, "n_threads": 1.5}, TypeError, "n_threads must be an int or None"),
        ({"b": 1.0, "axis": 2}, ValueError, "axis=2 is out of range"),
        ({"b": 1.0, "where": np.ones(4, bool)}, ValueError, "where with shape"),
    ]
    if np.dtype(np.longdouble).itemsize > 8:  # extended precision, where the platform has it
        bad.append(({"b": np.ones(3, np.longdouble)}, TypeError, "b must hold real numbers"))
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            fs.logsumexp(x, out=kwargs.pop("out", out), **kwargs)
        assert np.all(out == 7.0)


def test_inputs_are_not_modified_and_threads_agree():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 512))
    x[0, 0], x[1, 1] = nan, inf
    b = rng.standard_normal(512)
    b[3] = 0.0
    x_before, b_before = x.copy(), b.copy()
    one = fs.logsumexp(x, b=b, return_sign=True, n_threads=1)
    two = fs.logsumexp(x, b=b, return_sign=True, n_threads=2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(b, b_before)


def test_b_from_other_array_types():
    torch = pytest.importorskip("torch")
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    b = np.array([1.0, -0.5, 2.0])
    expected = fs.logsumexp(x, b=b)
    np.testing.assert_array_equal(fs.logsumexp(x, b=torch.from_numpy(b)), expected)
    np.testing.assert_array_equal(fs.logsumexp(torch.from_numpy(x), b=memoryview(b)), expected)


# ---------------------------------------------------------------- live, against SciPy


@pytest.mark.parametrize("x,b,expected", SCIPY_CASES)
def test_edge_cases_match_scipy_live(x, b, expected):
    special = pytest.importorskip("scipy.special")
    scipy = pytest.importorskip("scipy")
    if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 17):
        pytest.skip("the edge cases' values are SciPy 1.17's (older versions differ)")
    with np.errstate(all="ignore"):
        theirs = special.logsumexp(np.array(x), b=np.array(b, np.float64), return_sign=True)
    ours = fs.logsumexp(np.array(x), b=np.array(b, np.float64), return_sign=True)
    assert_same(ours[0], theirs[0], rtol=RTOL[np.dtype(np.float64)])
    assert_same(ours[1], theirs[1], rtol=0)


@pytest.mark.parametrize("x,b,theirs,exact", DIFFERENT_FROM_SCIPY)
def test_scipy_values_where_fastsoftmax_differs(x, b, theirs, exact):
    """The table's SciPy values are SciPy 1.17's (the differences the docs describe)."""
    scipy = pytest.importorskip("scipy")
    special = pytest.importorskip("scipy.special")
    if not scipy.__version__.startswith("1.17."):
        pytest.skip("the values were taken from SciPy 1.17")
    with np.errstate(all="ignore"):
        value, sign = special.logsumexp(np.array(x), b=np.array(b, np.float64), return_sign=True)
    assert_same(value, theirs[0], rtol=RTOL[np.dtype(np.float64)])
    assert_same(sign, theirs[1], rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, 2, None])
def test_random_weights_match_scipy_live(dtype, axis):
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 4, 50)) * 3).astype(dtype)
    b = np.abs(rng.standard_normal((4, 1))).astype(dtype) + 0.1  # one sign: well conditioned
    signed = rng.standard_normal(50).astype(dtype)
    for weights in (b, -b):
        for keepdims in (False, True):
            ours = fs.logsumexp(x, axis, b=weights, keepdims=keepdims, return_sign=True)
            theirs = special.logsumexp(x, axis, b=weights, keepdims=keepdims, return_sign=True)
            for mine, scipys in zip(ours, theirs):
                assert np.asarray(mine).dtype == np.asarray(scipys).dtype
                np.testing.assert_allclose(mine, scipys, rtol=10 * RTOL[np.dtype(dtype)])
    ours = fs.logsumexp(x, axis, b=signed, return_sign=True)
    theirs = special.logsumexp(x.astype(np.float64), axis, b=signed.astype(np.float64),
                               return_sign=True)
    np.testing.assert_array_equal(ours[1], theirs[1])  # the signs of a mixed-sign sum


@pytest.mark.parametrize("axis", [(0, 2), (1, 2), (0, 1, 2), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_axes_and_0d_match_scipy_live(axis, dtype):
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    b = (np.abs(rng.standard_normal((4, 1))) + 0.1).astype(dtype)  # one sign
    for weights in (b, -b):
        for keepdims in (False, True):
            ours = fs.logsumexp(x, axis, b=weights, keepdims=keepdims, return_sign=True)
            theirs = special.logsumexp(x, axis, b=weights, keepdims=keepdims, return_sign=True)
            for mine, scipys in zip(ours, theirs):
                assert np.shape(mine) == np.shape(scipys)
                np.testing.assert_allclose(mine, scipys, rtol=10 * RTOL[np.dtype(dtype)])
    # 0-d input (SciPy's axis=() gives it shape (1,), fastsoftmax NumPy's 0-d: not compared).
    x0 = np.array(1.5, dtype)
    for axis0 in (0, -1, None):
        for weights in (-2.0, np.array([0.5, -1.0], dtype)):  # (a 1-d b makes x 1-d)
            ours = fs.logsumexp(x0, axis0, b=weights, return_sign=True)
            theirs = special.logsumexp(x0, axis0, b=weights, return_sign=True)
            np.testing.assert_allclose(ours, theirs, rtol=RTOL[np.dtype(dtype)])


def test_the_documented_cancellation_against_the_dominant_term():
    """The docstring's example of a sum cancelled far below its dominant term (a difference
    from SciPy it lists): if this changes, the docstring must too."""
    got = fs.logsumexp(np.array([0.0, 0.0, -50.0]), b=np.array([1.0, -1.0, 1.0]),
                       return_sign=True)
    assert got == (-np.inf, 0.0)
    assert "logsumexp([0, 0, -50], b=[1, -1, 1])" in fs.logsumexp.__doc__.replace("\n", " ")


def test_the_documented_differences_from_scipy_in_shapes_and_signs():
    """The docstring's list of where SciPy 1.17 differs: what fastsoftmax gives there."""
    for b in (None, 2.0):
        # axis=() reduces nothing, an empty array included
        assert fs.logsumexp(np.zeros((2, 0)), axis=(), b=b).shape == (2, 0)
        # a 0-d x keeps 0 dimensions with keepdims=True or axis=()
        assert np.shape(fs.logsumexp(np.array(1.0), keepdims=True, b=b)) == ()
        assert np.shape(fs.logsumexp(np.array(1.0), axis=(), b=b)) == ()
    # a negative sum that underflows is NaN without return_sign, as every negative sum
    x, b = np.array([0.0, -1000.0]), np.array([0.0, -1.0])
    assert np.isnan(fs.logsumexp(x, b=b))
    assert fs.logsumexp(x, b=b, return_sign=True) == (-1000.0, -1.0)  # log|sum| does not underflow
