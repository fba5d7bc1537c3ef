"""The reference's shared building blocks: dtypes, slices and a stable log-sum-exp.

``fastsoftmax.reference`` (the softmax family) and ``_reference_cross_entropy``
(its ``cross_entropy``) both build on these, so they live here, where each
imports them without importing the other; ``fastsoftmax.reference``'s
docstring says what the reference is.  Plain float64 NumPy, to be read and
checked by eye.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.exceptions import AxisError

from ._checks import _is_bfloat16, _view_as_ndarray, _widened
from ._typing import Axes

# Every public function of the reference runs under this: inf - inf, 0/0, exp overflow at masked
# positions and log(0) are all expected here and produce the contract's values.
# (NumPy < 2.0's stubs make errstate generic, hence the ignore.)
_silently: np.errstate = np.errstate(all="ignore")  # type: ignore[type-arg, unused-ignore]


def _as_array(a: Any, name: str = "input") -> npt.NDArray[Any]:
    """``a`` as an ndarray, read as the fast functions read their inputs (torch tensors and
    other DLPack objects, a lazy negation resolved; a tensor that requires grad refused with
    a TypeError), bfloat16 as its values widened to float32, exactly."""
    if isinstance(a, np.ndarray) and not _is_bfloat16(a.dtype):
        return a
    arr = _view_as_ndarray(a, name)
    return _widened(arr, np.dtype(np.float32)) if _is_bfloat16(arr.dtype) else arr


def _result_dtype(*arrays: npt.ArrayLike) -> np.dtype[Any]:
    """float32 for float16/bfloat16/float32 inputs, float64 for everything else."""
    # bfloat16 (ml_dtypes) promotes as float32 here: np.result_type cannot promote it.
    dtypes = [np.dtype(np.float32) if d.name == "bfloat16" else d
              for d in (_as_array(a).dtype for a in arrays)]
    dtype = np.result_type(*dtypes)
    return np.dtype(np.float32) if dtype in (np.float16, np.float32) else np.dtype(np.float64)


def _upcast(*arrays: Any) -> tuple[list[npt.NDArray[np.float64]], np.dtype[Any]]:
    """Return the arrays converted to float64, and the result dtype they share."""
    # (arrays: array_likes; the name is reused for the list of ndarrays.)
    arrays = [_as_array(a) for a in arrays]  # type: ignore[assignment]
    return [a.astype(np.float64) for a in arrays], _result_dtype(*arrays)


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
    top = _slice_max(x, axis, mask)
    with np.errstate(over="ignore", invalid="ignore"):
        z = (x - top) / temperature
        # x - max past float64's largest number (a slice spanning more than it) is -inf,
        # where (x - max)/T with T > 1 may be finite: the same difference halved, exactly.
        spilled = np.isneginf(z) & np.isfinite(x) & np.isfinite(top)
        if spilled.any():
            z = np.where(spilled, (x / 2 - top / 2) / (temperature / 2), z)
    return z


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
