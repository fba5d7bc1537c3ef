"""float16 and bfloat16 logits: read natively, computed in float32, results float32 or 16-bit.

The contract these tests hold the 16-bit paths to (README, Numerics):
- a 16-bit input gives bit for bit what the float32 kernels give on the same
  values widened to float32 (the widening is exact), so the float32 accuracy
  contract against the float64 reference carries over unchanged;
- a 16-bit result is that float32 result rounded once to nearest, ties to
  even (NumPy's and ml_dtypes' own casts round the same way), so it is within
  one 16-bit ULP of the 16-bit rounding of the float64 reference.
Both are checked on every ISA this machine runs, at the row lengths around
every block size, for every op and axis, with NaN, infinities, subnormal and
the largest finite 16-bit values, in place and not.
"""
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from conftest import CHUNK, check_log_softmax, check_logsumexp, check_softmax, random_logits

ml_dtypes = pytest.importorskip("ml_dtypes")

# The expected values are made with NumPy's and ml_dtypes' casts, which warn where they
# overflow to inf or meet NaN: on purpose here.
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALVES = [F16, BF16]
INFO = _core.kernel_info()
NARROWED_ROWS = _core.NARROWED_ROWS  # softmax's 16-bit results: float32 blocks of this many
PIPELINED_TO = INFO["scalar"]["float32"]["pipelined_to"]  # (every ISA's: 256 KB of floats)


def _lengths(isa):
    """Each block size of float32's kernels (which the 16-bit inputs run) and its neighbours."""
    sizes = INFO[isa]["float32"]
    lanes, unroll, flush = sizes["lanes"], sizes["unroll"], sizes["flush_steps"]
    blocks = [lanes, unroll * lanes, unroll * flush * lanes, sizes["short_row"],
              sizes["short_softmax_row"], sizes["short_log_row"], sizes["short_logsumexp_row"],
              sizes["blocked_log_sum_from"]]
    return sorted({n for b in blocks for n in (b - 1, b, b + 1) if n >= 1})


@pytest.fixture
def scratch_failures():
    """Sets _core's refusals of the 16-bit results' float32 scratch; none again after."""
    yield _core._narrowing_scratch_failures
    _core._narrowing_scratch_failures(0)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype.itemsize == 2 else
                                        np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def assert_same_bits(got, expected, what=""):
    assert got.dtype == expected.dtype, (what, got.dtype, expected.dtype)
    g, e = np.asarray(got), np.asarray(expected)
    nan = np.isnan(g.astype(np.float32)) & np.isnan(e.astype(np.float32))
    same = (_bits(g) == _bits(e)) | nan
    assert same.all(), f"{what}: {int((~same).sum())} differ, first at {np.argmin(same)}"


def _hostile(shape, dtype, seed):
    """Logits with the 16-bit extremes: largest finite, subnormals, zeros of both signs."""
    x = random_logits(shape, np.float32, seed=seed)
    flat = x.reshape(-1)
    info = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    specials = [float(info.max), -float(info.max), float(info.smallest_subnormal),
                -float(info.smallest_subnormal), 0.0, -0.0, float(info.tiny)]
    rng = np.random.default_rng(seed)
    at = rng.choice(flat.size, size=min(flat.size, len(specials)), replace=False)
    flat[at] = specials[:len(at)]
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_every_op_at_every_block_length_is_float32_on_the_widened_values(isa, dtype):
    for n in _lengths(isa) + [CHUNK + 1, 2 * CHUNK + 3]:
        rows = 37 if n <= 64 else 3
        x = _hostile((rows, n), dtype, seed=n)
        wide = x.astype(np.float32)
        for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
            for threads in (1, 2, 3):
                assert_same_bits(op(x, n_threads=threads), op(wide, n_threads=threads),
                                 f"{op.__name__} n={n} threads={threads}")
        labels = np.arange(rows) % n
        loss, grad = fs.cross_entropy(x, labels, return_grad=True, label_smoothing=0.1)
        loss32, grad32 = fs.cross_entropy(wide, labels, return_grad=True, label_smoothing=0.1)
        assert loss == loss32 and type(loss) is np.float32
        assert_same_bits(grad, grad32, f"cross_entropy n={n}")
        for backward in (fs.softmax_backward, fs.log_softmax_backward):
            assert_same_bits(backward(x, x), backward(wide, wide), f"{backward.__name__} n={n}")
        k = min(n, 5)
        values, indices = fs.top_k(x, k)
        values32, indices32 = fs.top_k(wide, k)
        assert_same_bits(values, values32)
        np.testing.assert_array_equal(indices, indices32)
        draws = fs.sample(x, u=np.linspace(0, 0.99, rows), top_p=0.9, logprobs=min(n, 2))
        draws32 = fs.sample(wide, u=np.linspace(0, 0.99, rows), top_p=0.9, logprobs=min(n, 2))
        np.testing.assert_array_equal(draws.tokens, draws32.tokens)
        assert_same_bits(draws.logprob, draws32.logprob)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2, (0, 2), None])
def test_every_axis_with_where_and_temperature(isa, dtype, axis):
    x = _hostile((9, 33, 17), dtype, seed=3)
    wide = x.astype(np.float32)
    where = np.random.default_rng(4).random(x.shape) < 0.8
    for op in (fs.softmax, fs.log_softmax):
        got = op(x, axis=axis, where=where, temperature=0.7)
        assert_same_bits(got, op(wide, axis=axis, where=where, temperature=0.7), str(axis))
        assert_same_bits(op(x, axis=axis, dtype=dtype, temperature=0.7),
                         op(wide, axis=axis, temperature=0.7).astype(dtype), f"{axis} 16-bit")
    assert_same_bits(fs.logsumexp(x, axis=axis, where=where),
                     fs.logsumexp(wide, axis=axis, where=where))


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_non_finite_values_behave_as_in_float32(isa, dtype):
    rows = [[np.nan, 0, 1], [np.inf, 0, 1], [-np.inf, 0, 1], [-np.inf, -np.inf, -np.inf],
            [np.inf, np.inf, 0], [np.inf, np.nan, -np.inf]]
    x = np.array(rows, np.float32).astype(dtype)
    wide = x.astype(np.float32)
    for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
        assert_same_bits(op(x), op(wide), op.__name__)
    for op in (fs.softmax, fs.log_softmax):
        assert_same_bits(op(x, dtype=dtype), op(wide).astype(dtype), op.__name__)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((5, 1000), -1), ((2, 2 * CHUNK + 5), -1),
                                        ((7, 40, 3), 1), ((33, 6), 0)] + [
    # softmax's 16-bit rows go through blocks of float32 results of NARROWED_ROWS rows of
    # n elements at a time: rows of the whole block, one more (the kernels' own way), and
    # groups of rows with a short last group
    ((3, NARROWED_ROWS), -1), ((2, NARROWED_ROWS + 1), -1), ((5, NARROWED_ROWS // 2 - 1), -1),
    ((131, 1000), -1),
    # whose rows past a chunk and up to pipelined_to are pipelined, whatever the whole
    # array's size: the longest such rows in two groups, and rows one longer
    ((5, PIPELINED_TO), -1), ((4, PIPELINED_TO + 1), -1)], ids=str)
def test_16_bit_results_are_the_float32_result_rounded_once(isa, dtype, shape, axis):
    x = _hostile(shape, dtype, seed=7)
    for op in (fs.softmax, fs.log_softmax):
        expected = op(x, axis=axis).astype(dtype)  # NumPy's / ml_dtypes' round to nearest even
        for threads in (1, 2, 3):
            assert_same_bits(op(x, axis=axis, dtype=dtype, n_threads=threads), expected)
            out = np.empty(shape, dtype)
            assert op(x, axis=axis, out=out, n_threads=threads) is out
            assert_same_bits(out, expected)
            in_place = x.copy()
            op(in_place, axis=axis, out=in_place, n_threads=threads)
            assert_same_bits(in_place, expected, "in place")
    y = fs.softmax(x, axis=axis, dtype=dtype)
    for backward in (fs.softmax_backward, fs.log_softmax_backward):
        expected = backward(x, y, axis=axis).astype(dtype)
        assert_same_bits(backward(x, y, axis=axis, out=np.empty(shape, dtype)), expected)
        g = x.copy()
        backward(g, y, axis=axis, out=g)
        assert_same_bits(g, expected, "backward in place")


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_rows_ending_at_every_lane(isa, dtype):
    """Tails of every length below a vector, alone and after whole vectors: the partial
    16-bit loads and stores join pieces of 16, 8, 4 and 2 bytes as the tail's bits say
    (fs_load_first_bytes), and each piece must land in its own lanes."""
    lanes = INFO[isa]["float32"]["lanes"]
    for n in [base + r for base in (0, 4 * lanes, 1024) for r in range(1, lanes + 1)]:
        x = _hostile((5, n), dtype, seed=n)
        wide = x.astype(np.float32)
        for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
            assert_same_bits(op(x, n_threads=1), op(wide, n_threads=1), f"{op.__name__} n={n}")
        for op in (fs.softmax, fs.log_softmax):
            expected = op(wide, n_threads=1).astype(dtype)
            assert_same_bits(op(wide, dtype=dtype, n_threads=1), expected, f"{op.__name__} n={n}")
            in_place = x.copy()
            op(in_place, out=in_place, n_threads=1)
            assert_same_bits(in_place, expected, f"{op.__name__} in place n={n}")
        labels = np.arange(5) % n
        grad = np.empty(x.shape, dtype)
        _, grad32 = fs.cross_entropy(wide, labels, return_grad=True, n_threads=1)
        fs.cross_entropy(x, labels, return_grad=True, grad_out=grad, n_threads=1)
        assert_same_bits(grad, grad32.astype(dtype), f"cross_entropy n={n}")


@pytest.mark.parametrize("failing_every", [0, 2])
@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("op", [fs.softmax, fs.log_softmax], ids=lambda op: op.__name__)
def test_16_bit_softmax_with_where_and_temperature_is_rounded_once(isa, op, dtype,
                                                                   failing_every,
                                                                   scratch_failures):
    """softmax's 16-bit rows (and bfloat16's log_softmax's) go through blocks of float32
    results past one row per lane (short_softmax_row, short_log_row) and up to NARROWED_ROWS
    elements, keeping the mask's period and phase row group by group; the 16-bit kernels
    take the others, and the blocks that find no scratch memory (every other one, with
    failing_every=2).  Either way: rounded once."""
    scratch_failures(failing_every)
    sizes = INFO[isa]["float32"]
    short_row = sizes["short_log_row" if op is fs.log_softmax else "short_softmax_row"]
    for n in sorted({1, short_row, short_row + 1, 1000, NARROWED_ROWS // 3 + 1, NARROWED_ROWS,
                     NARROWED_ROWS + 1}):
        rows = min(max(3, 3 * NARROWED_ROWS // n + 1), 2000)  # three groups and a row, or 2000
        x = _hostile((rows, n), dtype, seed=n)
        whole = np.random.default_rng(n).random((rows, n)) < 0.7
        for where in (whole, whole[1]):  # a mask of its own per row, and one broadcast row
            expected = op(x, where=where, temperature=0.7).astype(dtype)
            for threads in (1, 2, 3):
                got = op(x, where=where, temperature=0.7, dtype=dtype, n_threads=threads)
                assert_same_bits(got, expected, f"n={n} threads={threads} where {where.shape}")


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("n", [10, 1000, CHUNK * 2 + 1])
def test_cross_entropy_16_bit_gradient_in_place(isa, dtype, n):
    x = _hostile((4, n), dtype, seed=n)
    labels = np.array([0, n - 1, 1, n // 2])
    weight = np.linspace(0.5, 2, n)
    loss32, grad32 = fs.cross_entropy(x, labels, weight=weight, return_grad=True,
                                      sample_weight=[1, 2, 3, 4])
    expected = grad32.astype(dtype)
    grad = np.empty(x.shape, dtype)
    loss, out = fs.cross_entropy(x, labels, weight=weight, return_grad=True, grad_out=grad,
                                 sample_weight=[1, 2, 3, 4])
    assert out is grad and loss == loss32
    assert_same_bits(grad, expected)
    logits = x.copy()
    loss, out = fs.cross_entropy(logits, labels, weight=weight, return_grad=True,
                                 grad_out=logits, sample_weight=[1, 2, 3, 4])
    assert out is logits and loss == loss32
    assert_same_bits(logits, expected, "grad_out=logits")


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("shape,axis", [((40, 32000), -1), ((3, 7), -1), ((600, 40, 50), 1),
                                        ((1, 3 * CHUNK), -1)])
def test_cross_entropy_16_bit_gradient_in_blocks(dtype, shape, axis):
    """Without sample weights the 16-bit gradient goes through a cache-sized float32 buffer,
    block by block (more than one block here): the same bits as one float32 gradient."""
    x = random_logits(shape, dtype, seed=2)
    labels = np.random.default_rng(3).integers(0, shape[axis],
                                               shape[:axis % len(shape)] +
                                               shape[axis % len(shape) + 1:])
    for smoothing, probabilities in ((0.0, False), (0.2, False), (0.0, True)):
        target = fs.softmax(random_logits(shape, np.float32, seed=4), axis=axis) \
            if probabilities else labels
        loss32, grad32 = fs.cross_entropy(x, target, axis=axis, return_grad=True,
                                          label_smoothing=smoothing)
        for threads in (1, 3):
            logits = x.copy()
            loss, grad = fs.cross_entropy(logits, target, axis=axis, return_grad=True,
                                          grad_out=logits, label_smoothing=smoothing,
                                          n_threads=threads)
            assert grad is logits and loss == loss32
            assert_same_bits(grad, grad32.astype(dtype), f"{shape} {smoothing} {threads}")


def _16_bit_gradient_cases(x, n, seed):
    """cross_entropy's targets and options for logits ``x`` of ``n`` classes on axis 1:
    labels (ignored ones among them, and the first and last class), with class weights
    and smoothing; probabilities, with weights and no reduction."""
    rng = np.random.default_rng(seed)
    sample_shape = x.shape[:1] + x.shape[2:]
    labels = rng.integers(0, n, sample_shape)
    labels.reshape(-1)[::5] = -100
    labels.reshape(-1)[1::7] = 0
    labels.reshape(-1)[2::7] = n - 1
    probabilities = fs.softmax(random_logits(x.shape, np.float32, seed=seed + 1), axis=1)
    weight = rng.random(n) + 0.5
    return [(labels, {}), (labels, {"weight": weight, "label_smoothing": 0.1}),
            (probabilities, {}), (probabilities, {"weight": weight, "reduction": "none"})]


def _kernels_gradient(x, target, options, out, threads):
    """cross_entropy's per-sample losses (reduction "none") and 16-bit gradient through the
    16-bit kernels themselves (``_core.cross_entropy`` with a 16-bit grad), whichever way
    the public function takes for the shape (``_core.narrowed_gradient_in_kernels``)."""
    bits = (lambda a: a.view(np.uint16)) if x.dtype == BF16 else (lambda a: a)
    outer, n = x.shape[:2]
    inner = x.size // (outer * n)
    weight = options.get("weight")
    weight = None if weight is None else np.ascontiguousarray(weight, np.float32)
    weight_sum = float(n) if weight is None else float(weight.sum(dtype=np.float64))
    probabilities = target if target.dtype.kind == "f" else None
    labels = None if probabilities is not None else np.ascontiguousarray(target, np.int64)
    loss = np.empty((outer, inner), np.float64)
    _core.cross_entropy(bits(x), labels, probabilities, weight, weight_sum,
                        options.get("label_smoothing", 0.0), -100, loss, bits(out), 1.0, outer,
                        n, inner, threads)
    return loss.reshape(target.shape if labels is not None else (outer,) + x.shape[2:])


def _check_16_bit_gradient(x, dtype, n, threads, what, seed):
    """The 16-bit gradient of x (classes on axis 1) against the float32 one rounded once,
    from the public function and from the 16-bit kernels themselves (_kernels_gradient),
    into outputs 0, 1 and 17 elements past a line (nothing written around them) and in
    place, for every case of _16_bit_gradient_cases."""
    for target, options in _16_bit_gradient_cases(x, n, seed):
        loss32, grad32 = fs.cross_entropy(x, target, axis=1, return_grad=True, **options)
        losses32, each32 = fs.cross_entropy(x, target, axis=1, return_grad=True,
                                            reduction="none",
                                            **{k: v for k, v in options.items()
                                               if k != "reduction"})
        expected, each_expected = grad32.astype(dtype), each32.astype(dtype)
        case = f"{what} {target.dtype} {sorted(options)}"
        for offset in (0, 1, 17):
            for route in ("public", "kernels"):
                buffer = np.full(x.size + 64, 0x7E01, np.uint16)  # (a NaN in both types)
                start = (-buffer.ctypes.data // 2) % 32 + offset
                out = buffer[start:start + x.size].view(dtype).reshape(x.shape)
                at = f"{case} offset {offset} {route}"
                if route == "public":
                    loss, grad = fs.cross_entropy(x, target, axis=1, return_grad=True,
                                                  grad_out=out, n_threads=threads, **options)
                    assert grad is out and np.array_equal(loss, loss32, equal_nan=True), at
                    assert_same_bits(grad, expected, at)
                else:
                    losses = _kernels_gradient(x, target, options, out, threads)
                    assert np.array_equal(losses.astype(np.float32), losses32,
                                          equal_nan=True), at
                    assert_same_bits(out, each_expected, at)
                around = np.concatenate([buffer[:start], buffer[start + x.size:]])
                assert (around == 0x7E01).all(), f"{at}: wrote outside grad_out"
        logits = x.copy()
        loss, grad = fs.cross_entropy(logits, target, axis=1, return_grad=True,
                                      grad_out=logits, n_threads=threads, **options)
        assert grad is logits and np.array_equal(loss, loss32, equal_nan=True), case
        assert_same_bits(grad, expected, "in place: " + case)
        logits = x.copy()
        _kernels_gradient(logits, target, options, logits, threads)
        assert_same_bits(logits, each_expected, "in place, the kernels: " + case)


@pytest.mark.parametrize("failing_every", [0, 2])
@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_gradient_rows_round_once_as_the_kernels_store(isa, dtype, failing_every,
                                                              scratch_failures):
    """A 16-bit gradient's rows in the 16-bit kernels: the sum pass keeps the exponentials
    in a float32 row apart (rows of up to ``stream_row_scratch`` elements; longer ones
    compute them again), and the gradient pass takes the label's own term off in float32
    before it rounds each value once as it stores it, two vectors a store.  The public
    function takes that way for rows of one per lane (``short_logsumexp_row``) and from
    NARROWED_GRADIENT_FROM
    elements (``_core.narrowed_gradient_in_kernels``), and each thread's float32 blocks
    for the others, unless a block finds no scratch memory (every other one, with
    failing_every=2): the kernels then take its rows.  Every way is checked here.  Row
    lengths around every block size, a chunk, and the scratch row's limit; every kind of
    target; outputs at odd offsets and in place; NaN, inf and the 16-bit extremes; 1 and
    2 threads: the float32 gradient rounded once."""
    scratch_failures(failing_every)
    limit = INFO[isa]["float32"]["stream_row_scratch"]
    for n in _lengths(isa) + [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, limit, limit + 1]:
        rows = 37 if n <= 64 else 5 if n <= 4 * CHUNK else 2
        x = _hostile((rows, n), dtype, seed=n)
        if n > 1:
            x[rows - 1, n // 2] = np.inf if n % 2 else np.nan
        for threads in (1, 2):
            _check_16_bit_gradient(x, dtype, n, threads, f"{isa} n={n} threads={threads}",
                                   seed=n)


def test_16_bit_gradient_rows_take_the_kernels_where_they_are_faster():
    """cross_entropy's rows of one per lane (``short_logsumexp_row``) and from
    NARROWED_GRADIENT_FROM, on every ISA."""
    previous = _core.isa()
    try:
        for isa in _core.available_isas():
            _core.set_isa(isa)
            short = INFO[isa]["float16"]["short_logsumexp_row"]
            kernels = [n for n in range(1, 70000) if _core.narrowed_gradient_in_kernels(n)]
            assert kernels[:short] == list(range(1, short + 1)), isa
            assert kernels[short] == 256 and kernels[-1] == 69999, isa
    finally:
        _core.set_isa(previous)
    assert not _core.narrowed_gradient_in_kernels(NARROWED_ROWS + 1)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_gradient_panels_take_each_label_term_off_before_rounding(isa, dtype):
    """Classes not on the last axis: the 16-bit kernels' panels, one sample per lane, whose
    labels' terms are taken off lane by lane in label order as the rows go by, before the
    rounding (the public function takes float32 blocks there): widths around the vector
    (a partial tile), labels shared by lanes, in descending order, and on the first and
    last class."""
    lanes = INFO[isa]["float32"]["lanes"]
    for n in (1, 2, 7, 40):
        for width in sorted({1, lanes - 1, lanes, lanes + 1, 2 * lanes + 3} - {0}):
            x = _hostile((3, n, width), dtype, seed=n * width)
            _check_16_bit_gradient(x, dtype, n, 2, f"{isa} n={n} width={width}",
                                   seed=n + width)
            descending = np.broadcast_to(np.arange(width)[::-1] % n, (3, width)).copy()
            _, grad32 = fs.cross_entropy(x, descending, axis=1, return_grad=True,
                                         reduction="none")
            out = np.empty(x.shape, dtype)
            _kernels_gradient(x, descending, {}, out, 2)
            assert_same_bits(out, grad32.astype(dtype), f"{isa} n={n} width={width} descending")


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_accuracy_against_the_float64_reference_on_the_same_values(dtype):
    x = random_logits((16, 5000), dtype, seed=11, scale=8)
    check_softmax(fs.softmax(x), x)
    check_log_softmax(fs.log_softmax(x), x)
    check_logsumexp(fs.logsumexp(x), x)
    assert fs.softmax(x).dtype == fs.logsumexp(x).dtype == np.float32
    # A 16-bit result: within one 16-bit ULP of the reference rounded to 16 bits.
    for op, ref in ((fs.softmax, reference.softmax), (fs.log_softmax, reference.log_softmax)):
        got = op(x, dtype=dtype).astype(np.float64)
        expected = ref(x).astype(np.float64).astype(dtype).astype(np.float64)
        spacing = (ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)).eps
        one_ulp = np.maximum(np.abs(expected) * spacing, _smallest(dtype))
        assert np.all(np.abs(got - expected) <= one_ulp), op.__name__


def _smallest(dtype):
    info = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    return float(info.smallest_subnormal)


def test_narrowing_rounds_to_nearest_even_as_numpy_and_ml_dtypes(isa):
    rng = np.random.default_rng(5)
    # Every 16-bit value and the midpoints either side of it, plus random floats
    # over the whole range, the overflow thresholds and NaN payloads.
    halves = np.arange(65536, dtype=np.uint32)
    exact = (halves << 16).view(np.float32)
    wide = np.concatenate([
        exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf),
        (((halves << 16) | 0x8000).view(np.float32)),  # bfloat16 ties
        np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32),
        rng.standard_normal(20000).astype(np.float32) * np.float32(2.0) ** rng.integers(
            -140, 127, 20000).astype(np.float32),
        np.array([65504, 65519.99, 65520, 65536, 3.4e38, 6e-8, 2.98e-8, 2.99e-8, 1e-45],
                 np.float32),
    ]).astype(np.float32)
    for dtype in HALVES:
        out = np.empty(wide.shape, dtype)
        _core.narrow(wide, out.view(np.uint16) if dtype == BF16 else out, 1)
        assert_same_bits(out, wide.astype(dtype), str(dtype))


def _narrowed_bits(x, dtype):
    """The 16-bit patterns fs_half.h's rule gives float32 ``x``: NumPy's and ml_dtypes'
    rounding, and a NaN made quiet with the top bits of its payload and its sign."""
    u = x.view(np.uint32)
    if dtype == BF16:
        rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # (a NaN may wrap: replaced below)
        quiet = (u >> 16) | 0x0040
    else:
        rounded = x.astype(F16).view(np.uint16)
        quiet = ((u >> 16) & 0x8000) | 0x7E00 | ((u >> 13) & 0x03FF)
    return np.where(np.isnan(x), quiet, rounded).astype(np.uint16)


def test_narrowing_at_every_vector_and_pair_boundary_and_output_offset(isa):
    # narrow() stores two vectors a step from the output's first element aligned to a
    # pair's bytes, one vector at a time before and after: lengths around one and two
    # vectors (and a few pairs), at every offset of the output within a pair's bytes.
    # The values cycle through NaNs of both signs (quiet and signalling, with payloads),
    # infinities, overflow, ties, subnormals and plain values, so that each kind lands in
    # every lane, in each vector of a pair, in the head and in the tail.
    lanes = INFO[isa]["float32"]["lanes"]
    pair = 2 * lanes
    kinds = np.array([0x7FC00000, 0xFFC12345, 0x7F800001, 0xFF80FFFF, 0x7F800000, 0xFF800000,
                      0x7F7FFFFF, 0x477FF000, 0x3F808000, 0x3F818000, 0x00018000, 0x80008000,
                      0x00000001, 0x3F800000, 0xC0490FDB, 0x00000000], np.uint32)
    longest = 3 * pair + 1
    wide = np.resize(kinds, longest + pair).view(np.float32)
    for dtype in HALVES:
        for n in sorted({k for b in (1, lanes, pair, 3 * pair) for k in (b - 1, b, b + 1)} - {0}):
            for offset in range(pair + 1):
                x = wide[offset:offset + n]
                buffer = np.full(n + pair + 2, 0xABCD, np.uint16)
                out = buffer[offset:offset + n]
                _core.narrow(x, out if dtype == BF16 else out.view(F16), 1)
                np.testing.assert_array_equal(out, _narrowed_bits(x, dtype),
                                              err_msg=f"{dtype} n={n} at {offset}")
                assert (buffer[:offset] == 0xABCD).all() and (buffer[offset + n:] == 0xABCD).all()


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_results_at_odd_byte_addresses(isa, dtype):
    # A 16-bit out= that NumPy holds at an odd address (np.frombuffer at an odd offset):
    # no element is aligned to its size, so the rounding pass stores no pair at an
    # aligned address and every store is unaligned.  softmax's rows and cross_entropy's
    # gradient (both through float32 blocks) give the bits of an aligned result, and
    # write nothing outside it.
    lanes = INFO[isa]["float32"]["lanes"]
    rng = np.random.default_rng(lanes)
    for n in sorted({lanes - 1, 2 * lanes + 1, 4 * lanes + 3, 1000} - {0}):
        x = random_logits((5, n), np.float32, seed=n).astype(dtype)
        labels = rng.integers(0, n, 5)
        softmax = fs.softmax(x, out=np.empty_like(x), n_threads=1)
        _, gradient = fs.cross_entropy(x, labels, return_grad=True,
                                       grad_out=np.empty_like(x), n_threads=1)
        for offset in (1, 3, 2 * lanes * 2 + 1):
            for threads in (1, 2):
                what = f"n={n} at +{offset} bytes, {threads} threads"
                buffer = np.full(x.nbytes + offset + 8, 0xA5, np.uint8)
                out = np.frombuffer(buffer.data, dtype, x.size, offset).reshape(x.shape)
                assert not out.flags.aligned
                fs.softmax(x, out=out, n_threads=threads)
                assert_same_bits(out, softmax, f"softmax {what}")
                fs.cross_entropy(x, labels, return_grad=True, grad_out=out, n_threads=threads)
                assert_same_bits(out, gradient, f"gradient {what}")
                assert (buffer[:offset] == 0xA5).all() and (buffer[offset + x.nbytes:] == 0xA5).all()


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_results_overlapping_their_input_are_those_of_a_separate_output(isa, dtype):
    # tests/test_aliasing.py's class for float32 and float64, here for 16-bit results: an
    # out= or grad_out= that starts 1, 7, half a row or a row before or after the logits
    # in one buffer.  Each way a 16-bit result is computed is hit: the 16-bit kernels'
    # rows (one per vector lane; 256 and more for the gradient), float32 blocks (rows of
    # 33 to 255), a row longer than the pipelined kernel's, and the panels of axis 0.
    lanes = INFO[isa]["float32"]["lanes"]
    ops = [(name, axis) for name in ("softmax", "log_softmax") for axis in (-1, 0)]
    ops += [("cross_entropy", -1), ("cross_entropy smoothed", -1)]
    for rows, n in [(4 * lanes + 3, max(2, lanes - 1)), (2 * lanes, 100), (5, 300), (3, 5000)]:
        x = random_logits((rows, n), np.float32, seed=n).astype(dtype)
        labels = np.random.default_rng(n).integers(0, n, rows)
        for name, axis in ops:
            def call(logits, out, threads):
                if name.startswith("cross_entropy"):
                    smoothing = 0.1 if name.endswith("smoothed") else 0.0
                    return fs.cross_entropy(logits, labels, return_grad=True, grad_out=out,
                                            label_smoothing=smoothing, n_threads=threads)[1]
                return getattr(fs, name)(logits, axis=axis, out=out, n_threads=threads)

            expected = call(x.copy(), np.empty_like(x), 1)
            for shift in (1, 7, n // 2, n, -1, -7, -n):
                for threads in (1, 2):
                    start = n + 7  # (room for every shift on both sides)
                    buffer = np.zeros(x.size + 2 * start, dtype)
                    logits = buffer[start:start + x.size].reshape(x.shape)
                    logits[...] = x
                    out = buffer[start + shift:start + shift + x.size].reshape(x.shape)
                    got = call(logits, out, threads)
                    assert got is out
                    assert_same_bits(out, expected,
                                     f"{name} axis={axis} {rows}x{n} shifted {shift}, "
                                     f"{threads} threads")


@pytest.mark.parametrize("failing_every", [0, 1])
@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_pipelined_16_bit_rows_round_as_their_last_pass_stores(isa, dtype, failing_every,
                                                               scratch_failures):
    # Unmasked runs of rows pipelined_from (log_softmax's log_pipelined_from) to pipelined_to long
    # go to the 16-bit kernels' pipeline (bfloat16's from one blocked step; with failing_every=1
    # every block finds no scratch, so bfloat16's shorter rows take it too): each row's sum pass
    # keeps its exponentials (log_softmax: its differences) in a float32 scratch row, and the next
    # row's sum pass rounds the row's results as it stores them, two vectors a store from the
    # output's first line-aligned element, ordinary stores before and after.  At each length
    # boundary (the pipeline's ends, log_softmax's two-rows-apart depth, a blocked step, the chunks
    # of a row), two and three rows (the rows no sum pass finishes), a temperature or none, every
    # output offset class within a line, and rows with NaN, +inf and -inf: the float32 result
    # rounded once, nothing written outside.
    scratch_failures(failing_every)
    sizes = INFO[isa]["float32"]
    step = sizes["lanes"] * sizes["unroll"] * sizes["flush_steps"]
    first, last, deep = sizes["pipelined_from"], sizes["pipelined_to"], sizes["pipelined_deep_to"]
    log_first = sizes["log_pipelined_from"]
    lengths = sorted({k for b in (first, log_first, deep, step, CHUNK) for k in (b - 1, b, b + 1)} |
                     {2 * CHUNK + 3, last - 1, last})
    line = 64 // dtype.itemsize
    for n in lengths:
        for rows in ((3,) if n > CHUNK else (2, 3)):
            x = _hostile((rows, n), dtype, seed=n + rows)
            x[rows - 1, n // 3] = np.nan
            x[0, n - 1] = np.inf
            if rows == 3:
                x[1, :2] = -np.inf
            for op in (fs.softmax, fs.log_softmax):
                for temperature in (1.0, 0.7):
                    expected = op(x, temperature=temperature).astype(dtype)
                    for offset in (0, 1, line // 2 + 1, line - 1):
                        for threads in (1, 2):
                            what = (f"{op.__name__} {rows}x{n} T={temperature} at +{offset} "
                                    f"threads={threads}")
                            buffer = np.full(rows * n + line + offset, 0xABCD, np.uint16)
                            out = buffer[offset:offset + rows * n].view(dtype).reshape(rows, n)
                            op(x, temperature=temperature, out=out, n_threads=threads)
                            assert_same_bits(out, expected, what)
                            assert (buffer[:offset] == 0xABCD).all(), what
                            assert (buffer[offset + rows * n:] == 0xABCD).all(), what


def test_16_bit_widening_is_exact_for_every_pattern(isa):
    patterns = np.arange(65536, dtype=np.uint16)
    for dtype in HALVES:
        x = patterns.view(dtype).reshape(1, -1)
        values, indices = fs.top_k(x, x.size)  # the values come back widened, sorted
        expected = x.reshape(-1)[indices.reshape(-1)].astype(np.float32)
        finite = ~np.isnan(expected)
        np.testing.assert_array_equal(_bits(values.reshape(-1))[finite], _bits(expected)[finite])
        assert np.isnan(values.reshape(-1)[~finite]).all()


def test_dtype_and_out_combinations():
    x = random_logits((3, 40), np.float32, seed=1)
    h = x.astype(BF16)
    assert fs.softmax(h).dtype == np.float32
    assert fs.softmax(h, dtype=np.float64).dtype == np.float64
    assert fs.softmax(x, dtype=BF16).dtype == BF16  # float32 logits cast to bfloat16 first
    assert_same_bits(fs.softmax(x, dtype=BF16), fs.softmax(h).astype(BF16))
    assert fs.softmax(x, dtype="float16").dtype == F16
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fs.softmax(h, out=np.empty(h.shape, F16))  # another 16-bit type than x's
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fs.softmax(x, out=np.empty(x.shape, BF16))  # float32 x: dtype=BF16 asks for that
    with pytest.raises(TypeError, match="dtype must name float32, float64, float16 or bfloat16"):
        fs.softmax(h, dtype=np.int16)
    with pytest.raises(TypeError, match="grad_out must have dtype float32"):
        fs.cross_entropy(h, [0, 1, 2], return_grad=True, grad_out=np.empty(h.shape, F16))
    # Results of logsumexp stay float32: one value per slice.
    assert fs.logsumexp(h, axis=-1).dtype == np.float32


def test_16_bit_logits_as_other_arguments_are_read_as_floats():
    """bfloat16 bit patterns never pass for integers: targets, b and weights are floats."""
    logits = random_logits((2, 3), np.float32, seed=2)
    target = np.array([[0.25, 0.25, 0.5], [1, 0, 0]], np.float32).astype(BF16)
    assert fs.cross_entropy(logits, target) == fs.cross_entropy(logits,
                                                                target.astype(np.float32))
    b = np.array([1, 2, 3], np.float32).astype(BF16)
    assert fs.logsumexp(logits, b=b, axis=-1).dtype == np.float32
    np.testing.assert_array_equal(fs.logsumexp(logits, b=b, axis=-1),
                                  fs.logsumexp(logits, b=b.astype(np.float32), axis=-1))


def test_16_bit_input_is_not_copied():
    x = random_logits((256, 4096), BF16, seed=3)
    out = np.empty(x.shape, np.float32)
    fs.softmax(x, out=out)
    for arr in (x, x.astype(F16)):
        tracemalloc.start()
        fs.softmax(arr, out=out)
        fs.log_softmax(arr, out=out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < arr.nbytes // 4, peak


def test_the_input_is_never_modified():
    x = _hostile((5, 300), BF16, seed=9)
    before = x.copy()
    fs.softmax(x, dtype=BF16)
    fs.log_softmax(x, out=np.empty(x.shape, BF16))
    fs.cross_entropy(x, [0, 1, 2, 3, 4], return_grad=True, grad_out=np.empty(x.shape, BF16))
    assert_same_bits(x, before)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_torch_16_bit_tensors_are_read_in_place(name):
    torch = _torch()
    dtype = getattr(torch, name)
    t = torch.randn(64, 2048).to(dtype)
    wide = t.float().numpy()
    assert_same_bits(fs.softmax(t), fs.softmax(wide))
    out = np.empty(t.shape, np.float32)
    fs.softmax(t, out=out)
    tracemalloc.start()
    fs.softmax(t, out=out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < t.numel() * 2 // 4, peak
    # strided and lazily negated tensors: the values torch shows
    assert_same_bits(fs.softmax(t[:, ::3]), fs.softmax(wide[:, ::3]))
    neg = torch._neg_view(t)
    assert_same_bits(fs.log_softmax(neg), fs.log_softmax(-wide))
    with pytest.raises(TypeError, match="detach"):
        fs.softmax(t.clone().requires_grad_(True))


def test_against_torch_float64_on_the_same_values():
    torch = _torch()
    t = (torch.randn(32, 5000) * 4).to(torch.bfloat16)
    expected = torch.softmax(t.double(), -1).numpy()
    got = fs.softmax(t).astype(np.float64)
    assert np.max(np.abs(got - expected) / expected) < 1e-5
    expected = torch.log_softmax(t.double(), -1).numpy()
    np.testing.assert_allclose(fs.log_softmax(t), expected, rtol=1e-6, atol=1e-5)
    labels = torch.randint(0, 5000, (32,))
    loss = torch.nn.functional.cross_entropy(t.double(), labels).item()
    assert abs(float(fs.cross_entropy(t, labels.numpy())) - loss) < 1e-5 * abs(loss)


def test_jax_bfloat16_arrays():
    """In a child process: JAX starts threads that a later os.fork() (the fork tests) must
    not inherit."""
    pytest.importorskip("jax")
    code = """
import ml_dtypes, numpy as np, jax.numpy as jnp, fastsoftmax as fs
x = jnp.asarray(np.random.default_rng(4).standard_normal((8, 300)).astype(np.float32) * 3)
x = x.astype(jnp.bfloat16)
wide = np.asarray(x.astype(jnp.float32))
assert fs.softmax(x).tobytes() == fs.softmax(wide).tobytes()
bf = np.dtype(ml_dtypes.bfloat16)
assert fs.log_softmax(x, dtype=bf).tobytes() == fs.log_softmax(wide).astype(bf).tobytes()
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_sample_with_penalties_on_16_bit_logits(dtype):
    """Penalties run on a float32 copy of 16-bit logits: the draws of the float32 values."""
    x = random_logits((3, 100), dtype, seed=6)
    args = dict(u=[0.1, 0.5, 0.9], repetition_penalty=1.3, presence_penalty=0.2,
                prev_tokens=[[1, 2, 2], [3], []], top_k=5)
    got, expected = fs.sample(x, **args), fs.sample(x.astype(np.float32), **args)
    np.testing.assert_array_equal(got.tokens, expected.tokens)
    assert_same_bits(got.logprob, expected.logprob)
    assert_same_bits(x, random_logits((3, 100), dtype, seed=6))  # the input is left alone


def _swapped(a):
    """The same values in the other byte order (NumPy reads them as the same numbers)."""
    return a.astype(a.dtype.newbyteorder("S"))


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_inputs_of_the_other_byte_order(dtype):
    """Every op on 16-bit values stored in the other byte order gives the bits of the same
    values in the machine's: converted once, before anything reads them as bit patterns.
    (Big-endian bfloat16 was viewed as uint16 as it lay, each value byte-swapped: wrong
    results from every op; big-endian float16 was widened to float32 and a float16 out=
    refused.)"""
    x = random_logits((4, 300), dtype, seed=3)
    xs = _swapped(x)
    assert not xs.dtype.isnative and np.array_equal(xs.astype(np.float32), x.astype(np.float32))
    labels = np.array([0, 5, 299, 7])
    w = (np.random.default_rng(0).random(300) + 0.5).astype(dtype)
    y = fs.softmax(x)
    for what, op in [
        ("softmax", lambda a: fs.softmax(a)),
        ("softmax 16-bit", lambda a: fs.softmax(a, dtype=dtype)),
        ("softmax out=", lambda a: fs.softmax(a, out=np.empty(a.shape, dtype))),
        ("log_softmax", lambda a: fs.log_softmax(a, temperature=0.7)),
        ("logsumexp", lambda a: fs.logsumexp(a)),
        ("logsumexp b=", lambda a: fs.logsumexp(x, b=np.abs(a))),
        ("cross_entropy", lambda a: fs.cross_entropy(a, labels, reduction="none")),
        ("cross_entropy weight=", lambda a: fs.cross_entropy(x, labels, weight=a[0] ** 2)),
        ("cross_entropy grad_out=", lambda a: fs.cross_entropy(
            a, labels, return_grad=True, grad_out=np.empty(a.shape, dtype))[1]),
        ("softmax_backward", lambda a: fs.softmax_backward(a, y)),
        ("log_softmax_backward out=", lambda a: fs.log_softmax_backward(
            a, fs.log_softmax(x, dtype=dtype), out=np.empty(a.shape, dtype))),
        ("top_k", lambda a: np.concatenate([v.astype(np.float64).ravel()
                                            for v in fs.top_k(a, 5)])),
        ("sample", lambda a: fs.sample(a, u=[0.1, 0.4, 0.6, 0.9], top_k=20, logprobs=3,
                                       prev_tokens=[[1], [2], [3], [4]],
                                       repetition_penalty=1.2).top_logprobs),
    ]:
        expected = op(x)
        got = op(xs)
        assert got.dtype == expected.dtype, what
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes(), what
    assert np.array_equal(fs.cross_entropy(x, labels, weight=_swapped(w)),
                          fs.cross_entropy(x, labels, weight=w))


def test_0_d_bfloat16_is_an_array_everywhere():
    """A 0-d bfloat16 input had widened to a NumPy scalar, which the kernels' entry refused
    with Cython's own TypeError (and top_k returned a scalar)."""
    for dtype in HALVES:
        z = np.array(2.0, dtype)
        for got in (fs.softmax(z, dtype=np.float32), fs.softmax(z, dtype=np.float64),
                    fs.log_softmax(z, temperature=1e-39), fs.log_softmax(z, temperature=1e39),
                    fs.softmax_backward(z, np.array(1.0, np.float32)), fs.top_k(z, 1)[0]):
            assert isinstance(got, np.ndarray) and got.shape == (), (dtype, type(got))
        assert fs.softmax(z, dtype=np.float32) == 1.0 and fs.top_k(z, 1)[0] == 2.0


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("temperature", [1e39, 1e-39])
def test_16_bit_results_of_a_temperature_outside_float32(dtype, temperature):
    """1/T outside float32's range runs in float64; a 16-bit result is still the float32
    result rounded once (it had been rounded from float64 directly)."""
    x = random_logits((2, 8283), dtype, seed=8) * (1e-38 if temperature < 1 else 1)
    for op in (fs.softmax, fs.log_softmax):
        expected = op(x, temperature=temperature).astype(dtype)
        assert_same_bits(op(x, temperature=temperature, dtype=dtype), expected, op.__name__)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_the_sampling_reference_reads_16_bit_logits_as_numbers(dtype):
    """fastsoftmax.reference.sample had read bfloat16's bit patterns as integers (greedy
    picked the -2.0 logit), and penalised float16 logits in float16 where fs.sample, as
    documented, penalises in float32: the reference and the kernel must agree."""
    x = np.array([[0.0, 1.0, -2.0, 3.0], [1.0, 1576 * 2**-11, 0.5, -1.0]], np.float32).astype(dtype)
    greedy = reference.sample(x, temperature=0)
    np.testing.assert_array_equal(greedy.tokens, fs.sample(x, temperature=0).tokens)
    assert greedy.tokens[0] == 3
    kept = reference.sample_kept(x, top_k=1)
    assert kept[0].tolist() == [False, False, False, True]
    penalty = dict(repetition_penalty=1 / (1575.6 * 2**-11), prev_tokens=[[3], [0]])
    np.testing.assert_array_equal(reference.sample(x, temperature=0, **penalty).tokens,
                                  fs.sample(x, temperature=0, **penalty).tokens)
    for u in (0.1, 0.5, 0.9):
        ours, theirs = fs.sample(x, u=u, **penalty), reference.sample(x, u=u, **penalty)
        np.testing.assert_array_equal(ours.tokens, theirs.tokens)
        np.testing.assert_allclose(ours.logprob, theirs.logprob, rtol=1e-6, atol=1e-7)


def test_bfloat16_numbers_as_parameters():
    """A bfloat16 scalar is a real number wherever one is taken, as a float16 one is
    (ml_dtypes registers it as no numbers.Real), and bfloat16 arrays are sample's per-row
    values: the same results as the float32 values they hold."""
    bf16 = ml_dtypes.bfloat16
    x = random_logits((4, 50), np.float32, seed=9)
    for f in (fs.softmax, fs.log_softmax):
        assert_same_bits(f(x, temperature=bf16(0.75)), f(x, temperature=0.75))
    labels = np.array([0, 1, 2, 3])
    assert fs.cross_entropy(x, labels, label_smoothing=bf16(0.25)) == \
        fs.cross_entropy(x, labels, label_smoothing=0.25)
    u = np.array([0.5, 0.25, 0.75, 0.125])
    t = np.array([0.5, 1.0, 2.0, 0.0])
    for kwargs in (dict(temperature=bf16(0.5), top_p=bf16(0.75), min_p=bf16(0.125)),
                   dict(temperature=t.astype(bf16), top_p=np.full(4, 0.75).astype(bf16),
                        repetition_penalty=np.full(4, 1.5).astype(bf16),
                        prev_tokens=[[1], [2], [], [3]])):
        plain = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else
                     (float(v) if isinstance(v, np.generic) else v)) for k, v in kwargs.items()}
        got = fs.sample(x, u=u.astype(bf16), **kwargs)
        want = fs.sample(x, u=u, **plain)
        np.testing.assert_array_equal(got.tokens, want.tokens)
        np.testing.assert_array_equal(got.logprob, want.logprob)
    with pytest.raises(TypeError, match="top_k must be an int"):
        fs.sample(x, top_k=bf16(2.0), u=u)  # a count is an int, not any real number
