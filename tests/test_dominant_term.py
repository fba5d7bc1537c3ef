"""Results near zero when one entry dominates: relative accuracy, not just absolute.

exp(x - max) is exactly 1 at the max, so ``log(1 + s)`` with the other terms
``s`` tiny rounds them away: ``logsumexp([0, -40])`` was 0, not 4.25e-18
(SciPy gh-18295).  The kernels leave the max's term out of the sum and take
``log1p`` of the rest (a row's sum pass leaves out every term equal to the max
and adds all but one back, exactly).  Checked here on every kernel path (a row, the
short rows run one per lane, a panel over a leading axis, a long row split
across threads), on every ISA, with masks, temperatures, repeated maxima and
the dominant entry at every position of a step, against ``log1p`` of the
other terms computed in float64.
"""
import contextlib
import math

import numpy as np
import pytest

import fastsoftmax as fs
from conftest import CHUNK, check_log_softmax, check_logsumexp, streaming_every_call
from fastsoftmax import _core, reference

RTOL = {np.float32: 1e-6, np.float64: 1e-13}
# The gaps below the max (plus up to 3): float32 stops before exp(-gap) leaves the normal
# range (exp results under 1.2e-38 are +0 or subnormal), float64 likewise under 2.2e-308.
GAPS = {np.float32: [1.0, 10.0, 20.0, 36.0, 40.0, 60.0, 80.0],
        np.float64: [1.0, 10.0, 20.0, 36.0, 40.0, 200.0, 700.0]}
DTYPES = [np.float32, np.float64]
# Row lengths for each path: short rows (one per lane), rows, a long row split in chunks.
LENGTHS = [2, 7, 16, 17, 100, 2 * CHUNK + 5]


def _exact_lse(row, temperature=1.0):
    """max + log1p(sum of the other terms) in float64, the max's first term left out."""
    z = (np.asarray(row, np.float64) - np.max(row)) / temperature
    others = np.delete(z, int(np.argmax(row)))
    return float(np.max(row)) / temperature + math.log1p(math.fsum(np.exp(others)))


def _rows(dtype, n, gap, rng, max_at=None):
    """Rows of n: one entry 0, the others at least `gap` below it, at random positions."""
    rows = []
    for position in ([max_at] if max_at is not None else rng.integers(0, n, 3)):
        row = -(gap + rng.random(n) * 3)
        row[position] = 0.0
        rows.append(row)
    return np.array(rows).astype(dtype)


def _assert_relative(got, expected, dtype, what):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=0, err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", LENGTHS)
def test_logsumexp_and_log_softmax_near_zero(isa, dtype, n):
    rng = np.random.default_rng(n)
    for gap in GAPS[dtype]:
        x = _rows(dtype, n, gap, rng)
        expected = [_exact_lse(row) for row in x.astype(np.float64)]
        one_thread = fs.logsumexp(x, n_threads=1), fs.log_softmax(x, n_threads=1)
        for threads in (1, 3):
            lse, logp = fs.logsumexp(x, n_threads=threads), fs.log_softmax(x, n_threads=threads)
            _assert_relative(lse, expected, dtype, f"logsumexp gap={gap} threads={threads}")
            top = logp[np.arange(len(x)), np.argmax(x, axis=1)]
            _assert_relative(top, -np.array(expected), dtype, f"log_softmax gap={gap}")
            # a long row split across threads is summed again the same way: the same bits
            np.testing.assert_array_equal(lse, one_thread[0])
            np.testing.assert_array_equal(logp, one_thread[1])
            # the same slices down a leading axis (a panel: one slice per lane)
            if n <= 100:
                _assert_relative(fs.logsumexp(np.ascontiguousarray(x.T), axis=0), expected,
                                 dtype, f"logsumexp axis=0 gap={gap}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_the_dominant_entry_at_every_position_of_a_step(isa, dtype):
    """Each lane of each unrolled vector, and the tails: the dropped term is found anywhere."""
    n = 4 * 16 * 2 + 7  # two steps of the widest ISA, and a tail
    rng = np.random.default_rng(0)
    for position in range(n):
        x = _rows(dtype, n, 40.0, rng, max_at=position)
        _assert_relative(fs.logsumexp(x), [_exact_lse(x[0].astype(np.float64))], dtype,
                         f"max at {position}")


def _sum_lengths(isa, dtype):
    """Rows that sum in float blocks and leave the max's terms out as they go (see below)."""
    info = _core.kernel_info()[isa][dtype.__name__]
    step = info["lanes"] * info["unroll"] * info["flush_steps"]  # one blocked step of the sum
    lengths = {info["blocked_log_sum_from"] + 1, step - 1, step, step + info["lanes"] + 3,
               2 * step - 1, 2 * step + info["lanes"] + 3}
    return sorted(n for n in lengths if info["blocked_log_sum_from"] <= n <= CHUNK)


def _others_log1p(x, skip):
    """log1p of the sum of exp(x) over each row's entries but those `skip` marks, in float64."""
    x = np.asarray(x, np.float64)
    return np.array([math.log1p(math.fsum(np.exp(row[~keep]))) for row, keep in zip(x, skip)])


def _rows_with_maxima(places, n, dtype, rng):
    """Rows of n, row r 0 at the positions places[r] and 40 to 43 below it elsewhere, and
    their logsumexp in float64: log(k + the rest) for k maxima, as log1p(k - 1 + the rest)."""
    x = -(40.0 + rng.random((len(places), n)) * 3)
    for row, at in zip(x, places):
        row[at] = 0.0
    x = x.astype(dtype)
    counts = np.array([len(at) for at in places], np.float64)
    rest = np.array([math.fsum(np.exp(row[row < 0])) for row in x.astype(np.float64)])
    return x, np.log1p(counts - 1 + rest)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_the_sum_finds_the_max_term_at_every_position(isa, dtype):
    """log_softmax's and cross_entropy's rows leave the max's term out while they sum.

    Rows of blocked_log_sum_from or more elements sum in float blocks without
    that term of 1, left out in the sum pass itself: rows shorter than one
    blocked step of the sum two at a time, longer ones in the blocked loop,
    then the tail vectors, counting the max's terms in every vector.  Row p of an n x n batch has its max at p, for rows
    within one step, of one step, one and a tail, just under two, and over
    two and a tail: a term missed, or one taken
    from the wrong place, leaves a 1 in a float block and rounds the others
    (40 below it) away.  An entry equal to the max that the mask leaves out,
    just before it, must not be taken; a second max after it is summed, its
    result -log(2 + tiny).  Rows split among threads keep their bits.
    """
    rng = np.random.default_rng(1)
    for n in _sum_lengths(isa, dtype):
        x = -(40.0 + rng.random((n, n)) * 3)
        on_diagonal = np.eye(n, dtype=bool)
        x[on_diagonal] = 0.0
        x = x.astype(dtype)
        rest = _others_log1p(x, on_diagonal)
        logp = fs.log_softmax(x, n_threads=1)
        _assert_relative(np.diagonal(logp), -rest, dtype, f"log_softmax n={n}")
        loss = fs.cross_entropy(x, np.arange(n), reduction="none", n_threads=1)
        _assert_relative(loss, rest, dtype, f"cross_entropy n={n}")
        # the gradient's sum pass stores its exponentials as it looks, into the logits too
        grad_out = x.copy()
        loss_with_grad, _ = fs.cross_entropy(grad_out, np.arange(n), reduction="none",
                                             return_grad=True, grad_out=grad_out, n_threads=1)
        _assert_relative(loss_with_grad, rest, dtype, f"cross_entropy with its gradient n={n}")
        np.testing.assert_array_equal(fs.log_softmax(x, n_threads=3), logp)

        # a masked-out copy of the max just before it
        masked_x, where = x.copy(), np.ones((n, n), bool)
        before = np.roll(on_diagonal, -1, axis=1)  # (p, p - 1); row 0's is its last entry
        masked_x[before], where[before] = 0.0, False
        got = fs.log_softmax(masked_x, where=where, n_threads=1)
        _assert_relative(np.diagonal(got), -_others_log1p(x, on_diagonal | before), dtype,
                         f"masked log_softmax n={n}")
        np.testing.assert_array_equal(fs.log_softmax(masked_x, where=where, n_threads=3), got)

        # a second max 5 entries after the first (wrapping around): log(2 + the rest)
        tied = x.copy()
        after = np.roll(on_diagonal, 5, axis=1)
        tied[after] = 0.0
        both = on_diagonal | after
        expected = -np.log(2.0 + np.expm1(_others_log1p(tied, both)))
        first = np.minimum(np.arange(n), (np.arange(n) + 5) % n)
        got = fs.log_softmax(tied, n_threads=1)
        _assert_relative(got[np.arange(n), first], expected, dtype, f"tied max n={n}")
        np.testing.assert_array_equal(fs.log_softmax(tied, n_threads=3), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_rows_holding_their_max_several_times(isa, dtype):
    """Every term of a max held several times is left out of the sum, and all but one are
    added back exactly.  Ties side by side (one vector), a vector and a step apart, in the
    tail, everywhere (a constant row), in different chunks: each result is log(k + the rest)
    of its k copies, and each row has the bits it has alone, among other rows and on 3
    threads, and split across threads (a row of two chunks or more on two threads)."""
    rng = np.random.default_rng(7)
    info = _core.kernel_info()[isa][dtype.__name__]
    lanes = info["lanes"]
    for n in sorted(set(_sum_lengths(isa, dtype)) |
                    {info["blocked_log_sum_from"], CHUNK + 3, 2 * CHUNK + 5}):
        vector_apart = [1, lanes + 1, n - 1] if lanes + 1 < n - 1 else [1, n - 1]
        places = [[0, 1], [n - 2, n - 1], vector_apart, list(range(0, n, 7)), list(range(n))]
        x, lse = _rows_with_maxima(places, n, dtype, rng)
        _assert_relative(fs.logsumexp(x, n_threads=1), lse, dtype, f"logsumexp n={n}")
        logp = fs.log_softmax(x, n_threads=1)
        firsts = np.array([at[0] for at in places])
        _assert_relative(logp[np.arange(len(x)), firsts], -lse, dtype, f"log_softmax n={n}")
        loss = fs.cross_entropy(x, firsts, reduction="none", n_threads=1)
        _assert_relative(loss, lse, dtype, f"cross_entropy n={n}")
        np.testing.assert_array_equal(fs.log_softmax(x, n_threads=3), logp)
        for r in range(len(x)):
            np.testing.assert_array_equal(fs.log_softmax(x[r:r + 1], n_threads=1), logp[r:r + 1])
            if n > CHUNK:  # one row of several chunks on two threads: the long-row driver
                row = x[r:r + 1]
                np.testing.assert_array_equal(fs.log_softmax(row, n_threads=2), logp[r:r + 1])
                np.testing.assert_array_equal(fs.logsumexp(row, n_threads=2),
                                              fs.logsumexp(row, n_threads=1))
                label = firsts[r:r + 1]
                for got, one in zip(fs.cross_entropy(row, label, return_grad=True, n_threads=2),
                                    fs.cross_entropy(row, label, return_grad=True, n_threads=1)):
                    np.testing.assert_array_equal(got, one)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [10, 300, 2 * CHUNK + 5])
def test_masked_temperature_and_repeated_max(isa, dtype, n):
    rng = np.random.default_rng(n)
    x = _rows(dtype, n, 40.0, rng)
    # a masked-out entry above the max, and one equal to it before it: neither is the max's term
    x[:, 0], x[:, 1] = 5.0, 0.0
    where = np.ones(x.shape, bool)
    where[:, :2] = False
    expected = [_exact_lse(row[2:]) for row in x.astype(np.float64)]
    for threads in (1, 3):
        _assert_relative(fs.logsumexp(x, where=where, n_threads=threads), expected, dtype,
                         "masked")
    # a temperature divides every gap: exp(-40 / 2)
    t_expected = [_exact_lse(row[2:], temperature=2.0) for row in x.astype(np.float64)]
    got = fs.log_softmax(x, temperature=2.0, where=where)
    top = got[np.arange(len(x)), 2 + np.argmax(x[:, 2:], axis=1)]
    max_over_t = np.max(x[:, 2:], axis=1).astype(np.float64) / 2.0
    _assert_relative(top, max_over_t - np.array(t_expected), dtype, "temperature")
    # a repeated max: log(2 + tiny), both copies' log-probability -log(2 + tiny)
    x2 = _rows(dtype, n, 40.0, rng)
    x2[:, 3] = 0.0
    x2[:, 5] = 0.0
    _assert_relative(fs.logsumexp(x2), [_exact_lse(r) for r in x2.astype(np.float64)], dtype,
                     "repeated max")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [5, 100, 2 * CHUNK + 5])
def test_cross_entropy_of_the_dominant_class(isa, dtype, n):
    """The loss of a confident, correct prediction is log1p(s), kept to relative accuracy."""
    rng = np.random.default_rng(n)
    x = _rows(dtype, n, 30.0, rng)
    labels = np.argmax(x, axis=1)
    expected = [_exact_lse(row) for row in x.astype(np.float64)]
    first = fs.cross_entropy(x, labels, reduction="none", return_grad=True, n_threads=1)
    for threads in (1, 3):
        # (the gradient's bound stays absolute: p - 1 at the label cancels in the working dtype)
        loss, grad = fs.cross_entropy(x, labels, reduction="none", return_grad=True,
                                      n_threads=threads)
        _assert_relative(loss, expected, dtype, f"loss, {threads} threads")
        np.testing.assert_array_equal(loss, first[0])
        np.testing.assert_array_equal(grad, first[1])
        # the loss alone: the same sums, the same bits
        np.testing.assert_array_equal(
            fs.cross_entropy(x, labels, reduction="none", n_threads=threads), first[0])
    panel = np.ascontiguousarray(x.T)[None]  # (1, C, N): the class axis first
    loss = fs.cross_entropy(panel, labels[None], axis=1, reduction="none")
    _assert_relative(loss[0], expected, dtype, "loss, class axis 1")


def test_scipy_gh_18295_values():
    """The issue's values: [0, -d] is log1p(exp(-d)), in float64 exactly as SciPy's fix gives."""
    for d, expected in [(10.0, 4.539889921686465e-05), (20.0, 2.0611536181902037e-09),
                        (36.0, 2.319522830243569e-16), (40.0, 4.248354255291589e-18)]:
        assert fs.logsumexp(np.array([0.0, -d])) == pytest.approx(expected, rel=1e-15)
        assert fs.log_softmax(np.array([0.0, -d]))[0] == pytest.approx(-expected, rel=1e-15)


@pytest.mark.parametrize("axes", [(0, 2), (1, 2), None])
def test_several_axes_and_0d_keep_the_relative_precision(isa, axes):
    """Over a tuple of axes, the kernels and the reference leave one max's term out too.

    Slice 0 holds two maxima (the second is summed), slice 1 one max and three
    entries 40 below it: its logsumexp is log1p(3 e^-40), 1.3e-17, and its
    max's log-probability minus that.
    """
    if axes is None:  # one slice of 8: one max, seven entries 40 below it
        x = np.full((2, 2, 2), -40.0)
        x[1, 0, 1] = 0.0
        lse = np.array(math.log1p(7 * math.exp(-40.0)))
    else:
        rows = np.array([[0.0, -40.0, 0.0, -40.0], [-40.0, -40.0, 0.0, -40.0]])
        lse = np.array([math.log(2.0) + math.log1p(math.exp(-40.0)),
                        math.log1p(3 * math.exp(-40.0))])
        x = rows.reshape(2, 2, 2)  # (1, 2): the rows are x[0] and x[1]
        if axes == (0, 2):
            x = np.moveaxis(x, 0, 1)  # the rows are x[:, 0, :] and x[:, 1, :]
    kept = lse if axes is None else np.expand_dims(lse, axes)
    for module in (fs, reference):
        _assert_relative(module.logsumexp(x, axes), lse, np.float64,
                         f"{module.__name__}.logsumexp over {axes}")
        _assert_relative(module.log_softmax(x, axes), x - np.asarray(kept), np.float64,
                         f"{module.__name__}.log_softmax over {axes}")
        # A 0-d array is one slice, its own max: exactly x and 0.
        assert module.logsumexp(np.float64(-40.0), 0) == -40.0
        assert module.log_softmax(np.float64(-40.0), ()) == 0.0


def test_non_finite_maxima_keep_their_answers(isa):
    """A max that is not finite is never dropped: NaN and inf still decide the slice."""
    assert np.isnan(fs.logsumexp(np.array([0.0, np.nan])))
    assert fs.logsumexp(np.array([np.inf, 0.0])) == np.inf
    assert fs.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert np.isnan(fs.log_softmax(np.array([np.inf, 0.0]))).all()
    assert np.isnan(fs.log_softmax(np.array([-np.inf]))).all()
    np.testing.assert_array_equal(fs.log_softmax(np.array([5.0])), [0.0])


@pytest.mark.parametrize("n", [100, 5000, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 5])
def test_float32_logsumexp_of_every_size_of_result(isa, n):
    """float32 rows' logsumexp is summed in float blocks unless the result is near 0.

    A result of at least ~7.6 keeps the contract with float blocks (their
    rounding moves log(sum) by at most ~5e-7); nearer 0 the row is summed
    exactly, and a negative max whose range reaches 0 (log-probabilities) is
    summed exactly at once.  Results from -20 to 20 straddle every branch, on
    rows short enough never to be split and on those that may be; a row split
    across threads gives the one-thread bits.
    """
    rng = np.random.default_rng(n)
    base = rng.standard_normal((1, n)) * 3
    exact_base = reference.logsumexp(base, axis=-1)[0]
    for target in (-20.0, -7.7, -7.5, -3.0, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 3.0, 7.5, 7.7, 20.0):
        x = (base - exact_base + target).astype(np.float32)
        for threads in (1, 2):
            check_logsumexp(fs.logsumexp(x, axis=-1, n_threads=threads), x)
        np.testing.assert_array_equal(fs.logsumexp(x, axis=-1, n_threads=1),
                                      fs.logsumexp(x, axis=-1, n_threads=2))


# log_softmax's rows from this long sum in float blocks; shorter ones in double.
BLOCKED_FROM = _core.kernel_info()[_core.isa()]["float32"]["blocked_log_sum_from"]


def _cross_entropy_losses(x, labels, eps):
    """Each row's loss from the float64 log-probabilities: a sum of positive terms."""
    nll = -reference.log_softmax(x.astype(np.float64))
    return (1 - eps) * nll[np.arange(len(x)), labels] + eps * nll.mean(axis=1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [17, BLOCKED_FROM - 1, BLOCKED_FROM, 300, CHUNK + 3,
                               2 * CHUNK + 5, 3 * CHUNK])
def test_log_softmax_and_cross_entropy_keep_every_entry_whatever_the_weight_of_the_max(
        isa, dtype, n):
    """log_softmax's long rows and cross_entropy's rows leave the max's term out and sum the
    rest in float blocks.

    That keeps every log-probability and every loss within the relative bound
    however much of the mass the max holds: the rest ``s`` from 1e-3 of it (the
    max dominates) to many times it, across ``s = 1`` where ``log1p(s)`` gives
    way to ``log(1 + s)``, with the max first, in the middle, last and (long
    rows) at the start of a later chunk.  The losses: labels on the max (the
    loss is log1p(s) alone) and off it, with and without label smoothing.  A
    long row split across threads gives the one-thread bits.
    """
    rng = np.random.default_rng(n)
    positions = sorted({0, n // 2, n - 1} | ({CHUNK} if n > CHUNK else set()))
    for rest in (1e-3, 0.3, 0.999, 1.0, 1.001, 3.0, 100.0):
        if rest > (n - 1) / 2:  # every other term must stay below the max
            continue
        rows = []
        for position in positions:
            others = rng.standard_normal(n - 1) * 0.3
            others -= math.log(math.fsum(np.exp(others)) / rest)  # their exps sum to `rest`
            rows.append(np.insert(others, position, 0.0))
        x = np.array(rows).astype(dtype)
        expected = reference.log_softmax(x.astype(np.float64))
        one_thread = fs.log_softmax(x, n_threads=1)
        _assert_relative(one_thread, expected, dtype, f"rest={rest}")
        for threads in (2, 3):
            np.testing.assert_array_equal(fs.log_softmax(x, n_threads=threads), one_thread)
        out = np.empty_like(x)
        assert fs.log_softmax(x, out=out) is out
        np.testing.assert_array_equal(out, one_thread)
        for labels in (np.array(positions), (np.array(positions) + 1) % n):
            for eps in (0.0, 0.1):
                what = f"cross_entropy, rest={rest}, label_smoothing={eps}"
                loss = fs.cross_entropy(x, labels, reduction="none", label_smoothing=eps,
                                        n_threads=1)
                _assert_relative(loss, _cross_entropy_losses(x, labels, eps), dtype, what)
                for threads in (1, 3):  # with the gradient: the same sums, the same bits
                    loss_too, _ = fs.cross_entropy(x, labels, reduction="none",
                                                   label_smoothing=eps, return_grad=True,
                                                   n_threads=threads)
                    np.testing.assert_array_equal(loss_too, loss, err_msg=what)


@pytest.mark.parametrize("n", [100, 300, 1000])
def test_logsumexp_sums_each_row_its_own_way(isa, n):
    """float32 logsumexp picks per row: float blocks, blocks without the max's term, exact.

    Maxima from -20 to 12 straddle each way's bounds (7.6 in magnitude: the
    blocks' rounding over the tolerance, times 16; 0 for the blocks without
    the max's term), with the rest of the row from 1e-3 of the max's term (it
    dominates) to 3 times it.  Every result keeps the relative bound, and a row
    gets the same bits alone, in the batch and next to rows of other ways
    (rows shorter than one blocked step are walked in pairs).
    """
    rng = np.random.default_rng(n)
    rows = []
    for top in (-20.0, -8.0, -1e-3, 0.0, 1e-3, 0.5, 3.0, 7.5, 7.7, 12.0):
        for rest in (1e-3, 3.0):
            others = rng.standard_normal(n - 1) * 0.3
            others -= math.log(math.fsum(np.exp(others)) / rest)  # their exps sum to `rest`
            rows.append(np.insert(others, int(rng.integers(0, n)), 0.0) + top)
    x = np.array(rows, np.float32)
    got = fs.logsumexp(x, n_threads=1)
    # the README's bound: 1e-6 relative, plus what rounding z = x - max costs by itself,
    # 3u * sum(p |z|), which is all there is where a negative max cancels log1p(s)
    x64 = x.astype(np.float64)
    expected = reference.logsumexp(x64, axis=-1)
    z = x64 - x64.max(axis=-1, keepdims=True)
    rounding = 3 * 2.0**-24 * (reference.softmax(x64) * np.abs(z)).sum(axis=-1)
    assert np.all(np.abs(got - expected) <= 1e-6 * np.abs(expected) + rounding), f"n={n}"
    alone = np.array([fs.logsumexp(row[None], n_threads=1)[0] for row in x])
    np.testing.assert_array_equal(got, alone)
    shuffled = rng.permutation(len(x))
    np.testing.assert_array_equal(fs.logsumexp(x[shuffled], n_threads=1), got[shuffled])
    np.testing.assert_array_equal(fs.logsumexp(x, n_threads=2), got)


def _chunk_placements(n):
    """Where a row of n (several chunks) holds its max: the chunks that may hold it look."""
    last = (n - 1) // CHUNK * CHUNK  # the last chunk's first element
    return [[n - 1],                   # the last chunk only, at its end
            [0],                       # the first chunk only
            [3, n - 2],                # the first and the last: the chunks between look too
            [CHUNK],                   # the second chunk's first element
            [CHUNK - 1, last],         # two chunks side by side, at their boundary
            [CHUNK + 7, last + 1],     # a later chunk and the last
            [5, CHUNK + 9, n - 1]]     # three chunks


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("chunks", [2, 4, 5])
@pytest.mark.parametrize("stream", [False, True], ids=["ordinary", "streamed"])
def test_only_the_chunks_that_hold_the_max_look_for_it(isa, dtype, chunks, stream):
    """A chunk whose own max is below its row's skips the look for the max's terms.

    The sum pass leaves out the max's terms only in the chunks that may hold
    them: from the first chunk that holds the max to the last (every chunk
    between included), each row's own span, and in the long-row driver each
    chunk that holds it.  A chunk that holds the max but skipped the look
    would add its 1 into a float block and round the rest (40 below it) away.
    Rows of 2, 4 and 5 chunks (pipelined where they fit 256 KB: each row's
    span found in the sum pass of the row before) hold their max once or
    several times, in one chunk or in chunks apart; each result is log(k +
    the rest), and a row's bits are the same in the batch, alone, and split
    across two threads.
    """
    n = (chunks - 1) * CHUNK + 11
    places = _chunk_placements(n)
    rng = np.random.default_rng(chunks)
    x, lse = _rows_with_maxima(places, n, dtype, rng)
    firsts = np.array([at[0] for at in places])
    with contextlib.ExitStack() as stack:
        if stream:
            stack.enter_context(streaming_every_call())
        logp = fs.log_softmax(x, n_threads=1)
        _assert_relative(logp[np.arange(len(x)), firsts], -lse, dtype, f"log_softmax n={n}")
        _assert_relative(fs.logsumexp(x, n_threads=1), lse, dtype, f"logsumexp n={n}")
        loss, grad = fs.cross_entropy(x, firsts, reduction="none", return_grad=True,
                                      n_threads=1)
        _assert_relative(loss, lse, dtype, f"cross_entropy n={n}")
        np.testing.assert_array_equal(
            fs.cross_entropy(x, firsts, reduction="none", n_threads=1), loss)
        for r in range(len(x)):
            row, label = x[r:r + 1], firsts[r:r + 1]
            for threads in (1, 2):  # alone, and on two threads: the long-row driver
                what = f"row {r} of n={n} alone on {threads} threads"
                np.testing.assert_array_equal(fs.log_softmax(row, n_threads=threads),
                                              logp[r:r + 1], err_msg=what)
                got = fs.cross_entropy(row, label, reduction="none", return_grad=True,
                                       n_threads=threads)
                np.testing.assert_array_equal(got[0], loss[r:r + 1], err_msg=what)
                np.testing.assert_array_equal(got[1], grad[r:r + 1], err_msg=what)


def _block(isa, dtype):
    """Elements in one blocked step of a row's sum (its float blocks, flushed to double)."""
    info = _core.kernel_info()[isa][dtype.__name__]
    return info["lanes"] * info["unroll"] * info["flush_steps"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("blocks", [8, 13])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "one element past"])
def test_the_max_in_every_block_of_a_row(isa, dtype, blocks, offset):
    """A row walked alone finds its max's terms in every block of the sum (one blocked step,
    flushed to double), wherever the max lies.

    Rows of 8 and 13 blocks and a tail, starting on a vector boundary or one
    element past it (the max pass's aligned loads then start after a head of
    elements). One max at each block's first and last element and at the
    row's ends, and maxima in blocks apart. A block that missed the max's term
    would add its 1 into a float block and round the rest (40 below it) away;
    a row of several maxima has, alone, the bits it has in the batch
    (pipelined), for log_softmax and cross_entropy's loss, with the gradient
    or without.
    """
    step = _block(isa, dtype)
    lanes = _core.kernel_info()[isa][dtype.__name__]["lanes"]
    n = blocks * step + lanes + 3
    places = [[0], [n - 1]]
    for b in range(blocks):
        places += [[min(b * step + offset, n - 1)], [min(b * step + step - 1, n - 1)]]
    places += [[step + 2, (blocks - 2) * step + 5], [3, n - 2], [2 * step - 1, 2 * step]]
    rows, lse = _rows_with_maxima(places, n, dtype, np.random.default_rng(blocks + offset))
    raw = np.empty(len(places) * n + offset, dtype)
    x = raw[offset:].reshape(len(places), n)  # each row `offset` elements past raw's start
    x[...] = rows
    firsts = np.array([at[0] for at in places])
    logp = fs.log_softmax(x, n_threads=1)
    _assert_relative(logp[np.arange(len(x)), firsts], -lse, dtype, f"log_softmax n={n}")
    loss = fs.cross_entropy(x, firsts, reduction="none", n_threads=1)
    _assert_relative(loss, lse, dtype, f"cross_entropy n={n}")
    loss_too, _ = fs.cross_entropy(x, firsts, reduction="none", return_grad=True, n_threads=1)
    np.testing.assert_array_equal(loss_too, loss)
    for r in range(len(x)):
        row = raw[offset + r * n:offset + (r + 1) * n].reshape(1, n)
        np.testing.assert_array_equal(fs.log_softmax(row, n_threads=1), logp[r:r + 1],
                                      err_msg=f"row {r} alone, max at {places[r]}")
        np.testing.assert_array_equal(
            fs.cross_entropy(row, firsts[r:r + 1], reduction="none", n_threads=1),
            loss[r:r + 1], err_msg=f"row {r} alone, max at {places[r]}")


def _cancelling_rows(n, rng, rows=40):
    """float32 rows whose negative max cancels log(sum): log-probabilities of n near-equal
    entries, so that each logsumexp is within about 1e-7 of 0."""
    return (rng.standard_normal((rows, n)) * 0.01 - math.log(n)).astype(np.float32)


def _exact_lse_of_rows(x, axis=-1):
    """float64 log1p form of each slice (exact for these results to ~1e-16 absolute)."""
    rows = np.moveaxis(np.asarray(x, np.float64), axis, -1).reshape(-1, np.shape(x)[axis])
    return np.array([_exact_lse(row) for row in rows])


@pytest.mark.parametrize("n", [2, 3, 7, 16, 17, 47, 100, 1000])
def test_float32_logsumexp_where_a_negative_max_cancels(isa, n):
    """float32 exponentials are rounded by up to 1.35 ULP each, which moves log(sum) by up
    to 1.6e-7 of itself: more than the relative bound where a negative max cancels it
    (logsumexp of log-probabilities, near 0).  Those results are computed again in float64:
    within the bound on every kernel path (the small-call entry, rows, short rows, panels),
    with masks, float16 input, and the same bits on any thread count."""
    rng = np.random.default_rng(n)
    x = _cancelling_rows(n, rng)
    expected = _exact_lse_of_rows(x)
    assert np.abs(expected).max() < 0.05  # (the cancellation the test is about)
    for threads in (1, 2):
        _assert_relative(fs.logsumexp(x, n_threads=threads), expected, np.float32, "rows")
        _assert_relative(fs.logsumexp(np.ascontiguousarray(x.T), axis=0, n_threads=threads),
                         expected, np.float32, "axis=0")
    for row, want in zip(x[:5], expected[:5]):  # one row: the small-call entry
        _assert_relative(fs.logsumexp(row), want, np.float32, "one row")
    # masked: the kept entries' own exact result
    where = rng.random(x.shape) < 0.7
    where[:, 0] = True
    masked = [_exact_lse(row[keep]) for row, keep in zip(x.astype(np.float64), where)]
    _assert_relative(fs.logsumexp(x, where=where), masked, np.float32, "masked")
    _assert_relative(fs.logsumexp(x, where=where[0]), [_exact_lse(row[where[0]]) for row in
                                                      x.astype(np.float64)],
                     np.float32, "a broadcast mask")
    half = x.astype(np.float16)
    _assert_relative(fs.logsumexp(half), _exact_lse_of_rows(half), np.float32, "float16")
    np.testing.assert_array_equal(fs.logsumexp(x, n_threads=1), fs.logsumexp(x, n_threads=2))


def test_float32_logsumexp_of_the_reported_cancellations(isa):
    """The accuracy audit's cases (2026-12-06): 1.4e-8 and 1.6e-8 off before, on every ISA."""
    for row, exact in (([-0.6930273, -0.6932671], None),
                       ([-0.7379649877548218, -0.6498543620109558], None)):
        x = np.array(row, np.float32)
        _assert_relative(fs.logsumexp(x), _exact_lse(x.astype(np.float64)), np.float32, str(row))
        _assert_relative(fs.logsumexp(np.stack([x] * 3), axis=-1),
                         [_exact_lse(x.astype(np.float64))] * 3, np.float32, str(row))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_logsumexp_where_max_and_log_sum_cancel_is_within_its_absolute_term(isa, dtype):
    """Pairs whose logsumexp is near 0 with both entries near -log 2: the README's bound
    there is u64 (|max| + |log(sum)|), which fastsoftmax._testing.check_logsumexp adds
    (it left it out, and rejected 25-47 of 301 such float64 pairs: fuzzing, 2026-12-06)."""
    rng = np.random.default_rng(7)
    x = (-math.log(2) + rng.standard_normal((301, 2)) * 1e-3).astype(dtype)
    check_logsumexp(fs.logsumexp(x), x)
    check_logsumexp(fs.logsumexp(np.ascontiguousarray(x.T), axis=0), x.T, axis=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [5, 16, 33, 64, 100])
def test_rows_of_any_spread_and_shift_keep_the_bound(isa, dtype, n):
    """Short rows and panels (a tile's lanes) and rows leave the max's term out in their one
    sum pass, whatever the logits' spread: under 1.14 of log(sum), which float64's bound
    once sent back for a second pass, and near 0 from below (log-probabilities), which
    rows still sum the exact way (2026-12-07)."""
    rng = np.random.default_rng(n)
    for spread in (0.3, 3.0, 10.0, 40.0):
        x = rng.standard_normal((37, n)) * spread
        for shifted in (x, x - 20.0, x - fs.logsumexp(x, axis=-1, keepdims=True)):
            rows = shifted.astype(dtype)
            check_logsumexp(fs.logsumexp(rows, axis=-1), rows)
            check_log_softmax(fs.log_softmax(rows, axis=-1), rows)
            columns = np.ascontiguousarray(rows.T)
            check_logsumexp(fs.logsumexp(columns, axis=0), columns, axis=0)
            check_log_softmax(fs.log_softmax(columns, axis=0), columns, axis=0)


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_float64_results_near_zero_against_exact_values(isa, layout):
    """The README's float64 bound where max and log(sum) cancel (rows of log-probabilities),
    u (|max| + |log(sum)| + 1), against 40-digit sums rather than a float64 reference,
    which rounds the same steps itself."""
    mpmath = pytest.importorskip("mpmath")
    u = 2.0**-53
    with mpmath.workdps(40):
        for n in (2, 5, 16, 33, 100):
            rng = np.random.default_rng(n)
            for spread in (0.1, 1.0, 3.0, 10.0, 40.0):
                x = rng.standard_normal((40, n)) * spread
                rows = x - reference.logsumexp(x, axis=-1, keepdims=True)
                exact = np.array([float(mpmath.log(mpmath.fsum(
                    mpmath.exp(mpmath.mpf(float(v))) for v in row))) for row in rows])
                got = (fs.logsumexp(rows, axis=-1) if layout == "rows" else
                       fs.logsumexp(np.ascontiguousarray(rows.T), axis=0))
                top = rows.max(axis=-1)
                bound = u * (np.abs(top) + np.abs(exact - top) + 1)
                bad = np.abs(got - exact) > bound
                assert not bad.any(), (n, spread, got[bad], exact[bad], bound[bad])
