"""The accuracy contract as code: the tolerances, and the checks that hold results to them.

Private.  ``tests/conftest.py``, ``tools/check_wheel.py`` and ``python -m
fastsoftmax`` all check results with these functions, so the contract is
written once.  Needs only NumPy: it runs against an installed wheel too.

The oracle is ``fastsoftmax.reference`` (plain NumPy in float64).  The bound
for an output is the contract's relative tolerance (float32 1e-6, float64
1e-13) plus the error that rounding ``(x - max) / T`` to the working precision
causes by itself, which no algorithm working in that precision avoids
(Blanchard, Higham & Higham 2021): about ``|z| * u`` relative for softmax and,
in the log domain, ``u * (|z| + sum(p * |z|))`` absolute, with
``z = (x - max) / T``, ``p`` the softmax and ``u`` the unit roundoff: an
error of ``u |z_j|`` in one term moves ``log(sum(exp(z)))`` by ``p_j u |z_j|``;
plus, for terms below the smallest normal number (+0 or subnormal), that
number per entry of the slice.
That term is tiny where one entry dominates (its ``z`` is 0, the others' ``p``
tiny), so a result near 0 there, ``logsumexp([0, -40])`` or the dominant
entry's log-probability, is held to the relative tolerance.  Outputs of softmax below the smallest normal number may be
+0 or subnormal.  cross_entropy's loss is held to ``LOSS_RTOL`` (plus the log
domain's rounding of ``z``), its gradient to ``GRAD_TOL`` times its largest
entry, since entries near 0 carry the absolute rounding of ``p - onehot``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import reference
from ._typing import Axes

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
RTOL = {_F32: 1e-6, _F64: 1e-13}
UNIT_ROUNDOFF = {_F32: 2.0**-24, _F64: 2.0**-53}
# exp results under the smallest normal number are +0 or subnormal, within it of the
# exact value either way (src/fs_exp.h, step 5).
SOFTMAX_ATOL = {_F32: 2e-38, _F64: 3e-308}
LOSS_RTOL = {_F32: 2e-6, _F64: 1e-12}
GRAD_TOL = {_F32: 2e-6, _F64: 1e-13}

_Axis = Axes  # the checks take every axis the functions take: tuples too
_Mask = Optional[npt.ArrayLike]
_Bound = Union[float, npt.NDArray[np.float64]]


def assert_within(got: npt.ArrayLike, expected: npt.ArrayLike, bound: _Bound, what: str) -> None:
    """AssertionError unless ``|got - expected| <= bound`` (equal infinities and NaNs pass)."""
    got64 = np.asarray(got, dtype=np.float64)
    expected64 = np.asarray(expected, dtype=np.float64)
    assert got64.shape == expected64.shape, f"{what}: shape {got64.shape} != {expected64.shape}"
    with np.errstate(invalid="ignore"):
        err = np.abs(got64 - expected64)
    same_special = (got64 == expected64) | (np.isnan(got64) & np.isnan(expected64))
    bad = ~((err <= bound) | same_special)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(bound, 1e-300), 0)),
                             err.shape)
        bound_i = bound[i] if isinstance(bound, np.ndarray) and bound.ndim else bound
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} outside the bound; worst at {i}: "
            f"got {got64[i]!r}, expected {expected64[i]!r}, bound {bound_i!r}")


def _shifted(x: npt.ArrayLike, axis: _Axis, temperature: float,
             where: _Mask = None) -> Tuple[npt.NDArray[np.float64], Any]:
    """z = (x - max) / T in float64 and max |z| per slice, over the finite unmasked entries."""
    x64 = np.asarray(x, dtype=np.float64)
    keep = np.isfinite(x64) if where is None else np.isfinite(x64) & np.asarray(where)
    kept = np.where(keep, x64, -np.inf)
    with np.errstate(invalid="ignore"):
        z = np.where(keep, (x64 - kept.max(axis=axis, keepdims=axis is not None, initial=-np.inf))
                     / temperature, 0.0)
    if axis is None:
        return z, np.abs(z).max(initial=0.0)
    return z, np.abs(z).max(axis=axis, keepdims=True, initial=0.0)


def _spread(x: npt.ArrayLike, axis: _Axis, temperature: float, where: _Mask,
            z: npt.NDArray[np.float64], zmax: Any) -> Any:
    """``sum(p * |z|)`` per slice (keepdims): what rounding z moves ``log(sum(exp(z)))`` by, / u.

    Where the softmax is not finite (NaN or inf in the slice) that bound does
    not apply; ``max |z|`` stands in.
    """
    p = reference.softmax(x, axis=axis, temperature=temperature, where=where)
    with np.errstate(invalid="ignore"):
        spread = np.sum(np.where(p > 0, p * np.abs(z), 0.0), axis=axis,
                        keepdims=axis is not None)
        finite = np.all(np.isfinite(p), axis=axis, keepdims=axis is not None)
    return np.where(finite, spread, zmax)


def _flushed(z: npt.NDArray[np.float64], axis: _Axis, dt: np.dtype[Any]) -> Any:
    """What the terms below the smallest normal number (+0 or subnormal exp results) can move
    ``log(sum(exp(z)))`` by: at most that number per entry of the slice (keepdims)."""
    count = np.sum(np.ones_like(z), axis=axis, keepdims=axis is not None)
    return count * SOFTMAX_ATOL[dt]


def check_softmax(got: npt.ArrayLike, x: npt.ArrayLike, axis: _Axis = -1,
                  temperature: float = 1.0, dtype: Optional[npt.DTypeLike] = None,
                  where: _Mask = None) -> None:
    """softmax's result ``got`` against the reference, to the contract's bound."""
    dt = np.dtype(dtype or np.asarray(got).dtype)
    expected = reference.softmax(x, axis=axis, temperature=temperature, where=where)
    z, _ = _shifted(x, axis, temperature, where)
    bound = expected * (RTOL[dt] + 3 * UNIT_ROUNDOFF[dt] * np.abs(z)) + SOFTMAX_ATOL[dt]
    assert_within(got, expected, bound, "softmax")


def check_log_softmax(got: npt.ArrayLike, x: npt.ArrayLike, axis: _Axis = -1,
                      temperature: float = 1.0, dtype: Optional[npt.DTypeLike] = None,
                      where: _Mask = None) -> None:
    """log_softmax's result ``got`` against the reference, to the contract's bound."""
    dt = np.dtype(dtype or np.asarray(got).dtype)
    expected = reference.log_softmax(x, axis=axis, temperature=temperature, where=where)
    z, zmax = _shifted(x, axis, temperature, where)
    spread = _spread(x, axis, temperature, where, z, zmax)
    bound = (RTOL[dt] * np.abs(expected) + 3 * UNIT_ROUNDOFF[dt] * (np.abs(z) + spread)
             + _flushed(z, axis, dt))
    assert_within(got, expected, bound, "log_softmax")


def check_logsumexp(got: npt.ArrayLike, x: npt.ArrayLike, axis: _Axis = -1,
                    keepdims: bool = False, dtype: Optional[npt.DTypeLike] = None,
                    where: _Mask = None, b: Optional[npt.ArrayLike] = None,
                    sign: Optional[npt.ArrayLike] = None) -> None:
    """logsumexp's result ``got`` against the reference, to the contract's bound.

    ``b``: the weights it was called with.  ``sign``: its sign, from
    ``return_sign=True`` (then ``got`` is ``log|sum|``).  With ``b``, terms of
    both signs cancel: the bound grows by ``RTOL (A - |S|) / |S|`` (``S`` the
    sum, ``A`` the sum of the terms' magnitudes: 0 when they have one sign),
    and by ``2u max|log|b||`` from rounding ``log|b|``; the sign is compared
    where that excess leaves it determined (and where it is NaN).
    """
    dt = np.dtype(dtype or np.asarray(got).dtype)
    options: dict[str, Any] = {"axis": axis, "keepdims": keepdims, "where": where}
    if b is None and sign is None:
        expected, expected_sign = reference.logsumexp(x, **options), None
    else:
        expected, expected_sign = reference.logsumexp(x, b=b, return_sign=True, **options)
        if sign is None:
            expected = np.where(np.asarray(expected_sign) < 0, np.nan, expected)
    x64, w = np.broadcast_arrays(np.asarray(x, dtype=np.float64),
                                 np.asarray(1.0 if b is None else b, dtype=np.float64))
    keep = np.isfinite(x64) & np.isfinite(w) & (w != 0)
    keep = keep if where is None else keep & np.asarray(where)
    reduce: dict[str, Any] = {"axis": axis, "keepdims": keepdims, "initial": 0.0}
    if expected_sign is None:
        z, zmax = _shifted(x, axis, 1.0, where)
        slack = 3 * UNIT_ROUNDOFF[dt] * _spread(x, axis, 1.0, where, z, zmax) + _flushed(z, axis, dt)
        if not keepdims and axis is not None:
            slack = np.squeeze(slack, axis=axis)
        # max + log(sum) is rounded in float64 (float32 results near 0 too, computed
        # again there), and the sum's own rounding moves log(sum) a little: absolute
        # u64 (|max| + |log(sum)| + 1) more, all there is where they cancel (the README).
        # Twice that: the reference, which takes the same steps in float64, rounds too.
        top = np.where(keep, x64, -np.inf).max(axis=axis, keepdims=keepdims, initial=-np.inf)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(invalid="ignore"):
            log_sum = np.where(np.isfinite(expected), np.asarray(expected) - top, 0.0)
        slack = slack + 2 * UNIT_ROUNDOFF[_F64] * (np.abs(top) + np.abs(log_sum) + 1)
        bound = RTOL[dt] * np.abs(expected) + slack
        assert_within(got, expected, bound, "logsumexp")
        return
    xmax = np.abs(np.where(keep, x64, 0.0)).max(**reduce)
    bound = RTOL[dt] * np.abs(expected) + 2 * UNIT_ROUNDOFF[dt] * xmax
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_b_max = np.abs(np.log(np.abs(np.where(keep, w, 1.0)))).max(**reduce)
        shift = np.where(keep, x64, -np.inf).max(axis=axis, keepdims=True, initial=-np.inf)
        terms = np.where(keep, w * np.exp(x64 - np.where(np.isfinite(shift), shift, 0.0)), 0.0)
        size_of_sum = np.abs(terms.sum(axis=axis, keepdims=keepdims))
        sum_of_sizes = np.abs(terms).sum(axis=axis, keepdims=keepdims)
        excess = np.where(sum_of_sizes == size_of_sum, 0.0,
                          (sum_of_sizes - size_of_sum) / size_of_sum)
    bound = bound + 2 * UNIT_ROUNDOFF[dt] * log_b_max + RTOL[dt] * excess
    assert_within(got, expected, bound, "logsumexp")
    if sign is not None:
        got_sign, want = np.asarray(sign, np.float64), np.asarray(expected_sign, np.float64)
        determined = (RTOL[dt] * excess < 0.5) | np.isnan(want)
        assert_within(np.where(determined, got_sign, want), want, 0.0, "logsumexp sign")


def check_cross_entropy(loss: npt.ArrayLike, grad: npt.ArrayLike, logits: npt.ArrayLike,
                        target: npt.ArrayLike, axis: int = -1, **options: Any) -> None:
    """cross_entropy's ``(loss, grad)`` against the reference's, for finite logits.

    ``options`` are cross_entropy's keyword arguments (reduction, weight...).
    """
    x = np.asarray(logits)
    dt = x.dtype
    ref_loss, ref_grad = reference.cross_entropy(x, target, axis=axis, return_grad=True,
                                                 **options)
    _, zmax = _shifted(x, axis, 1.0)
    assert_within(loss, ref_loss, LOSS_RTOL[dt] * np.abs(np.asarray(ref_loss, np.float64))
                  + 6 * UNIT_ROUNDOFF[dt] * float(np.max(zmax, initial=0.0)),
                  "cross_entropy loss")
    # With one class the exact gradient is 0 and ours is p*c - c rounded: absolute scale 1.
    scale = float(np.abs(ref_grad).max(initial=0.0)) or 1.0
    assert_within(grad, ref_grad, GRAD_TOL[dt] * scale, "cross_entropy gradient")
