"""cross_entropy's scikit-learn arguments: ``sample_weight`` and float labels holding integers.

Checked against fastsoftmax.reference, against the definition written out with
NumPy, and against scikit-learn: its values are hard-coded here (computed once
with scikit-learn 1.9.1, so the tests run where it is absent) and compared
live where it is installed.
"""
import itertools
import math
import warnings

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import reference
from fastsoftmax._testing import check_cross_entropy
from conftest import random_logits

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def make_case(dtype, n_classes, layout, target_kind, seed=0):
    """(logits, target, axis, sample_weight): rows (N, C) or a panel (N, C, d) with axis 1.

    Labels include ignored samples; sample weights include 0 and negatives.
    """
    rng = np.random.default_rng(seed)
    if layout == "rows":
        shape, axis, sample_shape = (13, n_classes), -1, (13,)
    else:
        shape, axis, sample_shape = (3, n_classes, 5), 1, (3, 5)
    logits = random_logits(shape, dtype, seed=seed)
    if target_kind == "probabilities":
        target = reference.softmax(rng.standard_normal(shape) * 2, axis=axis).astype(dtype)
    else:
        target = rng.integers(0, n_classes, size=sample_shape)
        target.flat[::5] = -100
        if target_kind == "float labels":
            target = target.astype(np.float64)
    sample_weight = rng.random(sample_shape) * 3
    sample_weight.flat[1] = 0.0
    sample_weight.flat[2] = -0.5
    return logits, target, axis, sample_weight


# ------------------------------------------------------------- the reference and the definition

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [1, 3, 17, 300])
@pytest.mark.parametrize("layout", ["rows", "panel"])
@pytest.mark.parametrize("target_kind", ["labels", "float labels", "probabilities"])
def test_against_reference(dtype, n_classes, layout, target_kind):
    logits, target, axis, sample_weight = make_case(dtype, n_classes, layout, target_kind,
                                                    seed=n_classes)
    class_weight = np.linspace(0.5, 2.0, n_classes).astype(dtype)
    for weight, smoothing, reduction in itertools.product([None, class_weight], [0.0, 0.1],
                                                          REDUCTIONS):
        options = dict(weight=weight, label_smoothing=smoothing, reduction=reduction,
                       sample_weight=sample_weight)
        loss, grad = fs.cross_entropy(logits, target, axis=axis, return_grad=True, **options)
        assert np.asarray(loss).dtype == grad.dtype == dtype
        check_cross_entropy(loss, grad, logits, target, axis=axis, **options)
        np.testing.assert_array_equal(fs.cross_entropy(logits, target, axis=axis, **options),
                                      loss)


@pytest.mark.parametrize("target_kind", ["labels", "probabilities"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_the_definition_in_numpy(target_kind, smoothing):
    """none: s * loss; sum: sum(s * loss); mean: sum(s * loss) / sum(s * w[y]) over kept samples.

    ``loss`` is the unweighted call's 'none' loss (which carries w[y]); the
    gradient of each reduction is the 'none' gradient rows times ``s``, over the
    same denominator for 'mean'.
    """
    logits, target, axis, s = make_case(np.float64, 6, "rows", target_kind, seed=4)
    w = np.array([0.5, 1.0, 2.0, 0.25, 1.5, 3.0])
    options = dict(weight=w, label_smoothing=smoothing)
    loss, grad = fs.cross_entropy(logits, target, reduction="none", return_grad=True, **options)
    if target_kind == "labels":
        kept = target != -100
        denominator = math.fsum(s[kept] * w[target[kept]])
    else:
        denominator = math.fsum(s)
    expected = {"none": (s * loss, s[:, None] * grad),
                "sum": (math.fsum(s * loss), s[:, None] * grad),
                "mean": (math.fsum(s * loss) / denominator, s[:, None] * grad / denominator)}
    for reduction, (expected_loss, expected_grad) in expected.items():
        got_loss, got_grad = fs.cross_entropy(logits, target, reduction=reduction,
                                              sample_weight=s, return_grad=True, **options)
        np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-14, atol=1e-16)


def test_unit_weights_change_nothing_and_a_scalar_weight_cancels_in_the_mean():
    logits, target, axis, _ = make_case(np.float64, 7, "panel", "labels", seed=5)
    weight = np.linspace(1.0, 2.0, 7)
    for reduction in REDUCTIONS:
        plain = fs.cross_entropy(logits, target, axis=axis, weight=weight, reduction=reduction,
                                 return_grad=True)
        ones = fs.cross_entropy(logits, target, axis=axis, weight=weight, reduction=reduction,
                                return_grad=True, sample_weight=np.ones((3, 5)))
        # (The mean's denominator is summed another way: equal to the last bits.)
        np.testing.assert_allclose(ones[0], plain[0], rtol=1e-15)
        np.testing.assert_allclose(ones[1], plain[1], rtol=1e-15)
        scaled = fs.cross_entropy(logits, target, axis=axis, weight=weight, reduction=reduction,
                                  return_grad=True, sample_weight=4.0)
        factor = 1.0 if reduction == "mean" else 4.0
        np.testing.assert_allclose(scaled[0], factor * plain[0], rtol=1e-15)
        np.testing.assert_allclose(scaled[1], factor * plain[1], rtol=1e-15, atol=1e-17)


def test_integer_weights_are_repeated_samples():
    """A sample of weight 2 counts as the sample twice, for the loss and the gradient."""
    logits, target, _, _ = make_case(np.float64, 5, "rows", "labels", seed=6)
    counts = np.arange(13) % 3                                   # 0, 1 or 2 copies
    repeated = np.repeat(np.arange(13), counts)
    weighted = fs.cross_entropy(logits, target, sample_weight=counts, label_smoothing=0.1)
    np.testing.assert_allclose(weighted, fs.cross_entropy(logits[repeated], target[repeated],
                                                          label_smoothing=0.1), rtol=1e-14)
    _, grad = fs.cross_entropy(logits, target, sample_weight=counts, reduction="sum",
                               return_grad=True)
    _, grad_repeated = fs.cross_entropy(logits[repeated], target[repeated], reduction="sum",
                                        return_grad=True)
    summed = np.zeros_like(grad)              # each copy's gradient row, added to its sample's
    np.add.at(summed, repeated, grad_repeated)
    np.testing.assert_allclose(grad, summed, rtol=1e-14, atol=1e-16)


def test_broadcasting_follows_numpy():
    """(N, 1, 1) weighs whole images of (N, H, W) samples; (W,) lines up with the last axis."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((2, 4, 3, 5))                 # (N, C, H, W), axis 1
    labels = rng.integers(0, 4, (2, 3, 5))
    per_image = np.array([2.0, 0.5]).reshape(2, 1, 1)
    per_column = np.arange(1.0, 6.0)
    for s in (per_image, per_column, np.float64(3.0), [[1.0] * 5] * 3):
        full = np.broadcast_to(s, (2, 3, 5)).copy()
        for reduction in REDUCTIONS:
            got = fs.cross_entropy(logits, labels, axis=1, sample_weight=s, reduction=reduction,
                                   return_grad=True)
            expected = fs.cross_entropy(logits, labels, axis=1, sample_weight=full,
                                        reduction=reduction, return_grad=True)
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_into_grad_out_and_over_the_logits(dtype):
    logits, target, axis, s = make_case(dtype, 40, "panel", "labels", seed=8)
    s_before = s.copy()
    loss, grad = fs.cross_entropy(logits, target, axis=axis, sample_weight=s, return_grad=True)
    buffer = np.full_like(logits, np.nan)
    loss2, grad2 = fs.cross_entropy(logits, target, axis=axis, sample_weight=s,
                                    return_grad=True, grad_out=buffer)
    assert grad2 is buffer
    in_place = logits.copy()
    loss3, grad3 = fs.cross_entropy(in_place, target, axis=axis, sample_weight=s,
                                    return_grad=True, grad_out=in_place)
    assert grad3 is in_place
    np.testing.assert_array_equal(grad2, grad)
    np.testing.assert_array_equal(grad3, grad)
    assert loss == loss2 == loss3
    np.testing.assert_array_equal(s, s_before)                  # an input, never written


def test_finite_difference_gradient():
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, -100, 2, 1])
    s = np.array([0.5, 2.0, 1.0, -0.3, 1.5])
    for kwargs in ({}, {"weight": rng.random(4) + 0.5, "label_smoothing": 0.2},
                   {"reduction": "sum"}):
        _, grad = fs.cross_entropy(logits, labels, sample_weight=s, return_grad=True, **kwargs)
        step, numeric = 1e-6, np.zeros_like(logits)
        for i in np.ndindex(logits.shape):
            up, down = logits.copy(), logits.copy()
            up[i] += step
            down[i] -= step
            numeric[i] = (fs.cross_entropy(up, labels, sample_weight=s, **kwargs)
                          - fs.cross_entropy(down, labels, sample_weight=s, **kwargs)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, atol=1e-8, err_msg=str(kwargs))


def test_ignored_samples_leave_numerator_and_denominator_whatever_their_weight():
    logits = random_logits((6, 4), np.float64, seed=10)
    labels = np.array([1, -100, 3, 0, -100, 2])
    s = np.array([1.0, 1e6, 2.0, 0.5, -7.0, 1.0])
    kept = labels != -100
    loss, grad = fs.cross_entropy(logits, labels, sample_weight=s, return_grad=True)
    loss_kept, grad_kept = fs.cross_entropy(logits[kept], labels[kept], sample_weight=s[kept],
                                            return_grad=True)
    np.testing.assert_allclose(loss, loss_kept, rtol=1e-15)
    np.testing.assert_array_equal(grad[~kept], 0.0)
    np.testing.assert_allclose(grad[kept], grad_kept, rtol=1e-15)
    none = fs.cross_entropy(logits, labels, sample_weight=s, reduction="none")
    assert none[1] == none[4] == 0.0


def test_zero_total_weight_gives_ieee_results():
    """A mean over zero total weight is 0/0 = NaN (scikit-learn raises instead); 'sum' is 0."""
    logits = random_logits((3, 4), np.float64, seed=11)
    labels = np.array([0, 1, 2])
    loss, grad = fs.cross_entropy(logits, labels, sample_weight=np.zeros(3), return_grad=True)
    assert np.isnan(loss) and np.isnan(grad).all()              # 0 * (1 / 0) per entry
    assert fs.cross_entropy(logits, labels, sample_weight=np.zeros(3), reduction="sum") == 0.0
    signed = np.array([1.0, -1.0, 0.0])                         # cancels: x / 0 = +-inf
    total = float(fs.cross_entropy(logits, labels, sample_weight=signed, reduction="sum"))
    assert total != 0
    assert fs.cross_entropy(logits, labels, sample_weight=signed) == np.copysign(np.inf, total)
    # All ignored: NaN and a zero gradient, as without sample weights (torch's rule).
    loss, grad = fs.cross_entropy(logits, np.full(3, -100), sample_weight=np.ones(3),
                                  return_grad=True)
    assert np.isnan(loss) and (grad == 0).all()


def test_weights_multiply_as_ieee_products():
    """A zero weight on an infinite loss gives NaN (as scikit-learn's and the reference's)."""
    logits = np.array([[-np.inf, 0.0, 1.0], [0.0, 1.0, 2.0]])
    labels = np.array([0, 1])                                   # sample 0: loss +inf
    s = np.array([0.0, 2.0])
    for reduction in REDUCTIONS:
        loss, grad = fs.cross_entropy(logits, labels, sample_weight=s, reduction=reduction,
                                      return_grad=True)
        ref_loss, ref_grad = reference.cross_entropy(logits, labels, sample_weight=s,
                                                     reduction=reduction, return_grad=True)
        assert np.isnan(np.asarray(loss).flat[0]) and np.isnan(ref_loss).flat[0]
        assert (grad[0] == 0).all()                             # 0 * a finite gradient
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-15)
    assert fs.cross_entropy(logits, labels, sample_weight=s, reduction="none")[1] \
        == 2 * fs.cross_entropy(logits, labels, reduction="none")[1]


def test_edge_shapes():
    # One sample (1-D logits): a 0-d weight.
    logits = np.array([1.0, 2.0, 0.5])
    loss, grad = fs.cross_entropy(logits, 1, sample_weight=2.5, reduction="sum", return_grad=True)
    plain, plain_grad = fs.cross_entropy(logits, 1, reduction="sum", return_grad=True)
    assert loss == 2.5 * plain and np.ndim(loss) == 0
    np.testing.assert_array_equal(grad, 2.5 * plain_grad)
    # No samples.
    loss, grad = fs.cross_entropy(np.zeros((0, 3)), np.zeros(0, np.int64),
                                  sample_weight=np.zeros(0), return_grad=True)
    assert np.isnan(loss) and grad.shape == (0, 3)
    assert fs.cross_entropy(np.zeros((0, 3)), np.zeros(0), sample_weight=[],
                            reduction="sum") == 0
    # No classes: every label must be ignored.
    loss = fs.cross_entropy(np.zeros((2, 0)), np.full(2, -100), weight=np.zeros(0),
                            sample_weight=[1.0, 2.0], reduction="sum")
    assert loss == 0


def test_weight_dtypes_and_conversion():
    """ints and bools are accepted (as scikit-learn does); weights take the logits' dtype."""
    logits32 = random_logits((8, 5), np.float32, seed=12)
    labels = np.arange(8) % 5
    as_float = fs.cross_entropy(logits32, labels, sample_weight=np.array([1.0, 0.0] * 4))
    assert fs.cross_entropy(logits32, labels, sample_weight=np.array([True, False] * 4)) \
        == as_float == fs.cross_entropy(logits32, labels, sample_weight=[1, 0] * 4)
    s64 = np.random.default_rng(12).random(8) + 1e-9
    got = fs.cross_entropy(logits32, labels, sample_weight=s64, return_grad=True)
    expected = fs.cross_entropy(logits32, labels, sample_weight=s64.astype(np.float32),
                                return_grad=True)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    big_endian = fs.cross_entropy(logits32, labels, sample_weight=s64.astype(">f8"))
    assert big_endian == got[0]


def test_bad_sample_weights_raise_before_anything_is_written():
    logits = np.zeros((3, 4))
    labels = np.array([0, 1, 2])
    cases = [
        (np.ones(4), ValueError, r"sample_weight with shape \(4,\) does not broadcast to the "
                                 r"samples' shape \(3,\)"),
        (np.ones((3, 1)), ValueError, r"shape \(3, 1\) does not broadcast"),   # would enlarge
        (np.ones((1, 3)), ValueError, r"shape \(1, 3\) does not broadcast"),
        (np.array([1.0, np.nan, 1.0]), ValueError,
         r"sample_weight holds nan at position \(1,\); sample weights must be finite"),
        (np.array([1.0, 1.0, -np.inf]), ValueError, r"sample_weight holds -inf at position \(2,\)"),
        (np.array([1 + 1j, 1, 1]), TypeError, "sample_weight must hold real numbers"),
        (np.array(["1", "1", "1"]), TypeError, "sample_weight must hold real numbers"),
        (np.array([None, 1, 1]), TypeError, "sample_weight must hold real numbers"),
    ]
    for sample_weight, error, message in cases:
        grad = np.full_like(logits, 7.0)
        with pytest.raises(error, match=message):
            fs.cross_entropy(logits, labels, sample_weight=sample_weight, return_grad=True,
                             grad_out=grad)
        assert (grad == 7.0).all()
    # A float64 weight beyond float32's range is not finite in the logits' dtype.
    with pytest.raises(ValueError, match=r"sample_weight holds 1e\+39 at position \(0,\); sample "
                                         r"weights must be finite in the logits' dtype, float32"):
        fs.cross_entropy(logits.astype(np.float32), labels, sample_weight=[1e39, 1.0, 1.0])
    # The panel's sample shape is (2, 5): (2,) lines up with the 5 and does not broadcast.
    with pytest.raises(ValueError, match=r"samples' shape \(2, 5\)"):
        fs.cross_entropy(np.zeros((2, 4, 5)), np.zeros((2, 5), np.int64), axis=1,
                         sample_weight=np.ones(2))


# ---------------------------------------------------------------------------- float labels

@pytest.mark.parametrize("float_dtype", [np.float16, np.float32, np.float64, ">f8"])
@pytest.mark.parametrize("layout", ["rows", "panel"])
def test_float_labels_are_the_int_labels(float_dtype, layout):
    logits, labels, axis, s = make_case(np.float32, 9, layout, "labels", seed=13)
    float_labels = labels.astype(float_dtype)
    for options in ({}, {"label_smoothing": 0.1, "weight": np.linspace(1, 2, 9)},
                    {"reduction": "none", "sample_weight": s}, {"reduction": "sum"}):
        got = fs.cross_entropy(logits, float_labels, axis=axis, return_grad=True, **options)
        expected = fs.cross_entropy(logits, labels, axis=axis, return_grad=True, **options)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        ref = reference.cross_entropy(logits, float_labels, axis=axis, return_grad=True,
                                      **options)
        check_cross_entropy(got[0], got[1], logits, labels, axis=axis, **options)
        np.testing.assert_array_equal(ref[0], reference.cross_entropy(
            logits, labels, axis=axis, **options))


def test_float_target_kind_is_decided_by_ndim():
    """(N, N) logits: an (N, N) float target is probabilities, an (N,) one labels."""
    logits = random_logits((3, 3), np.float64, seed=14)
    probabilities = np.eye(3)[[2, 0, 1]]
    labels = np.array([2.0, 0.0, 1.0])
    np.testing.assert_allclose(fs.cross_entropy(logits, probabilities),
                               fs.cross_entropy(logits, labels), rtol=1e-15)
    # 1-D logits: a 0-d float is one label, a (C,) float array the probabilities.
    np.testing.assert_allclose(fs.cross_entropy(logits[0], 2.0),
                               fs.cross_entropy(logits[0], np.eye(3)[2]), rtol=1e-15)
    with pytest.raises(ValueError, match=r"a float target must have the logits' shape \(3, 3\) "
                                         r"\(class probabilities\) or their shape without the "
                                         r"class axis \(3,\) \(class labels\), got \(3, 3, 1\)"):
        fs.cross_entropy(logits, np.zeros((3, 3, 1)))
    with pytest.raises(ValueError, match=r"got \(4,\)"):
        fs.cross_entropy(logits, np.zeros(4))
    with pytest.raises(ValueError, match=r"target of class probabilities must have the logits' "
                                         r"shape \(3, 3\), got \(3, 4\)"):
        fs.cross_entropy(logits, np.zeros((3, 4)))


@pytest.mark.parametrize("bad,shown", [(0.5, "0.5"), (np.nan, "nan"), (np.inf, "inf"),
                                       (-np.inf, "-inf"), (2.0**63, "9.223372036854776e\\+18"),
                                       (-1e300, "-1e\\+300"), (2.999999, "2.999999")])
def test_float_labels_that_are_not_integers_raise(bad, shown):
    logits = np.zeros((2, 3, 4))                                # classes on axis 1: labels (2, 4)
    labels = np.zeros((2, 4))
    labels[1, 2] = bad
    grad = np.full_like(logits, 7.0)
    with pytest.raises(ValueError, match=rf"target holds {shown} at position \(1, 2\): a float "
                                         r"target with the logits' shape without the class axis "
                                         r"holds class labels, which must be integers"):
        fs.cross_entropy(logits, labels, axis=1, return_grad=True, grad_out=grad)
    assert (grad == 7.0).all()
    with pytest.raises(ValueError, match="float class labels must be integers"):
        reference.cross_entropy(logits, labels, axis=1)


def test_float_labels_out_of_range_report_the_label():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target holds label 4 at position \(2,\), outside "
                                         r"\[0, 4\) and not ignore_index=-100"):
        fs.cross_entropy(logits, np.array([0.0, -100.0, 4.0]))
    assert fs.cross_entropy(logits, np.array([-0.0, 3.0, -1.0]), ignore_index=-1) \
        == pytest.approx(np.log(4))


# ------------------------------------------------------- scikit-learn: hard-coded, then live

SK_LOGITS = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-1.0, 3.0, 0.5],
                      [1.5, -0.5, 0.25], [0.1, 0.2, 0.3]])
SK_Y = np.array([0.0, 2.0, 1.0, 0.0, 2.0])                     # scikit-learn's float labels
SK_S = np.array([1.0, 2.0, 0.0, 0.5, 3.0])
SK_S_SIGNED = np.array([1.0, -1.0, 1.0, 2.0, 1.0])
# Computed once with scikit-learn 1.9.1:
#   loss = HalfMultinomialLoss(n_classes=3); p = scipy.special.softmax(SK_LOGITS, axis=1)
# loss.loss(SK_Y, SK_LOGITS, sample_weight=SK_S)
SK_LOSS = np.array([0.24131129665715711, 2.1972245773362196, 0.0, 0.17597593190140093,
                    3.0058285446877324])
# loss.gradient(SK_Y, SK_LOGITS, sample_weight=SK_S)
SK_GRADIENT = np.array([
    [-0.21440296541072412, 0.1752903921400367, 0.039112573270687456],
    [0.6666666666666666, 0.6666666666666666, -1.3333333333333335],
    [0.0, -0.0, 0.0],
    [-0.14834301198911304, 0.0475915980745875, 0.10075141391452547],
    [0.9018288160671819, 0.9966749806000419, -1.8985037966672234]])
SK_MEAN = 0.8646677462434631        # loss(SK_Y, SK_LOGITS, sample_weight=SK_S)
SK_LOG_LOSS = 0.864667746243463     # log_loss(SK_Y, p, sample_weight=SK_S)
SK_LOG_LOSS_SUM = 5.620340350582509  # log_loss(SK_Y, p, sample_weight=SK_S, normalize=False)
SK_LOG_LOSS_SIGNED = 0.23605497830956929  # log_loss(SK_Y, p, sample_weight=SK_S_SIGNED)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scikit_learn_values(dtype):
    """HalfMultinomialLoss's loss and gradient, its weighted mean, and log_loss (hard-coded)."""
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    logits = SK_LOGITS.astype(dtype)
    loss, grad = fs.cross_entropy(logits, SK_Y, sample_weight=SK_S, reduction="none",
                                  return_grad=True)
    np.testing.assert_allclose(loss, SK_LOSS, rtol=rtol)
    np.testing.assert_allclose(grad, SK_GRADIENT, rtol=0, atol=rtol * 2)
    mean = fs.cross_entropy(logits, SK_Y, sample_weight=SK_S)
    np.testing.assert_allclose(mean, SK_MEAN, rtol=rtol)
    np.testing.assert_allclose(mean, SK_LOG_LOSS, rtol=rtol)
    np.testing.assert_allclose(fs.cross_entropy(logits, SK_Y, sample_weight=SK_S,
                                                reduction="sum"), SK_LOG_LOSS_SUM, rtol=rtol)
    np.testing.assert_allclose(fs.cross_entropy(logits, SK_Y, sample_weight=SK_S_SIGNED),
                               SK_LOG_LOSS_SIGNED, rtol=rtol)


def test_scikit_learn_live():
    pytest.importorskip("sklearn")
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(15)
    n_samples, n_classes = 200, 7
    logits = rng.standard_normal((n_samples, n_classes)) * 3
    y = rng.integers(0, n_classes, n_samples).astype(np.float64)
    s = rng.random(n_samples) * 2
    s[::7] = 0.0
    p = fs.softmax(logits)
    sk_loss = HalfMultinomialLoss(n_classes=n_classes)
    loss, grad = fs.cross_entropy(logits, y, sample_weight=s, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, sk_loss.loss(y, logits, sample_weight=s), rtol=1e-13)
    np.testing.assert_allclose(grad, sk_loss.gradient(y, logits, sample_weight=s), rtol=0,
                               atol=1e-15)
    for weights in (None, s, np.where(np.arange(n_samples) % 3 == 0, -0.5, s)):
        expected_mean = log_loss(y, p, sample_weight=weights, labels=range(n_classes))
        np.testing.assert_allclose(fs.cross_entropy(logits, y, sample_weight=weights),
                                   expected_mean, rtol=1e-12)
        expected_sum = log_loss(y, p, sample_weight=weights, labels=range(n_classes),
                                normalize=False)
        np.testing.assert_allclose(fs.cross_entropy(logits, y, sample_weight=weights,
                                                    reduction="sum"), expected_sum, rtol=1e-12)
    np.testing.assert_allclose(fs.cross_entropy(logits, y, sample_weight=s),
                               sk_loss(y, logits, sample_weight=s), rtol=1e-13)
    # What scikit-learn refuses: non-integer float labels (we raise too), non-finite weights
    # (we raise too), all-zero weights (we give IEEE's NaN, as torch for an empty mean).
    bad_y = y.copy()
    bad_y[3] = 1.5
    with pytest.raises(ValueError):
        log_loss(bad_y, p, labels=range(n_classes))
    with pytest.raises(ValueError, match=r"target holds 1.5 at position \(3,\)"):
        fs.cross_entropy(logits, bad_y)
    nan_s = s.copy()
    nan_s[4] = np.nan
    with pytest.raises(ValueError):
        log_loss(y, p, sample_weight=nan_s, labels=range(n_classes))
    with pytest.raises(ValueError, match=r"sample_weight holds nan at position \(4,\)"):
        fs.cross_entropy(logits, y, sample_weight=nan_s)
    with pytest.raises(ValueError):
        log_loss(y, p, sample_weight=np.zeros(n_samples), labels=range(n_classes))
    assert np.isnan(fs.cross_entropy(logits, y, sample_weight=np.zeros(n_samples)))


def test_scikit_learn_float32_live():
    """HalfMultinomialLoss in float32 (its raw predictions and weights) against ours."""
    pytest.importorskip("sklearn")
    from sklearn._loss.loss import HalfMultinomialLoss

    logits = random_logits((50, 4), np.float32, seed=16)
    y = (np.arange(50) % 4).astype(np.float32)
    s = np.random.default_rng(16).random(50).astype(np.float32)
    sk_loss = HalfMultinomialLoss(n_classes=4)
    loss, grad = fs.cross_entropy(logits, y, sample_weight=s, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, sk_loss.loss(y, logits, sample_weight=s), rtol=2e-6,
                               atol=1e-7)
    np.testing.assert_allclose(grad, sk_loss.gradient(y, logits, sample_weight=s), rtol=0,
                               atol=1e-6)


def test_a_class_weight_beyond_float32_is_inf_without_a_warning():
    """A float64 class weight beyond float32's range becomes inf in float32 logits' dtype (as
    torch's cast makes it; infinite class weights are allowed), quietly: NumPy's cast warning
    is not the caller's business."""
    logits = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], np.float32)
    big = np.array([1e39, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fs.cross_entropy(logits, np.array([0, 1]), weight=big, reduction="none")
    want = fs.cross_entropy(logits, np.array([0, 1]), reduction="none",
                            weight=np.array([np.inf, 1.0, 1.0], np.float32))
    np.testing.assert_array_equal(got, want)
