"""where= masks on softmax, log_softmax and logsumexp, against the reference, on every path."""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _logsumexp, reference
from conftest import check_log_softmax, check_logsumexp, check_softmax, random_logits

DTYPES = [np.float32, np.float64]
OPS = ["softmax", "log_softmax", "logsumexp"]


def check_masked(x, where, axis, temperature=1.0, **kwargs):
    where_b = np.broadcast_to(where, x.shape)
    p = fs.softmax(x, axis, temperature=temperature, where=where, **kwargs)
    check_softmax(p, x, axis, temperature, where=where_b)
    assert (p[~where_b] == 0).all()
    logp = fs.log_softmax(x, axis, temperature=temperature, where=where, **kwargs)
    check_log_softmax(logp, x, axis, temperature, where=where_b)
    assert (logp[~where_b] == -np.inf).all()
    if temperature == 1.0:
        check_logsumexp(fs.logsumexp(x, axis, where=where, **kwargs), x, axis, where=where_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 8, 16, 17, 33, 64, 129, 1000, 40000])
def test_random_masks_on_rows(isa, dtype, n):
    x = random_logits((4, n), dtype, seed=n)
    where = np.random.default_rng(n).random((4, n)) > 0.4
    where[2] = False          # a fully masked row
    where[3] = True           # an all-true row
    check_masked(x, where, -1)
    check_masked(x, where, -1, temperature=0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_ending_at_every_lane(isa, dtype):
    """Tails of every length below a vector, alone and after whole vectors: a tail's mask
    bytes are read in pieces of 8, 4, 2 and 1 as its length's bits say
    (fs_load_first_bytes), and each piece must land in its own lanes."""
    lanes = _core.kernel_info()[isa]["float32"]["lanes"]
    for n in [base + r for base in (0, 4 * lanes, 1024) for r in range(1, lanes + 1)]:
        x = random_logits((3, n), dtype, seed=n)
        where = np.random.default_rng(n).random((3, n)) > 0.4
        where[:, -1] = ~where[:, -2] if n > 1 else True  # both values in the last byte
        check_masked(x, where, -1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, None])
def test_random_masks_on_every_axis(isa, dtype, axis):
    x = random_logits((5, 19, 37), dtype, seed=1)
    where = np.random.default_rng(1).random(x.shape) > 0.5
    check_masked(x, where, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_causal_mask_broadcast_over_batch(isa, dtype, axis):
    scores = random_logits((3, 33, 33), dtype, seed=2)
    causal = np.tril(np.ones((33, 33), bool))
    check_masked(scores, causal, axis)
    p = fs.softmax(scores, where=causal)
    np.testing.assert_array_equal(p[:, np.triu_indices(33, 1)[0], np.triu_indices(33, 1)[1]], 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-5)


@pytest.mark.parametrize("mask_shape", [(1, 40), (3, 1), (40,), (1,), ()])
def test_other_broadcasts(mask_shape):
    x = random_logits((3, 40), np.float64, seed=3)
    where = np.random.default_rng(3).random(mask_shape) > 0.3
    for axis in (0, -1, None):
        check_masked(x, where, axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_under_the_mask_are_ignored(isa, dtype):
    x = np.array([[1.0, np.nan, 2.0, np.inf, 3.0, -np.inf]] * 3, dtype)
    where = np.array([True, False, True, False, True, False])
    np.testing.assert_allclose(fs.softmax(x, where=where)[0, ::2],
                               reference.softmax(np.array([1.0, 2.0, 3.0]))[...], rtol=1e-6)
    assert np.isfinite(fs.logsumexp(x, where=where)).all()
    check_masked(x, where, -1)
    check_masked(np.ascontiguousarray(x.T), where[:, None], 0)


def test_fully_masked_slices():
    x = random_logits((4, 70), np.float32)
    where = np.zeros((4, 70), bool)
    np.testing.assert_array_equal(fs.softmax(x, where=where), 0)
    np.testing.assert_array_equal(fs.log_softmax(x, where=where), -np.inf)
    np.testing.assert_array_equal(fs.logsumexp(x, where=where), -np.inf)
    np.testing.assert_array_equal(fs.softmax(x, axis=0, where=where), 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_long_rows_identical_for_every_thread_count(dtype):
    x = random_logits((2, 100003), dtype, seed=4)
    where = np.random.default_rng(4).random(x.shape) > 0.2
    for name in OPS:
        func = getattr(fs, name)
        one = func(x, where=where, n_threads=1)
        for n_threads in (2, 3):
            np.testing.assert_array_equal(func(x, where=where, n_threads=n_threads), one)
    check_masked(x, where, -1, n_threads=2)


def test_in_place_with_mask():
    x = random_logits((6, 100), np.float64, seed=5)
    where = np.random.default_rng(5).random(x.shape) > 0.5
    for name in ("softmax", "log_softmax"):
        y = x.copy()
        getattr(fs, name)(y, where=where, out=y)
        np.testing.assert_array_equal(y, getattr(fs, name)(x, where=where))


def test_where_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"where with shape \(4, 3\) does not broadcast to x's shape \(3, 4\)"):
        fs.softmax(x, where=np.ones((4, 3), bool))
    with pytest.raises(TypeError, match="where must be a boolean array, got dtype int64"):
        fs.log_softmax(x, where=np.ones((3, 4), np.int64))
    with pytest.raises(ValueError, match="does not broadcast"):
        fs.logsumexp(x, where=np.ones((2, 3, 4), bool))


def test_mask_is_not_expanded_for_leading_broadcast(monkeypatch):
    """A (T, T) mask on (B, T, T) reaches the kernels as the (T, T) array itself."""
    seen = []
    real_call = fs._softmax._core.softmax_family

    def spy(x, out, mask, *args, **kwargs):
        seen.append(None if mask is None else mask.shape)
        return real_call(x, out, mask, *args, **kwargs)

    monkeypatch.setattr(fs._softmax._core, "softmax_family", spy)
    fs.softmax(np.zeros((8, 16, 16)), where=np.tril(np.ones((16, 16), bool)))
    assert seen == [(16, 16)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 5, 10, 16, 17])
def test_masks_on_many_short_rows(isa, dtype, n):
    x = random_logits((41, n), dtype, seed=n)
    where = np.random.default_rng(n).random((41, n)) > 0.3
    where[3] = False
    check_masked(x, where, -1)
    check_masked(np.broadcast_to(x[:1], (41, n)).copy(), where[0], -1)


@pytest.mark.parametrize("shape, axis", [((3, 0), -1), ((0, 3), -1), ((0, 5), 0), ((4, 0, 2), 1),
                                         ((2, 0), None), ((3, 0, 9), -1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masks_of_empty_arrays(shape, axis, dtype):
    """A mask of no elements (period 0 in the kernels): every op, every path, no division by it."""
    x = np.ones(shape, dtype)
    mask = np.ones(shape, bool)
    assert fs.softmax(x, axis=axis, where=mask).shape == shape
    assert fs.log_softmax(x, axis=axis, where=mask).shape == shape
    expected = np.full(np.sum(x, axis=axis).shape, -np.inf, dtype)
    np.testing.assert_array_equal(fs.logsumexp(x, axis=axis, where=mask), expected)
    top, log_sum = _logsumexp.logsumexp_parts(x, axis, where=mask)  # fastsoftmax.dask's halves
    np.testing.assert_array_equal(top, expected)
    np.testing.assert_array_equal(log_sum, np.zeros_like(top))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_any_nonzero_mask_byte_is_true(isa, dtype, axis):
    """A bool array may hold bytes other than 0 and 1 (a uint8 array viewed as bool).

    NumPy counts every nonzero byte as True; so must each ISA's widening of mask bytes
    into lanes, in whole vectors and in the partial ones at a slice's end, on rows,
    short rows and panels.
    """
    for n in (5, 16, 17, 31, 33, 100, 515):
        x = random_logits((9, n), dtype, seed=n)
        rng = np.random.default_rng(n)
        raw = rng.choice(np.array([0, 1, 2, 64, 128, 255], np.uint8), size=x.shape)
        raw[3] = 0  # a fully masked slice
        odd = raw.view(np.bool_)
        plain = raw != 0
        for op in OPS:
            got = getattr(fs, op)(x, axis, where=odd)
            want = getattr(fs, op)(x, axis, where=plain)
            np.testing.assert_array_equal(got, want, err_msg=f"{op} n={n}")
