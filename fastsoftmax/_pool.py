"""Fresh outputs without page faults: a bounded pool of large output buffers.

A new output the size of the logits (262 MB for 2048 x 32000 float32) costs more
than the softmax itself: the OS maps new pages and zeroes every one of them on
first touch, on every call, even with NumPy's hugepage advice.  So outputs of at
least ``MIN_BYTES`` are carved from blocks that earlier outputs left behind.

Each such output is an ordinary ndarray whose memory belongs to a
``_core.PooledBlock``: when the array and every view of it are gone, the block
goes back to the pool, never earlier, so a reused block is never in two live
arrays.  The pool holds idle blocks only, bounded by bytes (``set_output_pool``),
and forgets them in a forked child.  No process-wide NumPy allocator is touched:
only fastsoftmax's own results come from it.
"""
from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._messages import configure_from_environment, shown
from ._typing import Count

__all__ = ["set_output_pool"]

MIN_BYTES = _core.POOL_MIN_BYTES  # smaller outputs come from np.empty (malloc reuses those)
DEFAULT_MAX_BYTES = 256 << 20  # the default bound, or two of the largest outputs
ENVIRONMENT_VARIABLE = "FASTSOFTMAX_OUTPUT_POOL"
_enabled = True  # set_output_pool keeps it


def _numpy_huge_page_switch() -> Callable[[], bool]:
    """NumPy's switch for its huge-page advice on large arrays (its private
    ``_get_madvise_hugepage``; True, NumPy's default on Linux, where it cannot be
    found).  Pooled blocks follow it: a user who turned the advice off for NumPy's
    arrays gets none on fastsoftmax's either."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # NumPy 2, 1
        try:
            switch: Callable[[], bool] = getattr(importlib.import_module(module),
                                                 "_get_madvise_hugepage")
            return switch
        except (ImportError, AttributeError):
            continue
    return lambda: True


_numpy_advises_huge_pages = _numpy_huge_page_switch()


def set_output_pool(max_bytes: Count = None) -> None:
    """Bound the memory that fastsoftmax keeps for its next large outputs.

    Results of at least 1 MB that fastsoftmax allocates itself (without
    ``out=``) reuse the memory of earlier results once those are garbage, so
    that repeated calls of one shape do not pay the OS for new zeroed pages
    each time.  Only idle memory is kept, and at most this much.

    Parameters
    ----------
    max_bytes : int or None, default None
        None: the default bound, the larger of 256 MB and two blocks of the
        size being returned (so two 2048 x 32000 float32 results alternate
        without a page fault).  An int >= 0: at most that many idle bytes;
        0 disables the pool (every result from ``np.empty``) and frees what it
        holds.  At import, the environment variable ``FASTSOFTMAX_OUTPUT_POOL``
        sets it the same way (a number of bytes, 0 to disable).

    Raises
    ------
    TypeError
        For a ``max_bytes`` that is not an int or None.
    ValueError
        For a negative ``max_bytes``.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.set_output_pool(64 * 2**20)   # keep at most 64 MB of idle outputs
    >>> fastsoftmax.set_output_pool(0)            # no pool: every result is new memory
    >>> fastsoftmax.set_output_pool()             # back to the default
    """
    global _enabled
    if max_bytes is None:
        _core.set_pool_bound(DEFAULT_MAX_BYTES, True)
        _enabled = True
        return
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an int or None, got {shown(max_bytes)}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0 (0 disables the pool), got {shown(max_bytes)}")
    _core.set_pool_bound(min(int(max_bytes), int(np.iinfo(np.intp).max)), False)
    _enabled = int(max_bytes) > 0


def fresh(shape: tuple[int, ...], dtype: np.dtype[Any],
          like: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
    """A new C-contiguous array for a result, as ``np.empty``: pooled memory when large.

    With ``like`` (the input the kernel reads beside it), a pooled result starts on the
    cache line half a page (2 KB) from ``like``'s offset in a 4 KB page, or just before.  A kernel that loads
    ``like[i]`` just after it stored the results before ``i`` then never finds those
    stores just ahead in the low 12 address bits, where the loads wait for them (for a
    trip to memory when they stream).  AVX-512, Zen 4, float32, one thread: placed on a
    cache line, fresh results sat 48 bytes past NumPy's usual input, where a streamed
    softmax over rows of 8 MB took 2.5x the ordinary time and one 64 MB row on two
    threads 1.4x; half a page away 1.2x (rows of 8 MB now take ordinary stores) and
    0.9x.  At the input's own offset the streamed ones did as well, but ordinary stores
    did not: 16384x512 softmax 5.4 ms, against 4.1 one line past and 3.8 half a page.
    On a line, as before, its vector stores stay whole: 16 bytes past one, calls in the
    cache (32x50257, 1024x1024) took 5-9% longer.

    New blocks of 4 MB or more get the huge-page advice that NumPy gives its own arrays
    of that size (when NumPy gives it), so a pooled result sits on the same pages as an
    ``out=`` array from ``np.empty`` (src/fs_pages.h says what that saved).
    """
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or not _enabled:
        return np.empty(shape, dtype)
    raw = _core.take_array(nbytes, 0 if like is None else like.__array_interface__["data"][0],
                           _numpy_advises_huge_pages())
    return raw.view(dtype).reshape(shape)


configure_from_environment(ENVIRONMENT_VARIABLE, set_output_pool, "the default bound")
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_core.forget_pool)
