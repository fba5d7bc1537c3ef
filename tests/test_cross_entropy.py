"""cross_entropy (loss and fused gradient) against fastsoftmax.reference and PyTorch."""
import itertools

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import reference
from fastsoftmax._testing import GRAD_TOL, LOSS_RTOL
from conftest import random_logits

DTYPES = [np.float32, np.float64]
CLASSES = [1, 2, 10, 1000, 32000]
REDUCTIONS = ["mean", "sum", "none"]


def make_case(dtype, n_classes, shape_kind="rows", target_kind="index", seed=0, n_samples=24):
    """(logits, target, axis) for rows (N, C) or torch's (N, C, d) layout with axis 1."""
    rng = np.random.default_rng(seed)
    if shape_kind == "rows":
        shape, axis, sample_shape = (n_samples, n_classes), -1, (n_samples,)
    else:
        shape, axis, sample_shape = (4, n_classes, 5), 1, (4, 5)
    logits = random_logits(shape, dtype, seed=seed)
    if target_kind == "index":
        target = rng.integers(0, n_classes, size=sample_shape)
        target.flat[::4] = -100                       # some ignored samples
    else:
        target = reference.softmax(rng.standard_normal(shape) * 2, axis=axis).astype(dtype)
    return logits, target, axis


def check_against_reference(logits, target, axis, **kwargs):
    dtype = logits.dtype
    loss, grad = fs.cross_entropy(logits, target, axis=axis, return_grad=True, **kwargs)
    ref_loss, ref_grad = reference.cross_entropy(logits, target, axis=axis, return_grad=True,
                                                 **kwargs)
    assert np.asarray(loss).dtype == logits.dtype and grad.dtype == logits.dtype
    # Loss: relative.  Gradient: relative to the largest entry (fastsoftmax._testing).
    np.testing.assert_allclose(loss, ref_loss, rtol=LOSS_RTOL[dtype], atol=1e-30)
    # With one class the exact gradient is 0 and ours is p*c - c rounded: absolute scale 1.
    scale = np.abs(ref_grad).max(initial=0.0) or 1.0
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=GRAD_TOL[dtype] * scale)
    # The loss alone is the same loss.
    np.testing.assert_array_equal(fs.cross_entropy(logits, target, axis=axis, **kwargs), loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_grid_against_reference(isa, dtype, n_classes, reduction, target_kind):
    n_samples = 3 if n_classes >= 1000 else 24
    logits, target, axis = make_case(dtype, n_classes, target_kind=target_kind, seed=n_classes,
                                     n_samples=n_samples)
    weight = np.random.default_rng(1).random(n_classes).astype(dtype) + 0.1
    for w, smoothing in itertools.product([None, weight], [0.0, 0.1, 1.0]):
        check_against_reference(logits, target, axis, weight=w, reduction=reduction,
                                label_smoothing=smoothing)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [1, 2, 7, 8, 9, 16, 17, 33, 1000])
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_class_axis_1_on_3d(isa, dtype, n_classes, target_kind):
    logits, target, axis = make_case(dtype, n_classes, "panel", target_kind, seed=3)
    weight = np.linspace(0.5, 2.0, n_classes).astype(dtype)
    for w, smoothing, reduction in itertools.product([None, weight], [0.0, 0.2], REDUCTIONS):
        check_against_reference(logits, target, axis, weight=w, label_smoothing=smoothing,
                                reduction=reduction)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_label_dtypes(label_dtype):
    logits = random_logits((30, 10), np.float32)
    labels = (np.arange(30) % 10).astype(label_dtype)
    expected = fs.cross_entropy(logits, labels.astype(np.int64), return_grad=True)
    got = fs.cross_entropy(logits, labels, return_grad=True)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_ignore_index_semantics():
    logits = random_logits((6, 5), np.float64)
    labels = np.array([1, -100, 3, -100, 0, 4])
    loss, grad = fs.cross_entropy(logits, labels, reduction="none", return_grad=True)
    assert loss[1] == 0 and loss[3] == 0
    assert (grad[[1, 3]] == 0).all()
    kept = labels != -100
    np.testing.assert_allclose(fs.cross_entropy(logits, labels),
                               fs.cross_entropy(logits[kept], labels[kept]), rtol=1e-15)
    # A valid class can be the ignored one.
    np.testing.assert_allclose(fs.cross_entropy(logits, np.array([1, 2, 3, 2, 0, 4]), ignore_index=2),
                               fs.cross_entropy(logits[[0, 2, 4, 5]], np.array([1, 3, 0, 4])),
                               rtol=1e-15)


def test_all_ignored():
    logits = random_logits((4, 3), np.float32)
    labels = np.full(4, -100)
    loss, grad = fs.cross_entropy(logits, labels, return_grad=True)
    assert np.isnan(loss) and (grad == 0).all()
    assert fs.cross_entropy(logits, labels, reduction="sum") == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_grad_out_in_place_and_preallocated(dtype, target_kind):
    logits, target, axis = make_case(dtype, 300, target_kind=target_kind, seed=5)
    loss, grad = fs.cross_entropy(logits, target, axis=axis, label_smoothing=0.1, return_grad=True)
    buffer = np.full_like(logits, np.nan)
    loss2, grad2 = fs.cross_entropy(logits, target, axis=axis, label_smoothing=0.1,
                                    return_grad=True, grad_out=buffer)
    assert grad2 is buffer
    np.testing.assert_array_equal(grad2, grad)
    inplace = logits.copy()
    loss3, grad3 = fs.cross_entropy(inplace, target, axis=axis, label_smoothing=0.1,
                                    return_grad=True, grad_out=inplace)
    assert grad3 is inplace
    np.testing.assert_array_equal(grad3, grad)
    assert loss == loss2 == loss3


@pytest.mark.parametrize("dtype,value", [(np.float32, 1e30), (np.float64, 1e8),
                                         (np.float32, -1e30), (np.float64, 1e300)])
def test_equal_huge_logits_give_log_c(dtype, value):
    logits = np.full((3, 50), value, dtype)
    loss, grad = fs.cross_entropy(logits, np.array([0, 7, 49]), return_grad=True)
    np.testing.assert_allclose(loss, np.log(50), rtol=1e-6)
    np.testing.assert_allclose(fs.cross_entropy(logits, np.full((3, 50), 1 / 50, dtype)),
                               np.log(50), rtol=1e-6)
    assert np.isfinite(grad).all()


def test_finite_difference_gradient():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((5, 7))
    labels = np.array([0, 3, -100, 6, 2])
    weight = rng.random(7) + 0.5
    for kwargs in ({}, {"weight": weight}, {"label_smoothing": 0.3, "weight": weight},
                   {"reduction": "sum", "label_smoothing": 0.1}):
        _, grad = fs.cross_entropy(logits, labels, return_grad=True, **kwargs)
        step = 1e-6
        numeric = np.zeros_like(logits)
        for i in np.ndindex(logits.shape):
            up, down = logits.copy(), logits.copy()
            up[i] += step
            down[i] -= step
            numeric[i] = (fs.cross_entropy(up, labels, **kwargs)
                          - fs.cross_entropy(down, labels, **kwargs)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, atol=1e-8, err_msg=str(kwargs))


def test_bitwise_identical_for_every_thread_count():
    logits, target, axis = make_case(np.float32, 1000, seed=7, n_samples=300)
    one = fs.cross_entropy(logits, target, label_smoothing=0.1, return_grad=True, n_threads=1)
    for n_threads in (2, 3):
        got = fs.cross_entropy(logits, target, label_smoothing=0.1, return_grad=True,
                               n_threads=n_threads)
        np.testing.assert_array_equal(got[0], one[0])
        np.testing.assert_array_equal(got[1], one[1])


def test_bad_labels_on_the_multithreaded_path():
    logits = np.zeros((100_000, 4), np.float32)
    for bad, position in ((4, 99_998), (-1, 5), (2**62, 50_000)):
        labels = np.zeros(100_000, np.int64)
        labels[position] = bad
        grad = np.full_like(logits, 7.0)
        with pytest.raises(ValueError, match=rf"target holds label {bad} at position \({position},\), "
                                             r"outside \[0, 4\)"):
            fs.cross_entropy(logits, labels, return_grad=True, grad_out=grad, n_threads=2)
        assert (grad == 7.0).all()   # nothing written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_no_classes(dtype, smoothing):
    """C = 0: every label must be ignore_index, and ignored samples add nothing, label
    smoothing or not (README: torch's smoothing term gives NaN there); the mean is 0/0."""
    logits = np.zeros((3, 0), dtype)
    labels = np.full(3, -100)
    losses, grad = fs.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing,
                                    return_grad=True)
    np.testing.assert_array_equal(losses, np.zeros(3, dtype))
    assert grad.shape == (3, 0) and grad.dtype == dtype
    assert fs.cross_entropy(logits, labels, reduction="sum", label_smoothing=smoothing) == 0
    assert np.isnan(fs.cross_entropy(logits, labels, label_smoothing=smoothing))
    for reduction in ("none", "sum", "mean"):
        want = reference.cross_entropy(logits, labels, reduction=reduction,
                                       label_smoothing=smoothing, return_grad=True)
        got = fs.cross_entropy(logits, labels, reduction=reduction, label_smoothing=smoothing,
                               return_grad=True)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1].shape == want[1].shape
    probabilities = np.zeros((3, 0), dtype)
    for reduction, want_loss in (("none", np.zeros(3)), ("sum", 0.0), ("mean", 0.0)):
        for f in (fs.cross_entropy, reference.cross_entropy):
            loss, grad = f(logits, probabilities, reduction=reduction, label_smoothing=smoothing,
                           return_grad=True)
            np.testing.assert_array_equal(loss, want_loss)
            assert grad.shape == (3, 0)
    with pytest.raises(ValueError, match=r"label 0 at position \(1,\), outside \[0, 0\)"):
        fs.cross_entropy(logits, np.array([-100, 0, -100]), label_smoothing=smoothing)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_uint64_labels_past_int64_named_as_every_bad_label(byteorder):
    """uint64 labels past int64 (which would wrap to negative ones) get the message every bad
    label gets, for the first bad label in order: one inside int64 before them included, and
    ignore_index (a label like any other in the unsigned range) left alone."""
    logits = np.zeros((5, 3), np.float32)
    dtype = np.dtype(byteorder + "u8")
    cases = [([0, 2**63, 1, 2**64 - 1, 2], -100, 2**63, 1),
             ([0, 7, 2**63, 1, 2], -100, 7, 1),        # a smaller bad label first
             ([0, 7, 2**63, 1, 2], 7, 2**63, 2),       # ... which is ignore_index
             ([3, 3, 2**64 - 1, 0, 0], 3, 2**64 - 1, 2)]
    for labels, ignore_index, bad, position in cases:
        with pytest.raises(ValueError, match=rf"^target holds label {bad} at position "
                                             rf"\({position},\), outside \[0, 3\) and not "
                                             rf"ignore_index={ignore_index}$"):
            fs.cross_entropy(logits, np.array(labels, dtype), ignore_index=ignore_index)


def test_labels_counted_in_parts_on_threads():
    """Unweighted labels are checked and counted in parts of 65536 on the threads: the first
    bad label is the first part's that has one, whatever comes after, at every part edge;
    and the count (the mean's denominator) is every thread count's."""
    rows, part = 300_007, 65536
    logits = np.zeros((rows, 3), np.float32)
    labels = np.arange(rows) % 4  # 3 is ignore_index below: a quarter ignored
    with pytest.raises(ValueError, match="label -3 at position"):
        fs.cross_entropy(logits, np.full(rows, -3), n_threads=2)
    for position in (0, part - 1, part, part + 1, 2 * part, rows - 1):
        bad = labels.copy()
        bad[position] = 7
        if position + part < rows:
            bad[position + part] = -1  # a later part's bad label is not the one reported
        for threads in (1, 2):
            with pytest.raises(ValueError, match=rf"label 7 at position \({position},\)"):
                fs.cross_entropy(logits, bad, ignore_index=3, n_threads=threads)
    kept = int(np.count_nonzero(labels != 3))
    results = [fs.cross_entropy(logits, labels, ignore_index=3, return_grad=True, n_threads=t)
               for t in (1, 2, 3)]
    for loss, grad in results:
        assert loss == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
    assert loss == pytest.approx(np.log(3), rel=1e-6)
    np.testing.assert_array_equal(grad[labels == 3], 0)
    assert grad[0, 0] == pytest.approx((1 / 3 - 1) / kept, rel=1e-6)  # label 0: scale 1 / kept


@pytest.mark.parametrize("weight_dtype", [None, np.float32, np.float64])
@pytest.mark.parametrize("ignore_index", [-100, 3])
def test_mean_denominator_counts_kept_labels_and_their_weights(weight_dtype, ignore_index):
    """The mean divides by the kept labels' count or weights' sum, exactly as a float64 fsum."""
    import math

    rng = np.random.default_rng(11)
    n_samples, n_classes = 200_003, 7
    labels = rng.integers(0, n_classes, n_samples)
    labels[rng.random(n_samples) < 0.1] = ignore_index
    logits = np.zeros((n_samples, n_classes), np.float64)  # every kept loss is log(7)
    weight = None if weight_dtype is None else \
        (rng.random(n_classes) * 1e3 + np.array([1e-3] * n_classes)).astype(weight_dtype)
    kept = labels[labels != ignore_index]
    per_sample = 1.0 if weight is None else weight.astype(np.float64)[kept]
    denominator = math.fsum(np.broadcast_to(per_sample, kept.shape))
    total = math.fsum(np.broadcast_to(per_sample, kept.shape) * math.log(n_classes))
    got = fs.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)
    assert got == pytest.approx(total / denominator, rel=1e-13)
    assert fs.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index,
                            reduction="sum") == pytest.approx(total, rel=1e-13)


def test_first_bad_label_is_reported_and_ignore_index_is_not_bad():
    logits = np.zeros((2, 10, 3))  # classes on axis 1: labels of shape (2, 3)
    labels = np.array([[0, 9, -100], [-1, 12, 2]])
    with pytest.raises(ValueError, match=r"label -100 at position \(0, 2\), outside \[0, 10\) "
                                         r"and not ignore_index=9"):
        fs.cross_entropy(logits, labels, axis=1, ignore_index=9)
    labels[0, 2] = 9  # ignore_index itself is fine, even as a valid class
    with pytest.raises(ValueError, match=r"label -1 at position \(1, 0\)"):
        fs.cross_entropy(logits, labels, axis=1, ignore_index=9)
    labels[1, 0] = 3
    with pytest.raises(ValueError, match=r"label 12 at position \(1, 1\)"):
        fs.cross_entropy(logits, labels, axis=1, ignore_index=9)
    labels[1, 1] = 3
    assert fs.cross_entropy(logits, labels, axis=1, ignore_index=9) == pytest.approx(np.log(10))


def test_zero_denominator_gives_ieee_results():
    """A mean over no weight: 0/0 is NaN; a nonzero total over a zero weight sum is +-inf."""
    logits = np.array([[0.0, 1.0], [2.0, 0.0]])
    weight = np.array([0.0, 0.0])
    assert np.isnan(fs.cross_entropy(logits, np.array([0, 1]), weight=weight))
    signed = np.array([1.0, -1.0])  # kept weights sum to 0, the weighted losses do not
    loss = fs.cross_entropy(logits, np.array([0, 1]), weight=signed)
    expected_total = float(fs.cross_entropy(logits, np.array([0, 1]), weight=signed,
                                            reduction="sum"))
    assert expected_total != 0 and loss == np.copysign(np.inf, expected_total)


def test_input_never_modified():
    logits, target, axis = make_case(np.float64, 20, target_kind="probabilities", seed=8)
    before, before_target = logits.copy(), target.copy()
    fs.cross_entropy(logits, target, return_grad=True, label_smoothing=0.2)
    np.testing.assert_array_equal(logits, before)
    np.testing.assert_array_equal(target, before_target)


def test_argument_errors():
    logits = np.zeros((3, 4))
    labels = np.array([0, 1, 2])
    cases = [
        (dict(target=np.zeros(4, np.int64)), ValueError, r"class indices must have the logits' shape without the class axis, \(3,\)"),
        (dict(target=np.zeros((3, 5))), ValueError, r"probabilities must have the logits' shape \(3, 4\)"),
        (dict(target=np.array(["a", "b", "c"])), TypeError, "target must hold integer class indices or float"),
        (dict(reduction="avg"), ValueError, "reduction must be one of"),
        (dict(weight=np.ones(3)), ValueError, r"weight must have shape \(4,\)"),
        (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\], got 1.5"),
        (dict(label_smoothing=float("nan")), ValueError, "label_smoothing must be in"),
        (dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a real number"),
        (dict(ignore_index=1.0), TypeError, "ignore_index must be an int"),
        (dict(grad_out=np.zeros((3, 4))), ValueError, "grad_out is given but return_grad is False"),
        (dict(return_grad=True, grad_out=np.zeros((3, 4), np.float32)), TypeError, "grad_out must have dtype float64"),
        (dict(return_grad=True, grad_out=np.zeros((4, 3))), ValueError, r"grad_out must have shape \(3, 4\)"),
        (dict(axis=2), ValueError, "axis=2 is out of range"),
    ]
    for kwargs, error, message in cases:
        kwargs = {"target": labels, **kwargs}
        with pytest.raises(error, match=message):
            fs.cross_entropy(logits, **kwargs)
    with pytest.raises(ValueError, match="logits must have at least one dimension"):
        fs.cross_entropy(np.float64(1.0), np.int64(0))
    with pytest.raises(TypeError, match="logits must hold real numbers"):
        fs.cross_entropy(np.zeros((2, 2), complex), np.array([0, 1]))


def test_one_dimensional_logits():
    logits = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fs.cross_entropy(logits, np.int64(2)),
                               reference.cross_entropy(logits, np.int64(2)), rtol=1e-15)
    assert np.ndim(fs.cross_entropy(logits, 2, reduction="none")) == 0


# ---------------------------------------------------------------- PyTorch itself

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny calls: threads cost far more than they give
    yield
    torch.set_num_threads(threads)


def torch_loss_and_grad(logits, target, axis, weight, reduction, smoothing):
    x = torch.from_numpy(np.moveaxis(logits, axis, 1) if logits.ndim > 1 else logits).clone()
    x.requires_grad_(True)
    if target.dtype.kind == "f":
        t = torch.from_numpy(np.moveaxis(target, axis, 1) if target.ndim > 1 else target)
    else:
        t = torch.from_numpy(target.astype(np.int64))
    w = None if weight is None else torch.from_numpy(weight)
    loss = torch.nn.functional.cross_entropy(x, t, weight=w, reduction=reduction,
                                             label_smoothing=smoothing)
    loss.sum().backward()
    grad = x.grad.numpy()
    return loss.detach().numpy(), np.moveaxis(grad, 1, axis) if grad.ndim > 1 else grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [2, 10, 1000])
@pytest.mark.parametrize("shape_kind", ["rows", "panel"])
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_against_torch(dtype, n_classes, shape_kind, target_kind):
    logits, target, axis = make_case(dtype, n_classes, shape_kind, target_kind, seed=9)
    weight = np.random.default_rng(9).random(n_classes).astype(dtype) + 0.1
    for w, smoothing, reduction in itertools.product([None, weight], [0.0, 0.15], REDUCTIONS):
        loss, grad = fs.cross_entropy(logits, target, axis=axis, weight=w, reduction=reduction,
                                      label_smoothing=smoothing, return_grad=True)
        t_loss, t_grad = torch_loss_and_grad(logits, target, axis, w, reduction, smoothing)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        # torch works in the logits' precision: its small per-sample losses carry an
        # absolute error of about u * the largest loss (ours are within 2e-6 relative).
        np.testing.assert_allclose(loss, t_loss, rtol=rtol, atol=rtol * np.abs(t_loss).max())
        np.testing.assert_allclose(grad, t_grad, rtol=0, atol=rtol * np.abs(t_grad).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [1, 2, 3, 10, 16, 17])
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_many_short_rows(isa, dtype, n_classes, target_kind):
    """Few classes run one sample per lane: whole groups of samples and a remainder."""
    logits, target, axis = make_case(dtype, n_classes, target_kind=target_kind, seed=11,
                                     n_samples=37)
    weight = np.linspace(0.5, 1.5, n_classes).astype(dtype)
    for w, smoothing, reduction in itertools.product([None, weight], [0.0, 0.1], REDUCTIONS):
        check_against_reference(logits, target, axis, weight=w, label_smoothing=smoothing,
                                reduction=reduction)
    loss, grad = fs.cross_entropy(logits, target, reduction="none", return_grad=True)
    part = slice(3, 30)
    loss_part, grad_part = fs.cross_entropy(logits[part], target[part], reduction="none",
                                            return_grad=True)
    np.testing.assert_array_equal(loss[part], loss_part)
    np.testing.assert_array_equal(grad[part], grad_part * 1)
