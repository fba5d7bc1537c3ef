"""Save every op's outputs on a fixed grid of inputs, or compare them with a saved run, bit for bit.

For changes that must not change any result (a restructuring, a fix elsewhere):

    python tools/compare_outputs.py save before.npz      # on the old build
    python tools/compare_outputs.py compare before.npz   # on the new build

The grid: every public op (softmax, log_softmax, logsumexp, with and without
temperature and where=; cross_entropy with index and probability targets,
weights, label smoothing, ignored labels, the gradient; both backward helpers), float32 and
float64, row lengths on both sides of the short-row, vector, unroll and
16384-chunk boundaries, the last axis and a middle one, whole-number inputs
whose rows hold their max more than once, on every ISA this CPU runs, with 1
and 2 threads.  Inputs are finite: a change that is meant to fix
non-finite results should not show here.  Exit status 1 on any difference,
with a line per differing case.

It tests whichever fastsoftmax ``import fastsoftmax`` finds, and prints its
path: from another checkout of the repository (a git worktree) run it as
``PYTHONPATH=. python tools/compare_outputs.py ...``, or an editable install
elsewhere is what gets compared.
"""
import argparse
import sys

import numpy as np

import fastsoftmax as fs
from fastsoftmax import _core

ROW_LENGTHS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
               511, 512, 513, 1000, 1023, 1024, 1025, 16383, 16384, 16385, 40000]


def _cases():
    """(name, call) pairs: each call returns a tuple of arrays."""
    for dtype in (np.float32, np.float64):
        for n in ROW_LENGTHS:
            rows = max(1, min(37, 60000 // n))
            rng = np.random.default_rng(n)
            x = (rng.standard_normal((rows, n)) * 4).astype(dtype)
            where = rng.random((rows, n)) < 0.8
            labels = rng.integers(0, n, rows)
            p = fs.softmax(rng.standard_normal((rows, n)).astype(dtype))
            weight = (rng.random(n) + 0.5).astype(dtype)
            for axis in (-1, 0):
                tag = f"{np.dtype(dtype).name} {rows}x{n} axis={axis}"
                yield f"softmax {tag}", lambda x=x, a=axis: (fs.softmax(x, a),)
                yield f"softmax T {tag}", lambda x=x, a=axis: (fs.softmax(x, a, temperature=0.7),)
                yield f"softmax where {tag}", lambda x=x, a=axis, w=where: (fs.softmax(x, a, where=w),)
                yield f"log_softmax {tag}", lambda x=x, a=axis: (fs.log_softmax(x, a),)
                yield f"log_softmax T where {tag}", lambda x=x, a=axis, w=where: (
                    fs.log_softmax(x, a, temperature=1.3, where=w),)
                yield f"logsumexp {tag}", lambda x=x, a=axis: (np.asarray(fs.logsumexp(x, a)),)
                yield f"logsumexp where {tag}", lambda x=x, a=axis, w=where: (
                    np.asarray(fs.logsumexp(x, a, where=w)),)
                yield f"softmax_backward {tag}", lambda x=x, a=axis, p=p: (fs.softmax_backward(x, p, a),)
                yield f"log_softmax_backward {tag}", lambda x=x, a=axis: (
                    fs.log_softmax_backward(x, fs.log_softmax(x, a), a),)
            # whole numbers: rows that hold their max twice or more (the log ops' sums drop one)
            ties = np.round(x / 2)
            tag = f"{np.dtype(dtype).name} {rows}x{n}"
            yield f"log_softmax ties {tag}", lambda x=ties: (fs.log_softmax(x),)
            yield f"logsumexp ties {tag}", lambda x=ties, w=where: (
                np.asarray(fs.logsumexp(x)), np.asarray(fs.logsumexp(x, where=w)))
            yield f"cross_entropy ties {tag}", lambda x=ties, y=labels: tuple(
                np.asarray(r) for r in fs.cross_entropy(x, y, reduction="none", return_grad=True))
            yield f"cross_entropy labels {tag}", lambda x=x, y=labels, w=weight: tuple(
                np.asarray(r) for r in fs.cross_entropy(x, y, weight=w, label_smoothing=0.1,
                                                        reduction="none", return_grad=True))
            ignored = np.where(np.arange(rows) % 3 == 1, -100, labels)  # the default ignore_index
            yield f"cross_entropy plain labels {tag}", lambda x=x, y=ignored, w=weight: tuple(
                np.asarray(r) for r in fs.cross_entropy(x, y, weight=w, reduction="none",
                                                        return_grad=True))
            yield f"cross_entropy probabilities {tag}", lambda x=x, p=p: tuple(
                np.asarray(r) for r in fs.cross_entropy(x, p, return_grad=True))
            panel = np.ascontiguousarray(np.moveaxis(x[:, None, :], -1, 1))  # (rows, n, 1)
            panel = np.repeat(panel, 5, axis=2)
            yield f"cross_entropy axis=1 {tag}", lambda x=panel, y=labels: tuple(
                np.asarray(r) for r in fs.cross_entropy(x, np.repeat(y[:, None], 5, 1) % x.shape[1],
                                                        axis=1, return_grad=True))


def _run():
    results = {}
    previous = _core.isa()
    try:
        for isa in _core.available_isas():
            _core.set_isa(isa)
            for threads in (1, 2):
                with fs.num_threads(threads):
                    for name, call in _cases():
                        for i, array in enumerate(call()):
                            results[f"{isa} t{threads} {name} #{i}"] = array
    finally:
        _core.set_isa(previous)
    return results


def _ulps(before, after):
    """How far apart two differing float arrays are, in units of the last place."""
    if before.shape != after.shape or before.dtype.kind != "f" or after.dtype != before.dtype:
        return ""
    both_nan = np.isnan(before) & np.isnan(after)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(after.astype(np.float64) - before) / np.spacing(np.abs(before).astype(before.dtype))
    gap = np.where(both_nan | (before == after), 0, gap)
    return f" (max {np.nanmax(gap):.3g} ulp)" if gap.size else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["save", "compare"])
    parser.add_argument("path")
    args = parser.parse_args()
    print(f"fastsoftmax from {fs.__file__}")
    results = _run()
    if args.mode == "save":
        np.savez_compressed(args.path, **results)
        print(f"saved {len(results)} outputs to {args.path}")
        return 0
    saved = np.load(args.path)
    missing = sorted(set(saved.files) ^ set(results))
    different = [name for name in saved.files if name in results and (
        saved[name].dtype != results[name].dtype or saved[name].shape != results[name].shape
        or saved[name].tobytes() != results[name].tobytes())]
    for name in missing:
        print(f"only in one run: {name}")
    for name in different:
        print(f"differs: {name}{_ulps(saved[name], results[name])}")
    print(f"{len(results)} outputs compared: {len(different)} differ, {len(missing)} unmatched")
    return 1 if different or missing else 0


if __name__ == "__main__":
    sys.exit(main())
