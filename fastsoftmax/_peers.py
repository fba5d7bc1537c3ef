"""Peers' sampling chains written as their users write them: the yardsticks of ``sample``.

Used by ``python -m fastsoftmax`` and ``benchmarks/test_bench_sample.py``.  PyTorch
is imported only when a chain is built; transformers is optional.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import numpy.typing as npt


def hugging_face_chain(temperature: float, top_k: int, top_p: float
                       ) -> tuple[str, Callable[[Any], Any]]:
    """(name, chain): scores tensor (B, V) -> sampled ids (B, 1), as ``generate()`` samples.

    Hugging Face's own warpers (temperature, top-k, top-p) and ``torch.multinomial``
    when transformers is installed; otherwise the same three steps in the torch
    operations transformers' ``logits_process.py`` uses (a full sort for top-p).
    """
    import torch

    lp: Any
    try:
        from transformers.generation import logits_process as lp
    except ImportError:
        lp = None
    if lp is not None:
        warpers = lp.LogitsProcessorList([lp.TemperatureLogitsWarper(temperature),
                                          lp.TopKLogitsWarper(top_k),
                                          lp.TopPLogitsWarper(top_p)])

        def transformers_chain(scores: Any) -> Any:
            ids = torch.zeros((scores.shape[0], 1), dtype=torch.long)
            probs = torch.softmax(warpers(ids, scores), dim=-1)
            return torch.multinomial(probs, num_samples=1)

        return "transformers", transformers_chain

    def torch_chain(scores: Any) -> Any:
        scores = scores / temperature
        kth = torch.topk(scores, min(top_k, scores.size(-1)))[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -float("inf"))
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = 0
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)

    return "torch (transformers' steps)", torch_chain


def numpy_chain(x: npt.NDArray[np.floating[Any]], u: npt.NDArray[np.float64], temperature: float,
                top_k: int, top_p: float) -> npt.NDArray[np.int64]:
    """Temperature, top-k, top-p and the draw in NumPy: argpartition, a sort of the k, cumsum."""
    z = x / temperature
    part = np.argpartition(-z, top_k - 1, axis=-1)[:, :top_k]
    picked = np.take_along_axis(z, part, -1)
    order = np.argsort(-picked, axis=-1, kind="stable")
    picked = np.take_along_axis(picked, order, -1)
    ids = np.take_along_axis(part, order, -1)
    p = np.exp(picked - picked[:, :1])
    p /= p.sum(axis=-1, keepdims=True)
    p = np.where(np.cumsum(p, axis=-1) - p < top_p, p, 0.0)
    cdf = np.cumsum(p, axis=-1)
    pick = (cdf <= u[:, None] * cdf[:, -1:]).sum(axis=-1)
    tokens: npt.NDArray[np.int64] = ids[np.arange(x.shape[0]), np.minimum(pick, top_k - 1)]
    return tokens
