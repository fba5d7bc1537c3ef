"""sample: against reference.sample (full sorts in float64), Hugging Face's processors, and
the distribution it draws from.

The kernel (src/fs_sample_tmpl.h) takes one of three paths per row: top-k by the heap
(plus the k-th value's ties), top-p/min-p by a threshold list, or the unfiltered draw by
blocks of FS_SAMPLE_BLOCK (1024) weights.  The vocabularies tested sit on either side of
a vector, of the four-vector compare step, and of one and two blocks, for every ISA.
"""
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _reference_sample, reference
from conftest import ISAS, random_logits

BLOCK = 1024  # FS_SAMPLE_BLOCK
_LANES = {_core.kernel_info()[isa][dt]["lanes"] for isa in ISAS for dt in ("float32", "float64")}
BOUNDARY_VOCABS = sorted({1, 2, 3, 17, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 1}
                         | {n + d for lanes in _LANES for n in (lanes, 4 * lanes)
                            for d in (-1, 0, 1)} - {0})

CONFIGS = {
    "temperature": dict(temperature=0.7),
    "greedy": dict(temperature=0),
    "top_k": dict(top_k=50),
    "top_p": dict(top_p=0.9),
    "tiny_p": dict(top_p=1e-9),
    "min_p": dict(min_p=0.05),
    "min_p_one": dict(min_p=1.0),
    "k_beyond_v": dict(top_k=10**30),
    "hf_chain": dict(temperature=0.7, top_k=50, top_p=0.9),
    "everything": dict(temperature=1.3, top_k=200, top_p=0.8, min_p=0.02, min_tokens_to_keep=3),
    "keep_many": dict(top_p=0.1, min_p=0.5, min_tokens_to_keep=20),
    "top_p_and_min_p": dict(top_p=0.95, min_p=0.01),
    "hot": dict(temperature=50.0, top_p=0.5),
    "p_one": dict(temperature=0.9, top_p=1.0, min_p=0.0, top_k=0),
}


def assert_same(got, expected):
    np.testing.assert_array_equal(got.tokens, expected.tokens)
    np.testing.assert_array_equal(got.n_kept, expected.n_kept)
    assert np.asarray(got.logprob).dtype == np.float32
    np.testing.assert_allclose(got.logprob, expected.logprob, rtol=2e-6, atol=2e-6)
    if expected.top_tokens is None:
        assert got.top_tokens is None and got.top_logprobs is None
    else:
        np.testing.assert_array_equal(got.top_tokens, expected.top_tokens)
        np.testing.assert_allclose(got.top_logprobs, expected.top_logprobs, rtol=2e-6, atol=2e-6)


def both(x, **kwargs):
    """fs.sample and reference.sample on the same arguments."""
    return fs.sample(x, **kwargs), reference.sample(x, **kwargs)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("vocab", [1, 2, 17, 32000, 50257, 128256, 256000])
def test_against_reference(vocab, config):
    rows = {50257: 4, 128256: 1, 256000: 1}.get(vocab, 64)
    x = random_logits((rows, vocab), np.float32, seed=vocab)
    before = x.copy()
    u = np.random.default_rng(vocab).random(rows)
    assert_same(*both(x, u=u, logprobs=min(vocab, 5), **CONFIGS[config]))
    assert x.tobytes() == before.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_isa_at_the_block_boundaries(isa, dtype):
    for vocab in BOUNDARY_VOCABS:
        x = random_logits((6, vocab), dtype, seed=vocab)
        x[1] = np.round(x[1])  # ties
        x[2, 1::3] = -np.inf   # masked tokens
        x[3] = np.arange(vocab)[::-1] * 0.01  # falling: the max first
        u = np.array([0.0, 0.3, 0.5, 0.7, 0.999, 1 - 2**-53])
        for config in CONFIGS.values():
            assert_same(*both(x, u=u, logprobs=min(vocab, 3), n_threads=1, **config))


@pytest.mark.parametrize("config", ["temperature", "top_p", "min_p", "everything", "keep_many"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kept_token_is_drawn_at_its_share(config, dtype):
    """The kept set, probed: the midpoint of each kept token's share of the CDF draws it."""
    for vocab in (40, 700, 2 * BLOCK + 5):
        row = random_logits(vocab, dtype, seed=vocab, scale=1.0)
        row[5:9] = row[4]  # a run of ties
        kwargs = CONFIGS[config]
        kept = reference.sample_kept(row, **kwargs)
        tau = 1 / kwargs.get("temperature", 1.0)
        ids = np.flatnonzero(kept)
        w = np.exp((row[ids].astype(np.float64) - row.max()) * tau)
        cdf = np.cumsum(w) / w.sum()
        mid = (cdf - w / w.sum() / 2)
        got = fs.sample(np.tile(row, (ids.size, 1)), u=mid, **kwargs)
        np.testing.assert_array_equal(got.tokens, ids)
        assert (got.n_kept == ids.size).all()


# Confident rows: k maxima of 0 (in different blocks of the longer rows), every other entry
# `gap` to gap + 3 below.  The max's log-probability is then -log1p(rest), the rest about
# V e^-gap: log(1 + rest) holds it to 1e-16 absolutely only, which is more than 1e-6 of it
# from gap 30 on, and all of it past gap 37.  Filters keep some of the tail (top_k, min_p)
# or just the maxima (top_p), whose log-probability is then -log(k).
CONFIDENT_GAPS = (20, 30, 40, 60, 100)
CONFIDENT_CONFIGS = {
    "unfiltered": lambda gap: {},
    "temperature": lambda gap: dict(temperature=0.5),
    "top_k": lambda gap: dict(top_k=4),
    "top_k_in_ties": lambda gap: dict(top_k=2),  # 3 maxima: the k-th's ties, all of them
    "top_p": lambda gap: dict(top_p=0.9),
    "min_p": lambda gap: dict(min_p=math.exp(-gap - 1.5)),  # keeps gap and gap + 1
    "chain": lambda gap: dict(temperature=0.5, top_k=6, min_p=math.exp(-2 * gap - 1)),
    "greedy": lambda gap: dict(temperature=0),
}
# Each row three times, for these draws: a tail entry of id 0 (or a max there), the max,
# the last kept id.
CONFIDENT_U = np.array([0.0, 0.5, 1 - 2**-53])


def _confident_rows(dtype):
    """(gap, row) for every gap, length (one block, three) and count of maxima (1 to 3)."""
    for gap in CONFIDENT_GAPS:
        for vocab, maxima in ((100, [37, 99, 0]), (3 * BLOCK - 72, [1500, 2999, 0])):
            for k in (1, 2, 3):
                row = -(gap + np.arange(vocab) % 4.0)
                row[maxima[:k]] = 0.0
                yield gap, row.astype(dtype)


def _exact_logprobs(row, tau, ids, among):
    """log p of each of `ids` under the weights exp(z) of the ids `among`, z = (x - max) tau:
    z - log1p of the others' weights, summed exactly, plus all but one of the max's terms."""
    z = (np.asarray(row, np.float64) - float(np.max(row))) * tau
    top = z[among] == 0
    return z[ids] - math.log1p(math.fsum(np.exp(z[among][~top])) + (np.count_nonzero(top) - 1))


def _assert_confident(got, row, tau, among, what):
    """got.logprob (of each row's token) and got.top_logprobs (of the whole row at tau, or 1
    if greedy) within the float32 bound of the exact values, relatively: 1e-6, or 2^-149
    (float32's smallest subnormal) for values that float32 holds only as subnormals or 0."""
    for r in range(len(CONFIDENT_U)):
        token = int(got.tokens[r])
        exact = 0.0 if tau == 0 else _exact_logprobs(row, tau, [token], among)[0]
        np.testing.assert_allclose(got.logprob[r], exact, rtol=1e-6, atol=2.0**-149,
                                   err_msg=f"logprob of {token}, {what}")
        top = got.top_tokens[r]
        exact_top = _exact_logprobs(row, tau or 1.0, top, np.arange(row.size))
        np.testing.assert_allclose(got.top_logprobs[r], exact_top, rtol=1e-6, atol=2.0**-149,
                                   err_msg=f"top_logprobs of {top}, {what}")


@pytest.mark.parametrize("config", CONFIDENT_CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_confident_logprobs_to_the_relative_bound(isa, dtype, config):
    """logprob and top_logprobs as z - log1p(rest), the max's own terms (each exactly 1)
    left out of the rest: relatively within float32's bound however small, on every ISA."""
    for gap, row in _confident_rows(dtype):
        kwargs = CONFIDENT_CONFIGS[config](gap)
        tau = 0.0 if config == "greedy" else 1 / kwargs.get("temperature", 1.0)
        kept = np.flatnonzero(reference.sample_kept(row, **kwargs))
        got = fs.sample(np.tile(row, (len(CONFIDENT_U), 1)), u=CONFIDENT_U, logprobs=4,
                        n_threads=1, **kwargs)
        assert (got.n_kept == kept.size).all()  # the filters as before
        _assert_confident(got, row, tau, kept, f"gap {gap}, {row.size} entries, {dtype.__name__}")


@pytest.mark.parametrize("config", CONFIDENT_CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_confident_logprobs_of_the_reference(dtype, config):
    """The oracle's too: its float32 results as fs.sample's, and its float64 log-probabilities
    (_logprobs, before that rounding) within float64's bound, 1e-13."""
    for gap, row in _confident_rows(dtype):
        kwargs = CONFIDENT_CONFIGS[config](gap)
        tau = 0.0 if config == "greedy" else 1 / kwargs.get("temperature", 1.0)
        kept = np.flatnonzero(reference.sample_kept(row, **kwargs))
        what = f"gap {gap}, {row.size} entries, {dtype.__name__}"
        got = reference.sample(np.tile(row, (len(CONFIDENT_U), 1)), u=CONFIDENT_U, logprobs=4,
                               **kwargs)
        _assert_confident(got, row, tau, kept, what)
        row64 = row.astype(np.float64)
        everything = np.arange(row.size)
        for among, tokens, t in ((everything, got.top_tokens[0], tau or 1.0),
                                 (kept, got.tokens, tau)):
            if t == 0:
                continue  # greedy: no draw's logprob
            np.testing.assert_allclose(_reference_sample._logprobs(row64, t, tokens, among),
                                       _exact_logprobs(row, t, tokens, among), rtol=1e-13,
                                       atol=0, err_msg=what)


def test_confident_logprob_of_the_audit(isa):
    """The audit's rows: [0, -30 x 99] in float32, whose logprob was up to 5e-4 off
    relatively (and different on each ISA), and [0, -40 x 99] in float64, 0 or -2.2e-16."""
    for gap, dtype in ((30.0, np.float32), (40.0, np.float64)):
        x = np.array([0.0] + [-gap] * 99, dtype)
        exact = -math.log1p(99 * math.exp(-gap))  # -9.264047e-12 and -4.2058707e-16
        for got in (fs.sample(x, u=0.0, logprobs=1), reference.sample(x, u=0.0, logprobs=1)):
            assert got.tokens == 0
            np.testing.assert_allclose([got.logprob, got.top_logprobs[0]], exact, rtol=1e-6,
                                       atol=0)


def test_ties_are_broken_by_id():
    x = np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.0])
    # top-k keeps every tie of the k-th value
    assert fs.sample(x, top_k=2, u=0.0).n_kept == 3
    np.testing.assert_array_equal(reference.sample_kept(x, top_k=1), [0, 1, 0, 1, 1, 0])
    # at the top-p cut within the ties, the lower ids are kept
    np.testing.assert_array_equal(reference.sample_kept(x, top_p=0.5), [0, 1, 0, 1, 0, 0])
    for u in np.linspace(0, 0.999, 13):
        assert fs.sample(x, top_p=0.5, u=u).tokens in (1, 3)
    np.testing.assert_array_equal(reference.sample_kept(x, top_p=1e-9, min_tokens_to_keep=2),
                                  [0, 1, 0, 1, 0, 0])
    # greedy: the lowest id of the maxima
    assert fs.sample(x, temperature=0).tokens == 1


def test_greedy_is_argmax():
    x = random_logits((64, 5000), np.float32, seed=1)
    x[:8, 100] = x[:8, 200] = x[:8].max(axis=1) + 1  # tied maxima
    x[8:16, ::2] = -np.inf
    r = fs.sample(x, temperature=0)
    np.testing.assert_array_equal(r.tokens, np.argmax(x, axis=1))
    assert (r.logprob == 0).all() and (r.n_kept == 1).all() and r.tokens.dtype == np.int64
    # mixed rows: greedy ones take the argmax, whatever their u
    t = np.where(np.arange(64) % 2 == 0, 0.0, 0.8)
    r = fs.sample(x, temperature=t, top_k=5, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(r.tokens[::2], np.argmax(x[::2], axis=1))
    assert_same(r, reference.sample(x, temperature=t, top_k=5, rng=np.random.default_rng(2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalties(dtype):
    x = np.array([[2.0, -2.0, 1.0, 0.5], [0.0, 1.0, 2.0, 3.0]], dtype)
    prev = [np.array([0, 1, 1]), np.array([3, 3, 3, 3, 0])]
    kwargs = dict(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25,
                  prev_tokens=prev, temperature=0, logprobs=4)
    r = fs.sample(x, **kwargs)
    # row 0: 2/2 - (0.25 + 0.5), -2*2 - (0.5 + 0.5), untouched 1.0, 0.5
    # row 1: 0/2 - (0.25 + 0.5), 1, 2, 3/2 - (1.0 + 0.5)
    penalised = np.array([[0.25, -5.0, 1.0, 0.5], [-0.75, 1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(r.tokens, [2, 2])
    lp = penalised - np.log(np.exp(penalised).sum(axis=1, keepdims=True))
    order = np.argsort(-penalised, axis=1, kind="stable")
    np.testing.assert_array_equal(r.top_tokens, order)
    np.testing.assert_allclose(r.top_logprobs, np.take_along_axis(lp, order, 1), rtol=1e-6)
    assert_same(r, reference.sample(x, **kwargs))
    assert (x[0] == [2.0, -2.0, 1.0, 0.5]).all()  # never modified


def test_penalties_against_reference_many_rows():
    rng = np.random.default_rng(7)
    x = random_logits((32, 3000), np.float32, seed=7)
    prev = rng.integers(0, 3000, (32, 400))
    prev[:, 200:] = prev[:, :200]  # every token at least twice
    kwargs = dict(repetition_penalty=rng.uniform(0.5, 2, 32), presence_penalty=0.3,
                  frequency_penalty=rng.uniform(0, 1, 32), prev_tokens=prev,
                  temperature=0.9, top_k=40, top_p=0.95, u=rng.random(32), logprobs=4)
    assert_same(*both(x, **kwargs))
    ragged = [row[: 10 * i] for i, row in enumerate(prev)]  # a list of B sequences, any lengths
    assert_same(*both(x, **{**kwargs, "prev_tokens": ragged}))
    # neutral penalties change nothing
    plain = fs.sample(x, temperature=0.9, top_k=40, u=kwargs["u"])
    assert_same(fs.sample(x, temperature=0.9, top_k=40, u=kwargs["u"], prev_tokens=prev), plain)


def test_per_row_parameters():
    rows = 12
    x = random_logits((rows, 2000), np.float64, seed=3)
    rng = np.random.default_rng(3)
    kwargs = dict(temperature=rng.uniform(0.2, 2, rows), top_k=rng.integers(0, 100, rows),
                  top_p=rng.uniform(0.05, 1, rows), min_p=rng.uniform(0, 0.3, rows),
                  min_tokens_to_keep=rng.integers(1, 5, rows), u=rng.random(rows))
    assert_same(*both(x, logprobs=2, **kwargs))
    # each row as if sampled alone
    one = fs.sample(x[5], **{k: v[5] for k, v in kwargs.items()})
    batch = fs.sample(x, **kwargs)
    assert one.tokens == batch.tokens[5] and one.n_kept == batch.n_kept[5]


@pytest.mark.parametrize("sequence", [list, tuple])
def test_counts_beyond_int64_in_a_sequence_clip_as_a_scalar_does(sequence):
    """A count past int64 in a list means what the same scalar means (every such top_k
    keeps the whole row, every such min_tokens_to_keep keeps it too), not an object-array
    TypeError."""
    x = random_logits((3, 500), np.float32, seed=8)
    u = np.array([0.2, 0.5, 0.9])
    huge = [10**30, 2**63, 2**64 + 5]
    got = fs.sample(x, u=u, logprobs=2, top_k=sequence([7, huge[0], huge[1]]),
                    min_tokens_to_keep=sequence([huge[2], 1, 3]), top_p=0.5)
    want = fs.sample(x, u=u, logprobs=2, top_k=np.array([7, 500, 500]),
                     min_tokens_to_keep=np.array([500, 1, 3]), top_p=0.5)
    assert_same(got, want)
    assert_same(got, reference.sample(x, u=u, logprobs=2, top_k=sequence([7, huge[0], huge[1]]),
                                      min_tokens_to_keep=sequence([huge[2], 1, 3]), top_p=0.5))


@pytest.mark.parametrize("config", ["hf_chain", "top_p", "temperature", "min_p"])
def test_thread_count_never_changes_a_token(config):
    x = random_logits((9, 70000), np.float32, seed=5)
    u = np.random.default_rng(5).random(9)
    first = fs.sample(x, u=u, logprobs=3, n_threads=1, **CONFIGS[config])
    for threads in (2, 3, 4):
        assert_same(fs.sample(x, u=u, logprobs=3, n_threads=threads, **CONFIGS[config]), first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fewer_rows_than_threads(isa, dtype):
    """Rows of two chunks or more, fewer than the threads (where the other ops split a row):
    each row is still one thread's, with the same bits at every thread count, and the
    oracle's tokens."""
    from conftest import CHUNK

    for vocab in (2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * CHUNK + 17):
        x = random_logits((2, vocab), dtype, seed=vocab)
        x[1, ::5] = -np.inf
        x[1, CHUNK + 3] = x[1].max() + 1  # the max in the second chunk
        u = np.array([0.3, 0.8])
        for config in CONFIGS.values():
            first = fs.sample(x, u=u, logprobs=3, n_threads=1, **config)
            assert_same(first, reference.sample(x, u=u, logprobs=3, **config))
            for threads in (2, 3, 4):
                got = fs.sample(x, u=u, logprobs=3, n_threads=threads, **config)
                assert_same(got, first)
                assert got.logprob.tobytes() == first.logprob.tobytes()
        greedy = fs.sample(x, temperature=0, n_threads=3)
        np.testing.assert_array_equal(greedy.tokens, np.argmax(x, axis=1))


def test_rng_draws_exactly_one_uniform_per_row():
    x = random_logits((5, 300), np.float32)
    rng = np.random.default_rng(11)
    a = fs.sample(x, top_p=0.9, rng=rng)
    after = rng.random()
    replay = np.random.default_rng(11)
    b = fs.sample(x, top_p=0.9, u=replay.random(5))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert replay.random() == after
    # greedy rows draw too, so the stream does not depend on the temperatures
    rng = np.random.default_rng(11)
    fs.sample(x, temperature=0, rng=rng)
    assert rng.random() == after


def test_distribution_chi_square():
    """200k draws from one row with every filter on, against the exact filtered probabilities."""
    scipy_stats = pytest.importorskip("scipy.stats")
    row = np.array([2.0, 1.5, 1.4, 0.3, 0.2, 0.0, -0.5, -1.0, -3.0, -6.0, 1.0, 0.9], np.float32)
    kwargs = dict(temperature=0.8, top_k=9, top_p=0.97, min_p=0.01)
    draws = 200_000
    r = fs.sample(np.broadcast_to(row, (draws, row.size)), rng=np.random.default_rng(2024),
                  **kwargs)
    kept = reference.sample_kept(row, **kwargs)
    assert 3 <= kept.sum() < row.size
    counts = np.bincount(r.tokens, minlength=row.size)
    assert counts[~kept].sum() == 0  # no draw outside the kept set
    w = np.exp((row[kept].astype(np.float64) - row.max()) / 0.8)
    expected = draws * w / w.sum()
    stat = ((counts[kept] - expected) ** 2 / expected).sum()
    assert scipy_stats.chi2.sf(stat, kept.sum() - 1) > 1e-3
    assert (r.n_kept == kept.sum()).all()


def test_one_finite_token_is_always_drawn():
    x = np.full((4, 1000), -np.inf, np.float32)
    x[np.arange(4), [0, 999, 500, 3]] = [1.0, -1e30, 0.0, 3e38]
    r = fs.sample(x, rng=np.random.default_rng(0), top_p=0.5, top_k=3)
    np.testing.assert_array_equal(r.tokens, [0, 999, 500, 3])
    assert (r.n_kept == 1).all() and (r.logprob == 0).all()
    for config in CONFIGS.values():
        assert_same(*both(x, u=[0.0, 0.5, 0.9, 1 - 2**-53], logprobs=2, **config))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_rows_name_the_row(dtype):
    x = random_logits((3, 100), dtype)
    for value, message in [(np.nan, "row 1 contains NaN"), (np.inf, r"row 1 contains \+inf")]:
        bad = x.copy()
        bad[1, 37] = value
        for config in ({"temperature": 0}, {"top_k": 5}, {"top_p": 0.5}, {}, {"min_p": 0.1}):
            with pytest.raises(ValueError, match=message):
                fs.sample(bad, u=0.5, **config)
            with pytest.raises(ValueError, match=message):
                reference.sample(bad, u=0.5, **config)
    bad = x.copy()
    bad[2] = -np.inf
    with pytest.raises(ValueError, match="row 2 has no finite logit"):
        fs.sample(bad, u=0.5, top_k=3)
    with pytest.raises(ValueError, match="logits contains NaN"):
        fs.sample(np.array([0.0, np.nan]), temperature=0)
    # a penalty that overflows the dtype: +inf after the penalties
    with pytest.raises(ValueError, match=r"row 0 contains \+inf"):
        fs.sample(np.float32([[1.0, 2.0]]), u=0.1, prev_tokens=[[0]], presence_penalty=-1e39)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(top_k=-1), ValueError, r"top_k=-1 is out of range"),
    (dict(top_k=1.5), TypeError, "top_k must be an int"),
    (dict(top_k=True), TypeError, "top_k must be an int"),
    (dict(top_p=0.0), ValueError, r"top_p=0.0 is out of range: must be in \(0, 1\]"),
    (dict(top_p=1.5), ValueError, "top_p=1.5 is out of range"),
    (dict(top_p=float("nan")), ValueError, "top_p=nan is out of range"),
    (dict(min_p=-0.1), ValueError, "min_p=-0.1 is out of range"),
    (dict(temperature=-1.0), ValueError, "temperature=-1.0 is out of range"),
    (dict(temperature=float("inf")), ValueError, "temperature=inf is out of range"),
    (dict(temperature=1e-320), ValueError, "1/temperature overflows"),
    (dict(temperature="hot"), TypeError, "temperature must be a real number"),
    (dict(repetition_penalty=0.0), ValueError, "repetition_penalty=0.0 is out of range"),
    (dict(presence_penalty=float("inf")), ValueError, "presence_penalty=inf is out of range"),
    (dict(min_tokens_to_keep=0), ValueError, "min_tokens_to_keep=0 is out of range"),
    (dict(u=1.0), ValueError, r"u\[0\]=1.0 is out of range|u=1.0 is out of range"),
    (dict(u=[0.1, -0.2, 0.3]), ValueError, r"u\[1\]=-0.2 is out of range"),
    (dict(u=[0.1, 0.2]), ValueError, r"u must be a scalar or have one entry per row, shape \(3,\)"),
    (dict(top_p=[0.5, 0.9]), ValueError, "top_p must be a scalar or have one entry per row"),
    (dict(top_k=np.array([1.0, 2.0, 3.0])), TypeError, "top_k must be an int or an array"),
    (dict(top_p=[0.5, 1.5, 0.9]), ValueError, r"top_p\[1\]=1.5 is out of range"),
    (dict(u=0.5, rng=np.random.default_rng()), ValueError, "give rng or u, not both"),
    (dict(rng=np.random.RandomState(0)), TypeError, "rng must be a numpy.random.Generator"),
    (dict(u=None), ValueError, "needs randomness: pass rng= .* or u="),
    (dict(prev_tokens=[[0], [1], [100]]), ValueError, r"prev_tokens\[2\]\[0\]=100 is out of range"),
    (dict(prev_tokens=[[0], [-1], [1]]), ValueError, r"prev_tokens\[1\]\[0\]=-1 is out of range"),
    (dict(prev_tokens=[[0], [1]]), ValueError, "one sequence of ids per row: 3, got 2"),
    (dict(prev_tokens=np.zeros((3, 2))), TypeError, "prev_tokens must hold integer token ids"),
    (dict(prev_tokens=np.zeros((2, 2), int)), ValueError, r"prev_tokens must be shape \(3, L\)"),
    (dict(logprobs=101), ValueError, r"logprobs=101 is out of range: must be in \[0, 100\]"),
    (dict(logprobs=-1), ValueError, "logprobs=-1 is out of range"),
    (dict(logprobs=2.0), TypeError, "logprobs must be an int"),
    (dict(n_threads=0), ValueError, "n_threads must be nonzero"),
    # absurd ints where a float is expected: a ValueError naming the argument, never an
    # OverflowError from float() (plain ints took a shortcut that skipped the check)
    *[(dict([(name, sign * 10**400)]), ValueError, f"{name} is too large for a float")
      for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                   "frequency_penalty", "u") for sign in (1, -1)],
    # the value given, not the one clipped to +-2**62 for the range check
    (dict(top_k=-2**63), ValueError, r"top_k=-9223372036854775808 is out of range"),
    (dict(min_tokens_to_keep=-10**30), ValueError,
     "min_tokens_to_keep=a negative int of 100 bits is out of range"),
    (dict(top_k=[1, -10**30, 2]), ValueError, r"top_k\[1\]=a negative int of 100 bits is out of range"),
    (dict(min_tokens_to_keep=(1, 2, -2**63)), ValueError,
     r"min_tokens_to_keep\[2\]=-9223372036854775808 is out of range"),
    (dict(top_k=[1, 2**70, 2.0]), TypeError, "top_k must be an int or an array of them"),
])
def test_bad_arguments_raise_before_any_work(kwargs, error, match):
    x = random_logits((3, 100), np.float32)
    before = x.copy()
    if "u" not in kwargs and "rng" not in kwargs:
        kwargs = {"u": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        fs.sample(x, **kwargs)
    assert x.tobytes() == before.tobytes()


@pytest.mark.parametrize("kwargs", [
    dict(prev_tokens=[[7], [0], [1]], repetition_penalty=1.2),   # a bad token id
    dict(prev_tokens=[[0], [1]], repetition_penalty=1.2),        # a row short
    dict(n_threads=0), dict(n_threads=1.5), dict(n_threads="2"),
    dict(logprobs=-1), dict(top_p=2.0),
])
def test_a_rejected_call_draws_nothing_from_rng(kwargs):
    """"The call draws exactly rng.random(B)", and only once every argument is checked: a
    caller who catches the error and retries gets the draw it would have had."""
    x = random_logits((3, 5), np.float32)
    rng = np.random.default_rng(1)
    with pytest.raises((TypeError, ValueError)):
        fs.sample(x, rng=rng, **kwargs)
    assert rng.random() == np.random.default_rng(1).random()


def _bad_row(kind):
    """Logits of 4 rows whose row 2 the kernel refuses, and the call's extra arguments."""
    x = random_logits((4, 300), np.float64, seed=4)
    extra = {}
    if kind == "nan":
        x[2, 17] = np.nan
    elif kind == "+inf":
        x[2, 5] = np.inf
    elif kind == "all -inf":
        x[2] = -np.inf
    else:  # made +inf by a penalty
        x[2, 9] = 1e308
        extra = dict(prev_tokens=[[], [], [9, 9], []], presence_penalty=-1e308,
                     frequency_penalty=-1e308)
    return x, extra


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("kind", ["nan", "+inf", "all -inf", "penalised"])
def test_a_row_the_kernel_refuses_draws_nothing_from_rng(kind, threads):
    """The kernel finds a bad row after the draw: the generator is put back, so a caller who
    mends the row and calls again gets what a first clean call would have."""
    x, extra = _bad_row(kind)
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError, match="logits row 2"):
        fs.sample(x, rng=rng, top_p=0.9, n_threads=threads, **extra)
    x[2] = x[1]  # mended (and the penalty that made a row +inf dropped)
    got = fs.sample(x, rng=rng, top_p=0.9, n_threads=threads)
    want = fs.sample(x, rng=np.random.default_rng(11), top_p=0.9, n_threads=threads)
    assert_same(got, want)
    assert rng.random() == _after_one_draw(11, 4).random()


def _after_one_draw(seed, rows):
    rng = np.random.default_rng(seed)
    rng.random(rows)
    return rng


def test_ragged_prev_tokens_of_one_row_name_the_argument():
    with pytest.raises(ValueError, match="prev_tokens must be a sequence of ids for one row"):
        fs.sample(np.float32([0.0, 1.0, 2.0]), u=0.5, prev_tokens=[[0, 1], [1]],
                  repetition_penalty=1.2)


def test_bad_logits():
    with pytest.raises(ValueError, match=r"1-D \(V,\) or 2-D \(B, V\)"):
        fs.sample(np.zeros((2, 2, 2)), u=0.5)
    with pytest.raises(ValueError, match=r"1-D \(V,\) or 2-D \(B, V\)"):
        fs.sample(np.float32(1.0), u=0.5)
    with pytest.raises(ValueError, match="at least one token"):
        fs.sample(np.zeros((2, 0)), u=[0.5, 0.5])
    with pytest.raises(TypeError):
        fs.sample(np.zeros(3, complex), u=0.5)


def test_scalars_of_every_kind():
    """Python numbers, NumPy scalars and 0-d arrays are one value for every row."""
    x = random_logits((3, 200), np.float32, seed=4)
    expected = fs.sample(x, temperature=0.5, top_k=20, top_p=0.9, u=0.25)
    for t, k, p, u in [(np.float32(0.5), np.int32(20), np.float64(0.9), np.float16(0.25)),
                       (np.array(0.5), np.array(20), np.array(0.9), np.array(0.25))]:
        assert_same(fs.sample(x, temperature=t, top_k=k, top_p=p, u=u), expected)
    with pytest.raises(TypeError, match="top_k must be an int"):
        fs.sample(x, top_k=np.array(2.0), u=0.25)
    with pytest.raises(TypeError, match="temperature must be a real number"):
        fs.sample(x, temperature=np.array(True), u=0.25)


def test_shapes_dtypes_and_empty_batches():
    r = fs.sample(np.zeros((0, 10), np.float32), u=np.zeros(0), logprobs=2)
    assert r.tokens.shape == (0,) and r.top_tokens.shape == (0, 2)
    r = fs.sample(np.arange(5), temperature=0, logprobs=2)  # ints: computed in float64
    assert r.tokens == 4 and r.top_tokens.tolist() == [4, 3]
    assert isinstance(r.tokens, np.int64) and isinstance(r.logprob, np.float32)
    half = random_logits((4, 300), np.float16)
    assert_same(fs.sample(half, top_p=0.8, u=[0.1, 0.5, 0.7, 0.9]),
                reference.sample(half.astype(np.float32), top_p=0.8, u=[0.1, 0.5, 0.7, 0.9]))
    wide = random_logits((4, 600), np.float64)
    assert_same(*both(wide[:, ::2], top_k=7, u=0.25))  # not contiguous: one copy
    assert_same(*both(wide.T.copy().T, top_k=7, u=0.25))
    tokens, logprob, n_kept, top_tokens, top_logprobs = fs.sample(wide, top_k=3, u=0.5)
    assert top_tokens is None and top_logprobs is None


def test_against_hugging_face():
    """Tie-free logits: the kept set is isfinite() of Hugging Face's processors, and the token
    the inverse-CDF draw on its final probabilities for the same u."""
    torch = pytest.importorskip("torch")
    lp = pytest.importorskip("transformers.generation.logits_process")
    rng = np.random.default_rng(42)
    for vocab, rows in ((1000, 16), (32000, 4)):
        x = random_logits((rows, vocab), np.float32, seed=vocab)
        prev = rng.integers(0, vocab, (rows, 30))
        u = rng.random(rows)
        for kw in ({"temperature": 0.7, "top_k": 50, "top_p": 0.9},
                   {"temperature": 1.0, "top_p": 0.8},
                   {"temperature": 0.5, "min_p": 0.05},
                   {"temperature": 1.2, "top_k": 20, "min_p": 0.1, "min_tokens_to_keep": 3},
                   {"temperature": 0.8, "top_p": 0.6, "repetition_penalty": 1.3}):
            keep = kw.get("min_tokens_to_keep", 1)
            chain = []
            if "repetition_penalty" in kw:
                chain.append(lp.RepetitionPenaltyLogitsProcessor(kw["repetition_penalty"]))
            chain.append(lp.TemperatureLogitsWarper(kw["temperature"]))
            if "top_k" in kw:
                chain.append(lp.TopKLogitsWarper(kw["top_k"], min_tokens_to_keep=keep))
            if "top_p" in kw:
                chain.append(lp.TopPLogitsWarper(kw["top_p"], min_tokens_to_keep=keep))
            if "min_p" in kw:
                chain.append(lp.MinPLogitsWarper(kw["min_p"], min_tokens_to_keep=keep))
            scores = lp.LogitsProcessorList(chain)(torch.from_numpy(prev),
                                                   torch.from_numpy(x.copy()))
            hf_kept = torch.isfinite(scores).numpy()
            ours = dict(kw, prev_tokens=prev)
            np.testing.assert_array_equal(reference.sample_kept(x, **ours), hf_kept)
            r = fs.sample(x, u=u, **ours)
            np.testing.assert_array_equal(r.n_kept, hf_kept.sum(axis=1))
            probs = torch.softmax(scores, dim=-1).double().numpy()
            cdf = np.cumsum(probs, axis=1)
            hf_tokens = (cdf <= u[:, None] * cdf[:, -1:]).sum(axis=1)
            np.testing.assert_array_equal(r.tokens, hf_tokens)


def test_greedy_shortcut_matches_the_general_path():
    """temperature=0 with every other argument at its default skips the argument resolution."""
    x = random_logits((8, 3000), np.float32, seed=8)
    x[:, 7] = x.max(axis=1)  # a tie with the max: the lower id wins
    shortcut = fs.sample(x, temperature=0)
    general = fs.sample(x, temperature=0.0, top_p=np.float64(1.0), logprobs=0)
    assert_same(shortcut, general)
    np.testing.assert_array_equal(shortcut.tokens, np.argmax(x, axis=1))
    with pytest.raises(TypeError, match="min_tokens_to_keep must be an int"):
        fs.sample(x, temperature=0, min_tokens_to_keep=True)
    with pytest.raises(ValueError, match="logits row 3 contains NaN"):
        bad = x.copy()
        bad[3, 2999] = np.nan
        fs.sample(bad, temperature=0)


def test_rows_changed_by_another_thread_meanwhile():
    """The kernel runs without the GIL: another thread may write the logits during a call.
    Every call must still return ids of the row (or raise for a NaN it saw), never crash."""
    import threading

    x = random_logits((16, 20000), np.float32, seed=12)
    stop = threading.Event()

    def scribble():
        rng = np.random.default_rng(13)
        while not stop.is_set():
            rows = rng.integers(0, 16, 64)
            cols = rng.integers(0, 20000, 64)
            x[rows, cols] = rng.choice([np.nan, np.inf, -np.inf, 50.0, -50.0, 0.0], 64)
            x[rows, cols[::-1]] = rng.standard_normal(64) * 3  # and back to finite

    writer = threading.Thread(target=scribble)
    writer.start()
    try:
        rng = np.random.default_rng(14)
        for i in range(300):
            config = list(CONFIGS.values())[i % len(CONFIGS)]
            try:
                r = fs.sample(x, rng=rng, logprobs=2, n_threads=2, **config)
            except ValueError as error:
                assert "logits row" in str(error)
                continue
            assert ((r.tokens >= 0) & (r.tokens < 20000)).all()
            assert ((r.top_tokens >= 0) & (r.top_tokens < 20000)).all()
            assert (r.n_kept <= 20000).all()
    finally:
        stop.set()
        writer.join()


@pytest.mark.parametrize("config", ["top_k", "hf_chain", "logprobs"])
def test_rows_lowered_by_another_thread_meanwhile(isa, config):
    """Whole rows lowered and raised by another thread between the passes of a call: top-k's
    bound, then its scan (whose stand-ins once came back as id 2**63 - 1, and sample then
    scanned from x + 2**63: a crash), the list of candidates, the draw.  The ids returned are
    still the row's."""
    from conftest import refilled_meanwhile

    n = 1 << 15
    x = np.ones((2, n), np.float32)
    # "logprobs": the top logprobs of an unfiltered draw, ranked by top-k's heap
    kwargs = dict(CONFIGS.get(config, {"temperature": 0.7, "logprobs": 60}))
    kwargs.setdefault("logprobs", 2)
    rng = np.random.default_rng(15)
    with refilled_meanwhile(x, (0.0, 1.0, -1.0, 1.0)):
        for _ in range(300):
            r = fs.sample(x, rng=rng, n_threads=1, **kwargs)
            assert ((r.tokens >= 0) & (r.tokens < n)).all(), r.tokens
            assert ((r.top_tokens >= 0) & (r.top_tokens < n)).all(), r.top_tokens
            assert ((r.n_kept >= 1) & (r.n_kept <= n)).all(), r.n_kept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalties_overflow_quietly(dtype):
    """The penalties are IEEE arithmetic in float64, as the reference's Python floats: no
    warning, and no FloatingPointError under np.errstate(all="raise"), whether the
    overflow is in the branch not taken (s * r for s > 0, where s / r is taken), in the one
    taken (a result past the dtype's range, then -inf), or in inf - inf (NaN, which the
    row's check reports)."""
    import warnings

    big = np.finfo(dtype).max / 4
    x = np.array([[big, 2.0, 1.0], [-big, 2.0, 1.0], [big, 2.0, 1.0]], dtype)
    cases = [dict(repetition_penalty=1e10),          # big * 1e10 dropped, big / 1e10 taken
             dict(repetition_penalty=1e300),         # -big * 1e300: -inf, taken
             dict(frequency_penalty=1e308, presence_penalty=1e308)]  # s - inf
    for kwargs in cases:
        call = dict(u=[0.5, 0.5, 0.5], prev_tokens=[[0, 0], [0], [0]], top_k=2, logprobs=2,
                    **kwargs)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            got = fs.sample(x, **call)
        assert_same(got, reference.sample(x, **call))
    # Rows the penalties make +inf (s - -inf) or NaN (inf - inf): the row's error, as the
    # reference's, and still no warning on the way there.
    for row, message in (([1.0, 2.0], r"\+inf"), ([np.inf, 2.0], "NaN")):
        x = np.array([row], dtype)
        sign = -1 if message == r"\+inf" else 1
        call = dict(u=0.5, prev_tokens=[[0, 0]], frequency_penalty=sign * 1e308)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=f"contains {message} \\(after the penalties"):
                fs.sample(x, **call)
        with pytest.raises(ValueError, match=f"contains {message} \\(after the penalties"):
            reference.sample(x, **call)


def test_per_row_arrays_changed_after_their_check(monkeypatch):
    """Every per-row array is checked and then used as one private copy: the caller's may
    change under the call (another thread) right after its check, to values the check
    refuses (min_tokens_to_keep 0 once left the kernel an empty list: a crash), and the
    call samples what was checked."""
    from fastsoftmax import _sample

    rows, vocab = 6, 300
    x = random_logits((rows, vocab), np.float32, seed=12)
    given = dict(temperature=np.full(rows, 0.8), top_k=np.full(rows, 40),
                 top_p=np.full(rows, 0.9), min_p=np.full(rows, 0.02),
                 repetition_penalty=np.full(rows, 1.3), presence_penalty=np.full(rows, 0.5),
                 frequency_penalty=np.full(rows, 0.25), min_tokens_to_keep=np.full(rows, 2),
                 u=np.linspace(0.05, 0.95, rows))
    prev = [[1, 2, 2]] * rows
    want = fs.sample(x, prev_tokens=prev, logprobs=2, **{k: v.copy() for k, v in given.items()})
    refused = dict(temperature=-1.0, top_k=-5, top_p=-1000.0, min_p=5.0,
                   repetition_penalty=0.0, presence_penalty=np.nan, frequency_penalty=np.inf,
                   min_tokens_to_keep=0, u=2.0)
    check = _core.first_outside
    checked = iter(refused)  # (the order sample checks them in)

    def check_then_change(arr, *bounds):
        row = check(arr, *bounds)
        name = next(checked)  # the caller's array just checked, as another thread might
        given[name][...] = refused[name]
        return row

    monkeypatch.setattr(_sample._core, "first_outside", check_then_change)
    got = fs.sample(x, prev_tokens=prev, logprobs=2, **given)
    assert given["min_tokens_to_keep"][0] == 0  # (the change did happen)
    assert_same(got, want)


def test_the_kernel_keeps_to_its_lists_whatever_its_parameters():
    """fs_sample_block takes each row's parameters into the ranges it relies on: the Python
    layer never hands it others, but a min_tokens_to_keep of 0 with a min_p above 1 once
    left it an empty list to draw from (a crash).  In a child process: a crash fails."""
    script = textwrap.dedent("""
        import numpy as np
        from fastsoftmax import _core
        from fastsoftmax._sample import PARAMS_DTYPE, RESULT_DTYPE
        rows, vocab = 4, 1000
        x = np.random.default_rng(0).standard_normal((rows, vocab)).astype(np.float32)
        for bad in (dict(min_p=5.0, min_keep=0), dict(top_p=-1000.0, min_keep=0),
                    dict(min_keep=-7, top_k=-5), dict(top_k=vocab + 3, min_keep=vocab + 9),
                    dict(top_k=vocab, min_p=2.0, min_keep=0), dict(u=7.0, min_keep=0)):
            params = np.zeros(rows, PARAMS_DTYPE)
            params["inv_temperature"], params["top_p"], params["min_keep"] = 1.0, 1.0, 1
            params["u"] = 0.5
            for name, value in bad.items():
                params[name] = value
            results = np.empty(rows, RESULT_DTYPE)
            for threads in (1, 2):
                assert _core.sample(x, params, results, np.empty((rows, 0), np.int64),
                                    np.empty((rows, 0), np.float32), rows, vocab, threads) < 0
                assert ((0 <= results["token"]) & (results["token"] < vocab)).all(), bad
                assert (results["n_kept"] >= 1).all(), bad
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_tensors_as_per_row_values_and_prev_tokens():
    """A torch tensor as a per-row value or as prev_tokens is read as the logits are (DLPack,
    lazy negation resolved, bfloat16 by its values, a 0-d one as a scalar), and refused as
    they are: a TypeError naming the argument for one that requires grad."""
    torch = pytest.importorskip("torch")
    rows = 3
    x = random_logits((rows, 200), np.float32, seed=13)
    u = np.array([0.1, 0.5, 0.9])
    top_p = np.array([0.5, 0.75, 0.875])  # exact in bfloat16
    want = fs.sample(x, u=u, top_p=top_p, temperature=0.75, top_k=np.array([5, 9, 40]),
                     prev_tokens=[[1, 2], [3], [4, 4]], repetition_penalty=1.5)
    negated = torch._neg_view(torch.from_numpy(-top_p))
    assert negated.is_neg()
    for top_p_given in (torch.from_numpy(top_p), negated, torch.from_numpy(top_p).bfloat16()):
        got = fs.sample(x, u=torch.from_numpy(u), top_p=top_p_given,
                        temperature=torch.tensor(0.75), top_k=torch.tensor([5, 9, 40]),
                        prev_tokens=torch.tensor([[1, 2], [3, 3], [4, 4]]),
                        repetition_penalty=torch.tensor(1.5, dtype=torch.bfloat16))
        assert_same(got, want)
    for name, value in (("top_p", torch.from_numpy(top_p).requires_grad_(True)),
                        ("u", torch.from_numpy(u).requires_grad_(True)),
                        ("temperature", torch.tensor(0.5, requires_grad=True))):
        with pytest.raises(TypeError, match=name):
            fs.sample(x, **{"u": u, name: value})
