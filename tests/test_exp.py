"""Accuracy of the kernels' vector exp (src/fs_exp.h) against libm, per instruction set.

As XNNPACK's f32-expminus ULP evaluation does: a sweep over the float inputs
the kernels feed it (every 97th float of [-104, 0], 11.6 million values) and a
million doubles of [-708, 0], measured in ULP of the correctly rounded result;
then the same over the positive range the backward pass can meet, up to the
largest finite result, and at the edges: overflow, underflow and the steps of
2^n where n outgrows one float's exponent.

``_core.exp`` is the full-range exp (vexp_any); test_same_bits_as_the_forward_exp
ties it to the forward kernels' exp (vexp) on the arguments those meet.
"""
import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core

MAX_ULP = 1.5  # measured (src/fs_exp.h): float 1.00 / 0.89, double 0.61 / 0.94 (AVX-512 / AVX2); 1.35 / 1.22 without FMA
FLT_MIN = np.finfo(np.float32).tiny
DBL_MIN = np.finfo(np.float64).tiny
# The largest arguments with a finite exp: ln(FLT_MAX) = 88.7228391..., ln(DBL_MAX) = 709.78271289338400.
LAST_FINITE = {np.float32: np.float32(88.72283), np.float64: np.float64(709.782712893384)}
# Where round(z / ln 2) reaches 128 (1024), and 2^n is no longer a float: 127.5 ln 2, 1023.5 ln 2.
N_STEP = {np.float32: 88.37626552139303, np.float64: 709.436139303104}


def _vector_exp(x):
    out = np.empty_like(x)
    _core.exp(x, out)
    return out


def _floats_around(value, dtype, count):
    """The `count` floats of `dtype` below `value`'s nearest, it, and the `count` above, in order."""
    ints = np.int32 if dtype == np.float32 else np.int64
    return np.sort((np.array(value, dtype).view(ints) + np.arange(-count, count + 1, dtype=ints)).view(dtype))


def _ulp_error(x, got):
    """|got - exp(x)| in ULP of the correctly rounded exp(x), exp(x) in long double."""
    exact = np.exp(x.astype(np.longdouble))
    spacing = np.spacing(exact.astype(x.dtype)).astype(np.longdouble)
    return (np.abs(got.astype(np.longdouble) - exact) / spacing).astype(float)


def _check_ulp(x, got):
    ulp = _ulp_error(x, got)
    assert ulp.max() <= MAX_ULP, f"max {ulp.max():.3f} ULP at x={x[np.argmax(ulp)]!r}"


def _needs_long_double(dtype):
    if dtype == np.float64 and np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("long double is no wider than double here: no better oracle than libm")


def test_float32_ulp_sweep(isa):
    # Bit patterns from -0.0 down to -104.0 step 97: every 97th float of [-104, 0].
    x = np.arange(0x80000000, np.float32(-104.0).view(np.uint32) + 1, 97,
                  dtype=np.uint32).view(np.float32)
    got = _vector_exp(x).astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    normal = exact >= FLT_MIN
    ulp = np.abs(got[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulp.max() <= MAX_ULP, f"max {ulp.max():.3f} ULP at x={x[normal][np.argmax(ulp)]!r}"
    # Results under FLT_MIN are +0 or subnormal: either way within FLT_MIN.
    assert (np.abs(got[~normal] - exact[~normal]) < FLT_MIN).all()
    assert (got >= 0).all()


def test_float32_positive_ulp_sweep(isa):
    # Every 97th float of [0, 88.72283], then every float from 88 to the last finite result,
    # across the step to n = 128 at 88.376.
    sweep = np.arange(0, LAST_FINITE[np.float32].view(np.uint32) + 1, 97, dtype=np.uint32)
    top = np.arange(np.float32(88.0).view(np.uint32), LAST_FINITE[np.float32].view(np.uint32) + 1,
                    dtype=np.uint32)
    x = np.concatenate([sweep, top]).view(np.float32)
    got = _vector_exp(x)
    assert np.isfinite(got).all()
    _check_ulp(x, got)


def test_float64_ulp_sweep(isa):
    x = -np.random.default_rng(0).random(1_000_000) * 708.0
    x[:3] = [0.0, -1e-300, -708.0]
    got = _vector_exp(x)
    exact = np.exp(x.astype(np.longdouble))
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("long double is no wider than double here: no better oracle than libm")
    ulp = (np.abs(got.astype(np.longdouble) - exact) / np.spacing(exact.astype(np.float64))).astype(float)
    assert ulp.max() <= MAX_ULP, f"max {ulp.max():.3f} ULP at x={x[np.argmax(ulp)]!r}"


def test_float64_positive_ulp_sweep(isa):
    _needs_long_double(np.float64)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.random(1_000_000) * LAST_FINITE[np.float64],
                        709.0 + rng.random(100_000) * (LAST_FINITE[np.float64] - 709.0),
                        _floats_around(N_STEP[np.float64], np.float64, 1000),
                        _floats_around(LAST_FINITE[np.float64], np.float64, 1000)[:1001]])
    got = _vector_exp(x)
    assert np.isfinite(got).all()
    _check_ulp(x, got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_overflow_threshold(isa, dtype):
    _needs_long_double(dtype)
    last = LAST_FINITE[dtype]
    assert np.exp(np.longdouble(last)) <= np.finfo(dtype).max  # the constant is the right one
    around = _floats_around(last, dtype, 300)
    got = _vector_exp(around)
    below, above = around[:301], around[301:]
    assert np.isfinite(got[:301]).all()
    _check_ulp(below, got[:301])
    # Above it exp rounds to inf (past FLT_MAX by more than half an ULP): +inf, never NaN.
    assert (np.exp(above.astype(np.longdouble)) > np.finfo(dtype).max * (1 + np.finfo(dtype).eps / 2)).all()
    assert (got[301:] == np.inf).all()
    huge = np.array([np.nextafter(last, dtype(np.inf)), last + 1, 2 * last, 1e30, np.finfo(dtype).max,
                     np.inf, np.nan], dtype)
    got = _vector_exp(huge)
    assert (got[:-1] == np.inf).all()
    assert np.isnan(got[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_to_n_128(isa, dtype):
    # On both sides of 127.5 ln 2 (1023.5 ln 2), where the scaling 2^n would be 2^128 (2^1024):
    # each result finite and within the ULP bound, and increasing.
    _needs_long_double(dtype)
    x = _floats_around(N_STEP[dtype], dtype, 5000)
    got = _vector_exp(x)
    assert np.isfinite(got).all()
    _check_ulp(x, got)
    assert (np.diff(got) >= 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_underflow_threshold(isa, dtype):
    # As README's Numerics says: from the smallest normal number up, each result is normal
    # and within the ULP bound; below it, +0 or the subnormal 2^n * p (n = -126 or -1022)
    # rounded, never anything else, never negative; and +0 for every argument more than
    # ln(2)/2 below ln(tiny), where n is -127 (-1023) or less, on every ISA.
    _needs_long_double(dtype)
    tiny = np.finfo(dtype).tiny
    log_tiny = np.log(np.longdouble(tiny))
    near = _floats_around(log_tiny, dtype, 2000)
    band = np.linspace(float(log_tiny) - 1.0, float(log_tiny), 20_001).astype(dtype)
    x = np.concatenate([band, near])
    got = _vector_exp(x)
    exact = np.exp(x.astype(np.longdouble))
    normal = exact >= tiny
    assert normal[-1] and not normal[0]
    _check_ulp(x[normal], got[normal])
    below, below_exact = got[~normal], exact[~normal]
    assert not np.signbit(below).any() and (np.abs(below - below_exact) < tiny).all()
    computed = below != 0  # the subnormal product: as accurate as its rounding allows
    assert (np.abs(below[computed] - below_exact[computed]) <= tiny * 2.0**-20).all()
    far = x < log_tiny - np.log(np.longdouble(2)) / 2 * (1 + 1e-6)
    assert far.sum() > 1000 and (got[far] == 0).all() and not np.signbit(got[far]).any()


def test_float32_table_flushes_below_normal(isa):
    # README: with AVX2 and AVX-512, float32's exp (2^(j/N) from a table) gives +0 for every
    # result under the smallest normal number, where the other builds may give the subnormal.
    if isa not in ("avx2", "avx512"):
        pytest.skip("the table's exp runs on AVX2 and AVX-512 only")
    log_tiny = np.log(np.longdouble(FLT_MIN))
    x = np.concatenate([_floats_around(log_tiny, np.float32, 3000),
                        np.linspace(-89.0, -87.0, 10_001, dtype=np.float32),
                        np.array([-np.inf, -1e30, -88.03, -87.9], np.float32)])
    got = _vector_exp(x)
    below = np.exp(x.astype(np.longdouble)) < FLT_MIN
    assert below.sum() > 3000 and (got[below] == 0).all() and not np.signbit(got[below]).any()
    assert (got[~below] >= FLT_MIN).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_as_the_forward_exp(isa, dtype):
    # The forward kernels use vexp, _core.exp uses vexp_any, which must give the same bits for
    # z <= 0 (so the sweeps above hold for the forward kernels).  softmax([0, z]) is exp(z)
    # itself once 1 + exp(z) rounds to 1: z < -37.
    z = -np.linspace(40.0, 87.3 if dtype == np.float32 else 708.3, 100_003).astype(dtype)
    x = np.stack([np.zeros_like(z), z], axis=1)
    np.testing.assert_array_equal(fs.softmax(x)[:, 1], _vector_exp(z))


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
def test_every_nan_propagates(isa, dtype):
    # NaNs of either sign, quiet or signaling, with payload bits in every part of the
    # mantissa: the exp builds 2^n from the bits of z * log2(e) + MAGIC, which carry a
    # NaN's payload, so only the polynomial's NaN may decide the result.
    if dtype == np.float32:
        uint, width, exponent, sign = np.uint32, 23, 0x7F800000, 0x80000000
    else:
        uint, width, exponent, sign = np.uint64, 52, 0x7FF0000000000000, 0x8000000000000000
    payloads = [1 << b for b in range(width)] + [(1 << width) - 1, 0x1FF, 0x1FF << 8]
    bits = [exponent | p for p in payloads]
    bits += [sign | b for b in bits]
    x = np.array(bits, uint).view(dtype)
    assert np.isnan(x).all()
    for values in (x, np.resize(x, 1000)):  # whole vectors and tails
        assert np.isnan(_vector_exp(values)).all()
        assert np.isnan(fs.softmax(np.stack([values, np.zeros_like(values)], axis=-1))[:, 0]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_tail_length(isa, dtype):
    for n in range(1, 70):
        x = -np.linspace(0, 20, n).astype(dtype)
        np.testing.assert_allclose(_vector_exp(x), np.exp(x.astype(np.float64)), rtol=3e-7)
