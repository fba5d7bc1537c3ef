"""Shared fixtures and the accuracy checks the tests hold fastsoftmax to.

The oracle is ``fastsoftmax.reference`` (plain NumPy in float64).  The bound
for an output is the contract's relative tolerance (float32 1e-6, float64
1e-13) plus the error that rounding ``(x - max) / T`` to the working precision
causes by itself, which no algorithm working in that precision avoids
(Blanchard, Higham & Higham 2021): about ``|z| * u`` relative for softmax and
``u * max|z|`` absolute in the log domain, with ``z = (x - max) / T`` and ``u``
the unit roundoff.  Outputs of softmax below the smallest normal number may be
flushed to zero.
"""
import numpy as np
import pytest

from fastsoftmax import _core, reference

RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-13}
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
# exp results under the smallest normal number are flushed to +0 (src/fs_exp.h).
SOFTMAX_ATOL = {np.dtype(np.float32): 2e-38, np.dtype(np.float64): 3e-308}

ISAS = _core.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per instruction set this build and CPU have."""
    previous = _core.isa()
    assert _core.set_isa(request.param)
    yield request.param
    _core.set_isa(previous)


def _shifted(x, axis, temperature, where=None):
    """z = (x - max) / T in float64 and max |z| per slice, over the finite unmasked entries."""
    x64 = np.asarray(x, dtype=np.float64)
    keep = np.isfinite(x64) if where is None else np.isfinite(x64) & where
    kept = np.where(keep, x64, -np.inf)
    with np.errstate(invalid="ignore"):
        z = np.where(keep, (x64 - kept.max(axis=axis, keepdims=axis is not None, initial=-np.inf))
                     / temperature, 0.0)
    if axis is None:
        return z, np.abs(z).max(initial=0.0)
    return z, np.abs(z).max(axis=axis, keepdims=True, initial=0.0)


def _assert_within(got, expected, bound, what):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    with np.errstate(invalid="ignore"):
        err = np.abs(got - expected)
    same_special = (got == expected) | (np.isnan(got) & np.isnan(expected))
    bad = ~((err <= bound) | same_special)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(bound, 1e-300), 0)), err.shape)
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} outside the bound; worst at {i}: "
            f"got {got[i]!r}, expected {expected[i]!r}, bound {bound[i] if np.ndim(bound) else bound!r}")


def check_softmax(got, x, axis=-1, temperature=1.0, dtype=None, where=None):
    dtype = np.dtype(dtype or got.dtype)
    expected = reference.softmax(x, axis=axis, temperature=temperature, where=where)
    z, _ = _shifted(x, axis, temperature, where)
    bound = expected * (RTOL[dtype] + 3 * UNIT_ROUNDOFF[dtype] * np.abs(z)) + SOFTMAX_ATOL[dtype]
    _assert_within(got, expected, bound, "softmax")


def check_log_softmax(got, x, axis=-1, temperature=1.0, dtype=None, where=None):
    dtype = np.dtype(dtype or got.dtype)
    expected = reference.log_softmax(x, axis=axis, temperature=temperature, where=where)
    z, zmax = _shifted(x, axis, temperature, where)
    bound = RTOL[dtype] * np.abs(expected) + 3 * UNIT_ROUNDOFF[dtype] * (np.abs(z) + zmax)
    _assert_within(got, expected, bound, "log_softmax")


def check_logsumexp(got, x, axis=-1, keepdims=False, dtype=None, where=None):
    dtype = np.dtype(dtype or np.asarray(got).dtype)
    expected = reference.logsumexp(x, axis=axis, keepdims=keepdims, where=where)
    x64 = np.asarray(x, dtype=np.float64)
    keep = np.isfinite(x64) if where is None else np.isfinite(x64) & where
    xmax = np.abs(np.where(keep, x64, 0.0)).max(axis=axis, keepdims=keepdims, initial=0.0)
    bound = RTOL[dtype] * np.abs(expected) + 2 * UNIT_ROUNDOFF[dtype] * xmax
    _assert_within(got, expected, bound, "logsumexp")


def random_logits(shape, dtype, seed=0, scale=3.0):
    """Normal logits with a spread like a model's."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)
