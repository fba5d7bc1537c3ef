"""The softmax family: softmax, log_softmax and the backward helpers (logsumexp: ``_logsumexp``).

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
    _as_dtype_array,
    _as_16_bit_array,
    _as_kernel_array,
    _check_result_dtype,
    _check_out,
    _check_temperature,
    _gather_axes,
    _is_16_bit_of,
    _kernel_view,
    _mask_slices,
    _normalize_axes,
    _prepare_out,
    _prepare_where,
    _reduction_view,
    _result_dtype,
    _scatter_back,
    _scattered,
    _unalias,
    _widened,
)
from ._docs import REFERENCES, accuracy, axes, fill_doc
from ._pool import fresh
from ._threads import PARALLEL_MIN_ELEMENTS, resolve_threads
from ._typing import Axes, Count, FloatArray

__all__ = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"]

# The kernels' operation numbers (fs_op in src/fs_kernels.h), one definition for every layer.
_OP_SOFTMAX, _OP_LOG_SOFTMAX = _core.OP_SOFTMAX, _core.OP_LOG_SOFTMAX
_DEFAULT_TEMPERATURE = 1.0  # the very object the signatures below use as their default
# The 1/T the kernels take in the working dtype (see _softmax_like): finite, and at
# least 2**-100 (float32) or 2**-1000 (float64), so that an x - max rounded past the
# dtype's largest number (2**128, 2**1024: a slice spanning more than it), which the
# kernels then hold as -inf, has |(x - max)/T| > 2**28 or 2**24: an exponential of 0
# all the same (log_softmax's -inf there is the README's limit).
_SCALE_RANGE: dict[np.dtype[Any], tuple[float, float]] = {
    _FLOAT32: (2.0**-100, float(np.finfo(_FLOAT32).max)),
    _FLOAT64: (2.0**-1000, float(np.finfo(_FLOAT64).max))}


def _shift_and_adjust(parts: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
                      dtype: np.dtype[Any], op: int, exponent: int = 0
                      ) -> tuple[FloatArray, FloatArray]:
    """The kernels' per-slice shift and adjustment (``softmax_shifted``) from logsumexp's halves.

    ``parts`` is ``(top, log_sum)`` of every slice (``_logsumexp.logsumexp_parts``,
    joined over the pieces of a slice).  A finite ``top`` is the shift, and the
    adjustment is ``exp(-log_sum)`` (softmax) or ``log_sum`` (log_softmax).  A NaN
    or infinite ``top`` makes the slice NaN, as softmax's rule for a slice holding
    NaN or +inf or all -inf: shift +inf (so that no ``x - shift`` is positive) and
    adjustment NaN; masked-out outputs stay 0 or -inf.  ``exponent``: x was scaled
    by ``2**exponent`` (the tiny-temperature path), and the shift is too.
    """
    top, log_sum = parts
    finite = np.isfinite(top)
    shift = np.where(finite, np.ldexp(top, exponent), np.inf).astype(dtype)
    adjust = log_sum if op == _OP_LOG_SOFTMAX else np.exp(-log_sum)
    adjust = np.where(finite, adjust, np.nan).astype(dtype)
    return np.ascontiguousarray(shift), np.ascontiguousarray(adjust)


def _slice_max(x: FloatArray, mask: npt.NDArray[np.bool_] | None, outer: int, n: int,
               inner: int) -> FloatArray:
    """The max of each of the kernels' ``(outer, inner)`` slices of ``x`` over its kept
    entries (``mask``, as the kernels read it: possibly broadcast), -inf where none is."""
    kept = None if mask is None else _mask_slices(mask, x.shape, outer, n, inner)
    top: FloatArray = np.max(x.reshape(outer, n, inner), axis=1,
                             where=True if kept is None else kept, initial=-np.inf)
    return top


def _softmax_like(x: npt.ArrayLike, axis: Axes, temperature: float,
                  where: npt.ArrayLike | None, out: FloatArray | None, n_threads: Count,
                  op: int, dtype: npt.DTypeLike | None = None,
                  parts: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
                  ) -> FloatArray:
    """softmax or log_softmax (``op``); with ``parts``, each slice's ``(top, log_sum)`` is
    given (of the reduced shape, float64: fastsoftmax.dask, for slices split across
    chunks) and only the output pass runs (``_shift_and_adjust``)."""
    if dtype is None:
        x = _as_kernel_array(x, "x")
        result_dtype = _result_dtype(x)
        if isinstance(out, np.ndarray) and _is_16_bit_of(x, out.dtype):
            result_dtype = out.dtype  # an out= of x's own 16-bit type: a 16-bit result
    else:
        result_dtype = _check_result_dtype(dtype)
        x = (_as_16_bit_array(x, "x", result_dtype) if result_dtype.itemsize == 2
             else _as_dtype_array(x, "x", result_dtype))
    axis = _normalize_axes(axis, x.ndim)
    # The defaults skip their checks: a tiny call is mostly this function's overhead.
    scale = 1.0 if temperature is _DEFAULT_TEMPERATURE else _check_temperature(temperature)
    mask = None if where is None else _prepare_where(where, x.shape, axis)
    threads = resolve_threads(n_threads, x.size)
    out, x = _prepare_out(out, x.shape, result_dtype, x)
    if mask is not None:
        mask = _unalias(out, mask)
    if type(axis) is tuple and _scattered(axis):
        # Axes apart in memory: computed on a copy with them last, then put back.
        gathered, mask, trailing = _gather_axes(x, mask, axis)
        result = _softmax_like(gathered, trailing, temperature, mask, None, n_threads, op,
                               parts=parts)
        return _scatter_back(result, axis, out)
    outer, n, inner = _reduction_view(x.shape, axis)
    if not x.size:
        return out
    low, high = _SCALE_RANGE[_FLOAT32 if result_dtype.itemsize == 2 else result_dtype]
    if scale != 1.0 and not low <= scale <= high:
        # 1/T would round to inf in the working precision (and 0 * inf is NaN),
        # or is so small that x - max overflowing (a slice spanning more than the
        # dtype's largest number, which the kernels round to -inf) could matter.
        # Run this call in float64, where neither happens for float32 x.  For
        # float64 x, scale x and T by the same power of two, which leaves x/T
        # unchanged: by 2**-64 for a small 1/T (exact, but for an x made
        # subnormal, whose (x - max)/T rounds to 0 either way); by 2**64 for a
        # 1/T that overflows, after taking each slice's max out of x (x itself
        # scaled would overflow from |x| > 2**960, and inf - inf is NaN; a
        # difference whose scaling overflows has (x - max)/T = -inf too).
        x64, out64 = _widened(x, _FLOAT64), np.empty(x.shape, np.float64)
        exponent = 0
        if result_dtype == _FLOAT64 and scale < low:
            x64, exponent = np.ldexp(x64, -64), -64
            scale = 1.0 / math.ldexp(float(temperature), -64)
        elif math.isinf(scale):
            top = parts[0] if parts is not None else _slice_max(x64, mask, outer, n, inner)
            top = np.where(np.isfinite(top), top, 0.0).reshape(outer, 1, inner)
            with np.errstate(over="ignore", invalid="ignore"):
                x64 = np.ldexp(x64.reshape(outer, n, inner) - top, 64).reshape(x.shape)
            if parts is not None:  # the shift is taken out already where it is finite
                parts = (np.where(np.isfinite(parts[0]), 0.0, parts[0]), parts[1])
            exponent = 64
            scale = 1.0 / math.ldexp(float(temperature), 64)
        shift = adjust = None
        if parts is not None:
            shift, adjust = _shift_and_adjust(parts, _FLOAT64, op, exponent)
        _core.softmax_family(x64, out64, mask, outer, n, inner, scale, op, threads,
                             shift=shift, adjust=adjust)
        with np.errstate(over="ignore"):  # a log-probability below -3.4e38 is -inf in float32
            if out.dtype.itemsize == 2:  # the float32 result, rounded once, as everywhere else
                _core.narrow(out64.astype(_FLOAT32), _kernel_view(out), threads)
            else:
                out[...] = out64
        return out
    shift, adjust = (None, None) if parts is None else _shift_and_adjust(parts, result_dtype, op)
    _core.softmax_family(x, _kernel_view(out), mask, outer, n, inner, scale, op, threads,
                         shift=shift, adjust=adjust)
    return out


# What axes apart in memory cost softmax and log_softmax (Notes).
_COPIED_BACK = ("computed on a copy of ``x`` with them moved last, and the\n"
                "result is copied back into ``x``'s layout")


@fill_doc(accuracy=accuracy("a relative ``u |x - max| / T``, from rounding ``(x - max) / T``"),
          axes=axes(_COPIED_BACK), references=REFERENCES)
def softmax(x: npt.ArrayLike, axis: Axes = -1, *,
            temperature: float = _DEFAULT_TEMPERATURE, where: npt.ArrayLike | None = None,
            out: FloatArray | None = None, n_threads: Count = None,
            dtype: npt.DTypeLike | None = None) -> FloatArray:
    """Softmax along an axis: ``exp(x/T - max) / sum(exp(x/T - max))``.

    Parameters
    ----------
    x : array_like
        Input logits of any shape.  float32 and float64 are computed as they
        are; float16 and bfloat16 (``ml_dtypes``, torch, JAX) are read without
        a copy and computed and returned as float32; integers, bools and lists
        become float64.  Complex, object and string input raise TypeError.
        Non-contiguous input is copied once.
    axis : int, tuple of ints or None, default -1
        The axis to normalize over, or a tuple of axes normalized over
        together (each slice spans them all; see Notes).  ``None`` treats
        the whole array as one slice, as ``scipy.special.softmax`` does by
        default.
    temperature : float, default 1.0
        Divides the logits: ``softmax(x / temperature)``.  Finite and > 0.
    where : array_like of bool, optional
        Mask broadcastable to ``x`` (e.g. a ``(T, T)`` causal mask for
        ``(B, T, T)`` scores).  False entries are left out of the slice:
        their output is 0, and a fully masked slice is all 0, never NaN.
    out : ndarray, optional
        C-contiguous, writeable array of ``x``'s shape and the result dtype to
        write into; may be ``x`` itself (in place).  For 16-bit ``x``, an
        ``out`` of ``x``'s own 16-bit dtype gives a 16-bit result.
    n_threads : int, optional
        ``None``: automatic (OpenMP's maximum, capped by the CPU quota unless
        ``OMP_NUM_THREADS`` is set; one thread for small inputs).
        ``k > 0``: exactly ``k``.  Negative: counts back from the maximum
        (``-1`` all, ``-2`` all but one).  0 is an error.  Results are
        bitwise identical for every thread count.
    dtype : dtype, optional
        float32, float64, float16 or bfloat16 (anything ``numpy.dtype``
        reads as one of them): ``x`` is cast to it before computing, and the
        result has it, as PyTorch's ``dtype=`` (``dtype=np.float64`` computes
        float32 logits in double; a 16-bit result is computed in float32 and
        rounded once).  ``out`` must then have this dtype.  Default: the
        dtype ``x`` is computed in (above).

    Returns
    -------
    ndarray
        Same shape as ``x`` (0-d for 0-d ``x``); each slice along ``axis``
        sums to 1.

    Raises
    ------
    TypeError
        For a non-real dtype of ``x``, an ``axis`` that is not an int, a tuple
        of ints or None, a non-int ``n_threads``, a ``dtype`` other than
        float32, float64, float16 or bfloat16 (ints, complex...), an ``out``
        that is not an ndarray or has the wrong dtype.
    ValueError
        For an axis out of range (``numpy.exceptions.AxisError``) or named
        twice, a temperature that is not finite and positive, an ``out`` of
        the wrong shape, non-contiguous or read-only, or ``n_threads=0``.

    Notes
    -----
    A slice holding a NaN or a +inf becomes all NaN; an all ``-inf`` slice
    becomes NaN (as SciPy and PyTorch).  Shifting by the max makes the result
    exactly invariant to a shared offset, however large.

    %(axes)s

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
    >>> fastsoftmax.softmax(np.ones((2, 2, 2)), axis=(1, 2))[0]   # each 2x2 block sums to 1
    array([[0.25, 0.25],
           [0.25, 0.25]])
    >>> fastsoftmax.softmax(np.float32([1, 2]), dtype=np.float64).dtype
    dtype('float64')
    >>> fastsoftmax.softmax(np.float32(3.0), axis=0)   # 0-d: one slice, itself
    array(1., dtype=float32)
    """
    if (type(axis) is int and axis == -1 and temperature is _DEFAULT_TEMPERATURE
            and where is None and dtype is None):
        # (None: an out= the full path checks, or a new result it takes from the pool)
        small = _core.small_call(x, _OP_SOFTMAX, PARALLEL_MIN_ELEMENTS, out, n_threads,
                                 resolve_threads)
        if small is not None:
            return small  # type: ignore[no-any-return]
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_SOFTMAX, dtype)


@fill_doc(accuracy=accuracy("``3u (|z| + sum(p |z|))``, ``z = (x - max) / T``, ``p`` the\n"
                            "softmax: the dominant entry's log-probability, near 0, keeps\n"
                            "its relative accuracy"),
          axes=axes(_COPIED_BACK), references=REFERENCES)
def log_softmax(x: npt.ArrayLike, axis: Axes = -1, *,
                temperature: float = _DEFAULT_TEMPERATURE, where: npt.ArrayLike | None = None,
                out: FloatArray | None = None, n_threads: Count = None,
                dtype: npt.DTypeLike | None = None) -> FloatArray:
    """Log of the softmax along an axis: ``x/T - logsumexp(x/T)``, computed stably.

    Parameters
    ----------
    x : array_like
        Input logits of any shape (dtypes as in :func:`softmax`).
    axis : int, tuple of ints or None, default -1
        The axis (or tuple of axes) to normalize over, as in :func:`softmax`;
        ``None`` for the whole array.
    temperature : float, default 1.0
        Divides the logits.  Finite and > 0.
    where : array_like of bool, optional
        Mask broadcastable to ``x``; False entries are left out of the slice
        and their output is ``-inf`` (a fully masked slice is all ``-inf``).
    out : ndarray, optional
        C-contiguous, writeable array of ``x``'s shape and the result dtype
        (or ``x``'s own 16-bit dtype, as in :func:`softmax`); may be ``x``
        itself.
    n_threads : int, optional
        As in :func:`softmax`.
    dtype : dtype, optional
        float32, float64, float16 or bfloat16: ``x`` is cast to it before
        computing and the result has it, as in :func:`softmax` (PyTorch's
        ``dtype=``).

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

    %(axes)s

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
    >>> fastsoftmax.log_softmax(np.zeros((2, 1, 2)), axis=(0, 2)).ravel()   # a copy: axes apart
    array([-1.38629436, -1.38629436, -1.38629436, -1.38629436])
    >>> fastsoftmax.log_softmax(np.float32([0, 0]), dtype="float64")
    array([-0.69314718, -0.69314718])
    """
    if (type(axis) is int and axis == -1 and temperature is _DEFAULT_TEMPERATURE
            and where is None and dtype is None):
        # (None: an out= the full path checks, or a new result it takes from the pool)
        small = _core.small_call(x, _OP_LOG_SOFTMAX, PARALLEL_MIN_ELEMENTS, out, n_threads,
                                 resolve_threads)
        if small is not None:
            return small  # type: ignore[no-any-return]
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_LOG_SOFTMAX, dtype)


# ---------------------------------------------------------------- backward helpers

# Docstring text the two backward helpers share.
_BACKWARD_AXES = axes("computed on copies of both inputs with them moved last,\n"
                      "and the result is copied back into their layout")
_BACKWARD_COMMON = """\
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
    As in :func:`softmax`, and a ValueError when the shapes differ."""


def _backward(grad_output: npt.ArrayLike, output: npt.ArrayLike, axis: Axes,
              out: FloatArray | None, n_threads: Count, log: bool) -> FloatArray:
    grad_output = _as_kernel_array(grad_output, "grad_output")
    output = _as_kernel_array(output, "output")
    if grad_output.shape != output.shape:
        raise ValueError(f"grad_output and output must have the same shape, got "
                         f"{grad_output.shape} and {output.shape}")
    dtype = np.result_type(_result_dtype(grad_output), _result_dtype(output))
    if not (grad_output.dtype == output.dtype and _result_dtype(output) == dtype):
        # Mixed dtypes: both widened to the result's (the kernels read one input type).
        grad_output, output = _widened(grad_output, dtype), _widened(output, dtype)
    elif isinstance(out, np.ndarray) and _is_16_bit_of(output, out.dtype):
        dtype = out.dtype  # an out= of the inputs' own 16-bit type: a 16-bit result
    axis = _normalize_axes(axis, output.ndim)
    threads = resolve_threads(n_threads, output.size)
    if out is None:
        out = fresh(output.shape, dtype, like=output)
    else:
        out = _check_out(out, output.shape, dtype)
        grad_output = _unalias(out, grad_output, in_place=True)
        output = _unalias(out, output, in_place=True)
    if not output.size:
        return out
    if type(axis) is tuple and _scattered(axis):
        # Axes apart in memory: computed on copies with them last, then put back.
        grad_output, _, trailing = _gather_axes(grad_output, None, axis)
        output, _, _ = _gather_axes(output, None, axis)
        result = np.empty(output.shape, dtype)
        outer, n, inner = _reduction_view(output.shape, trailing)
        _core.backward(grad_output, output, _kernel_view(result), outer, n, inner, log,
                       threads)
        return _scatter_back(result, axis, out)
    outer, n, inner = _reduction_view(output.shape, axis)
    _core.backward(grad_output, output, _kernel_view(out), outer, n, inner, log, threads)
    return out


@fill_doc(axes=_BACKWARD_AXES, common=_BACKWARD_COMMON)
def softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                     axis: Axes = -1, *, out: FloatArray | None = None,
                     n_threads: Count = None) -> FloatArray:
    """Gradient of a loss through ``softmax``: ``output * (grad_output - sum(grad_output * output))``.

    Parameters
    ----------
    grad_output : array_like
        d(loss)/d(softmax output), the same shape as ``output``.
    output : array_like
        The softmax output ``y = softmax(x, axis)``.
    axis : int, tuple of ints or None, default -1
        The axis (or axes) softmax normalized over.
    %(common)s

    Notes
    -----
    Two passes over each slice: ``sum(grad_output * output)``, in short blocks
    flushed into double lanes (compensated for float64), then the
    elementwise result.  Passing ``out=grad_output`` reuses the incoming gradient's memory, as an
    in-place autograd step would.

    %(axes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> y = fastsoftmax.softmax(np.array([1.0, 2.0, 3.0]))
    >>> fastsoftmax.softmax_backward(np.array([0.0, 0.0, 1.0]), y).round(4)
    array([-0.0599, -0.1628,  0.2227])
    """
    return _backward(grad_output, output, axis, out, n_threads, False)


@fill_doc(axes=_BACKWARD_AXES, common=_BACKWARD_COMMON)
def log_softmax_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike,
                         axis: Axes = -1, *, out: FloatArray | None = None,
                         n_threads: Count = None) -> FloatArray:
    """Gradient of a loss through ``log_softmax``: ``grad_output - exp(output) * sum(grad_output)``.

    Parameters
    ----------
    grad_output : array_like
        d(loss)/d(log_softmax output), the same shape as ``output``.
    output : array_like
        The log_softmax output ``y = log_softmax(x, axis)``.
    axis : int, tuple of ints or None, default -1
        The axis (or axes) log_softmax normalized over.
    %(common)s

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

    %(axes)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> y = fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0]))
    >>> fastsoftmax.log_softmax_backward(np.array([0.0, 0.0, -1.0]), y).round(4)
    array([ 0.09  ,  0.2447, -0.3348])
    """
    return _backward(grad_output, output, axis, out, n_threads, True)

