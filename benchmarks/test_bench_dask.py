"""fastsoftmax.dask against the same reduction in dask's own ops and SciPy on dask, same run.

One group per op (logsumexp, softmax) x chunking x scheduler, over one lazily generated float32
array, with three contenders:

  fastsoftmax_dask  fastsoftmax.dask.logsumexp / .softmax (the C kernels on each chunk);
  dask_ops          the reduction written with dask's own ops the numerically usual way:
                    m = x.max(-1, keepdims=True); m + log(exp(x - m).sum(-1, keepdims=True)),
                    and e = exp(x - m); e / e.sum(-1, keepdims=True) for softmax;
  scipy_dask        scipy.special.logsumexp / .softmax called on the dask array with
                    SCIPY_ARRAY_API=1 (checked to return a lazy dask array).

SciPy reads SCIPY_ARRAY_API once, at import, and the other benchmark files import SciPy without
it in the same pytest process, so scipy_dask runs in a child Python started with the variable
set: it builds the same array (same code, same seed), SciPy's graph on it, and computes it on
the same scheduler (its own threaded scheduler with the same number of workers while the parent
waits, or the parent's LocalCluster). Its time is the parent's round trip to the child (a few
bytes of JSON each way); the child's own timer is in extra_info["child_seconds"].

The array: shape (200000, 32000) float32 (25.6 GB) in chunks of 4096 rows, with the class axis
whole ("chunks 4096x32000") and split in 4 ("chunks 4096x8000"). Each block is a read-only view,
at a per-block offset, of one random vector made once per process (and per worker), so that
blocks differ but generating them costs nothing next to the reduction.

Every contender's output is brought down to something small in the same way: logsumexp is
computed into NumPy (one float per row); softmax is da.store()d into a sink that drops each
block (so the whole softmax is computed, block by block, without keeping 25 GB anywhere), and
the sink counts the elements it was given. Before timing, each contender's first and last rows
are computed and checked against NumPy in float64, and the timed logsumexp itself is checked on
those rows, so that a fast but wrong contender cannot win.

Scheduler: dask's threaded scheduler with one worker per core (os.cpu_count()), the same for all
contenders; fastsoftmax.dask runs its kernels single-threaded (n_threads=1), dask supplying the
parallelism. Add a distributed.LocalCluster (one single-threaded worker process per core) with
FASTSOFTMAX_DASK_BENCH_SCHEDULERS=threads,distributed.

Run the full size (about 6 minutes on 2 cores with the default 2 rounds, 3.5 with
FASTSOFTMAX_DASK_BENCH_ROUNDS=1; every call is a pass over 25.6 GB, so rounds are few, with no
warm-up round: the check before timing makes the random vector and starts the pools):

    python -m pytest benchmarks/test_bench_dask.py --benchmark-json=dask.json
    python benchmarks/report.py dask.json

Smoke test (CI): with --benchmark-disable every case runs once on (8192, 2048) in chunks of 1024
rows (and 1024x512), in a few seconds:

    python -m pytest benchmarks/test_bench_dask.py --benchmark-disable -q -p no:cacheprovider

Narrow with -k on the ids, scheduler-{classes_whole,classes_split4}-op-implementation ("softmax"
also matches every fastsoftmax_dask case: use e.g. -k "classes_split4 and not logsumexp").
Other sizes, in either mode: FASTSOFTMAX_DASK_BENCH_ROWS, FASTSOFTMAX_DASK_BENCH_CLASSES and
FASTSOFTMAX_DASK_BENCH_CHUNK_ROWS, e.g. FASTSOFTMAX_DASK_BENCH_ROWS=200000 for the issue's size
under --benchmark-disable, or FASTSOFTMAX_DASK_BENCH_ROWS=32768 for a shorter timed run.
Skipped when dask is not installed; the fastsoftmax_dask cases when fastsoftmax.dask is missing,
the scipy_dask ones when SciPy is missing, the distributed ones when distributed is.
"""

import importlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402  (after the skip: dask.array's import is the one that may fail)

from test_bench_ops import ATOL, RTOL, SEED, _import_or_skip, _np_logsumexp, _np_softmax  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ENV = "FASTSOFTMAX_DASK_BENCH_"
FULL = {"rows": 200_000, "classes": 32_000, "chunk_rows": 4096}  # the array: 25.6 GB
SMOKE = {"rows": 8192, "classes": 2048, "chunk_rows": 1024}  # --benchmark-disable: 64 MB
CLASS_CHUNKS = (1, 4)  # the class axis whole, and split in 4 chunks
OPS = ("logsumexp", "softmax")
IMPLEMENTATIONS = ("fastsoftmax_dask", "dask_ops", "scipy_dask")
SCHEDULERS = ("threads", "distributed")
DTYPE = np.dtype(np.float32)
WORKERS = os.cpu_count() or 1
REFERENCE = {"logsumexp": _np_logsumexp, "softmax": _np_softmax}

# Every block is a view of one random vector at an offset that is a multiple of 16 elements
# (64 bytes, so every block has the same alignment) below PAD.
PAD = 1 << 16


def _env_int(name, default):
    value = os.environ.get(ENV + name)
    return int(value) if value else default


def rounds():
    return max(1, _env_int("ROUNDS", 2))


def schedulers():
    names = os.environ.get(ENV + "SCHEDULERS", "threads").replace(",", " ").split()
    unknown = set(names) - set(SCHEDULERS)
    if unknown:
        raise ValueError(f"{ENV}SCHEDULERS: unknown {sorted(unknown)}, choose from {SCHEDULERS}")
    return names


def sizes(smoke):
    """(rows, classes, chunk_rows): the environment's, else the smoke or the full defaults."""
    default = SMOKE if smoke else FULL
    return tuple(_env_int(key.upper(), default[key]) for key in ("rows", "classes", "chunk_rows"))


# --- The lazily generated array ------------------------------------------------------------------
# Module-level functions only: the distributed workers unpickle them by reference (they import
# this module; spawned processes inherit pytest's sys.path, which holds benchmarks/).

_BASE = {}
_BASE_LOCK = threading.Lock()


def _base(n):
    """One read-only random vector of n + PAD float32 per process: the latest size only."""
    base = _BASE.get(n)
    if base is None:
        with _BASE_LOCK:
            base = _BASE.get(n)
            if base is None:
                _BASE.clear()  # free the previous size's vector first
                base = np.random.default_rng(SEED).standard_normal(n + PAD, dtype=np.float32)
                base.flags.writeable = False
                _BASE[n] = base
    return base


def _warm_base(n):
    _base(n)  # returns None: client.run would otherwise ship the vector back


def _block(base_size, n_col_blocks, block_id=None, block_info=None):
    rows, cols = block_info[None]["chunk-shape"]
    k = block_id[0] * n_col_blocks + block_id[1]
    offset = 16 * ((k * 7919) % (PAD // 16))
    return _base(base_size)[offset:offset + rows * cols].reshape(rows, cols)


def lazy_logits(rows, classes, chunk_rows, class_chunks):
    """(rows, classes) float32 dask array in chunk_rows-row chunks, the class axis in class_chunks."""
    chunks = da.core.normalize_chunks((chunk_rows, -(-classes // class_chunks)), (rows, classes))
    base_size = chunks[0][0] * classes  # the largest block, whatever the class split
    return da.map_blocks(
        _block, base_size, len(chunks[1]), chunks=chunks, dtype=DTYPE, meta=np.empty((0, 0), DTYPE),
        name=f"logits-{rows}x{classes}-{chunks[0][0]}x{chunks[1][0]}")


def base_size(x):
    return x.chunks[0][0] * x.shape[1]


# --- Contenders and how their results are brought down -----------------------------------------


def _fastsoftmax_dask(op, x):
    fsd = _import_or_skip("fastsoftmax.dask")
    return getattr(fsd, op)(x, axis=-1, n_threads=1)  # (the default: dask runs a task per core)


def _dask_ops(op, x):
    m = x.max(axis=-1, keepdims=True)
    if op == "logsumexp":
        return (m + da.log(da.exp(x - m).sum(axis=-1, keepdims=True)))[:, 0]
    e = da.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def _scipy_dask(op, x):
    special = importlib.import_module("scipy.special")  # in the SCIPY_ARRAY_API=1 child only
    return getattr(special, op)(x, axis=-1)


class Sink:
    """A da.store() target that drops every block, counting the elements it was given."""

    def __init__(self):
        self.sizes = []  # list.append is atomic under the GIL: safe from the scheduler's threads

    def __setitem__(self, key, value):
        self.sizes.append(value.size)

    @property
    def stored(self):
        return sum(self.sizes)


def compute_kwargs(scheduler):
    """dask.compute keywords: the threaded scheduler with one worker per core, or a Client."""
    if isinstance(scheduler, str) and scheduler == "threads":
        return {"scheduler": "threads", "num_workers": WORKERS}
    return {"scheduler": scheduler}  # a distributed.Client


def finisher(op, result, scheduler):
    """A zero-argument call that computes result, brought down the same way for every contender."""
    kwargs = compute_kwargs(scheduler)
    if op == "logsumexp":
        return lambda: dask.compute(result, **kwargs)[0]

    def store():
        sink = Sink()
        da.store(result, sink, lock=False, **kwargs)
        return sink

    return store


def edge_rows(result, scheduler):
    """The first and last rows of a lazy result, computed (only their blocks are)."""
    return dask.compute(da.concatenate([result[:1], result[-1:]]), **compute_kwargs(scheduler))[0]


# --- The SCIPY_ARRAY_API=1 child -------------------------------------------------------------------

_MARK = "@@fastsoftmax-dask-bench@@"
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "import test_bench_dask; test_bench_dask._serve_scipy_child()"
)


def _child_handle(msg, state):
    if msg["cmd"] == "prepare":
        try:
            import scipy
            import scipy.special  # noqa: F401
        except ImportError as exc:
            return {"skip": f"cannot import scipy.special: {exc}"}
        try:  # what SciPy read at import (private: informative only, laziness is the test)
            SCIPY_ARRAY_API = importlib.import_module("scipy._lib._array_api").SCIPY_ARRAY_API
        except (ImportError, AttributeError):
            SCIPY_ARRAY_API = None

        scheduler = msg["scheduler"]
        if scheduler != "threads":
            from distributed import Client

            if scheduler not in state:
                state[scheduler] = Client(scheduler, set_as_default=False)
            scheduler = state[scheduler]
        x = lazy_logits(msg["rows"], msg["classes"], msg["chunk_rows"], msg["class_chunks"])
        result = _scipy_dask(msg["op"], x)
        if not isinstance(result, da.Array):
            return {"error": f"scipy.special.{msg['op']} on a dask array returned {type(result)!r}, "
                             f"not a lazy dask array (SCIPY_ARRAY_API={os.environ.get('SCIPY_ARRAY_API')!r}, "
                             f"scipy sees {SCIPY_ARRAY_API!r})"}
        state["op"], state["run"] = msg["op"], finisher(msg["op"], result, scheduler)
        state["local"] = msg["scheduler"] == "threads"  # the sink is in this process
        return {"rows": edge_rows(result, scheduler).tolist(), "scipy": scipy.__version__,
                "array_api": SCIPY_ARRAY_API, "result_type": f"{type(result).__module__}.{type(result).__name__}",
                "shape": list(result.shape), "tasks": len(result.__dask_graph__())}
    if msg["cmd"] == "run":
        start = time.perf_counter()
        out = state["run"]()
        seconds = time.perf_counter() - start
        if state["op"] == "logsumexp":
            return {"seconds": seconds, "shape": list(out.shape), "rows": out[[0, -1]].tolist()}
        return {"seconds": seconds, "stored": out.stored if state["local"] else None}
    return {"error": f"unknown command {msg['cmd']!r}"}


def _serve_scipy_child():
    replies, sys.stdout = sys.stdout, sys.stderr  # stray prints go to stderr, not into the replies
    state = {}
    for line in sys.stdin:
        try:
            reply = _child_handle(json.loads(line), state)
        except Exception:
            reply = {"error": traceback.format_exc()}
        replies.write(_MARK + json.dumps(reply) + "\n")
        replies.flush()


class ScipyChild:
    def __init__(self):
        env = {**os.environ, "SCIPY_ARRAY_API": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(BENCH_DIR)], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def request(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(_MARK):
                reply = json.loads(line[len(_MARK):])
                break
        else:
            raise RuntimeError(f"the SCIPY_ARRAY_API=1 child exited ({self.proc.wait()}); see its stderr")
        if "skip" in reply:
            pytest.skip(reply["skip"])
        if "error" in reply:
            raise RuntimeError(f"in the SCIPY_ARRAY_API=1 child:\n{reply['error']}")
        return reply

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def scipy_child():
    child = ScipyChild()
    yield child
    child.close()


@pytest.fixture(scope="module")
def distributed_client():
    distributed = _import_or_skip("distributed")
    # SCIPY_ARRAY_API=1 in the workers too, as in the child that builds SciPy's graph (the other
    # contenders' tasks do not touch SciPy).
    cluster = distributed.LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None,
        env={"SCIPY_ARRAY_API": "1"})
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


# --- The benchmark ---------------------------------------------------------------------------------


def _check_rows(got, expected_rows):
    """Loose tolerances, as test_bench_ops: tests/ holds the accuracy contract."""
    np.testing.assert_allclose(np.asarray(got), expected_rows, rtol=RTOL[DTYPE.name], atol=ATOL[DTYPE.name])


def _case_id(case):
    scheduler, class_chunks, op, implementation = case
    split = "classes_whole" if class_chunks == 1 else f"classes_split{class_chunks}"
    return f"{scheduler}-{split}-{op}-{implementation}"


CASES = [(s, c, op, i) for s in SCHEDULERS for c in CLASS_CHUNKS for op in OPS for i in IMPLEMENTATIONS]


@pytest.mark.parametrize("scheduler, class_chunks, op, implementation", CASES,
                         ids=[_case_id(case) for case in CASES])
def test_dask(benchmark, request, scheduler, class_chunks, op, implementation):
    if scheduler not in schedulers():
        pytest.skip(f"scheduler {scheduler!r} not in {ENV}SCHEDULERS (default: threads)")
    smoke = benchmark.disabled
    rows, classes, chunk_rows = sizes(smoke)
    x = lazy_logits(rows, classes, chunk_rows, class_chunks)
    client = request.getfixturevalue("distributed_client") if scheduler == "distributed" else None
    sched = client or "threads"
    if client is not None:
        client.run(_warm_base, base_size(x))  # every worker makes its random vector now, untimed
    chunk = f"{x.chunks[0][0]}x{x.chunks[1][0]}"
    benchmark.group = f"dask {op} {rows}x{classes} float32 chunks {chunk} {scheduler}"
    n_rounds = 1 if smoke else rounds()
    benchmark.extra_info.update(
        implementation=implementation, op=op, workload=f"dask-{scheduler} chunks {chunk}",
        shape=[rows, classes], dtype=DTYPE.name, chunks=[x.chunks[0][0], x.chunks[1][0]],
        numblocks=list(x.numblocks), scheduler=scheduler, workers=WORKERS,
        threads_per_worker=1, rounds=n_rounds, smoke=smoke,
        bytes_read=x.nbytes, bytes_written=rows * DTYPE.itemsize if op == "logsumexp" else x.nbytes)

    # NumPy in float64 on the input's first and last rows: what every contender must match.
    x_edges = edge_rows(x, sched).astype(np.float64)
    expected = REFERENCE[op](x_edges)

    if implementation == "scipy_dask":
        child = request.getfixturevalue("scipy_child")
        info = child.request(cmd="prepare", op=op, rows=rows, classes=classes, chunk_rows=chunk_rows,
                             class_chunks=class_chunks,
                             scheduler="threads" if client is None else client.scheduler.address)
        assert info["result_type"] == "dask.array.core.Array", info  # lazy, not computed by SciPy
        assert tuple(info["shape"]) == (x.shape[:1] if op == "logsumexp" else x.shape), info
        _check_rows(info["rows"], expected)
        benchmark.extra_info.update(
            scipy=info["scipy"], scipy_array_api=info["array_api"], lazy=True, graph_tasks=info["tasks"],
            timing="round trip to a child Python with SCIPY_ARRAY_API=1 that builds and computes "
                   "SciPy's graph on the same array and scheduler; its own times in child_seconds")
        child_seconds = []

        def call():
            reply = child.request(cmd="run")
            child_seconds.append(reply["seconds"])
            return reply
    else:
        build = _fastsoftmax_dask if implementation == "fastsoftmax_dask" else _dask_ops
        result = build(op, x)
        assert isinstance(result, da.Array), type(result)
        assert result.shape == (x.shape[:1] if op == "logsumexp" else x.shape)
        benchmark.extra_info.update(lazy=True, graph_tasks=len(result.__dask_graph__()))
        if implementation == "fastsoftmax_dask":
            benchmark.extra_info["n_threads"] = 1
        _check_rows(edge_rows(result, sched), expected)
        call = finisher(op, result, sched)

    out = benchmark.pedantic(call, rounds=n_rounds, iterations=1, warmup_rounds=0)

    if implementation == "scipy_dask":
        benchmark.extra_info["child_seconds"] = child_seconds
        if op == "logsumexp":
            assert tuple(out["shape"]) == x.shape[:1]
            _check_rows(out["rows"], expected)
        elif client is None:
            assert out["stored"] == x.size
    elif op == "logsumexp":  # the timed result itself, on the checked rows
        assert out.shape == x.shape[:1]
        _check_rows(out[[0, -1]], expected)
    elif client is None:  # the sink lives in this process: it saw every element
        assert out.stored == x.size
