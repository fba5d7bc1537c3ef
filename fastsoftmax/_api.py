"""The public functions: validation, dtype/axis/out handling, allocation, threads.

This is the only layer that raises.  Every check happens before anything is
written, so a bad call leaves ``out`` and the input untouched.  It never loops
over elements: the work goes to ``fastsoftmax._core`` (Cython, OpenMP), which
calls the C kernels in ``src/``.
"""
import math
import operator
import os
import sys
from numbers import Real

import numpy as np

from . import _core

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "get_num_threads",
    "show_config",
]

# Below this many elements one thread is faster than opening a parallel region
# (a few microseconds).  Measured with benchmarks/: on 2 cores the two-thread
# call starts to win between 16k and 32k float32 elements.
PARALLEL_MIN_ELEMENTS = 1 << 15

_OP_SOFTMAX, _OP_LOG_SOFTMAX, _OP_LOGSUMEXP = 0, 1, 2
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_FAST_DTYPES = (_FLOAT32, _FLOAT64)


# ---------------------------------------------------------------- threads

# libgomp hangs in a forked child that enters a parallel region after the
# parent used OpenMP threads (GCC bug 60035).  A forked child therefore runs
# every call on one thread: slower, never stuck.
_in_forked_child = False


def _mark_forked_child():
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)


def get_num_threads():
    """Number of threads a call with ``n_threads=None`` may use.

    This is OpenMP's maximum thread count, so it follows ``OMP_NUM_THREADS``
    and ``threadpoolctl.threadpool_limits``; it is 1 in a build without
    OpenMP and in a child process created by ``fork`` (see Notes).

    Returns
    -------
    int
        The thread count, at least 1.

    Notes
    -----
    Small inputs (fewer than ``PARALLEL_MIN_ELEMENTS`` elements) always run on
    one thread, whatever this returns, since starting threads would cost more
    than the work.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    if _in_forked_child or not _core.openmp_enabled():
        return 1
    return max(1, _core.max_threads())


def _resolve_threads(n_threads, size):
    """The exact thread count for a call over ``size`` elements."""
    if n_threads is None:
        return 1 if size < PARALLEL_MIN_ELEMENTS else get_num_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int or None, got {n_threads!r}")
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads must be nonzero: a positive count, or negative to count "
                         "back from the maximum (-1 = all threads); got 0")
    if _in_forked_child or not _core.openmp_enabled():
        return 1
    if n_threads < 0:
        return max(1, _core.max_threads() + 1 + n_threads)
    return n_threads


def show_config(file=None):
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

def _as_float_array(x, name):
    """``x`` as a C-contiguous float32/float64 array, converting at most once.

    float32 and float64 are kept, float16 becomes float32, integers and bools
    (and lists of them) become float64.  Complex, object, string and other
    dtypes raise TypeError.
    """
    if type(x) is np.ndarray and x.dtype in _FAST_DTYPES and x.flags.c_contiguous:
        return x
    arr = np.asarray(x)
    dtype = arr.dtype
    if dtype in _FAST_DTYPES:
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


def _normalize_axis(axis, ndim, name="axis"):
    """``axis`` as a non-negative int, or None for the whole array."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimension(s)")
    return axis + ndim if axis < 0 else axis


def _reduction_view(shape, axis):
    """(outer, n, inner) of ``shape`` reduced over ``axis`` (None: everything)."""
    if axis is None:
        return 1, math.prod(shape), 1
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _check_temperature(temperature):
    """1 / temperature, for a finite temperature > 0."""
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return 1.0 / temperature
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a real number, got {temperature!r}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return 1.0 / t


def _prepare_out(out, shape, dtype, x):
    """A C-contiguous writeable array for the result: ``out`` checked, or a new one.

    Returns ``(out, x)``; ``x`` is copied when ``out`` overlaps it without
    being exactly it, so the kernels never read what they already overwrote.
    """
    if out is None:
        return np.empty(shape, dtype=dtype), x
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype} (the result's), got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable (got a read-only array)")
    if out.size and np.may_share_memory(out, x):
        same = (out.shape == x.shape and out.dtype == x.dtype
                and out.__array_interface__["data"][0] == x.__array_interface__["data"][0])
        if not same:
            x = x.copy()
    return out, x


def _prepare_where(where, shape, axis):
    """A ``where=`` mask as the kernels read it: None, or a C-contiguous bool array.

    The kernels index the mask with x's flat index modulo the mask's size, so
    a mask broadcast over leading axes (a ``(T, T)`` causal mask on ``(B, T, T)``
    scores) is used as it is, never copied ``B`` times.  The mask must vary
    over whole trailing blocks that contain the reduced axis; any other
    broadcast is expanded to ``x``'s shape (a bool copy, never a copy of ``x``).
    """
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
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

def _softmax_like(x, axis, temperature, where, out, n_threads, op):
    x = _as_float_array(x, "x")
    axis = _normalize_axis(axis, x.ndim)
    scale = _check_temperature(temperature)
    mask = _prepare_where(where, x.shape, axis)
    threads = _resolve_threads(n_threads, x.size)
    out, x = _prepare_out(out, x.shape, x.dtype, x)
    outer, n, inner = _reduction_view(x.shape, axis)
    if x.size:
        _core.softmax_family(x, out, mask, outer, n, inner, scale, op, threads)
    return out


def softmax(x, axis=-1, *, temperature=1.0, where=None, out=None, n_threads=None):
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
    ``|x - max| / T * 2**-24`` of the rounded difference (Blanchard, Higham &
    Higham 2021); float64 within 1e-13 plus ``|x - max| / T * 2**-53``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_SOFTMAX)


def log_softmax(x, axis=-1, *, temperature=1.0, where=None, out=None, n_threads=None):
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
    of a softmax, so tiny probabilities keep their full precision.  NaN and
    infinities behave as in :func:`softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> fastsoftmax.log_softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([-2.4076, -1.4076, -0.4076])
    """
    return _softmax_like(x, axis, temperature, where, out, n_threads, _OP_LOG_SOFTMAX)


def logsumexp(x, axis=-1, *, keepdims=False, where=None, out=None, n_threads=None):
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
    ``max + log(sum(exp(x - max)))``, with the sum accumulated in double.
    A NaN in the slice gives NaN; a +inf gives +inf; an all ``-inf`` or empty
    slice gives ``-inf``.

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
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
    elif keepdims:
        shape = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    else:
        shape = x.shape[:axis] + x.shape[axis + 1:]
    threads = _resolve_threads(n_threads, x.size)
    given_out = out is not None
    out, x = _prepare_out(out, shape, x.dtype, x)
    outer, n, inner = _reduction_view(x.shape, axis)
    if out.size:
        _core.softmax_family(x, out, mask, outer, n, inner, 1.0, _OP_LOGSUMEXP, threads)
    if out.ndim == 0 and not given_out:
        return out[()]
    return out
