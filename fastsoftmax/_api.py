"""The public functions: validation, dtype/axis/out handling, allocation, threads.

This is the only layer that raises.  Every check happens before anything is
written, so a bad call leaves ``out`` and the input untouched.  It never loops
over elements: the work goes to ``fastsoftmax._core`` (Cython, OpenMP), which
calls the C kernels in ``src/``.
"""
from __future__ import annotations

import math
import sys
from numbers import Real
from typing import Any, Literal, Optional, TextIO, TypeVar, overload

import numpy as np
import numpy.typing as npt

from . import _core
from ._messages import shown
from ._threads import get_num_threads, num_threads, resolve_threads, set_num_threads
from ._typing import REDUCTIONS, FloatArray, FloatScalarOrArray, Reduction

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "softmax_backward",
    "log_softmax_backward",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "show_config",
]

# An optional input array of _unalias (the aliases are in _typing).
_MaybeArray = TypeVar("_MaybeArray", bound=Optional[npt.NDArray[Any]])

# The kernels' operation numbers (fs_op in src/fs_kernels.h), one definition for every layer.
from ._core import OP_LOG_SOFTMAX as _OP_LOG_SOFTMAX  # noqa: E402
from ._core import OP_LOGSUMEXP as _OP_LOGSUMEXP  # noqa: E402
from ._core import OP_SOFTMAX as _OP_SOFTMAX  # noqa: E402
_DEFAULT_TEMPERATURE = 1.0  # the very object the signatures below use as their default
_FLOAT32: np.dtype[np.floating[Any]] = np.dtype(np.float32)
_FLOAT64: np.dtype[np.floating[Any]] = np.dtype(np.float64)
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
# 1/T must be a normal, finite number of the working dtype (see _softmax_like).
_SCALE_RANGE: dict[np.dtype[Any], tuple[float, float]] = {
    dt: (float(np.finfo(dt).tiny), float(np.finfo(dt).max)) for dt in (_FLOAT32, _FLOAT64)}


def show_config(file: TextIO | None = None) -> None:
    """Print how this build of fastsoftmax runs on this machine.

    Prints the version, the instruction set whose kernels were chosen for
    this CPU (``avx512``, ``avx2``, ``baseline`` = SSE2/NEON, or ``scalar``),
    the others available, whether OpenMP is enabled, and the default thread
    count.

    Parameters
    ----------
    file : file-like, optional
        Where to print; ``sys.stdout`` by default.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.show_config()  # doctest: +SKIP
    fastsoftmax 0.1.0
      kernels:  avx2 (available: avx2 baseline scalar)
      OpenMP:   enabled
      threads:  2
    """
    from ._version import __version__

    file = sys.stdout if file is None else file
    print(f"fastsoftmax {__version__}", file=file)
    print(f"  kernels:  {_core.isa()} (available: {' '.join(_core.available_isas())})", file=file)
    print(f"  OpenMP:   {'enabled' if _core.openmp_enabled() else 'disabled (single-threaded build)'}",
          file=file)
    print(f"  threads:  {get_num_threads()}", file=file)


# ---------------------------------------------------------------- argument checks

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


# ---------------------------------------------------------------- the functions

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
        ``None``: automatic (OpenMP's maximum, one thread for small inputs).
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
    exactly invariant to a shared offset, however large.  The float32 result
    is within a relative 1e-6 of the exact value, plus the inherent
    ``|x - max| / T * 2**-24`` of the rounded difference, which no algorithm
    avoids [1]_; float64 within 1e-13 plus ``|x - max| / T * 2**-53``.  Sums
    are accumulated in double (float32) or compensated (float64), so rows of
    256k entries keep this accuracy.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate and efficient
       evaluation of the log-sum-exp and softmax functions", IMA Journal of
       Numerical Analysis 41(4), 2311-2330, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_SOFTMAX)


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
    is accumulated in double lanes.  The result is within a relative 1e-6
    (float32) or 1e-13 (float64) of the exact value, plus the inherent
    ``3u (|z| + max|z|)`` of rounding ``z = (x - max) / T`` (``u = 2**-24``
    or ``2**-53``), as the analysis of [1]_ predicts for the shifted formula.
    NaN and infinities behave as in :func:`softmax`.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate and efficient
       evaluation of the log-sum-exp and softmax functions", IMA Journal of
       Numerical Analysis 41(4), 2311-2330, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([-2.4076, -1.4076, -0.4076])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_LOG_SOFTMAX)


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
    overflows, and the result's error is bounded as for log_softmax [1]_.
    A NaN in the slice gives NaN; a +inf gives +inf; an all ``-inf`` or empty
    slice gives ``-inf``.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate and efficient
       evaluation of the log-sum-exp and softmax functions", IMA Journal of
       Numerical Analysis 41(4), 2311-2330, 2021.

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
    ``grad_output - exp(output) * sum`` with the same vectorized exp as the
    forward pass.  ``output`` may hold any
    finite values, not only log-probabilities: ``exp`` saturates to ``inf``
    rather than wrapping.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> y = fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0]))
    >>> fastsoftmax.log_softmax_backward(np.array([0.0, 0.0, -1.0]), y).round(4)
    array([ 0.09  ,  0.2447, -0.3348])
    """
    return _backward(grad_output, output, axis, out, n_threads, True)


# ---------------------------------------------------------------- cross-entropy

def _check_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def _class_labels(target: npt.NDArray[Any], sample_shape: tuple[int, ...],
                  n_classes: int) -> npt.NDArray[np.int64]:
    """Index targets as C-contiguous int64, of the samples' shape (their range: _label_stats)."""
    if target.shape != sample_shape:
        raise ValueError(f"target of class indices must have the logits' shape without the class "
                         f"axis, {sample_shape}, got {target.shape}")
    if target.dtype.kind == "u" and target.dtype.itemsize == 8 and target.size \
            and target.max() > _INT64_MAX:  # (any byte order) would wrap to negative labels
        bad = int(np.argmax(target > _INT64_MAX))
        position = tuple(int(i) for i in np.unravel_index(bad, target.shape))
        raise ValueError(f"target holds label {int(target.flat[bad])} at position "
                         f"{position}, outside [0, {n_classes})")
    return np.asarray(target, dtype=np.int64, order="C")


def _label_stats(labels: npt.NDArray[np.int64], n_classes: int, ignore_index: int,
                 weight: FloatArray | None) -> float:
    """The mean's denominator (labels kept, or their weights' sum), every label checked.

    Each label must be a class or ``ignore_index``; the first that is neither
    raises, with its value and position.
    """
    first_bad, denominator = _core.label_stats(labels, n_classes, ignore_index, weight)
    if first_bad >= 0:
        position = tuple(int(i) for i in np.unravel_index(first_bad, labels.shape))
        raise ValueError(f"target holds label {int(labels.flat[first_bad])} at position "
                         f"{position}, outside [0, {n_classes}) and not "
                         f"ignore_index={ignore_index}")
    return denominator


def _divide(total: float, denominator: float) -> float:
    """``total / denominator`` with IEEE's answers for a zero denominator (0/0 is NaN, x/0 ±inf).

    Python floats, not NumPy scalars under ``np.errstate``, which alone costs
    ~2.5 us a call.  (Python's float division gives inf on overflow; only a
    zero divisor needs handling.)
    """
    if denominator:
        return total / denominator
    if total == 0 or math.isnan(total):
        return math.nan
    return math.copysign(math.inf, total) * math.copysign(1.0, denominator)


@overload
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: Literal[False] = ..., grad_out: None = ...,
                  n_threads: int | None = ...) -> FloatScalarOrArray: ...
@overload
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: Literal[True], grad_out: FloatArray | None = ...,
                  n_threads: int | None = ...) -> tuple[FloatScalarOrArray, FloatArray]: ...
@overload
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: bool, grad_out: FloatArray | None = ...,
                  n_threads: int | None = ...
                  ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]: ...
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = -1,
                  weight: npt.ArrayLike | None = None, ignore_index: int = -100,
                  reduction: Reduction = "mean", label_smoothing: float = 0.0,
                  return_grad: bool = False, grad_out: FloatArray | None = None,
                  n_threads: int | None = None
                  ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray | None]:
    """Cross-entropy between logits and targets, with its gradient fused in the same passes.

    Follows ``torch.nn.functional.cross_entropy`` exactly: class weights,
    ``ignore_index``, the three reductions, label smoothing and probability
    targets, and the gradient is what PyTorch autograd returns.

    Parameters
    ----------
    logits : array_like, shape (..., C, ...)
        Unnormalized scores; float32 or float64 (others as in :func:`softmax`).
    target : array_like
        Either integer class indices, of any int dtype, with the shape of
        ``logits`` without the class axis; or float class probabilities with
        the shape of ``logits``.
    axis : int, default -1
        The class axis.  ``axis=1`` on ``(N, C, d1, ...)`` is PyTorch's layout.
    weight : array_like, shape (C,), optional
        A weight for each class.
    ignore_index : int, default -100
        Index targets equal to it add neither loss nor gradient and leave the
        mean's denominator.  Not used with probability targets.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' is the weighted mean ``sum(w[y] * loss) / sum(w[y])`` over the
        samples not ignored for index targets (NaN when all are ignored), and
        the plain mean over samples for probability targets.
    label_smoothing : float in [0, 1], default 0.0
        Mixes the target with the uniform distribution, as PyTorch does.
    return_grad : bool, default False
        Also return d(loss)/d(logits); for ``reduction='none'`` the gradient of
        ``loss.sum()``.
    grad_out : ndarray, optional
        C-contiguous array of the logits' shape and dtype for the gradient; may
        be ``logits`` itself (the gradient then overwrites the logits, with no
        extra memory).  Only with ``return_grad=True``.
    n_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    loss : scalar or ndarray
        A NumPy scalar of the logits' dtype, or for 'none' an array of the
        target's sample shape.
    grad : ndarray
        With ``return_grad=True`` only: ``(loss, grad)``.

    Raises
    ------
    TypeError
        For non-real logits, a target that is neither integers nor floats,
        non-int ``ignore_index`` or ``axis``, a bad ``grad_out`` type/dtype.
    ValueError
        For a target of the wrong shape, a label outside ``[0, C)`` that is not
        ``ignore_index`` (the message gives the value and its position),
        0-d logits, an unknown reduction, ``weight`` not of shape ``(C,)``,
        ``label_smoothing`` outside [0, 1] or NaN, a bad ``grad_out`` shape or
        layout, or ``grad_out`` without ``return_grad``.

    Notes
    -----
    Per sample, with ``m`` the max logit, the loss is computed from
    ``m - x`` and ``log(sum(exp(x - m)))``, never from ``logsumexp - x``, so
    equal logits of 1e30 give ``log(C)`` (the shifted evaluation that [1]_
    shows to be accurate).  Passes over the logits: the max, the sum of
    exponentials (with the weighted sums label smoothing needs), and the
    gradient; probabilities are never stored.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate and efficient
       evaluation of the log-sum-exp and softmax functions", IMA Journal of
       Numerical Analysis 41(4), 2311-2330, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    >>> loss, grad = fastsoftmax.cross_entropy(logits, np.array([0, 2]), return_grad=True)
    >>> round(float(loss), 4)
    0.67
    >>> grad.round(4)
    array([[-0.1072,  0.0876,  0.0196],
           [ 0.1667,  0.1667, -0.3333]])
    """
    logits = _as_float_array(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes), got a 0-d array")
    axis = _normalize_axis(axis, logits.ndim)
    if axis is None:
        raise TypeError("axis must be an int (the class axis), got None")
    dtype = logits.dtype
    n_classes = logits.shape[axis]
    sample_shape = logits.shape[:axis] + logits.shape[axis + 1:]
    ignore_index = _check_int(ignore_index, "ignore_index")
    if not _INT64_MIN <= ignore_index <= _INT64_MAX:
        raise ValueError(f"ignore_index must fit in int64 (the labels' type), "
                         f"got {shown(ignore_index)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if type(label_smoothing) is not float and (  # (the ABC check costs ~1 us: skip it for floats)
            isinstance(label_smoothing, bool) or not isinstance(label_smoothing, Real)):
        raise TypeError(f"label_smoothing must be a real number, got {label_smoothing!r}")
    if not 0.0 <= _as_python_float(label_smoothing, "label_smoothing") <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    label_smoothing = float(label_smoothing)
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out is given but return_grad is False")

    target = _view_as_ndarray(target, "target")
    labels: npt.NDArray[np.int64] | None
    probabilities: FloatArray | None
    if target.dtype.kind in "iu":
        labels, probabilities = _class_labels(target, sample_shape, n_classes), None
    elif target.dtype.kind == "f":
        if target.shape != logits.shape:
            raise ValueError(f"target of class probabilities must have the logits' shape "
                             f"{logits.shape}, got {target.shape}")
        labels, probabilities = None, np.asarray(target, dtype=dtype, order="C")
    else:
        raise TypeError(f"target must hold integer class indices or float class probabilities, "
                        f"got dtype {target.dtype}")

    if weight is not None:
        weight = _as_float_array(weight, "weight").astype(dtype, copy=False)
        if weight.shape != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class), "
                             f"got {weight.shape}")
        weight_sum = float(weight.sum(dtype=np.float64))
    else:
        weight_sum = float(n_classes)
    if labels is not None:
        denominator = _label_stats(labels, n_classes, ignore_index, weight)
    else:
        denominator = float(math.prod(sample_shape))

    threads = resolve_threads(n_threads, logits.size)
    grad: FloatArray | None = None
    if return_grad:
        if grad_out is None:
            grad = np.empty(logits.shape, dtype)
        else:
            grad = _check_out(grad_out, logits.shape, dtype, "grad_out")
            # The gradient may overwrite the logits (the kernels are written
            # for it); every other input must not sit in its memory.
            logits = _unalias(grad, logits, in_place=True)
            labels = _unalias(grad, labels)
            probabilities = _unalias(grad, probabilities)
            weight = _unalias(grad, weight)

    grad_scale = 1.0
    if reduction == "mean":
        grad_scale = 1.0 / denominator if denominator else math.inf

    losses = np.zeros(sample_shape, np.float64)
    if logits.size:
        outer, n, inner = _reduction_view(logits.shape, axis)
        _core.cross_entropy(logits, labels, probabilities, weight, weight_sum, label_smoothing,
                            ignore_index, losses, grad, grad_scale, outer, n, inner, threads)
    elif grad is not None:
        grad[...] = 0

    loss: FloatScalarOrArray
    if reduction == "none":
        loss = losses.astype(dtype)
        if loss.ndim == 0:
            loss = loss[()]
    else:
        total = float(np.add.reduce(losses.reshape(-1)))  # (pairwise, as .sum(), 1 us sooner)
        loss = dtype.type(_divide(total, denominator) if reduction == "mean" else total)
    return (loss, grad) if return_grad else loss
