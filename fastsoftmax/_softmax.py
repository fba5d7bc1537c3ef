"""The softmax family: softmax, log_softmax, logsumexp, and the backward helpers.

Each function converts and checks its arguments (``_checks``), picks the thread
count (``_threads``) and hands C-contiguous arrays to ``fastsoftmax._core``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import (
    _FLOAT32,
    _FLOAT64,
    _as_float_array,
    _check_out,
    _check_temperature,
    _normalize_axis,
    _prepare_out,
    _prepare_where,
    _reduction_view,
    _unalias,
)
from ._docs import REFERENCES, accuracy, fill_doc
from ._threads import resolve_threads
from ._typing import FloatArray, FloatScalarOrArray

__all__ = ["softmax", "log_softmax", "logsumexp", "softmax_backward", "log_softmax_backward"]

# The kernels' operation numbers (fs_op in src/fs_kernels.h), one definition for every layer.
_OP_SOFTMAX, _OP_LOG_SOFTMAX, _OP_LOGSUMEXP = _core.OP_SOFTMAX, _core.OP_LOG_SOFTMAX, _core.OP_LOGSUMEXP
_DEFAULT_TEMPERATURE = 1.0  # the very object the signatures below use as their default
# 1/T must be a normal, finite number of the working dtype (see _softmax_like).
_SCALE_RANGE: dict[np.dtype[Any], tuple[float, float]] = {
    dt: (float(np.finfo(dt).tiny), float(np.finfo(dt).max)) for dt in (_FLOAT32, _FLOAT64)}


def _softmax_like(x: npt.ArrayLike, axis: int | None, temperature: float,
                  where: npt.ArrayLike | None, out: FloatArray | None, n_threads: int | None,
                  op: int) -> FloatArray:
    x = _as_float_array(x, "x")
    axis = _normalize_axis(axis, x.ndim)
    # The defaults skip their checks: a tiny call is mostly this function's overhead.
    scale = 1.0 if temperature is _DEFAULT_TEMPERATURE else _check_temperature(temperature)
    mask = None if where is None else _prepare_where(where, x.shape, axis)
    threads = resolve_threads(n_threads, x.size)
    out, x = _prepare_out(out, x.shape, x.dtype, x)
    if mask is not None:
        mask = _unalias(out, mask)
    outer, n, inner = _reduction_view(x.shape, axis)
    if not x.size:
        return out
    low, high = _SCALE_RANGE[x.dtype]
    if scale != 1.0 and not low <= scale <= high:
        # 1/T would round to 0 or inf in the working precision (and 0 * inf is
        # NaN).  Run this call in float64, where 1/T is finite for any float32
        # T; for a float64 T so small that 1/T overflows, scale x and T by
        # 2**64 first (exact), which leaves x/T unchanged.
        x64, out64 = x.astype(np.float64), np.empty(x.shape, np.float64)
        if math.isinf(scale):
            x64 = np.ldexp(x64, 64)
            scale = 1.0 / math.ldexp(float(temperature), 64)
        _core.softmax_family(x64, out64, mask, outer, n, inner, scale, op, threads)
        with np.errstate(over="ignore"):  # a log-probability below -3.4e38 is -inf in float32
            out[...] = out64
        return out
    _core.softmax_family(x, out, mask, outer, n, inner, scale, op, threads)
    return out


@fill_doc(accuracy=accuracy("a relative ``u |x - max| / T``, from rounding ``(x - max) / T``"),
          references=REFERENCES)
def softmax(x: npt.ArrayLike, axis: int | None = -1, *,
            temperature: float = _DEFAULT_TEMPERATURE, where: npt.ArrayLike | None = None,
            out: FloatArray | None = None, n_threads: int | None = None) -> FloatArray:
    """Softmax along an axis: ``exp(x/T - max) / sum(exp(x/T - max))``.

    Parameters
    ----------
    x : array_like
        Input logits of any shape.  float32 and float64 are computed as they
        are; float16 is computed and returned as float32; integers, bools and
        lists become float64.  Complex, object and string input raise
        TypeError.  Non-contiguous input is copied once.
    axis : int or None, default -1
        The axis to normalize over.  ``None`` treats the whole array as one
        slice, as ``scipy.special.softmax`` does by default.
    temperature : float, default 1.0
        Divides the logits: ``softmax(x / temperature)``.  Finite and > 0.
    where : array_like of bool, optional
        Mask broadcastable to ``x`` (e.g. a ``(T, T)`` causal mask for
        ``(B, T, T)`` scores).  False entries are left out of the slice:
        their output is 0, and a fully masked slice is all 0, never NaN.
    out : ndarray, optional
        C-contiguous, writeable array of ``x``'s shape and the result dtype to
        write into; may be ``x`` itself (in place).
    n_threads : int, optional
        ``None``: automatic (OpenMP's maximum, capped by the CPU quota unless
        ``OMP_NUM_THREADS`` is set; one thread for small inputs).
        ``k > 0``: exactly ``k``.  Negative: counts back from the maximum
        (``-1`` all, ``-2`` all but one).  0 is an error.  Results are
        bitwise identical for every thread count.

    Returns
    -------
    ndarray
        Same shape as ``x``; each slice along ``axis`` sums to 1.

    Raises
    ------
    TypeError
        For a non-real dtype, a non-int ``axis`` or ``n_threads``, an ``out``
        that is not an ndarray or has the wrong dtype.
    ValueError
        For an axis out of range, a temperature that is not finite and
        positive, an ``out`` of the wrong shape, non-contiguous or read-only,
        or ``n_threads=0``.

    Notes
    -----
    A slice holding a NaN or a +inf becomes all NaN; an all ``-inf`` slice
    becomes NaN (as SciPy and PyTorch).  Shifting by the max makes the result
    exactly invariant to a shared offset, however large.

    %(accuracy)s

    Sums are accumulated in double (float32) or compensated (float64), so
    rows of 256k entries keep this accuracy.

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_SOFTMAX)


@fill_doc(accuracy=accuracy("``3u (|z| + max|z|)``, from rounding ``z = (x - max) / T``"),
          references=REFERENCES)
def log_softmax(x: npt.ArrayLike, axis: int | None = -1, *,
                temperature: float = _DEFAULT_TEMPERATURE, where: npt.ArrayLike | None = None,
                out: FloatArray | None = None, n_threads: int | None = None) -> FloatArray:
    """Log of the softmax along an axis: ``x/T - logsumexp(x/T)``, computed stably.

    Parameters
    ----------
    x : array_like
        Input logits of any shape (dtypes as in :func:`softmax`).
    axis : int or None, default -1
        The axis to normalize over; ``None`` for the whole array.
    temperature : float, default 1.0
        Divides the logits.  Finite and > 0.
    where : array_like of bool, optional
        Mask broadcastable to ``x``; False entries are left out of the slice
        and their output is ``-inf`` (a fully masked slice is all ``-inf``).
    out : ndarray, optional
        C-contiguous, writeable array of ``x``'s shape and the result dtype;
        may be ``x`` itself.
    n_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        Same shape as ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`.

    Notes
    -----
    Computed as ``(x - max)/T - log(sum(exp((x - max)/T)))``, never as the log
    of a softmax, so tiny probabilities keep their full precision.  The sum
    is accumulated in double lanes.  NaN and infinities behave as in
    :func:`softmax`.

    %(accuracy)s

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([-2.4076, -1.4076, -0.4076])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_LOG_SOFTMAX)


@fill_doc(accuracy=accuracy("``2u max|x|``, from rounding ``x`` and the result"),
          references=REFERENCES)
def logsumexp(x: npt.ArrayLike, axis: int | None = -1, *, keepdims: bool = False,
              where: npt.ArrayLike | None = None, out: FloatArray | None = None,
              n_threads: int | None = None) -> FloatScalarOrArray:
    """``log(sum(exp(x)))`` along an axis, without overflow or underflow.

    Parameters
    ----------
    x : array_like
        Input of any shape (dtypes as in :func:`softmax`).
    axis : int or None, default -1
        The axis to reduce; ``None`` reduces the whole array.
    keepdims : bool, default False
        Keep the reduced axis with length 1.
    where : array_like of bool, optional
        Mask broadcastable to ``x``; only True entries are summed.  A fully
        masked slice gives ``-inf``.
    out : ndarray, optional
        C-contiguous, writeable array of the result's shape and dtype.
    n_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray or scalar
        ``x``'s shape without ``axis`` (or with it of length 1 when
        ``keepdims``).  A 0-d result is returned as a NumPy scalar unless
        ``out`` is given.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`.

    Notes
    -----
    ``max + log(sum(exp(x - max)))``, with the sum accumulated in double:
    the shift by the max makes every exponential at most 1, so nothing
    overflows.  A NaN in the slice gives NaN; a +inf gives +inf; an all
    ``-inf`` or empty slice gives ``-inf``.

    %(accuracy)s

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> float(fastsoftmax.logsumexp(np.array([1000.0, 1000.0])).round(6))
    1000.693147
    """
    x = _as_float_array(x, "x")
    axis = _normalize_axis(axis, x.ndim)
    mask = _prepare_where(where, x.shape, axis)
    shape: tuple[int, ...]
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
    elif keepdims:
        shape = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    else:
        shape = x.shape[:axis] + x.shape[axis + 1:]
    threads = resolve_threads(n_threads, x.size)
    given_out = out is not None
    # Not in place: out is smaller than x, so a kernel writing it is not
    # written to read x at the same offsets.
    out, x = _prepare_out(out, shape, x.dtype, x, in_place=False)
    if mask is not None:
        mask = _unalias(out, mask)
    outer, n, inner = _reduction_view(x.shape, axis)
    if out.size:
        _core.softmax_family(x, out, mask, outer, n, inner, 1.0, _OP_LOGSUMEXP, threads)
    if out.ndim == 0 and not given_out:
        return out[()]
    return out


# ---------------------------------------------------------------- backward helpers

def _backward(grad_output: npt.ArrayLike, output: npt.ArrayLike, axis: int | None,
              out: FloatArray | None, n_threads: int | None, log: bool) -> FloatArray:
    grad_output = _as_float_array(grad_output, "grad_output")
    output = _as_float_array(output, "output")
    if grad_output.shape != output.shape:
        raise ValueError(f"grad_output and output must have the same shape, got "
                         f"{grad_output.shape} and {output.shape}")
    dtype = np.result_type(grad_output.dtype, output.dtype)
    grad_output = grad_output.astype(dtype, copy=False)
    output = output.astype(dtype, copy=False)
    axis = _normalize_axis(axis, output.ndim)
    threads = resolve_threads(n_threads, output.size)
    if out is None:
        out = np.empty(output.shape, dtype)
    else:
        out = _check_out(out, output.shape, dtype)
        grad_output = _unalias(out, grad_output, in_place=True)
        output = _unalias(out, output, in_place=True)
    if output.size:
        outer, n, inner = _reduction_view(output.shape, axis)
        _core.backward(grad_output, output, out, outer, n, inner, log, threads)
    return out


def softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                     axis: int | None = -1, *, out: FloatArray | None = None,
                     n_threads: int | None = None) -> FloatArray:
    """Gradient of a loss through ``softmax``: ``output * (grad_output - sum(grad_output * output))``.

    Parameters
    ----------
    grad_output : array_like
        d(loss)/d(softmax output), the same shape as ``output``.
    output : array_like
        The softmax output ``y = softmax(x, axis)``.
    axis : int or None, default -1
        The axis softmax normalized over.
    out : ndarray, optional
        C-contiguous, writeable array for the result; may be either input.
    n_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        d(loss)/dx, the shape of ``output``, in the wider of the two dtypes.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`, and a ValueError when the shapes differ.

    Notes
    -----
    Two passes over each slice: ``sum(grad_output * output)``, in short blocks
    flushed into double lanes (compensated for float64), then the
    elementwise result.  Passing ``out=grad_output`` reuses the incoming gradient's memory, as an
    in-place autograd step would.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> y = fastsoftmax.softmax(np.array([1.0, 2.0, 3.0]))
    >>> fastsoftmax.softmax_backward(np.array([0.0, 0.0, 1.0]), y).round(4)
    array([-0.0599, -0.1628,  0.2227])
    """
    return _backward(grad_output, output, axis, out, n_threads, False)


def log_softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                         axis: int | None = -1, *, out: FloatArray | None = None,
                         n_threads: int | None = None) -> FloatArray:
    """Gradient of a loss through ``log_softmax``: ``grad_output - exp(output) * sum(grad_output)``.

    Parameters
    ----------
    grad_output : array_like
        d(loss)/d(log_softmax output), the same shape as ``output``.
    output : array_like
        The log_softmax output ``y = log_softmax(x, axis)``.
    axis : int or None, default -1
        The axis log_softmax normalized over.
    out : ndarray, optional
        C-contiguous, writeable array for the result; may be either input.
    n_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        d(loss)/dx, the shape of ``output``, in the wider of the two dtypes.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`, and a ValueError when the shapes differ.

    Notes
    -----
    Two passes over each slice: ``sum(grad_output)``, in short blocks flushed
    into double lanes (compensated for float64), then
    ``grad_output - exp(output) * sum`` with the forward pass's vectorized
    exp, extended to the whole range: ``output`` may hold any values, not
    only log-probabilities.  ``exp(output)`` is finite up to 88.72283
    (float32) or 709.782712893384 (float64), the largest arguments with a
    finite exp, and ``inf`` above, so the result saturates to a huge finite
    number or to ``-inf``/``inf`` (by the sign of ``sum``), never NaN but
    for ``inf * 0`` when ``sum`` is 0.  The product is computed in the
    input's precision: in float32 it is infinite for ``output`` above
    88.72283 even where the float64 ``fastsoftmax.reference`` is finite.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> y = fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0]))
    >>> fastsoftmax.log_softmax_backward(np.array([0.0, 0.0, -1.0]), y).round(4)
    array([ 0.09  ,  0.2447, -0.3348])
    """
    return _backward(grad_output, output, axis, out, n_threads, True)

