"""Argument checks shared by the public functions: arrays, axes, ``out=``, ``where=``.

The public functions (``_softmax``, ``_cross_entropy``) are the only layer that
raises, and every check happens before anything is written, so a bad call
leaves ``out`` and the input untouched.  Nothing here loops over elements: the
work goes to ``fastsoftmax._core`` (Cython, threads), which calls the C kernels
in ``src/``.  ``out=`` aliasing has one rule, :func:`_unalias`.
"""
from __future__ import annotations

import math
import reprlib
import sys
from numbers import Real
from typing import Any, Optional, TypeVar

import numpy as np
import numpy.typing as npt

from . import _core
from ._messages import shown
from ._pool import fresh
from ._typing import Axes, FloatArray

# An optional input array of _unalias (the aliases are in _typing).
_MaybeArray = TypeVar("_MaybeArray", bound=Optional[npt.NDArray[Any]])

from numpy.exceptions import AxisError  # a ValueError (and IndexError), as NumPy raises

_FLOAT32: np.dtype[np.floating[Any]] = np.dtype(np.float32)
_FLOAT64: np.dtype[np.floating[Any]] = np.dtype(np.float64)
_FLOAT16: np.dtype[np.floating[Any]] = np.dtype(np.float16)
# bfloat16 as the kernels take it: its bit patterns, as uint16 tagged by metadata so that
# nothing takes a plain uint16 array for one (fastsoftmax._core reads uint16 as bfloat16).
_BFLOAT16: np.dtype[np.uint16] = np.dtype(np.uint16, metadata={"fastsoftmax": "bfloat16"})


def _as_float_array(x: npt.ArrayLike, name: str) -> FloatArray:
    """``x`` as a C-contiguous float32/float64 array, converting at most once.

    float32 and float64 are kept, float16 and bfloat16 become float32 (exactly),
    integers and bools (and lists of them) become float64.  Complex, object,
    string and other dtypes raise TypeError.  Objects NumPy can view without a
    copy (ndarray subclasses such as memmaps, memoryviews, PyTorch CPU tensors
    and JAX arrays) are viewed, not copied, when they are C-contiguous
    float32/float64.  For the inputs the kernels read as they are, see
    :func:`_as_kernel_array`.
    """
    if type(x) is np.ndarray and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64) \
            and x.flags.c_contiguous:
        return x
    arr = _as_kernel_array(x, name)
    return _widened(arr, _computed_dtype(arr.dtype, name))


def _as_kernel_array(x: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
    """``x`` as a C-contiguous array the kernels read: float32, float64, or 16-bit.

    As :func:`_as_float_array`, except that float16 and bfloat16 are kept as
    they are (the kernels widen them in registers, and compute and return
    float32): float16 as such, bfloat16 as its bit patterns (``_BFLOAT16``, a
    uint16 view of the same memory), whether it comes as an ``ml_dtypes``
    array, a PyTorch tensor or a JAX array.  So a C-contiguous 16-bit input
    is not copied.  :func:`_computed_dtype` of the result is the dtype of what
    is computed and returned.
    """
    if type(x) is np.ndarray and (x.dtype is _FLOAT32 or x.dtype is _FLOAT64) \
            and x.flags.c_contiguous:
        return x
    arr = _view_as_ndarray(x, name)
    dtype = arr.dtype
    if _is_bfloat16(dtype) or (dtype.kind == "f" and dtype.itemsize == 2):  # any byte order
        arr = _bits_in_native_order(arr)
        arr = arr.view(_BFLOAT16) if _is_bfloat16(dtype) else arr
    else:
        return np.asarray(arr, dtype=_computed_dtype(dtype, name), order="C")
    return np.asarray(arr, order="C")  # (ascontiguousarray would make 0-d 1-d)


def _bits_in_native_order(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A 16-bit float array in the machine's byte order: ``arr``, or one swapping copy.

    Before anything views it as bit patterns: a big-endian bfloat16 viewed as
    uint16 on a little-endian CPU reads every value byte-swapped (2.0 as 2.2e-41),
    and a big-endian float16 would otherwise be widened to float32 (and refused
    as the input of a float16 ``out=``).
    """
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


def _result_dtype(x: npt.NDArray[Any]) -> np.dtype[Any]:
    """The dtype the kernels compute and return for an array of :func:`_as_kernel_array`:
    its own for float32 and float64, float32 for the 16-bit dtypes."""
    dtype = x.dtype
    return dtype if dtype is _FLOAT32 or dtype is _FLOAT64 else _computed_dtype(dtype, "x")


def _is_bfloat16(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is bfloat16: ``ml_dtypes.bfloat16`` (JAX's, too), or ``_BFLOAT16``."""
    # The size first: reading a dtype's name costs a microsecond, a tenth of a small call.
    return dtype is _BFLOAT16 or (dtype.itemsize == 2 and (dtype.name == "bfloat16" or (
        dtype.metadata is not None and dtype.metadata.get("fastsoftmax") == "bfloat16")))


def _widened(arr: npt.NDArray[Any], dtype: np.dtype[Any]) -> FloatArray:
    """``arr`` as float ``dtype``, exactly: C-contiguous when ``arr`` is or when it is
    bfloat16 (in any form: ``ml_dtypes``, or the bit patterns of ``_BFLOAT16``).

    bfloat16's bit patterns are the top halves of float32's, so they widen by
    a shift, without ``ml_dtypes``; the rest is NumPy's cast (none when
    ``arr`` already has ``dtype``).
    """
    if _is_bfloat16(arr.dtype):
        wide = _bits_in_native_order(arr).view(np.uint16).astype(np.uint32, order="C")
        wide <<= 16  # (in place: a 0-d array stays an array, where `<< 16` makes a scalar)
        return wide.view(np.float32).astype(dtype, copy=False)
    return arr.astype(dtype, copy=False)


def _as_dtype_array(x: npt.ArrayLike, name: str, dtype: np.dtype[Any]) -> FloatArray:
    """``x`` as a C-contiguous array of ``dtype`` (checked by :func:`_check_float_dtype`).

    The input dtypes accepted are those of :func:`_as_float_array`; the cast
    is one conversion, straight from the input's dtype.
    """
    arr = _view_as_ndarray(x, name)
    _computed_dtype(arr.dtype, name)
    if _is_bfloat16(arr.dtype):
        return _widened(arr, dtype)
    return np.asarray(arr, dtype=dtype, order="C")


def _computed_dtype(dtype: np.dtype[Any], name: str) -> np.dtype[Any]:
    """The dtype an input of ``dtype`` is computed in; TypeError for one that is not real."""
    if not dtype.isnative:  # e.g. '>f4' on a little-endian CPU: converted with the dtype, once
        dtype = dtype.newbyteorder("=")
    if dtype == _FLOAT32 or dtype == _FLOAT64:
        return dtype
    if dtype == _FLOAT16 or _is_bfloat16(dtype):
        return _FLOAT32
    if dtype.kind in "iub":
        return _FLOAT64
    if dtype.kind == "f":  # long double: real, but more precise than any kernel computes
        raise TypeError(f"{name} has dtype {dtype}, which fastsoftmax does not compute in "
                        f"(float32/float64, or float16, bfloat16, ints and bools); convert it "
                        f"with .astype(np.float64), which rounds it")
    hint = (" (Python objects, such as ints beyond int64 or Fractions: convert them to "
            "float64 first)" if dtype.kind == "O" else "")
    raise TypeError(
        f"{name} must hold real numbers (float32/float64, or float16, bfloat16, ints and "
        f"bools, which are computed in float32 or float64); got dtype {dtype}{hint}")


def _check_result_dtype(dtype: npt.DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    """``dtype`` as float32, float64, float16 or bfloat16 (``ml_dtypes``); TypeError otherwise.

    The dtypes a softmax result may have: a 16-bit one is computed in float32
    and rounded once (to nearest, ties to even).
    """
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):  # not a dtype at all
        resolved = np.dtype(object)
    if dtype is not None and (resolved == _FLOAT16 or _is_bfloat16(resolved)):
        return resolved
    try:
        return _check_float_dtype(dtype, name)
    except TypeError:
        raise TypeError(f"{name} must name float32, float64, float16 or bfloat16 (in the "
                        f"machine's byte order), got {dtype!r}") from None


def _as_16_bit_array(x: npt.ArrayLike, name: str, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """``x`` as a C-contiguous array of the 16-bit ``dtype``, as the kernels read it.

    Kept when it already has that type; otherwise cast once, rounding to nearest
    even from its own precision (from float64 directly, not through float32).
    """
    arr = _as_kernel_array(x, name)
    if _is_16_bit_of(arr, dtype):
        return arr
    wide = _widened(arr, _computed_dtype(arr.dtype, name))  # exact
    return _kernel_view(np.asarray(wide, dtype=dtype))


def _is_16_bit_of(arr: npt.NDArray[Any], dtype: np.dtype[Any]) -> bool:
    """Whether ``arr`` (any form, bit patterns included) holds the 16-bit float ``dtype``."""
    if dtype == _FLOAT16:
        return arr.dtype == _FLOAT16
    return _is_bfloat16(dtype) and _is_bfloat16(arr.dtype)


def _kernel_view(a: _MaybeArray) -> _MaybeArray:
    """An output as ``fastsoftmax._core`` writes it: a bfloat16 array as its bit patterns."""
    if a is not None and a.dtype.itemsize == 2 and _is_bfloat16(a.dtype):
        return a.view(_BFLOAT16)  # type: ignore[return-value]
    return a


def _check_float_dtype(dtype: npt.DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    """``dtype`` as float32 or float64 (native byte order); TypeError naming it otherwise."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):  # not a dtype at all
        resolved = np.dtype(object)
    if dtype is not None and resolved in (_FLOAT32, _FLOAT64):  # (np.dtype(None) is float64)
        return _FLOAT32 if resolved == _FLOAT32 else _FLOAT64
    raise TypeError(f"{name} must name float32 or float64 (in the machine's byte order), "
                    f"got {dtype!r}")


def _refuse_lazy(x: Any, name: str) -> None:
    """TypeError for a dask collection (a dask array, an xarray object backed by one).

    Its ``__array__`` would compute all of it into this process's memory, silently:
    out of memory for an array stored out of core.  ``fastsoftmax.dask`` computes it
    chunk by chunk instead.  (xarray's objects have ``__dask_graph__`` even when backed
    by NumPy; it returns None then.)
    """
    graph = getattr(x, "__dask_graph__", None)
    if callable(graph) and graph() is not None:
        raise TypeError(f"{name} is a dask collection ({type(x).__module__}."
                        f"{type(x).__qualname__}); fastsoftmax's NumPy functions would load "
                        f"all of it into memory. Use fastsoftmax.dask (the same functions, "
                        f"lazy, chunk by chunk), or .compute() it first")


def _refuse_masked(value: Any, name: str) -> None:
    """TypeError for a numpy.ma.MaskedArray, input or output: np.asarray drops the mask, so
    an input's masked entries would count and an output's stale mask would hide results.
    Refused, not guessed."""
    if isinstance(value, np.ma.MaskedArray):
        leave_out = (", with where=~np.ma.getmaskarray(x) to leave the masked entries out"
                     if name == "x" else "")
        raise TypeError(f"{name} is a numpy.ma.MaskedArray, whose mask fastsoftmax does not "
                        f"read; pass np.ma.getdata({name}){leave_out}")


def _asarray(value: Any, name: str, **kwargs: Any) -> npt.NDArray[Any]:
    """``np.asarray(value, **kwargs)``, with NumPy's ValueError (a ragged nesting of
    sequences, a string that is no number) naming the argument and the value: NumPy's
    own message names neither.  A MaskedArray is refused (:func:`_refuse_masked`)."""
    _refuse_masked(value, name)
    try:
        return np.asarray(value, **kwargs)
    except ValueError as error:
        raise ValueError(f"{name} cannot be read as an array: {error}; got "
                         f"{reprlib.repr(value)}") from None


def _view_as_ndarray(x: Any, name: str) -> npt.NDArray[Any]:
    """``x`` as an ndarray, a view where NumPy can make one.

    DLPack first for the objects that offer it (PyTorch, JAX, CuPy...): it is
    the protocol made for zero-copy exchange, and its errors say what is wrong
    ("use tensor.detach()", a device that is not the CPU).  ``np.asarray`` (the
    buffer protocol, ``__array__``) is the fallback and the path for the rest.
    A dask collection is refused (:func:`_refuse_lazy`), never computed.
    """
    _refuse_masked(x, name)
    if isinstance(x, np.ndarray):
        return np.asarray(x)
    _refuse_lazy(x, name)
    if not hasattr(x, "__dlpack__"):
        return _asarray(x, name)
    x = _resolve_lazy_bits(x)
    try:
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            # DLPack's kDLBfloat has no NumPy dtype (np.from_dlpack refuses it): the same
            # memory, viewed as int16 by torch itself, then tagged as bfloat16 bit patterns.
            # An int16 view never requires grad, so torch's own refusal is repeated here.
            if x.requires_grad:
                raise BufferError("Can't export tensors that require gradient, "
                                  "use tensor.detach()")
            return np.from_dlpack(x.view(_torch_int16(x))).view(_BFLOAT16)
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


def _view_as_floats(x: Any, name: str) -> npt.NDArray[Any]:
    """:func:`_view_as_ndarray`, with bfloat16 widened to float32: for the arguments that
    are not read by the kernels, which NumPy then reads as floats (never as the bit
    patterns' integers)."""
    arr = _view_as_ndarray(x, name)
    return _widened(arr, _FLOAT32) if _is_bfloat16(arr.dtype) else arr


def _torch_int16(tensor: Any) -> Any:
    """``torch.int16``, found through the tensor's own module (torch is not imported here)."""
    return sys.modules[type(tensor).__module__.split(".")[0]].int16


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


def _normalize_axis(axis: int | None, ndim: int, name: str = "axis",
                    expected: str = "an int or None") -> int | None:
    """``axis`` as a non-negative int, or None for the whole array.

    A 0-d array accepts ``0`` and ``-1`` as NumPy's reductions do: its one
    slice is itself, so they mean None.  ``expected`` names what a TypeError
    says the argument may be.
    """
    if type(axis) is int and -ndim <= axis < ndim:
        return axis % ndim
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be {expected}, got {axis!r}")
    axis = int(axis)
    if ndim == 0 and axis in (0, -1):
        return None
    if not -ndim <= axis < ndim:
        raise AxisError(f"{name}={shown(axis)} is out of range for an array of {ndim} "
                        f"dimension(s)")
    return axis + ndim if axis < 0 else axis


_AXES = "an int, a tuple of ints or None"  # what the softmax family's axis may be


def _normalize_axes(axis: Axes, ndim: int) -> int | tuple[int, ...] | None:
    """The softmax family's ``axis``: an int, None, or a tuple of ints, as NumPy reads it.

    Returns the canonical form every later step reads: a non-negative int
    (one axis), None (all axes, also for a tuple naming every axis), or a
    sorted tuple of two or more distinct axes, or ``()`` (no axis: every
    element is a slice of its own).  Out-of-range axes raise
    ``numpy.exceptions.AxisError`` (a ValueError), repeated ones ValueError,
    anything but ints TypeError, as NumPy's reductions do; so a 0-d array
    takes the int ``0``/``-1`` but not ``(0,)``.
    """
    if type(axis) is int and -ndim <= axis < ndim:  # the common call, kept cheapest
        return axis % ndim
    if not isinstance(axis, tuple):
        return _normalize_axis(axis, ndim, expected=_AXES)
    shown_axis = f"({', '.join(map(shown, axis))}{',' if len(axis) == 1 else ''})"
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axis):
        raise TypeError(f"axis must be {_AXES}, got {shown_axis}")
    axes = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise AxisError(f"axis={shown(int(a))} in {shown_axis} is out of range for an "
                            f"array of {ndim} dimension(s)")
        axes.append(int(a) % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {shown_axis} names an axis more than once")
    if len(axes) == ndim:
        return None
    return axes[0] if len(axes) == 1 else tuple(sorted(axes))


def _scattered(axis: int | tuple[int, ...] | None) -> bool:
    """True for a normalized tuple of axes that are not adjacent (the kernels need a copy)."""
    return isinstance(axis, tuple) and len(axis) > 1 and axis[-1] - axis[0] != len(axis) - 1


def _reduction_view(shape: tuple[int, ...], axis: int | tuple[int, ...] | None
                    ) -> tuple[int, int, int]:
    """(outer, n, inner) of ``shape`` reduced over a normalized ``axis`` (None: everything).

    Adjacent axes are one axis of their product's length, ``()`` makes every
    element a slice of one; scattered axes must have been gathered first
    (:func:`_gather_axes`).
    """
    if axis is None:
        return 1, math.prod(shape), 1
    if axis == len(shape) - 1:
        return (shape[0] if len(shape) == 2 else math.prod(shape[:-1])), shape[-1], 1
    if type(axis) is int:  # (type() is: isinstance costs a tiny call 20 ns more)
        return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    assert isinstance(axis, tuple) and not _scattered(axis), "gather scattered axes first"
    if not axis:
        return math.prod(shape), 1, 1
    first, last = axis[0], axis[-1] + 1
    return math.prod(shape[:first]), math.prod(shape[first:last]), math.prod(shape[last:])


def _mask_slices(mask: npt.NDArray[np.bool_], shape: tuple[int, ...], outer: int, n: int,
                 inner: int) -> npt.NDArray[np.bool_]:
    """A kernels' mask (:func:`_prepare_where`: possibly broadcast) over an input of
    ``shape``, in :func:`_reduction_view`'s ``(outer, n, inner)`` layout."""
    return np.broadcast_to(mask, shape).reshape(outer, n, inner)


def _reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool
                   ) -> tuple[int, ...]:
    """``shape`` without a normalized tuple's axes (of length 1 with ``keepdims``), as NumPy."""
    if keepdims:
        return tuple(1 if i in axis else side for i, side in enumerate(shape))
    return tuple(side for i, side in enumerate(shape) if i not in axis)


def _gather_axes(x: FloatArray, mask: npt.NDArray[np.bool_] | None, axis: tuple[int, ...]
                 ) -> tuple[FloatArray, npt.NDArray[np.bool_] | None, tuple[int, ...]]:
    """``x`` and its mask with the scattered reduced ``axis`` moved last, as C-contiguous copies.

    Returns ``(x, mask, trailing_axes)``.  The other axes keep their order, so
    a reduction's result needs no copy back; an elementwise result is put
    back with :func:`_scatter_back`.  ``mask`` is the one
    :func:`_prepare_where` gave for ``x``'s shape (a trailing block, or the
    full shape).
    """
    ndim = x.ndim
    trailing = tuple(range(ndim - len(axis), ndim))
    moved = np.ascontiguousarray(np.moveaxis(x, axis, trailing))
    if mask is not None:
        padded = mask.reshape((1,) * (ndim - mask.ndim) + mask.shape)
        mask = _prepare_where(np.moveaxis(padded, axis, trailing), moved.shape, trailing)
    return moved, mask, trailing


def _scatter_back(result: FloatArray, axis: tuple[int, ...], out: FloatArray) -> FloatArray:
    """``out`` holding ``result`` (computed on :func:`_gather_axes`'s layout) in ``x``'s layout."""
    trailing = tuple(range(result.ndim - len(axis), result.ndim))
    out[...] = np.moveaxis(result, trailing, axis)
    return out


def _as_python_float(value: float, name: str) -> float:
    """``float(value)``, with a ValueError naming the argument for an int too large for a float."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float: {shown(value)}") from None


def _is_real_number(value: object) -> bool:
    """Whether ``value`` is a real number, bools aside: a ``numbers.Real``, or a bfloat16
    scalar (``ml_dtypes`` registers none as a Real, where NumPy's float16 is one)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, Real) or (isinstance(value, np.generic)
                                       and _is_bfloat16(value.dtype))


def _check_temperature(temperature: float) -> float:
    """1 / temperature, for a finite temperature > 0."""
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return 1.0 / temperature
    if not _is_real_number(temperature):
        raise TypeError(f"temperature must be a real number, got {temperature!r}")
    t = _as_python_float(temperature, "temperature")
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return 1.0 / t


def _check_out(out: object, shape: tuple[int, ...], dtype: np.dtype[Any],
               name: str = "out") -> FloatArray:
    """``out`` checked to be a writeable C-contiguous ndarray of ``shape`` and ``dtype``.

    A subclass is written through, and returned as it came; a MaskedArray is refused (its
    mask would stay as it was)."""
    _refuse_masked(out, name)
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
        return fresh(shape, dtype, like=x), x
    if out is x and in_place and x.dtype == dtype and x.flags.writeable:
        return out, x  # x is already a C-contiguous array of the result's dtype
    out = _check_out(out, shape, dtype)
    return out, _unalias(out, x, in_place=in_place)


def _prepare_where(where: npt.ArrayLike | None, shape: tuple[int, ...],
                   axis: int | tuple[int, ...] | None) -> npt.NDArray[np.bool_] | None:
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
    # The first reduced axis; with axis=() every element is a slice, any block will do.
    if isinstance(axis, tuple):
        last_start = axis[0] if axis else ndim
    else:
        last_start = 0 if axis is None else axis
    for start in range(last_start, -1, -1):  # the smallest trailing block that holds the mask
        if all(d == 1 for d in padded[:start]) and padded[start:] == tuple(shape[start:]):
            return np.ascontiguousarray(mask.reshape(shape[start:]))
    return np.ascontiguousarray(np.broadcast_to(mask, shape))



def _check_flag(value: object, name: str) -> bool:
    """``value`` as a bool; TypeError naming ``name`` for anything else (as torch's): a
    truthy string or a one-element array is a mistake, not a choice."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {shown(value)}")
    return bool(value)


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
    weights = _view_as_floats(b, "b")
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
