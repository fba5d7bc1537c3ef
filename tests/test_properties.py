"""Property tests: fastsoftmax against ``fastsoftmax.reference`` on inputs Hypothesis draws.

Each example draws an instruction set, a dtype (float16/32/64, signed and
unsigned ints, bool), a 0-d to 4-d shape (zero-size dimensions included), a
memory layout (contiguous, or a view with slice steps, negative steps and
transposed axes), an axis (``None``, negative ones, and tuples of axes: adjacent,
apart, empty; 0 and -1 for 0-d arrays), a temperature,
and values from subnormal to +-1e30 (the dtype's max for float16) with NaN and
+-inf sprinkled in.  Then for every function (``OPS``: add cross_entropy & co.
there when they land) it checks:

- result dtype and shape as the reference's;
- every slice the reference makes NaN or infinite is NaN / the same infinity,
  and no other (exactly, position by position);
- the finite results are within the accuracy bounds of ``tests/conftest.py``
  (``check_softmax``, ``check_log_softmax``, ``check_logsumexp``).  A slice
  that holds ``-inf`` entries is checked on its finite entries, which have the
  same softmax as the whole slice; at the ``-inf`` entries softmax must be 0
  (and log_softmax ``-inf``, by the previous rule);
- ``n_threads`` 1, 2 and 3, ``out=`` and in place give the very same bits
  (NaN's sign and payload aside);
- the input is not modified.

Runtime: each test sets its number of examples (``_settings(n)``, no deadline)
so that the file takes about 25 s on an idle 2-core machine, well within a
minute in CI.  ``FASTSOFTMAX_HYPOTHESIS_SCALE=20`` multiplies the examples for
a longer local search.  Two tests at the end pin what hypothesis once found in
the temperature handling (an inverse that overflows the working precision; the
three roundings of z that the accuracy bound must allow).
"""
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax as fs
from conftest import CHUNK, check_log_softmax, check_logsumexp, check_softmax
from fastsoftmax import _core, reference

_SCALE = float(os.environ.get("FASTSOFTMAX_HYPOTHESIS_SCALE", "1"))


def _settings(max_examples):
    return settings(
        max_examples=max(1, int(max_examples * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


ISAS = _core.available_isas()
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64]
DTYPES = FLOAT_DTYPES + INT_DTYPES + [np.bool_]

# Temperatures whose 1/T stays a normal number in float32: see
# test_temperature_whose_inverse_overflows for what happens beyond.
TEMPERATURES = st.one_of(
    st.just(1.0),
    st.sampled_from([0.5, 2.0, 1e-3, 1e3, 0.7]),
    st.floats(1e-3, 1e3),
)


# ---------------------------------------------------------------- the functions under test

@dataclass(frozen=True)
class Op:
    """One function under test: how to call it, its reference, and its accuracy check.

    ``elementwise``: the output has x's shape (softmax-like); otherwise one
    value per slice (logsumexp).  ``call(module, x, axis, temperature, **kw)``
    calls ``fastsoftmax`` or ``fastsoftmax.reference`` the same way.
    """
    name: str
    call: Callable
    check: Callable  # check(got, x, axis, temperature, dtype) -> raises AssertionError
    elementwise: bool


def _call_softmax(module, x, axis, temperature, **kw):
    return module.softmax(x, axis, temperature=temperature, **kw)


def _call_log_softmax(module, x, axis, temperature, **kw):
    return module.log_softmax(x, axis, temperature=temperature, **kw)


def _call_logsumexp(module, x, axis, temperature, **kw):
    # No temperature argument: the strategies pass 1.0 for this op.
    return module.logsumexp(x, axis, **kw)


def _call_logsumexp_keepdims(module, x, axis, temperature, **kw):
    return module.logsumexp(x, axis, keepdims=True, **kw)


OPS = [
    Op("softmax", _call_softmax,
       lambda got, x, axis, t, dtype: check_softmax(got, x, axis, t, dtype), True),
    Op("log_softmax", _call_log_softmax,
       lambda got, x, axis, t, dtype: check_log_softmax(got, x, axis, t, dtype), True),
    Op("logsumexp", _call_logsumexp,
       lambda got, x, axis, t, dtype: check_logsumexp(got, x, axis, dtype=dtype), False),
    # The check sees one value per slice, so the keepdims=False checker applies.
    Op("logsumexp_keepdims", _call_logsumexp_keepdims,
       lambda got, x, axis, t, dtype: check_logsumexp(got, x, axis, dtype=dtype), False),
]


# ---------------------------------------------------------------- strategies

def _elements(dtype, nonfinite):
    """Values of `dtype`: typical logits, anything up to +-1e30, and special values."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.one_of(st.integers(max(info.min, -20), min(info.max, 20)),
                         st.integers(int(info.min), int(info.max)))
    width = dtype.itemsize * 8
    finfo = np.finfo(dtype)
    big = float(dtype.type(min(1e30, float(finfo.max))))
    specials = [float(dtype.type(v)) for v in (
        0.0, -0.0, finfo.smallest_subnormal, -finfo.smallest_subnormal, finfo.tiny, big, -big,
        1e-30 if dtype != np.float16 else 1e-5)]
    parts = [
        st.floats(-10, 10, width=width),
        st.floats(-big, big, width=width),
        st.sampled_from(specials),
    ]
    if nonfinite:  # about half the draws
        parts += [st.sampled_from([math.nan, math.inf, -math.inf])] * 3
    return st.one_of(parts)


@st.composite
def _shapes(draw):
    """0-d to 4-d, zero-size sides included; sometimes one long side (vector tails, unrolls)."""
    ndim = draw(st.integers(0, 4))
    sides = [draw(st.integers(1, 6)) for _ in range(ndim)]
    if ndim and draw(st.integers(0, 9)) == 0:  # zero-size (more in test_zero_size_and_0d_inputs)
        sides[draw(st.integers(0, ndim - 1))] = 0
    if ndim and draw(st.booleans()):
        sides[draw(st.integers(0, ndim - 1))] = draw(
            st.one_of(st.integers(7, 70), st.sampled_from([127, 128, 129, 255, 256, 257, 300])))
        sides = [min(s, 3) if s <= 6 else s for s in sides]  # keep the size bounded
    return tuple(sides)


@st.composite
def _views(draw, base):
    """`base` itself, or a view of it: slice steps (negative too), transposes, Fortran order."""
    kind = draw(st.sampled_from(["contiguous", "strided", "strided", "fortran"]))
    if kind == "contiguous" or base.ndim == 0:
        return base
    if kind == "fortran":
        return np.asfortranarray(base)
    index = []
    for side in base.shape:
        step = draw(st.sampled_from([1, 2, 3, -1, -2]))
        start = draw(st.one_of(st.none(), st.integers(-side - 1, side)))
        stop = draw(st.one_of(st.none(), st.integers(-side - 1, side)))
        index.append(slice(start, stop, step))
    view = base[tuple(index)]
    return view.transpose(draw(st.permutations(range(base.ndim))))


@st.composite
def _problems(draw, nonfinite):
    """(x, axis, temperature): x of any dtype (a float one if `nonfinite`), shape and layout."""
    if nonfinite:
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
    else:  # floats half the time
        dtype = draw(st.one_of(st.sampled_from(FLOAT_DTYPES), st.sampled_from(DTYPES)))
    shape = draw(_shapes())
    base = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, nonfinite)))
    if nonfinite and base.size:  # and a few more at drawn places
        flat = base.reshape(-1)
        for _ in range(draw(st.integers(0, min(6, base.size)))):
            flat[draw(st.integers(0, base.size - 1))] = draw(
                st.sampled_from([-math.inf, -math.inf, math.nan, math.inf]))
    if base.dtype.kind == "f" and base.size and draw(st.booleans()):
        # A shared offset: cancellation in x - max and in the log-sum.
        offset = draw(st.sampled_from([1e4, -1e4, 1e8, -1e20]))
        with np.errstate(all="ignore"):
            base = (base.astype(np.float64) + offset).astype(dtype)
    x = draw(_views(base))
    axis = draw(_axes(x.ndim))
    temperature = draw(TEMPERATURES)
    return x, axis, temperature


def _axes(ndim):
    """None, one axis, or a tuple of distinct axes (any order, negative too, maybe empty)."""
    if not ndim:
        return st.sampled_from([None, 0, -1, ()])
    one = st.integers(-ndim, ndim - 1)
    several = st.lists(one, max_size=ndim, unique_by=lambda a: a % ndim).map(tuple)
    return st.one_of(st.none(), one, several)


# ---------------------------------------------------------------- the checks

def _slices(a, axis):
    """A 2-D (slices, n) copy of `a` with the reduced axis (or axes, together) last."""
    a = np.asarray(a)
    if axis is None or a.ndim == 0:  # a 0-d array is one slice for any axis it takes
        return a.reshape(1, a.size)
    axes = (axis,) if isinstance(axis, int) else axis
    kept = a.ndim - len(axes)
    moved = np.moveaxis(a, axes, range(kept, a.ndim))
    return moved.reshape(math.prod(moved.shape[:kept]), math.prod(moved.shape[kept:]))


def _same_nonfinite(got, expected, what):
    """NaN where the reference has NaN, the same infinity where it has one, nowhere else."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        g, e = test(got), test(expected)
        if not np.array_equal(g, e):
            where = np.argwhere(g != e)[:5].tolist()
            raise AssertionError(f"{what}: {name} positions differ from the reference at "
                                 f"{where}: got {got[g != e][:5]}, expected {expected[g != e][:5]}")


def check_against_reference(op, got, x, axis, temperature):
    """All of the module docstring's rules for one result of one op."""
    expected = op.call(reference, x, axis, temperature)
    got_arr, expected = np.asarray(got), np.asarray(expected)
    assert got_arr.dtype == expected.dtype, (op.name, got_arr.dtype, expected.dtype)
    assert got_arr.shape == expected.shape, (op.name, got_arr.shape, expected.shape)
    _same_nonfinite(got_arr, expected, op.name)

    # The accuracy bounds, on the finite entries of the slices with a finite answer.
    xs = _slices(x, axis)
    x64 = xs.astype(np.float64)
    finite = np.isfinite(x64)
    regular = ~(np.isnan(x64) | np.isposinf(x64)).any(axis=1) & finite.any(axis=1)
    gs = _slices(got_arr, axis) if op.elementwise else got_arr.reshape(-1)
    if op.elementwise and op.name == "softmax":
        minus_inf = regular[:, None] & np.isneginf(x64)
        assert (gs[minus_inf] == 0).all(), "softmax: a -inf entry got a nonzero probability"
    counts = finite.sum(axis=1)
    for k in np.unique(counts[regular]):
        rows = regular & (counts == k)
        x_sub = xs[rows][finite[rows]].reshape(-1, k)
        if op.elementwise:
            g_sub = gs[rows][finite[rows]].reshape(-1, k)
        else:
            g_sub = gs[rows]
        op.check(g_sub, x_sub, -1, temperature, got_arr.dtype)


def _bits(a):
    """The bit patterns of `a`, with every NaN made the same quiet NaN.

    Which NaN an operation returns (its sign and payload) is up to the CPU and
    to the operand order the compiler picks, which differs between code paths
    and optimization levels: only *where* the NaNs are is part of the contract.
    """
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), a.dtype.type(np.nan), a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def check_everything(op, x, axis, temperature):
    """Reference, thread counts, out=, in place and an untouched input for one op on x."""
    before = x.copy()
    t = temperature if op.elementwise else 1.0
    results = {n: op.call(fs, x, axis, t, n_threads=n) for n in (1, 2, 3)}
    got = results[1]
    note(f"{op.name}: got {got!r}")
    check_against_reference(op, got, x, axis, t)
    one = _bits(np.asarray(got))
    for n in (2, 3):
        np.testing.assert_array_equal(_bits(np.asarray(results[n])), one,
                                      err_msg=f"{op.name}: n_threads={n} changed the bits")
    got_arr = np.asarray(got)
    out = np.full(got_arr.shape, 12345, dtype=got_arr.dtype)
    assert op.call(fs, x, axis, t, out=out) is out
    np.testing.assert_array_equal(_bits(out), one, err_msg=f"{op.name}: out= changed the bits")
    if op.elementwise:
        inplace = np.array(x, dtype=got_arr.dtype, order="C")  # what the API converts x to
        assert op.call(fs, inplace, axis, t, out=inplace) is inplace
        np.testing.assert_array_equal(_bits(inplace), one,
                                      err_msg=f"{op.name}: in place changed the bits")
    assert x.tobytes() == before.tobytes(), f"{op.name} modified its input"


def _with_isa(isa, body):
    previous = _core.isa()
    assert _core.set_isa(isa)
    try:
        body()
    finally:
        _core.set_isa(previous)


# ---------------------------------------------------------------- the properties

@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@_settings(120)
@given(problem=_problems(nonfinite=False), isa=st.sampled_from(ISAS))
def test_finite_inputs_match_reference(op, problem, isa):
    x, axis, temperature = problem
    _with_isa(isa, lambda: check_everything(op, x, axis, temperature))


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@_settings(120)
@given(problem=_problems(nonfinite=True), isa=st.sampled_from(ISAS))
def test_nan_and_inf_match_reference(op, problem, isa):
    x, axis, temperature = problem
    _with_isa(isa, lambda: check_everything(op, x, axis, temperature))


@st.composite
def _long_rows(draw):
    """1 or 2 rows of 2 to 12 kernel chunks (16384 elements): split across threads.

    With more chunks, a change in the order their partial sums are combined
    shows in the last bits more often.
    """
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rows = draw(st.integers(1, 2))
    n = draw(st.one_of(st.integers(2 * CHUNK, 3 * CHUNK), st.integers(3 * CHUNK, 12 * CHUNK)))
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal((rows, n))
    x *= draw(st.sampled_from([1.0, 30.0, 1e4]))
    for _ in range(draw(st.integers(0, 4))):  # special values at drawn places
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, 100.0]))
        x[draw(st.integers(0, rows - 1)), draw(st.integers(0, n - 1))] = value
    if draw(st.booleans()):  # a row of -inf with a few finite entries
        x[0] = -math.inf
        x[0, draw(st.integers(0, n - 1))] = 0.0
        x[0, draw(st.integers(0, n - 1))] = -1.0
    return x.astype(dtype), -1, draw(TEMPERATURES)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@_settings(15)
@given(problem=_long_rows(), isa=st.sampled_from(ISAS))
def test_long_rows_split_across_threads(op, problem, isa):
    x, axis, temperature = problem
    _with_isa(isa, lambda: check_everything(op, x, axis, temperature))


@_settings(30)
@given(data=st.data())
def test_zero_size_and_0d_inputs(data):
    """Arrays with a zero-length side, on every axis, and 0-d arrays (axis None, 0, -1, ())."""
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3))
    zero = data.draw(st.integers(0, len(shape) - 1))
    x = np.zeros(tuple(0 if i == zero else s for i, s in enumerate(shape)), dtype)
    scalar = np.asarray(data.draw(_elements(dtype, True)), dtype=dtype)
    for op in OPS:
        for axis in [None, ()] + list(range(-x.ndim, x.ndim)) + [(0, -1)] * (x.ndim > 1):
            check_everything(op, x, axis, 1.0)
        for axis in (None, 0, -1, ()):  # a 0-d array is one slice, itself, as in NumPy
            check_everything(op, scalar, axis, 1.0)
        with pytest.raises(ValueError):
            op.call(fs, scalar, 1, 1.0)


# ---------------------------------------------------------------- found by hypothesis

@pytest.mark.parametrize("dtype,temperature,x", [
    (np.float32, 1e-39, [1.0, 2.0]),            # 1/T = inf in float32: 0 * inf
    (np.float64, 1e-310, [1.0, 2.0]),           # 1/T = inf in float64
    (np.float32, 1e50, [0.0, -np.inf, 1.0]),    # 1/T = 0 in float32: -inf * 0
])
def test_temperature_whose_inverse_overflows(dtype, temperature, x):
    x = np.array(x, dtype)
    for op in OPS[:2]:
        got = op.call(fs, x, -1, temperature)
        expected = op.call(reference, x, -1, temperature)
        np.testing.assert_array_equal(got, expected, err_msg=op.name)


def test_temperature_accuracy_contract():
    # z = -72.5: the error, 1.17e-5 relative, needs all three roundings of z the
    # bound allows (1e-6 + 3 * 2**-24 * 72.5 = 1.4e-5).
    x = np.array([35869.578125, -33674.07421875], np.float32)
    temperature = 959.2657470703125
    check_softmax(fs.softmax(x, temperature=temperature), x, -1, temperature)


# ---------------------------------------------------------------- cross-entropy

@st.composite
def _cross_entropy_problems(draw):
    """Logits of any layout and class axis, with index or probability targets and random options."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    n_classes = draw(st.sampled_from([1, 2, 3, 7, 16, 17, 40]))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = shape[:axis % ndim] + (n_classes,) + shape[axis % ndim + 1:]
    scale = draw(st.sampled_from([1.0, 10.0, 1e4]))
    offset = draw(st.sampled_from([0.0, 1e4, -1e8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = (rng.standard_normal(shape) * scale + offset).astype(dtype)
    sample_shape = shape[:axis % ndim] + shape[axis % ndim + 1:]
    ignore_index = draw(st.sampled_from([-100, 0, 5]))
    if draw(st.booleans()):
        target = rng.integers(0, n_classes, size=sample_shape)
        target[rng.random(sample_shape) < 0.2] = ignore_index
        target = target.astype(draw(st.sampled_from([np.int32, np.int64, np.uint8]))) \
            if ignore_index >= 0 else target
    else:
        target = reference.softmax(rng.standard_normal(shape), axis=axis).astype(dtype)
    weight = (rng.random(n_classes) + 0.1).astype(dtype) if draw(st.booleans()) else None
    options = dict(axis=axis, weight=weight, ignore_index=ignore_index,
                   reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                   label_smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])))
    return logits, target, options


@_settings(150)
@given(problem=_cross_entropy_problems(), isa=st.sampled_from(ISAS))
def test_cross_entropy_matches_reference(problem, isa):
    logits, target, options = problem
    note(f"logits {logits.dtype}{logits.shape}, target {target.dtype}{target.shape}, {options}")

    def body():
        before = logits.copy()
        loss, grad = fs.cross_entropy(logits, target, return_grad=True, **options)
        ref_loss, ref_grad = reference.cross_entropy(logits, target, return_grad=True, **options)
        rtol = 1e-5 if logits.dtype == np.float32 else 1e-11
        with np.errstate(invalid="ignore"):
            finite = np.abs(np.asarray(ref_loss, np.float64))
            finite = finite[np.isfinite(finite)]
            np.testing.assert_allclose(loss, ref_loss, rtol=rtol,
                                       atol=rtol * finite.max(initial=1e-30))
            # Gradient entries are O(weight / samples) even where the exact value is 0.
            samples = max(1, logits.size // logits.shape[options["axis"]])
            natural = (1.0 if options["weight"] is None else float(options["weight"].max())) / samples
            np.testing.assert_allclose(grad, ref_grad, rtol=0,
                                       atol=rtol * max(np.abs(ref_grad).max(initial=0), natural))
        for n_threads in (2, 3):
            again = fs.cross_entropy(logits, target, return_grad=True, n_threads=n_threads, **options)
            np.testing.assert_array_equal(_bits(np.asarray(again[0])), _bits(np.asarray(loss)))
            np.testing.assert_array_equal(_bits(again[1]), _bits(grad))
        assert logits.tobytes() == before.tobytes()

    _with_isa(isa, body)
