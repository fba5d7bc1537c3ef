"""Peers' sampling chains written as their users write them: the yardsticks of ``sample``;
and how an optional peer is imported.

Used by ``python -m fastsoftmax`` and ``benchmarks/test_bench_sample.py``.  PyTorch
is imported only when a chain is built; transformers is optional.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

import numpy as np
import numpy.typing as npt


def one_line(error: BaseException) -> str:
    """``"Type: message"`` on one line: the first line of the message, cut at 200 characters.

    A broken install's messages run long (NumPy's ABI warning is a page), and
    a note about it must stay one line.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if len(message) > 200:
        message = message[:197] + "..."
    elif len(lines) > 1:
        message += " ..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class PeerUnusable(Exception):
    """A peer that is installed but fails to import or to run.

    Its text is the note ``python -m fastsoftmax`` prints for it:
    ``torch: unusable (OSError: libtorch_cpu.so: cannot open shared object file)``.

    Parameters
    ----------
    peer : str
        The peer's top-level package, as its users import it (``"torch"``).
    error : BaseException
        What importing or calling it raised.
    """

    def __init__(self, peer: str, error: BaseException) -> None:
        super().__init__(peer, error)
        self.peer = peer
        self.error = error

    def __str__(self) -> str:
        return f"{self.peer}: unusable ({one_line(self.error)})"


def import_peer(module: str) -> ModuleType | None:
    """Import an optional peer's module: it, or None where the peer is not installed.

    Parameters
    ----------
    module : str
        A dotted name such as ``"scipy.special"``; the peer is its top-level package.

    Raises
    ------
    PeerUnusable
        Where the peer is installed but its import fails: a missing shared library
        (OSError), a build for another NumPy (RuntimeError, AttributeError, an
        ImportError from inside), a missing submodule or dependency.  Only a
        ModuleNotFoundError for the top-level package itself means "not installed".
    """
    peer = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == peer:
            return None
        raise PeerUnusable(peer, exc) from exc
    except Exception as exc:  # a broken install can raise anything while it imports
        raise PeerUnusable(peer, exc) from exc


def hugging_face_chain(temperature: float, top_k: int, top_p: float, *,
                       transformers: bool = True) -> tuple[str, Callable[[Any], Any]]:
    """(name, chain): scores tensor (B, V) -> sampled ids (B, 1), as ``generate()`` samples.

    Hugging Face's own warpers (temperature, top-k, top-p) and ``torch.multinomial``
    when transformers is installed; otherwise the same three steps in the torch
    operations transformers' ``logits_process.py`` uses (a full sort for top-p).

    Parameters
    ----------
    temperature, top_k, top_p : float, int, float
        The sampling settings, as ``generate()`` takes them.
    transformers : bool, optional
        False: the torch steps even where transformers is installed (for a caller
        that has found it unusable).

    Raises
    ------
    PeerUnusable
        Where transformers is wanted and installed but fails to import.
    """
    import torch

    lp = import_peer("transformers.generation.logits_process") if transformers else None
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
