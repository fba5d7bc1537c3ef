"""top_k: against reference.top_k (a stable sort) and torch.topk.

The kernel (src/fs_top_k_tmpl.h) skips blocks of four vectors, so the lengths
tested sit on either side of one vector and of one block for every ISA.
"""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from conftest import ISAS

_LANES = {_core.kernel_info()[isa][dt]["lanes"] for isa in ISAS for dt in ("float32", "float64")}
LENGTHS = sorted({1, 2, 15, 16, 17, 1000, 32000, 128256}
                 | {n + d for lanes in _LANES for n in (lanes, 4 * lanes) for d in (-1, 0, 1)}
                 - {0})


def _rows(n, dtype, seed=0):
    """Four rows of n: normal values, many ties (5 distinct values), rising (every entry
    replaces the k-th best when selecting the largest), falling."""
    rng = np.random.default_rng(seed + n)
    return np.stack([rng.standard_normal(n) * 3,
                     rng.integers(0, 5, n),
                     np.arange(n) * 0.5,
                     -np.arange(n) * 0.25]).astype(dtype)


def _assert_same(got, expected):
    (values, indices), (ref_values, ref_indices) = got, expected
    assert values.dtype == ref_values.dtype and indices.dtype == np.int64
    assert values.shape == ref_values.shape and indices.shape == ref_indices.shape
    np.testing.assert_array_equal(indices, ref_indices)
    assert values.tobytes() == ref_values.tobytes()  # the very entries of x, -0.0 and NaN included


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_reference_every_length_and_isa(isa, dtype):
    for n in LENGTHS:
        x = _rows(n, dtype)
        before = x.copy()
        for largest in (True, False):
            full_values, full_indices = reference.top_k(x, n, largest=largest)
            for k in sorted({0, 1, 2, 50, n - 1, n} & set(range(n + 1))):
                got = fs.top_k(x, k, largest=largest, n_threads=1)
                _assert_same(got, (full_values[:, :k], full_indices[:, :k]))
        assert x.tobytes() == before.tobytes()  # the input is never modified


def test_reference_is_a_stable_sort_with_nan_largest():
    x = np.array([3.0, np.nan, -0.0, 0.0, 3.0, -np.inf, np.inf, np.nan])
    values, indices = reference.top_k(x, 8)
    np.testing.assert_array_equal(indices, [1, 7, 6, 0, 4, 2, 3, 5])
    values, indices = reference.top_k(x, 8, largest=False)
    np.testing.assert_array_equal(indices, [5, 2, 3, 0, 4, 6, 1, 7])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_inf_and_signed_zeros(isa, dtype):
    rng = np.random.default_rng(3)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], dtype)
    for n in (7, 40, 300, 5000):
        x = rng.choice(specials, size=(3, n)).astype(dtype)
        x[1, ::3] = rng.standard_normal(x[1, ::3].shape)
        x[2] = np.nan
        for largest in (True, False):
            for k in (1, 5, n // 2, n):
                _assert_same(fs.top_k(x, k, largest=largest, n_threads=1),
                             reference.top_k(x, k, largest=largest))


# torch.topk's own results, computed once with torch 2.13 (CPU) and pasted here:
# x = [1, nan, 3, inf, nan, -inf, -0.0, 0.0].  torch orders tied entries arbitrarily:
# its values are ours; its indices differ from ours (lower index first) only at ties.
_SPECIAL = [1.0, np.nan, 3.0, np.inf, np.nan, -np.inf, -0.0, 0.0]
_TORCH_CASES = [
    # (x, k, largest, torch's values, torch's indices, our indices)
    (_SPECIAL, 4, True, [np.nan, np.nan, np.inf, 3.0], [1, 4, 3, 2], [1, 4, 3, 2]),
    (_SPECIAL, 4, False, [-np.inf, 0.0, -0.0, 1.0], [5, 7, 6, 0], [5, 6, 7, 0]),
    (_SPECIAL, 8, False, [-np.inf, 0.0, -0.0, 1.0, 3.0, np.inf, np.nan, np.nan],
     [5, 7, 6, 0, 2, 3, 4, 1], [5, 6, 7, 0, 2, 3, 1, 4]),
    ([2.0, 1.0, 2.0, 1.0, 2.0], 3, True, [2.0, 2.0, 2.0], [2, 4, 0], [0, 2, 4]),
    ([2.0, 1.0, 2.0, 1.0, 2.0], 3, False, [1.0, 1.0, 2.0], [1, 3, 0], [1, 3, 0]),
]


@pytest.mark.parametrize("x,k,largest,torch_values,torch_indices,ours", _TORCH_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_values_hard_coded(x, k, largest, torch_values, torch_indices, ours, dtype):
    values, indices = fs.top_k(np.array(x, dtype), k, largest=largest)
    np.testing.assert_array_equal(values, np.array(torch_values, dtype))  # NaN == NaN, -0 == 0
    np.testing.assert_array_equal(indices, ours)
    np.testing.assert_array_equal(np.array(x)[indices], values)


def test_against_live_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for shape, axis in [((4, 1000), -1), ((300, 7), 0), ((3, 50, 6), 1), ((2, 128256), -1)]:
        for dtype in (np.float32, np.float64):
            x = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype) - 99.5  # no ties
            for largest in (True, False):
                for k in (1, 7, shape[axis]):
                    values, indices = fs.top_k(x, k, axis, largest=largest)
                    expected = torch.topk(torch.from_numpy(x), k, dim=axis, largest=largest)
                    np.testing.assert_array_equal(values, expected.values.numpy())
                    np.testing.assert_array_equal(indices, expected.indices.numpy())
    special = torch.tensor(_SPECIAL)
    for largest in (True, False):
        for k in range(9):
            values, _ = fs.top_k(np.array(_SPECIAL, np.float32), k, largest=largest)
            np.testing.assert_array_equal(
                values, torch.topk(special, k, largest=largest).values.numpy())


@pytest.mark.parametrize("shape,axis", [((40, 33), 0), ((40, 33), -1), ((40, 33), 1),
                                        ((5, 17, 9), 0), ((5, 17, 9), 1), ((5, 17, 9), 2),
                                        ((5, 17, 9), -2)])
def test_any_axis(shape, axis):
    x = np.random.default_rng(2).integers(0, 8, shape).astype(np.float32)  # ties too
    for largest in (True, False):
        for k in (0, 1, 4, shape[axis]):
            values, indices = fs.top_k(x, k, axis, largest=largest)
            _assert_same((values, indices), reference.top_k(x, k, axis, largest=largest))
            assert values.flags.c_contiguous and indices.flags.c_contiguous
            np.testing.assert_array_equal(np.take_along_axis(x, indices, axis), values)


def test_sorted_false_is_sorted_too():
    x = np.random.default_rng(4).standard_normal((6, 500))
    _assert_same(fs.top_k(x, 30, sorted=False), fs.top_k(x, 30))


def test_threads_give_identical_bits():
    x = np.random.default_rng(5).standard_normal((37, 20000)).astype(np.float32)
    x[3, ::7] = x[3, 0]  # ties
    x[9, 100:200] = np.nan
    for largest in (True, False):
        one = fs.top_k(x, 50, largest=largest, n_threads=1)
        for threads in (2, 3, -1):
            _assert_same(fs.top_k(x, 50, largest=largest, n_threads=threads), one)


def test_dtypes_and_lists():
    values, indices = fs.top_k(np.array([1, 4, 2], np.float16), 2)
    assert values.dtype == np.float32 and indices.tolist() == [1, 2]
    values, indices = fs.top_k([3, 1, 2], 2, largest=False)
    assert values.dtype == np.float64 and values.tolist() == [1.0, 2.0]
    values, _ = fs.top_k(np.array([True, False, True]), 1)
    assert values.tolist() == [1.0]
    strided = np.arange(20.0)[::-2]  # not contiguous: copied once
    assert fs.top_k(strided, 2)[1].tolist() == [0, 1]
    with pytest.raises(TypeError, match="x must hold real numbers"):
        fs.top_k(np.array([1j, 2j]), 1)


def test_empty_and_zero_d():
    values, indices = fs.top_k(np.empty((3, 0), np.float32), 0)
    assert values.shape == indices.shape == (3, 0) and values.dtype == np.float32
    values, indices = fs.top_k(np.empty((0, 5)), 2)
    assert values.shape == indices.shape == (0, 2)
    values, indices = fs.top_k(np.ones((4, 5)), 0, axis=0)
    assert values.shape == (0, 5)
    # torch.topk on a 0-d tensor takes k = 0 or 1 and returns the tensor and index 0 (both 0-d).
    for k in (0, 1):
        values, indices = fs.top_k(np.float32(2.5), k)
        assert values.shape == indices.shape == () and values == 2.5 and indices == 0
        assert values.dtype == np.float32 and indices.dtype == np.int64
    with pytest.raises(ValueError, match="k=2 is out of range"):
        fs.top_k(np.float32(2.5), 2)


@pytest.mark.parametrize("call,error,message", [
    (lambda x: fs.top_k(x, 6), ValueError, r"k=6 is out of range .*\[0, 5\]"),
    (lambda x: fs.top_k(x, -1), ValueError, "k=-1 is out of range"),
    (lambda x: fs.top_k(x, 10**30), ValueError, "k=an int of 100 bits is out of range"),
    (lambda x: fs.top_k(x, 2.0), TypeError, "k must be an int, got 2.0"),
    (lambda x: fs.top_k(x, True), TypeError, "k must be an int, got True"),
    (lambda x: fs.top_k(x, None), TypeError, "k must be an int, got None"),
    (lambda x: fs.top_k(x, 1, axis=2), ValueError, "axis=2 is out of range"),
    (lambda x: fs.top_k(x, 1, axis=10**30), ValueError, "an int of 100 bits"),
    (lambda x: fs.top_k(x, 1, axis=(0, 1)), TypeError, "one axis"),
    (lambda x: fs.top_k(x, 1, axis=None), TypeError, "one axis"),
    (lambda x: fs.top_k(x, 1, axis=1.0), TypeError, "axis must be an int, got 1.0"),
    (lambda x: fs.top_k(x, 1, largest="yes"), TypeError, "largest must be a bool"),
    (lambda x: fs.top_k(x, 1, sorted=1), TypeError, "sorted must be a bool"),
    (lambda x: fs.top_k(x, 1, n_threads=0), ValueError, "n_threads must be nonzero"),
    (lambda x: fs.top_k(x, 1, n_threads=1.5), TypeError, "n_threads must be an int"),
])
def test_bad_arguments(call, error, message):
    x = np.arange(10.0).reshape(2, 5)
    before = x.copy()
    with pytest.raises(error, match=message):
        call(x)
    assert x.tobytes() == before.tobytes()


def test_reference_rejects_bad_k():
    with pytest.raises(ValueError, match="out of range"):
        reference.top_k(np.ones(3), 4)
    with pytest.raises(ValueError, match="out of range"):
        reference.top_k(np.float64(1.0), 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_bound_of_largest(isa, dtype):
    """largest=True on rows of 64 k or more starts from a bound: the k-th largest of 4k block
    maxima (fs_top_k_tmpl.h).  Around that length, with blocks that are all NaN, all -inf, or
    ties of the bound itself."""
    rng = np.random.default_rng(9)
    for k in (1, 2, 3, 50):
        for n in (64 * k - 1, 64 * k, 64 * k + 1, 64 * k + 17, 1000 * k):
            x = _rows(n, dtype, seed=k)
            extra = np.round(rng.standard_normal((3, n)) * 2).astype(dtype)
            extra[0, : n // 3] = np.nan
            extra[1, n // 4 : n // 2] = -np.inf
            extra[2] = 1.0  # every block max equals the bound
            x = np.concatenate([x, extra])
            for kk in (k, 1):
                got = fs.top_k(x, kk, n_threads=1)
                values, indices = reference.top_k(x, kk)
                _assert_same(got, (values, indices))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_rows_lowered_by_another_thread_meanwhile(isa, dtype):
    """The largest k of a long row start from stand-ins just below a bound read in a first
    pass (test_block_bound_of_largest).  If another thread lowers the row before the scan,
    the scan finds fewer than k elements above the bound, and a stand-in must not come back
    as an index (it once did: 2**63 - 1, and sample's top-k then read far outside the row).
    Each call's indices are the row's, distinct, whatever values it saw."""
    from conftest import refilled_meanwhile

    n, k = 1 << 18, 4
    x = np.ones((2, n), dtype)
    with refilled_meanwhile(x, (0.0, 1.0, -1.0, 1.0)):
        for _ in range(400):
            for largest in (True, False):
                values, indices = fs.top_k(x, k, largest=largest, n_threads=1)
                assert ((indices >= 0) & (indices < n)).all(), indices
                assert all(len(set(row)) == k for row in indices.tolist()), indices
                assert np.isin(values, np.array([0.0, 1.0, -1.0], dtype)).all(), values
