"""``python -m fastsoftmax``: configuration, a self-check, and a benchmark table for this machine.

Exits with status 1 if any result disagrees with ``fastsoftmax.reference``.
The table times softmax on three float32 workloads against NumPy and, when
importable, SciPy, PyTorch and JAX; with PyTorch, cross-entropy loss and
gradient are also checked against and timed with torch's forward + backward
(median of a few calls each; for careful numbers use the pytest-benchmark
suite in ``benchmarks/``).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

import fastsoftmax as fs
from fastsoftmax import _testing

WORKLOADS = [("inference row", (1, 128256)), ("inference batch", (32, 50257)),
             ("training logits", (2048, 32000))]


def self_check() -> list[str]:
    """Compare every function with the reference on a few inputs, to the tolerances the
    tests hold them to (``fastsoftmax._testing``); return the failures."""
    rng = np.random.default_rng(0)
    failures: list[str] = []
    cases = [((64, 1000), -1), ((7, 33, 5), 1), ((1, 200000), -1), ((300, 4), 0)]
    checks: dict[str, Callable[..., None]] = {  # (check_logsumexp takes more arguments)
        "softmax": _testing.check_softmax, "log_softmax": _testing.check_log_softmax,
        "logsumexp": _testing.check_logsumexp}
    for dtype in (np.float32, np.float64):
        for shape, axis in cases:
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            for name, check in checks.items():
                try:
                    check(getattr(fs, name)(x, axis), x, axis)
                except AssertionError as exc:
                    failures.append(f"{name} {np.dtype(dtype).name}{shape} axis={axis}: {exc}")
        logits = (rng.standard_normal((50, 37)) * 3).astype(dtype)
        labels = rng.integers(0, 37, 50)
        kwargs: Any  # (keyword arguments of both cross_entropy functions)
        for kwargs in ({}, {"label_smoothing": 0.1, "reduction": "sum"}):
            loss, grad = fs.cross_entropy(logits, labels, return_grad=True, **kwargs)
            try:
                _testing.check_cross_entropy(loss, grad, logits, labels, **kwargs)
            except AssertionError as exc:
                failures.append(f"cross_entropy {np.dtype(dtype).name} {kwargs}: {exc}")
        special = np.array([[0.0, np.nan], [-np.inf, -np.inf], [1.0, np.inf]], dtype)
        if not (np.isnan(fs.softmax(special)).all()
                and np.array_equal(fs.logsumexp(special), [np.nan, -np.inf, np.inf], equal_nan=True)):
            failures.append(f"NaN/inf handling {np.dtype(dtype).name}")
    return failures


def _median_seconds(func: Callable[[], object], repeats: int) -> float:
    func()  # warm up: page faults, JIT compilation, thread start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _numpy_softmax(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return, unused-ignore]


def _peers() -> dict[str, Callable[..., object]]:
    """name -> function(x) computing softmax over the last axis, for each importable peer."""
    peers: dict[str, Callable[..., object]] = {"numpy": _numpy_softmax}
    try:
        import scipy.special  # type: ignore[import-untyped, import-not-found, unused-ignore]
        peers["scipy"] = lambda x: scipy.special.softmax(x, axis=-1)
    except ImportError:
        pass
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
        peers["torch"] = lambda x: torch.softmax(torch.from_numpy(x), dim=-1)
    except ImportError:
        pass
    try:
        import jax  # type: ignore[import-not-found, unused-ignore]
        import jax.numpy as jnp  # type: ignore[import-not-found, unused-ignore]
        jitted = jax.jit(lambda a: jax.nn.softmax(a, axis=-1))
        peers["jax"] = lambda x, _cache={}: jitted(
            _cache.setdefault(id(x), (x, jnp.asarray(x)))[1]).block_until_ready()
    except ImportError:
        pass
    return peers


def benchmark_table() -> None:
    peers = _peers()
    rng = np.random.default_rng(1)
    header = ["workload", "shape", "fastsoftmax", "fastsoftmax out="] + list(peers) + ["speedup"]
    rows: list[list[str]] = []
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


def cross_entropy_table() -> list[str]:
    """Loss + gradient against PyTorch's forward + backward, when PyTorch is importable."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("cross-entropy: PyTorch is not installed, no comparison")
        return []
    rng = np.random.default_rng(2)
    failures: list[str] = []
    print("cross-entropy loss + gradient, float32, mean, automatic threads, against torch fwd+bwd:")
    for name, shape in (("inference batch", (32, 50257)), ("training logits", (2048, 32000))):
        logits = rng.standard_normal(shape, dtype=np.float32)
        labels = rng.integers(0, shape[1], shape[0])
        grad = np.empty_like(logits)
        tlogits = torch.from_numpy(logits).requires_grad_(True)
        tlabels = torch.from_numpy(labels)

        def torch_step() -> torch.Tensor:
            tlogits.grad = None
            loss = torch.nn.functional.cross_entropy(tlogits, tlabels)
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            return loss

        t_loss = torch_step()
        loss, _ = fs.cross_entropy(logits, labels, return_grad=True, grad_out=grad)
        if not (np.isclose(loss, t_loss.item(), rtol=1e-5)
                and np.allclose(grad, tlogits.grad.numpy(), rtol=0,  # type: ignore[union-attr, unused-ignore]
                                atol=1e-5 * np.abs(grad).max())):
            failures.append(f"cross_entropy {shape} disagrees with torch")
        repeats = 5 if logits.size > 10**7 else 20
        ours = _median_seconds(lambda: fs.cross_entropy(logits, labels, return_grad=True,
                                                        grad_out=grad), repeats)
        theirs = _median_seconds(torch_step, repeats)
        print(f"  {name:16s} {'x'.join(map(str, shape)):>11s}  fastsoftmax {ours * 1e3:8.3f} ms"
              f"  torch {theirs * 1e3:8.3f} ms  speedup {theirs / ours:.1f}x")
    return failures


def sampling_line() -> list[str]:
    """One line: sample (T=0.7, top-k 50, top-p 0.9) against Hugging Face's chain, with torch."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        print("sampling: PyTorch is not installed, no comparison")
        return []
    from ._peers import hugging_face_chain
    from .reference import sample_kept

    temperature, top_k, top_p = 0.7, 50, 0.9
    logits = np.random.default_rng(3).standard_normal((32, 50257), dtype=np.float32) * 3
    rng = np.random.default_rng(4)
    name, hf = hugging_face_chain(temperature, top_k, top_p)
    scores = torch.from_numpy(logits)
    kept = sample_kept(logits, temperature=temperature, top_k=top_k, top_p=top_p)

    def ours() -> object:
        return fs.sample(logits, temperature=temperature, top_k=top_k, top_p=top_p, rng=rng)

    ours_tokens = np.asarray(fs.sample(logits, temperature=temperature, top_k=top_k,
                                       top_p=top_p, rng=rng).tokens)
    theirs_tokens = hf(scores).numpy()[:, 0]
    rows = np.arange(logits.shape[0])
    if not (kept[rows, ours_tokens].all() and kept[rows, theirs_tokens].all()):
        return ["sample: a token outside the kept set"]
    ours_s = _median_seconds(ours, 20)
    theirs_s = _median_seconds(lambda: hf(scores), 5)
    print(f"sample 32x50257 float32 (T=0.7, top_k=50, top_p=0.9): fastsoftmax "
          f"{ours_s * 1e3:.3f} ms  {name} + multinomial {theirs_s * 1e3:.3f} ms  "
          f"speedup {theirs_s / ours_s:.0f}x")
    return []


def main() -> int:
    fs.show_config()
    print()
    failures = self_check()
    if failures:
        print("SELF-CHECK FAILED:", *failures, sep="\n  ")
        return 1
    print("self-check: all results agree with fastsoftmax.reference")
    print()
    benchmark_table()
    print()
    failures = cross_entropy_table()
    print()
    failures += sampling_line()
    if failures:
        print("CHECK AGAINST PYTORCH FAILED:", *failures, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
