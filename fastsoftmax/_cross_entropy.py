"""cross_entropy: the loss of PyTorch's ``cross_entropy`` and its gradient, fused."""
from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import (
    _FLOAT32,
    _as_float_array,
    _as_kernel_array,
    _as_python_float,
    _check_flag,
    _check_int,
    _check_out,
    _is_16_bit_of,
    _is_real_number,
    _kernel_view,
    _normalize_axis,
    _reduction_view,
    _result_dtype,
    _unalias,
    _view_as_floats,
)
from ._docs import REFERENCES, fill_doc
from ._messages import shown
from ._pool import fresh
from ._threads import PARALLEL_MIN_ELEMENTS, resolve_threads
from ._typing import REDUCTIONS, Count, FloatArray, FloatScalarOrArray, Reduction

__all__ = ["cross_entropy"]

_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _class_axis(axis: int, ndim: int) -> int:
    """The class axis as a non-negative int: logits need one, so 0-d logits and None raise."""
    if ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes), got a 0-d array")
    class_axis = _normalize_axis(axis, ndim, expected="an int (the class axis)")
    if class_axis is None:
        raise TypeError("axis must be an int (the class axis), got None")
    return class_axis


def _check_options(ignore_index: int, reduction: str, label_smoothing: float, return_grad: bool,
                   grad_out: FloatArray | None) -> tuple[int, float]:
    """``(ignore_index, label_smoothing)`` checked, as int and float; the other options checked."""
    if type(ignore_index) is not int:
        ignore_index = _check_int(ignore_index, "ignore_index")
    if not _INT64_MIN <= ignore_index <= _INT64_MAX:
        raise ValueError(f"ignore_index must fit in int64 (the labels' type), "
                         f"got {shown(ignore_index)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if type(label_smoothing) is not float:  # (the ABC check costs ~1 us: skip it for floats)
        if not _is_real_number(label_smoothing):
            raise TypeError(f"label_smoothing must be a real number, got {label_smoothing!r}")
        smoothing = _as_python_float(label_smoothing, "label_smoothing")
    else:
        smoothing = label_smoothing
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if _check_flag(return_grad, "return_grad") is False and grad_out is not None:
        raise ValueError("grad_out is given but return_grad is False")
    return ignore_index, smoothing


def _prepare_target(target: npt.ArrayLike, shape: tuple[int, ...], sample_shape: tuple[int, ...],
                    n_classes: int, dtype: np.dtype[Any], ignore_index: int
                    ) -> tuple[npt.NDArray[np.int64] | None, FloatArray | None]:
    """``(labels, None)`` for class indices, ``(None, probabilities)`` for class probabilities.

    Labels become C-contiguous int64 of the samples' shape (their range is
    checked by :func:`_label_stats`); probabilities a C-contiguous array of
    the logits' ``shape`` and ``dtype``.  A float target is told apart by its
    number of dimensions: the logits' for probabilities, one fewer for labels
    (scikit-learn's float ``y``), which must then hold integers.
    """
    target = _view_as_floats(target, "target")
    kind = target.dtype.kind
    if kind == "f" and target.ndim == len(shape):
        if target.shape != shape:
            raise ValueError(f"target of class probabilities must have the logits' shape "
                             f"{shape}, got {target.shape}")
        return None, np.asarray(target, dtype=dtype, order="C")
    if kind not in "iuf":
        raise TypeError(f"target must hold integer class indices or float class probabilities, "
                        f"got dtype {target.dtype}")
    if target.shape != sample_shape:
        if kind == "f":
            raise ValueError(f"a float target must have the logits' shape {shape} (class "
                             f"probabilities) or their shape without the class axis "
                             f"{sample_shape} (class labels), got {target.shape}")
        raise ValueError(f"target of class indices must have the logits' shape without the class "
                         f"axis, {sample_shape}, got {target.shape}")
    if kind == "f":
        return _float_labels(target, n_classes), None
    if kind == "u" and target.dtype.itemsize == 8 and target.size \
            and target.max() > _INT64_MAX:  # (any byte order) would wrap to negative labels
        # The first bad label, as _label_stats would name it: a class or ignore_index is fine.
        bad_labels = target >= n_classes
        if ignore_index >= 0:
            bad_labels &= target != ignore_index
        first_bad = int(np.argmax(bad_labels))
        raise _bad_label(int(target.flat[first_bad]), first_bad, target.shape, n_classes,
                         ignore_index)
    return np.asarray(target, dtype=np.int64, order="C"), None


def _float_labels(target: FloatArray, n_classes: int) -> npt.NDArray[np.int64]:
    """Float class labels (scikit-learn's ``y``: 2.0 is class 2) as C-contiguous int64.

    Every value must be an integer that int64 holds; the first that is not
    (0.5, NaN, inf, 1e30) raises, with its value and position.
    """
    if target.dtype.itemsize < 8:  # (exactly; float16 cannot compare with 2**63)
        target = target.astype(np.float64)
    integral = np.isfinite(target) & (np.trunc(target) == target)
    integral &= (target >= -(2.0**63)) & (target < 2.0**63)  # (int64's range; the cast would wrap)
    if not integral.all():
        bad = int(np.argmin(integral))
        raise ValueError(f"target holds {float(target.flat[bad])!r} at position "
                         f"{_position(bad, target.shape)}: a float target with the logits' shape "
                         f"without the class axis holds class labels, which must be integers "
                         f"(labels in [0, {n_classes}) or ignore_index)")
    return np.asarray(target, dtype=np.int64, order="C")


def _position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index tuple of ``flat_index`` in an array of ``shape``, as error messages show it."""
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def _prepare_weight(weight: npt.ArrayLike, dtype: np.dtype[Any],
                    n_classes: int) -> tuple[FloatArray, float]:
    """The class weights as a C-contiguous array of ``dtype``, and their sum."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf, a weight torch allows too
        weight = _as_float_array(weight, "weight").astype(dtype, copy=False)
    if weight.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},) (one per class), "
                         f"got {weight.shape}")
    return weight, float(weight.sum(dtype=np.float64))


def _prepare_sample_weight(sample_weight: npt.ArrayLike, dtype: np.dtype[Any],
                           sample_shape: tuple[int, ...]) -> FloatArray:
    """The per-sample weights checked, as a C-contiguous array of ``dtype`` and the samples' ndim.

    They must broadcast to ``sample_shape`` without enlarging it (NumPy's
    rules), and be finite once converted to ``dtype`` (as ``weight`` is);
    zero and negative weights are allowed, as in scikit-learn.  Leading axes
    of length 1 are added, so the class axis can be inserted at its place.
    """
    weights = _as_float_array(sample_weight, "sample_weight")
    try:
        broadcast: tuple[int, ...] | None = np.broadcast_shapes(weights.shape, sample_shape)
    except ValueError:
        broadcast = None
    if broadcast != sample_shape:
        raise ValueError(f"sample_weight with shape {weights.shape} does not broadcast to the "
                         f"samples' shape {sample_shape} (the logits' shape without the class "
                         f"axis)")
    with np.errstate(over="ignore"):  # a float64 weight beyond float32's range: caught below
        converted = weights.astype(dtype, copy=False)
    finite = np.isfinite(converted)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(f"sample_weight holds {float(weights.flat[bad])!r} at position "
                         f"{_position(bad, weights.shape)}; sample weights must be finite "
                         f"in the logits' dtype, {dtype}")
    return converted.reshape((1,) * (len(sample_shape) - converted.ndim) + converted.shape)


def _sample_weight_denominator(sample_weight: FloatArray, sample_shape: tuple[int, ...],
                               labels: npt.NDArray[np.int64] | None, ignore_index: int,
                               weight: FloatArray | None) -> float:
    """The weighted mean's denominator: ``sum(s * w[y])`` over the labels kept, else ``sum(s)``.

    Class labels must already be checked (:func:`_label_stats`).  Computed in
    float64 with NumPy's pairwise sum.
    """
    terms = np.broadcast_to(sample_weight, sample_shape).astype(np.float64)
    if labels is not None:
        ignored = labels == ignore_index
        if weight is not None and weight.size:  # (no classes: every label is ignored)
            with np.errstate(invalid="ignore"):  # a zero weight times an inf class weight: NaN
                terms *= weight.astype(np.float64)[np.where(ignored, 0, labels)]
        terms[ignored] = 0.0
    return _core.pairwise_sum(terms)


# Elements of float32 gradient per block of a 16-bit gradient: a buffer that stays in cache.
_NARROW_BLOCK = 1 << 20


def _narrowed_gradient(logits: npt.NDArray[Any], labels: npt.NDArray[np.int64] | None,
                       probabilities: FloatArray | None, weight: FloatArray | None,
                       weight_sum: float, label_smoothing: float, ignore_index: int,
                       losses: npt.NDArray[np.float64], grad: npt.NDArray[Any],
                       grad_scale: float, view: tuple[int, int, int], threads: int) -> None:
    """cross_entropy with a 16-bit ``grad``, in blocks of slabs (``view`` is (outer, n, inner)).

    Each block's gradient goes into one float32 buffer of at most ``_NARROW_BLOCK``
    elements (a slab more if one is larger), which stays in cache, and is rounded once
    into ``grad``: no float32 copy of the whole gradient.  Slabs are independent, so the
    blocks give the bits of one call; ``grad`` may be ``logits`` (each block is read
    before it is written).
    """
    outer, n, inner = view
    slab = n * inner
    per_block = max(1, min(outer, _NARROW_BLOCK // max(slab, 1)))
    buffer = np.empty(per_block * slab, _FLOAT32)
    x = logits.reshape(outer, slab)
    target = None if probabilities is None else probabilities.reshape(outer, slab)
    ids = None if labels is None else labels.reshape(outer, inner)
    per_sample = losses.reshape(outer, inner)
    out = _kernel_view(grad).reshape(outer, slab)
    for a in range(0, outer, per_block):
        b = min(outer, a + per_block)
        work = buffer[:(b - a) * slab]
        _core.cross_entropy(x[a:b], None if ids is None else ids[a:b],
                            None if target is None else target[a:b], weight, weight_sum,
                            label_smoothing, ignore_index, per_sample[a:b], work, grad_scale,
                            b - a, n, inner, threads)
        _core.narrow(work, out[a:b], threads)


def _apply_sample_weight(losses: npt.NDArray[np.float64], grad: FloatArray | None,
                         sample_weight: FloatArray, axis: int) -> None:
    """Each sample's loss and gradient times its weight, in place: one more pass over the gradient.

    IEEE's products: a zero weight on an infinite loss gives NaN, as in
    scikit-learn.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        np.multiply(losses, sample_weight, out=losses)
        if grad is not None:  # (a plain view of a grad_out subclass, whatever its ufunc rules)
            plain = grad.view(np.ndarray)
            np.multiply(plain, np.expand_dims(sample_weight, axis), out=plain)


def _label_stats(labels: npt.NDArray[np.int64], n_classes: int, ignore_index: int,
                 weight: FloatArray | None, threads: int = 1) -> float:
    """The mean's denominator (labels kept, or their weights' sum), every label checked.

    Each label must be a class or ``ignore_index``; the first that is neither
    raises, with its value and position.  Unweighted labels are counted on up to
    ``threads`` threads.
    """
    first_bad, denominator = _core.label_stats(labels, n_classes, ignore_index, weight, threads)
    if first_bad >= 0:
        raise _bad_label(int(labels.flat[first_bad]), first_bad, labels.shape, n_classes,
                         ignore_index)
    return denominator


def _bad_label(label: int, flat_position: int, shape: tuple[int, ...], n_classes: int,
               ignore_index: int) -> ValueError:
    """The error for a label that is neither a class nor ``ignore_index``."""
    return ValueError(f"target holds label {label} at position {_position(flat_position, shape)}, "
                      f"outside [0, {n_classes}) and not ignore_index={ignore_index}")


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
                  weight: npt.ArrayLike | None = ..., sample_weight: npt.ArrayLike | None = ...,
                  ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: Literal[False] = ..., grad_out: None = ...,
                  n_threads: Count = ...) -> FloatScalarOrArray: ...
@overload
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., sample_weight: npt.ArrayLike | None = ...,
                  ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: Literal[True], grad_out: FloatArray | None = ...,
                  n_threads: Count = ...) -> tuple[FloatScalarOrArray, FloatArray]: ...
@overload
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = ...,
                  weight: npt.ArrayLike | None = ..., sample_weight: npt.ArrayLike | None = ...,
                  ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ...,
                  return_grad: bool, grad_out: FloatArray | None = ...,
                  n_threads: Count = ...
                  ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]: ...
@fill_doc(references=REFERENCES)
def cross_entropy(logits: npt.ArrayLike, target: npt.ArrayLike, *, axis: int = -1,
                  weight: npt.ArrayLike | None = None, sample_weight: npt.ArrayLike | None = None,
                  ignore_index: int = -100,
                  reduction: Reduction = "mean", label_smoothing: float = 0.0,
                  return_grad: bool = False, grad_out: FloatArray | None = None,
                  n_threads: Count = None
                  ) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray | None]:
    """Cross-entropy between logits and targets, with its gradient fused in the same passes.

    Follows ``torch.nn.functional.cross_entropy`` exactly: class weights,
    ``ignore_index``, the three reductions, label smoothing and probability
    targets, and the gradient is what PyTorch autograd returns.  Adds
    scikit-learn's per-sample weights and float labels (its ``y``).

    Parameters
    ----------
    logits : array_like, shape (..., C, ...)
        Unnormalized scores; float32 or float64 (others as in :func:`softmax`).
    target : array_like
        Either class indices with the shape of ``logits`` without the class
        axis: integers of any int dtype, or floats holding integers (as
        scikit-learn's ``y``: ``2.0`` is class 2, ``-100.0`` is ignored); or
        float class probabilities with the shape of ``logits``.  A float
        target is told apart by its number of dimensions alone: the logits'
        for probabilities, one fewer for labels (so ``(N, N)`` logits take
        ``(N, N)`` probabilities or ``(N,)`` labels).
    axis : int, default -1
        The class axis.  ``axis=1`` on ``(N, C, d1, ...)`` is PyTorch's layout.
    weight : array_like, shape (C,), optional
        A weight for each class.
    sample_weight : array_like, optional
        A weight ``s`` for each sample, as scikit-learn's ``sample_weight``:
        of the logits' shape without the class axis, or broadcastable to it by
        NumPy's rules (trailing axes line up: ``(N, 1, 1)`` weighs whole
        images of ``(N, H, W)`` samples).  Converted to the logits' dtype, as
        ``weight``, and must be finite there; zero and negative weights are
        allowed, as in scikit-learn.  Each sample's loss and gradient are
        multiplied by its weight, as IEEE products (a zero weight on an
        infinite loss gives NaN, as in scikit-learn; ignored samples stay 0);
        see ``reduction``.  It costs one more pass over the gradient.
    ignore_index : int, default -100
        Index targets equal to it add neither loss nor gradient and leave the
        mean's denominator.  Not used with probability targets.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' is the weighted mean ``sum(w[y] * loss) / sum(w[y])`` over the
        samples not ignored for index targets (NaN when all are ignored), and
        the plain mean over samples for probability targets.  With
        ``sample_weight``, 'none' multiplies each sample's loss by its ``s``,
        'sum' adds those products, and 'mean' is
        ``sum(s * w[y] * loss) / sum(s * w[y])`` over the samples
        not ignored (``sum(s * loss) / sum(s)`` for probability targets), which
        is PyTorch's mean when ``s`` is 1 and scikit-learn's ``log_loss`` when
        ``w`` is 1.  A zero denominator gives IEEE's 0/0 = NaN or x/0 = ±inf
        (scikit-learn raises for all-zero sample weights).
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
        For non-real logits or ``sample_weight``, a target that is neither
        integers nor floats, non-int ``ignore_index`` or ``axis``, a bad
        ``grad_out`` type/dtype.
    ValueError
        For a target of the wrong shape, a label outside ``[0, C)`` that is not
        ``ignore_index`` or a float label that is not an integer (the message
        gives the value and its position), 0-d logits, an unknown reduction,
        ``weight`` not of shape ``(C,)``, ``sample_weight`` that does not
        broadcast to the samples' shape or is not finite (value and position),
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
    %(references)s

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

    scikit-learn's float labels and sample weights (``log_loss(y, p,
    sample_weight=s)`` with ``p`` the softmax of the logits):

    >>> y, s = np.array([0.0, 2.0]), np.array([3.0, 1.0])
    >>> round(float(fastsoftmax.cross_entropy(logits, y, sample_weight=s)), 4)
    0.4556
    >>> fastsoftmax.cross_entropy(logits, y, sample_weight=s, reduction="none").round(4)
    array([0.7239, 1.0986])
    """
    if (type(axis) is int and axis == -1 and weight is None and sample_weight is None
            and (reduction == "mean" or reduction == "sum") and type(label_smoothing) is float
            and label_smoothing == 0.0 and (return_grad is False or return_grad is True)
            and (n_threads is None or (type(n_threads) is int and n_threads == 1))
            and type(ignore_index) is int
            and _INT64_MIN <= ignore_index <= _INT64_MAX):
        small = _core.small_cross_entropy(logits, target, ignore_index, reduction == "mean",
                                          PARALLEL_MIN_ELEMENTS, return_grad, grad_out)
        if small is not None:  # (None: not a small call, or one for the full path's checks)
            return small  # type: ignore[no-any-return]
    losses, grad, denominator, dtype = losses_and_gradient(
        logits, target, axis, weight, sample_weight, ignore_index, reduction, label_smoothing,
        return_grad, grad_out, n_threads)
    loss: FloatScalarOrArray
    if reduction == "none":
        loss = losses.astype(dtype, copy=False)  # (float64's losses are the result itself)
        if loss.ndim == 0:
            loss = loss[()]
    else:
        total = _core.pairwise_sum(losses)  # (NumPy's pairwise order, as .sum())
        loss = dtype.type(_divide(total, denominator) if reduction == "mean" else total)
    return (loss, grad) if return_grad else loss


def _denominator(labels: npt.NDArray[np.int64] | None, sample_shape: tuple[int, ...],
                 n_classes: int, ignore_index: int, weight: FloatArray | None,
                 sample_weights: FloatArray | None, threads: int = 1) -> float:
    """The mean's denominator (labels kept, their class weights, times the sample weights; or
    the samples), every label checked (:func:`_label_stats`, on up to ``threads`` threads)."""
    if labels is not None:
        denominator = _label_stats(labels, n_classes, ignore_index, weight, threads)
    else:
        denominator = float(math.prod(sample_shape))
    if sample_weights is not None:
        denominator = _sample_weight_denominator(sample_weights, sample_shape, labels,
                                                 ignore_index, weight)
    return denominator


def mean_denominator(logits_shape: tuple[int, ...], target: npt.ArrayLike, axis: int,
                     weight: npt.ArrayLike | None, sample_weight: npt.ArrayLike | None,
                     ignore_index: int, dtype: np.dtype[Any]) -> float:
    """The mean's denominator of one chunk of samples, its labels checked: fastsoftmax.dask
    adds them up over the chunks, and hands the total to :func:`losses_and_gradient`."""
    n_classes = logits_shape[axis]
    sample_shape = logits_shape[:axis] + logits_shape[axis + 1:]
    labels, _ = _prepare_target(target, logits_shape, sample_shape, n_classes, dtype,
                                ignore_index)
    weights = None if weight is None else _prepare_weight(weight, dtype, n_classes)[0]
    sample_weights = (None if sample_weight is None
                      else _prepare_sample_weight(sample_weight, dtype, sample_shape))
    return _denominator(labels, sample_shape, n_classes, ignore_index, weights, sample_weights)


def losses_and_gradient(logits: npt.ArrayLike, target: npt.ArrayLike, axis: int,
                        weight: npt.ArrayLike | None, sample_weight: npt.ArrayLike | None,
                        ignore_index: int, reduction: Reduction, label_smoothing: float,
                        return_grad: bool, grad_out: FloatArray | None, n_threads: Count,
                        denominator: float | None = None
                        ) -> tuple[npt.NDArray[np.float64], FloatArray | None, float,
                                   np.dtype[Any]]:
    """cross_entropy before its reduction: ``(losses, grad, denominator, dtype)``.

    ``losses`` are float64, one per sample (times its sample weight), ``grad``
    the gradient of the reduced loss (or None), ``denominator`` the mean's, and
    ``dtype`` the result dtype.  A ``denominator`` given (fastsoftmax.dask: the
    total over every chunk of samples, :func:`mean_denominator`) takes the
    place of this call's own in the gradient's scale; the labels are checked all
    the same.
    """
    logits = _as_kernel_array(logits, "logits")
    axis = _class_axis(axis, logits.ndim)
    dtype = _result_dtype(logits)
    n_classes = logits.shape[axis]
    sample_shape = logits.shape[:axis] + logits.shape[axis + 1:]
    ignore_index, label_smoothing = _check_options(ignore_index, reduction, label_smoothing,
                                                   return_grad, grad_out)
    labels, probabilities = _prepare_target(target, logits.shape, sample_shape, n_classes, dtype,
                                            ignore_index)
    if weight is None:
        weight_sum = float(n_classes)
    else:
        weight, weight_sum = _prepare_weight(weight, dtype, n_classes)
    sample_weights: FloatArray | None = None  # (checked, of the logits' dtype)
    if sample_weight is not None:
        sample_weights = _prepare_sample_weight(sample_weight, dtype, sample_shape)
    threads = resolve_threads(n_threads, logits.size)
    own_denominator = _denominator(labels, sample_shape, n_classes, ignore_index, weight,
                                   sample_weights, threads)
    if denominator is None:
        denominator = own_denominator

    grad: FloatArray | None = None
    if return_grad:
        if grad_out is None:
            grad = fresh(logits.shape, dtype, like=logits)
        else:
            # A grad_out of the logits' own 16-bit type asks for a 16-bit gradient.
            grad_dtype = (grad_out.dtype if isinstance(grad_out, np.ndarray)
                          and _is_16_bit_of(logits, grad_out.dtype) else dtype)
            grad = _check_out(grad_out, logits.shape, grad_dtype, "grad_out")
            # The gradient may overwrite the logits (the kernels are written
            # for it); every other input must not sit in its memory.
            logits = _unalias(grad, logits, in_place=True)
            labels = _unalias(grad, labels)
            probabilities = _unalias(grad, probabilities)
            weight = _unalias(grad, weight)
            if sample_weights is not None:
                sample_weights = _unalias(grad, sample_weights)

    grad_scale = 1.0
    if reduction == "mean":
        grad_scale = 1.0 / denominator if denominator else math.inf

    # A 16-bit gradient is the float32 gradient rounded once: with sample weights, that
    # one rounding comes after them, so the gradient is computed in float32 first.
    narrowed = grad is not None and grad.dtype.itemsize == 2
    # The kernels write every sample's loss (0 for an ignored label), so the losses need no
    # zeroing, and 1 MB or more of them come from the output pool: a fresh 8 MB of zeroed
    # pages cost 0.5-1 ms of a 1000000-sample loss.  Without classes there is no kernel.
    losses = (fresh(sample_shape, np.dtype(np.float64)) if logits.size
              else np.zeros(sample_shape, np.float64))
    if narrowed and grad is not None and sample_weights is None and logits.size:
        view = _reduction_view(logits.shape, axis)
        outer, n, inner = view
        if inner == 1 and outer >= threads and n <= _core.NARROWED_ROWS:
            # Rows: the 16-bit kernels, which round each value once as they store it, or
            # for the lengths they take no faster each thread's float32 blocks in the cache
            # (_core.narrowed_gradient_in_kernels).
            _core.cross_entropy(logits, labels, probabilities, weight, weight_sum,
                                label_smoothing, ignore_index, losses, _kernel_view(grad),
                                grad_scale, outer, n, inner, threads)
        else:
            # Float32 blocks rounded into grad: rows fewer than the threads (the float32
            # kernels split them, the 16-bit ones never do), longer rows, and other axes
            # (16-bit kernels / blocks, one thread: 1.06-1.82 on 64x10x1024, 16x100x512,
            # 512x37x8 and 8x1000x64, axis 1).
            _narrowed_gradient(logits, labels, probabilities, weight, weight_sum,
                               label_smoothing, ignore_index, losses, grad, grad_scale, view,
                               threads)
    else:
        work = np.empty(logits.shape, _FLOAT32) if narrowed else grad
        if logits.size:
            outer, n, inner = _reduction_view(logits.shape, axis)
            _core.cross_entropy(logits, labels, probabilities, weight, weight_sum,
                                label_smoothing, ignore_index, losses, work, grad_scale, outer, n,
                                inner, threads)
        elif work is not None:
            work[...] = 0
        if sample_weights is not None:
            _apply_sample_weight(losses, work, sample_weights, axis)
        if narrowed and work is not None and grad is not None:  # (the last two: for mypy)
            _core.narrow(work, _kernel_view(grad), threads)
    return losses, grad, denominator, dtype
