"""A user's script that must pass ``mypy --strict`` (checked by tests/test_typing.py).

It calls every public function the way users do, and it also runs (the test
executes it), so what type-checks here is also what works.  Lines marked
``# overload`` type-check only if the hints are precise: a ``cross_entropy``
without ``return_grad`` that returned a tuple, or one with
``return_grad=True`` that did not, would fail there.  (``tests/typecheck/
misuse.py`` holds the calls that must *not* type-check.)
"""
from __future__ import annotations

import io
import sys
from typing import Any, Union

import numpy as np
import numpy.typing as npt

import fastsoftmax
from fastsoftmax import reference

FloatArray = npt.NDArray[np.floating[Any]]
Loss = Union[np.floating[Any], FloatArray]


def attention(scores: npt.NDArray[np.float32], causal: npt.NDArray[np.bool_],
              values: npt.NDArray[np.float32]) -> FloatArray:
    """Masked, tempered attention weights applied to values, in place."""
    weights = fastsoftmax.softmax(scores, axis=-1, temperature=0.5, where=causal, out=scores)
    result: FloatArray = weights @ values
    return result


def training_step(logits: FloatArray, labels: npt.NDArray[np.int64]) -> tuple[float, FloatArray]:
    loss, grad = fastsoftmax.cross_entropy(logits, labels, return_grad=True)  # overload
    return float(loss), grad


def loss_value(logits: FloatArray, labels: npt.NDArray[np.int64], with_grad: bool) -> float:
    """``return_grad`` known only at run time: the result is either form."""
    either = fastsoftmax.cross_entropy(logits, labels, return_grad=with_grad)
    if isinstance(either, tuple):
        loss, grad = either  # overload
        assert grad.shape == logits.shape
        return float(loss)
    return float(either)


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    labels = np.array([1, 0, 3, 9])

    # softmax / log_softmax
    p = fastsoftmax.softmax(x)
    row_sums: FloatArray = p.sum(axis=-1)
    assert np.allclose(row_sums, 1.0)
    out = np.empty_like(x)
    assert fastsoftmax.softmax(x, axis=0, temperature=2.0, out=out, n_threads=1) is out
    whole = fastsoftmax.softmax(x, axis=None)
    assert whole.shape == x.shape
    fastsoftmax.softmax([1.0, 2.0, 3.0])
    fastsoftmax.softmax(x, where=np.arange(10) < 5)
    logp = fastsoftmax.log_softmax(x, 1, temperature=1.5, n_threads=-1)
    # several axes at once, 0-d input, dtype=
    maps = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    per_map: FloatArray = fastsoftmax.softmax(maps, axis=(2, 3))
    assert per_map.shape == maps.shape
    fastsoftmax.log_softmax(maps, (0, 2), where=np.ones((4, 4), bool))
    assert fastsoftmax.softmax(np.float32(2.0), axis=0).shape == ()
    p64: FloatArray = fastsoftmax.softmax(x, dtype=np.float64)
    fastsoftmax.log_softmax(x, dtype="float32", out=np.empty_like(x))
    assert p64.dtype == np.float64
    axes: tuple[int, ...] = (0, 1)
    fastsoftmax.softmax_backward(maps, per_map, axes)
    reference.softmax(maps, axis=(1, 3), dtype=np.float32)
    np.testing.assert_allclose(p, reference.softmax(x), rtol=1e-5)

    # attention, with a broadcast causal mask
    scores = rng.standard_normal((2, 5, 5)).astype(np.float32)
    causal = np.tril(np.ones((5, 5), dtype=bool))
    values = rng.standard_normal((5, 3)).astype(np.float32)
    assert attention(scores, causal, values).shape == (2, 5, 3)

    # logsumexp: an array, or a NumPy scalar when 0-d
    lse = fastsoftmax.logsumexp(x, axis=-1, keepdims=True)
    assert lse.shape == (4, 1)
    lse_any: np.floating[Any] | FloatArray = fastsoftmax.logsumexp(x)
    total: float = float(fastsoftmax.logsumexp(x, axis=None))
    assert np.isfinite(total) and lse_any.shape == (4,)
    lse_maps = fastsoftmax.logsumexp(maps, axis=(0, 2), keepdims=True)
    assert lse_maps.shape == (1, 3, 1, 4)
    assert float(fastsoftmax.logsumexp(np.float64(2.0), axis=0)) == 2.0
    lse_out = np.empty(10, np.float32)
    fastsoftmax.logsumexp(x, 0, where=x > -1.0, out=lse_out)
    # logsumexp with weights (SciPy's b=) and the sum's sign
    weighted: np.floating[Any] | FloatArray = fastsoftmax.logsumexp(x, b=np.arange(10) - 4.5)
    value, sign = fastsoftmax.logsumexp(x, b=-2.0, return_sign=True)  # overload
    assert np.all(sign == -1.0) and value.shape == (4,) and weighted.shape == (4,)
    ref_value, ref_sign = reference.logsumexp(x, b=-2.0, return_sign=True)  # overload
    np.testing.assert_allclose(ref_value, value, rtol=1e-6)

    # backward helpers
    upstream = rng.standard_normal(x.shape)
    dx: FloatArray = fastsoftmax.softmax_backward(upstream, p)
    dx_log = fastsoftmax.log_softmax_backward(upstream, logp, axis=-1, out=np.empty_like(upstream))
    assert dx.shape == dx_log.shape == x.shape

    # cross_entropy: the loss alone, or (loss, grad) with return_grad=True
    mean_loss: float = float(fastsoftmax.cross_entropy(x, labels))  # overload
    summed = fastsoftmax.cross_entropy(x, labels, reduction="sum", label_smoothing=0.1)
    per_sample = fastsoftmax.cross_entropy(x, labels, reduction="none", weight=np.ones(10),
                                           ignore_index=9)
    assert per_sample.shape == (4,) and summed > mean_loss
    loss, grad = training_step(x, labels)
    assert grad.shape == x.shape and loss == mean_loss
    grad_only: FloatArray = fastsoftmax.cross_entropy(x, labels, return_grad=True)[1]  # overload
    grad_buffer = np.empty_like(x)
    _, in_buffer = fastsoftmax.cross_entropy(x, labels, return_grad=True,  # overload
                                             grad_out=grad_buffer, n_threads=2)
    assert in_buffer is grad_buffer and np.array_equal(grad_only, in_buffer)
    # scikit-learn's float labels and per-sample weights
    float_labels = labels.astype(np.float64)
    weighted, weighted_grad = fastsoftmax.cross_entropy(  # overload
        x, float_labels, sample_weight=np.linspace(0.5, 2.0, 4), return_grad=True)
    ref_weighted = reference.cross_entropy(x, float_labels, sample_weight=[0.5, 1.0, 1.5, 2.0])
    assert weighted_grad.shape == x.shape and np.isfinite(float(weighted - ref_weighted))
    soft_targets = fastsoftmax.softmax(rng.standard_normal((4, 10)))
    fastsoftmax.cross_entropy(x, soft_targets, axis=-1, reduction="mean")
    assert loss_value(x, labels, True) == loss_value(x, labels, False) == mean_loss
    ref_loss: Loss
    ref_loss, ref_grad = reference.cross_entropy(x, labels, return_grad=True)  # overload
    np.testing.assert_allclose(ref_grad, grad_only, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(ref_loss), mean_loss, rtol=1e-5)

    # top_k
    top_values, top_indices = fastsoftmax.top_k(x, 3, -1, largest=False, n_threads=1)
    token_ids: npt.NDArray[np.int64] = top_indices
    ref_values, ref_indices = reference.top_k(x, 3, largest=False)
    np.testing.assert_array_equal(top_values, ref_values)
    np.testing.assert_array_equal(token_ids, ref_indices)

    # threads
    threads: int = fastsoftmax.get_num_threads() + 1
    assert threads >= 2
    fastsoftmax.set_num_threads(2)
    with fastsoftmax.num_threads(1):
        assert fastsoftmax.get_num_threads() == 1
    assert fastsoftmax.get_num_threads() == 2
    fastsoftmax.set_num_threads(None)
    # counts from NumPy (a shape, an array's sum) are ints to the runtime, and to the hints
    fastsoftmax.set_num_threads(np.int64(2))
    with fastsoftmax.num_threads(np.intp(1)):
        assert fastsoftmax.softmax(x, n_threads=np.int64(1)).shape == x.shape
    fastsoftmax.set_num_threads(None)
    fastsoftmax.set_output_pool(np.int64(1) << 28)
    fastsoftmax.set_output_pool(None)
    fastsoftmax.set_stream_threshold(np.uint64(1) << np.uint64(30))
    fastsoftmax.set_stream_threshold(None)

    # configuration
    buffer = io.StringIO()
    fastsoftmax.show_config(file=buffer)
    fastsoftmax.show_config(sys.stderr)
    version: str = fastsoftmax.__version__
    assert buffer.getvalue().startswith(f"fastsoftmax {version}")
    assert version.split(".")[0].isdigit()


if __name__ == "__main__":
    main()
