"""Thread scaling of fastsoftmax (and PyTorch at the same thread counts) on one machine.

    python benchmarks/scaling.py --threads 1 2 4 8 16 --markdown scaling.md

For each thread count: the median time of fastsoftmax's softmax (out=),
logsumexp and cross-entropy loss+grad (grad_out=) on the big float32
workloads, PyTorch's softmax and cross-entropy fwd+bwd with
``torch.set_num_threads`` at the same count (when importable), and a
parallel copy of 256 MB (NumPy in a thread pool) to give the bandwidth floor.
Prints a Markdown table of milliseconds, fastsoftmax's GB/s, and its time as a
multiple of the floor (bytes read + written) / copy bandwidth.
"""
import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fastsoftmax as fs
from conftest import cpu_model  # benchmarks/ is this script's first sys.path entry

WORKLOADS = {
    "inference_row": (1, 128256),
    "inference_batch": (32, 50257),
    "training_logits": (2048, 32000),
    "attention_scores": (16384, 512),
    "classification": (1_000_000, 10),
}


def median_seconds(func, min_time=0.3, min_rounds=5):
    func()
    times = []
    start = time.perf_counter()
    while len(times) < min_rounds or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return float(np.median(times))


def copy_bandwidth(threads):
    """Bytes per second of a parallel 256 MB copy (read + write) with `threads` workers."""
    src = np.ones(64 * 2**20, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts if p.size]
    with ThreadPoolExecutor(threads) as pool:
        def copy():
            list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
        return 2 * src.nbytes / median_seconds(copy)


def check_against_one_thread(op, result, x, labels):
    """The timed call's result has one thread's bits (README: the same bits for every thread
    count), and one thread's softmax is NumPy's in float64 on a few rows: a thread count that
    computed something else cannot be timed as a speed-up."""
    if op == "softmax":
        one = fs.softmax(x, n_threads=1)
        rows = sorted({0, len(x) // 2, len(x) - 1})
        wide = x[rows].astype(np.float64)
        e = np.exp(wide - wide.max(axis=-1, keepdims=True))
        np.testing.assert_allclose(one[rows], e / e.sum(axis=-1, keepdims=True), rtol=1e-5,
                                   atol=1e-37)
    elif op == "logsumexp":
        one = fs.logsumexp(x, axis=-1, n_threads=1)
    else:
        one = fs.cross_entropy(x, labels, return_grad=True, n_threads=1)
        assert result[0] == one[0], (op, result[0], one[0])
        result, one = result[1], one[1]
    assert np.asarray(result).tobytes() == np.asarray(one).tobytes(), f"{op}: not one thread's bits"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None

    rng = np.random.default_rng(0)
    header = (f"{cpu_model()}, {os.cpu_count()} CPUs, kernels {fs._core.isa()}, "
              f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    rows = []
    for threads in args.threads:
        bandwidth = copy_bandwidth(threads)
        rows.append((threads, "copy 256 MB", "bandwidth", f"{bandwidth / 1e9:.1f} GB/s", "", "", ""))
        if torch:
            torch.set_num_threads(threads)
        for name in args.workloads:
            shape = WORKLOADS[name]
            x = rng.standard_normal(shape, dtype=np.float32)
            labels = rng.integers(0, shape[1], shape[0])
            out, grad = np.empty_like(x), np.empty_like(x)
            lse_out = np.empty(shape[0], np.float32)
            cases = {
                "softmax": (lambda: fs.softmax(x, out=out, n_threads=threads), 2 * x.nbytes),
                "logsumexp": (lambda: fs.logsumexp(x, out=lse_out, n_threads=threads), x.nbytes),
                "cross_entropy": (lambda: fs.cross_entropy(x, labels, return_grad=True,
                                                           grad_out=grad, n_threads=threads),
                                  2 * x.nbytes),
            }
            peer = {}
            if torch:
                tx = torch.from_numpy(x)
                tl = torch.from_numpy(labels)
                tg = tx.clone().requires_grad_(True)

                def torch_ce():
                    tg.grad = None
                    torch.nn.functional.cross_entropy(tg, tl).backward()

                peer = {"softmax": lambda: torch.softmax(tx, dim=-1), "cross_entropy": torch_ce}
            for op, (func, moved) in cases.items():
                seconds = median_seconds(func)
                check_against_one_thread(op, func(), x, labels)
                floor = moved / bandwidth
                torch_ms = f"{median_seconds(peer[op]) * 1e3:.3f}" if op in peer else ""
                rows.append((threads, f"{name} {shape[0]}x{shape[1]}", op, f"{seconds * 1e3:.3f}",
                             f"{moved / seconds / 1e9:.1f}", f"{seconds / floor:.2f}", torch_ms))
            print(f"threads={threads} {name} done", flush=True)

    lines = [header, "",
             "| threads | workload | op | fastsoftmax ms | GB/s | × floor | torch ms |",
             "|---:|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
