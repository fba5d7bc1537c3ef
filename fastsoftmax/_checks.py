"""Argument checks shared by the public functions: arrays, axes, ``out=``, ``where=``.

The public functions (``_softmax``, ``_cross_entropy``) are the only layer that
raises, and every check happens before anything is written, so a bad call
leaves ``out`` and the input untouched.  Nothing here loops over elements: the
work goes to ``fastsoftmax._core`` (Cython, OpenMP), which calls the C kernels
in ``src/``.  ``out=`` aliasing has one rule, :func:`_unalias`.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Optional, TypeVar, overload

import numpy as np
import numpy.typing as npt

from . import _core
from ._messages import shown
from ._typing import FloatArray

# An optional input array of _unalias (the aliases are in _typing).
_MaybeArray = TypeVar("_MaybeArray", bound=Optional[npt.NDArray[Any]])

_FLOAT32: np.dtype[np.floating[Any]] = np.dtype(np.float32)
_FLOAT64: np.dtype[np.floating[Any]] = np.dtype(np.float64)


def _as_float_array(x: npt.ArrayLike, name: str) -> FloatArray:
    """``x`` as a C-contiguous float32/float64 array, converting at most once.

    float32 and float64 are kept, float16 becomes float32, integers and bools
    (and lists of them) become float64.  Complex, object, string and other
    dtypes raise TypeError.  Objects NumPy can view without a copy (ndarray
    subclasses such as memmaps, memoryviews, PyTorch CPU tensors and JAX
    arrays) are viewed, not copied, when they are C-contiguous float32/float64.
    """
    if type(x) is np.ndarray and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64) \
            and x.flags.c_contiguous:
        return x
    arr = _view_as_ndarray(x, name)
    dtype = arr.dtype
    if not dtype.isnative:  # e.g. '>f4' on a little-endian CPU: converted with the dtype, once
        dtype = dtype.newbyteorder("=")
    if dtype == _FLOAT32 or dtype == _FLOAT64:
        target = dtype
    elif dtype == np.float16:
        target = _FLOAT32
    elif dtype.kind in "iub":
        target = _FLOAT64
    else:
        raise TypeError(
            f"{name} must hold real numbers (float32/float64, or float16, ints and bools, "
            f"which are converted); got dtype {dtype}")
    return np.asarray(arr, dtype=target, order="C")  # (ascontiguousarray would make 0-d 1-d)


def _view_as_ndarray(x: Any, name: str) -> npt.NDArray[Any]:
    """``x`` as an ndarray, a view where NumPy can make one.

    DLPack first for the objects that offer it (PyTorch, JAX, CuPy...): it is
    the protocol made for zero-copy exchange, and its errors say what is wrong
    ("use tensor.detach()", a device that is not the CPU).  ``np.asarray`` (the
    buffer protocol, ``__array__``) is the fallback and the path for the rest.
    """
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    x = _resolve_lazy_bits(x)
    try:
        return np.from_dlpack(x)
    except Exception as dlpack_error:  # BufferError, RuntimeError, TypeError: any refusal
        arr: npt.NDArray[Any] | None
        try:
            arr = np.asarray(x)
        except Exception:
            arr = None
        if arr is None or arr.dtype == object:
            kind = f"{type(x).__module__}.{type(x).__qualname__}"
            raise TypeError(f"{name} ({kind}) cannot be viewed as a NumPy array on the CPU: "
                            f"{dlpack_error}") from dlpack_error
        return arr


def _resolve_lazy_bits(x: Any) -> Any:
    """``x`` with PyTorch's lazy negation and conjugation carried out.

    torch marks ``t.conj().imag`` (and ``torch._neg_view(t)``) with a negative
    bit instead of negating the memory, and its ``__dlpack__`` exports the
    memory as it is: every value would come out with the wrong sign (its
    ``.numpy()`` refuses such tensors for that reason).  ``resolve_neg()`` and
    ``resolve_conj()`` make the negated copy; other objects pass unchanged.
    """
    for is_set, resolve in (("is_neg", "resolve_neg"), ("is_conj", "resolve_conj")):
        flag = getattr(x, is_set, None)
        if callable(flag) and flag():
            x = getattr(x, resolve)()
    return x


@overload
def _normalize_axis(axis: int, ndim: int, name: str = ...) -> int: ...
@overload
def _normalize_axis(axis: int | None, ndim: int, name: str = ...) -> int | None: ...
def _normalize_axis(axis: int | None, ndim: int, name: str = "axis") -> int | None:
    """``axis`` as a non-negative int, or None for the whole array."""
    if type(axis) is int and -ndim <= axis < ndim:
        return axis % ndim
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={shown(axis)} is out of range for an array of {ndim} "
                         f"dimension(s)")
    return axis + ndim if axis < 0 else axis


def _reduction_view(shape: tuple[int, ...], axis: int | None) -> tuple[int, int, int]:
    """(outer, n, inner) of ``shape`` reduced over ``axis`` (None: everything)."""
    if axis is None:
        return 1, math.prod(shape), 1
    if axis == len(shape) - 1:
        return (shape[0] if len(shape) == 2 else math.prod(shape[:-1])), shape[-1], 1
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _as_python_float(value: float, name: str) -> float:
    """``float(value)``, with a ValueError naming the argument for an int too large for a float."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float: {shown(value)}") from None


def _check_temperature(temperature: float) -> float:
    """1 / temperature, for a finite temperature > 0."""
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return 1.0 / temperature
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a real number, got {temperature!r}")
    t = _as_python_float(temperature, "temperature")
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return 1.0 / t


def _check_out(out: object, shape: tuple[int, ...], dtype: np.dtype[Any],
               name: str = "out") -> FloatArray:
    """``out`` checked to be a writeable C-contiguous ndarray of ``shape`` and ``dtype``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        native = " in the machine's byte order" if out.dtype.newbyteorder("=") == dtype else ""
        raise TypeError(f"{name} must have dtype {dtype}{native} (the result's), "
                        f"got {out.dtype.str if native else out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable (got a read-only array)")
    return out


def _unalias(out: FloatArray, a: _MaybeArray, *, in_place: bool = False) -> _MaybeArray:
    """``a`` as a kernel that writes ``out`` may read it: a copy if it shares memory with ``out``.

    Kernels write ``out`` while they still read their inputs, so an input in
    ``out``'s memory would be read after it was overwritten, and a label read
    from there could index anywhere.  Decided by the memory ranges, not by
    identity, so a view of ``out`` (even as another dtype) is caught.
    ``in_place=True`` marks the input a kernel is written to overwrite element
    by element after reading it (``x`` for softmax, the logits for the
    cross-entropy gradient, ``grad_output``/``output`` for the backward
    helpers): it may be exactly ``out`` (same start and size), and is copied
    only for a partial overlap.  Every array here is C-contiguous.
    """
    if a is None:
        return a
    shared = _core.overlap(out, a)
    return a if shared == 0 or (shared == 1 and in_place) else a.copy()


def _prepare_out(out: FloatArray | None, shape: tuple[int, ...], dtype: np.dtype[Any],
                 x: FloatArray, in_place: bool = True) -> tuple[FloatArray, FloatArray]:
    """A C-contiguous writeable array for the result: ``out`` checked, or a new one.

    Returns ``(out, x)``, ``x`` copied if it shares memory with ``out``
    (unless it is exactly ``out`` and ``in_place``: see :func:`_unalias`).
    """
    if out is None:
        return np.empty(shape, dtype=dtype), x
    if out is x and in_place and x.flags.writeable:  # x is already a C-contiguous float array
        return out, x
    out = _check_out(out, shape, dtype)
    return out, _unalias(out, x, in_place=in_place)


def _prepare_where(where: npt.ArrayLike | None, shape: tuple[int, ...],
                   axis: int | None) -> npt.NDArray[np.bool_] | None:
    """A ``where=`` mask as the kernels read it: None, or a C-contiguous bool array.

    The kernels index the mask with x's flat index modulo the mask's size, so
    a mask broadcast over leading axes (a ``(T, T)`` causal mask on ``(B, T, T)``
    scores) is used as it is, never copied ``B`` times.  The mask must vary
    over whole trailing blocks that contain the reduced axis; any other
    broadcast is expanded to ``x``'s shape (a bool copy, never a copy of ``x``).
    """
    if where is None:
        return None
    mask = _view_as_ndarray(where, "where")
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    broadcast: tuple[int, ...] | None
    try:
        broadcast = np.broadcast_shapes(mask.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise ValueError(f"where with shape {mask.shape} does not broadcast to x's shape "
                         f"{tuple(shape)}")
    ndim = len(shape)
    padded = (1,) * (ndim - mask.ndim) + mask.shape
    last_start = 0 if axis is None else axis
    for start in range(last_start, -1, -1):  # the smallest trailing block that holds the mask
        if all(d == 1 for d in padded[:start]) and padded[start:] == tuple(shape[start:]):
            return np.ascontiguousarray(mask.reshape(shape[start:]))
    return np.ascontiguousarray(np.broadcast_to(mask, shape))



def _check_int(value: int, name: str) -> int:
    """``value`` as a Python int; TypeError naming ``name`` for a non-int (or a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)



def _prepare_b(b: npt.ArrayLike, x: FloatArray
               ) -> tuple[npt.NDArray[np.float64], tuple[int, ...], np.dtype[Any]]:
    """logsumexp's ``b=`` as float64, with the shape it and ``x`` broadcast to and the result dtype.

    As in SciPy, ``b`` and ``x`` broadcast against each other (NumPy's rules),
    and the result dtype is NumPy's promotion of theirs: a float64 ``b`` makes
    a float32 ``x``'s result float64, while a Python scalar keeps ``x``'s dtype
    (it promotes weakly).  ``b`` holds real numbers: bools, ints and floats up
    to float64 (they are exact in float64, except ints beyond 2**53).
    """
    weak = type(b) in (bool, int, float)
    if type(b) is int:
        b = _as_python_float(b, "b")
    weights = _view_as_ndarray(b, "b")
    dtype = weights.dtype
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise TypeError(f"b must hold real numbers (bools, ints or floats up to float64), "
                        f"got dtype {dtype}")
    try:
        shape = np.broadcast_shapes(weights.shape, x.shape)
    except ValueError:
        raise ValueError(f"b with shape {weights.shape} does not broadcast against x's shape "
                         f"{x.shape}") from None
    result = x.dtype if weak else np.result_type(x.dtype, dtype)
    return (weights.astype(np.float64, copy=False), shape,
            _FLOAT32 if result == _FLOAT32 else _FLOAT64)
