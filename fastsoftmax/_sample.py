"""sample: one token per row of logits, Hugging Face's sampling chain fused into one kernel.

Penalties, temperature, top-k, top-p, min-p and the draw, with Hugging
Face's semantics and order.  The arguments are checked and resolved to one
set of parameters per row here (also for ``fastsoftmax.reference.sample``);
the penalties are applied here, to a copy; everything else runs in the C
kernel (src/fs_sample_tmpl.h), one row per thread, without a sort of the row.
"""
from __future__ import annotations

import contextlib
import numbers
import operator
from typing import Any, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from . import _core
from ._checks import (_as_kernel_array, _check_int, _is_bfloat16, _is_real_number,
                      _refuse_lazy, _refuse_masked, _result_dtype, _view_as_ndarray, _widened)
from ._messages import shown
from ._threads import resolve_threads
from ._typing import Count, FloatArray

__all__ = ["sample", "SampleResult"]

# fs_kernels.h's fs_sample_params and fs_sample_result: 8-byte fields, no padding.
PARAMS_DTYPE = np.dtype([("inv_temperature", np.float64), ("top_k", np.int64),
                         ("top_p", np.float64), ("min_p", np.float64),
                         ("min_keep", np.int64), ("u", np.float64)])
RESULT_DTYPE = np.dtype([("token", np.int64), ("n_kept", np.int64), ("logprob", np.float64),
                         ("status", np.int64)])
# fs_sample_status
_NAN, _POS_INF, _NO_FINITE, _NO_MEMORY = 1, 2, 3, 4

# prev_tokens: (B, L) ints, or B sequences of ints (one per row, any lengths).
PrevTokens = Union[npt.ArrayLike, Sequence[npt.ArrayLike], None]
# A checked per-row parameter: one Python number for every row, or an array of one per row.
PerRow = Union[int, float, np.ndarray]


class SampleResult(NamedTuple):
    """What :func:`sample` returns, per row of logits (scalars for 1-D logits).

    A named tuple: unpack it, or read its fields by name.

    Parameters
    ----------
    tokens : int64 ndarray of shape (B,), or an int64 scalar
        The sampled token ids.
    logprob : float32 ndarray of shape (B,), or a float32 scalar
        Each token's log-probability under the final, filtered distribution
        (0 for greedy rows).
    n_kept : int64 ndarray of shape (B,), or an int64 scalar
        How many tokens survived the filters with a finite logit (1 for
        greedy rows).
    top_tokens : int64 ndarray of shape (B, n) or (n,), or None
        With ``logprobs=n > 0``: the n most likely ids of the distribution
        after penalties and temperature, before the filters, most likely
        first (ties: the lower id first).
    top_logprobs : float32 ndarray like top_tokens, or None
        Their log-probabilities under that distribution.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax as fs
    >>> tokens, logprob, n_kept, top_tokens, top_logprobs = fs.sample(
    ...     np.float32([[0.0, 2.0, 1.0]]), temperature=0, logprobs=2)
    >>> tokens, top_tokens
    (array([1]), array([[1, 2]]))
    """

    tokens: Any
    logprob: Any
    n_kept: Any
    top_tokens: Optional[npt.NDArray[np.int64]] = None
    top_logprobs: Optional[npt.NDArray[np.float32]] = None


class _Resolved(NamedTuple):
    """sample's arguments, checked: logits as (B, V) and one set of parameters per row."""

    logits: FloatArray             # (B, V), C-contiguous, float32 or float64, not yet penalised
    params: npt.NDArray[Any]       # (B,) PARAMS_DTYPE
    n_top: int                     # logprobs
    one_row: bool                  # 1-D logits: scalar results
    # The penalties: each row's distinct previous tokens as (rows, tokens, counts), or None
    # when there are none or every row's penalties are neutral; then per-row factors.
    prev: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]
    repetition: PerRow
    presence: PerRow
    frequency: PerRow

    def penalised(self) -> FloatArray:
        """The logits the filters see: a penalised copy, or the logits themselves."""
        if self.prev is None:
            return self.logits
        return _apply_penalties(self.logits, self.prev, self.repetition, self.presence,
                                self.frequency)


_INF = float("inf")
# Each per-row parameter: whether it is an int, its range as (low, whether low is allowed,
# high, whether high is allowed), NaN never inside, and that range in words.
_Range = tuple[float, bool, float, bool]
_RULES: dict[str, tuple[bool, _Range, str]] = {
    "temperature": (False, (0, True, _INF, False), "must be finite and >= 0 (0 for greedy)"),
    "top_k": (True, (0, True, _INF, False), "must be >= 0 (0 disables top-k)"),
    "top_p": (False, (0, False, 1, True), "must be in (0, 1] (1 disables top-p)"),
    "min_p": (False, (0, True, 1, True), "must be in [0, 1] (0 disables min-p)"),
    "repetition_penalty": (False, (0, False, _INF, False),
                           "must be finite and > 0 (1 disables it)"),
    "presence_penalty": (False, (-_INF, False, _INF, False), "must be finite"),
    "frequency_penalty": (False, (-_INF, False, _INF, False), "must be finite"),
    "min_tokens_to_keep": (True, (1, True, _INF, False), "must be >= 1"),
    "u": (False, (0, True, 1, False), "uniforms must be in [0, 1)"),
}


def _clipped_count(count: int) -> int:
    """A count clipped to +-2**62: beyond int64 only its sign matters (every such count
    clips to the row length, or is out of range)."""
    return max(min(count, 2**62), -2**62)


def _inside(value: float, low: float, low_ok: bool, high: float, high_ok: bool) -> bool:
    """Whether a number lies in the range (False for NaN)."""
    return ((value >= low) if low_ok else (value > low)) and \
        ((value <= high) if high_ok else (value < high))


def _per_row(value: Any, name: str, rows: int) -> PerRow:
    """``value`` checked by its rule: a Python int/float, or an int64/float64 array of ``rows``.

    TypeError for a non-number (bools included) or an array of another dtype,
    ValueError for an array of the wrong length or a value out of range (the
    message names the entry).  Scalars stay Python numbers: most calls pass
    scalars, and checking those needs no NumPy call.
    """
    integer, bounds, what = _RULES[name]
    kind = "an int" if integer else "a real number"
    _refuse_masked(value, name)
    if not isinstance(value, (int, float, np.ndarray, list, tuple)) and (
            hasattr(value, "__dlpack__") or hasattr(value, "__array__")):
        value = _view_as_ndarray(value, name)  # a tensor: its refusals name the argument
        if _is_bfloat16(value.dtype):  # (viewed as bit patterns: their values, exactly)
            value = _widened(value, np.dtype(np.float64))
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array is a scalar (a NumPy one)
    quick = type(value) is float and not integer or type(value) is int  # the common call
    if quick or not isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) == 0:
        if not quick and not (_is_real_number(value) and (not integer or isinstance(
                value, numbers.Integral))):
            raise TypeError(f"{name} must be {kind} or an array of one per row, got {value!r}")
        number: int | float
        if integer:
            number = _clipped_count(operator.index(value))
        else:
            try:
                number = float(value)
            except OverflowError:
                raise ValueError(f"{name} is too large for a float: {shown(value)}") from None
        if not _inside(number, *bounds):  # (the message shows the value given, unclipped)
            raise ValueError(f"{name}={shown(value)} is out of range: {what}")
        return number
    _refuse_lazy(value, name)
    given = value
    if integer and isinstance(value, (list, tuple)):
        # Python ints beyond int64 clip as a scalar does (else NumPy makes an object array).
        value = [_clipped_count(v) if type(v) is int else v for v in value]
    arr = _view_as_ndarray(value, name)
    if not integer and _is_bfloat16(arr.dtype):
        arr = _widened(arr, np.dtype(np.float64))
    if arr.dtype.kind not in ("iu" if integer else "iuf"):
        raise TypeError(f"{name} must be {kind} or an array of them, got an array of "
                        f"dtype {arr.dtype}")
    if arr.shape != (rows,):
        raise ValueError(f"{name} must be a scalar or have one entry per row, shape "
                         f"({rows},); got shape {arr.shape}")
    # A copy of our own, checked and then used: the caller's array may change under a later
    # read (another thread), and values the check refused (min_tokens_to_keep 0) leave the
    # kernel nothing to draw from.
    if integer:
        arr = np.array(np.minimum(arr, 2**62) if arr.dtype == np.uint64 else arr, np.int64)
    else:
        arr = np.array(arr, np.float64)
    row = _core.first_outside(arr if not integer else arr.astype(np.float64), *bounds)
    if row >= 0:  # (the value given, unclipped)
        value = given[row] if isinstance(given, (list, tuple)) else arr[row].item()
        raise ValueError(f"{name}[{row}]={shown(value)} is out of range: {what}")
    return arr


def _resolve_prev_tokens(prev_tokens: PrevTokens, rows: int, vocab: int, one_row: bool
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The (row, token, count) of every distinct previous token, or None for none."""
    if prev_tokens is None:
        return None
    _refuse_lazy(prev_tokens, "prev_tokens")
    _refuse_masked(prev_tokens, "prev_tokens")
    if isinstance(prev_tokens, np.ndarray) or one_row or not isinstance(prev_tokens, (list, tuple)):
        try:
            arr = _view_as_ndarray(prev_tokens, "prev_tokens")
        except ValueError as error:  # a ragged nesting, say: NumPy's message names no argument
            raise ValueError(f"prev_tokens must be a sequence of ids for one row of logits: "
                             f"{error}") from None
        if one_row and arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[0] != rows:
            want = "a 1-D sequence of ids" if one_row else f"shape ({rows}, L) or {rows} sequences"
            raise ValueError(f"prev_tokens must be {want} (one row of previous tokens per row "
                             f"of logits); got shape {arr.shape}")
        per_row = list(arr)
    else:
        if len(prev_tokens) != rows:
            raise ValueError(f"prev_tokens must hold one sequence of ids per row: {rows}, "
                             f"got {len(prev_tokens)}")
        per_row = [_view_as_ndarray(p, f"prev_tokens[{row}]") for row, p in enumerate(prev_tokens)]
    flat_parts = []
    for row, ids in enumerate(per_row):
        if ids.ndim != 1:
            raise ValueError(f"prev_tokens[{row}] must be 1-D, got shape {ids.shape}")
        if ids.size == 0:
            continue
        if ids.dtype.kind not in "iu":
            raise TypeError(f"prev_tokens must hold integer token ids, got dtype {ids.dtype} "
                            f"in row {row}")
        ids = ids.copy()  # checked and used as one: the caller's may change meanwhile
        bad = (ids < 0) | (ids >= vocab)
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(f"prev_tokens[{row}][{at}]={shown(ids[at].item())} is out of range: "
                             f"token ids must be in [0, {vocab})")
        flat_parts.append(row * vocab + ids.astype(np.int64))
    if not flat_parts:
        return None
    flat, counts = np.unique(np.concatenate(flat_parts), return_counts=True)
    return flat // vocab, flat % vocab, counts


def _apply_penalties(logits: FloatArray, prev: tuple[np.ndarray, np.ndarray, np.ndarray],
                     repetition: PerRow, presence: PerRow, frequency: PerRow) -> FloatArray:
    """A copy of logits with the penalties applied to each row's previous tokens.

    In float64, rounded once to the dtype the logits are computed in (their own, float32
    for 16-bit logits, as Hugging Face's ``generate`` casts them): Hugging Face's repetition
    penalty (``s * r`` below 0, ``s / r`` otherwise), then OpenAI's
    ``s -= frequency * count + presence``.
    """
    rows, tokens, counts = prev
    n = logits.shape[0]
    dtype = _result_dtype(logits)  # 16-bit logits: penalised in float32, as they are computed
    out = _widened(logits, dtype)
    if out is logits:
        out = logits.copy()
    s = out[rows, tokens].astype(np.float64)
    r = np.broadcast_to(repetition, (n,))[rows]
    # IEEE arithmetic without warnings (reference.sample's the same): np.where computes both
    # branches, and the one it drops may overflow (1e300 * 1e10 where 1e300 / 1e10 is
    # taken); a penalty past the dtype's range gives +-inf (inf - inf NaN), which the row's
    # check reports, and one below it 0 or a subnormal.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        s = np.where(s < 0, s * r, s / r)
        s = s - (np.broadcast_to(frequency, (n,))[rows] * counts
                 + np.broadcast_to(presence, (n,))[rows])
        out[rows, tokens] = s.astype(dtype)
    return out


def _rows_of(logits: npt.ArrayLike) -> tuple[FloatArray, bool]:
    """logits as a C-contiguous float (B, V) array with V >= 1, and whether it was 1-D."""
    x = _as_kernel_array(logits, "logits")
    if x.ndim not in (1, 2):
        raise ValueError(f"logits must be 1-D (V,) or 2-D (B, V), got shape {x.shape}")
    one_row = x.ndim == 1
    x2 = x.reshape(1, -1) if one_row else x
    if x2.shape[1] == 0:
        raise ValueError("logits must have at least one token (V >= 1), got V = 0")
    return x2, one_row


def _resolve(logits: npt.ArrayLike, temperature: Any, top_k: Any, top_p: Any, min_p: Any,
             repetition_penalty: Any, presence_penalty: Any, frequency_penalty: Any,
             prev_tokens: PrevTokens, min_tokens_to_keep: Any, rng: Any, u: Any,
             logprobs: Any, n_threads: Any = None) -> _Resolved:
    """Check every argument of :func:`sample` and resolve them per row, before any work."""
    x2, one_row = _rows_of(logits)
    rows, vocab = x2.shape
    t = _per_row(temperature, "temperature", rows)
    k = _per_row(top_k, "top_k", rows)
    p = _per_row(top_p, "top_p", rows)
    mp = _per_row(min_p, "min_p", rows)
    rep = _per_row(repetition_penalty, "repetition_penalty", rows)
    pres = _per_row(presence_penalty, "presence_penalty", rows)
    freq = _per_row(frequency_penalty, "frequency_penalty", rows)
    keep = _per_row(min_tokens_to_keep, "min_tokens_to_keep", rows)
    n_top = _check_int(logprobs, "logprobs")
    if not 0 <= n_top <= vocab:
        raise ValueError(f"logprobs={shown(n_top)} is out of range: must be in [0, {vocab}] "
                         f"(the number of top tokens to report)")
    params = np.empty(rows, PARAMS_DTYPE)
    if isinstance(t, np.ndarray):
        with np.errstate(divide="ignore", over="ignore"):
            inv_t: PerRow = np.where(t > 0, 1.0 / np.where(t > 0, t, 1.0), 0.0)
        overflowed = np.flatnonzero(inv_t == _INF)
        sampled = bool((t > 0).any())
        if overflowed.size:
            row = int(overflowed[0])
            raise ValueError(f"temperature[{row}]={t[row]!r} is too small: 1/temperature "
                             f"overflows (use 0 for greedy)")
    else:
        inv_t = 1.0 / t if t > 0 else 0.0
        sampled = t > 0
        if inv_t == _INF:
            raise ValueError(f"temperature={t!r} is too small: 1/temperature overflows "
                             f"(use 0 for greedy)")
    params["inv_temperature"] = inv_t
    prev = _resolve_prev_tokens(prev_tokens, rows, vocab, one_row)
    resolve_threads(n_threads, x2.size)  # (checked here: rng draws only after every check)
    params["u"] = _resolve_uniforms(rng, u, rows, need=sampled)
    # top-k keeps at least min_keep, and keeping all V is no filter (0)
    if isinstance(keep, np.ndarray) or isinstance(k, np.ndarray):
        keep_v = np.minimum(keep, vocab)
        k_eff = np.where(k > 0, np.minimum(np.maximum(k, keep_v), vocab), 0)
        params["top_k"] = np.where(k_eff < vocab, k_eff, 0)
        params["min_keep"] = keep_v
    else:
        keep_n = min(int(keep), vocab)
        k_n = min(max(int(k), keep_n), vocab) if k > 0 else 0
        params["top_k"] = k_n if k_n < vocab else 0
        params["min_keep"] = keep_n
    params["top_p"] = p
    params["min_p"] = mp
    if prev is not None:
        penalised = np.broadcast_to((rep != 1) | (pres != 0) | (freq != 0), (rows,))
        if not penalised[prev[0]].any():
            prev = None
    return _Resolved(x2, params, n_top, one_row, prev, rep, pres, freq)


def _resolve_uniforms(rng: Any, u: Any, rows: int, need: bool) -> PerRow:
    """The rows' uniforms: ``rng.random(rows)``, ``u`` checked, or 0 when every row is greedy."""
    if rng is not None and u is not None:
        raise ValueError("give rng or u, not both: u replaces the draw rng.random(B) would make")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng()), "
                            f"got {type(rng).__name__}")
        return rng.random(rows)
    if u is None:
        if need:
            raise ValueError("sampling with temperature > 0 needs randomness: pass rng= (a "
                             "numpy.random.Generator) or u= (one uniform in [0, 1) per row)")
        return 0.0
    return _per_row(u, "u", rows)


def sample(logits: npt.ArrayLike, *, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
           min_p: Any = 0.0, repetition_penalty: Any = 1.0, presence_penalty: Any = 0.0,
           frequency_penalty: Any = 0.0, prev_tokens: PrevTokens = None,
           min_tokens_to_keep: Any = 1, rng: Optional[np.random.Generator] = None,
           u: Any = None, logprobs: int = 0, n_threads: Count = None) -> SampleResult:
    """Sample one token per row of logits, as Hugging Face's sampling chain does.

    Penalties, temperature, top-k, top-p and min-p, then one inverse-CDF draw
    per row, fused: no sort of the vocabulary (see Notes).  For the same
    uniforms the tokens are Hugging Face's (up to the rounding of its float32
    probabilities, which this computes in float64).

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        One row of V logits per sequence.  float32 and float64 are read as
        they are; float16 as float32; integers and bools as float64.  Never
        modified (the penalties apply to a copy).
    temperature : float or array_like of shape (B,), default 1.0
        Divides the logits; ``0`` is greedy: the argmax of the penalised
        logits, the lowest id among equal maxima, no filter and no draw.
        Finite and ``>= 0``.
    top_k : int or array_like of shape (B,), default 0
        Keep the ``top_k`` largest logits and every logit equal to the
        ``top_k``-th (ties included, as Hugging Face).  ``0`` disables it.
    top_p : float or array_like of shape (B,), default 1.0
        Nucleus sampling: keep the smallest set of most likely tokens whose
        probability reaches ``top_p`` (renormalised after top-k).  In
        ``(0, 1]``; ``1`` disables it.
    min_p : float or array_like of shape (B,), default 0.0
        Drop the tokens whose probability is below ``min_p`` times the
        largest.  In ``[0, 1]``; ``0`` disables it.
    repetition_penalty : float or array_like of shape (B,), default 1.0
        Hugging Face's: each previous token's logit ``s`` becomes ``s * r``
        if ``s < 0``, else ``s / r`` (once per token, however often it
        occurred).  Finite and ``> 0``; ``1`` disables it.
    presence_penalty : float or array_like of shape (B,), default 0.0
        OpenAI's, after the repetition penalty: ``presence_penalty`` is
        subtracted from the logit of each previous token.  Finite.
    frequency_penalty : float or array_like of shape (B,), default 0.0
        OpenAI's, with the presence penalty: ``frequency_penalty * count`` is
        subtracted from the logit of each previous token that occurred
        ``count`` times.  Finite.
    prev_tokens : array_like of ints, optional
        The tokens generated so far, which the penalties apply to: an (L,)
        sequence for 1-D logits; a (B, L) array, or a list of B sequences of
        any lengths, for 2-D.  Ids in ``[0, V)``.
    min_tokens_to_keep : int or array_like of shape (B,), default 1
        Top-k, top-p and min-p each keep at least this many tokens (>= 1).
    rng : numpy.random.Generator, optional
        Where the randomness comes from: the call draws exactly
        ``u = rng.random(B)`` (one float64 per row, in row order, greedy rows
        included), so the tokens do not depend on ``n_threads``.  A call that
        raises leaves ``rng`` as it was.
    u : float or array_like of shape (B,), optional
        Those uniforms, in ``[0, 1)``, given directly (tests, replay) instead
        of ``rng``.  Give ``rng`` or ``u``; neither only when every row is
        greedy.
    logprobs : int, default 0
        With ``n > 0``, also return the n most likely tokens per row and their
        log-probabilities after penalties and temperature, before the filters
        (what OpenAI-style APIs return; temperature 1 for greedy rows).
    n_threads : int, optional
        As in :func:`softmax`.  Rows go to threads; a row is never split.

    Returns
    -------
    SampleResult
        ``(tokens, logprob, n_kept, top_tokens, top_logprobs)``: see
        :class:`SampleResult`.  Scalars (and 1-D top arrays) for 1-D logits.

    Raises
    ------
    TypeError
        A parameter that is not a number (or an array of them), ``rng`` that
        is not a ``numpy.random.Generator``, non-integer ``prev_tokens``.
    ValueError
        Logits that are not 1-D or 2-D, or have ``V = 0``; a parameter out of
        its range or an array of the wrong length (the message names the
        entry); ``u`` outside ``[0, 1)``; both ``rng`` and ``u``, or neither
        with a temperature above 0; an id of ``prev_tokens`` outside
        ``[0, V)``; ``logprobs`` outside ``[0, V]``; a row, after the
        penalties, that holds a NaN or ``+inf`` or has no finite logit (the
        message names the row).  All are raised before any work is done, but
        for the rows' contents, found by the kernel (nothing of the caller's
        has been written then either).

    Notes
    -----
    The steps, in Hugging Face's order, each on what the last one kept:

    1. Penalties, in float64, rounded once to the dtype the logits are computed in
       (float32 for 16-bit logits).
    2. Temperature: the weights are ``exp((s - max) / T)``, in float64.
    3. Top-k.  4. Top-p.  5. Min-p.  6. Normalise over the kept tokens.
    7. The token is the first id, in ascending id order, whose cumulative
       weight exceeds ``u`` times the kept tokens' total.

    Ties: every filter keeps a prefix of one order, the *rank*: logit
    descending, then id ascending.  So at the top-p cut (and under
    ``min_tokens_to_keep``) of equal logits the lower ids are kept first, and
    at top-k's all equal logits are kept.  Hugging Face sorts with
    ``torch.sort``, which orders ties arbitrarily.  llama.cpp applies the
    temperature last (after its filters), which changes top-p's and min-p's
    sets; vLLM's CPU sampler applies top-k and top-p on temperature-scaled
    logits as here.

    Cost per row: top-k by the heap of :func:`top_k` (one pass); top-p or
    min-p alone by one pass for the total and one compare pass that lists the
    tokens the kept set can reach, then a sort of those only; no filter: two
    passes (total, then one block of the draw).

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax as fs
    >>> logits = np.log(np.float32([0.5, 0.3, 0.15, 0.05]))
    >>> int(fs.sample(logits, temperature=0).tokens)   # greedy: the argmax
    0
    >>> r = fs.sample(logits, top_p=0.7, u=0.9)        # keeps 0.5 and 0.3
    >>> int(r.tokens), int(r.n_kept)                   # 0.9 * 0.8 falls in token 1's share
    (1, 2)
    >>> batch = np.log([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    >>> r = fs.sample(batch, top_k=[1, 2], rng=np.random.default_rng(0))   # per-row top_k
    >>> r.n_kept
    array([1, 2])
    """
    rest = (top_k, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty,
            min_tokens_to_keep, logprobs)
    if (type(temperature) in _PLAIN and temperature == 0 and prev_tokens is None and rng is None
            and u is None and tuple(map(type, rest)) == _DEFAULT_TYPES and rest == _DEFAULTS):
        # Greedy with every other argument at its default (so valid): nothing to resolve.
        return _greedy(logits, n_threads)
    with rng_kept_on_error(rng):  # (the rows' contents are checked after the draw)
        args = _resolve(logits, temperature, top_k, top_p, min_p, repetition_penalty,
                        presence_penalty, frequency_penalty, prev_tokens, min_tokens_to_keep,
                        rng, u, logprobs, n_threads)
        return _run(args.penalised(), args.params, args.n_top, args.one_row, n_threads)


@contextlib.contextmanager
def rng_kept_on_error(rng: Any) -> Iterator[None]:
    """A block that raises leaves ``rng`` (a numpy.random.Generator, or anything else:
    nothing to keep) as it was before it, so that a caller who mends the logits and calls
    again gets the draw a first clean call would have had."""
    state = rng.bit_generator.state if isinstance(rng, np.random.Generator) else None
    try:
        yield
    except BaseException:
        if state is not None:
            rng.bit_generator.state = state
        raise


# The greedy shortcut: a temperature of these types (not bool), and the other parameters'
# defaults, compared by type first (an array or a bool never equals them by accident).
_PLAIN = (int, float)
_DEFAULTS = (0, 1.0, 0.0, 1.0, 0.0, 0.0, 1, 0)
_DEFAULT_TYPES = tuple(map(type, _DEFAULTS))


def _greedy(logits: npt.ArrayLike, n_threads: Count) -> SampleResult:
    """sample(logits, temperature=0) with every other argument at its default."""
    x2, one_row = _rows_of(logits)
    rows, vocab = x2.shape
    threads = min(resolve_threads(n_threads, x2.size), max(rows, 1))
    if rows == 0:
        return _run(x2, np.zeros(0, PARAMS_DTYPE), 0, one_row, threads)
    tokens, bad, status = _core.greedy(x2, rows, vocab, threads)
    if bad >= 0:
        _raise_for_row(bad, status, one_row)
    if one_row:
        return SampleResult(tokens[0], np.float32(0.0), np.int64(1))
    return SampleResult(tokens, np.zeros(rows, np.float32), np.ones(rows, np.int64))


def _run(logits: FloatArray, params: npt.NDArray[Any], n_top: int, one_row: bool,
         n_threads: Count) -> SampleResult:
    """The kernel over (B, V) logits with resolved parameters, and its results as a SampleResult."""
    rows, vocab = logits.shape
    threads = min(resolve_threads(n_threads, logits.size), max(rows, 1))
    results = np.empty(rows, RESULT_DTYPE)  # the kernel writes every field of every row
    top_tokens = np.empty((rows, n_top), np.int64)
    top_logprobs = np.empty((rows, n_top), np.float32)
    if rows:
        bad = _core.sample(logits, params, results, top_tokens, top_logprobs, rows, vocab,
                           threads)
        if bad >= 0:
            _raise_for_row(bad, int(results[bad]["status"]), one_row)
    tops = (top_tokens, top_logprobs) if n_top else (None, None)
    if one_row:
        only = results[0]
        return SampleResult(only["token"], np.float32(only["logprob"]), only["n_kept"],
                            *(None if a is None else a[0] for a in tops))
    return SampleResult(results["token"].copy(), results["logprob"].astype(np.float32),
                        results["n_kept"].copy(), *tops)


def _raise_for_row(row: int, status: int, one_row: bool) -> None:
    """The error for a row the kernel could not sample (fs_sample_status ``status``)."""
    if status == _NO_MEMORY:
        raise MemoryError("sample: could not allocate the kernel's scratch space")
    where = "logits" if one_row else f"logits row {row}"
    if status == _NAN:
        raise ValueError(f"{where} contains NaN (after the penalties): it has no distribution")
    if status == _POS_INF:
        raise ValueError(f"{where} contains +inf (after the penalties): its probabilities are "
                         f"undefined (softmax of +inf is NaN)")
    raise ValueError(f"{where} has no finite logit (all -inf after the penalties): nothing can "
                     f"be sampled")
