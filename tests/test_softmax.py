"""softmax, log_softmax and logsumexp against fastsoftmax.reference, on the shapes that hit each path.

Row lengths cover every vector width and unroll boundary of every instruction
set (1..70, 127-129, 255-257), a row over several kernel chunks (50257, and
256000 = 15.6 chunks; tests/test_kernel_boundaries.py tries each chunk boundary),
and every axis of 1-D to 4-D arrays (the panel path, vectorized across the
trailing axes).
"""
import numpy as np
import pytest

import fastsoftmax as fs
from conftest import check_log_softmax, check_logsumexp, check_softmax, random_logits

DTYPES = [np.float32, np.float64]
ROW_LENGTHS = list(range(1, 71)) + [127, 128, 129, 255, 256, 257, 1000, 50257, 256000]


def check_all_ops(x, axis=-1, temperature=1.0, **kwargs):
    check_softmax(fs.softmax(x, axis, temperature=temperature, **kwargs), x, axis, temperature)
    check_log_softmax(fs.log_softmax(x, axis, temperature=temperature, **kwargs), x, axis,
                      temperature)
    if temperature == 1.0:
        check_logsumexp(fs.logsumexp(x, axis, **kwargs), x, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_row_lengths(isa, dtype, n):
    rows = 1 if n > 1000 else 3
    x = random_logits((rows, n), dtype, seed=n)
    check_all_ops(x)
    check_all_ops(x, temperature=0.7)


def _every_axis(shapes):
    return [(shape, axis) for shape in shapes for axis in list(range(-len(shape), len(shape))) + [None]]


PANEL_SHAPES = [(17,), (5, 33), (40, 7), (3, 4, 35), (9, 17, 5), (2, 3, 4, 19), (3, 65, 2, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", _every_axis(PANEL_SHAPES))
def test_every_axis(isa, dtype, shape, axis):
    x = random_logits(shape, dtype, seed=len(shape))
    check_all_ops(x, axis)
    check_all_ops(x, axis, temperature=2.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65])
def test_panel_widths(isa, dtype, width):
    """Reductions over axis 0 with every tile remainder: whole tiles, single vectors, partial lanes."""
    x = random_logits((37, width), dtype, seed=width)
    check_all_ops(x, axis=0)


def _layouts(base):
    """The same values in every odd memory layout the API must accept."""
    yield "strided", base[:, ::2]
    yield "transposed", base.T
    yield "negative strides", base[::-1, ::-1]
    yield "fortran", np.asfortranarray(base)
    yield "column slice", base[1:-1, 3:40]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_noncontiguous_input(dtype, axis):
    base = random_logits((9, 80), dtype, seed=1)
    for name, x in _layouts(base):
        expected = fs.softmax(np.ascontiguousarray(x), axis)
        np.testing.assert_array_equal(fs.softmax(x, axis), expected, err_msg=name)
        check_all_ops(x, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", [fs.softmax, fs.log_softmax])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_out_and_in_place(dtype, func, axis):
    x = random_logits((6, 300), dtype, seed=2)
    expected = func(x, axis)
    out = np.full_like(x, np.nan)
    assert func(x, axis, out=out) is out
    np.testing.assert_array_equal(out, expected)
    y = x.copy()
    assert func(y, axis, out=y) is y
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, None])
def test_logsumexp_keepdims_and_out(dtype, axis):
    x = random_logits((4, 5, 66), dtype, seed=3)
    expected = fs.logsumexp(x, axis)
    kept = fs.logsumexp(x, axis, keepdims=True)
    assert kept.shape == np.asarray(np.log(np.exp(x).sum(axis=axis, keepdims=True))).shape
    np.testing.assert_array_equal(kept.reshape(np.shape(expected)), expected)
    check_logsumexp(kept, x, axis, keepdims=True)
    out = np.empty(np.shape(expected), dtype)
    assert fs.logsumexp(x, axis, out=out) is out
    np.testing.assert_array_equal(out, expected)


# Each shape exercises one way of splitting the work between threads.
THREAD_SPLITS = {
    "many rows": ((301, 777), -1),
    "one long row": ((1, 256000), -1),
    "two long rows": ((2, 100003), -1),
    "panel over slabs": ((7, 50, 33), 1),
    "panel over columns": ((60, 5000), 0),
    "short rows": ((40000, 3), -1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(THREAD_SPLITS))
def test_bitwise_identical_for_every_thread_count(isa, dtype, case):
    shape, axis = THREAD_SPLITS[case]
    x = random_logits(shape, dtype, seed=4)
    for func, kwargs in [(fs.softmax, {}), (fs.log_softmax, {}), (fs.softmax, {"temperature": 0.6}),
                         (fs.logsumexp, {})]:
        one = func(x, axis, n_threads=1, **kwargs)
        for n_threads in (2, 3, 4):
            np.testing.assert_array_equal(func(x, axis, n_threads=n_threads, **kwargs), one,
                                          err_msg=f"{func.__name__} n_threads={n_threads}")
    check_all_ops(x, axis, n_threads=3)


@pytest.mark.parametrize("func", [fs.softmax, fs.log_softmax, fs.logsumexp])
def test_input_never_modified(func):
    x = random_logits((5, 1000), np.float32, seed=5)
    before = x.copy()
    func(x, 0)
    func(x, -1, n_threads=2)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_sum_to_one(dtype):
    x = random_logits((64, 4099), dtype, seed=6, scale=10.0)
    p = fs.softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1, dtype=np.float64), 1.0, rtol=50 * np.finfo(dtype).eps)
    assert (p >= 0).all() and (p <= 1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [1e4, -1e4, 1e8, -1e8])
def test_shift_invariance_is_exact(dtype, offset):
    # Logits on a grid coarse enough that x + offset is exact in the dtype:
    # the shifted input must give the very same bits.
    spacing = float(np.spacing(dtype(abs(offset) * 2)))
    rng = np.random.default_rng(7)
    x = (rng.integers(-40, 40, size=(8, 513)) * spacing).astype(dtype)
    shifted = (x + dtype(offset)).astype(dtype)
    assert np.array_equal(shifted - dtype(offset), x)
    for func in (fs.softmax, fs.log_softmax):
        np.testing.assert_array_equal(func(shifted), func(x))
    np.testing.assert_allclose(fs.logsumexp(shifted), fs.logsumexp(x).astype(np.float64) + offset,
                               rtol=np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", list(range(1, 20)) + [24, 31, 33])
def test_many_short_rows(isa, dtype, n):
    """Rows of a few classes run one row per lane: whole groups of rows and a remainder."""
    x = random_logits((37, n), dtype, seed=100 + n)
    x[5, 0] = np.nan
    x[11] = -np.inf
    x[20, -1] = np.inf
    finite = np.ones(37, bool)
    finite[[5, 11, 20]] = False
    check_all_ops(x[finite])
    check_all_ops(x[finite], temperature=1.7)
    for func in (fs.softmax, fs.log_softmax):
        got = func(x)
        np.testing.assert_array_equal(got[finite], func(x[finite]))
        assert np.isnan(got[~finite]).all()
    lse = fs.logsumexp(x)
    np.testing.assert_array_equal(lse[[5, 11, 20]], [np.nan, -np.inf, np.inf])
    np.testing.assert_array_equal(lse[finite], fs.logsumexp(x[finite]))
