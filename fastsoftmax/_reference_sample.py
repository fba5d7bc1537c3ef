"""reference.sample and reference.sample_kept: the sort-based oracle of fastsoftmax.sample.

Row by row, in float64: the penalties with a dict of counts, the filters on
a full sort of the row (``np.lexsort``: logit descending, then id), the draw
on a cumulative sum in id order.  The arguments are checked and resolved per
row by the same code as :func:`fastsoftmax.sample` (``_sample._resolve``);
everything after that is written here again, plainly.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from . import _sample
from ._checks import _result_dtype, _widened
from ._reference_base import _log_sum_exp_scaled, _silently
from ._sample import SampleResult
from ._typing import Count

__all__ = ["sample", "sample_kept"]


def _penalised_row(row: np.ndarray, prev_ids: list[int], repetition: float, presence: float,
                   frequency: float) -> np.ndarray:
    """One row with its penalties applied: float64 arithmetic, rounded to the row's dtype."""
    out = row.copy()
    # IEEE arithmetic, quietly: a penalty past the dtype's range gives +-inf (inf - inf NaN),
    # which _check_row reports, and one below it 0 or a subnormal
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for token, count in Counter(prev_ids).items():
            s = float(row[token])
            s = s * repetition if s < 0 else s / repetition
            s -= frequency * count + presence
            out[token] = row.dtype.type(s)
    return out


def _rows(args: _sample._Resolved) -> list[np.ndarray]:
    """Each row of logits as the filters see it (penalised), upcast to float64."""
    prev: list[list[int]] = [[] for _ in range(args.logits.shape[0])]
    if args.prev is not None:
        for r, t, c in zip(*args.prev):
            prev[int(r)] += [int(t)] * int(c)
    rows = args.logits.shape[0]
    repetition, presence, frequency = (np.broadcast_to(v, (rows,)) for v in
                                       (args.repetition, args.presence, args.frequency))
    # 16-bit logits (bfloat16 as its bit patterns) are penalised in float32, as fs.sample does
    logits = _widened(args.logits, _result_dtype(args.logits))
    return [_penalised_row(row, prev[r], repetition[r], presence[r], frequency[r])
            .astype(np.float64) for r, row in enumerate(logits)]


def _check_row(s: np.ndarray, row: int, one_row: bool) -> None:
    where = "logits" if one_row else f"logits row {row}"
    if np.isnan(s).any():
        raise ValueError(f"{where} contains NaN (after the penalties)")
    if (s == np.inf).any():
        raise ValueError(f"{where} contains +inf (after the penalties)")
    if not np.isfinite(s).any():
        raise ValueError(f"{where} has no finite logit (all -inf after the penalties)")


def _kept_in_rank_order(s: np.ndarray, p: np.void) -> tuple[np.ndarray, np.ndarray]:
    """The ids that survive top-k, top-p and min-p, in rank order, and every id's weight."""
    m = s.max()
    tau = float(p["inv_temperature"])
    with np.errstate(invalid="ignore"):
        w = np.exp((s - m) * tau)
    w[s == -np.inf] = 0.0
    order = np.lexsort((np.arange(s.size), -s))  # rank: value descending, then id
    keep_min = int(p["min_keep"])
    kept = order
    if p["top_k"] > 0:
        kth = s[order[int(p["top_k"]) - 1]]
        kept = order[s[order] >= kth]           # every tie of the k-th value
    if p["top_p"] < 1:
        ws = w[kept]
        total = np.cumsum(ws)[-1] if p["top_k"] > 0 else np.sum(w)
        before = np.concatenate(([0.0], np.cumsum(ws)[:-1]))
        keep = before < p["top_p"] * total
        keep[:keep_min] = True
        kept = kept[:_prefix(keep)]
    if p["min_p"] > 0:
        keep = w[kept] >= p["min_p"]
        keep[:keep_min] = True
        kept = kept[:_prefix(keep)]
    return kept, w


def _prefix(keep: np.ndarray) -> int:
    """The length of the leading run of True."""
    return int(keep.size if keep.all() else np.argmin(keep))


@_silently  # (as every public function of the reference: IEEE's values, no warnings)
def sample_kept(logits: npt.ArrayLike, **kwargs: Any) -> npt.NDArray[np.bool_]:
    """Which tokens survive the filters of :func:`fastsoftmax.sample` with these arguments.

    The same arguments as :func:`sample` (``rng``/``u`` are not needed);
    returns a bool array shaped like ``logits``: True where the token is in
    the final distribution with a finite logit (Hugging Face's
    ``isfinite(processors(ids, scores))``).  Greedy rows keep their argmax.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import reference
    >>> reference.sample_kept(np.log([0.5, 0.3, 0.15, 0.05]), top_p=0.7)
    array([ True,  True, False, False])
    """
    if "rng" not in kwargs and "u" not in kwargs:
        kwargs = {**kwargs, "u": 0.0}  # the draw does not matter here
    args = _sample._resolve(logits, **_with_defaults(kwargs))
    mask = np.zeros(args.logits.shape, bool)
    for r, s in enumerate(_rows(args)):
        _check_row(s, r, args.one_row)
        p = args.params[r]
        if p["inv_temperature"] == 0:
            mask[r, np.argmax(s)] = True
            continue
        kept, _ = _kept_in_rank_order(s, p)
        mask[r, kept[np.isfinite(s[kept])]] = True
    return mask[0] if args.one_row else mask


@_silently  # (the reference's ops are computed as IEEE says, -inf and all)
def _logprobs(s: np.ndarray, tau: float, ids: np.ndarray, among: np.ndarray) -> np.ndarray:
    """log p of each of ``ids`` under the weights exp(z) of the ids ``among``, in float64.

    z = (s - max) * tau, and log p = z - log of the weights' total, taken as the
    reference's log-domain ops take it (``_log_sum_exp_scaled``: the max's first
    term, exactly 1, left out and the rest summed into log1p), so the
    log-probability of a confident token keeps its relative precision ([0, -40]:
    -4.2e-18, not 0).  ``among`` holds the max (a row, or the ids that survive the
    filters: the best always does).
    """
    z = (s - s.max()) * tau
    z[s == -np.inf] = -np.inf
    logprobs: np.ndarray = z[ids] - _log_sum_exp_scaled(z[among], -1, True)[0]
    return logprobs


def _with_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    defaults = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
                    presence_penalty=0.0, frequency_penalty=0.0, prev_tokens=None,
                    min_tokens_to_keep=1, rng=None, u=None, logprobs=0)
    unknown = set(kwargs) - set(defaults) - {"n_threads"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    kwargs.pop("n_threads", None)
    return {**defaults, **kwargs}


def sample(logits: npt.ArrayLike, *, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
           min_p: Any = 0.0, repetition_penalty: Any = 1.0, presence_penalty: Any = 0.0,
           frequency_penalty: Any = 0.0, prev_tokens: Any = None, min_tokens_to_keep: Any = 1,
           rng: Optional[np.random.Generator] = None, u: Any = None, logprobs: int = 0,
           n_threads: Count = None) -> SampleResult:
    """:func:`fastsoftmax.sample`, by full sorts and cumulative sums in float64.

    The same arguments, results and errors (``n_threads`` is ignored).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import reference
    >>> int(reference.sample(np.log([0.5, 0.3, 0.15, 0.05]), top_p=0.7, u=0.9).tokens)
    1
    """
    with _sample.rng_kept_on_error(rng), np.errstate(all="ignore"):  # (as fs.sample; silent)
        return _sample_resolved(_sample._resolve(
            logits, temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty,
            frequency_penalty, prev_tokens, min_tokens_to_keep, rng, u, logprobs))


def _sample_resolved(args: Any) -> SampleResult:
    """:func:`sample` of resolved arguments."""
    rows = args.logits.shape[0]
    tokens = np.zeros(rows, np.int64)
    logprob = np.zeros(rows, np.float64)
    n_kept = np.ones(rows, np.int64)
    top_tokens = np.zeros((rows, args.n_top), np.int64)
    top_logprobs = np.zeros((rows, args.n_top), np.float32)
    for r, s in enumerate(_rows(args)):
        _check_row(s, r, args.one_row)
        p = args.params[r]
        greedy = p["inv_temperature"] == 0
        if args.n_top:
            tau = 1.0 if greedy else float(p["inv_temperature"])
            order = np.lexsort((np.arange(s.size), -s))[:args.n_top]
            top_tokens[r] = order
            with np.errstate(over="ignore"):  # below float32's range: -inf, as fs.sample's
                top_logprobs[r] = _logprobs(s, tau, order, np.arange(s.size)).astype(np.float32)
        if greedy:
            tokens[r] = np.argmax(s)
            continue
        kept, w = _kept_in_rank_order(s, p)
        n_kept[r] = np.isfinite(s[kept]).sum()
        ids = np.sort(kept)
        cumulative = np.cumsum(w[ids])
        total = cumulative[-1]
        above = np.flatnonzero(cumulative > p["u"] * total)
        pick = above[0] if above.size else np.flatnonzero(w[ids] > 0)[-1]
        tokens[r] = ids[pick]
        logprob[r] = _logprobs(s, float(p["inv_temperature"]), ids[pick:pick + 1], ids)[0]
    logprob32 = logprob.astype(np.float32)
    tops = (top_tokens, top_logprobs) if args.n_top else (None, None)
    if args.one_row:
        return SampleResult(tokens[0], logprob32[0], n_kept[0],
                            *(None if a is None else a[0] for a in tops))
    return SampleResult(tokens, logprob32, n_kept, *tops)
