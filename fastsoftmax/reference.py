"""Plain NumPy reference implementations: the slow, obviously correct oracle.

Every function here upcasts its input to float64, computes with ordinary
vectorised NumPy and casts the result to the *result dtype*: float32 for
float16/float32 input, float64 for everything else (float64, integers, bools,
Python lists).  Nothing here is fast; everything here is meant to be easy to
read and to check by eye.  The test suite compares the compiled kernels against
these functions, and users can do the same to check a result.

``axis`` is read as NumPy's reductions read it: an int, a tuple of ints (the
slices span those axes together; ``()`` makes every element a slice of its
own), or None (the whole array).  A 0-d array is one slice, itself, for
``axis=0``, ``-1``, ``None`` and ``()``.

The numerics contract (the README's Numerics section) is defined by this module:

==========================  ===================  ===================  ===========
slice (over ``axis``)       softmax              log_softmax          logsumexp
==========================  ===================  ===================  ===========
contains a NaN              NaN slice            NaN slice            NaN
all ``-inf``                NaN slice            NaN slice            ``-inf``
a ``+inf`` entry, no NaN    NaN slice            NaN slice            ``+inf``
masked by ``where=False``   0 there              ``-inf`` there       ignored
fully masked                all 0                all ``-inf``         ``-inf``
empty                       empty                empty                ``-inf``
==========================  ===================  ===================  ===========

Entries masked out by ``where`` are ignored completely (even NaN or inf); the
rules above then apply to the entries that remain.  No ``RuntimeWarning`` is
emitted for any of these cases.
"""
from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ._reference_base import (
    _log_softmax_float64,
    _log_sum_exp_scaled,
    _reduced_axes,
    _result_dtype,
    _scaled_logits,
    _silently,
    _slice_max,
    _slices_last,
    _as_array,
    _upcast,
)
from ._reference_cross_entropy import cross_entropy
from ._reference_sample import sample, sample_kept
from ._typing import Axes, FloatArray, FloatScalarOrArray

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_backward",
    "log_softmax_backward",
    "cross_entropy",
    "top_k",
    "sample",
    "sample_kept",
]


def _cast(x: npt.ArrayLike, dtype: npt.DTypeLike | None
          ) -> tuple[npt.ArrayLike, np.dtype[Any] | None]:
    """``x`` cast to ``dtype`` when one is given, as ``dtype=`` asks, and that dtype.

    float32, float64, float16 or bfloat16 (``ml_dtypes``): the result is computed in
    float64 all the same, and rounded to ``dtype`` once.
    """
    if dtype is None:
        return x, None
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = np.dtype(object)
    if resolved.name not in ("float32", "float64", "float16", "bfloat16") or \
            not resolved.isnative:
        raise TypeError(f"dtype must name float32, float64, float16 or bfloat16, got {dtype!r}")
    return _as_array(x, "x").astype(resolved), resolved


def _mask(where: npt.ArrayLike | None) -> npt.NDArray[np.bool_] | Literal[True]:
    """``where=None`` means every entry takes part; ``True`` broadcasts like that."""
    return True if where is None else _as_array(where, "where").astype(bool, copy=False)


@_silently
def softmax(x: npt.ArrayLike, axis: Axes = -1, *, temperature: float = 1.0,
            where: npt.ArrayLike | None = None, dtype: npt.DTypeLike | None = None
            ) -> FloatArray:
    """Softmax ``exp(x / T) / sum(exp(x / T))`` over slices along `axis`.

    Parameters
    ----------
    x : array_like
        Logits.
    axis : int, tuple of ints or None, optional
        Axis along which to normalise (negative counts from the end); a tuple
        normalises over those axes together.  ``None`` treats the whole array
        as one slice, as ``scipy.special.softmax`` does.
    temperature : float, optional
        ``T > 0``; the logits are divided by it.
    where : array_like of bool, optional
        Broadcastable to `x`.  Entries where it is False are ignored and get 0;
        a fully masked slice is all 0.
    dtype : float32, float64, float16 or bfloat16, optional
        `x` is cast to it first, and the result has it (rounded once from float64).

    Returns
    -------
    ndarray
        Same shape as `x`: `dtype` if given, else float32 for
        float16/bfloat16/float32 input, else float64.

    Examples
    --------
    >>> softmax([0.0, np.log(3.0)])
    array([0.25, 0.75])
    >>> softmax(np.ones((2, 2, 2)), axis=(1, 2), dtype=np.float32)[0]
    array([[0.25, 0.25],
           [0.25, 0.25]], dtype=float32)
    """
    cast, asked = _cast(x, dtype)
    (x,), dtype = _upcast(cast)
    mask = _mask(where)
    unnormalised = np.where(mask, np.exp(_scaled_logits(x, axis, temperature, mask)), 0.0)
    total = np.sum(unnormalised, axis=axis, keepdims=True)
    # A fully masked slice divides 0 by 0 here; the mask replaces that NaN by 0.
    return np.where(mask, unnormalised / total, 0.0).astype(asked or dtype)


@_silently
def log_softmax(x: npt.ArrayLike, axis: Axes = -1, *, temperature: float = 1.0,
                where: npt.ArrayLike | None = None, dtype: npt.DTypeLike | None = None
                ) -> FloatArray:
    """Log of the softmax, ``x / T - logsumexp(x / T)``, over slices along `axis`.

    Parameters
    ----------
    x : array_like
        Logits.
    axis : int, tuple of ints or None, optional
        Axis or axes along which to normalise; ``None`` means the whole array.
    temperature : float, optional
        ``T > 0``; the logits are divided by it.
    where : array_like of bool, optional
        Broadcastable to `x`.  Entries where it is False are ignored and get
        ``-inf``; a fully masked slice is all ``-inf``.
    dtype : float32, float64, float16 or bfloat16, optional
        `x` is cast to it first, and the result has it (rounded once from float64).

    Returns
    -------
    ndarray
        Same shape as `x`: `dtype` if given, else float32 for
        float16/bfloat16/float32 input, else float64.

    Examples
    --------
    >>> log_softmax([0.0, 0.0])
    array([-0.69314718, -0.69314718])
    >>> log_softmax(np.float32(5.0), axis=0, dtype=np.float64)  # 0-d: one slice, itself
    array(0.)
    """
    cast, asked = _cast(x, dtype)
    (x,), dtype = _upcast(cast)
    return _log_softmax_float64(x, axis, temperature, _mask(where)).astype(asked or dtype)


def _log_abs_weighted_sum(x: npt.NDArray[np.float64], w: npt.NDArray[np.float64]
                          ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``log|sum(w * exp(x))|`` and the sum's sign over the last axis (of length > 0).

    A term with ``w == 0`` is left out, even where ``x`` is NaN or inf.  The
    terms are shifted by the largest ``x``, so they stay finite while ``sum|w|``
    does.  With a ``+inf`` in ``x`` (or ``w``), only the infinite terms count.
    Where the sum is near 1, ``sum - 1`` is formed without rounding the 1 in
    (the largest term's ``w - 1`` plus the other terms) and its ``log1p`` taken,
    so a result near 0 keeps its relative precision.
    """
    keep = w != 0
    x = np.where(keep, x, -np.inf)
    w = np.where(keep, w, 0.0)
    top = np.max(x, axis=-1, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    terms = np.where(keep, w * np.exp(x - shift), 0.0)
    # An infinite weight on a term of x > -inf is infinite, however far exp(x - shift) underflows.
    terms = np.where(np.isinf(w) & (x > -np.inf), w, terms)
    infinite = (x == np.inf) | np.isinf(w)
    terms = np.where(top == np.inf, np.where(infinite, w * np.inf, 0.0), terms)
    total = np.sum(terms, axis=-1)
    k = np.argmax(x, axis=-1)[..., np.newaxis]  # one occurrence of the max: its term is w_k
    others = terms.copy()
    np.put_along_axis(others, k, 0.0, axis=-1)
    others_sum, w_k = np.sum(others, axis=-1), np.take_along_axis(w, k, axis=-1)[..., 0]
    abs_minus_1 = np.where(total < 0, -(others_sum + (w_k + 1.0)), others_sum + (w_k - 1.0))
    near_1 = (np.abs(total) > 0.5) & (np.abs(total) < 2.0)
    log_abs = np.where(near_1, np.log1p(abs_minus_1), np.log(np.abs(total)))
    return shift[..., 0] + log_abs, np.sign(total)


def _weighted_logsumexp(x: npt.ArrayLike, axis: Axes, b: npt.ArrayLike | None,
                        keepdims: bool, where: npt.ArrayLike | None
                        ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                   np.dtype[Any]]:
    """logsumexp's ``(log|sum|, sign, result dtype)`` with weights ``b`` (None: 1)."""
    (x64,), dtype = _upcast(x)
    if b is not None and type(b) not in (bool, int, float):  # Python scalars promote weakly
        dtype = _result_dtype(np.zeros(0, dtype), _as_array(b, "b"))
    w = (np.float64(1.0) if b is None else _as_array(b, "b")).astype(np.float64)
    x64, w = np.broadcast_arrays(x64, w)
    w = np.where(_mask(where), w, 0.0)
    axes = _reduced_axes(axis, x64.ndim)
    x64, w = _slices_last(x64, axes), _slices_last(w, axes)
    if x64.shape[-1] == 0:  # an empty sum is 0
        log_abs, sign = np.full(x64.shape[:-1], -np.inf), np.zeros(x64.shape[:-1])
    else:
        log_abs, sign = _log_abs_weighted_sum(x64, w)
    if keepdims:
        log_abs, sign = np.expand_dims(log_abs, axes), np.expand_dims(sign, axes)
    return log_abs, sign, dtype


@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: Literal[False] = ..., keepdims: bool = ...,
              where: npt.ArrayLike | None = ...) -> FloatScalarOrArray: ...
@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: Literal[True], keepdims: bool = ..., where: npt.ArrayLike | None = ...
              ) -> tuple[FloatScalarOrArray, FloatScalarOrArray]: ...
@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: bool, keepdims: bool = ..., where: npt.ArrayLike | None = ...
              ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatScalarOrArray]: ...
@_silently
def logsumexp(x: npt.ArrayLike, axis: Axes = -1, *, b: npt.ArrayLike | None = None,
              return_sign: bool = False, keepdims: bool = False,
              where: npt.ArrayLike | None = None
              ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatScalarOrArray]:
    """``log(sum(b * exp(x)))`` along `axis`, computed as ``max + log(sum(b * exp(x - max)))``.

    Parameters
    ----------
    x : array_like
        Input values.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; ``None`` reduces the whole array, ``()``
        nothing (the result is `x`).
    b : array_like, optional
        Weights of the exponentials, broadcast against `x` (as in
        ``scipy.special.logsumexp``); may be negative or 0.  A term with
        ``b == 0`` is left out, even if `x` is NaN or inf there.  The result
        dtype is then the promotion of `x`'s and `b`'s (a Python scalar `b`
        keeps `x`'s).  Accurate while each ``b * exp(x - max(x))`` is a
        normal float64 (or 0) and their sum is finite.
    return_sign : bool, optional
        Return ``(log|sum|, sign)``: sign 1, -1, 0 for a zero sum (result
        ``-inf``), NaN for NaN.  Without it, a negative sum gives NaN.
    keepdims : bool, optional
        Keep the reduced axes (all axes for ``axis=None``) with length 1.
    where : array_like of bool, optional
        Broadcastable to `x`.  Entries where it is False are ignored, even if
        NaN or inf.  Empty and fully masked slices give ``-inf``.

    Returns
    -------
    ndarray or numpy scalar
        float32 for float16/float32 input, else float64; a NumPy scalar when the
        result is 0-d.  With ``return_sign``, a pair of them.

    Examples
    --------
    >>> logsumexp([[0.0, 0.0], [1.0, -np.inf]])
    array([0.69314718, 1.        ])
    >>> logsumexp(np.zeros((2, 3, 4)), axis=(0, 2)).round(6)
    array([2.079442, 2.079442, 2.079442])
    >>> logsumexp([0.0, 0.0, 0.0], b=[2.0, -1.0, 0.0], return_sign=True)
    (np.float64(0.0), np.float64(1.0))
    """
    if b is not None or return_sign:
        log_abs, sign, dtype = _weighted_logsumexp(x, axis, b, keepdims, where)
        if not return_sign:
            return np.where(sign < 0, np.nan, log_abs).astype(dtype)[()]
        return log_abs.astype(dtype)[()], sign.astype(dtype)[()]
    (x,), dtype = _upcast(x)
    mask = _mask(where)
    slice_max = _slice_max(x, axis, mask)
    log_total = _log_sum_exp_scaled(x - slice_max, axis, mask)
    # An infinite max decides the result alone: -inf (all -inf, empty, fully
    # masked) or +inf; the general formula would give NaN from inf - inf.
    result = np.where(np.isinf(slice_max), slice_max, slice_max + log_total)
    if not keepdims:
        result = np.squeeze(result, axis=axis)
    return result.astype(dtype)[()]


@_silently
def softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                     axis: Axes = -1) -> FloatArray:
    """Vector-Jacobian product of softmax: ``y * (g - sum(g * y))``.

    Parameters
    ----------
    grad_output : array_like
        ``g``, the gradient of a scalar loss with respect to the softmax output.
    output : array_like
        ``y``, the softmax output (same shape as `grad_output`).
    axis : int, tuple of ints or None, optional
        The axis (or axes) the softmax normalised over.

    Returns
    -------
    ndarray
        The gradient with respect to the softmax input.

    Examples
    --------
    >>> softmax_backward([1.0, 0.0], [0.5, 0.5])
    array([ 0.25, -0.25])
    """
    (g, y), dtype = _upcast(grad_output, output)
    # (NumPy < 2.2's stubs type this as Any.)
    return (y * (g - np.sum(g * y, axis=axis, keepdims=True))).astype(dtype)  # type: ignore[no-any-return, unused-ignore]


@_silently
def log_softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                         axis: Axes = -1) -> FloatArray:
    """Vector-Jacobian product of log_softmax: ``g - exp(y) * sum(g)``.

    Parameters
    ----------
    grad_output : array_like
        ``g``, the gradient of a scalar loss with respect to the log_softmax output.
    output : array_like
        ``y``, the log_softmax output (same shape as `grad_output`).
    axis : int, tuple of ints or None, optional
        The axis (or axes) the log_softmax normalised over.

    Returns
    -------
    ndarray
        The gradient with respect to the log_softmax input.

    Examples
    --------
    >>> log_softmax_backward([1.0, 0.0], np.log([0.5, 0.5]))
    array([ 0.5, -0.5])
    """
    (g, y), dtype = _upcast(grad_output, output)
    return (g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)).astype(dtype)


def top_k(x: npt.ArrayLike, k: int, axis: int = -1, *, largest: bool = True,
          sorted: bool = True) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The ``k`` largest (or smallest) entries along ``axis`` and their indices, by a stable sort.

    The semantics of :func:`fastsoftmax.top_k` (and ``torch.topk``'s values):
    descending for ``largest``, ascending otherwise (``sorted`` is ignored:
    always sorted); NaN counts as larger than ``+inf``; ``-0.0`` equals
    ``+0.0``; among equal values the lower index comes first.  A 0-d ``x``
    takes ``k`` 0 or 1 and gives itself and index 0.

    Parameters
    ----------
    x : array_like
        Input; the values come back in the result dtype (float32 for
        float16/float32, float64 otherwise).
    k : int
        ``0 <= k <= x.shape[axis]``.
    axis : int, optional
        The one axis to select along.
    largest, sorted : bool, optional
        As in :func:`fastsoftmax.top_k`.

    Returns
    -------
    values : ndarray
        ``x``'s shape with ``axis`` of length ``k``.
    indices : ndarray of int64
        Their positions along ``axis``.

    Examples
    --------
    >>> top_k([1.0, np.nan, 3.0, 3.0], 3)
    (array([nan,  3.,  3.]), array([1, 2, 3]))
    """
    a = _as_array(x, "x")
    a = a.astype(_result_dtype(a))
    if a.ndim == 0:
        if k not in (0, 1):
            raise ValueError(f"k={k} is out of range for a 0-d array")
        return a.copy(), np.zeros((), np.int64)
    rows = np.moveaxis(a, axis, -1)
    if not 0 <= k <= rows.shape[-1]:
        raise ValueError(f"k={k} is out of range for an axis of length {rows.shape[-1]}")
    nan = np.isnan(rows)
    finite_order = np.where(nan, 0, -rows if largest else rows)  # -0.0 and 0.0 sort as equal
    # lexsort: the last key first (NaN first for largest, last for smallest), then the
    # values; stable, so equal values keep their index order.
    order = np.lexsort((finite_order, ~nan if largest else nan), axis=-1)[..., :k]
    values = np.take_along_axis(rows, order, axis=-1)
    return np.moveaxis(values, -1, axis), np.moveaxis(order.astype(np.int64), -1, axis)
