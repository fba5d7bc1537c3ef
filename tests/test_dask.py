"""fastsoftmax.dask: the NumPy functions' results on dask arrays, whatever the chunking.

Every result is held to the reference within the documented bound (``_testing``'s
checks), and a single chunk to the NumPy function's bits.  (Chunks of one array along a
kept axis need not round as the whole array does: a panel's columns fall in other tiles.)
Edge cases are placed in one chunk of a slice split across several: -inf, NaN and
+inf chunks, zero-width chunks, masked chunks.  The same graphs run on the threaded
scheduler and on a two-process ``distributed.LocalCluster``.
"""
import logging
import math
import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402  (after the skip: dask is an optional dependency)

import fastsoftmax as fs  # noqa: E402
import fastsoftmax.dask as fsd  # noqa: E402
from fastsoftmax import _core, reference  # noqa: E402
from fastsoftmax._testing import (  # noqa: E402
    check_cross_entropy,
    check_log_softmax,
    check_logsumexp,
    check_softmax,
)

RNG = np.random.default_rng(20261130)
X = (RNG.standard_normal((37, 53)) * 4).astype(np.float64)

# Chunkings of X: whole, rows only, the class axis split evenly, unevenly, with
# chunks of one, with a zero-width chunk, and both axes split.
CHUNKINGS = [(37, 53), (10, 53), (37, (20, 33)), (37, (1, 51, 1)), (37, (0, 5, 48)),
             (10, 7), ((5, 32), (26, 0, 27)), (1, 53)]
AXES = [0, 1, -1, -2, None, (0, 1)]


def _ids(value):
    return str(value).replace(" ", "")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", AXES, ids=_ids)
@pytest.mark.parametrize("chunks", CHUNKINGS, ids=_ids)
def test_softmax_family_any_chunking(chunks, axis, dtype):
    x = X.astype(dtype)
    dx = da.from_array(x, chunks=chunks)
    got = {
        "softmax": fsd.softmax(dx, axis=axis),
        "log_softmax": fsd.log_softmax(dx, axis=axis),
        "logsumexp": fsd.logsumexp(dx, axis=axis),
        "logsumexp_keepdims": fsd.logsumexp(dx, axis=axis, keepdims=True),
    }
    for name, lazy in got.items():
        assert lazy.dtype == dtype and lazy._meta.dtype == dtype, name
    values = dict(zip(got, dask.compute(*got.values())))
    check_softmax(values["softmax"], x, axis=axis)
    check_log_softmax(values["log_softmax"], x, axis=axis)
    check_logsumexp(values["logsumexp"], x, axis=axis)
    check_logsumexp(values["logsumexp_keepdims"], x, axis=axis, keepdims=True)
    for name, value in values.items():
        assert value.dtype == dtype and value.shape == got[name].shape, name
    if all(len(c) == 1 for c in dx.chunks):  # one chunk: one call of the NumPy function
        np.testing.assert_array_equal(values["softmax"], fs.softmax(x, axis=axis))
        np.testing.assert_array_equal(values["log_softmax"], fs.log_softmax(x, axis=axis))
        np.testing.assert_array_equal(values["logsumexp"], fs.logsumexp(x, axis=axis))


@pytest.mark.parametrize("axis", [0, 2, (0, 2), (1, 2), None], ids=_ids)
@pytest.mark.parametrize("chunks", [(2, 3, 4), (6, (4, 5), (1, 10)), (3, 9, 11)], ids=_ids)
def test_three_dimensions(chunks, axis):
    x = RNG.standard_normal((6, 9, 11)).astype(np.float32)
    dx = da.from_array(x, chunks=chunks)
    check_softmax(fsd.softmax(dx, axis=axis, temperature=0.7).compute(), x, axis=axis,
                  temperature=0.7)
    check_log_softmax(fsd.log_softmax(dx, axis=axis).compute(), x, axis=axis)
    check_logsumexp(fsd.logsumexp(dx, axis=axis, keepdims=True).compute(), x, axis=axis,
                    keepdims=True)


@pytest.mark.parametrize("temperature", [0.3, 2.5, 1e-3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_temperature_on_split_slices(temperature, dtype):
    x = X.astype(dtype)
    dx = da.from_array(x, chunks=(10, (20, 33)))
    check_softmax(fsd.softmax(dx, temperature=temperature).compute(), x,
                  temperature=temperature)
    check_log_softmax(fsd.log_softmax(dx, temperature=temperature).compute(), x,
                      temperature=temperature)


@pytest.mark.parametrize("temperature, dtype", [(1e-40, np.float32), (1e-310, np.float64)])
def test_temperature_whose_reciprocal_leaves_the_dtype(temperature, dtype):
    """1/T not a normal number of the dtype: computed wider, as the NumPy function does."""
    x = np.array([[0.0, 1e-39, 2e-39, 0.0, -1e-39, 3e-39]], dtype) * (1e-270 if
                                                                        dtype == np.float64
                                                                        else 1.0)
    dx = da.from_array(x, chunks=(1, 2))
    for ours, theirs in ((fsd.softmax, fs.softmax), (fsd.log_softmax, fs.log_softmax)):
        got = ours(dx, temperature=temperature).compute()
        assert got.dtype == dtype
        np.testing.assert_allclose(got, theirs(x, temperature=temperature), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [4.5e307, 1e308, np.finfo(np.float64).max])
def test_temperature_whose_reciprocal_is_subnormal_in_float64(temperature, dtype):
    """1/T below float64's smallest normal number: the NumPy functions take it, and so
    must a split slice (it raised "scale ... is not a normal float64 number" from a task)."""
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(dtype) * 1e300 ** (
        dtype == np.float64)
    dx = da.from_array(x, chunks=(4, 3))
    for ours, theirs in ((fsd.softmax, fs.softmax), (fsd.log_softmax, fs.log_softmax)):
        got = ours(dx, temperature=temperature).compute()
        assert got.dtype == dtype
        np.testing.assert_allclose(got, theirs(x, temperature=temperature), rtol=1e-6)


def test_chunk_of_minus_inf_inside_a_finite_slice():
    """Joined halves, not per-chunk formulas: exp(-inf - max) is 0, never NaN * 0."""
    x = X.copy()
    x[:, :20] = -np.inf
    x[5, 20:] = -np.inf  # one slice all -inf: NaN for softmax, -inf for logsumexp
    dx = da.from_array(x, chunks=(10, (20, 33)))
    want = {f: getattr(fs, f)(x) for f in ("softmax", "log_softmax", "logsumexp")}
    for name in want:
        got = getattr(fsd, name)(dx).compute()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want[name]), err_msg=name)
        np.testing.assert_allclose(got, want[name], rtol=1e-13, atol=0, err_msg=name)
    assert not np.isnan(fsd.softmax(dx).compute()[np.arange(37) != 5]).any()


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("column", [0, 19, 20, 52])
def test_nan_and_inf_confined_to_one_chunk(value, column):
    x = X.copy()
    x[3, column] = value
    x[4, column] = value
    x[4, (column + 30) % 53] = np.nan  # both in one slice, maybe in two chunks
    dx = da.from_array(x, chunks=(10, (20, 13, 20)))
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(fsd, name)(dx).compute()
        want = getattr(fs, name)(x)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=name)
        np.testing.assert_allclose(got, want, rtol=1e-13, err_msg=name)


@pytest.mark.parametrize("chunks", [(37, 53), (10, (20, 33)), (37, (0, 26, 27))], ids=_ids)
def test_where_with_masked_chunks_and_a_fully_masked_slice(chunks):
    x = X.astype(np.float32)
    mask = RNG.random(x.shape) < 0.7
    mask[:, :20] = False  # a whole chunk masked out in every slice
    mask[7] = False       # a fully masked slice
    dx = da.from_array(x, chunks=chunks)
    dmask = da.from_array(mask, chunks=(5, 11))  # rechunked like x
    soft = fsd.softmax(dx, where=dmask).compute()
    check_softmax(soft, x, where=mask)
    assert (soft[7] == 0).all() and (soft[~mask] == 0).all()
    logp = fsd.log_softmax(dx, where=mask).compute()
    check_log_softmax(logp, x, where=mask)
    assert (logp[7] == -np.inf).all()
    lse = fsd.logsumexp(dx, where=mask).compute()
    check_logsumexp(lse, x, where=mask)
    assert lse[7] == -np.inf
    # a mask broadcast over the rows
    row_mask = mask[0]
    check_softmax(fsd.softmax(dx, where=row_mask).compute(), x,
                  where=np.broadcast_to(row_mask, x.shape))


def test_zero_width_and_empty_arrays():
    empty_rows = da.zeros((0, 5), chunks=(1, 2), dtype=np.float32)
    assert fsd.softmax(empty_rows).compute().shape == (0, 5)
    assert fsd.logsumexp(empty_rows).compute().shape == (0,)
    no_classes = da.zeros((3, 0), chunks=(1, 2), dtype=np.float32)
    np.testing.assert_array_equal(fsd.logsumexp(no_classes).compute(), [-np.inf] * 3)
    np.testing.assert_array_equal(fsd.logsumexp(no_classes, axis=None).compute(), -np.inf)
    assert fsd.softmax(no_classes).compute().shape == (3, 0)


@pytest.mark.parametrize("dtype_name, expected", [("float16", np.float32), ("bfloat16", np.float32),
                                                  ("int32", np.float64), ("bool", np.float64)])
def test_result_dtype_and_meta_without_calling_any_kernel(monkeypatch, dtype_name, expected):
    if dtype_name == "bfloat16":
        dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    else:
        dtype = np.dtype(dtype_name)
    x = (RNG.standard_normal((8, 12)) * 3).astype(dtype)
    dx = da.from_array(x, chunks=(4, (5, 7)))

    calls = []
    real = _core.softmax_family

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, "softmax_family", counting)
    lazy = [fsd.softmax(dx), fsd.log_softmax(dx), fsd.logsumexp(dx, axis=None)]
    assert calls == []  # building the graph (and its meta) ran nothing
    for result in lazy:
        assert result.dtype == expected and result._meta.dtype == expected
    computed = dask.compute(*lazy)
    assert all(c.dtype == expected for c in computed)
    assert all(0 not in shape for shape in calls)  # never called on an empty chunk
    np.testing.assert_allclose(computed[0], fs.softmax(x), rtol=1e-6)
    np.testing.assert_allclose(computed[2], fs.logsumexp(x, axis=None), rtol=1e-6)


def test_split_every_and_many_chunks():
    x = RNG.standard_normal((3, 1000)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 7))
    for split_every in (2, 4, None):
        check_logsumexp(fsd.logsumexp(dx, split_every=split_every).compute(), x)
        check_softmax(fsd.softmax(dx, split_every=split_every).compute(), x)


def test_join_keeps_the_relative_precision_of_a_logsumexp_near_zero():
    """log(1 + 1e-12): the sum beside the dominant term goes through expm1/log1p."""
    x = np.array([[0.0, math.log(1e-12), -1e3, math.log(2e-12) - 0.5]])
    dx = da.from_array(x, chunks=(1, 1))
    got = fsd.logsumexp(dx).compute()
    check_logsumexp(got, x)
    np.testing.assert_allclose(got, fs.logsumexp(x), rtol=1e-12)


def test_numpy_and_list_input_are_accepted():
    got = fsd.softmax([[1.0, 2.0, 3.0]])
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(), fs.softmax([[1.0, 2.0, 3.0]]))


@pytest.mark.parametrize("call, error", [
    (lambda dx: fsd.softmax(dx, axis=2), np.exceptions.AxisError),
    (lambda dx: fsd.logsumexp(dx, axis=(0, 0)), ValueError),
    (lambda dx: fsd.softmax(dx, axis=1.5), TypeError),
    (lambda dx: fsd.softmax(dx, temperature=0.0), ValueError),
    (lambda dx: fsd.log_softmax(dx, temperature=math.inf), ValueError),
    (lambda dx: fsd.softmax(dx, where=np.ones((37, 53), np.int8)), TypeError),
    (lambda dx: fsd.softmax(dx, where=np.ones((2, 53), bool)), ValueError),
    (lambda dx: fsd.logsumexp(dx, n_threads=0), ValueError),
    (lambda dx: fsd.logsumexp(dx, keepdims="yes"), TypeError),
    (lambda dx: fsd.softmax(dx.astype(np.complex64)), TypeError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(37, int), reduction="avg"), ValueError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(36, int)), ValueError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(37, int), weight=np.ones(5)), ValueError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(37, int), label_smoothing=2.0), ValueError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(37, int), sample_weight=np.ones(5)),
     ValueError),
    (lambda dx: fsd.cross_entropy(dx, np.zeros(37, complex)), TypeError),
], ids=range(16))
def test_bad_arguments_raise_before_anything_is_computed(call, error):
    computed = []

    def chunk(block):
        computed.append(block.shape)
        return block

    dx = da.from_array(X, chunks=(10, 20)).map_blocks(chunk, dtype=np.float64,
                                                     meta=np.empty((0, 0)))
    with pytest.raises(error):
        call(dx)
    assert computed == []


def test_a_bad_label_raises_when_computed():
    dx = da.from_array(X, chunks=(10, 53))
    labels = np.zeros(37, np.int64)
    labels[23] = 53
    loss = fsd.cross_entropy(dx, labels)  # lazy: nothing checked yet
    with pytest.raises(ValueError, match="label 53"):
        loss.compute()


# -- cross_entropy ----------------------------------------------------------------------

LABELS = RNG.integers(0, 53, 37)
LABELS[[3, 30]] = -100
CLASS_WEIGHTS = RNG.random(53)
SAMPLE_WEIGHTS = RNG.random(37)
CE_OPTIONS = [{}, {"weight": CLASS_WEIGHTS}, {"sample_weight": SAMPLE_WEIGHTS},
              {"label_smoothing": 0.1, "weight": CLASS_WEIGHTS, "sample_weight": SAMPLE_WEIGHTS},
              {"ignore_index": 7}]


@pytest.mark.parametrize("options", CE_OPTIONS, ids=range(len(CE_OPTIONS)))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunks", [(37, 53), (10, 53), (10, (20, 33)), ((1, 36), 53)],
                         ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_any_chunking(dtype, chunks, reduction, options):
    x = X.astype(dtype)
    labels = np.where(LABELS == -100, options.get("ignore_index", -100), LABELS)
    dx = da.from_array(x, chunks=chunks)
    dlabels = da.from_array(labels, chunks=7)  # rechunked like the samples
    loss, grad = fsd.cross_entropy(dx, dlabels, reduction=reduction, return_grad=True, **options)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert grad.chunks == dx.rechunk({1: -1}).chunks  # the class axis in one chunk
    loss_only = fsd.cross_entropy(dx, labels, reduction=reduction, **options)
    loss, grad, loss_only = dask.compute(loss, grad, loss_only)
    want_loss, want_grad = fs.cross_entropy(x, labels, reduction=reduction, return_grad=True,
                                            **options)
    np.testing.assert_allclose(loss, want_loss, rtol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(loss_only, want_loss, rtol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(grad, want_grad, rtol=10 * np.finfo(dtype).eps,
                               atol=10 * np.finfo(dtype).eps * np.abs(want_grad).max())
    if "sample_weight" not in options:
        check_cross_entropy(loss, grad, x, labels, reduction=reduction, **options)


def test_cross_entropy_probabilities_and_class_axis_one():
    p = fs.softmax(RNG.standard_normal((37, 53)))
    dx = da.from_array(X, chunks=(10, (20, 33)))
    loss, grad = dask.compute(*fsd.cross_entropy(dx, da.from_array(p, chunks=(5, 53)),
                                                 return_grad=True))
    check_cross_entropy(loss, grad, X, p)
    x = RNG.standard_normal((4, 7, 5))
    labels = RNG.integers(0, 7, (4, 5))
    loss, grad = dask.compute(*fsd.cross_entropy(da.from_array(x, chunks=(2, 3, 2)), labels,
                                                 axis=1, return_grad=True))
    check_cross_entropy(loss, grad, x, labels, axis=1)
    assert grad.shape == x.shape


def test_cross_entropy_all_ignored_gives_nan_mean():
    dx = da.from_array(X, chunks=(10, 53))
    loss = fsd.cross_entropy(dx, np.full(37, -100)).compute()
    assert np.isnan(loss) and np.isnan(fs.cross_entropy(X, np.full(37, -100)))


# -- the core API refuses dask collections -----------------------------------------------

def _never_computed():
    def boom(block):
        raise AssertionError("a dask array was computed")
    return da.from_array(X, chunks=(10, 53)).map_blocks(boom, dtype=np.float64,
                                                        meta=np.empty((0, 0)))


@pytest.mark.parametrize("call", [
    lambda d: fs.softmax(d),
    lambda d: fs.log_softmax(d),
    lambda d: fs.logsumexp(d),
    lambda d: fs.logsumexp(X, b=d),
    lambda d: fs.softmax(X, where=d > 0),
    lambda d: fs.cross_entropy(d, LABELS),
    lambda d: fs.cross_entropy(X, d[:, 0].astype(np.int64)),
    lambda d: fs.cross_entropy(X, LABELS, weight=d[0]),
    lambda d: fs.cross_entropy(X, LABELS, sample_weight=d[:, 0]),
    lambda d: fs.softmax_backward(d, X),
    lambda d: fs.log_softmax_backward(X, d),
    lambda d: fs.top_k(d, 3),
    lambda d: fs.sample(d),
    lambda d: fs.sample(X, temperature=d[:, 0] + 2),
    lambda d: fs.sample(X, prev_tokens=d[:, :3].astype(np.int64), repetition_penalty=1.2,
                        u=np.full(37, 0.5)),
], ids=range(15))
def test_core_functions_refuse_dask_collections(call):
    with pytest.raises(TypeError, match="fastsoftmax.dask"):
        call(_never_computed())


# -- schedulers ---------------------------------------------------------------------------

def _workload():
    x = X.astype(np.float32)
    dx = da.from_array(x, chunks=(10, (20, 33)))
    return x, dx, {
        "lse": fsd.logsumexp(dx),
        "soft": fsd.softmax(dx, n_threads=2),  # OpenMP threads inside the workers too
        "ce": fsd.cross_entropy(dx, LABELS, return_grad=True),
    }


def _check_workload(x, values):
    check_logsumexp(values["lse"], x)
    check_softmax(values["soft"], x)
    loss, grad = values["ce"]
    check_cross_entropy(loss, grad, x, LABELS)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_local_schedulers(scheduler):
    x, _, lazy = _workload()
    (values,) = dask.compute(lazy, scheduler=scheduler)
    _check_workload(x, values)


@pytest.fixture(scope="module")
def cluster_client():
    """A two-process LocalCluster.  distributed sets OMP_NUM_THREADS=1 (and MKL's, OpenBLAS's)
    in this process's environment to start its workers and leaves it there: restored after,
    or every later test's child process would run one thread."""
    distributed = pytest.importorskip("distributed")
    saved = dict(os.environ)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield client
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_distributed_local_cluster(cluster_client):
    x, _, lazy = _workload()
    values = cluster_client.compute(lazy).result()
    _check_workload(x, values)
    # the workers ran fastsoftmax in their own processes
    isas = cluster_client.run(lambda: __import__("fastsoftmax")._core.isa())
    assert len(isas) == 2 and set(isas.values()) == {_core.isa()}


@pytest.mark.parametrize("name", fsd.__all__)
def test_docstrings_are_numpydoc(name):
    """Each parameter documented, a Returns section and an example, as the NumPy functions."""
    import inspect
    import re

    function = getattr(fsd, name)
    doc = inspect.getdoc(function)
    documented = {part.strip() for line in re.findall(r"^([\w, ]+) :", doc, flags=re.M)
                  for part in line.split(",")}
    assert set(inspect.signature(function).parameters) <= documented, name
    assert "Returns\n-------" in doc and ">>> " in doc, name


# -- the kernels behind the joins, on every ISA this CPU runs ----------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((37, 53), -1), ((37, 5), -1), ((37, 53), 0),
                                         ((6, 9, 11), 1), ((3, 40000), -1)], ids=_ids)
def test_join_kernels_on_every_isa(isa, shape, axis, dtype):
    """logsumexp_parts and softmax_shifted on rows, short rows, panels, long rows, masks:
    split in two along the axis, joined, and held to the NumPy functions on the whole."""
    from fastsoftmax import _logsumexp, _softmax

    x = (RNG.standard_normal(shape) * 3).astype(dtype)
    x.flat[::17] = -np.inf
    mask = RNG.random(shape) < 0.8
    half = shape[axis] // 2
    pieces = np.split(x, [half], axis=axis)
    masks = np.split(mask, [half], axis=axis)
    for where, where_pieces in ((None, [None, None]), (mask, masks)):
        parts = [_logsumexp.logsumexp_parts(p, axis, scale=1.25, where=w)
                 for p, w in zip(pieces, where_pieces)]
        top = np.stack([p[0] for p in parts], axis=axis)
        log_sum = np.stack([p[1] for p in parts], axis=axis)
        joined = _logsumexp.combine_parts(top, log_sum, axis, 1.25)
        lse = _logsumexp.logsumexp_from_parts(*joined, 1.25)
        want = fs.logsumexp(x / dtype(0.8), axis=axis, keepdims=True, where=where)
        np.testing.assert_allclose(lse, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
        halves = tuple(np.squeeze(j, axis=axis) for j in joined)
        for op, function in ((_softmax._OP_SOFTMAX, fs.softmax),
                             (_softmax._OP_LOG_SOFTMAX, fs.log_softmax)):
            got = np.concatenate([_softmax._softmax_like(p, axis, 0.8, w, None, 1, op,
                                                         parts=halves)
                                  for p, w in zip(pieces, where_pieces)], axis=axis)
            np.testing.assert_allclose(got, function(x, axis=axis, temperature=0.8, where=where),
                                       rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)


@pytest.mark.parametrize("unknown", ["logits", "target", "both"])
def test_cross_entropy_refuses_chunks_of_unknown_size_naming_the_remedy(unknown):
    """After a boolean index a dask array's chunk sizes are NaN, and the targets cannot be
    rechunked to match: the error named target and showed a shape of (nan,) (audit,
    2026-12-07).  It names the array and compute_chunk_sizes(), and that remedy works."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    y = np.arange(6) % 10
    logits, target = da.from_array(x, chunks=(2, 10)), da.from_array(y, chunks=2)
    if unknown in ("logits", "both"):
        logits = logits[logits[:, 0] > -100]  # every row: the same values, sizes unknown
    if unknown in ("target", "both"):
        target = target[target > -1]
    name = "target" if unknown == "target" else "logits"
    with pytest.raises(ValueError, match=rf"^{name} has chunks of unknown size, .*"
                                         rf"{name}\.compute_chunk_sizes\(\) first"):
        fsd.cross_entropy(logits, target)
    loss = fsd.cross_entropy(logits.compute_chunk_sizes(), target.compute_chunk_sizes())
    assert loss.compute(scheduler="synchronous") == fs.cross_entropy(x, y)


_RAGGED = [[1.0, 2.0], [3.0]]  # a nesting NumPy cannot make an array of


@pytest.mark.parametrize("call, name", [
    (lambda: fsd.softmax(_RAGGED), "x"),
    (lambda: fsd.log_softmax(_RAGGED), "x"),
    (lambda: fsd.logsumexp(_RAGGED), "x"),
    (lambda: fsd.softmax(np.ones((2, 2)), where=[[True], [True, False]]), "where"),
    (lambda: fsd.cross_entropy(_RAGGED, [0, 1]), "logits"),
    (lambda: fsd.cross_entropy(np.ones((2, 3)), [[1.0], [1.0, 2.0]]), "target"),
    (lambda: fsd.cross_entropy(np.ones((2, 3)), [0, 1], weight=[[1.0], [1.0, 2.0]]), "weight"),
    (lambda: fsd.cross_entropy(np.ones((2, 3)), [0, 1], sample_weight=_RAGGED),
     "sample_weight"),
])
def test_ragged_sequences_give_value_errors_naming_the_argument(call, name):
    """The NumPy functions' error for a ragged nesting, not NumPy's own, which names
    neither the argument nor its value (the 2026-12-07 audit's class, closed here)."""
    with pytest.raises(ValueError, match=rf"^{name} cannot be read as an array: .*got \[\["):
        call()
