#!/usr/bin/env python
"""Bounded memory, measured: fastsoftmax.dask over logits larger than the workers' memory.

A distributed.LocalCluster of worker processes, each with a memory_limit (default 2 workers x 1
thread x 1 GB), computes over a lazily generated float32 array several times larger than their
combined limit (default 65536 x 32000 = 8.4 GB, in chunks of 1024 rows = 131 MB):

  1. logsumexp: fastsoftmax.dask.logsumexp(x) over every row, brought down to its mean;
  2. cross_entropy: fastsoftmax.dask.cross_entropy(x, labels), reduction="mean".

and, unless --no-full-check, the same means with fastsoftmax's NumPy functions called on each
chunk directly (the check below, measured the same way: the per-chunk yardstick).

For each it reports the wall time and every worker's peak resident memory (the kernel's VmHWM,
reset before each computation through /proc/self/clear_refs; without that, ru_maxrss since the
worker started), and the bytes the workers spilled to disk (the cumulative "disk-write" bytes of
each worker's SpillBuffer). Spilling is left on, with distributed's default thresholds, so that
this measures rather than forbids it. It prints a Markdown table, and exits 1 if a worker's
peak exceeded the memory_limit, anything was spilled, a worker was restarted, or a result
is wrong.

Results are checked: the first chunk's rows of logsumexp and their cross-entropy against
fastsoftmax's NumPy functions on that chunk in this process, and (unless --no-full-check) the
whole mean logsumexp and mean cross-entropy against that third pass (each chunk holds whole rows,
so calling the NumPy functions on each chunk is the direct computation).

The array: each chunk is a fresh array (its own 131 MB, as if read from disk), gathered from the
rows of one small random block that each worker makes once (251 rows, 32 MB at 32000 classes)
in an order that differs per chunk; the labels are generated per chunk from a seed.

    python benchmarks/dask_memory.py                    # 8.4 GB of logits, 2 workers x 1 GB
    python benchmarks/dask_memory.py --rows 16384       # 2.1 GB: a quicker look
    python benchmarks/dask_memory.py --workers 2 --threads-per-worker 1 --memory-limit 1GB \\
        --rows 65536 --classes 32000 --chunk-rows 1024 --n-threads 1

Needs dask[distributed] and psutil (a dependency of distributed). The default run takes about
half a minute on 2 cores (three passes over the 8.4 GB).
"""

import argparse
import os
import sys
import time
import traceback

import numpy as np

SEED = 20240601
CHECK = "check: the NumPy functions chunk by chunk"
BASE_ROWS = 251  # rows of the random block every chunk's rows are drawn from (a prime)

# --- The lazily generated inputs ---------------------------------------------------------------
# Run as a script, this file imports itself as `dask_memory` (see the bottom), so that the workers
# unpickle these functions by reference, with the cache below living in each worker's module.

_BASE = {}


def _base(classes):
    base = _BASE.get(classes)
    if base is None:
        _BASE.clear()
        base = np.random.default_rng(SEED).standard_normal((BASE_ROWS, classes), dtype=np.float32)
        base.flags.writeable = False
        _BASE[classes] = base
    return base


def _logits_block(classes, block_info=None):
    (start, stop), _ = block_info[None]["array-location"]
    rows = (np.arange(start, stop) * 37 + start // 7) % BASE_ROWS
    return _base(classes).take(rows, axis=0)  # a new (stop - start, classes) array


def _labels_block(classes, block_info=None):
    (start, stop), = block_info[None]["array-location"]
    return np.random.default_rng([SEED, start]).integers(0, classes, stop - start, dtype=np.int64)


def lazy_inputs(rows, classes, chunk_rows):
    import dask.array as da

    x = da.map_blocks(_logits_block, classes, chunks=((chunk_rows,) * (rows // chunk_rows)
                                                      + ((rows % chunk_rows,) if rows % chunk_rows else ()),
                                                      (classes,)),
                      dtype=np.float32, meta=np.empty((0, 0), np.float32),
                      name=f"logits-{rows}x{classes}-{chunk_rows}")
    labels = da.map_blocks(_labels_block, classes, chunks=(x.chunks[0],), dtype=np.int64,
                           meta=np.empty((0,), np.int64), name=f"labels-{rows}-{classes}-{chunk_rows}")
    return x, labels


# --- Worker-side probes (run through client.run) -------------------------------------------------


def _vm_hwm():
    """Peak resident set size in bytes: VmHWM, or ru_maxrss where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _warm(classes):
    import fastsoftmax.dask  # noqa: F401  (imported now, not in the first timed task)

    _base(classes)
    return os.getpid()


def _spilled(dask_worker):
    """Cumulative bytes (and count) this worker wrote to disk when spilling, and what is there now."""
    data = dask_worker.data
    metrics = getattr(data, "cumulative_metrics", {})
    now = getattr(data, "spilled_total", None)
    return {"written": int(metrics.get(("disk-write", "bytes"), 0)),
            "writes": int(metrics.get(("disk-write", "count"), 0)),
            "on_disk": int(now.disk) if now is not None else 0,
            "spill_buffer": type(data).__name__}


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


# --- Direct per-chunk computation (the full check) -------------------------------------------------


def _direct_chunk(block, labels, n_threads=1):
    labels = labels[:, 0]  # (rows, 1): aligned with the logits by map_blocks
    import fastsoftmax as fs

    lse = fs.logsumexp(block, n_threads=n_threads)
    ce = fs.cross_entropy(block, labels, reduction="sum", n_threads=n_threads)
    return np.array([[float(np.sum(lse, dtype=np.float64)), float(ce)]])


# --- The run ---------------------------------------------------------------------------------------


def fmt_bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--rows", type=int, default=65536, help="rows of logits (default 65536)")
    p.add_argument("--classes", type=int, default=32000, help="classes per row (default 32000)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="rows per chunk (default 1024)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads per worker (default 1)")
    p.add_argument("--memory-limit", default="1GB", help="memory_limit of each worker (default 1GB)")
    p.add_argument("--n-threads", type=int, default=1,
                   help="fastsoftmax's OpenMP threads per task (default 1)")
    p.add_argument("--no-full-check", action="store_true",
                   help="skip the extra pass that checks the whole means chunk by chunk")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import dask
    import dask.array as da
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    import fastsoftmax as fs
    import fastsoftmax.dask as fsd

    limit = parse_bytes(args.memory_limit)
    x, labels = lazy_inputs(args.rows, args.classes, args.chunk_rows)
    print(f"logits {args.rows}x{args.classes} float32 = {fmt_bytes(x.nbytes)} in {x.numblocks[0]} chunks of "
          f"{fmt_bytes(x.nbytes / x.numblocks[0])}; {args.workers} workers x {args.threads_per_worker} "
          f"thread(s), memory_limit {fmt_bytes(limit)} each ({fmt_bytes(limit * args.workers)} in all)",
          flush=True)

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                           processes=True, memory_limit=args.memory_limit, dashboard_address=None)
    client = Client(cluster)
    failures = []
    rows = []
    idle = {}
    try:
        pids = client.run(_warm, args.classes)  # every worker makes its random block, untimed
        idle = client.run(_rss)
        print("worker RSS when idle: " + ", ".join(fmt_bytes(v) for v in idle.values()), flush=True)

        # What the checks compare with: the first chunk, computed here with the NumPy functions.
        n0 = x.chunks[0][0]
        x0, y0 = dask.compute(x.blocks[0], labels.blocks[0])
        lse0 = fs.logsumexp(x0)
        ce0 = fs.cross_entropy(x0, y0)

        lse = fsd.logsumexp(x, n_threads=args.n_threads)
        ce = fsd.cross_entropy(x, labels, n_threads=args.n_threads)
        runs = {
            # (the mean and the first chunk's rows of one graph: the check costs no extra pass)
            "logsumexp (mean over rows)": lambda: dask.compute(lse.mean(dtype=np.float64), lse[:n0]),
            "cross_entropy (mean)": lambda: dask.compute(ce),
        }
        if not args.no_full_check:  # measured like the others, as the per-chunk yardstick
            direct = da.map_blocks(_direct_chunk, x, labels[:, None], args.n_threads,
                                   chunks=((1,) * x.numblocks[0], (2,)), dtype=np.float64,
                                   meta=np.empty((0, 0))).sum(axis=0)
            runs[CHECK] = lambda: dask.compute(direct)
        results = {}
        for name, run in runs.items():
            before = client.run(_spilled)
            peak_reset = all(client.run(_reset_peak).values())
            start = time.perf_counter()
            results[name] = run()
            seconds = time.perf_counter() - start
            peaks = client.run(_vm_hwm)
            after = client.run(_spilled)
            spilled = {k: sum(after[w][k] - before.get(w, {}).get(k, 0) for w in after)
                       for k in ("written", "writes")}
            rows.append((name, seconds, peaks, peak_reset, spilled))
            print(f"{name}: {seconds:.2f} s, peak worker RSS "
                  + ", ".join(fmt_bytes(v) for v in peaks.values()), flush=True)

        lse_mean, lse_rows = results["logsumexp (mean over rows)"]
        (ce_mean,) = results["cross_entropy (mean)"]
        np.testing.assert_allclose(lse_rows, lse0, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fsd.cross_entropy(x[:n0], labels[:n0]).compute(), ce0, rtol=1e-5)
        checked = f"first chunk ({n0} rows) vs fastsoftmax.logsumexp / cross_entropy"
        if not args.no_full_check:
            direct_lse, direct_ce = results[CHECK][0] / args.rows
            np.testing.assert_allclose(lse_mean, direct_lse, rtol=1e-6)
            np.testing.assert_allclose(ce_mean, direct_ce, rtol=1e-5)
            checked += f"; whole means vs the NumPy functions chunk by chunk: {direct_lse:.6f}, {direct_ce:.6f}"
        print(f"results: mean logsumexp {float(lse_mean):.6f}, mean cross-entropy {float(ce_mean):.6f}; "
              f"checked: {checked}")
        if client.run(os.getpid) != pids:
            failures.append(f"a worker was restarted (pids {pids} -> {client.run(os.getpid)})")
    except AssertionError as exc:
        failures.append(f"wrong result: {exc}")
    except Exception:  # e.g. KilledWorker: still print what was measured
        traceback.print_exc()
        failures.append("the run failed (traceback above)")
    finally:
        client.close()
        cluster.close()

    print()
    chunk = x.nbytes / x.numblocks[0]
    base = max(idle.values()) if idle else 0
    print("| computation | time | peak RSS per worker | worst peak / memory_limit "
          "| worst peak above idle | spilled to disk |")
    print("|---|---|---|---|---|---|")
    for name, seconds, peaks, peak_reset, spilled in rows:
        worst = max(peaks.values())
        written, count = spilled["written"], spilled["writes"]
        note = "" if peak_reset else " (since worker start)"
        print(f"| {name} | {seconds:.2f} s | {', '.join(fmt_bytes(v) for v in peaks.values())}{note} "
              f"| {worst / limit:.0%} | {fmt_bytes(worst - base)} = {(worst - base) / chunk:.1f} chunks "
              f"| {fmt_bytes(written)} ({count} keys) |")
        if worst > limit:
            failures.append(f"{name}: a worker's peak RSS {fmt_bytes(worst)} exceeded the memory_limit "
                            f"{fmt_bytes(limit)}")
        if written:
            failures.append(f"{name}: workers spilled {fmt_bytes(written)} to disk")
    fractions = ", ".join(f"{k} {dask.config.get(f'distributed.worker.memory.{k}')}"
                          for k in ("target", "spill", "pause", "terminate"))
    print(f"\nlogits {fmt_bytes(x.nbytes)} = {x.nbytes / (limit * args.workers):.1f}x the workers' combined "
          f"memory_limit; idle worker RSS {fmt_bytes(base)}; chunk {fmt_bytes(chunk)}; "
          f"worker memory fractions: {fractions}; n_threads={args.n_threads}")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    # Import this file as the module `dask_memory` and run that: the workers then unpickle the
    # block generators by reference (their cached random block in that module) instead of
    # receiving them by value from __main__.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dask_memory

    sys.exit(dask_memory.main())
