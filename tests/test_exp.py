"""Accuracy of the kernels' vector exp (src/fs_exp.h) against libm, per instruction set.

As XNNPACK's f32-expminus ULP evaluation does: a sweep over the float inputs
the kernels feed it (every 97th float of [-104, 0], 11.6 million values) and a
million doubles of [-708, 0], measured in ULP of the correctly rounded result.
"""
import numpy as np
import pytest

from fastsoftmax import _core

MAX_ULP = 1.5  # measured: 1.00 (float) / 0.91 (double) with FMA, 1.29 / 1.19 without
FLT_MIN = np.finfo(np.float32).tiny
DBL_MIN = np.finfo(np.float64).tiny


def _vector_exp(x):
    out = np.empty_like(x)
    _core.exp(x, out)
    return out


def test_float32_ulp_sweep(isa):
    # Bit patterns from -0.0 down to -104.0 step 97: every 97th float of [-104, 0].
    x = np.arange(0x80000000, np.float32(-104.0).view(np.uint32) + 1, 97,
                  dtype=np.uint32).view(np.float32)
    got = _vector_exp(x).astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    normal = exact >= FLT_MIN
    ulp = np.abs(got[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulp.max() <= MAX_ULP, f"max {ulp.max():.3f} ULP at x={x[normal][np.argmax(ulp)]!r}"
    # Results under FLT_MIN are flushed to +0 or computed: either way within FLT_MIN.
    assert (np.abs(got[~normal] - exact[~normal]) < FLT_MIN).all()
    assert (got >= 0).all()


def test_float64_ulp_sweep(isa):
    x = -np.random.default_rng(0).random(1_000_000) * 708.0
    x[:3] = [0.0, -1e-300, -708.0]
    got = _vector_exp(x)
    exact = np.exp(x.astype(np.longdouble))
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("long double is no wider than double here: no better oracle than libm")
    ulp = (np.abs(got.astype(np.longdouble) - exact) / np.spacing(exact.astype(np.float64))).astype(float)
    assert ulp.max() <= MAX_ULP, f"max {ulp.max():.3f} ULP at x={x[np.argmax(ulp)]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_inputs(isa, dtype):
    x = np.array([0.0, -0.0, -np.inf, np.nan, -1e30, -750.0, -105.0], dtype)
    got = _vector_exp(x)
    assert got[0] == 1.0 and got[1] == 1.0
    assert got[2] == 0.0 and not np.signbit(got[2])  # -inf - max: probability 0
    assert np.isnan(got[3])                          # NaN propagates
    assert got[4] == 0.0 and got[5] == 0.0           # below the underflow cutoff: +0
    if dtype == np.float32:
        assert got[6] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_tail_length(isa, dtype):
    for n in range(1, 70):
        x = -np.linspace(0, 20, n).astype(dtype)
        np.testing.assert_allclose(_vector_exp(x), np.exp(x.astype(np.float64)), rtol=3e-7)
