"""``python -m fastsoftmax``: configuration, a self-check, and a benchmark table for this machine.

Exits with status 1 if any result disagrees with ``fastsoftmax.reference``.
The table times softmax on three float32 workloads against NumPy and, when
importable, SciPy, PyTorch and JAX (median of a few calls each; for careful
numbers use the pytest-benchmark suite in ``benchmarks/``).
"""
import sys
import time

import numpy as np

import fastsoftmax as fs
from fastsoftmax import reference

WORKLOADS = [("inference row", (1, 128256)), ("inference batch", (32, 50257)),
             ("training logits", (2048, 32000))]


def self_check():
    """Compare every function with the reference on a few inputs; return the failures."""
    rng = np.random.default_rng(0)
    failures = []
    cases = [((64, 1000), -1), ((7, 33, 5), 1), ((1, 200000), -1), ((300, 4), 0)]
    for dtype, rtol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        for shape, axis in cases:
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            for name in ("softmax", "log_softmax", "logsumexp"):
                got = getattr(fs, name)(x, axis)
                expected = getattr(reference, name)(x, axis)
                if not np.allclose(got, expected, rtol=rtol, atol=rtol * 1e-3):
                    failures.append(f"{name} {np.dtype(dtype).name}{shape} axis={axis}")
        special = np.array([[0.0, np.nan], [-np.inf, -np.inf], [1.0, np.inf]], dtype)
        if not (np.isnan(fs.softmax(special)).all()
                and np.array_equal(fs.logsumexp(special), [np.nan, -np.inf, np.inf], equal_nan=True)):
            failures.append(f"NaN/inf handling {np.dtype(dtype).name}")
    return failures


def _median_seconds(func, repeats):
    func()  # warm up: page faults, JIT compilation, thread start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _numpy_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _peers():
    """name -> function(x) computing softmax over the last axis, for each importable peer."""
    peers = {"numpy": _numpy_softmax}
    try:
        import scipy.special
        peers["scipy"] = lambda x: scipy.special.softmax(x, axis=-1)
    except ImportError:
        pass
    try:
        import torch
        peers["torch"] = lambda x: torch.softmax(torch.from_numpy(x), dim=-1)
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp
        jitted = jax.jit(lambda a: jax.nn.softmax(a, axis=-1))
        peers["jax"] = lambda x, _cache={}: jitted(
            _cache.setdefault(id(x), (x, jnp.asarray(x)))[1]).block_until_ready()
    except ImportError:
        pass
    return peers


def benchmark_table():
    peers = _peers()
    rng = np.random.default_rng(1)
    header = ["workload", "shape", "fastsoftmax", "fastsoftmax out="] + list(peers) + ["speedup"]
    rows = []
    for name, shape in WORKLOADS:
        x = rng.standard_normal(shape, dtype=np.float32)
        out = np.empty_like(x)
        repeats = 5 if x.size > 10**7 else 20
        times = {"fastsoftmax": _median_seconds(lambda: fs.softmax(x), repeats),
                 "fastsoftmax out=": _median_seconds(lambda: fs.softmax(x, out=out), repeats)}
        for peer, func in peers.items():
            times[peer] = _median_seconds(lambda: func(x), repeats)
        best_peer = min(times[p] for p in peers)
        rows.append([name, "x".join(map(str, shape))]
                    + [f"{times[c] * 1e3:.3f} ms" for c in header[2:-1]]
                    + [f"{best_peer / times['fastsoftmax']:.1f}x"])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    print("softmax, float32, last axis, automatic threads (median time; speedup = fastest peer / fastsoftmax):")
    print("\n".join(lines))


def main():
    fs.show_config()
    print()
    failures = self_check()
    if failures:
        print("SELF-CHECK FAILED:", *failures, sep="\n  ")
        return 1
    print("self-check: all results agree with fastsoftmax.reference")
    print()
    benchmark_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
