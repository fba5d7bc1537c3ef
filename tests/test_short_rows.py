"""The short-row kernels (rows of at most 32 elements, softmax's up to 36 and logsumexp's and
cross_entropy's up to 64 where the ISA sets them so, one row per vector lane).

Groups of LANES rows are transposed in registers on the way in and out
(src/fs_softmax_tmpl.h's gather_rows / scatter_rows), and the log ops take the
log of every lane's sum at once (src/fs_log.h).  These tests hit every row
length up to one past the short-row limit and row counts on either side of
each ISA's lane count, in place and next to memory that may not be touched,
and hold the vector log to the long-double reference.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, reference
from fastsoftmax._logsumexp import logsumexp_parts
from fastsoftmax._testing import check_cross_entropy
from conftest import check_log_softmax, check_logsumexp, check_softmax, random_logits

DTYPES = [np.float32, np.float64]


def _short_row_limit(isa):
    """The rows every op runs one per lane (and has a copy of the kernel for each length)."""
    return _core.kernel_info()[isa]["float32"]["short_row"]


def _short_softmax_row_limit(isa, dtype):
    return _core.kernel_info()[isa][np.dtype(dtype).name]["short_softmax_row"]


def _short_logsumexp_row_limit(isa):
    return _core.kernel_info()[isa]["float32"]["short_logsumexp_row"]


def _lanes(isa, dtype):
    return _core.kernel_info()[isa][np.dtype(dtype).name]["lanes"]


def _row_counts(lanes):
    """Row counts around one and several groups of `lanes` rows."""
    return sorted({1, 2, lanes - 1, lanes, lanes + 1, 2 * lanes + 1, 3 * lanes - 1} - {0})


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_length_and_group(isa, dtype):
    """Every row length up to the limit + 1, row counts around each group boundary."""
    lanes = _lanes(isa, dtype)
    for n in range(1, _short_row_limit(isa) + 2):
        for rows in _row_counts(lanes):
            x = random_logits((rows, n), dtype, seed=1000 * n + rows)
            check_softmax(fs.softmax(x), x)
            check_log_softmax(fs.log_softmax(x), x)
            check_logsumexp(fs.logsumexp(x, axis=-1), x)
            check_softmax(fs.softmax(x, temperature=0.7), x, temperature=0.7)
            labels = np.random.default_rng(n).integers(0, n, rows)
            loss, grad = fs.cross_entropy(x, labels, reduction="none", return_grad=True)
            check_cross_entropy(loss, grad, x, labels, reduction="none")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_past_the_others(isa, dtype):
    """softmax's rows run one per lane past the other ops' limit where the ISA sets it so
    (the tiles' general copy): every length from there to its own limit + 1, row counts
    around each group, at two temperatures, with a mask, in place, and the special rows at
    lane positions, each with the bits it gets alone and the reference's value."""
    lanes = _lanes(isa, dtype)
    for n in range(_short_row_limit(isa) + 1, _short_softmax_row_limit(isa, dtype) + 2):
        for rows in _row_counts(lanes):
            x = random_logits((rows, n), dtype, seed=1000 * n + rows)
            for at, special in zip(range(0, rows, 3), _special_rows(n, dtype).values()):
                x[at] = special
            where = np.random.default_rng(n + rows).random((rows, n)) < 0.8
            for temperature in (1.0, 0.7):
                got = fs.softmax(x, temperature=temperature)
                check_softmax(got, x, temperature=temperature)
                check_softmax(fs.softmax(x, temperature=temperature, where=where), x,
                              temperature=temperature, where=where)
                for r in range(rows):
                    alone = fs.softmax(x[r:r + 1], temperature=temperature)
                    np.testing.assert_array_equal(got[r], alone[0], err_msg=f"n={n} row {r}")
                y = x.copy()
                assert fs.softmax(y, temperature=temperature, out=y) is y
                np.testing.assert_array_equal(y, got, err_msg=f"n={n} in place")


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_rows_past_the_others(isa, dtype):
    """logsumexp's rows run one per lane past the other ops' limit: every length up to its
    own limit + 1, row counts around each group, with a mask, a temperature's scale
    (logsumexp_parts) and the special rows at lane positions, against the reference."""
    lanes = _lanes(isa, dtype)
    for n in range(_short_row_limit(isa) + 1, _short_logsumexp_row_limit(isa) + 2):
        for rows in _row_counts(lanes):
            x = random_logits((rows, n), dtype, seed=1000 * n + rows)
            for at, special in zip(range(0, rows, 3), _special_rows(n, dtype).values()):
                x[at] = special
            check_logsumexp(fs.logsumexp(x, axis=-1), x)
            where = np.random.default_rng(n + rows).random((rows, n)) < 0.8
            check_logsumexp(fs.logsumexp(x, axis=-1, where=where), x, where=where)
            top, log_sum = logsumexp_parts(x, scale=0.5)
            expected = reference.logsumexp(x.astype(np.float64) * 0.5, axis=-1)
            np.testing.assert_array_equal(np.isnan(top * 0.5 + log_sum), np.isnan(expected))
            finite = np.isfinite(expected)
            np.testing.assert_array_equal(top[finite], x.astype(np.float64).max(axis=-1)[finite])
            # (x - max) * 0.5 is rounded in float32 first: a looser bound than the contract's
            np.testing.assert_allclose((top * 0.5 + log_sum)[finite], expected[finite],
                                       rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_rows_past_the_others(isa, dtype):
    """cross_entropy's rows run one per lane as far as logsumexp's (its loss is a logsumexp
    less the label's term): every length past the other ops' limit up to that limit + 1, row
    counts around each group, index and probability targets, class weights, smoothing and
    ignored samples against the reference, and the special rows (NaN, +inf, all -inf,
    dominated, ...) at lane positions, each with the bits it gets alone."""
    lanes = _lanes(isa, dtype)
    for n in range(_short_row_limit(isa) + 1, _short_logsumexp_row_limit(isa) + 2):
        weight = np.linspace(0.5, 1.5, n).astype(dtype)
        for rows in _row_counts(lanes):
            rng = np.random.default_rng(13 * n + rows)
            x = random_logits((rows, n), dtype, seed=17 * n + rows)
            labels = rng.integers(0, n, rows)
            labels[rng.random(rows) < 0.2] = -100
            probabilities = rng.random((rows, n)).astype(dtype)
            probabilities /= probabilities.sum(axis=-1, keepdims=True)
            for target, options in ((labels, {}), (labels, {"weight": weight}),
                                    (labels, {"label_smoothing": 0.1}),
                                    (probabilities, {"weight": weight})):
                for reduction in ("none", "mean"):
                    loss, grad = fs.cross_entropy(x, target, reduction=reduction,
                                                  return_grad=True, **options)
                    check_cross_entropy(loss, grad, x, target, reduction=reduction, **options)
            labels = np.maximum(labels, 0)
            for at, special in zip(range(0, rows, 3), _special_rows(n, dtype).values()):
                x[at] = special
            loss, grad = fs.cross_entropy(x, labels, reduction="none", return_grad=True)
            for r in range(rows):
                alone = fs.cross_entropy(x[r:r + 1], labels[r:r + 1], reduction="none",
                                         return_grad=True)
                np.testing.assert_array_equal(loss[r], alone[0][0], err_msg=f"n={n} row {r}")
                np.testing.assert_array_equal(grad[r], alone[1][0], err_msg=f"n={n} row {r}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["rows", "panels"])
def test_cross_entropy_sample_terms_in_every_lane_state(isa, dtype, layout):
    """A group's per-sample terms (src/fs_cross_entropy_tmpl.h's ce_plain_terms, and the lane
    by lane loop they fall back to) with the lanes of one group in every state at once:
    labelled, ignore_index, missing (the last group's), weighted, and rows dominated by
    their label's logit (whose logs are taken again lane by lane); the class axis last
    (short rows) or not (panels of (N, C, d) samples)."""
    lanes = _lanes(isa, dtype)
    for n in range(1, _short_row_limit(isa) + 2):
        for rows in _row_counts(lanes):
            rng = np.random.default_rng(97 * n + rows)
            x = random_logits((rows, n), dtype, seed=31 * n + rows)
            labels = rng.integers(0, n, rows)
            labels[rng.random(rows) < 0.25] = -100
            dominated = rng.random(rows) < 0.25
            x[dominated, np.maximum(labels[dominated], 0)] = 60  # exp(-60) terms: log1p again
            weight = (rng.random(n) + 0.25).astype(dtype)
            for options in ({}, {"weight": weight}, {"ignore_index": 0}, {"label_smoothing": 0.1}):
                if layout == "rows":
                    logits, target, axis = x, labels, -1
                else:  # (rows // 2 + 1, n, 2) samples: a panel's columns are two of them
                    pad = rows + rows % 2
                    logits = np.zeros((pad, n), dtype)
                    logits[:rows] = x
                    logits = np.ascontiguousarray(logits.reshape(pad // 2, 2, n).transpose(0, 2, 1))
                    target = np.concatenate([labels, [-100] * (pad - rows)]).reshape(pad // 2, 2)
                    axis = 1
                target = np.where(target == -100, options.get("ignore_index", -100), target)
                for reduction in ("none", "mean"):
                    loss, grad = fs.cross_entropy(logits, target, axis=axis, reduction=reduction,
                                                  return_grad=True, **options)
                    check_cross_entropy(loss, grad, logits, target, axis=axis,
                                        reduction=reduction, **options)
            everything_ignored = np.full(rows, -100)
            loss, grad = fs.cross_entropy(x, everything_ignored, reduction="none",
                                          return_grad=True)
            assert (loss == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_matches_fresh_output(isa, dtype):
    """out=x: every row read before any is written over (a store may run into the next row)."""
    lanes = _lanes(isa, dtype)
    for n in range(1, _short_row_limit(isa) + 1):
        for rows in _row_counts(lanes):
            x = random_logits((rows, n), dtype, seed=7 * n + rows)
            for func in (fs.softmax, fs.log_softmax):
                expected = func(x)
                y = x.copy()
                assert func(y, out=y) is y
                np.testing.assert_array_equal(y, expected, err_msg=f"{func.__name__} n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_row_does_not_depend_on_its_neighbours(isa, dtype):
    """A NaN, inf, -inf or masked-out row at each lane position leaves the others' bits alone."""
    lanes = _lanes(isa, dtype)
    rows = 2 * lanes + 1
    for n in (1, 3, lanes, 10, _short_row_limit(isa), _short_softmax_row_limit(isa, dtype),
              _short_logsumexp_row_limit(isa)):
        x = random_logits((rows, n), dtype, seed=n)
        clean = {f: f(x) for f in (fs.softmax, fs.log_softmax)}
        clean_lse = fs.logsumexp(x, axis=-1)
        for at in range(lanes + 1):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[at] = bad
                others = np.arange(rows) != at
                for func, expected in clean.items():
                    np.testing.assert_array_equal(func(y)[others], expected[others])
                np.testing.assert_array_equal(fs.logsumexp(y, axis=-1)[others], clean_lse[others])
            where = np.ones_like(x, dtype=bool)
            where[at] = False
            lse = fs.logsumexp(x, axis=-1, where=where)
            assert lse[at] == -np.inf
            np.testing.assert_array_equal(lse[np.arange(rows) != at],
                                          clean_lse[np.arange(rows) != at])


def _special_rows(n, dtype):
    """Rows whose log ops take the lane-by-lane way or their own rules, by name."""
    finite_tail = np.full(n, -3.0)
    nan, inf = np.array(finite_tail), np.array(finite_tail)
    nan[n // 2] = np.nan
    inf[n - 1] = np.inf
    dominated = np.full(n, -40.0)
    dominated[0] = 0.0
    one_finite = np.full(n, -np.inf)
    one_finite[n - 1] = 2.5
    rows = {"nan": nan, "+inf": inf, "all -inf": np.full(n, -np.inf),
            "dominated": dominated, "one finite": one_finite, "1e30 offset": finite_tail + 1e30}
    return {name: row.astype(dtype) for name, row in rows.items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_rows_get_their_own_results_in_any_group(isa, dtype):
    """A special row (NaN, +inf, all -inf, dominated by one entry, ...) at each lane position
    gets the bits it gets alone, and the reference's value as a panel column: the log ops
    take every lane's log and result at once, and a lane that needs more (its sum again
    without its max's term, an infinite max) its own way, without moving the other lanes."""
    lanes = _lanes(isa, dtype)
    rows = lanes + 2
    for n in (1, 2, 10, _short_row_limit(isa), _short_softmax_row_limit(isa, dtype),
              _short_logsumexp_row_limit(isa)):
        x = random_logits((rows, n), dtype, seed=11 * n)
        for name, special in _special_rows(n, dtype).items():
            for at in range(lanes + 1):
                y = x.copy()
                y[at] = special
                alone = y[at:at + 1]
                what = f"{name} n={n} at={at}"
                for func in (fs.softmax, fs.log_softmax):
                    np.testing.assert_array_equal(func(y)[at], func(alone)[0],
                                                  err_msg=f"{func.__name__} {what}")
                np.testing.assert_array_equal(fs.logsumexp(y, axis=-1)[at],
                                              fs.logsumexp(alone, axis=-1)[0], err_msg=what)
                panel = np.ascontiguousarray(y.T)  # columns: the panel kernels
                check_softmax(fs.softmax(panel, axis=0), panel, axis=0)
                check_log_softmax(fs.log_softmax(panel, axis=0), panel, axis=0)
                check_logsumexp(fs.logsumexp(panel, axis=0), panel, axis=0)
        rows_alone = {name: row[None] for name, row in _special_rows(n, dtype).items()}
        assert fs.logsumexp(rows_alone["all -inf"], axis=-1)[0] == -np.inf
        assert fs.logsumexp(rows_alone["+inf"], axis=-1)[0] == np.inf
        assert np.isnan(fs.logsumexp(rows_alone["nan"], axis=-1)[0])
        check_logsumexp(fs.logsumexp(rows_alone["dominated"], axis=-1), rows_alone["dominated"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_fixed_length_copies_match_the_general_copy(isa, dtype):
    """Unmasked softmax rows, log_softmax rows at temperature 1, and logsumexp rows of
    at most one vector of elements, run through a copy of the short-row kernel for their
    very length (fs_softmax_tmpl.h's short_rows_fixed; softmax's and log_softmax's up to
    their short-row limits); a `where` mask that keeps everything takes the general
    copy.  The two give the same bits (the 16-bit kernels, general copies, rely on it),
    special rows (NaN, +inf, all -inf, dominated, ...) in any lane included, at every
    length up to one past the short-row limit, whichever copy it takes, and row counts
    around the groups; the temperatures that log_softmax leaves to the general copy are
    checked alike."""
    lanes = _lanes(isa, dtype)
    for n in range(1, _short_row_limit(isa) + 2):
        specials = list(_special_rows(n, dtype).values())
        for rows in _row_counts(lanes):
            x = random_logits((rows, n), dtype, seed=5 * n + rows)
            for at, special in zip(range(0, rows, 3), specials):
                x[at] = special
            everything = np.ones_like(x, dtype=bool)
            for func in (fs.softmax, fs.log_softmax):
                for temperature in (1.0, 0.7):
                    fixed = func(x, temperature=temperature)
                    general = func(x, temperature=temperature, where=everything)
                    what = f"{func.__name__} n={n} rows={rows} T={temperature}"
                    np.testing.assert_array_equal(fixed, general, err_msg=what, strict=True)
            fixed = fs.logsumexp(x, axis=-1)
            general = fs.logsumexp(x, axis=-1, where=everything)
            what = f"logsumexp n={n} rows={rows}"
            np.testing.assert_array_equal(fixed, general, err_msg=what, strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_slices_of_one_array_agree(isa, dtype):
    """Any run of rows gives each row the bits it has in the whole (threads take such runs)."""
    lanes = _lanes(isa, dtype)
    x = random_logits((4 * lanes + 3, 10), dtype, seed=3)
    whole = fs.log_softmax(x, n_threads=1)
    for start in range(lanes + 1):
        np.testing.assert_array_equal(fs.log_softmax(x[start:], n_threads=1), whole[start:])
        np.testing.assert_array_equal(fs.log_softmax(x[: len(x) - start], n_threads=1),
                                      whole[: len(x) - start])


def test_vector_log_against_long_double(isa):
    """float64 logsumexp of short rows, whose logs are vector logs, to a few units of 2**-53.

    Rows [0, a1, ...] have max 0, so the result is log of the sum itself (in [1, 16]);
    dominated rows [0, -40, ...] take the log1p of the rest.  Both are held far
    tighter than the contract's 1e-13: an error in the log's polynomial or its
    reduction shows here.
    """
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("long double is double here: no finer reference")
    rng = np.random.default_rng(11)
    for n in range(2, _short_logsumexp_row_limit(isa) + 1):
        x = rng.uniform(-6.0, 0.0, (257, n))
        x[:, 0] = 0.0
        x[200:, 1:] -= 40.0  # dominated: log1p of a rest near 1e-17
        got = fs.logsumexp(x, axis=-1)
        exact = np.log1p(np.exp(x[:, 1:].astype(np.longdouble)).sum(axis=1))
        error = np.abs(got - exact) / exact
        assert float(error.max()) < 2e-15, (n, float(error.max()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect guard pages: Linux")
def test_rows_that_end_at_a_guard_page():
    """Short rows that end where readable memory ends: no load or store passes their end.

    The arrays sit against a PROT_NONE page in a child process (a fault there is a
    crash, reported here as a failure), for every ISA and dtype, rows of up to 17 elements and
    around each short-row limit (32, 36, 48 and 64), with `where=` masks, and 16-bit
    inputs and results (float16, and bfloat16 where ml_dtypes is installed).
    """
    script = textwrap.dedent("""
        import ctypes, mmap
        import numpy as np
        import fastsoftmax as fs
        from fastsoftmax import _core
        try:
            import ml_dtypes
            BF16 = np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            BF16 = np.float16
        libc = ctypes.CDLL(None, use_errno=True)
        PAGE = mmap.PAGESIZE

        def at_guard(shape, dtype):
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            pages = -(-nbytes // PAGE) + 1
            buf = mmap.mmap(-1, pages * PAGE)
            base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            assert libc.mprotect(ctypes.c_void_p(base + (pages - 1) * PAGE), PAGE, 0) == 0
            start = (pages - 1) * PAGE - nbytes
            a = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)), offset=start)
            return a.reshape(shape), buf

        keep = []
        for isa in _core.available_isas():
            _core.set_isa(isa)
            for dtype in (np.float32, np.float64):
                for n in [*range(1, 18), 31, 32, 33, 35, 36, 37, 47, 48, 49, 63, 64, 65]:
                    for rows in (1, 3, 5, 9, 17, 33):
                        x, bx = at_guard((rows, n), dtype)
                        o, bo = at_guard((rows, n), dtype)
                        l, bl = at_guard((rows,), dtype)
                        x[...] = np.random.default_rng(n).standard_normal((rows, n))
                        fs.softmax(x, out=o, n_threads=1)
                        fs.log_softmax(x, out=o, n_threads=1)
                        fs.logsumexp(x, axis=-1, out=l, n_threads=1)
                        fs.softmax(x, out=x, n_threads=1)
                        labels = np.zeros(rows, np.int64)
                        fs.cross_entropy(x, labels, reduction="none", return_grad=True,
                                         grad_out=o, n_threads=1)
                        m, bm = at_guard((rows, n), np.bool_)
                        m[...] = np.arange(n) % 3 != 1
                        fs.softmax(x, where=m, out=o, n_threads=1)
                        fs.log_softmax(x, where=m, out=o, n_threads=1)
                        fs.logsumexp(x, axis=-1, where=m, out=l, n_threads=1)
                        keep += [bx, bo, bl, bm]
                        for half in (np.float16, BF16):
                            h, bh = at_guard((rows, n), half)
                            fs.softmax(x, dtype=half, out=h, n_threads=1)
                            fs.log_softmax(x, dtype=half, out=h, n_threads=1)
                            h[...] = x
                            fs.softmax(h, out=h, n_threads=1)
                            fs.logsumexp(h, axis=-1, n_threads=1)
                            fs.cross_entropy(h, labels, return_grad=True, grad_out=h,
                                             n_threads=1)
                            keep.append(bh)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
