"""The cross-entropy reference: ``fastsoftmax.reference.cross_entropy``, which imports it from here.

Plain float64 NumPy like the rest of ``fastsoftmax.reference`` (whose
docstring says what the reference is), in a module of its own for size.  Its
log-probabilities are the reference log_softmax's, from ``_reference_base``.
"""
from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ._reference_base import _as_array, _log_softmax_float64, _silently, _upcast
from ._typing import REDUCTIONS, FloatArray, FloatScalarOrArray, Reduction

__all__ = ["cross_entropy"]


def _normalize_axis(axis: int, ndim: int) -> int:
    """Non-negative class axis; raises for an axis out of range."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {ndim}-d logits")
    return axis % ndim


def _float_labels(target: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Float class labels (scikit-learn's ``y``: 2.0 is class 2) as int64; each must be an integer."""
    if not np.all((np.trunc(target) == target) & (np.abs(target) < 2.0**63)):
        raise ValueError("float class labels must be integers")
    return target.astype(np.int64)


def _index_target_terms(
    log_probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer[Any]],
    class_weight: npt.NDArray[np.float64], ignore_index: int, label_smoothing: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_],
           npt.NDArray[np.float64]]:
    """Per-sample losses, effective targets, ignored samples and 'mean' denominator terms.

    The effective target ``q`` is what the loss weighs each log-probability by
    (``loss = -sum_c q[c] * log_p[c]``); it gives the gradient.  torch's
    ``nll_loss`` plus its label-smoothing term is, per sample::

        loss = (1 - eps) * w[y] * (-log_p[y])  +  eps / C * sum_c w[c] * (-log_p[c])

    with ignored samples contributing 0, and 'mean' dividing by ``sum w[y]``
    over the non-ignored samples (NaN when all are ignored): the last array
    returned holds those terms, ``w[y]`` (0 where ignored).  The smoothing
    term is only added when ``eps > 0``, as torch does: otherwise a ``-inf``
    logit on a non-target class would turn the loss into ``0 * inf = NaN``.
    """
    n_classes = log_probs.shape[-1]
    if labels.shape != log_probs.shape[:-1]:
        raise ValueError(
            f"class-index target has shape {labels.shape}, expected {log_probs.shape[:-1]}"
        )
    ignored = labels == ignore_index
    if np.any((~ignored) & ((labels < 0) | (labels >= n_classes))):
        raise ValueError(f"target labels must lie in [0, {n_classes}) or equal ignore_index")
    if n_classes == 0:  # every label ignored: no loss, no class to index (nor to smooth over)
        nothing = np.zeros(labels.shape)
        return nothing, np.zeros(log_probs.shape), ignored, nothing
    safe_labels = np.where(ignored, 0, labels).astype(np.intp)[..., np.newaxis]
    label_weight = np.where(ignored, 0.0, class_weight[safe_labels[..., 0]])

    nll = -np.take_along_axis(log_probs, safe_labels, axis=-1)[..., 0]
    losses = (1.0 - label_smoothing) * label_weight * nll
    is_label = np.zeros(log_probs.shape, dtype=bool)
    np.put_along_axis(is_label, safe_labels, True, axis=-1)
    # The label's weight at the label and exactly 0 elsewhere, as torch's one-hot gather:
    # an infinite class weight times a one-hot's 0 would be NaN where torch's gradient is
    # inf * p.
    effective_target = np.where(is_label, ((1.0 - label_smoothing) * label_weight)[..., np.newaxis],
                                0.0)
    if label_smoothing > 0:
        smoothing_share = label_smoothing / n_classes
        losses = losses + smoothing_share * -(log_probs @ class_weight)
        effective_target = effective_target + smoothing_share * class_weight
    losses = np.where(ignored, 0.0, losses)
    effective_target = np.where(ignored[..., np.newaxis], 0.0, effective_target)
    return losses, effective_target, ignored, label_weight


def _probability_target_terms(
    log_probs: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64],
    class_weight: npt.NDArray[np.float64], label_smoothing: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_],
           npt.NDArray[np.float64]]:
    """Per-sample losses, effective targets, ignored samples and 'mean' denominator terms.

    torch: ``t' = t * (1 - eps) + eps / C``; ``loss = -sum_c w[c] * t'[c] * log_p[c]``;
    'mean' divides by the number of samples (terms of 1), not by the weights.  The product
    is taken literally, as torch does, so a 0 target on a ``-inf`` logit makes
    the loss NaN (the gradient stays finite).
    """
    if probabilities.shape != log_probs.shape:
        raise ValueError(
            f"probability target has shape {probabilities.shape}, expected {log_probs.shape}"
        )
    n_classes = log_probs.shape[-1]
    share = label_smoothing / n_classes if n_classes else 0.0  # (no classes: nothing to share)
    smoothed = probabilities * (1.0 - label_smoothing) + share
    effective_target = smoothed * class_weight
    losses = -np.sum(effective_target * log_probs, axis=-1)
    nothing_ignored = np.zeros(losses.shape, dtype=bool)
    return losses, effective_target, nothing_ignored, np.ones(losses.shape)


@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: Literal[False] = ...,
) -> FloatScalarOrArray: ...
@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: Literal[True],
) -> tuple[FloatScalarOrArray, FloatArray]: ...
@overload
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = ...,
    weight: npt.ArrayLike | None = ...,
    sample_weight: npt.ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    return_grad: bool,
) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]: ...
@_silently
def cross_entropy(
    logits: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    axis: int = -1,
    weight: npt.ArrayLike | None = None,
    sample_weight: npt.ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
) -> FloatScalarOrArray | tuple[FloatScalarOrArray, FloatArray]:
    """Cross-entropy loss from logits, exactly as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, with the classes along `axis`.  torch's layout
        ``(N, C, d1, ...)`` is ``axis=1``; ``(C,)`` is a single sample.
    target : array_like
        Either class indices with the shape of `logits` minus the class axis
        (any int dtype, or floats holding integers, as scikit-learn's ``y``),
        or floating class probabilities with the shape of `logits`
        (`ignore_index` does not apply to those).  A float target is labels
        when it has one dimension fewer than `logits`.
    axis : int, optional
        The class axis.
    weight : array_like, optional
        ``(C,)`` per-class rescaling weights.
    sample_weight : array_like, optional
        Finite per-sample weights ``s`` (scikit-learn's), broadcastable to the
        shape of `logits` minus the class axis: each sample's loss and
        gradient are multiplied by its weight, and 'mean' divides by
        ``sum(s * w[y])`` over non-ignored samples (``sum(s)`` for
        probability targets).
    ignore_index : int, optional
        Class-index targets equal to it contribute neither loss nor gradient.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' of index targets is the weighted mean ``sum(w[y] * loss) / sum(w[y])``
        over non-ignored samples (NaN if all are ignored); of probability targets
        it is the plain mean over samples.  'none' gives per-sample losses
        (0 for ignored samples).
    label_smoothing : float, optional
        ``eps`` in ``[0, 1]``: mixes the target with the uniform distribution
        ``eps / C`` (torch's formula, including how `weight` enters).
    return_grad : bool, optional
        Also return the gradient with respect to `logits` (of ``loss.sum()``
        for reduction 'none'), as torch autograd gives it.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar for 'mean'/'sum', per-sample losses for 'none' (a scalar for
        1-D logits), float32 for float16/float32 logits, else float64.
    grad : ndarray
        Only with ``return_grad=True``: the gradient, shaped like `logits`, of
        the same dtype as `loss`.

    Examples
    --------
    >>> float(cross_entropy([[0.0, 0.0, 0.0, 0.0]], [2]))  # log(4)
    1.3862943611198906
    >>> cross_entropy([[0.0, 0.0], [0.0, 0.0]], [1.0, 0.0], sample_weight=[3.0, 1.0],
    ...               reduction="none")  # float labels, losses log(2) times 3 and 1
    array([2.07944154, 0.69314718])
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    label_smoothing = float(label_smoothing)  # (a NumPy float16 would compute in float16)
    (logits,), dtype = _upcast(logits)
    target = _as_array(target, "target")
    axis = _normalize_axis(axis, logits.ndim)
    if target.dtype.kind == "f" and target.ndim == logits.ndim - 1:
        target = _float_labels(target)

    # Work with the classes last; the gradient is moved back at the end.
    log_probs = _log_softmax_float64(np.moveaxis(logits, axis, -1), -1, 1.0, True)
    n_classes = log_probs.shape[-1]
    class_weight = (
        np.ones(n_classes) if weight is None else _as_array(weight, "weight").astype(np.float64)
    )
    if np.issubdtype(target.dtype, np.integer):
        losses, effective_target, ignored, denominator_terms = _index_target_terms(
            log_probs, target, class_weight, ignore_index, label_smoothing
        )
    else:
        losses, effective_target, ignored, denominator_terms = _probability_target_terms(
            log_probs, np.moveaxis(target.astype(np.float64), axis, -1),
            class_weight, label_smoothing,
        )
    if sample_weight is not None:
        # Each sample's loss, and so its effective target and gradient, times its weight.
        s = np.broadcast_to(_as_array(sample_weight, "sample_weight").astype(np.float64), losses.shape)
        if not np.all(np.isfinite(s)):
            raise ValueError("sample_weight must be finite")
        losses = losses * s
        effective_target = effective_target * s[..., np.newaxis]
        denominator_terms = denominator_terms * s
    mean_denominator = np.sum(denominator_terms)

    loss: FloatScalarOrArray
    if reduction == "none":
        loss, grad_scale = losses, 1.0
    elif reduction == "sum":
        loss, grad_scale = np.sum(losses), 1.0
    else:
        loss, grad_scale = np.sum(losses) / mean_denominator, 1.0 / mean_denominator
    loss = np.asarray(loss).astype(dtype)[()]
    if not return_grad:
        return loss

    # loss_i = -sum_c q_ic * log_softmax_ic has d loss_i / d logits_i =
    # sum_c(q_ic) * softmax_i - q_i (sum_c q_ic is not 1 once weights enter).
    # Ignored samples get exactly 0, as in torch, even when the mean's scale
    # is 1/0 (all ignored).  The scale goes into q first, as torch's chain takes
    # it (the loss's gradient into nll's, then log_softmax's), and q's zeros stay
    # 0: with a scale of 1/0 (the weights sum to 0) the label's entry is then
    # inf - inf = NaN, as torch's, not +-inf.
    probs = np.exp(log_probs)
    scaled_target = np.where(effective_target != 0, effective_target * grad_scale, 0.0)
    grad = np.sum(scaled_target, axis=-1, keepdims=True) * probs - scaled_target
    grad = np.where(ignored[..., np.newaxis], 0.0, grad)
    return loss, np.moveaxis(grad, -1, axis).astype(dtype)
