"""top_k: the k largest (or smallest) entries along an axis and their indices, as torch.topk.

The selection runs in the C kernels (src/fs_top_k_tmpl.h): one pass over each
row against the current k-th best, no sort of the row.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import _as_kernel_array, _check_flag, _check_int, _normalize_axis, _result_dtype, _widened
from ._messages import shown
from ._threads import resolve_threads
from ._typing import Count, FloatArray

__all__ = ["top_k"]


def _check_k(k: int, n: int) -> int:
    k = _check_int(k, "k")
    if not 0 <= k <= n:
        raise ValueError(f"k={shown(k)} is out of range (selected index k out of range): "
                         f"k must be in [0, {n}] for an axis of length {n}")
    return k


def top_k(x: npt.ArrayLike, k: int, axis: int = -1, *, largest: bool = True,
          sorted: bool = True, n_threads: Count = None
          ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The ``k`` largest (or smallest) entries along an axis and their indices.

    ``torch.topk(x, k, dim=axis, largest=largest, sorted=sorted)`` for NumPy
    arrays: the same values, and the same indices wherever the row has no
    ties.  No sort of the row: one pass against the current k-th best.

    Parameters
    ----------
    x : array_like
        Input of any shape (dtypes as in :func:`softmax`: float32 and float64
        as they are, float16 as float32, integers, bools and lists as
        float64; complex, object and string raise TypeError).  Never modified.
    k : int
        How many entries to select per slice, ``0 <= k <= x.shape[axis]``
        (a 0-d ``x`` takes 0 or 1, as ``torch.topk``).
    axis : int, default -1
        The one axis to select along (PyTorch's ``dim``).  A tuple of axes or
        None raises TypeError: as ``torch.topk``, this takes a single axis.
    largest : bool, default True
        True: the largest entries, in descending order.  False: the smallest,
        in ascending order.
    sorted : bool, default True
        Accepted for ``torch.topk``'s signature.  The result is always sorted
        as above, ``sorted=False`` included (torch promises no order then, so
        a sorted result is one of the orders it allows).
    n_threads : int, optional
        As in :func:`softmax`.  Whole slices go to threads (one long slice is
        not split), and the results are identical for every thread count.

    Returns
    -------
    values : ndarray
        ``x``'s shape with ``axis`` of length ``k``, in the dtype ``x`` is
        computed in (float32 or float64); C-contiguous.  0-d for 0-d ``x``.
    indices : ndarray of int64
        The same shape: the positions along ``axis`` of ``values``.

    Raises
    ------
    TypeError
        For a non-real dtype of ``x``, a ``k`` that is not an int (a float or
        a bool), an ``axis`` that is not an int, a ``largest`` or ``sorted``
        that is not a bool, a non-int ``n_threads``.
    ValueError
        For ``k`` outside ``[0, x.shape[axis]]`` (torch's "selected index k
        out of range"), an axis out of range (``numpy.exceptions.AxisError``),
        or ``n_threads=0``.

    Notes
    -----
    The order is the values', with these rules, which are torch's:

    - NaN counts as larger than ``+inf``: NaNs come first with
      ``largest=True`` and last (never selected before a number) with
      ``largest=False``.
    - ``-0.0`` and ``+0.0`` are equal: a tie.
    - Ties go to the lower index: among equal values (NaNs included), the
      entry that comes first along ``axis`` is selected first and listed
      first.  torch breaks ties in an unspecified order, so its indices (and
      the sign of a selected zero) may differ there; its values never do.

    Cost: ``O(n)`` compares per slice plus ``O(k log k)`` for the sort of the
    selected entries (more when the slice rises steadily along the axis,
    every entry then replacing the k-th best: ``O(n log k)``).  An ``axis``
    other than the last, with trailing axes longer than 1, is first copied
    with that axis moved last.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> values, indices = fastsoftmax.top_k(np.array([1.0, 5.0, 3.0, 5.0, 2.0]), 3)
    >>> values
    array([5., 5., 3.])
    >>> indices   # the tie at 5.0: the lower index first
    array([1, 3, 2])
    >>> fastsoftmax.top_k(np.float32([[3, 1, 2], [0, 4, 9]]), 1, axis=0, largest=False)
    (array([[0., 1., 2.]], dtype=float32), array([[1, 0, 0]]))
    """
    x = _as_kernel_array(x, "x")
    if axis is None or isinstance(axis, tuple):
        raise TypeError(f"axis must be an int (top_k selects along one axis), got {axis!r}")
    ax = _normalize_axis(axis, x.ndim, expected="an int")
    want_largest = _check_flag(largest, "largest")
    _check_flag(sorted, "sorted")
    if ax is None:  # 0-d: one slice of one entry
        _check_k(k, 1)
        resolve_threads(n_threads, 1)  # (checked, though one entry needs no thread)
        return _widened(x, _result_dtype(x)).copy(), np.zeros((), np.int64)
    n = x.shape[ax]
    k = _check_k(k, n)
    threads = resolve_threads(n_threads, x.size)
    last = ax == x.ndim - 1
    # The axis last, contiguous: x itself, or one copy.
    rows = x if last else np.ascontiguousarray(np.moveaxis(x, ax, -1))
    shape = rows.shape[:-1] + (k,)
    values = np.empty(shape, _result_dtype(x))
    indices = np.empty(shape, np.int64)
    if values.size:
        n_rows = values.size // k  # a thread takes whole rows: no more threads than rows
        _core.top_k(rows, values, indices, n_rows, n, k, want_largest, min(threads, n_rows))
    if last:
        return values, indices
    return _axis_back(values, ax), _axis_back(indices, ax)


def _axis_back(a: npt.NDArray[Any], ax: int) -> npt.NDArray[Any]:
    """A result computed with the axis last, with it back at ``ax``, C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, -1, ax))
