"""The calling thread's floating-point environment does not reach the kernels (src/fs_fp_env.h).

A thread may flush subnormals to zero (``torch.set_flush_denormal(True)`` sets FTZ and DAZ),
round in another direction, or trap invalid operations (``feenableexcept``).  Every kernel
call runs in the kernels' own environment on every thread that takes part, and hands the
caller's back: the same bits as in the default environment, on every ISA, one thread or
several, both executors; the caller's settings unchanged afterwards.

Before: ``top_k`` of a row of zeros under FTZ/DAZ returned index 2**63 - 1 (its heap's
placeholders, seeded at nextafter(0, -inf), compared equal to 0) and ``sample(top_k=)``
read past the row and crashed; directed rounding changed softmax's bits and grew its error
by half (the exp's magic-number rounding); an unmasked invalid-operation trap killed the
process with SIGFPE on the first softmax (the padding lanes compute -inf - -inf).
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core
from conftest import CHUNK

# Hostile states: (name, flush subnormals, rounding: 1 upward, 2 downward, 3 toward zero)
HOSTILE = [
    ("flush", True, 0),
    ("upward", False, 1),
    ("downward", False, 2),
    ("toward_zero", False, 3),
    ("flush_upward", True, 1),
]


def _inputs():
    """Rows that reach every kind of kernel: short rows (the panel kernel), rows of partial
    vectors, a row of several chunks (split between threads), columns (axis 0); values with
    subnormals, zeros of both signs and maxima that tie, where a flush would change them."""
    rng = np.random.default_rng(7)
    tiny = np.float32(1e-40)  # subnormal in float32
    rows = rng.standard_normal((6, 37)).astype(np.float32) * 4
    rows[0] = 0.0
    rows[1, ::2] = -0.0
    rows[2, :5] = tiny
    rows[3, :] = -tiny
    long_row = rng.standard_normal((1, 2 * CHUNK + 9)) * 4  # float64
    long_row[0, ::3] = 5e-320  # subnormal in float64
    return [
        (rows, -1),
        (rows.astype(np.float64) * 1e-300, -1),  # float64 results near the subnormal range
        (rng.standard_normal((2, 1000)).astype(np.float32) * 30, -1),
        (long_row, -1),
        (rng.standard_normal((300, 13)).astype(np.float32), 0),
        (np.zeros((3, 4096), np.float32), -1),  # top_k's failing case
    ]


def _arguments(x, axis):
    """The other arguments of _calls, made before the environment changes."""
    labels = np.argmax(x, axis=axis)
    labels.flat[::4] = -100
    n = x.shape[axis]
    y = fs.softmax(x, axis)
    return {
        "labels": labels,
        "weight": np.linspace(0.5, 2.0, n).astype(x.dtype),
        "where": (x > -1) | (np.arange(n) % 3 == 0).reshape(
            [-1 if a == axis % x.ndim else 1 for a in range(x.ndim)]),
        "g": np.cos(np.arange(x.size, dtype=x.dtype)).reshape(x.shape),
        "y": y,
        "log_y": np.log(np.maximum(y, 1e-30)),
        "u": np.linspace(0.05, 0.95, x.shape[0]),
    }


def _calls(x, axis, a, n_threads):
    """Every op on x (its other arguments `a` from _arguments): {name: result}."""
    loss, grad = fs.cross_entropy(x, a["labels"], axis=axis, weight=a["weight"],
                                  label_smoothing=0.1, reduction="none", return_grad=True,
                                  n_threads=n_threads)
    out = {
        "softmax": fs.softmax(x, axis, n_threads=n_threads),
        "softmax_t": fs.softmax(x, axis, temperature=0.3, n_threads=n_threads),
        "log_softmax": fs.log_softmax(x, axis, n_threads=n_threads),
        "logsumexp": fs.logsumexp(x, axis, n_threads=n_threads),
        "softmax_where": fs.softmax(x, axis, where=a["where"], n_threads=n_threads),
        "ce_losses": loss,
        "ce_grad": grad,
        "ce_mean": fs.cross_entropy(x, a["labels"], axis=axis, n_threads=n_threads),
        "softmax_backward": fs.softmax_backward(a["g"], a["y"], axis, n_threads=n_threads),
        "log_softmax_backward": fs.log_softmax_backward(a["g"], a["log_y"], axis,
                                                        n_threads=n_threads),
    }
    if axis in (-1, x.ndim - 1):
        k = min(5, x.shape[axis])
        out["top_k"], out["top_k_indices"] = fs.top_k(x, k, n_threads=n_threads)
        for kw in ({}, {"top_k": k}, {"top_p": 0.9}, {"min_p": 0.05, "temperature": 0.7}):
            r = fs.sample(x, u=a["u"], logprobs=k, n_threads=n_threads, **kw)
            for field in r._fields:
                out[f"sample{sorted(kw)}_{field}"] = getattr(r, field)
    return out


# Results that take some scalar arithmetic of the Python layer, done by Python and NumPy
# in the caller's environment like any of their operations (README, Numerics): the
# temperature's reciprocal, cross_entropy's weights' sum and 1 / the mean's denominator,
# the float32 rounding of float64 losses and log-probabilities.  Under a directed
# rounding those move by an ULP, and the results with them (the scale by up to |x - max|
# ULP of the exponent); a flush of subnormals leaves them alone (none is subnormal here).
PYTHON_ARITHMETIC = ("softmax_t", "ce_losses", "ce_grad", "ce_mean", "_logprob")


def _compare(name, expected, got):
    """The kernels' results: the same bits.  The Python layer's: close to them."""
    for key, e in expected.items():
        e, g = np.asarray(e), np.asarray(got[key])
        if e.dtype.kind == "f" and key.endswith(PYTHON_ARITHMETIC) and name != "flush":
            rtol = 1e-6 if e.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(g, e, rtol=rtol, atol=0, err_msg=f"{name}: {key}")
        else:
            assert e.tobytes() == g.tobytes(), f"{name}: {key} changed"


@pytest.fixture(params=["pool", "openmp"] if _core.openmp_enabled() else ["pool"])
def executor(request):
    """Both executors' threads (src/fs_pool.c): the pool's workers and OpenMP's."""
    if request.param == "openmp" and _core.executor() != "pthreads":
        pytest.skip("OpenMP is the only executor of this build")
    old = _core._pool_settings(openmp=request.param == "openmp")
    yield request.param
    _core._pool_settings(**old)


@pytest.mark.parametrize("name,flush,rounding", HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_results_do_not_depend_on_the_callers_environment(isa, executor, name, flush, rounding,
                                                          n_threads):
    inputs = [(x, axis, _arguments(x, axis)) for x, axis in _inputs()]
    expected = [_calls(x, axis, a, n_threads) for x, axis, a in inputs]
    own = _core._fp_env(_core._hostile_fp_env(flush=flush, rounding=rounding))
    hostile = _core._fp_env()
    try:
        got = []
        for x, axis, a in inputs:
            got.append(_calls(x, axis, a, n_threads))
            assert _core._fp_env() == hostile, "the caller's environment was not given back"
    finally:
        _core._fp_env(own)
    for e, g in zip(expected, got):
        _compare(name, e, g)


@pytest.mark.parametrize("flush", [False, True])
def test_top_k_and_sample_never_leave_the_row_under_a_flush(isa, flush):
    """The reported case: rows of zeros (or of subnormals) past 64 * k elements."""
    own = _core._fp_env(_core._hostile_fp_env(flush=flush))
    try:
        for dtype in (np.float32, np.float64):
            for x in (np.zeros(4096, dtype), np.full(4096, np.finfo(dtype).smallest_subnormal),
                      np.full(4096, -np.finfo(dtype).smallest_subnormal)):
                values, indices = fs.top_k(x, 3)
                assert indices.tolist() == [0, 1, 2]
                assert np.array_equal(values, x[:3])
                r = fs.sample(x, top_k=3, u=0.5, logprobs=3)  # (ties with the 3rd are kept)
                assert 0 <= int(r.tokens) < x.size and r.top_tokens.tolist() == [0, 1, 2]
    finally:
        _core._fp_env(own)


def test_traps_enabled_by_the_caller_do_not_fire_in_the_kernels():
    """In a child process: before the fix, SIGFPE killed it on the first softmax."""
    code = textwrap.dedent("""
        import numpy as np
        import fastsoftmax as fs
        from fastsoftmax import _core
        rng = np.random.default_rng(0)
        xs = [rng.standard_normal((3, 37)).astype(np.float32),
              rng.standard_normal((2, 1001)), rng.standard_normal((40, 13)).astype(np.float32)]
        _core._fp_env(_core._hostile_fp_env(traps=True))
        traps = _core._fp_env()  # (what the register holds: a core without trapping drops them)
        for x in xs:
            labels = np.argmax(x, axis=-1)
            for n_threads in (1, 2):
                fs.softmax(x, n_threads=n_threads)
                fs.softmax(x, axis=0, n_threads=n_threads)
                fs.log_softmax(x, n_threads=n_threads)
                fs.logsumexp(x, n_threads=n_threads)
                fs.cross_entropy(x, labels, return_grad=True, n_threads=n_threads)
                fs.top_k(x, 2, n_threads=n_threads)
                fs.sample(x, top_k=2, u=np.full(x.shape[0], 0.5), n_threads=n_threads)
            assert _core._fp_env() == traps
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr[-2000:])


def test_workers_started_under_another_environment_take_the_kernels():
    """In a child process: the pool's workers inherit the environment of the thread that
    starts them, here a flushing one (a call that runs parts outside the kernels' own
    entry: the executor's self-test), so only the parts' own switch protects their rows."""
    code = textwrap.dedent("""
        import numpy as np
        import fastsoftmax as fs
        from fastsoftmax import _core
        x = np.zeros((512, 4096), np.float32)
        x[:, 7] = 1e-40  # a subnormal max: DAZ would make it 0, a tie with every other
        expected = [fs.top_k(x, 3, n_threads=1), fs.log_softmax(x, n_threads=1)]
        _core._fp_env(_core._hostile_fp_env(flush=True))
        assert _core._pool_self_test(2, 64, repeats=3)  # the workers start here, flushing
        for _ in range(20):
            got = [fs.top_k(x, 3, n_threads=2), fs.log_softmax(x, n_threads=2)]
            assert np.array_equal(got[0][1], expected[0][1]), "top_k's indices"
            assert got[1].tobytes() == expected[1].tobytes(), "log_softmax's bits"
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr[-2000:])
