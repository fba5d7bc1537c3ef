"""``show_config``: how this build runs on this machine."""
from __future__ import annotations

import sys
from typing import TextIO

from . import _core
from ._threads import get_num_threads
from ._version import __version__

__all__ = ["show_config"]


def show_config(file: TextIO | None = None) -> None:
    """Print how this build of fastsoftmax runs on this machine.

    Prints the version, the instruction set whose kernels were chosen for
    this CPU (``avx512``, ``avx2``, ``baseline`` = SSE2/NEON, or ``scalar``),
    the others available, whether OpenMP is enabled (its settings, such as
    ``OMP_NUM_THREADS``, give the default thread count), the executor that
    runs the threads (``pthreads``: fastsoftmax's own pool; see the README's
    Threads section), the default thread count, the output pool's bound
    (:func:`set_output_pool`), and from what size softmax and log_softmax
    stream their output past the caches (:func:`set_stream_threshold`).

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
      executor: pthreads (1 worker started)
      threads:  2
      output pool: at most 256 MB or two results (0 MB idle in 0 blocks)
      streaming stores: from 96 MB of input and output
    """
    file = sys.stdout if file is None else file
    print(f"fastsoftmax {__version__}", file=file)
    print(f"  kernels:  {_core.isa()} (available: {' '.join(_core.available_isas())})", file=file)
    print(f"  OpenMP:   {'enabled' if _core.openmp_enabled() else 'disabled (single-threaded build)'}",
          file=file)
    workers = _core.pool_workers()
    print(f"  executor: {_core.executor()} ({workers} worker{'' if workers == 1 else 's'} started)",
          file=file)
    print(f"  threads:  {get_num_threads()}", file=file)
    idle, blocks, bound, keeps_two = _core.pool_state()
    kept = (f"at most {bound / 2**20:g} MB" + (" or two results" if keeps_two else "")
            if bound or keeps_two else "off")
    print(f"  output pool: {kept} ({idle / 2**20:g} MB idle in {blocks} blocks)", file=file)
    bound = _core.stream_min_bytes()
    streams = ("none in these kernels" if not _core.can_stream() else "off" if bound >= sys.maxsize
               else f"from {bound / 2**20:g} MB of input and output")
    if _core.can_stream() and bound < sys.maxsize:
        row_mb = _core.kernel_info()[_core.isa()]["float32"]["stream_row_scratch"] * 4 / 2**20
        streams += (f" (not softmax rows nor cross_entropy's gradient rows over {row_mb:g} MB"
                    + ("" if _core.stream_recomputes() else ", nor those split across threads")
                    + ")")
    print(f"  streaming stores: {streams}", file=file)

