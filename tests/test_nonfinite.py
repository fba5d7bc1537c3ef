"""NaN and +-inf in every float argument, on every kernel path, in both dtypes.

Each test runs on every instruction set (the ``isa`` fixture), with C classes
on both sides of FS_SHORT_ROW = 16 (3 and 16: one sample per vector lane; 17
and 40: the row kernels) and with the class/reduced axis last (rows) or in the
middle (``(2, C, 8)`` with ``axis=1``: the panel kernels).  The oracles are
``fastsoftmax.reference`` (softmax family, backward helpers) and
``torch.nn.functional.cross_entropy`` with autograd.  Where an oracle gives
inf, -inf or NaN, fastsoftmax must give the same; finite values agree within a
loose relative tolerance.  float32 and float64 must agree on which entries are
NaN and which are +-inf.

An infinite weight or target on the class that holds a sample's max logit,
or on a sample with one finite logit (log-sum exactly 0), once gave NaN where
torch gives inf: the kernels write the loss as sum a (m - x) + A log(sum),
which meets inf * 0 there.  Such samples are now summed class by class; the
weight and target tests put the non-finite value both off and on the max.
"""
import itertools

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from conftest import check_log_softmax, check_logsumexp, check_softmax

DTYPES = [np.float32, np.float64]
CLASSES = [3, 16, 17, 40]
LAYOUTS = ["last", "middle"]
REDUCTIONS = ["none", "mean", "sum"]
SAMPLES = 16
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
inf, nan = np.inf, np.nan


# ---------------------------------------------------------------- cases

def lay_out(samples, layout):
    """(array, axis) from (SAMPLES, C) samples, or (SAMPLES,) per-sample values.

    "last": (SAMPLES, C) with axis -1.  "middle": torch's (N, C, d) = (2, C, 8)
    with axis 1, sample s at [s // 8, :, s % 8].
    """
    samples = np.asarray(samples)
    if layout == "last":
        return np.ascontiguousarray(samples), -1
    if samples.ndim == 1:
        return np.ascontiguousarray(samples.reshape(2, SAMPLES // 2)), 1
    return np.ascontiguousarray(np.moveaxis(samples.reshape(2, SAMPLES // 2, -1), -1, 1)), 1


def per_sample(a, axis):
    """Back from lay_out: (SAMPLES, C) (or (SAMPLES,) for per-sample arrays)."""
    a = np.asarray(a)
    if a.ndim <= 1 or (axis == 1 and a.ndim == 2):
        return a.reshape(SAMPLES)
    return np.moveaxis(a, axis, -1).reshape(SAMPLES, -1)


def labels_for(n_classes):
    """A label per sample; class C - 1 is never one (the "absent" class)."""
    return np.arange(SAMPLES) % (n_classes - 1)


def _other(labels, s, n_classes):
    """A class of sample s that is neither its label nor C - 1."""
    return (labels[s] + 1) % (n_classes - 1)


def logit_patterns(n_classes, seed=0):
    """(SAMPLES, C) float64 logits, one non-finite pattern per sample, and the labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, n_classes)) * 3
    y = labels_for(n_classes)
    x[1, y[1]] = nan                                   # NaN at the label
    x[2, _other(y, 2, n_classes)] = nan                # NaN elsewhere
    x[3, y[3]] = inf                                   # +inf at the label
    x[4, _other(y, 4, n_classes)] = inf                # +inf elsewhere
    x[5, y[5]] = -inf                                  # -inf at the label: infinite loss
    x[6, _other(y, 6, n_classes)] = -inf               # -inf elsewhere: probability 0
    x[7] = -inf                                        # all -inf
    x[8] = inf                                         # all +inf
    x[9] = nan                                         # all NaN
    x[10] = -inf                                       # +inf among -inf
    x[10, _other(y, 10, n_classes)] = inf
    x[11] = -inf                                       # one finite logit, the label's
    x[11, y[11]] = 1.5
    x[12] = -inf                                       # one finite logit, another class's
    x[12, _other(y, 12, n_classes)] = 1.5
    x[13, [y[13], _other(y, 13, n_classes)]] = inf     # two +inf
    return x, y                                        # 0, 14, 15: finite


# ---------------------------------------------------------------- comparisons

def assert_like(got, expected, rtol, what):
    """Non-finite entries of `expected` matched in kind (NaN, or inf of its sign), finite ones close.

    Finite entries within ``rtol`` relative plus ``rtol`` times the largest
    finite magnitude (small entries carry the absolute rounding of larger ones).
    """
    got = np.asarray(got, np.float64)
    expected = np.asarray(expected, np.float64)
    assert got.shape == expected.shape, what
    wrong = np.isnan(got) != np.isnan(expected)
    wrong |= (np.isinf(got) | np.isinf(expected)) & (got != expected)
    finite = np.isfinite(got) & np.isfinite(expected)
    scale = np.abs(expected[finite]).max(initial=0.0)
    with np.errstate(invalid="ignore"):
        wrong |= finite & ~(np.abs(got - expected) <= rtol * (np.abs(expected) + scale))
    if wrong.any():
        at = [tuple(int(j) for j in i) for i in np.argwhere(wrong)[:6]]
        raise AssertionError(f"{what}: {wrong.sum()} of {wrong.size} entries differ; "
                             + "; ".join(f"at {i}: got {got[i]!r}, expected {expected[i]!r}"
                                         for i in at))


def assert_same_kinds(a32, a64, what):
    """float32 and float64 results agree on which entries are NaN, +inf and -inf."""
    a32, a64 = np.asarray(a32, np.float64), np.asarray(a64, np.float64)
    for kind, test in (("NaN", np.isnan), ("+inf", lambda a: a == inf), ("-inf", lambda a: a == -inf)):
        differ = test(a32) != test(a64)
        assert not differ.any(), (f"{what}: float32 and float64 differ on {kind} at "
                                  f"{np.argwhere(differ)[:6].tolist()}")


# ---------------------------------------------------------------- softmax, log_softmax, logsumexp

@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_family_against_reference(isa, n_classes, layout):
    x, _ = logit_patterns(n_classes)
    results = {}
    for dtype in DTYPES:
        xs, axis = lay_out(x.astype(dtype), layout)
        p, logp, lse = fs.softmax(xs, axis), fs.log_softmax(xs, axis), fs.logsumexp(xs, axis)
        check_softmax(p, xs, axis)
        check_log_softmax(logp, xs, axis)
        check_logsumexp(lse, xs, axis)
        results[dtype] = (p, logp, lse)
        # The README's numerics table, row by row.
        p, logp, lse = per_sample(p, axis), per_sample(logp, axis), per_sample(lse, axis)
        for s in (1, 2, 9):                       # a NaN in the slice
            assert np.isnan(p[s]).all() and np.isnan(logp[s]).all() and np.isnan(lse[s])
        assert np.isnan(p[7]).all() and np.isnan(logp[7]).all() and lse[7] == -inf  # all -inf
        for s in (3, 4, 8, 10, 13):               # a +inf entry, no NaN
            assert np.isnan(p[s]).all() and np.isnan(logp[s]).all() and lse[s] == inf
        for s in (5, 6, 11, 12):                  # some -inf entries: probability 0
            minus_inf = x[s] == -inf
            assert (p[s][minus_inf] == 0).all() and (logp[s][minus_inf] == -inf).all()
            assert np.isfinite(p[s][~minus_inf]).all() and np.isfinite(lse[s])
        for s in (0, 14, 15):
            assert np.isfinite(p[s]).all() and np.isfinite(logp[s]).all()
    for name, a32, a64 in zip(("softmax", "log_softmax", "logsumexp"),
                              results[np.float32], results[np.float64]):
        assert_same_kinds(a32, a64, name)


# ---------------------------------------------------------------- softmax_backward, log_softmax_backward

def backward_patterns(n_classes, log, seed=1):
    """(g, y) per sample: y a (log-)softmax output, non-finite entries in g or in y.

    y stays a (log-)probability where finite: a float32 log_softmax_backward
    of y near 88.7 overflows differently (another issue), so none is made here.
    """
    rng = np.random.default_rng(seed)
    y = reference.softmax(rng.standard_normal((SAMPLES, n_classes)) * 2, axis=-1)
    if log:
        y = np.log(y)
    g = rng.standard_normal((SAMPLES, n_classes))
    zero = -inf if log else 0.0                  # a probability of 0
    g[1, 0] = nan
    g[2, 1] = inf                                # the issue's example: float64 gave all NaN
    g[3, 2] = -inf
    g[4] = inf
    g[5, 0], g[5, 2] = inf, -inf
    y[6, 1] = nan
    y[7, 0] = inf
    y[8, 2] = -inf
    y[9, 1] = zero
    g[9, 1] = inf                                # inf gradient on a zero probability
    y[10] = zero
    y[11, 0], g[11, 0] = inf, inf
    y[12, 0], g[12, 1] = nan, inf
    g[13, :2] = inf                              # several infinite terms in one sum
    return g, y                                  # 0, 14, 15: finite


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("log", [False, True])
def test_backward_against_reference(isa, n_classes, layout, log):
    g, y = backward_patterns(n_classes, log)
    func = fs.log_softmax_backward if log else fs.softmax_backward
    oracle = reference.log_softmax_backward if log else reference.softmax_backward
    results = {}
    for dtype in DTYPES:
        gs, axis = lay_out(g.astype(dtype), layout)
        ys, _ = lay_out(y.astype(dtype), layout)
        results[dtype] = got = func(gs, ys, axis)
        assert_like(got, oracle(gs, ys, axis), RTOL[dtype], f"{func.__name__} {dtype.__name__}")
    assert_same_kinds(results[np.float32], results[np.float64], func.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_gradient_sum_stays_infinite(isa, dtype):
    """The issue's example: sum(g * y) = +inf gave NaN everywhere in float64 (Kahan's carry)."""
    y = fs.softmax(np.array([[0.0, 1.0, 2.0]], dtype))
    got = fs.softmax_backward(np.array([[1.0, inf, 1.0]], dtype), y)
    np.testing.assert_array_equal(got, np.array([[-inf, nan, -inf]], dtype))
    # A sum long enough for many compensated block flushes, with the inf in the middle.
    g = np.ones((2, 1000), dtype)
    g[:, 500] = inf
    g[1, 700] = -inf
    y = np.full((2, 1000), 1e-3, dtype)
    np.testing.assert_array_equal(fs.log_softmax_backward(g, np.log(y))[0, :3], -inf)
    assert np.isnan(fs.log_softmax_backward(g, np.log(y))[1]).all()
    got = fs.softmax_backward(np.ascontiguousarray(g.T), np.ascontiguousarray(y.T), axis=0)
    assert (got[:500, 0] == -inf).all() and np.isnan(got[:, 1]).all()


# ---------------------------------------------------------------- cross_entropy against torch

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


from test_cross_entropy import torch_loss_and_grad as torch_cross_entropy  # noqa: E402


def check_cross_entropy(logits, target, weight, smoothing, layout, what,
                        cross_entropy=fs.cross_entropy):
    """Every reduction, in both dtypes, against torch; float32 and float64 of one kind."""
    for reduction in REDUCTIONS:
        results = {}
        for dtype in DTYPES:
            xs, axis = lay_out(logits.astype(dtype), layout)
            ts, _ = lay_out(target.astype(dtype) if target.dtype.kind == "f" else target, layout)
            w = None if weight is None else weight.astype(dtype)
            loss, grad = cross_entropy(xs, ts, axis=axis, weight=w, reduction=reduction,
                                       label_smoothing=smoothing, return_grad=True)
            t_loss, t_grad = torch_cross_entropy(xs, ts, axis, w, reduction, smoothing)
            where = f"{what}, {reduction}, {dtype.__name__}"
            assert_like(loss, t_loss, RTOL[dtype], f"loss ({where})")
            assert_like(grad, t_grad, RTOL[dtype], f"gradient ({where})")
            results[dtype] = (loss, grad)
        assert_same_kinds(results[np.float32][0], results[np.float64][0], f"loss ({what})")
        assert_same_kinds(results[np.float32][1], results[np.float64][1], f"gradient ({what})")


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_index_targets_with_nonfinite_logits(isa, n_classes, layout, smoothing):
    """With smoothing, float64's compensated class sums turned an inf loss into NaN."""
    x, labels = logit_patterns(n_classes)
    labels = labels.copy()
    labels[14] = -100                          # an ignored sample (its logits are finite)
    weight = np.random.default_rng(3).random(n_classes) + 0.5
    for w in (None, weight):
        check_cross_entropy(x, labels, w, smoothing, layout,
                            f"weights {'no' if w is None else 'yes'}")


def logits_for_weights(n_classes, weighted, at_max, seed=4):
    """Finite logits with some -inf; the `weighted` class each sample's min, or its max."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, n_classes)) * 3
    x[:, weighted] = x.max(axis=1) + 1.0 if at_max else x.min(axis=1) - 1.0
    y = labels_for(n_classes)
    x[1, y[1]] = -inf                          # an infinite loss
    x[2, _other(y, 2, n_classes)] = -inf       # a probability of 0
    if weighted != y[3]:
        x[3, weighted] = -inf                  # probability 0 on the weighted class
    x[4] = -inf                                # one finite logit: log-sum exactly 0
    x[4, weighted] = 2.0
    x[5] = -inf                                # one finite logit, the label's
    x[5, y[5]] = 2.0
    return x, y


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("value", [inf, nan])
@pytest.mark.parametrize("present", [False, True], ids=["absent", "present"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("at_max", [False, True], ids=["off max", "at max"])
def test_nonfinite_class_weight(isa, n_classes, layout, value, present, smoothing, at_max):
    """An inf/NaN weight on a class no label names left a NaN gradient column on the
    short-row and panel paths (0 * inf); on a kept label's class, the mean's denominator
    became NaN instead of inf; with smoothing, on the class of the max logit, the loss
    was NaN instead of inf."""
    weighted = 0 if present else n_classes - 1
    x, labels = logits_for_weights(n_classes, weighted, at_max)
    weight = np.random.default_rng(5).random(n_classes) + 0.5
    weight[weighted] = value
    check_cross_entropy(x, labels, weight, smoothing, layout,
                        f"weight {value} on {'a present' if present else 'an absent'} class")


@pytest.mark.parametrize("n_classes", [3, 17])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("value", [inf, nan])
@pytest.mark.parametrize("present", [False, True], ids=["absent", "present"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_reference_nonfinite_class_weight(n_classes, layout, value, present, smoothing):
    """The reference against torch on the same cases: its one-hot effective target once
    multiplied an infinite label weight by the one-hot's zeros, a NaN gradient on every
    other class where torch gives inf * p."""
    weighted = 0 if present else n_classes - 1
    for at_max in (False, True):
        x, labels = logits_for_weights(n_classes, weighted, at_max)
        weight = np.random.default_rng(5).random(n_classes) + 0.5
        weight[weighted] = value
        check_cross_entropy(x, labels, weight, smoothing, layout,
                            f"reference, weight {value} on class {weighted}",
                            cross_entropy=reference.cross_entropy)


def test_issue_examples(isa):
    for dtype in DTYPES:
        loss = fs.cross_entropy(np.array([[0.0, -inf, 1.0]], dtype), np.array([0]),
                                label_smoothing=0.1)
        assert loss == inf, dtype
        weight = np.array([1, 1, 1, inf], dtype)
        for logits, axis in ((np.zeros((3, 4), dtype), -1), (np.zeros((3, 4, 5), dtype), 1)):
            labels = np.array([0, 1, 0]) if axis == -1 else np.tile([[0], [1], [0]], (1, 5))
            loss, grad = fs.cross_entropy(logits, labels, axis=axis, weight=weight,
                                          return_grad=True)
            assert np.isfinite(grad).all() and np.isfinite(loss), (dtype, axis)


@pytest.mark.parametrize("weight_dtype", DTYPES)
def test_mean_denominator_with_an_infinite_weight(weight_dtype):
    """label_stats' compensated sum: inf once an inf weight is added, whatever comes after."""
    weight = np.array([1.0, 2.0, inf, 0.5], weight_dtype)
    for labels in ([2, 0, 1, 3], [0, 2, 1], [1, 2], [0, 1, -100, 2, 3, 3, 0]):
        first_bad, denominator = _core.label_stats(np.array(labels, np.int64), 4, -100, weight)
        assert first_bad == -1 and denominator == inf, labels
    weight[2] = nan
    assert np.isnan(_core.label_stats(np.array([2, 0, 1]), 4, -100, weight)[1])
    weight[2], weight[3] = inf, -inf
    assert np.isnan(_core.label_stats(np.array([2, 3, 1]), 4, -100, weight)[1])


def target_patterns(n_classes, seed=6):
    """(SAMPLES, C) probabilities (test_probability_targets then makes some non-finite)."""
    rng = np.random.default_rng(seed)
    return reference.softmax(rng.standard_normal((SAMPLES, n_classes)) * 2, axis=-1)


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_probability_targets(isa, n_classes, layout, smoothing):
    # Non-finite logits, finite targets.
    x, _ = logit_patterns(n_classes)
    target = target_patterns(n_classes)
    weight = np.random.default_rng(7).random(n_classes) + 0.5
    for w in (None, weight):
        check_cross_entropy(x, target, w, smoothing, layout,
                            f"non-finite logits, weights {'no' if w is None else 'yes'}")
    # Non-finite targets: off the sample's max logit, on it, and with one finite logit.
    x = np.random.default_rng(8).standard_normal((SAMPLES, n_classes)) * 3
    low = np.argmin(x, axis=1)
    target[1, low[1]] = nan
    target[2, low[2]] = inf
    target[3, low[3]] = -inf
    target[4, low[4]], target[4, np.argmax(x[4])] = inf, nan
    target[5] = nan
    x[6, low[6]], target[6, low[6]] = -inf, 0.0    # 0 * -inf: torch's loss is NaN
    x[7, low[7]], target[7, low[7]] = -inf, 0.3    # a target on a -inf logit: inf loss
    high = np.argmax(x, axis=1)
    target[8, high[8]] = inf                       # inf on the max logit: inf, not inf * 0
    target[9, high[9]] = -inf
    x[10], x[10, low[10]] = -inf, 1.0              # one finite logit: log-sum exactly 0
    target[10, (low[10] + 1) % n_classes] = inf
    x[11], x[11, low[11]] = -inf, 1.0
    target[11, low[11]] = inf                      # ... and the inf on it: NaN, as torch
    for w in (None, weight):
        check_cross_entropy(x, target, w, smoothing, layout,
                            f"non-finite targets, weights {'no' if w is None else 'yes'}")
