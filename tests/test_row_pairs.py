"""Rows walked together get the bits each gets alone.

Rows shorter than one blocked step of the sum (``unroll * flush_steps * lanes``
elements, from ``_core.kernel_info()``) are walked in pairs: the two rows' max
and sum passes run in one loop, so that the core has two independent chains of
latencies.  Each row must still meet its own operations in its own order: a
row's result may not depend on the row it is paired with, nor on whether it is
paired at all (a thread's block of rows may start on any row, and an odd row
count leaves the last row alone).

Each case here puts two rows of different kinds side by side, for every
ordered pair of kinds, and compares every result with the same row computed
alone.  The kinds take every branch a row's result can take: the float blocks
of logsumexp and its exact sum, the dominant term's second sum, infinite and
NaN maxima, fully masked rows.

Unmasked softmax and log_softmax rows from ``pipelined_from`` (log_softmax's
``log_pipelined_from``; at most that length) up to ``pipelined_to`` are pipelined (past one chunk, a chunk at a time):
a row's sum pass also takes the next row's max and does the previous row's last
pass, or for log_softmax rows up to ``pipelined_deep_to`` the last pass of the row
two back (src/fs_softmax_tmpl.h's softmax_rows_pipelined).  There every kind of row
follows every other, at the lengths where the blocked sum, its vector tail and
its partial vector begin and end, in place, with unaligned outputs, against a
``where=`` mask that keeps everything (masked rows are not pipelined), and streamed
(through two or three scratch rows, at the offsets where out's aligned vectors begin).
"""
import contextlib
import itertools

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core
from fastsoftmax._threads import PARALLEL_MIN_ELEMENTS
from conftest import out_at, streaming_every_call

DTYPES = [np.float32, np.float64, np.float16]


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _row_kinds(n, dtype, rng):
    """Rows of n elements, each sending a row down a different branch."""
    logits = rng.standard_normal(n) * 3
    log_probabilities = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    dominant = rng.standard_normal(n) - 60.0
    dominant[rng.integers(n)] = 0.0
    with_nan, with_inf = logits.copy(), logits.copy()
    with_nan[rng.integers(n)] = np.nan
    with_inf[rng.integers(n)] = np.inf
    far_below = rng.standard_normal(n) - 200.0
    tied = np.full(n, 1.5)
    kinds = {
        "logits": logits,                        # logsumexp: the float blocks
        "high_max": logits - logits.max() + 12,  # max past 7.6: the blocks, whatever n
        "log_probabilities": log_probabilities,  # logsumexp near 0: the exact sum
        "dominant": dominant,                    # one term dominates: the second sum
        "all_minus_inf": np.full(n, -np.inf),
        "nan": with_nan,
        "plus_inf": with_inf,
        "far_below": far_below,                  # a negative max far from 0: the blocks
        "tied": tied,                            # every element is the max
    }
    if dtype == np.float16:  # float16 ends at 65504: keep the kinds in its range
        kinds["far_below"] = rng.standard_normal(n) - 20.0
    return {name: row.astype(dtype) for name, row in kinds.items()}


def _paired_lengths(sizes):
    """Row lengths that are walked in pairs, at each block boundary below the pair limit
    (log_softmax's from ``short_log_row``, softmax's from ``short_softmax_row``, logsumexp's
    from ``short_logsumexp_row``)."""
    lanes, short = sizes["lanes"], sizes["short_log_row"]
    paired_below = sizes["unroll"] * sizes["flush_steps"] * lanes
    candidates = {short + 1, sizes["short_row"] + 1, sizes["short_softmax_row"] + 1,
                  sizes["short_logsumexp_row"] + 1, lanes + 1, 2 * lanes - 1,
                  sizes["unroll"] * lanes,
                  sizes["unroll"] * lanes + 1, sizes["blocked_log_sum_from"] - 1,
                  sizes["blocked_log_sum_from"], paired_below - 1, paired_below,
                  paired_below + 1}
    return sorted(n for n in candidates if short < n)


def _ops(temperature):
    ops = {
        "softmax": lambda x, **kw: fs.softmax(x, temperature=temperature, **kw),
        "log_softmax": lambda x, **kw: fs.log_softmax(x, temperature=temperature, **kw),
    }
    if temperature == 1.0:  # logsumexp has none
        ops["logsumexp"] = fs.logsumexp
    return ops


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "where"])
def test_a_row_gets_the_same_bits_paired_or_alone(isa, dtype, masked):
    sizes = _core.kernel_info()[isa][np.dtype(dtype).name]
    for n in _paired_lengths(sizes):
        rng = np.random.default_rng(n)
        kinds = _row_kinds(n, dtype, rng)
        masks = {name: rng.random(n) < 0.7 for name in kinds}
        masks["logits"][:] = False  # a fully masked row among them
        names = list(kinds)
        pairs = list(itertools.product(names, repeat=2))
        # Two rows per case, walked as one pair on one thread (rows 2c and 2c + 1).
        x = np.stack([np.stack([kinds[a], kinds[b]]) for a, b in pairs])
        where = np.stack([np.stack([masks[a], masks[b]]) for a, b in pairs])
        for temperature in (1.0, 0.7):
            for op_name, op in _ops(temperature).items():
                kw = {"where": where} if masked else {}
                with fs.num_threads(1):
                    results = {"walked together": op(x, **kw)}
                    if op_name != "logsumexp":  # and streamed, one element off alignment
                        with streaming_every_call():
                            dtype_out = results["walked together"].dtype
                            results["streamed"] = op(x, out=out_at(x.shape, dtype_out,
                                                                   dtype_out.itemsize), **kw)
                for case, (a, b) in enumerate(pairs):
                    for row in range(2):
                        kw = {"where": where[case, row:row + 1]} if masked else {}
                        alone = op(x[case, row:row + 1], **kw)
                        for how, together in results.items():
                            got = together[case, row:row + 1]
                            assert got.dtype == alone.dtype
                            assert (_bits(got) == _bits(alone)).all(), (
                                f"{op_name} n={n} T={temperature} {how}: row {row} of the pair "
                                f"({a}, {b}) differs from the row alone")


@pytest.mark.parametrize("extra_rows", [0, 1, 2, 3])
def test_every_thread_split_of_paired_rows_gives_one_result(isa, extra_rows):
    """Threads cut the rows anywhere, so a row meets different partners, or none."""
    sizes = _core.kernel_info()[isa]["float32"]
    for n in (sizes["short_row"] + 7, sizes["short_softmax_row"] + 7):
        # enough elements for the call to be split across threads at all
        rows = PARALLEL_MIN_ELEMENTS // n + 1 + extra_rows
        x = (np.random.default_rng(extra_rows).standard_normal((rows, n)) * 3).astype(np.float32)
        for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
            with fs.num_threads(1):
                one = op(x)
            for threads in (2, 3, 4):
                with fs.num_threads(threads):
                    assert (_bits(op(x)) == _bits(one)).all(), (op.__name__, n, threads)


def _pipelined_lengths(sizes, op):
    """Row lengths that are pipelined, at each boundary of the sum's loops, at the
    longest streamed row kept in a scratch row, at the longest log_softmax row pipelined two
    rows deep, past one chunk (pipelined a chunk at a time), and the ones on either side: the
    last paired one below ``pipelined_from`` (log_softmax's ``log_pipelined_from``) and the
    first one past ``pipelined_to``
    (neither pipelined: the same results either way)."""
    lanes, chunk, scratch = sizes["lanes"], sizes["chunk"], sizes["stream_scratch"]
    last = sizes["pipelined_to"]
    block = sizes["unroll"] * sizes["flush_steps"] * lanes
    flush = sizes["flush_steps"] * lanes  # the vector tail flushes its block here
    # at most one block: below it, the vector loop alone
    first = sizes["log_pipelined_from" if op is fs.log_softmax else "pipelined_from"]
    deep = sizes["pipelined_deep_to"]
    candidates = {first - 1, first, first + 1, first + flush + 1, block - 1,
                  block, block + 1, block + lanes - 1, block + lanes, block + flush - 1,
                  block + flush, block + flush + 1, 2 * block - 1, 2 * block + 1,
                  scratch - 1, scratch, scratch + 1, deep - 1, deep, deep + 1,
                  chunk - 1, chunk, chunk + 1,
                  chunk + lanes + 1, 2 * chunk + block + 1, last, last + 1}
    return sorted(candidates)


@contextlib.contextmanager
def _not_in_cache():
    """Calls as if too large for the caches (no FS_IN_CACHE): rows past one chunk are then
    pipelined only when streamed."""
    saved = _core.in_cache_max_bytes()
    _core.set_in_cache_max_bytes(0)
    try:
        yield
    finally:
        _core.set_in_cache_max_bytes(saved)


def _neighbour_sequence(names, n):
    """Every ordered pair of kinds as neighbours for short rows; for long ones (to keep
    the test quick) each kind between two others, and twice in a row."""
    if n <= 4096:
        return [name for pair in itertools.product(names, repeat=2) for name in pair]
    return names + names[::-1] + names[::2]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", [fs.softmax, fs.log_softmax], ids=lambda f: f.__name__)
def test_a_row_gets_the_same_bits_pipelined_or_alone(isa, dtype, op):
    sizes = _core.kernel_info()[isa][np.dtype(dtype).name]
    for n in _pipelined_lengths(sizes, op):
        rng = np.random.default_rng(n)
        kinds = _row_kinds(n, dtype, rng)
        kinds["zero_max"] = np.minimum(kinds["logits"], 0).astype(dtype)
        kinds["zero_max"][:2] = [0.0, -0.0]  # a zero max of either sign
        for name, at in (("max_first", 0), ("max_last", n - 1)):  # the ends of the max's loop
            kinds[name] = kinds["logits"].copy()
            kinds[name][at] = kinds["logits"].max() + 4
        sequence = _neighbour_sequence(list(kinds), n)
        x = np.stack([kinds[name] for name in sequence])
        for temperature in (1.0, 0.7):
            alone = np.concatenate([op(x[r:r + 1], temperature=temperature)
                                    for r in range(len(x))])
            with fs.num_threads(1):
                together = op(x, temperature=temperature)
                in_place = x.astype(alone.dtype)  # float16 gives float32 results
                op(in_place, temperature=temperature, out=in_place)
                unaligned = np.empty(x.size + 1, alone.dtype)[1:].reshape(x.shape)
                op(x, temperature=temperature, out=unaligned)
                # a mask that keeps everything: the rows one at a time, as masked rows go
                masked = op(x, temperature=temperature, where=np.ones(x.shape, bool))
            with fs.num_threads(1), _not_in_cache():
                uncached = op(x, temperature=temperature)
            results = [("together", together), ("in place", in_place),
                       ("unaligned out", unaligned), ("where all", masked),
                       ("as if not cached", uncached)]
            # streamed through scratch rows: out aligned, and its vectors a few elements in
            with fs.num_threads(1), streaming_every_call():
                for offset in (0, 1, 3):
                    streamed = out_at(x.shape, alone.dtype, offset * alone.itemsize)
                    op(x, temperature=temperature, out=streamed)
                    results.append((f"streamed out at +{offset}", streamed))
            for name, got in results:
                same = (_bits(got) == _bits(alone)).all(axis=1)
                differ = [(r, sequence[r - 1] if r else None, sequence[r])
                          for r in np.flatnonzero(~same)[:5]]
                assert same.all(), (f"{op.__name__} n={n} T={temperature} {name}: rows "
                                    f"(index, previous kind, kind) {differ} differ from the "
                                    "rows alone")


@pytest.mark.parametrize("length", ["one_block", "past_deep", "chunks"])
def test_every_thread_split_of_pipelined_rows_gives_one_result(isa, length):
    """Each thread's block of rows starts its pipeline afresh, on any row, two rows
    deep for log_softmax rows up to pipelined_deep_to and one row deep past it; rows of
    several chunks give the bits of the long-row driver, which splits a few rows
    across threads."""
    sizes = _core.kernel_info()[isa]["float32"]
    block = sizes["unroll"] * sizes["flush_steps"] * sizes["lanes"]
    n = {"one_block": block + 3, "past_deep": sizes["pipelined_deep_to"] + 3,
         "chunks": 2 * sizes["chunk"] + block + 3}[length]
    rows = PARALLEL_MIN_ELEMENTS // n + 5
    x = (np.random.default_rng(7).standard_normal((rows, n)) * 3).astype(np.float32)
    x[::5, 3] = np.nan
    for op in (fs.softmax, fs.log_softmax):
        with fs.num_threads(1):
            one = op(x)
        for threads in (2, 3, 4):
            with fs.num_threads(threads):
                assert (_bits(op(x)) == _bits(one)).all(), (op.__name__, threads)
                with streaming_every_call():
                    streamed = op(x, out=out_at(x.shape, x.dtype, 4))
                assert (_bits(streamed) == _bits(one)).all(), (op.__name__, threads, "streamed")
