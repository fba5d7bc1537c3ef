"""fastsoftmax on dask arrays: lazy, chunk by chunk, for arrays larger than one machine's memory.

``softmax``, ``log_softmax``, ``logsumexp`` and ``cross_entropy`` take a dask
array (or anything ``dask.array.asarray`` takes) and return lazy dask arrays
built on dask's own graph machinery (``map_blocks``, ``blockwise``,
``reduction``), so they run on any dask scheduler: the threaded default, a
``distributed`` cluster of one or many machines, or Ray through dask-on-ray.
Each chunk is computed by fastsoftmax's C kernels.  Install with
``pip install "fastsoftmax[dask]"``.

How each is built:

- The reduced axes within one chunk: every chunk is one call of the NumPy
  function (``map_blocks``), the same bits as on that chunk alone.
- logsumexp over axes split across chunks: each chunk gives its slices' max and
  float64 ``log(sum(exp(x - max)))`` (``_logsumexp.logsumexp_parts``, not a
  rounded logsumexp), and a tree reduction joins them exactly in float64
  (``_logsumexp.combine_parts``).
- softmax and log_softmax over split axes: two passes, those joined halves of
  every slice, then each chunk's output from them (``softmax_shifted`` in the
  kernels).  No chunk is ever merged with another, so no task holds more than
  one chunk of ``x``.  A chunk that is all ``-inf`` inside a finite slice gives
  0 (and ``-inf``), not the NaN of a chunk-local formula.
- cross_entropy: ``blockwise`` over the samples.  The class axis must be one
  chunk per sample; logits chunked along it are rechunked to one chunk there
  (a row of 256k float32 classes is 1 MB).  The mean's denominator and the
  loss's sum go through dask reductions; the gradient is a lazy array chunked
  like the logits.

Results, NaN and infinities follow the NumPy functions; only the rounding of a
join differs (within the documented tolerance).  ``n_threads`` is each task's
OpenMP threads: 1 by default, since dask already runs one task per core.

Example
-------
>>> import dask.array as da
>>> import fastsoftmax.dask as fsd
>>> x = da.ones((4, 6), chunks=(2, 3))          # the class axis split in two
>>> fsd.logsumexp(x).compute().round(4)
array([2.7918, 2.7918, 2.7918, 2.7918])
>>> float(fsd.softmax(x).sum(axis=-1)[0].compute())
1.0
"""
from __future__ import annotations

# dask's own API carries few type hints: calling it is not an error of this module.
# mypy: disallow-untyped-calls=False, warn-return-any=False

import math
from functools import partial
from typing import Any, Literal, Union, overload

import numpy as np
import numpy.typing as npt

try:
    import dask.array as da
except ImportError as error:  # pragma: no cover - the optional dependency
    raise ImportError("fastsoftmax.dask needs dask: pip install \"fastsoftmax[dask]\"") from error

from ._checks import (_FLOAT64, _as_kernel_array, _asarray, _check_flag, _check_temperature,
                      _normalize_axes, _result_dtype)
from ._cross_entropy import (
    _check_options,
    _class_axis,
    _divide,
    _prepare_weight,
    losses_and_gradient,
    mean_denominator,
)
from ._docs import fill_doc
from ._logsumexp import combine_parts, logsumexp_from_parts, logsumexp_parts
from ._logsumexp import logsumexp as _logsumexp_numpy
from ._softmax import _OP_LOG_SOFTMAX, _OP_SOFTMAX, _softmax_like
from ._threads import resolve_threads
from ._typing import Axes, Count, Reduction

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy"]

# One slice's (or one piece of a slice's) logsumexp halves, as the tree reduction carries them.
PARTS = np.dtype([("top", np.float64), ("log_sum", np.float64)])

_DaskOrArray = Union["da.Array", npt.ArrayLike]


def _as_dask(x: Any, name: str) -> da.Array:
    """``x`` as a dask array: itself, an xarray object's dask data, or ``da.asarray(x)``
    (whose ValueError for a ragged nesting is the NumPy functions' one, naming ``x``)."""
    if isinstance(x, da.Array):
        return x
    data = getattr(x, "data", None)
    if isinstance(data, da.Array):  # an xarray DataArray backed by dask
        return data
    graph = getattr(x, "__dask_graph__", None)
    if callable(graph) and graph() is not None:
        raise TypeError(f"{name} must be a dask array, got a dask {type(x).__name__}")
    try:
        return da.asarray(x)
    except ValueError:
        _asarray(x, name)  # raises the named error where NumPy cannot read x either
        raise


def _result_dtype_of(dtype: np.dtype[Any], name: str) -> np.dtype[Any]:
    """The dtype the NumPy functions return for input of ``dtype`` (TypeError for a bad one):
    float32 and float64 their own, float16 and bfloat16 float32, ints and bools float64."""
    return _result_dtype(_as_kernel_array(np.empty(0, dtype), name))


def _meta(ndim: int, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """An empty array of the result's type: given to dask, so that it never calls a
    function on an empty chunk to guess it."""
    return np.empty((0,) * ndim, dtype)


def _reduced_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """A normalized ``axis`` (``_normalize_axes``) as the tuple of the axes it reduces."""
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if type(axis) is int else axis  # type: ignore[return-value]


def _is_split(x: da.Array, reduced: tuple[int, ...]) -> bool:
    """Whether a slice spans several chunks: the halves must then be joined."""
    return any(len(x.chunks[i]) > 1 for i in reduced)


def _one_per_chunk(x: da.Array, reduced: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The chunks of a per-chunk reduction of ``x``: one entry per chunk along ``reduced``."""
    return tuple((1,) * len(c) if i in reduced else c for i, c in enumerate(x.chunks))


def _mask_of(where: Any, x: da.Array) -> list[da.Array]:
    """``where`` as a bool dask array of ``x``'s shape and chunks ([] for None), checked now."""
    if where is None:
        return []
    mask = _as_dask(where, "where")
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    try:
        mask = da.broadcast_to(mask, x.shape)
    except ValueError:
        raise ValueError(f"where with shape {mask.shape} does not broadcast to x's shape "
                         f"{x.shape}") from None
    return [mask.rechunk(x.chunks)]


def _check_threads(n_threads: Count) -> None:
    resolve_threads(n_threads, 0)  # TypeError/ValueError now, not inside a task


def _in_kernel_range(x: da.Array, temperature: float) -> tuple[da.Array, float]:
    """``(x, temperature)`` whose 1/T is a normal number of the dtype ``x`` is computed in.

    The NumPy functions widen such calls to float64 inside one call; across two
    passes both must see the same input, so ``x`` is widened here.  Where 1/T is
    not a normal float64 either, x and T are scaled by the same power of two,
    which leaves x/T unchanged: by 2**64 for a T whose reciprocal overflows, by
    2**-64 for one whose reciprocal is subnormal (T > 4.49e307; the parts'
    kernel takes only a normal scale).  Exact but for an x that the scaling
    itself makes subnormal, whose x/T rounds to 0 either way, and for an x
    beyond 2**960 in magnitude with a T whose reciprocal overflows, which the
    scaling by 2**64 makes infinite (the NumPy function takes each slice's max
    out first; a slice split across chunks has no max yet here).
    """
    scale = _check_temperature(temperature)
    computed = _result_dtype_of(x.dtype, "x")
    finfo = np.finfo(computed)
    if scale == 1.0 or float(finfo.tiny) <= scale <= float(finfo.max):
        return x, float(temperature)
    x = x.astype(_FLOAT64)
    if math.isinf(scale):
        return x * 2.0**64, math.ldexp(float(temperature), 64)
    if scale < float(np.finfo(_FLOAT64).tiny):
        return x * 2.0**-64, math.ldexp(float(temperature), -64)
    return x, float(temperature)


# Chunk functions: module level, so that distributed pickles them by reference.

def _parts_of_chunk(block: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None = None, *,
                    axis: tuple[int, ...], temperature: float,
                    n_threads: Count) -> npt.NDArray[Any]:
    """One chunk's halves of every slice, with the reduced axes kept (length 1)."""
    top, log_sum = logsumexp_parts(block, axis, scale=_check_temperature(temperature),
                                   where=mask, n_threads=n_threads)
    shape = tuple(1 if i in axis else side for i, side in enumerate(block.shape))
    parts = np.empty(shape, PARTS)
    parts["top"] = top.reshape(shape)
    parts["log_sum"] = log_sum.reshape(shape)
    return parts


def _joined(parts: npt.NDArray[Any], axis: tuple[int, ...], keepdims: bool,
            temperature: float) -> npt.NDArray[Any]:
    """The halves of slices from those of their pieces along ``axis`` (combine_parts)."""
    top, log_sum = combine_parts(parts["top"], parts["log_sum"], axis,
                                 _check_temperature(temperature))
    joined = np.empty(top.shape, PARTS)
    joined["top"], joined["log_sum"] = top, log_sum
    return joined if keepdims else joined.squeeze(axis=axis)


def _lse_of_joined(joined: npt.NDArray[Any], *, result_dtype: np.dtype[Any]
                   ) -> npt.NDArray[Any]:
    """Joined halves made one logsumexp of ``result_dtype``."""
    with np.errstate(over="ignore"):  # beyond float32's range is +inf, as the kernels give
        return np.asarray(logsumexp_from_parts(joined["top"], joined["log_sum"]), result_dtype)


def _pass_through(parts: npt.NDArray[Any], axis: Any = None, keepdims: bool = True
                  ) -> npt.NDArray[Any]:
    return parts  # (the chunk step of the tree runs before it: _parts_of_chunk)


def _join(parts: da.Array, reduced: tuple[int, ...], keepdims: bool, temperature: float,
          split_every: Any) -> da.Array:
    """The per-chunk halves joined over ``reduced`` by a tree reduction (dask's fan-in)."""
    joiner = partial(_joined, temperature=temperature)
    return da.reduction(parts, _pass_through, joiner, combine=joiner, axis=reduced,
                        keepdims=keepdims, dtype=PARTS, split_every=split_every,
                        meta=_meta(parts.ndim if keepdims else parts.ndim - len(reduced), PARTS))


def _lse_chunk(block: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None = None, *,
               axis: tuple[int, ...], n_threads: Count) -> npt.NDArray[Any]:
    """logsumexp of a chunk that holds whole slices: the NumPy function, reduced axes kept."""
    return np.asarray(_logsumexp_numpy(block, axis, keepdims=True, where=mask,
                                       n_threads=n_threads))


def _softmax_chunk(block: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None = None, *,
                   axis: int | tuple[int, ...] | None, temperature: float,
                   n_threads: Count, op: int) -> npt.NDArray[Any]:
    """softmax or log_softmax of a chunk that holds whole slices: the NumPy function."""
    return _softmax_like(block, axis, temperature, mask, None, n_threads, op)


def _shifted_chunk(block: npt.NDArray[Any], joined: npt.NDArray[Any],
                   mask: npt.NDArray[np.bool_] | None = None, *,
                   axis: int | tuple[int, ...] | None, reduced: tuple[int, ...],
                   temperature: float, n_threads: Count, op: int) -> npt.NDArray[Any]:
    """The output pass of a chunk of slices split across chunks, from their joined halves."""
    parts = (np.ascontiguousarray(joined["top"].squeeze(axis=reduced)),
             np.ascontiguousarray(joined["log_sum"].squeeze(axis=reduced)))
    return _softmax_like(block, axis, temperature, mask, None, n_threads, op, parts=parts)


def logsumexp(x: _DaskOrArray, axis: Axes = -1, *, keepdims: bool = False,
              where: _DaskOrArray | None = None, n_threads: Count = 1,
              split_every: int | dict[int, int] | None = None) -> da.Array:
    """Lazy :func:`fastsoftmax.logsumexp` of a dask array: ``log(sum(exp(x)))`` along ``axis``.

    Parameters
    ----------
    x : dask array or array_like
        Logits, chunked any way.  Dtypes as :func:`fastsoftmax.logsumexp`.
    axis : int, tuple of ints or None, default -1
        The reduced axes (None: all), split across chunks or not.
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    where : dask array or array_like of bool, optional
        Mask broadcastable to ``x``; False entries are left out (a fully masked
        slice gives ``-inf``).  Rechunked like ``x``.
    n_threads : int or None, default 1
        fastsoftmax's threads within each task (None: automatic).
    split_every : int or dict, optional
        The tree reduction's fan-in, as in ``dask.array.reduction``.

    Returns
    -------
    dask.array.Array
        The reduced shape; float32 for float32, float16 and bfloat16 input,
        float64 otherwise.  0-d for ``axis=None`` without ``keepdims``.

    Examples
    --------
    >>> import dask.array as da
    >>> import fastsoftmax.dask as fsd
    >>> x = da.from_array([[0.0, 0.0, 0.0, 0.0]], chunks=(1, 2))
    >>> float(fsd.logsumexp(x, axis=None).compute().round(6))   # log(4)
    1.386294
    """
    x = _as_dask(x, "x")
    dtype = _result_dtype_of(x.dtype, "x")
    normalized = _normalize_axes(axis, x.ndim)
    reduced = _reduced_axes(normalized, x.ndim)
    masks = _mask_of(where, x)
    _check_threads(n_threads)
    _check_flag(keepdims, "keepdims")
    kept = _one_per_chunk(x, reduced)
    if not _is_split(x, reduced):
        result = da.map_blocks(_lse_chunk, x, *masks, chunks=kept, dtype=dtype,
                               meta=_meta(x.ndim, dtype), axis=reduced, n_threads=n_threads)
        return result if keepdims else result.squeeze(axis=reduced)
    parts = da.map_blocks(_parts_of_chunk, x, *masks, chunks=kept, dtype=PARTS,
                          meta=_meta(x.ndim, PARTS), axis=reduced, temperature=1.0,
                          n_threads=n_threads)
    joined = _join(parts, reduced, bool(keepdims), 1.0, split_every)
    return da.map_blocks(_lse_of_joined, joined, dtype=dtype, meta=_meta(joined.ndim, dtype),
                         result_dtype=dtype)


def _softmax_family(x: _DaskOrArray, axis: Axes, temperature: float, where: Any,
                    n_threads: Count, split_every: Any, op: int) -> da.Array:
    x = _as_dask(x, "x")
    dtype = _result_dtype_of(x.dtype, "x")
    normalized = _normalize_axes(axis, x.ndim)
    reduced = _reduced_axes(normalized, x.ndim)
    masks = _mask_of(where, x)
    _check_threads(n_threads)
    _check_temperature(temperature)
    if not _is_split(x, reduced):
        return da.map_blocks(_softmax_chunk, x, *masks, dtype=dtype, meta=_meta(x.ndim, dtype),
                             axis=normalized, temperature=temperature, n_threads=n_threads,
                             op=op)
    x, temperature = _in_kernel_range(x, temperature)
    parts = da.map_blocks(_parts_of_chunk, x, *masks, chunks=_one_per_chunk(x, reduced),
                          dtype=PARTS, meta=_meta(x.ndim, PARTS), axis=reduced,
                          temperature=temperature, n_threads=n_threads)
    joined = _join(parts, reduced, True, temperature, split_every)
    computed = _result_dtype_of(x.dtype, "x")
    result = da.map_blocks(_shifted_chunk, x, joined, *masks, dtype=computed,
                           meta=_meta(x.ndim, computed), axis=normalized, reduced=reduced,
                           temperature=temperature, n_threads=n_threads, op=op)
    return result if computed == dtype else result.astype(dtype)


# The arguments and result that softmax and log_softmax share (fill_doc).
_SOFTMAX_PARAMETERS = """Parameters
----------
x : dask array or array_like
    Logits, chunked any way; the normalized axes may be split across
    chunks (two passes then, see the module's notes).
axis : int, tuple of ints or None, default -1
    As :func:`fastsoftmax.softmax`.
temperature : float, default 1.0
    Divides the logits; finite and > 0.
where : dask array or array_like of bool, optional
    Mask broadcastable to ``x``, rechunked like it: False entries give
    %(masked)s, and so does every entry of a fully masked slice.
n_threads : int or None, default 1
    fastsoftmax's threads within each task (None: automatic).
split_every : int or dict, optional
    The fan-in of the reduction that joins a split slice's halves.

Returns
-------
dask.array.Array
    ``x``'s shape and chunks; float32 for float32, float16 and bfloat16,
    float64 otherwise."""


@fill_doc(parameters=_SOFTMAX_PARAMETERS % {"masked": "0"})
def softmax(x: _DaskOrArray, axis: Axes = -1, *, temperature: float = 1.0,
            where: _DaskOrArray | None = None, n_threads: Count = 1,
            split_every: int | dict[int, int] | None = None) -> da.Array:
    """Lazy :func:`fastsoftmax.softmax` of a dask array, chunked like ``x``.

    %(parameters)s

    Examples
    --------
    >>> import dask.array as da
    >>> import fastsoftmax.dask as fsd
    >>> x = da.from_array([[1.0, 2.0, 3.0, 4.0]], chunks=(1, 2))
    >>> fsd.softmax(x).compute().round(4)
    array([[0.0321, 0.0871, 0.2369, 0.6439]])
    """
    return _softmax_family(x, axis, temperature, where, n_threads, split_every, _OP_SOFTMAX)


@fill_doc(parameters=_SOFTMAX_PARAMETERS % {"masked": "``-inf``"})
def log_softmax(x: _DaskOrArray, axis: Axes = -1, *, temperature: float = 1.0,
                where: _DaskOrArray | None = None, n_threads: Count = 1,
                split_every: int | dict[int, int] | None = None) -> da.Array:
    """Lazy :func:`fastsoftmax.log_softmax` of a dask array, chunked like ``x``.

    %(parameters)s

    Examples
    --------
    >>> import dask.array as da
    >>> import fastsoftmax.dask as fsd
    >>> x = da.from_array([[0.0, 0.0, 0.0, 0.0]], chunks=(1, 2))
    >>> fsd.log_softmax(x).compute().round(4)
    array([[-1.3863, -1.3863, -1.3863, -1.3863]])
    """
    return _softmax_family(x, axis, temperature, where, n_threads, split_every, _OP_LOG_SOFTMAX)


def _chunk_denominator(target: npt.NDArray[Any], sample_weight: npt.NDArray[Any] | None = None,
                       *, axis: int, n_classes: int, probabilities: bool,
                       weight: npt.NDArray[Any] | None, ignore_index: int,
                       result_dtype: np.dtype[Any]) -> npt.NDArray[np.float64]:
    """One chunk's share of the mean's denominator (its labels checked), as one element
    with the samples' dimensions."""
    logits_shape = (target.shape if probabilities
                    else target.shape[:axis] + (n_classes,) + target.shape[axis:])
    value = mean_denominator(logits_shape, target, axis, weight, sample_weight, ignore_index,
                             result_dtype)
    return np.full((1,) * (len(logits_shape) - 1), value)


def _chunk_losses(logits: npt.NDArray[Any], target: npt.NDArray[Any],
                  sample_weight: npt.NDArray[Any] | None = None,
                  denominator: npt.NDArray[np.float64] | None = None, *, axis: int,
                  weight: npt.NDArray[Any] | None, ignore_index: int, reduction: Reduction,
                  label_smoothing: float, return_grad: bool, n_threads: Count
                  ) -> Any:
    """One chunk of samples: its float64 losses (with the class axis kept, length 1), or
    (losses, gradient) with ``return_grad`` (the gradient scaled by the mean's
    denominator over every chunk)."""
    losses, grad, _, _ = losses_and_gradient(
        logits, target, axis, weight, sample_weight, ignore_index, reduction, label_smoothing,
        return_grad, None, n_threads,
        denominator=None if denominator is None else float(denominator))
    losses = np.expand_dims(losses, axis)
    return (losses, grad) if return_grad else losses


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _second(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def _mean(total: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64], *,
          result_dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """total / denominator with the NumPy function's answers (0/0 NaN, x/0 +-inf)."""
    return np.asarray(_divide(float(total), float(denominator)), result_dtype)


def _refuse_unknown_chunks(arr: da.Array, name: str) -> None:
    """ValueError where a chunk's size is unknown (NaN, after a boolean index, say):
    cross_entropy pairs each chunk of logits with the targets' chunk of the same
    samples, and dask cannot rechunk to sizes it does not know."""
    if any(math.isnan(size) for sizes in arr.chunks for size in sizes):
        raise ValueError(f"{name} has chunks of unknown size, {arr.chunks}; call "
                         f"{name}.compute_chunk_sizes() first: cross_entropy pairs the "
                         f"logits' chunks with the targets' chunks of the same samples")


@overload
def cross_entropy(logits: _DaskOrArray, target: _DaskOrArray, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., sample_weight: _DaskOrArray | None = ...,
                  ignore_index: int = ..., reduction: Reduction = ...,
                  label_smoothing: float = ..., return_grad: Literal[False] = ...,
                  n_threads: Count = ..., split_every: int | None = ...) -> da.Array: ...
@overload
def cross_entropy(logits: _DaskOrArray, target: _DaskOrArray, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., sample_weight: _DaskOrArray | None = ...,
                  ignore_index: int = ..., reduction: Reduction = ...,
                  label_smoothing: float = ..., return_grad: Literal[True],
                  n_threads: Count = ..., split_every: int | None = ...
                  ) -> tuple[da.Array, da.Array]: ...
def cross_entropy(logits: _DaskOrArray, target: _DaskOrArray, *, axis: int = -1,
                  weight: npt.ArrayLike | None = None, sample_weight: _DaskOrArray | None = None,
                  ignore_index: int = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, return_grad: bool = False,
                  n_threads: Count = 1, split_every: int | None = None
                  ) -> da.Array | tuple[da.Array, da.Array]:
    """Lazy :func:`fastsoftmax.cross_entropy` of dask logits, blockwise over the samples.

    Parameters
    ----------
    logits : dask array or array_like, shape (..., C, ...)
        Chunked any way along the samples; the class axis is rechunked to one
        chunk if it is split (each sample's classes are computed together).
        Chunk sizes must be known (ValueError otherwise): after a boolean
        index, call ``compute_chunk_sizes()`` first, since the targets are
        rechunked to match.
    target : dask array or array_like
        Class labels of the samples' shape, or class probabilities of the
        logits' shape, as :func:`fastsoftmax.cross_entropy`; rechunked like
        the logits' samples.  Labels are checked when computed: one outside
        ``[0, C)`` raises ValueError then, with its value and its position
        within its chunk.
    axis : int, default -1
        The class axis, as :func:`fastsoftmax.cross_entropy`.
    weight : array_like, shape (C,), optional
        Class weights: small, so given as one array (a dask array is computed
        once, here).
    sample_weight : dask array or array_like, optional
        A weight per sample, broadcast to the samples' shape and chunks.
    ignore_index : int, default -100
        The label whose samples add nothing (as :func:`fastsoftmax.cross_entropy`).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        As :func:`fastsoftmax.cross_entropy`; the mean's denominator is
        summed over every chunk of samples first.
    label_smoothing : float, default 0.0
        In [0, 1], as :func:`fastsoftmax.cross_entropy`.
    return_grad : bool, default False
        Also return the gradient of the reduced loss.
    n_threads : int or None, default 1
        fastsoftmax's threads within each task.
    split_every : int, optional
        The fan-in of the sums (loss and the mean's denominator).

    Returns
    -------
    loss : dask.array.Array
        0-d for ``'mean'`` and ``'sum'``, the samples' shape for ``'none'``;
        float32 for float32 and 16-bit logits, float64 otherwise.
    grad : dask.array.Array
        With ``return_grad``: the logits' shape, chunked like the (rechunked)
        logits.  Compute it together with ``loss`` (``dask.compute(loss,
        grad)``) to read the logits once.

    Examples
    --------
    >>> import dask.array as da
    >>> import fastsoftmax.dask as fsd
    >>> logits = da.zeros((4, 3), chunks=(2, 3))
    >>> loss, grad = fsd.cross_entropy(logits, da.from_array([0, 1, 2, 0], chunks=2),
    ...                                return_grad=True)
    >>> round(float(loss.compute()), 4)    # log(3)
    1.0986
    >>> grad.chunks
    ((2, 2), (3,))
    """
    scores = _as_dask(logits, "logits")
    _refuse_unknown_chunks(scores, "logits")
    dtype = _result_dtype_of(scores.dtype, "logits")
    axis = _class_axis(axis, scores.ndim)
    ignore_index, label_smoothing = _check_options(ignore_index, reduction, label_smoothing,
                                                   return_grad, None)
    _check_threads(n_threads)
    n_classes = scores.shape[axis]
    if weight is not None:
        if isinstance(weight, da.Array):
            weight = weight.compute()
        weight = _prepare_weight(weight, dtype, n_classes)[0]
    if len(scores.chunks[axis]) > 1:
        scores = scores.rechunk({axis: -1})
    sample_shape = scores.shape[:axis] + scores.shape[axis + 1:]
    sample_chunks = scores.chunks[:axis] + scores.chunks[axis + 1:]
    truth = _as_dask(target, "target")
    _refuse_unknown_chunks(truth, "target")
    probabilities = truth.dtype.kind == "f" and truth.ndim == scores.ndim
    if probabilities:
        if truth.shape != scores.shape:
            raise ValueError(f"target of class probabilities must have the logits' shape "
                             f"{scores.shape}, got {truth.shape}")
        truth = truth.rechunk(scores.chunks)
    else:
        if truth.dtype.kind not in "iuf":
            raise TypeError(f"target must hold integer class indices or float class "
                            f"probabilities, got dtype {truth.dtype}")
        if truth.shape != sample_shape:
            raise ValueError(f"target of class labels must have the logits' shape without "
                             f"the class axis, {sample_shape}, got {truth.shape}")
        truth = truth.rechunk(sample_chunks)
    letters = "abcdefghijklmnopqrstuvwxyz"[:scores.ndim]
    logits_index = letters
    sample_index = letters[:axis] + letters[axis + 1:]
    target_index = logits_index if probabilities else sample_index
    samples: list[Any] = []
    if sample_weight is not None:
        weights = _as_dask(sample_weight, "sample_weight")
        try:
            weights = da.broadcast_to(weights, sample_shape)
        except ValueError:
            raise ValueError(f"sample_weight with shape {weights.shape} does not broadcast to "
                             f"the samples' shape {sample_shape}") from None
        samples = [weights.rechunk(sample_chunks), sample_index]

    denominator = None
    if reduction == "mean":
        shares = da.blockwise(
            _chunk_denominator, sample_index, truth, target_index, *samples,
            dtype=np.float64, meta=_meta(len(sample_index), np.float64),
            adjust_chunks={letter: 1 for letter in sample_index}, concatenate=True,
            axis=axis, n_classes=n_classes, probabilities=probabilities, weight=weight,
            ignore_index=ignore_index, result_dtype=dtype)
        denominator = shares.sum(dtype=np.float64, split_every=split_every)
    options = dict(axis=axis, weight=weight, ignore_index=ignore_index, reduction=reduction,
                   label_smoothing=label_smoothing, return_grad=return_grad,
                   n_threads=n_threads)
    extra: list[Any] = list(samples)
    if return_grad:
        if denominator is not None:
            if not samples:
                extra = [None, None]  # (blockwise's placeholder for no sample weights)
            extra += [denominator, ""]
        pairs = da.blockwise(_chunk_losses, logits_index, scores, logits_index, truth,
                             target_index, *extra, dtype=object, meta=_meta(scores.ndim, object),
                             concatenate=True, **options)
        losses = pairs.map_blocks(_first, chunks=_one_per_chunk(scores, (axis,)),
                                  dtype=np.float64, meta=_meta(scores.ndim, np.float64))
        grad = pairs.map_blocks(_second, dtype=dtype, meta=_meta(scores.ndim, dtype))
    else:
        # The class axis kept (length 1), not contracted: a contraction would make each
        # logits chunk a stored task of its own instead of fusing with what produces it.
        losses = da.blockwise(_chunk_losses, logits_index, scores, logits_index, truth,
                              target_index, *extra, dtype=np.float64,
                              meta=_meta(scores.ndim, np.float64),
                              adjust_chunks={logits_index[axis]: 1}, **options)
    losses = losses.squeeze(axis=axis)
    if reduction == "none":
        loss = losses.astype(dtype)
    else:
        total = losses.sum(dtype=np.float64, split_every=split_every)
        if denominator is None:
            loss = total.astype(dtype)
        else:
            loss = da.map_blocks(_mean, total, denominator, dtype=dtype, meta=_meta(0, dtype),
                                 result_dtype=dtype)
    return (loss, grad) if return_grad else loss
