"""The numerics contract (fastsoftmax.reference's table, the README's Numerics section), row by row, on every instruction set and path.

| case               | softmax    | log_softmax | logsumexp |
| a NaN in the slice | NaN slice  | NaN slice   | NaN       |
| an all -inf slice  | NaN        | NaN         | -inf      |
| a +inf entry       | NaN slice  | NaN slice   | +inf      |
| empty reduced axis | empty      | empty       | -inf      |
| 1e8 shared offset  | exact shift invariance (tests/test_softmax.py) | no cancellation |
"""
import math

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from fastsoftmax._testing import check_softmax

DTYPES = [np.float32, np.float64]
# Row lengths that put the special value in a full vector, an unrolled block,
# a partial tail, and a second chunk.
LENGTHS = [1, 5, 16, 37, 300, 20000]


def _row_with(n, dtype, value, position):
    x = np.linspace(-3, 3, n).astype(dtype)
    x[position % n] = value
    return x


def _slices_of_every_layout(dtype, value):
    """(array, axis, index of the slice that holds `value`) for rows, panels and long rows."""
    for n in LENGTHS:
        for position in (0, n // 2, n - 1):
            rows = np.stack([np.linspace(-2, 2, n).astype(dtype), _row_with(n, dtype, value, position),
                             np.linspace(2, -2, n).astype(dtype)])
            yield rows, -1, (1, slice(None))
            yield np.ascontiguousarray(rows.T), 0, (slice(None), 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value,lse", [(np.nan, np.nan), (np.inf, np.inf)])
def test_nan_or_plus_inf_poisons_only_its_slice(isa, dtype, value, lse):
    for x, axis, bad in _slices_of_every_layout(dtype, value):
        for n_threads in (1, 2):
            for func in (fs.softmax, fs.log_softmax):
                y = func(x, axis, n_threads=n_threads)
                assert np.isnan(y[bad]).all(), (func.__name__, x.shape, axis)
                good = np.delete(y, 1, axis=0 if axis == -1 else 1)
                assert np.isfinite(good).all()
            s = fs.logsumexp(x, axis, n_threads=n_threads)
            np.testing.assert_array_equal(s[1], dtype(lse))
            assert np.isfinite(np.delete(s, 1)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_beats_inf_in_logsumexp(isa, dtype):
    for n in LENGTHS:
        for row in ([np.inf, np.nan], [np.nan, np.inf], [-np.inf, np.nan], [np.nan, -np.inf]):
            x = np.resize(np.array(row, dtype), n if n > 1 else 2)
            assert np.isnan(fs.logsumexp(x)), (n, row)
            assert np.isnan(fs.logsumexp(x[:, None], axis=0)).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", LENGTHS)
def test_all_minus_inf_slice(isa, dtype, n):
    x = np.full((3, n), -np.inf, dtype)
    x[0] = 0.0
    for axis, xs in ((-1, x), (0, np.ascontiguousarray(x.T))):
        for func in (fs.softmax, fs.log_softmax):
            y = func(xs, axis)
            y = y if axis == -1 else y.T
            assert np.isnan(y[1:]).all() and np.isfinite(y[0]).all()
        np.testing.assert_array_equal(fs.logsumexp(xs, axis)[1:], -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_some_minus_inf_entries_are_zero_probability(isa, dtype):
    x = np.array([[0.0, -np.inf, 1.0, -np.inf] * 9], dtype)
    p = fs.softmax(x)
    assert (p[:, 1::2] == 0).all()
    np.testing.assert_allclose(p, reference.softmax(x), rtol=1e-6)
    assert (fs.log_softmax(x)[:, 1::2] == -np.inf).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_reduced_axis(dtype):
    x = np.empty((3, 0), dtype)
    assert fs.softmax(x).shape == (3, 0)
    assert fs.log_softmax(x).shape == (3, 0)
    np.testing.assert_array_equal(fs.logsumexp(x), np.full(3, -np.inf, dtype))
    np.testing.assert_array_equal(fs.logsumexp(np.empty((0, 4), dtype), axis=0), np.full(4, -np.inf))
    assert fs.logsumexp(np.empty(0, dtype)) == -np.inf
    assert fs.softmax(np.empty((0, 5), dtype)).shape == (0, 5)
    assert fs.logsumexp(np.empty((0, 5), dtype)).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("magnitude", [1e4, 1e8, 1e30])
def test_huge_logits_do_not_overflow(isa, dtype, magnitude):
    x = np.array([[magnitude, magnitude, -magnitude, magnitude * 0.5]], dtype)
    p = fs.softmax(x)
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(fs.log_softmax(x)[0, :2], -np.log(2), rtol=1e-6)
    expected = float(x[0, 0]) + np.log(2)
    np.testing.assert_allclose(fs.logsumexp(x), [expected], rtol=np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_offset_does_not_cancel_in_logsumexp(dtype):
    x = np.full(1000, 1e8, dtype)
    np.testing.assert_allclose(fs.logsumexp(x), 1e8 + np.log(1000), rtol=np.finfo(dtype).eps)
    x = np.array([1e8, 1e8 - 1], np.float64)
    assert abs(fs.logsumexp(x) - (1e8 + np.log1p(np.exp(-1.0)))) <= 2 * np.spacing(1e8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_temperatures(dtype):
    x = np.array([[1.0, 2.0, 3.0]], dtype)
    np.testing.assert_array_equal(fs.softmax(x, temperature=1e-30), [[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(fs.softmax(x, temperature=1e30), [[1 / 3] * 3], rtol=1e-6)


def test_subnormal_outputs_flush_to_zero_not_garbage(isa):
    x = np.array([0.0, -88.0, -100.0, -103.0, -200.0], np.float32)
    p = fs.softmax(x)
    assert p[0] == 1.0 and (p[1:] >= 0).all() and (p[1:] < 2e-38).all()


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2, 9, 17, 40, 300, 1100])
def test_a_max_of_both_signed_zeros_gives_one_result(isa, dtype, n):
    """A row whose max is both +0 and -0 gives the same bits whichever sits where.

    A vector's lanes are reduced in a tree (fs_vector.h, vmax_lanes), which may pick
    either zero as the max; x - max, exp and the log then give the same result
    for both.  The zeros sit in lanes that meet at the tree's first and last levels,
    in two vectors of one row, and at the row's two ends.
    """
    lanes = _core.kernel_info()[isa]["float32" if dtype == np.float32 else "float64"]["lanes"]
    for p, q in {(0, 1), (0, lanes // 2), (1, lanes // 2 + 1), (0, lanes), (0, n - 1)}:
        if p >= n or q >= n or p == q:
            continue
        rows = np.full((2, n), -1.5, dtype)
        rows[:, ::3] = -0.25
        rows[0, p], rows[0, q] = 0.0, -0.0
        rows[1, p], rows[1, q] = -0.0, 0.0
        target = np.array([p, p])  # +0 in one row, -0 in the other
        results = [
            fs.softmax(rows), fs.log_softmax(rows), fs.logsumexp(rows, axis=-1),
            fs.softmax(rows, temperature=0.7), fs.log_softmax(rows, temperature=0.7),
            fs.cross_entropy(rows, target, reduction="none"),
            fs.cross_entropy(rows, target, reduction="none", return_grad=True)[1],
        ]
        for r in results:
            np.testing.assert_array_equal(_bits(r[0]), _bits(r[1]))
        check_softmax(results[0], rows, -1)


def _exact_softmax(x, temperature):
    """softmax and log_softmax of one slice with (x - max)/T taken exactly (Fractions)."""
    from fractions import Fraction
    top = max(Fraction(float(v)) for v in x)

    def rounded(q):  # (x - max)/T <= 0: past the largest float64, -inf
        try:
            return float(q)
        except OverflowError:
            return -math.inf

    z = np.array([rounded((Fraction(float(v)) - top) / Fraction(temperature)) for v in x])
    lse = math.log(math.fsum(np.exp(z)))
    return np.exp(z - lse), z - lse


@pytest.mark.parametrize("x,temperature,dtype", [
    ([1e300, 0.0], 1e-310, np.float64),                   # 1/T overflows; x * 2**64 did too
    ([1e300, 1e300 * (1 + 2**-52), 0.0], 1e-310, np.float64),
    ([-1e300, 3.0, 2.0], 1e-310, np.float64),
    ([1e308, 5e307, -1e308], 1.7e308, np.float64),        # x - max overflows, T huge
    ([1e308, 5e307, -1e308], 1e302, np.float64),
    ([3e38, 1e38, -3e38], 8.5e37, np.float32),
    ([3e38, 1e38, -3e38], 2e30, np.float32),
])
def test_temperatures_at_the_edges_with_logits_at_the_edges(x, temperature, dtype):
    """The audit's cases (2026-12-06): [nan, nan] for finite logits, and probabilities of
    0.15 given as 0, where the slice spans more than the dtype's largest number."""
    x = np.array(x, dtype)
    want_p, want_log_p = _exact_softmax(x, temperature)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for where in (None, np.ones(len(x), bool)):
        p = fs.softmax(x, temperature=temperature, where=where)
        np.testing.assert_allclose(p, want_p, rtol=rtol, atol=0)
        log_p = fs.log_softmax(x, temperature=temperature, where=where)
        finite = np.isfinite(want_log_p.astype(dtype))
        np.testing.assert_allclose(log_p[finite], want_log_p[finite], rtol=rtol, atol=0)
        assert np.all(np.isneginf(log_p[~finite]))
    np.testing.assert_allclose(reference.softmax(x, temperature=temperature), want_p,
                               rtol=rtol, atol=0)


def test_log_softmax_of_a_slice_wider_than_the_dtype_is_the_documented_limit():
    """README: x - max past the largest number is -inf in the working dtype, so with T > 1
    log_softmax gives -inf where the exact value is finite; the reference is exact there."""
    x = np.array([3e38, -3e38], np.float32)
    np.testing.assert_array_equal(fs.log_softmax(x, temperature=2.0), [0.0, -np.inf])
    np.testing.assert_allclose(reference.log_softmax(x, temperature=2.0), [0.0, -3e38],
                               rtol=1e-7)
    np.testing.assert_allclose(reference.log_softmax(np.array([1e308, -1e308]),
                                                     temperature=1e300), [0.0, -2e8], rtol=1e-13)
