"""logsumexp: the C kernels, and SciPy's ``b=`` (weights) and ``return_sign=`` computed with NumPy.

:func:`logsumexp` runs the C kernels when ``b`` is None.  With weights, terms
may be negative or zero, which the kernels do not handle, so :func:`_weighted`
computes ``log|sum(b * exp(x))|`` and its sign with NumPy in float64 (float32
input too), one row per slice: the reduced axes (one, several, or none) are
moved last and flattened into the row.  The arguments are checked by
``_checks`` before anything is computed or written.

Accuracy: the dominant term ``b_k exp(x_k)`` (largest ``x + log|b|``) is kept
out of the sum, as SciPy does since gh-18295, and the result is
``x_k + log|b_k| + log1p(sum_{i != k} (b_i / b_k) exp(x_i - x_k))``: a sum
close to the dominant term keeps its relative precision (``log(1 + 1e-18)`` is
``1e-18``, not 0).
"""
from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import (
    _as_float_array,
    _as_kernel_array,
    _check_flag,
    _check_out,
    _gather_axes,
    _mask_slices,
    _normalize_axes,
    _prepare_b,
    _prepare_out,
    _prepare_where,
    _reduced_shape,
    _reduction_view,
    _result_dtype,
    _scattered,
    _unalias,
    _widened,
)
from ._docs import REFERENCES, accuracy, axes, fill_doc
from ._threads import PARALLEL_MIN_ELEMENTS, resolve_threads
from ._typing import Axes, Count, FloatArray, FloatScalarOrArray

__all__ = ["logsumexp"]

_OP_LOGSUMEXP = _core.OP_LOGSUMEXP  # the kernels' operation number (as _softmax's _OP_*)
_F64 = npt.NDArray[np.float64]
_SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)
_BLOCK = 1 << 15  # elements per block of rows: the float64 temporaries of one fit in cache


@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: Literal[False] = ..., keepdims: bool = ...,
              where: npt.ArrayLike | None = ..., out: FloatArray | None = ...,
              n_threads: Count = ...) -> FloatScalarOrArray: ...
@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: Literal[True], keepdims: bool = ...,
              where: npt.ArrayLike | None = ..., out: FloatArray | None = ...,
              n_threads: Count = ...) -> tuple[FloatScalarOrArray, FloatScalarOrArray]: ...
@overload
def logsumexp(x: npt.ArrayLike, axis: Axes = ..., *, b: npt.ArrayLike | None = ...,
              return_sign: bool, keepdims: bool = ...,
              where: npt.ArrayLike | None = ..., out: FloatArray | None = ...,
              n_threads: Count = ...
              ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatScalarOrArray]: ...
@fill_doc(accuracy=accuracy("``3u sum(p |x - max|)``, ``p = softmax(x)``: tiny where one\n"
                            "entry dominates, so a result near 0 keeps its relative accuracy"),
          axes=axes("reduced on a copy of ``x`` with them moved last"),
          references=REFERENCES)
def logsumexp(x: npt.ArrayLike, axis: Axes = -1, *, b: npt.ArrayLike | None = None,
              return_sign: bool = False, keepdims: bool = False,
              where: npt.ArrayLike | None = None, out: FloatArray | None = None,
              n_threads: Count = None
              ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatScalarOrArray]:
    """``log(sum(b * exp(x)))`` along an axis, without overflow or underflow.

    Parameters
    ----------
    x : array_like
        Input of any shape (dtypes as in :func:`softmax`).
    axis : int, tuple of ints or None, default -1
        The axis to reduce, or a tuple of axes reduced together (see Notes);
        ``None`` reduces the whole array, ``()`` nothing (the result is
        ``x``, as ``scipy.special.logsumexp``).
    b : array_like, optional
        Weights: each ``exp(x)`` is multiplied by its ``b`` (bools, ints or
        floats; negative and zero allowed), as in ``scipy.special.logsumexp``.
        ``x`` and ``b`` broadcast against each other (NumPy's rules), and
        ``axis`` (any of the above: a tuple, ``()``, 0-d input), ``where``
        and the result refer to their broadcast shape.  A term with
        ``b == 0`` is left out, even where ``x`` is NaN or inf.  The
        result dtype is NumPy's promotion of ``b``'s with the one ``x``'s
        result has without ``b`` (float64 for integer and bool ``x``,
        float32 for 16-bit ``x``): a float64 ``b`` makes a float32 ``x``'s
        result float64, a float32 ``b`` leaves an int8 ``x``'s float64, and
        a Python scalar keeps it.  With ``b``, the computation runs in NumPy in float64
        and costs several temporaries the size of the broadcast shape.
    return_sign : bool, default False
        Also return the sign of the sum: the result is then ``log|sum|``.
        Without it, a negative sum gives NaN, as in SciPy.
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    where : array_like of bool, optional
        Mask broadcastable to ``x``; only True entries are summed.  A fully
        masked slice gives ``-inf``.
    out : ndarray, optional
        C-contiguous, writeable array of the result's shape and dtype.  With
        ``return_sign``, it receives ``log|sum|``; the sign is a new array.
    n_threads : int, optional
        As in :func:`softmax` (checked the same way with ``b``, where NumPy
        computes on one thread).

    Returns
    -------
    res : ndarray or scalar
        ``x``'s shape without the reduced axes (or with them of length 1
        when ``keepdims``).  A 0-d result is returned as a NumPy scalar unless
        ``out`` is given.
    sign : ndarray or scalar
        Only with ``return_sign=True``: the sign of the sum, of ``res``'s
        shape and dtype (a NumPy scalar when 0-d): 1.0, -1.0, 0.0 where the
        sum is 0 (``res`` is ``-inf``, also for an empty or fully masked
        slice), NaN where ``res`` is NaN.

    Raises
    ------
    TypeError, ValueError
        As in :func:`softmax`; a TypeError for a ``b`` that does not hold
        real numbers, a ValueError for one that does not broadcast against
        ``x``.

    Notes
    -----
    ``max + log(sum(exp(x - max)))``, with the sum accumulated in double:
    the shift by the max makes every exponential at most 1, so nothing
    overflows.  A NaN in the slice gives NaN; a +inf gives +inf; an all
    ``-inf`` or empty slice gives ``-inf``.  A float32 result within
    ``0.25 log(n)`` of 0 (a negative max cancelling ``log(sum)``: the
    logsumexp of log-probabilities) is computed again in float64, as each
    float32 exponential's own rounding would move it by more than the bound.

    %(axes)s

    %(accuracy)s

    With ``b``, the dominant term ``b_k exp(x_k)`` (largest ``x + log|b|``)
    is kept out of the sum, as SciPy does: the result is ``x_k + log|b_k| +
    log1p(sum over i != k of (b_i / b_k) exp(x_i - x_k))``, so a result near
    0 keeps its relative precision.  When the terms have one sign the bound
    above holds, plus ``2u max|log|b||`` from rounding ``log|b|``; when terms
    of both signs cancel, the error grows with the sum's condition number
    ``sum|b exp(x)| / |sum b exp(x)|``: with the dominant term kept out, a
    sum that the others cancel to far below that term may lose every digit
    (``logsumexp([0, 0, -50], b=[1, -1, 1])`` is ``-inf`` with sign 0; SciPy,
    which adds the terms in order, gets -50 there, and loses the digits of
    such sums in other orders).  An infinite term decides alone (``+inf``, or NaN for
    ``inf - inf``); a NaN kept term gives NaN.

    Where SciPy 1.17 differs: its sign of an empty slice is -1 (here 0, as
    for any zero sum); where its fallback overflows it gives NaN or inf and
    fastsoftmax the value (``logsumexp([1000, 1000, 999], b=[1, -1, 1])`` is
    999.0, SciPy gives NaN); its ``b == 0`` does not hide a NaN or inf
    when every other term is 0; a negative sum that underflows is NaN
    without ``return_sign`` here, as every negative sum, and ``-inf`` there
    (``logsumexp([0, -1000], b=[0, -1])``).  Shapes: ``axis=()`` reduces
    nothing here, an empty array included (SciPy: ``[[-inf]]`` for a
    ``(2, 0)`` array); a 0-d ``x`` keeps 0 dimensions with ``keepdims=True``
    or ``axis=()`` (SciPy: shape ``(1,)``).

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> float(fastsoftmax.logsumexp(np.array([1000.0, 1000.0])).round(6))
    1000.693147
    >>> fastsoftmax.logsumexp(np.zeros((2, 3, 4)), axis=(0, 2)).round(6)   # log(8)
    array([2.079442, 2.079442, 2.079442])
    >>> float(fastsoftmax.logsumexp(np.float64(2.0), axis=0))   # 0-d
    2.0
    >>> float(fastsoftmax.logsumexp(np.array([1.0, 2.0]), b=np.array([-1.0, 1.0])))  # e^2 - e
    1.5413248546129181
    >>> fastsoftmax.logsumexp(np.array([1.0, 2.0]), b=np.array([1.0, -1.0]), return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    if return_sign is not False or keepdims is not False:
        _check_flag(return_sign, "return_sign")
        _check_flag(keepdims, "keepdims")
    if b is not None:
        return _weighted(x, axis, b, return_sign, keepdims, where, out, n_threads)
    if (type(axis) is int and axis == -1 and return_sign is False and keepdims is False
            and where is None):
        # (None: an out= the full path checks, or a new result it takes from the pool)
        small = _core.small_call(x, _OP_LOGSUMEXP, PARALLEL_MIN_ELEMENTS, out, n_threads,
                                 resolve_threads, _redo_near_zero)
        if small is not None:
            return small  # type: ignore[no-any-return]
    x = _as_kernel_array(x, "x")
    axis = _normalize_axes(axis, x.ndim)
    mask = None if where is None else _prepare_where(where, x.shape, axis)
    shape: tuple[int, ...]
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
    elif type(axis) is int:
        shape = x.shape[:axis] + ((1,) if keepdims else ()) + x.shape[axis + 1:]
    else:
        assert isinstance(axis, tuple)
        shape = _reduced_shape(x.shape, axis, keepdims)
        if _scattered(axis):  # the kept axes keep their order: no copy back
            x, mask, axis = _gather_axes(x, mask, axis)
    threads = resolve_threads(n_threads, x.size)
    given_out = out is not None
    # Not in place: out is smaller than x, so a kernel writing it is not
    # written to read x at the same offsets.
    out, x = _prepare_out(out, shape, _result_dtype(x), x, in_place=False)
    if mask is not None:
        mask = _unalias(out, mask)
    outer, n, inner = _reduction_view(x.shape, axis)
    if out.size:
        _core.softmax_family(x, out, mask, outer, n, inner, 1.0, _OP_LOGSUMEXP, threads)
        _redo_near_zero(x, out, mask, outer, n, inner, threads)
    if return_sign:
        return _with_sign(out, given_out)
    if out.ndim == 0 and not given_out:
        return out[()]
    return out


# The most elements _redo_near_zero copies to float64 at a time (8 MB).
_REDO_ELEMENTS = 1 << 20


def _redo_near_zero(x: npt.NDArray[Any], out: FloatArray, mask: npt.NDArray[np.bool_] | None,
                    outer: int, n: int, inner: int, threads: int) -> None:
    """The float32 results in ``out`` (of the kernels' ``(outer, inner)`` slices of ``x``)
    within ``_core.NEAR_ZERO_PER_LOG_N * log(n)`` of 0, which the float32 exponentials'
    rounding may move by more than the bound (it says why), computed again in float64
    and rounded once."""
    if out.dtype != np.float32 or n < 2:  # one term: its exponential is exactly 1
        return
    # A plain view: an out= subclass (np.matrix, one that refuses ufuncs) has been written
    # by the kernels already, and its own rules must not turn this step into an error.
    results = out.view(np.ndarray).reshape(outer, inner)
    near = abs(results) < _core.NEAR_ZERO_PER_LOG_N * math.log(n)
    if not near.any():
        return
    # (np.nonzero of a 2-D mask took 0.35 ms for 100000 x 1; the flat indices, 0.02)
    o, i = np.divmod(np.flatnonzero(near), inner)
    slices = x.reshape(outer, n, inner)
    masks = None if mask is None else _mask_slices(mask, x.shape, outer, n, inner)
    # A few slices at a time: rows of log-probabilities are all near 0, and their float64
    # copy at once would take twice x's memory.
    step = max(1, _REDO_ELEMENTS // n)
    for a in range(0, len(o), step):
        oa, ia = o[a:a + step], i[a:a + step]
        rows = np.ascontiguousarray(_widened(slices[oa, :, ia], np.dtype(np.float64)))
        rows_mask = None if masks is None else np.ascontiguousarray(masks[oa, :, ia])
        redone = np.empty(len(oa), np.float64)
        _core.softmax_family(rows, redone, rows_mask, len(oa), n, 1, 1.0, _OP_LOGSUMEXP,
                             threads)
        results[oa, ia] = redone


def _reduced_shape_of(shape: tuple[int, ...], axis: int | tuple[int, ...] | None
                      ) -> tuple[int, ...]:
    """``shape`` without the normalized ``axis`` (None: every axis), as NumPy's reductions."""
    if axis is None:
        return ()
    return _reduced_shape(shape, (axis,) if isinstance(axis, int) else axis, False)


def logsumexp_parts(x: npt.ArrayLike, axis: Axes = -1, *, scale: float = 1.0,
                    where: npt.ArrayLike | None = None, n_threads: Count = None
                    ) -> tuple[_F64, _F64]:
    """logsumexp's two halves per slice, for a caller that joins slices (fastsoftmax.dask).

    Returns ``(top, log_sum)``, float64 arrays of the reduced shape (no
    ``keepdims``): ``top`` is the slice's max (exact: a value of ``x``) and
    ``log_sum`` is ``log(sum(exp((x - top) * scale)))`` as the kernels take it
    (a sum close to 1 through log1p).  ``logsumexp`` is ``top * scale +
    log_sum``.  Where that is not finite: ``top`` is NaN for a NaN result
    (``log_sum`` NaN too when the NaN sits under a finite max), ``-inf`` for an
    empty, all ``-inf`` or fully masked slice, ``+inf`` for one holding
    ``+inf``, with ``log_sum`` 0.  :func:`combine_parts` joins them.

    ``scale`` (1 / temperature) must be a normal number of the compute dtype:
    the caller widens ``x`` first where it is not.
    """
    x = _as_kernel_array(x, "x")
    axis = _normalize_axes(axis, x.ndim)
    mask = None if where is None else _prepare_where(where, x.shape, axis)
    shape = _reduced_shape_of(x.shape, axis)
    if _scattered(axis):
        assert isinstance(axis, tuple)
        x, mask, axis = _gather_axes(x, mask, axis)
    threads = resolve_threads(n_threads, x.size)
    dtype = _result_dtype(x)
    tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
    if not tiny <= scale <= huge:
        raise ValueError(f"scale {scale!r} is not a normal {dtype} number")
    top, log_sum = np.empty(shape, dtype), np.zeros(shape, np.float64)
    if top.size:
        outer, n, inner = _reduction_view(x.shape, axis)
        _core.softmax_family(x, top, mask, outer, n, inner, scale, _OP_LOGSUMEXP, threads,
                             log_sums=log_sum)
    return top.astype(np.float64), log_sum


def combine_parts(top: _F64, log_sum: _F64, axis: int | tuple[int, ...], scale: float = 1.0
                  ) -> tuple[_F64, _F64]:
    """The halves of slices joined along ``axis`` from the halves of their pieces.

    ``top`` and ``log_sum`` (float64, as :func:`logsumexp_parts` returns them,
    or this function) hold one piece per index along ``axis``; the result
    keeps ``axis`` with length 1.  Exact in float64 as far as the halves are:
    with ``T`` the largest piece max, each piece adds
    ``exp((top - T) * scale + log_sum)``, and the pieces whose max is ``T``
    add ``expm1(log_sum)`` plus one, so that the sum without the dominant term
    goes through log1p as in the kernels (a joined logsumexp near 0 keeps its
    relative precision).  Any NaN piece makes the slice NaN; otherwise a
    ``+inf`` max gives ``+inf``, and all ``-inf`` (empty, masked) gives ``-inf``.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        joined = np.max(top, axis=axis, keepdims=True)  # NaN where a piece's max is NaN
        joined[np.isnan(log_sum).any(axis=axis, keepdims=True)] = np.nan
        finite = np.isfinite(joined)
        base = np.where(finite, joined, 0.0)
        at_top = top == base
        terms = np.where(at_top, np.expm1(log_sum), np.exp((top - base) * scale + log_sum))
        rest = terms.sum(axis=axis, keepdims=True) + (at_top.sum(axis=axis, keepdims=True) - 1)
        joined_log_sum = np.where(finite, np.log1p(rest), 0.0)
    return joined, joined_log_sum


def logsumexp_from_parts(top: _F64, log_sum: _F64, scale: float = 1.0) -> _F64:
    """``top * scale + log_sum`` where ``top`` is finite, else ``top`` (NaN, +-inf), in float64."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(top), top * scale + log_sum, top)


def _weighted(x: npt.ArrayLike, axis: Axes, b: npt.ArrayLike, return_sign: bool,
              keepdims: bool, where: npt.ArrayLike | None, out: FloatArray | None,
              n_threads: Count
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


def _with_sign(result: FloatArray, given_out: bool
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
        top = log_terms[row, k]
        terms = _relative_terms(a, w, log_w, keep, k)
        # a + log|w| rounds at a's scale: beyond |a| of about 3e18 it ties terms whose
        # weights differ by more than the float range, and k may not be the largest (a
        # term relative to it then exceeds 1, or overflows).  Those rows take the largest
        # by their exponents relative to k, which are exact where a's are close.
        wrong = np.isfinite(top) & (np.abs(terms) > 2.0).any(axis=1)
        if wrong.any():
            r = row[wrong]
            exponent = (a[r] - a[r, k[r], None]) + (log_w[r] - log_w[r, k[r], None])
            np.copyto(exponent, -np.inf, where=~keep[r])
            k[r] = np.argmax(exponent, axis=1)
            terms[r] = _relative_terms(a[r], w[r], log_w[r], keep[r], k[r])
        a_k, w_k, log_w_k = a[row, k], w[row, k], log_w[row, k]
        rest = terms.sum(axis=1)  # pairwise: the rows are contiguous
        sign = np.sign(w_k) * np.sign(1.0 + rest)
        # |1 + rest| = 1 + (-rest - 2) when 1 + rest < 0.  x_k is added last:
        # one rounding at its scale (1e8 + small stays exact to 1 ulp).
        value = a_k + (log_w_k + np.log1p(np.where(rest < -1.0, -rest - 2.0, rest)))
        special = ~np.isfinite(top)
        if special.any():
            value, sign = _special_rows(top, value, sign, log_terms, w)
    return value, sign


def _relative_terms(a: _F64, w: _F64, log_w: _F64, keep: npt.NDArray[np.bool_],
                    k: npt.NDArray[np.intp]) -> _F64:
    """Each row's kept terms over its term k, ``w * exp(a) / (w_k * exp(a_k))``, with the
    k-th and those left out 0 (call under ``np.errstate(all="ignore")``)."""
    row = np.arange(len(a))
    a_k, w_k, log_w_k = a[row, k], w[row, k], log_w[row, k]
    ratio = w / w_k[:, None]
    terms = ratio * np.exp(a - a_k[:, None])  # about 1 at most, where k is the largest
    # Where b spans more than the float range, w / w_k overflows or loses
    # its precision (0 * inf): the same term through the logs instead.
    redo = keep & ~((np.abs(ratio) >= _SMALLEST_NORMAL) & np.isfinite(terms))
    if redo.any():
        exponent = (a - a_k[:, None]) + (log_w - log_w_k[:, None])
        terms[redo] = np.sign(w[redo]) * np.exp(exponent[redo])
    np.copyto(terms, 0.0, where=~keep)
    terms[row, k] = 0.0
    return terms


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
