"""Tests of the NumPy oracle `fastsoftmax.reference` itself.

The oracle is checked against independent implementations (SciPy, PyTorch),
against finite differences, and row by row against the numerics contract, so
the rest of the test suite can trust it.
"""

import warnings

import numpy as np
import pytest
import scipy.special
from numpy.testing import assert_allclose, assert_array_equal

import fastsoftmax as fs
from fastsoftmax import reference

# The contract promises silence for NaN/inf/empty/masked input.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# Result vs a float64 computation: float32 results are a float64 value rounded once.
TOLERANCE = {
    np.float32: dict(rtol=1e-6, atol=1e-7),
    np.float64: dict(rtol=1e-13, atol=1e-14),
}
# Against PyTorch, which accumulates float32 in float32.
TORCH_TOLERANCE = {
    np.float32: dict(rtol=2e-5, atol=1e-6),
    np.float64: dict(rtol=1e-11, atol=1e-13),
}
AXES = [0, 1, 2, -1, -2, None]


@pytest.fixture
def rng():
    return np.random.default_rng(20240607)


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    # These problems are tiny: torch's thread pool only adds overhead (~20x on a
    # busy machine), so run single-threaded here and restore the setting after.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n_threads)


def _numerical_vjp(function, x, grad_output, step=1e-6):
    """``d sum(grad_output * function(x)) / dx`` by central differences, entry by entry."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        delta = np.zeros_like(x)
        delta[index] = step
        difference = function(x + delta) - function(x - delta)
        grad[index] = np.sum(grad_output * difference) / (2 * step)
    return grad


# --------------------------------------------------------------------------- SciPy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", AXES)
def test_softmax_and_log_softmax_match_scipy(rng, dtype, axis):
    x = (5 * rng.standard_normal((3, 4, 5))).astype(dtype)
    x64 = x.astype(np.float64)
    softmax = reference.softmax(x, axis)
    log_softmax = reference.log_softmax(x, axis)
    assert softmax.dtype == log_softmax.dtype == dtype
    assert_allclose(softmax, scipy.special.softmax(x64, axis), **TOLERANCE[dtype])
    assert_allclose(log_softmax, scipy.special.log_softmax(x64, axis), **TOLERANCE[dtype])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", AXES)
def test_logsumexp_matches_scipy(rng, dtype, axis, keepdims):
    x = (5 * rng.standard_normal((3, 4, 5))).astype(dtype)
    result = reference.logsumexp(x, axis, keepdims=keepdims)
    expected = scipy.special.logsumexp(x.astype(np.float64), axis, keepdims=keepdims)
    assert result.dtype == dtype
    assert np.shape(result) == np.shape(expected)
    assert_allclose(result, expected, **TOLERANCE[dtype])


def test_logsumexp_over_whole_array_is_a_scalar():
    x = np.zeros((2, 3))
    assert isinstance(reference.logsumexp(x, axis=None), np.float64)
    assert reference.logsumexp(x, axis=None, keepdims=True).shape == (1, 1)


@pytest.mark.parametrize("temperature", [0.1, 1.0, 7.5])
def test_temperature_divides_the_logits(rng, temperature):
    x = 5 * rng.standard_normal((4, 6))
    assert_allclose(
        reference.softmax(x, temperature=temperature),
        scipy.special.softmax(x / temperature, axis=-1),
        **TOLERANCE[np.float64],
    )
    assert_allclose(
        reference.log_softmax(x, temperature=temperature),
        scipy.special.log_softmax(x / temperature, axis=-1),
        **TOLERANCE[np.float64],
    )


def test_extreme_temperatures_stay_finite(rng):
    x = rng.standard_normal((4, 6))
    one_hot_argmax = (x == x.max(axis=-1, keepdims=True)).astype(np.float64)
    assert_array_equal(reference.softmax(x, temperature=1e-300), one_hot_argmax)
    assert_allclose(reference.softmax(x, temperature=1e300), np.full_like(x, 1 / 6), rtol=1e-15)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.nan])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature"):
        reference.softmax([1.0, 2.0], temperature=temperature)


@pytest.mark.parametrize(
    ("x", "result_dtype"),
    [
        (np.array([1, 2], dtype=np.float16), np.float32),
        (np.array([1, 2], dtype=np.float32), np.float32),
        (np.array([1, 2], dtype=np.float64), np.float64),
        (np.array([1, 2], dtype=np.int32), np.float64),
        (np.array([1, 2], dtype=np.int64), np.float64),
        (np.array([True, False]), np.float64),
        ([1.0, 2.0], np.float64),
    ],
)
def test_result_dtype(x, result_dtype):
    assert reference.softmax(x).dtype == result_dtype
    assert reference.log_softmax(x).dtype == result_dtype
    assert reference.logsumexp(x).dtype == result_dtype
    assert reference.softmax_backward(x, x).dtype == result_dtype
    assert reference.log_softmax_backward(x, x).dtype == result_dtype
    assert reference.cross_entropy(np.stack([x, x]), [0, 1]).dtype == result_dtype


# ------------------------------------------------------------ numerics contract


def _per_slice(rows, axis, dtype=np.float64, where=None):
    """softmax, log_softmax, logsumexp with each row of `rows` as a slice along `axis`.

    Results are returned with one slice per row whatever `axis` was, so each
    contract case is checked both for contiguous rows and across the leading axis.
    """
    x = np.asarray(rows, dtype=dtype)
    if where is not None:
        where = np.asarray(where)
    if axis == 0:
        x, where = x.T, (None if where is None else where.T)
    softmax = reference.softmax(x, axis, where=where)
    log_softmax = reference.log_softmax(x, axis, where=where)
    logsumexp = reference.logsumexp(x, axis, where=where)
    if axis == 0:
        softmax, log_softmax = softmax.T, log_softmax.T
    return softmax, log_softmax, logsumexp


CONTRACT_AXES = pytest.mark.parametrize("axis", [-1, 0])
CONTRACT_DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])
ORDINARY_ROW = [0.5, -1.0, 2.0]


@CONTRACT_DTYPES
@CONTRACT_AXES
def test_nan_makes_its_slice_nan(axis, dtype):
    softmax, log_softmax, logsumexp = _per_slice(
        [[1.0, np.nan, 2.0], [np.inf, np.nan, 0.0], ORDINARY_ROW], axis, dtype
    )
    assert np.isnan(softmax[:2]).all() and np.isnan(log_softmax[:2]).all()
    assert np.isnan(logsumexp[:2]).all()
    assert_allclose(softmax[2], scipy.special.softmax(ORDINARY_ROW), **TOLERANCE[dtype])
    assert np.isfinite(logsumexp[2])


@CONTRACT_DTYPES
@CONTRACT_AXES
def test_all_minus_inf_slice(axis, dtype):
    softmax, log_softmax, logsumexp = _per_slice([[-np.inf] * 3, ORDINARY_ROW], axis, dtype)
    assert np.isnan(softmax[0]).all() and np.isnan(log_softmax[0]).all()
    assert logsumexp[0] == -np.inf
    assert np.isfinite(softmax[1]).all() and np.isfinite(logsumexp[1])


@CONTRACT_DTYPES
@CONTRACT_AXES
def test_plus_inf_entry(axis, dtype):
    rows = np.array([[1.0, np.inf, 2.0], [np.inf, np.inf, -np.inf], ORDINARY_ROW])
    softmax, log_softmax, logsumexp = _per_slice(rows, axis, dtype)
    with np.errstate(invalid="ignore"):
        plain = np.exp(rows - rows.max(axis=1, keepdims=True))
        plain_numpy_softmax = plain / plain.sum(axis=1, keepdims=True)
    assert np.isnan(plain_numpy_softmax[:2]).all()
    assert_allclose(softmax, plain_numpy_softmax, **TOLERANCE[dtype])
    assert np.isnan(log_softmax[:2]).all()
    assert_array_equal(logsumexp[:2], [np.inf, np.inf])


@CONTRACT_DTYPES
@CONTRACT_AXES
def test_masked_entries_are_ignored_even_if_nan_or_inf(axis, dtype):
    rows = [[1.0, np.nan, 2.0, np.inf], [np.nan, np.inf, -np.inf, 3.0], [-np.inf] * 4]
    where = [[True, False, True, False], [False, False, False, False], [False] * 4]
    softmax, log_softmax, logsumexp = _per_slice(rows, axis, dtype, where)
    kept, masked = [0, 2], [1, 3]
    assert_allclose(softmax[0, kept], scipy.special.softmax([1.0, 2.0]), **TOLERANCE[dtype])
    assert_array_equal(softmax[0, masked], 0.0)
    assert_allclose(
        log_softmax[0, kept], scipy.special.log_softmax([1.0, 2.0]), **TOLERANCE[dtype]
    )
    assert_array_equal(log_softmax[0, masked], -np.inf)
    assert_allclose(logsumexp[0], scipy.special.logsumexp([1.0, 2.0]), **TOLERANCE[dtype])
    # Fully masked slices, whatever they hold.
    assert_array_equal(softmax[1:], 0.0)
    assert_array_equal(log_softmax[1:], -np.inf)
    assert_array_equal(logsumexp[1:], -np.inf)


def test_causal_mask_broadcast_over_batch(rng):
    batch, length = 3, 5
    scores = rng.standard_normal((batch, length, length))
    causal = np.tril(np.ones((length, length), dtype=bool))
    scores[:, ~causal] = np.nan  # must not leak into the result
    scores_minus_inf_masked = np.where(causal, scores, -np.inf)
    tol = TOLERANCE[np.float64]

    softmax = reference.softmax(scores, where=causal)
    assert_allclose(softmax, scipy.special.softmax(scores_minus_inf_masked, axis=-1), **tol)
    assert_array_equal(softmax[:, ~causal], 0.0)
    log_softmax = reference.log_softmax(scores, where=causal)
    assert_allclose(
        log_softmax, scipy.special.log_softmax(scores_minus_inf_masked, axis=-1), **tol
    )
    assert_allclose(
        reference.logsumexp(scores, where=causal),
        scipy.special.logsumexp(scores_minus_inf_masked, axis=-1),
        **tol,
    )


def test_mask_along_leading_axis_and_whole_array(rng):
    x = rng.standard_normal((4, 3))
    where = rng.random((4, 3)) < 0.6
    where[0] = True  # every column keeps at least one entry
    masked = np.where(where, x, -np.inf)
    tol = TOLERANCE[np.float64]
    for axis in (0, None):
        assert_allclose(reference.softmax(x, axis, where=where),
                        scipy.special.softmax(masked, axis), **tol)
        assert_allclose(reference.log_softmax(x, axis, where=where),
                        scipy.special.log_softmax(masked, axis), **tol)
        assert_allclose(reference.logsumexp(x, axis, where=where),
                        scipy.special.logsumexp(masked, axis), **tol)


@pytest.mark.parametrize(
    ("shape", "axis", "logsumexp_shape"),
    [((3, 0), -1, (3,)), ((3, 0), 0, (0,)), ((0, 4), -1, (0,)), ((0,), None, ())],
)
def test_empty_input(shape, axis, logsumexp_shape):
    x = np.zeros(shape)
    assert reference.softmax(x, axis).shape == shape
    assert reference.log_softmax(x, axis).shape == shape
    logsumexp = reference.logsumexp(x, axis)
    assert np.shape(logsumexp) == logsumexp_shape
    assert_array_equal(logsumexp, -np.inf)  # empty reduced axis -> -inf


def test_large_shared_offset_float64(rng):
    x = rng.standard_normal((4, 16))
    shifted = x + 1e8
    # shifted - 1e8 is exact (Sterbenz), so both inputs hold the same differences.
    unshifted = shifted - 1e8
    assert_array_equal(reference.softmax(shifted), reference.softmax(unshifted))
    assert_array_equal(reference.log_softmax(shifted), reference.log_softmax(unshifted))
    assert_allclose(reference.logsumexp(shifted), 1e8 + reference.logsumexp(unshifted),
                    rtol=0, atol=np.spacing(1e8))
    assert_allclose(reference.logsumexp(np.full(10, 1e8)), 1e8 + np.log(10), rtol=0,
                    atol=np.spacing(1e8))


def test_large_shared_offset_float32(rng):
    shifted = np.float32(1e8) + np.float32(8) * rng.integers(-3, 4, (4, 16)).astype(np.float32)
    unshifted = shifted.astype(np.float64) - 1e8
    assert_array_equal(reference.softmax(shifted), reference.softmax(unshifted).astype(np.float32))
    assert_array_equal(reference.log_softmax(shifted),
                       reference.log_softmax(unshifted).astype(np.float32))


# ----------------------------------------------------------------- backward helpers


@pytest.mark.parametrize(
    ("shape", "axis"), [((3, 4), -1), ((3, 4), 0), ((3, 4), None), ((2, 3, 4), 1)]
)
def test_backward_helpers_match_finite_differences(rng, shape, axis):
    x = rng.standard_normal(shape)
    grad_output = rng.standard_normal(shape)
    for forward, backward in [
        (reference.softmax, reference.softmax_backward),
        (reference.log_softmax, reference.log_softmax_backward),
    ]:
        analytic = backward(grad_output, forward(x, axis), axis)
        numerical = _numerical_vjp(lambda z: forward(z, axis), x, grad_output)
        assert_allclose(analytic, numerical, rtol=1e-6, atol=1e-8)


# -------------------------------------------------------------- cross-entropy


def _torch_cross_entropy(torch, logits, target, *, axis=-1, weight=None, **options):
    """torch's loss and ``d loss.sum() / d logits``, classes moved to torch's axis 1."""
    torch_axis = 0 if logits.ndim == 1 else 1
    torch_logits = torch.tensor(np.moveaxis(logits, axis, torch_axis), requires_grad=True)
    if np.issubdtype(target.dtype, np.integer):
        torch_target = torch.tensor(target.astype(np.int64))  # torch wants int64 labels
    else:
        torch_target = torch.tensor(np.moveaxis(target, axis, torch_axis))
    torch_weight = None if weight is None else torch.tensor(weight)
    loss = torch.nn.functional.cross_entropy(
        torch_logits, torch_target, weight=torch_weight, **options
    )
    loss.sum().backward()
    return loss.detach().numpy(), np.moveaxis(torch_logits.grad.numpy(), torch_axis, axis)


def _assert_cross_entropy_matches_torch(torch, logits, target, **options):
    loss, grad = reference.cross_entropy(logits, target, return_grad=True, **options)
    torch_loss, torch_grad = _torch_cross_entropy(torch, logits, target, **options)
    assert loss.dtype == grad.dtype == logits.dtype
    assert np.shape(loss) == torch_loss.shape and grad.shape == logits.shape
    tolerance = TORCH_TOLERANCE[logits.dtype.type]
    assert_allclose(loss, torch_loss, **tolerance)
    assert_allclose(grad, torch_grad, **tolerance)
    assert_allclose(reference.cross_entropy(logits, target, **options), loss, rtol=0, atol=0)


def _class_labels(rng, shape, n_classes, dtype=np.int64, ignored_fraction=0.25, ignore_index=-100):
    labels = rng.integers(0, n_classes, shape).astype(dtype)
    labels[rng.random(shape) < ignored_fraction] = ignore_index
    return labels


def _class_weight(rng, n_classes, dtype):
    return rng.uniform(0.2, 2.0, n_classes).astype(dtype)


CE_DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])
CE_CLASSES = pytest.mark.parametrize("n_classes", [1, 2, 10, 1000])
CE_REDUCTIONS = pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
CE_WEIGHTED = pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
CE_SMOOTHING = pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])


@CE_DTYPES
@CE_CLASSES
@CE_REDUCTIONS
@CE_WEIGHTED
@CE_SMOOTHING
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_cross_entropy_class_indices_match_torch(
    torch, rng, dtype, n_classes, reduction, weighted, label_smoothing, label_dtype
):
    logits = (3 * rng.standard_normal((12, n_classes))).astype(dtype)
    labels = _class_labels(rng, 12, n_classes, label_dtype)
    weight = _class_weight(rng, n_classes, dtype) if weighted else None
    _assert_cross_entropy_matches_torch(
        torch, logits, labels, weight=weight, reduction=reduction, label_smoothing=label_smoothing
    )


@CE_DTYPES
@CE_CLASSES
@CE_REDUCTIONS
@CE_WEIGHTED
@CE_SMOOTHING
def test_cross_entropy_probabilities_match_torch(
    torch, rng, dtype, n_classes, reduction, weighted, label_smoothing
):
    logits = (3 * rng.standard_normal((12, n_classes))).astype(dtype)
    probabilities = rng.dirichlet(np.ones(n_classes), size=12).astype(dtype)
    weight = _class_weight(rng, n_classes, dtype) if weighted else None
    _assert_cross_entropy_matches_torch(
        torch, logits, probabilities, weight=weight, reduction=reduction,
        label_smoothing=label_smoothing,
    )


@CE_DTYPES
@CE_REDUCTIONS
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_cross_entropy_class_axis_1_of_3d(torch, rng, dtype, reduction, target_kind):
    n, n_classes, d = 4, 7, 5
    logits = rng.standard_normal((n, n_classes, d)).astype(dtype)
    if target_kind == "indices":
        target = _class_labels(rng, (n, d), n_classes)
    else:
        target = np.moveaxis(rng.dirichlet(np.ones(n_classes), size=(n, d)), -1, 1).astype(dtype)
    _assert_cross_entropy_matches_torch(
        torch, logits, target, axis=1, weight=_class_weight(rng, n_classes, dtype),
        reduction=reduction, label_smoothing=0.1,
    )


@CE_REDUCTIONS
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_cross_entropy_single_sample(torch, rng, reduction, target_kind):
    logits = rng.standard_normal(6)
    target = np.array(4) if target_kind == "indices" else rng.dirichlet(np.ones(6))
    _assert_cross_entropy_matches_torch(
        torch, logits, target, weight=_class_weight(rng, 6, np.float64),
        reduction=reduction, label_smoothing=0.1,
    )
    assert np.ndim(reference.cross_entropy(logits, target, reduction=reduction)) == 0


@CE_REDUCTIONS
@CE_WEIGHTED
@CE_SMOOTHING
def test_cross_entropy_all_ignored(torch, rng, reduction, weighted, label_smoothing):
    logits = rng.standard_normal((5, 4))
    labels = np.full(5, -100)
    weight = _class_weight(rng, 4, np.float64) if weighted else None
    options = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    _assert_cross_entropy_matches_torch(torch, logits, labels, **options)
    loss, grad = reference.cross_entropy(logits, labels, return_grad=True, **options)
    assert np.isnan(loss) if reduction == "mean" else np.all(loss == 0)
    assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_ignore_index_may_be_a_valid_class(torch, rng, label_smoothing):
    logits = rng.standard_normal((20, 3))
    labels = rng.integers(0, 3, 20)
    _assert_cross_entropy_matches_torch(
        torch, logits, labels, ignore_index=0, weight=_class_weight(rng, 3, np.float64),
        label_smoothing=label_smoothing,
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_cross_entropy_minus_inf_logit_matches_torch(torch, label_smoothing, target_kind):
    # A forbidden class (-inf logit) that the target gives no mass: torch's loss
    # is finite for class indices without smoothing, +inf with smoothing, and
    # NaN for probabilities (0 * -inf); the gradient stays finite throughout.
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf]])
    if target_kind == "indices":
        target = np.array([0, 0])
    else:
        target = np.array([[0.5, 0.0, 0.5], [0.2, 0.8, 0.0]])
    loss, grad = reference.cross_entropy(
        logits, target, reduction="none", label_smoothing=label_smoothing, return_grad=True
    )
    assert np.isfinite(grad).all()
    _assert_cross_entropy_matches_torch(
        torch, logits, target, reduction="none", label_smoothing=label_smoothing
    )


@pytest.mark.parametrize(("dtype", "value"), [(np.float32, 1e30), (np.float64, 1e8)])
@pytest.mark.parametrize("n_classes", [2, 10, 1000])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_equal_huge_logits_give_log_c(dtype, value, n_classes, label_smoothing):
    logits = np.full((3, n_classes), value, dtype=dtype)
    loss = reference.cross_entropy(logits, [0, 1, n_classes - 1], label_smoothing=label_smoothing)
    assert_allclose(loss, np.log(n_classes), **TOLERANCE[dtype])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_cross_entropy_gradient_matches_finite_differences(rng, reduction, target_kind):
    logits = rng.standard_normal((3, 5, 2))  # class axis 1
    if target_kind == "indices":
        target = np.array([[1, -100], [4, 0], [2, 2]])
    else:
        target = np.moveaxis(rng.dirichlet(np.ones(5), size=(3, 2)), -1, 1)
    options = dict(axis=1, weight=_class_weight(rng, 5, np.float64), reduction=reduction,
                   label_smoothing=0.1)
    loss, grad = reference.cross_entropy(logits, target, return_grad=True, **options)
    numerical = _numerical_vjp(
        lambda z: reference.cross_entropy(z, target, **options), logits, np.ones(np.shape(loss))
    )
    assert_allclose(grad, numerical, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad_label", [3, -1, 1000])
def test_cross_entropy_rejects_out_of_range_labels(bad_label):
    with pytest.raises(ValueError, match="labels"):
        reference.cross_entropy(np.zeros((2, 3)), [0, bad_label])


@pytest.mark.parametrize(
    ("target", "options"),
    [
        (np.array([0, 1, 2]), {}),  # class-index target with the wrong shape
        (np.zeros((2, 4)), {}),  # probability target with the wrong shape
        (np.array([0, 1]), dict(reduction="average")),
    ],
)
def test_cross_entropy_rejects_malformed_input(target, options):
    with pytest.raises(ValueError):
        reference.cross_entropy(np.zeros((2, 3)), target, **options)


def test_the_oracle_reads_what_the_fast_functions_read():
    """The reference takes every input the fast functions take, read the same way: bfloat16
    class labels (not probabilities), torch tensors in bfloat16 and with a lazy negation, a
    NumPy-scalar label_smoothing computed in float64 (not in its own float16)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    labels = np.array([2, 0])
    for target in (labels.astype(ml_dtypes.bfloat16), labels.astype(np.float32)):
        np.testing.assert_allclose(
            reference.cross_entropy(logits, target, reduction="none"),
            fs.cross_entropy(logits, target, reduction="none"), rtol=1e-15)
    for eps in (np.float16(0.25), np.float32(0.1)):
        np.testing.assert_allclose(reference.cross_entropy(logits, labels, label_smoothing=eps),
                                   reference.cross_entropy(logits, labels,
                                                           label_smoothing=float(eps)),
                                   rtol=1e-15)
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, -2.0, 0.5, 3.0], [0.25, 0.0, -1.0, 2.0]], np.float32)
    negated = torch._neg_view(torch.from_numpy(-x))
    assert negated.is_neg()
    for given, want in ((torch.from_numpy(x).bfloat16(), x.astype(ml_dtypes.bfloat16)),
                        (negated, x)):
        np.testing.assert_array_equal(reference.softmax(given), reference.softmax(want))
        np.testing.assert_array_equal(reference.logsumexp(given, b=given),
                                      reference.logsumexp(want, b=want))
        np.testing.assert_array_equal(reference.cross_entropy(given, labels, weight=given[0]),
                                      reference.cross_entropy(want, labels, weight=want[0]))


def test_the_oracle_sample_is_silent_and_leaves_rng_on_error():
    """As fs.sample: no warning where IEEE arithmetic overflows on valid logits, and a call
    that raises leaves rng as it was."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in (np.array([2.0, np.finfo(np.float64).min]), np.array([1e308, -1e308])):
            reference.sample(x, temperature=0.7, u=0.5)
            reference.sample_kept(x, temperature=0.7)
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="NaN"):
        reference.sample(np.array([[0.0, 1.0], [np.nan, 1.0]]), rng=rng)
    assert rng.random() == np.random.default_rng(7).random()


@pytest.mark.parametrize("weight", [np.inf, -np.inf])
def test_the_oracle_infinite_weight_on_an_underflowing_term(weight):
    """An infinite term decides alone, however far its exp underflows (fs.logsumexp's rule)."""
    x, b = np.array([0.0, -1000.0]), np.array([1.0, weight])
    assert reference.logsumexp(x, b=b, return_sign=True) == (np.inf, np.sign(weight))
    assert fs.logsumexp(x, b=b, return_sign=True) == (np.inf, np.sign(weight))


@pytest.mark.parametrize("kwargs", [dict(weight=np.array([-1.0, 1.0, 1.0])),
                                    dict(sample_weight=np.array([1.0, -1.0]))])
def test_the_oracle_gradient_when_the_mean_divides_by_zero(kwargs):
    """Weights summing to 0: the mean's scale is 1/0, and torch's chain makes the label's
    entry inf - inf = NaN and the others +-inf; the oracle's and fs's the same."""
    torch = pytest.importorskip("torch")
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    labels = np.array([0, 1])
    _, want = reference.cross_entropy(logits, labels, return_grad=True, **kwargs)
    _, got = fs.cross_entropy(logits, labels, return_grad=True, **kwargs)
    leaf = torch.from_numpy(logits).requires_grad_(True)
    if "weight" in kwargs:
        torch.nn.functional.cross_entropy(leaf, torch.from_numpy(labels),
                                          weight=torch.from_numpy(kwargs["weight"])).backward()
        np.testing.assert_array_equal(want, leaf.grad.numpy())
    assert np.isnan(want[[0, 1], labels]).all() and np.isinf(np.delete(want.ravel(), [0, 4])).all()
    np.testing.assert_array_equal(got, want)
