"""The thread policy: how many threads a call runs on, and when it must run on one.

Every call's thread count is decided here, by :func:`resolve_threads`, from the
call's ``n_threads``, the settings (:func:`set_num_threads` process-wide,
:func:`num_threads` for a block of code in the current thread or async task,
OpenMP's own maximum, which ``OMP_NUM_THREADS`` and threadpoolctl set) and
three rules:

- **The CPU quota.**  Unless ``OMP_NUM_THREADS`` sets a count, OpenMP's maximum is
  capped by the CPUs this process may use (:data:`_CPU_LIMIT`: the cgroup's CPU
  bandwidth limit, the affinity mask, ``os.process_cpu_count()``), as
  scikit-learn's ``_openmp_effective_n_threads`` does: a container limited to
  2 CPUs on a 64-core host runs 2 threads, not 64 time-sliced onto 2 CPUs.

- **Bounds.**  A count above :data:`MAX_THREADS` is refused with a ValueError:
  libgomp would try to start that many threads and abort the whole process
  when it cannot ("Out of memory allocating ...").  OpenMP's own maximum is
  capped at the same number.
- **Fork** (the OpenMP executor only).  libgomp keeps its thread pool in the
  master thread's thread-local state.  A child made by ``fork()`` (without
  exec) inherits that state but not the pool's threads, and its first parallel
  region waits for them forever (GCC bug 60035).  So where the calls run in
  OpenMP regions (``_core.executor() == "openmp"``: builds without POSIX
  threads), every call runs on one thread in a process whose OpenMP runtime
  may hold such a stale pool (see :func:`_before_fork` and
  :func:`_forked_from_a_process_with_openmp`).  fastsoftmax's own executor
  (``"pthreads"``, src/fs_pool.h) opens no OpenMP region and starts a fork
  child with an empty pool of its own, so there the rule does not apply: a
  fork child keeps its threads.

The count is carried out by the executor (src/fs_pool.h); OpenMP supplies only
its settings (``omp_get_max_threads``).
"""
from __future__ import annotations

import contextlib
import contextvars
import enum
import math
import os
import re
import sys
from typing import Iterator, Optional, Union

import numpy as np

from . import _core
from ._messages import shown
from ._typing import Count

__all__ = ["get_num_threads", "set_num_threads", "num_threads"]

# Below this many elements one thread is faster than handing parts to other
# threads (a few microseconds).  Measured on 2 cores, float32 softmax in rows of
# 256 with out=, with OpenMP regions on a quiet machine: 1 vs 2 threads 6.9 vs
# 8.3 us at 4096 elements, 10.6 vs 9.8 at 8192, 18.0 vs 14.7 at 16384, 34.5 vs
# 22.6 at 32768.  Re-measured with the executor (src/fs_pool.h) on the same
# machine kept at a load of about 5 by other users (min of 15 runs; 1 thread /
# the executor / OpenMP regions): 6.9 / 7.4 / 9.9 us at 4096, 11.9 / 13.2 / 13.2
# at 16384, 30.8 / 32.3 / 24.6 at 65536; with two more busy processes 6.4 / 7.0 /
# 9.5 at 4096, 11.8 / 12.9 / 12.0 at 16384.  Under such load a second thread
# gains nothing below 64k elements whatever runs it, and the executor's calls
# cost at most ~1.3 us more than one thread's, so the threshold stays where the
# quiet measurement put it.
PARALLEL_MIN_ELEMENTS = 1 << 14

# The most threads a call may use: 4 per CPU (oversubscription is legitimate,
# e.g. to test), and at least 64 so that a count that works on a large machine
# still works on a small one.  What it guards against is 2**31 - 1.
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))

_OPENMP = _core.openmp_enabled()
# Whether calls run in OpenMP parallel regions, which a stale libgomp pool hangs (the fork
# rule); fastsoftmax's own executor ("pthreads") opens none.
_OPENMP_REGIONS = _core.executor() == "openmp"


# ---------------------------------------------------------------- the CPU quota

_CGROUP_ROOT = "/sys/fs/cgroup"


def _read_text(path: str) -> Optional[str]:
    """The text of a small kernel file (cgroup, /proc), or None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _cgroup_v2_dirs() -> list[str]:
    """This process's cgroup v2 directory and its ancestors' (a limit on any of them applies)."""
    path = "/"
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            path = os.path.normpath(line[3:].strip() or "/")
    dirs = []
    while True:
        dirs.append(os.path.join(_CGROUP_ROOT, path.lstrip("/")).rstrip("/") or "/")
        if path in ("/", "", "."):
            return dirs
        path = os.path.dirname(path)


def _cgroup_cpu_limit() -> Optional[float]:
    """The CPUs the cgroup's bandwidth limit allows (quota / period), or None for none.

    cgroup v2: ``cpu.max`` ("max 100000", or "<quota> <period>") in this
    process's cgroup and every ancestor (in a container with its own cgroup
    namespace, ``/sys/fs/cgroup`` itself).  cgroup v1: ``cpu.cfs_quota_us``
    (-1 for no limit) over ``cpu.cfs_period_us``.  The smallest limit wins.
    """
    limits = []
    for directory in _cgroup_v2_dirs():
        fields = (_read_text(os.path.join(directory, "cpu.max")) or "").split()
        if len(fields) == 2 and fields[0] != "max":
            limits.append((fields[0], fields[1]))
    for v1 in ("cpu", "cpu,cpuacct"):
        quota = _read_text(os.path.join(_CGROUP_ROOT, v1, "cpu.cfs_quota_us"))
        period = _read_text(os.path.join(_CGROUP_ROOT, v1, "cpu.cfs_period_us"))
        if quota is not None and period is not None:
            limits.append((quota.strip(), period.strip()))
    cpus = []
    for quota, period in limits:
        try:
            q, p = int(quota), int(period)
        except ValueError:
            continue
        if q > 0 and p > 0:
            cpus.append(q / p)
    return min(cpus) if cpus else None


def _cpu_limit() -> int:
    """The most CPUs this process may run on at once: at least 1.

    The smallest of ``os.cpu_count()``, the affinity mask
    (``os.sched_getaffinity``), ``os.process_cpu_count()`` (Python 3.13+) and
    the cgroup's CPU quota rounded up (1.5 CPUs of quota: 2 threads), as
    joblib/loky count for scikit-learn.
    """
    counts = [os.cpu_count() or 1]
    if hasattr(os, "sched_getaffinity"):
        try:
            counts.append(len(os.sched_getaffinity(0)))
        except OSError:
            pass
    if sys.version_info >= (3, 13):
        counts.append(os.process_cpu_count() or counts[0])
    quota = _cgroup_cpu_limit()
    if quota is not None:
        counts.append(math.ceil(quota))
    return max(1, min(counts))


# The CPUs this process may use, read once at import (a few small file reads).
_CPU_LIMIT = _cpu_limit()


def _sets_thread_count(value: str | None) -> bool:
    """Whether libgomp takes ``OMP_NUM_THREADS=value`` as a thread count: a comma-separated
    list of decimal integers from 1 to 2**63 - 1 (one per nesting level), blanks around
    each.  Anything else it ignores, with a warning, and uses every CPU it sees: no choice
    of the user's."""
    if value is None:
        return False
    items = value.split(",")
    return all(re.fullmatch(r"\s*\+?\d+\s*", item, re.ASCII) and 1 <= int(item) < 2**63
               for item in items)


# An OMP_NUM_THREADS set in the environment is the user's explicit choice and
# may exceed the quota (libgomp reads it once, when it loads, too).
_OMP_NUM_THREADS_SET = _sets_thread_count(os.environ.get("OMP_NUM_THREADS"))


def _as_c_int(value: int) -> int:
    """value cut to a C int, as omp_get_max_threads() returns libgomp's unsigned long."""
    return (value + 2**31) % 2**32 - 2**31


# What omp_get_max_threads() returns for an OMP_NUM_THREADS of 2**31 or more: its count
# cut to an int (2**31 is negative, 2**32 is 0, 2**32 + 5 is 5), which stands for a count
# above any cap (None where the count fits an int).
_OMP_FIRST_COUNT = int(os.environ["OMP_NUM_THREADS"].split(",")[0]) if _OMP_NUM_THREADS_SET else 0
_OMP_NUM_THREADS_CUT = _as_c_int(_OMP_FIRST_COUNT) if _OMP_FIRST_COUNT >= 2**31 else None
# The cap on OpenMP's maximum for n_threads=None and negative counts.
_AUTOMATIC_CAP = MAX_THREADS if _OMP_NUM_THREADS_SET else min(_CPU_LIMIT, MAX_THREADS)


# ---------------------------------------------------------------- fork safety

def _mapping_at(pid: int | str, address: int) -> tuple[str, ...] | None:
    """(offset, device, inode) of process ``pid``'s memory mapping that starts at ``address``."""
    prefix = f"{address:08x}-"
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                if line.startswith(prefix):
                    return tuple(line.split()[2:5])
    except OSError:  # not Linux, the parent has exited, or it belongs to another user
        return None
    return None


def _forked_from_a_process_with_openmp() -> bool:
    """Whether this process is a fork child (no exec) of one that had our OpenMP runtime loaded.

    Asked once, when fastsoftmax is imported, for the case the at-fork hook
    cannot see: another library (PyTorch shares libgomp.so.1 with us) ran
    OpenMP threads, the process forked, and the child imports fastsoftmax.
    A fork child's memory is a copy of its parent's, so the runtime sits at
    the same address, from the same file, in both; a process that exec'd has
    its own randomized layout.  We cannot see whether the parent's pool ever
    had threads, so this assumes it may have (one thread, never a hang).
    """
    runtime = _core.openmp_runtime() if _OPENMP else None
    if runtime is None:
        return False
    here = _mapping_at("self", runtime[1])
    return here is not None and here == _mapping_at(os.getppid(), runtime[1])


# True where a parallel region may wait forever for a stale pool's threads: then
# every call runs on one thread if calls open OpenMP regions (_OPENMP_REGIONS).
# Inherited by this process's own children.
_pool_may_be_stale = _OPENMP_REGIONS and _forked_from_a_process_with_openmp()
# True once a call of this process ran on more than one thread.
_ran_parallel = False


# Set just before each fork, in the parent: whether its OpenMP runtime may have
# a thread pool that the child would inherit without the threads.
_pool_at_fork = False


def _before_fork() -> None:
    """In the parent, just before a fork: may the OpenMP runtime have a pool of threads?

    It may if fastsoftmax ran a call on several threads, or if another loaded
    library links the same runtime (it may have started threads that
    fastsoftmax never saw; unknown counts as yes).  Asked here, in the parent,
    because the answer walks the loaded objects under the dynamic loader's
    lock, which a thread that vanished in the fork could hold in the child.
    """
    global _pool_at_fork
    _pool_at_fork = _OPENMP_REGIONS and (_pool_may_be_stale or _ran_parallel
                                         or _core.openmp_runtime_users() != 0)


def _after_fork_in_child() -> None:
    """In a fork child: one thread from now on if the parent's runtime may have had a pool.

    A child whose parent never started OpenMP threads, such as a forkserver
    child (``multiprocessing``'s default from Python 3.14), keeps its threads.
    """
    global _pool_may_be_stale
    _pool_may_be_stale = _pool_at_fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------- settings

class _Unset(enum.Enum):
    UNSET = 0


# The process-wide count set by set_num_threads (None: OpenMP's maximum).
_default_threads: int | None = None
# The count of an enclosing ``with num_threads(k):`` block, in this thread or
# async task only (a context variable: a block in one thread never leaks into
# another, whatever order the blocks exit in).
_scoped_threads: contextvars.ContextVar[Union[int, None, _Unset]] = contextvars.ContextVar(
    "fastsoftmax_num_threads", default=_Unset.UNSET)


def _check_count(n: object, name: str) -> int:
    """``n`` as a thread count in [1, MAX_THREADS]; TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int or None, got {n!r}")
    if n < 1:
        raise ValueError(f"{name} must be a positive int or None, got {shown(n)}")
    if n > MAX_THREADS:
        raise ValueError(f"{name}={shown(n)} is more threads than allowed: at most "
                         f"MAX_THREADS = {MAX_THREADS} (4 per CPU, at least 64)")
    return int(n)


def _openmp_maximum() -> int:
    """OpenMP's maximum for the calling thread (OMP_NUM_THREADS, threadpoolctl), capped.

    Capped by the CPU quota unless OMP_NUM_THREADS is set, and by MAX_THREADS.
    """
    maximum = _core.max_threads()
    if maximum == _OMP_NUM_THREADS_CUT:  # (unless threadpoolctl has set another since)
        return _AUTOMATIC_CAP
    return min(max(1, maximum), _AUTOMATIC_CAP)


def get_num_threads() -> int:
    """Number of threads a call with ``n_threads=None`` may use.

    The count of an enclosing :func:`num_threads` block in this thread if
    any, else the count given to :func:`set_num_threads`, else OpenMP's
    maximum thread count, so it follows ``OMP_NUM_THREADS`` and
    ``threadpoolctl.threadpool_limits``, capped by the CPUs the process may
    use (its cgroup's CPU quota, its affinity mask) unless ``OMP_NUM_THREADS``
    is set.  It is 1 in a build without OpenMP and, where the calls run in
    OpenMP regions, in a forked child whose OpenMP runtime may be unusable
    (see Notes).

    Returns
    -------
    int
        The thread count, between 1 and ``MAX_THREADS``.

    Notes
    -----
    Small inputs (fewer than ``PARALLEL_MIN_ELEMENTS`` elements) always run on
    one thread, whatever this returns, since waking threads would cost more
    than the work.  The threads are fastsoftmax's own pool; in a build whose
    threads are OpenMP regions instead (no POSIX threads), libgomp hangs in a
    forked child that opens a parallel region after its parent did (GCC bug
    60035), so such a child runs every call on one thread; the README's
    Threads section says how it is detected.
    OpenMP's maximum is per thread in libgomp: a threadpoolctl limit set in
    one Python thread does not apply to calls made from another.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    if _pool_may_be_stale or not _OPENMP:
        return 1
    scoped = _scoped_threads.get()
    n = _default_threads if scoped is _Unset.UNSET else scoped
    return _openmp_maximum() if n is None else n


def set_num_threads(n: Count) -> None:
    """Set the thread count of every later call made with ``n_threads=None``.

    For code that does not use threadpoolctl.  The setting is process-wide
    (all Python threads) and takes precedence over ``OMP_NUM_THREADS`` and
    threadpoolctl's limits; a :func:`num_threads` block and an explicit
    ``n_threads=`` still win over it.

    Parameters
    ----------
    n : int or None
        A thread count from 1 to ``MAX_THREADS`` (4 per CPU, at least 64), or
        None to follow OpenMP's maximum again.

    Raises
    ------
    TypeError
        If ``n`` is not an int or None.
    ValueError
        If ``n`` is not positive or is above ``MAX_THREADS``.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.set_num_threads(1)
    >>> fastsoftmax.get_num_threads()
    1
    >>> fastsoftmax.set_num_threads(None)
    """
    global _default_threads
    _default_threads = None if n is None else _check_count(n, "n")


@contextlib.contextmanager
def num_threads(n: Count) -> Iterator[None]:
    """Context manager: calls inside the block use ``n`` threads, in this thread only.

    The setting belongs to the current thread (or async task): other threads
    keep theirs, and blocks in several threads may open and close in any
    order.  A thread started inside the block does not inherit it (use
    :func:`set_num_threads` for a process-wide count).

    Parameters
    ----------
    n : int or None
        As in :func:`set_num_threads`; None follows OpenMP's maximum inside
        the block, whatever :func:`set_num_threads` says.

    Returns
    -------
    contextlib.AbstractContextManager
        Sets the count on entry and restores the previous one on exit, also
        when the block raises.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax
    >>> with fastsoftmax.num_threads(1):
    ...     p = fastsoftmax.softmax(np.zeros((1000, 1000)))
    """
    token = _scoped_threads.set(None if n is None else _check_count(n, "n"))
    try:
        yield
    finally:
        _scoped_threads.reset(token)


def resolve_threads(n_threads: Count, size: int) -> int:
    """The exact thread count for a call's ``n_threads`` over ``size`` elements.

    Raises TypeError/ValueError for a bad ``n_threads``: not an int, 0, or
    more than ``MAX_THREADS`` either way.
    """
    global _ran_parallel
    if n_threads is None:
        if size < PARALLEL_MIN_ELEMENTS:
            return 1
        threads = get_num_threads()
    else:
        if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
            raise TypeError(f"n_threads must be an int or None, got {n_threads!r}")
        n = int(n_threads)
        if n == 0:
            raise ValueError("n_threads must be nonzero: a positive count, or negative to count "
                             "back from the maximum (-1 = all threads); got 0")
        if abs(n) > MAX_THREADS:
            raise ValueError(f"n_threads={shown(n)} is more threads than allowed: at most "
                             f"MAX_THREADS = {MAX_THREADS} (4 per CPU, at least 64), "
                             f"or as many below -1")
        if _pool_may_be_stale or not _OPENMP:
            return 1
        threads = n if n > 0 else max(1, _openmp_maximum() + 1 + n)
    if threads > 1:
        _ran_parallel = True
    return threads
