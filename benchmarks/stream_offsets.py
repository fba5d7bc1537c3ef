"""Streamed ÷ ordinary-store time of softmax, log_softmax and cross_entropy's gradient, per ISA and
output alignment.

Streaming stores (``fastsoftmax.set_stream_threshold``) must win wherever they are used,
whatever the output's offset from a cache line: NumPy's large arrays start 16 bytes past
one, fresh outputs from the pool on one (half a page from their input's), and rows whose length is not a multiple of 16
floats start anywhere.  This times each op into one output at each offset, alternating
streamed and ordinary stores (the threshold set to 0 and to ``sys.maxsize``) and every
offset in one loop, so that both see the same machine, and prints the minimum times and
their ratio.  Both stores give the same bits; the ratio is all that differs.

Around the threshold, what matters is the steady state and what the caller does next:
``--calls N`` times runs of N calls in one mode (their median), so that the caches hold
what that mode leaves in them, and ``--read-back`` times each call with a read of its
whole output after it (``out.max()``), as a caller that uses the result at once.

    python benchmarks/stream_offsets.py                      # the README's shapes
    python benchmarks/stream_offsets.py --shapes 16384x512 --offsets 0 16 --threads 2
    python benchmarks/stream_offsets.py --shapes 4096x512 6144x512 96x32000 --offsets 16 \
        --calls 20 --read-back                               # the threshold's sizes

Run it on two checkouts (an installed build each) to compare before and after a change.
"""
import argparse
import functools
import sys
import time

import numpy as np

import fastsoftmax as fs
from fastsoftmax import _core


def _output_at(shape, byte_offset, buffers):
    """A float32 output whose first element lies byte_offset past a 64-byte boundary."""
    size = int(np.prod(shape)) * 4
    raw = np.empty(size + 4096, np.uint8)
    buffers.append(raw)
    start = (-raw.ctypes.data) % 64 + byte_offset
    return raw[start:start + size].view(np.float32).reshape(shape)


@functools.lru_cache(maxsize=None)
def _labels(shape):
    return np.random.default_rng(1).integers(0, shape[-1], shape[:-1])


def cross_entropy_grad(x, out, n_threads):
    """The loss and its gradient into ``out``, for labels drawn once per shape."""
    return fs.cross_entropy(x, _labels(x.shape), return_grad=True, grad_out=out,
                            n_threads=n_threads)


def measure(shape, offsets, isa, op, threads, repeats, calls=1, read_back=False):
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(np.float32)
    keep = []
    outs = {offset: _output_at(shape, offset, keep) for offset in offsets}
    best = {}
    previous = _core.isa()
    _core.set_isa(isa)
    try:
        for _ in range(repeats):
            for offset in offsets:
                for streamed in (True, False):
                    fs.set_stream_threshold(0 if streamed else sys.maxsize)
                    out = outs[offset]
                    times = []
                    for _ in range(calls):
                        start = time.perf_counter()
                        op(x, out=out, n_threads=threads)
                        if read_back:
                            out.max()
                        times.append(time.perf_counter() - start)
                    elapsed = float(np.median(times))
                    best[offset, streamed] = min(best.get((offset, streamed), np.inf), elapsed)
    finally:
        fs.set_stream_threshold()
        _core.set_isa(previous)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["16384x512", "65536x256", "1024x8192",
                                                        "131072x128"])
    parser.add_argument("--offsets", nargs="+", type=int, default=[0, 16, 48],
                        help="bytes past a 64-byte boundary")
    parser.add_argument("--isas", nargs="+", default=None,
                        help="kernel tables (default: every one this CPU runs that streams)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--calls", type=int, default=1,
                        help="consecutive calls per timing, of which the median counts")
    parser.add_argument("--read-back", action="store_true",
                        help="read the whole output after each call, inside its time")
    args = parser.parse_args()
    isas = args.isas or [isa for isa in _core.available_isas() if isa in ("avx512", "avx2")]
    print(f"fastsoftmax {fs.__version__}, {args.threads} thread(s), float32"
          f"{', output read back' if args.read_back else ''}; "
          "per offset: streamed / ordinary ms = ratio")
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split("x"))
        for isa in isas:
            for op in (fs.softmax, fs.log_softmax, cross_entropy_grad):
                best = measure(shape, args.offsets, isa, op, args.threads, args.repeats,
                               args.calls, args.read_back)
                cells = "  ".join(
                    f"+{o}: {best[o, True] * 1e3:6.2f}/{best[o, False] * 1e3:6.2f}"
                    f"={best[o, True] / best[o, False]:.2f}" for o in args.offsets)
                name = "ce + grad" if op is cross_entropy_grad else op.__name__
                print(f"{text:>11} {isa:6} {name:11} {cells}", flush=True)


if __name__ == "__main__":
    main()
