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

import math
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from numpy.exceptions import AxisError

from ._typing import REDUCTIONS, Axes, FloatArray, FloatScalarOrArray, Reduction

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_backward",
    "log_softmax_backward",
    "cross_entropy",
]


# Every public function runs under this: inf - inf, 0/0, exp overflow at masked
# positions and log(0) are all expected here and produce the contract's values.
# (NumPy < 2.0's stubs make errstate generic, hence the ignore.)
_silently: np.errstate = np.errstate(all="ignore")  # type: ignore[type-arg, unused-ignore]


def _result_dtype(*arrays: npt.ArrayLike) -> np.dtype[Any]:
    """float32 for float16/float32 inputs, float64 for everything else."""
    dtype = np.result_type(*arrays)
    return np.dtype(np.float32) if dtype in (np.float16, np.float32) else np.dtype(np.float64)


def _upcast(*arrays: Any) -> tuple[list[npt.NDArray[np.float64]], np.dtype[Any]]:
    """Return the arrays converted to float64, and the result dtype they share."""
    # (arrays: array_likes; the name is reused for the list of ndarrays.)
    arrays = [np.asarray(a) for a in arrays]  # type: ignore[assignment]
    return [a.astype(np.float64) for a in arrays], _result_dtype(*arrays)


def _cast(x: npt.ArrayLike, dtype: npt.DTypeLike | None) -> npt.ArrayLike:
    """``x`` cast to ``dtype`` (float32 or float64) when one is given, as ``dtype=`` asks."""
    if dtype is None:
        return x
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = np.dtype(object)
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must name float32 or float64, got {dtype!r}")
    return np.asarray(x).astype(resolved)


def _mask(where: npt.ArrayLike | None) -> npt.NDArray[np.bool_] | Literal[True]:
    """``where=None`` means every entry takes part; ``True`` broadcasts like that."""
    return True if where is None else np.asarray(where, dtype=bool)


def _slice_max(x: npt.NDArray[np.float64], axis: Axes,
               mask: npt.NDArray[np.bool_] | Literal[True]) -> npt.NDArray[np.float64]:
    """Max over the unmasked entries of each slice (NaN if any is NaN), keepdims.

    ``initial=-inf`` makes empty and fully masked slices give ``-inf``.
    """
    # NumPy's stubs type np.max with where= and initial= as Any.
    return np.max(x, axis=axis, keepdims=True, where=mask,  # type: ignore[no-any-return, unused-ignore]
                  initial=-np.inf)


def _scaled_logits(x: npt.NDArray[np.float64], axis: Axes, temperature: float,
                   mask: npt.NDArray[np.bool_] | Literal[True]) -> npt.NDArray[np.float64]:
    """``(x - slice max) / temperature``: <= 0 on unmasked entries, so exp never overflows.

    Subtracting the max before dividing keeps huge and tiny temperatures finite.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return (x - _slice_max(x, axis, mask)) / temperature


def _reduced_axes(axis: Axes, ndim: int) -> tuple[int, ...]:
    """The axes ``axis`` reduces, sorted, as NumPy's reductions read it.

    None: every axis; a 0-d array's ``0`` and ``-1``: none (it is one slice,
    itself).  An axis out of range raises ``AxisError``, a repeated one
    ValueError.
    """
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, tuple):
        if ndim == 0 and axis in (0, -1):
            return ()
        axis = (axis,)
    for a in axis:
        if not -ndim <= a < ndim:
            raise AxisError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    axes = sorted({a % ndim for a in axis})
    if len(axes) != len(axis):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(axes)


def _slices_last(a: npt.NDArray[Any], axes: tuple[int, ...]) -> npt.NDArray[Any]:
    """``a`` with the reduced ``axes`` moved last and flattened into one, of the slice's length.

    A slice's entries come in C order; the other axes keep theirs.
    """
    kept = tuple(side for i, side in enumerate(a.shape) if i not in axes)
    moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
    return moved.reshape(kept + (math.prod(a.shape[i] for i in axes),))


def _log_sum_exp_scaled(z: npt.NDArray[np.float64], axis: Axes,
                        mask: npt.NDArray[np.bool_] | Literal[True]) -> npt.NDArray[np.float64]:
    """``log(sum(exp(z)))`` over slices (keepdims) of scaled logits ``z <= 0``.

    ``z`` is exactly 0 at a slice's max, whose term is 1: the first such term is
    left out and the others summed into ``log1p`` (SciPy gh-18295), so a slice
    that one entry dominates keeps its relative precision (``log(1 + s)``
    would round ``s < 1e-16`` away).  A slice without a finite max (NaN, inf)
    keeps every term.  The slices are flattened (:func:`_slices_last`) to find
    each one's first max.
    """
    axes = _reduced_axes(axis, z.ndim)
    z_rows = _slices_last(z, axes)
    keep = _slices_last(np.broadcast_to(mask, z.shape), axes)
    at_max = (z_rows == 0) & keep
    first = at_max & (np.cumsum(at_max, axis=-1) == 1)
    rest = np.sum(np.where(first | ~keep, 0.0, np.exp(z_rows)), axis=-1)
    dropped = np.any(first, axis=-1)
    return np.expand_dims(np.where(dropped, np.log1p(rest), np.log(rest)), axes)


def _log_softmax_float64(x: npt.NDArray[np.float64], axis: Axes, temperature: float,
                         mask: npt.NDArray[np.bool_] | Literal[True]) -> npt.NDArray[np.float64]:
    z = _scaled_logits(x, axis, temperature, mask)
    return np.where(mask, z - _log_sum_exp_scaled(z, axis, mask), -np.inf)


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
    dtype : float32 or float64, optional
        `x` is cast to it first, and the result has it.

    Returns
    -------
    ndarray
        Same shape as `x`: `dtype` if given, else float32 for float16/float32
        input, else float64.

    Examples
    --------
    >>> softmax([0.0, np.log(3.0)])
    array([0.25, 0.75])
    >>> softmax(np.ones((2, 2, 2)), axis=(1, 2), dtype=np.float32)[0]
    array([[0.25, 0.25],
           [0.25, 0.25]], dtype=float32)
    """
    (x,), dtype = _upcast(_cast(x, dtype))
    mask = _mask(where)
    unnormalised = np.where(mask, np.exp(_scaled_logits(x, axis, temperature, mask)), 0.0)
    total = np.sum(unnormalised, axis=axis, keepdims=True)
    # A fully masked slice divides 0 by 0 here; the mask replaces that NaN by 0.
    return np.where(mask, unnormalised / total, 0.0).astype(dtype)


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
    dtype : float32 or float64, optional
        `x` is cast to it first, and the result has it.

    Returns
    -------
    ndarray
        Same shape as `x`: `dtype` if given, else float32 for float16/float32
        input, else float64.

    Examples
    --------
    >>> log_softmax([0.0, 0.0])
    array([-0.69314718, -0.69314718])
    >>> log_softmax(np.float32(5.0), axis=0, dtype=np.float64)  # 0-d: one slice, itself
    array(0.)
    """
    (x,), dtype = _upcast(_cast(x, dtype))
    return _log_softmax_float64(x, axis, temperature, _mask(where)).astype(dtype)


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
        dtype = _result_dtype(np.zeros(0, dtype), np.asarray(b))
    w = np.asarray(1.0 if b is None else b, dtype=np.float64)
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


def _normalize_axis(axis: int, ndim: int) -> int:
    """Non-negative class axis; raises for an axis out of range."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {ndim}-d logits")
    return axis % ndim


def _float_labels(target: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Float class labels (scikit-learn's ``y``: 2.0 is class 2) as int64; each must be an integer."""
    if not np.all((np.trunc(target) == target) & (np.abs(target) < 2.0**63)):
        raise ValueError("float class labels must be integers")
    return target.astype(np.int64)


def _index_target_terms(
    log_probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer[Any]],
    class_weight: npt.NDArray[np.float64], ignore_index: int, label_smoothing: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_],
           npt.NDArray[np.float64]]:
    """Per-sample losses, effective targets, ignored samples and 'mean' denominator terms.

    The effective target ``q`` is what the loss weighs each log-probability by
    (``loss = -sum_c q[c] * log_p[c]``); it gives the gradient.  torch's
    ``nll_loss`` plus its label-smoothing term is, per sample::

        loss = (1 - eps) * w[y] * (-log_p[y])  +  eps / C * sum_c w[c] * (-log_p[c])

    with ignored samples contributing 0, and 'mean' dividing by ``sum w[y]``
    over the non-ignored samples (NaN when all are ignored): the last array
    returned holds those terms, ``w[y]`` (0 where ignored).  The smoothing
    term is only added when ``eps > 0``, as torch does: otherwise a ``-inf``
    logit on a non-target class would turn the loss into ``0 * inf = NaN``.
    """
    n_classes = log_probs.shape[-1]
    if labels.shape != log_probs.shape[:-1]:
        raise ValueError(
            f"class-index target has shape {labels.shape}, expected {log_probs.shape[:-1]}"
        )
    ignored = labels == ignore_index
    if np.any((~ignored) & ((labels < 0) | (labels >= n_classes))):
        raise ValueError(f"target labels must lie in [0, {n_classes}) or equal ignore_index")
    safe_labels = np.where(ignored, 0, labels).astype(np.intp)[..., np.newaxis]
    label_weight = np.where(ignored, 0.0, class_weight[safe_labels[..., 0]])

    nll = -np.take_along_axis(log_probs, safe_labels, axis=-1)[..., 0]
    losses = (1.0 - label_smoothing) * label_weight * nll
    one_hot = np.zeros_like(log_probs)
    np.put_along_axis(one_hot, safe_labels, 1.0, axis=-1)
    effective_target = (1.0 - label_smoothing) * label_weight[..., np.newaxis] * one_hot
    if label_smoothing > 0:
        smoothing_share = label_smoothing / n_classes
        losses = losses + smoothing_share * -(log_probs @ class_weight)
        effective_target = effective_target + smoothing_share * class_weight
    losses = np.where(ignored, 0.0, losses)
    effective_target = np.where(ignored[..., np.newaxis], 0.0, effective_target)
    return losses, effective_target, ignored, label_weight


def _probability_target_terms(
    log_probs: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64],
    class_weight: npt.NDArray[np.float64], label_smoothing: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_],
           npt.NDArray[np.float64]]:
    """Per-sample losses, effective targets, ignored samples and 'mean' denominator terms.

    torch: ``t' = t * (1 - eps) + eps / C``; ``loss = -sum_c w[c] * t'[c] * log_p[c]``;
    'mean' divides by the number of samples (terms of 1), not by the weights.  The product
    is taken literally, as torch does, so a 0 target on a ``-inf`` logit makes
    the loss NaN (the gradient stays finite).
    """
    if probabilities.shape != log_probs.shape:
        raise ValueError(
            f"probability target has shape {probabilities.shape}, expected {log_probs.shape}"
        )
    n_classes = log_probs.shape[-1]
    smoothed = probabilities * (1.0 - label_smoothing) + label_smoothing / n_classes
    effective_target = smoothed * class_weight
    losses = -np.sum(effective_target * log_probs, axis=-1)
    nothing_ignored = np.zeros(losses.shape, dtype=bool)
    return losses, effective_target, nothing_ignored, np.ones(losses.shape)


@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: Literal[False] = ...,
) -> FloatScalarOrArray: ...
@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: Literal[True],
) -> tuple[FloatScalarOrArray, FloatArray]: ...
@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: bool,
) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]: ...
@_silently
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = -1,
    weight: npt.ArrayLike | None = None,
    sample_weight: npt.ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]:
    """Cross-entropy loss from logits, exactly as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, with the classes along `axis`.  torch's layout
        ``(N, C, d1, ...)`` is ``axis=1``; ``(C,)`` is a single sample.
    target : array_like
        Either class indices with the shape of `logits` minus the class axis
        (any int dtype, or floats holding integers, as scikit-learn's ``y``),
        or floating class probabilities with the shape of `logits`
        (`ignore_index` does not apply to those).  A float target is labels
        when it has one dimension fewer than `logits`.
    axis : int, optional
        The class axis.
    weight : array_like, optional
        ``(C,)`` per-class rescaling weights.
    sample_weight : array_like, optional
        Finite per-sample weights ``s`` (scikit-learn's), broadcastable to the
        shape of `logits` minus the class axis: each sample's loss and
        gradient are multiplied by its weight, and 'mean' divides by
        ``sum(s * w[y])`` over non-ignored samples (``sum(s)`` for
        probability targets).
    ignore_index : int, optional
        Class-index targets equal to it contribute neither loss nor gradient.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' of index targets is the weighted mean ``sum(w[y] * loss) / sum(w[y])``
        over non-ignored samples (NaN if all are ignored); of probability targets
        it is the plain mean over samples.  'none' gives per-sample losses
        (0 for ignored samples).
    label_smoothing : float, optional
        ``eps`` in ``[0, 1]``: mixes the target with the uniform distribution
        ``eps / C`` (torch's formula, including how `weight` enters).
    return_grad : bool, optional
        Also return the gradient with respect to `logits` (of ``loss.sum()``
        for reduction 'none'), as torch autograd gives it.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar for 'mean'/'sum', per-sample losses for 'none' (a scalar for
        1-D logits), float32 for float16/float32 logits, else float64.
    grad : ndarray
        Only with ``return_grad=True``: the gradient, shaped like `logits`, of
        the same dtype as `loss`.

    Examples
    --------
    >>> float(cross_entropy([[0.0, 0.0, 0.0, 0.0]], [2]))  # log(4)
    1.3862943611198906
    >>> cross_entropy([[0.0, 0.0], [0.0, 0.0]], [1.0, 0.0], sample_weight=[3.0, 1.0],
    ...               reduction="none")  # float labels, losses log(2) times 3 and 1
    array([2.07944154, 0.69314718])
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    (logits,), dtype = _upcast(logits)
    target = np.asarray(target)
    axis = _normalize_axis(axis, logits.ndim)
    if target.dtype.kind == "f" and target.ndim == logits.ndim - 1:
        target = _float_labels(target)

    # Work with the classes last; the gradient is moved back at the end.
    log_probs = _log_softmax_float64(np.moveaxis(logits, axis, -1), -1, 1.0, True)
    n_classes = log_probs.shape[-1]
    class_weight = (
        np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    )
    if np.issubdtype(target.dtype, np.integer):
        losses, effective_target, ignored, denominator_terms = _index_target_terms(
            log_probs, target, class_weight, ignore_index, label_smoothing
        )
    else:
        losses, effective_target, ignored, denominator_terms = _probability_target_terms(
            log_probs, np.moveaxis(target.astype(np.float64), axis, -1),
            class_weight, label_smoothing,
        )
    if sample_weight is not None:
        # Each sample's loss, and so its effective target and gradient, times its weight.
        s = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), losses.shape)
        if not np.all(np.isfinite(s)):
            raise ValueError("sample_weight must be finite")
        losses = losses * s
        effective_target = effective_target * s[..., np.newaxis]
        denominator_terms = denominator_terms * s
    mean_denominator = np.sum(denominator_terms)

    loss: FloatScalarOrArray
    if reduction == "none":
        loss, grad_scale = losses, 1.0
    elif reduction == "sum":
        loss, grad_scale = np.sum(losses), 1.0
    else:
        loss, grad_scale = np.sum(losses) / mean_denominator, 1.0 / mean_denominator
    loss = np.asarray(loss).astype(dtype)[()]
    if not return_grad:
        return loss

    # loss_i = -sum_c q_ic * log_softmax_ic has d loss_i / d logits_i =
    # sum_c(q_ic) * softmax_i - q_i (sum_c q_ic is not 1 once weights enter).
    # Ignored samples get exactly 0, as in torch, even when the mean's scale
    # is 1/0 (all ignored).
    probs = np.exp(log_probs)
    total_target = np.sum(effective_target, axis=-1, keepdims=True)
    grad = (total_target * probs - effective_target) * grad_scale
    grad = np.where(ignored[..., np.newaxis], 0.0, grad)
    return loss, np.moveaxis(grad, -1, axis).astype(dtype)
