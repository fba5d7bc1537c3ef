"""Streaming stores: when softmax, log_softmax and cross_entropy's gradient bypass the caches.

The last pass of softmax writes every output element once.  With ordinary
stores the CPU first reads each output line from memory, then keeps it in the
cache, evicting something else; for an output much larger than the last-level
cache neither helps, and the read costs a third of the call's memory traffic.
Streaming (non-temporal) stores skip both.  For an output that fits in the
cache they would be a loss: its lines would go to memory, and a caller that
reads the result next would fetch them back.  So the kernels stream only when
the call's input and output together take at least three quarters of the
last-level cache, but at most 96 MB (``set_stream_threshold``), never in place,
and only where the ISA has such stores (x86-64; ``show_config`` says).  The
results are bitwise the same either way.  cross_entropy's gradient streams by
the same rule.

Only whole cache lines stream; the ends of a row that do not fill one take
ordinary stores.  Rows keep what their sum pass stores (softmax's and the
gradient's exponentials, log_softmax's differences) in scratch rows for the
last pass, which then reads nothing from x: pipelined rows (contiguous,
unmasked, up to 256 KB: ``kernel_info()``'s ``pipelined_to``) in two, pairs of short rows in a
pair, other rows of up to 1 MB (``kernel_info()``'s ``stream_row_scratch``)
in one of their own.  Longer softmax and gradient rows take ordinary stores
(log_softmax's stream from x).  Rows split across threads compute the
exponentials again in the last pass, which pays only with the AVX-512
kernels' exp: the others store those outputs the ordinary way
(``_core.stream_recomputes()``; figures in docs/performance-log.md,
src/fs_softmax_tmpl.h and src/fs_isa_impl.h).  cross_entropy's gradient
streams in rows of 32 KB or more (``kernel_info()``'s ``stream_grad_from``:
src/fs_config.h).  log_softmax rows short
enough for exact sums (``kernel_info()``'s ``blocked_log_sum_from``) never
stream.  The figures below are the AVX-512 kernels' on an Intel VM, before
the scratch rows above; docs/performance-log.md has this machine's and a Zen 4's since.

Why at most 96 MB: a large last-level cache is shared by many cores (and, in a
cloud VM, by other tenants), and one call gets a fraction of it.  On a 2-core
VM reporting 480 MB of L3, float32 (``benchmarks/`` measures it), streamed /
ordinary time on 1 thread was 1.12 for softmax at 32 x 50257 (13 MB of input
and output: still in the cache), 1.01 at 47 MB, 0.82 at 62 MB and 0.87-0.89
from 125 MB to 2 GB; for log_softmax, which has no exponentials to recompute,
1.00, 0.98, 0.73 and 0.68 there; for the cross-entropy loss and gradient 1.18
at 13 MB, 1.05 at 66 MB, 0.89 at 98 MB and 0.82-0.90 from 131 MB to 524 MB.
On 2 threads, whose working sets share the cache: softmax 1.15 at 47 MB, 1.33
at 67 MB (16384 x 512), 0.71 at 131 MB and 0.81-0.88 beyond; log_softmax 0.91,
1.07, 0.56 and 0.62-0.66.

Why three quarters: a cache shared with other cores (and tenants) does not
hold a call that is nearly its size.  On a 2-core Zen 4 VM reporting 32 MB of
L3 (whose loads ran at L3's pace up to 8 MB of data, at memory's from 32 MB),
float32, streamed / ordinary time, softmax, log_softmax and the loss and
gradient, rows of 512 and 32000 (``benchmarks/stream_offsets.py --calls 20``,
with and without ``--read-back``, which reads each result at once): at 12 MB
of input and output, read back, 1.15-1.35 on one thread and 1.37-1.72 on two;
at 16 MB, 0.68-1.06 alone but 1.23-1.48 read back on two threads; at 24 MB,
0.58-0.82 alone on one thread and 0.64-0.76 on two, read back 0.74-0.96 and
0.90-1.20 (rows of 512 that the gradient keeps in ordinary stores left out).
"""
from __future__ import annotations

import functools
import glob
import os

import numpy as np

from . import _core
from ._messages import configure_from_environment, shown
from ._typing import Count

__all__ = ["set_stream_threshold"]

ENVIRONMENT_VARIABLE = "FASTSOFTMAX_STREAM_MIN_BYTES"
MAX_DEFAULT_BYTES = 96 << 20     # the automatic threshold's cap (see above)


def _size_in_bytes(text: str) -> int:
    """sysfs's cache sizes: "32768K", "480M", "1G" or a plain number."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


@functools.lru_cache(maxsize=None)
def last_level_cache_bytes() -> int | None:
    """The size of this machine's largest data cache (the last level), or None if unknown."""
    sizes = []
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(index, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(index, "size")) as f:
                size = _size_in_bytes(f.read())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            sizes.append(size)
    if sizes:
        return max(sizes)
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if size > 0:
            return size
    return None


def default_threshold() -> int:
    """The automatic threshold: three quarters of the last-level cache, at most
    MAX_DEFAULT_BYTES (which an unknown cache gets)."""
    size = last_level_cache_bytes()
    return min(size * 3 // 4, MAX_DEFAULT_BYTES) if size else MAX_DEFAULT_BYTES


def set_stream_threshold(min_bytes: Count = None) -> None:
    """Choose from what size softmax, log_softmax and cross_entropy stream their output.

    A call whose input and output (cross_entropy: logits and gradient) take at
    least ``min_bytes`` together writes its output with streaming
    (non-temporal) stores, past the caches: the CPU then neither reads each
    output line from memory before writing it nor evicts the input to keep it.
    That saves a third of the memory traffic of an output far larger than the
    last-level cache, and costs a trip to memory when the result would have
    been read back from the cache.  Results are bitwise the same either way.
    In-place calls (``out=x``, ``grad_out=logits``) never stream, nor do rows
    that run one row per vector lane (of 32 or fewer elements, float64
    log_softmax's of 24 or fewer), log_softmax rows short enough for exact sums, or
    reductions over an axis other than the last, and only x86-64's vector
    kernels have such stores (``show_config`` says); below AVX-512, softmax
    rows that are masked and over 16 KB or longer than 16384 elements, and
    cross_entropy's gradient, keep ordinary stores, whose exponentials would
    otherwise be computed twice.

    Parameters
    ----------
    min_bytes : int or None, default None
        None: three quarters of this machine's last-level cache, at most 96 MB
        (a cache is shared between cores: see the README).  An int >= 0: that many bytes; ``0`` streams every
        call, ``sys.maxsize`` none.  At import, the environment variable
        ``FASTSOFTMAX_STREAM_MIN_BYTES`` sets it the same way.

    Raises
    ------
    TypeError
        For a ``min_bytes`` that is not an int or None.
    ValueError
        For a negative ``min_bytes``.

    Examples
    --------
    >>> import sys
    >>> import fastsoftmax
    >>> fastsoftmax.set_stream_threshold(sys.maxsize)  # never stream
    >>> fastsoftmax.set_stream_threshold(64 * 2**20)   # from 64 MB of input and output
    >>> fastsoftmax.set_stream_threshold()             # back to 3/4 of the cache
    """
    if min_bytes is None:
        _core.set_stream_min_bytes(default_threshold())
        return
    if isinstance(min_bytes, bool) or not isinstance(min_bytes, (int, np.integer)):
        raise TypeError(f"min_bytes must be an int or None, got {shown(min_bytes)}")
    if min_bytes < 0:
        raise ValueError(f"min_bytes must be >= 0 (0 streams every call), got {shown(min_bytes)}")
    _core.set_stream_min_bytes(min(int(min_bytes), int(np.iinfo(np.intp).max)))


# Where the last-level cache's size is unknown: that of a modest one.
UNKNOWN_CACHE_BYTES = 16 << 20


def _set_in_cache_bound() -> None:
    """Calls of at most half the last-level cache keep their rows cached (the kernels'
    FS_IN_CACHE, src/fs_kernels.h): long softmax rows are pipelined there whatever the
    stores.  Float32, one thread, on a Zen 4 with 32 MB of L3 (rows of 32000, old and
    new builds alternated, new / old time): 0.82-0.90 up to 16 MB of input and output, but
    1.04-1.06 at 25 MB, 1.5 at 33 MB and 1.14-1.18 in place from 33 MB on."""
    size = last_level_cache_bytes()
    _core.set_in_cache_max_bytes((size if size else UNKNOWN_CACHE_BYTES) // 2)


configure_from_environment(ENVIRONMENT_VARIABLE, set_stream_threshold,
                           "three quarters of the last-level cache")
_set_in_cache_bound()
