"""logsumexp's ``b=`` (weights) and ``return_sign=``: SciPy's semantics, computed with NumPy.

``fastsoftmax.logsumexp`` (in ``_softmax``) runs the C kernels when ``b`` is
None.  With weights, terms may be negative or zero, which the kernels do not
handle, so :func:`weighted` computes ``log|sum(b * exp(x))|`` and its sign with
NumPy in float64 (float32 input too), one row per slice: the reduced axes
(one, several, or none) are moved last and flattened into the row.  The
arguments are checked by ``_checks`` before anything is computed or written.

Accuracy: the dominant term ``b_k exp(x_k)`` (largest ``x + log|b|``) is kept
out of the sum, as SciPy does since gh-18295, and the result is
``x_k + log|b_k| + log1p(sum_{i != k} (b_i / b_k) exp(x_i - x_k))``: a sum
close to the dominant term keeps its relative precision (``log(1 + 1e-18)`` is
``1e-18``, not 0).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ._checks import (
    _as_float_array,
    _check_out,
    _normalize_axes,
    _prepare_b,
    _prepare_where,
    _reduced_shape,
)
from ._threads import resolve_threads
from ._typing import Axes, FloatArray, FloatScalarOrArray

__all__ = ["weighted", "with_sign"]

_F64 = npt.NDArray[np.float64]
_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)
_BLOCK = 1 << 15  # elements per block of rows: the float64 temporaries of one fit in cache


def weighted(x: npt.ArrayLike, axis: Axes, b: npt.ArrayLike, return_sign: bool,
             keepdims: bool, where: npt.ArrayLike | None, out: FloatArray | None,
             n_threads: int | None
             ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatScalarOrArray]:
    """``logsumexp(x, axis, b=b, ...)``: every argument checked, then computed with NumPy.

    ``axis`` is read as without ``b`` (one axis, a tuple, ``()``, None; 0-d
    input), on the shape ``x`` and ``b`` broadcast to.
    """
    x = _as_float_array(x, "x")
    weights, shape, dtype = _prepare_b(b, x)
    normalized = _normalize_axes(axis, len(shape))
    mask = _prepare_where(where, shape, normalized)
    reduced = _reduced_axes(normalized, len(shape))
    result_shape = _reduced_shape(shape, reduced, keepdims)
    resolve_threads(n_threads, math.prod(shape))  # checked as for the kernels; NumPy uses one
    if out is not None:
        out = _check_out(out, result_shape, dtype)
    n = math.prod(shape[i] for i in reduced)
    if n == 0 or not math.prod(result_shape):  # an empty sum is 0: -inf, sign 0
        value, sign = np.full(result_shape, -np.inf), np.zeros(result_shape)
    else:
        value, sign = _by_blocks(_rows(x, shape, reduced, n), _rows(weights, shape, reduced, n),
                                 None if mask is None else _rows(mask, shape, reduced, n))
        value, sign = value.reshape(result_shape), sign.reshape(result_shape)
    if not return_sign:
        value[sign < 0] = np.nan  # the log of a negative sum, as in SciPy
    # Everything is read before out is written, so out may share memory with x, b or where.
    result = _finish(value.astype(dtype, copy=False), out)
    return (result, _finish(sign.astype(dtype, copy=False), None)) if return_sign else result


def with_sign(result: FloatArray, given_out: bool
              ) -> tuple[FloatScalarOrArray, FloatScalarOrArray]:
    """``(result, sign)`` for an unweighted logsumexp's ``result``.

    The sum of exponentials is positive (sign 1) unless it is empty or every
    term is 0 (result ``-inf``, sign 0), or NaN (sign NaN).
    """
    sign = np.where(np.isnan(result), np.nan, result != -np.inf).astype(result.dtype)
    return _finish(result, result if given_out else None), _finish(sign, None)


def _finish(result: FloatArray, out: FloatArray | None) -> FloatScalarOrArray:
    """``result`` written into ``out`` and returned as ``out``, or a NumPy scalar when 0-d."""
    if out is not None:
        if out is not result:
            out[...] = result
        return out
    return result[()] if result.ndim == 0 else result


def _reduced_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """The axes a normalized ``axis`` (:func:`_normalize_axes`) reduces, in order."""
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if isinstance(axis, int) else axis


def _rows(a: npt.NDArray[Any], shape: tuple[int, ...], reduced: tuple[int, ...], n: int
          ) -> npt.NDArray[Any]:
    """``a`` broadcast to ``shape``, as a 2-d array with one row of ``n`` per slice, to be read only.

    The ``reduced`` axes are moved last and flattened into the row (``()``:
    rows of one element); the rows come in the C order of the result's
    elements.  A view where NumPy can make one (``x`` itself for the last
    axes, a ``b`` broadcast over leading axes), else a copy.
    """
    full = np.broadcast_to(a, shape)
    trailing = tuple(range(len(shape) - len(reduced), len(shape)))
    if reduced != trailing:
        full = np.moveaxis(full, reduced, trailing)
    return full.reshape(-1, n)


def _by_blocks(x: npt.NDArray[Any], w: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None
               ) -> tuple[_F64, _F64]:
    """:func:`_log_abs_sum` of each row, a block of rows at a time.

    Each block is converted to float64 and its temporaries stay in cache;
    a row's result does not depend on the block it is in.
    """
    rows, n = x.shape
    value, sign = np.empty(rows), np.empty(rows)
    step = max(1, _BLOCK // n)
    for start in range(0, rows, step):
        block = slice(start, start + step)
        value[block], sign[block] = _log_abs_sum(
            np.asarray(x[block], dtype=np.float64), np.asarray(w[block], dtype=np.float64),
            None if mask is None else mask[block])
    return value, sign


def _log_abs_sum(a: _F64, w: _F64, mask: npt.NDArray[np.bool_] | None) -> tuple[_F64, _F64]:
    """``log|sum(w * exp(a))|`` and the sum's sign for each row (2-d, non-empty rows).

    Terms with ``w == 0`` or ``mask`` False are left out, even where ``a`` is
    NaN or inf (SciPy's convention for ``b == 0``).
    """
    keep = w != 0 if mask is None else mask & (w != 0)
    with np.errstate(all="ignore"):  # log(0), inf - inf, 0 * inf: handled below
        log_w = np.log(np.abs(w))
        log_terms = a + log_w
        np.copyto(log_terms, -np.inf, where=~keep)
        row = np.arange(len(a))
        k = np.argmax(log_terms, axis=1)  # the dominant term (the first NaN, if any)
        top, a_k, w_k, log_w_k = log_terms[row, k], a[row, k], w[row, k], log_w[row, k]
        ratio = w / w_k[:, None]
        terms = ratio * np.exp(a - a_k[:, None])  # b_i exp(x_i) / (b_k exp(x_k)): about 1 at most
        # Where b spans more than the float range, w / w_k overflows or loses
        # its precision (0 * inf): the same term through the logs instead.
        redo = keep & ~((np.abs(ratio) >= _SMALLEST_NORMAL) & np.isfinite(terms))
        if redo.any():
            exponent = (a - a_k[:, None]) + (log_w - log_w_k[:, None])
            terms[redo] = np.sign(w[redo]) * np.exp(exponent[redo])
        np.copyto(terms, 0.0, where=~keep)
        terms[row, k] = 0.0
        rest = terms.sum(axis=1)  # pairwise: the rows are contiguous
        sign = np.sign(w_k) * np.sign(1.0 + rest)
        # |1 + rest| = 1 + (-rest - 2) when 1 + rest < 0.  x_k is added last:
        # one rounding at its scale (1e8 + small stays exact to 1 ulp).
        value = a_k + (log_w_k + np.log1p(np.where(rest < -1.0, -rest - 2.0, rest)))
        special = ~np.isfinite(top)
        if special.any():
            value, sign = _special_rows(top, value, sign, log_terms, w)
    return value, sign


def _special_rows(top: _F64, value: _F64, sign: _F64, log_terms: _F64, w: _F64
                  ) -> tuple[_F64, _F64]:
    """``value`` and ``sign`` where the dominant term is not finite.

    ``-inf``: every term is 0 (or left out), so the sum is 0: ``(-inf, 0)``.
    ``+inf``: the infinite terms decide alone, ``(inf, their sign)``, or NaN if
    their signs differ (inf - inf).  NaN: ``(NaN, NaN)``.
    """
    infinite = log_terms == np.inf
    positive = (infinite & (w > 0)).any(axis=1)
    negative = (infinite & (w < 0)).any(axis=1)
    inf_sign = np.where(positive & negative, np.nan, np.where(positive, 1.0, -1.0))
    conditions = [np.isnan(top), top == -np.inf, top == np.inf]
    value = np.select(conditions, [np.nan, -np.inf, np.abs(inf_sign) * np.inf], value)
    sign = np.select(conditions, [np.nan, 0.0, inf_sign], sign)
    return value, sign
