"""New ÷ old time of fastsoftmax ops between two builds, alternated on one machine.

A kernel change is judged by its build's time against the build before it, on the
same machine in the same minutes: this VM's speed moves with its host, so two
timings taken apart prove little.  Each build is a checkout whose package is built in
place (``python setup.py build_ext --inplace``; ``git worktree add`` gives the old
one).  Every round runs each build in a process of its own (``PYTHONPATH`` set to its
tree), which times every op × shape as the best call in a 0.25 s window, rows in cache
after the first call, ``out=`` (cross_entropy: ``grad_out=``) of x's dtype (a 16-bit
``--dtype`` times 16-bit results).  The builds alternate round by round, and the table
gives each cell's minimum over the rounds and the ratio NEW / OLD (< 1: the new build is
faster).

    python benchmarks/ab_builds.py OLD_TREE NEW_TREE --shapes 4096x64,2048x512 \\
        --ops log_softmax,cross_entropy_loss --rounds 4 [--dtype float64|float16|bfloat16]
        [--isa avx2]

``--isa`` picks the kernels of another instruction set this CPU runs
(``fastsoftmax._core.set_isa``); ``--threads`` the thread count (1 by default);
``--spread`` the logits' standard deviation (3 by default: N(0, 3^2)), which decides how
often one entry dominates a row, and so which way the log ops sum it.
"""
import argparse
import json
import os
import subprocess
import sys
import time

OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy_loss", "cross_entropy_grad")


def _shape(text):
    shape = tuple(int(n) for n in text.lower().split("x"))
    if len(shape) != 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a shape is ROWSxCOLUMNS, got {text!r}")
    return shape


def _numpy_dtype(name):
    """--dtype's NumPy dtype (bfloat16: ml_dtypes')."""
    import numpy as np

    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _best(call, window):
    """The fastest of the calls made in `window` seconds (after one call that warms up)."""
    call()
    best, end = float("inf"), time.perf_counter() + window
    while time.perf_counter() < end:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _worker(shapes, ops, dtype, isa, threads, window, spread):
    """Time each op × shape with the fastsoftmax on sys.path; {"op shape": ns per element}."""
    import numpy as np

    import fastsoftmax as fs
    from fastsoftmax import _core

    if isa and not _core.set_isa(isa):
        raise SystemExit(f"--isa {isa!r}: not built or not run by this CPU "
                         f"(available: {_core.available_isas()})")
    rng = np.random.default_rng(0)
    times = {}
    for shape in shapes:
        x = (rng.standard_normal(shape) * spread).astype(_numpy_dtype(dtype))
        labels = rng.integers(0, shape[1], shape[0])
        out = np.empty_like(x)  # 16-bit x: 16-bit results (cross_entropy: gradient)
        sums = np.empty(shape[0], x.dtype if x.dtype.itemsize > 2 else np.float32)
        calls = {
            "softmax": lambda: fs.softmax(x, out=out, n_threads=threads),
            "log_softmax": lambda: fs.log_softmax(x, out=out, n_threads=threads),
            "logsumexp": lambda: fs.logsumexp(x, axis=-1, out=sums, n_threads=threads),
            "cross_entropy_loss": lambda: fs.cross_entropy(x, labels, reduction="none",
                                                           n_threads=threads),
            "cross_entropy_grad": lambda: fs.cross_entropy(x, labels, return_grad=True,
                                                           grad_out=out, n_threads=threads),
        }
        for op in ops:
            times[f"{op} {shape[0]}x{shape[1]}"] = _best(calls[op], window) / x.size * 1e9
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old build's tree (its package built in place)")
    parser.add_argument("new", help="the new build's tree")
    parser.add_argument("--shapes", type=lambda s: [_shape(t) for t in s.split(",")],
                        default=[(4096, 64), (4096, 200), (2048, 512), (1024, 1000)])
    parser.add_argument("--ops", type=lambda s: s.split(","), default=["softmax", "log_softmax"])
    parser.add_argument("--dtype", choices=("float32", "float64", "float16", "bfloat16"),
                        default="float32", help="of x, and of the results (16-bit: "
                        "16-bit results, logsumexp float32)")
    parser.add_argument("--isa", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=0.25, help="seconds per cell")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="the logits' standard deviation")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.ops) - set(OPS))
    if unknown:
        parser.error(f"--ops: unknown {unknown}; choose from {', '.join(OPS)}")
    if args.rounds < 1 or args.window <= 0 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1, --window positive")
    if not 0 < args.spread < float("inf"):
        parser.error(f"--spread must be a positive finite number, got {args.spread}")
    if args.worker:
        print(json.dumps(_worker(args.shapes, args.ops, args.dtype, args.isa, args.threads,
                                 args.window, args.spread)))
        return {}

    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    for name, tree in trees.items():
        if not os.path.isdir(os.path.join(tree, "fastsoftmax")):
            parser.error(f"{name}: {tree} holds no fastsoftmax package")
    worker_args = [sys.executable, os.path.abspath(__file__), args.old, args.new, "--worker",
                   "--shapes", ",".join(f"{r}x{c}" for r, c in args.shapes),
                   "--ops", ",".join(args.ops), "--dtype", args.dtype,
                   "--threads", str(args.threads), "--window", str(args.window),
                   "--spread", str(args.spread)]
    if args.isa:
        worker_args += ["--isa", args.isa]
    best = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            result = subprocess.run(worker_args, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"the {name} build ({tree}) failed:\n{result.stderr.strip()}")
            for cell, ns in json.loads(result.stdout.strip().splitlines()[-1]).items():
                best[name][cell] = min(ns, best[name].get(cell, float("inf")))
    print(f"{args.dtype} N(0, {args.spread:g}^2), {args.isa or 'default ISA'}, "
          f"{args.threads} thread(s), min of {args.rounds} rounds, ns per element")
    print(f"{'op and shape':32s} {'old':>8s} {'new':>8s} {'new/old':>8s}")
    for cell, old in best["old"].items():
        new = best["new"][cell]
        print(f"{cell:32s} {old:8.4f} {new:8.4f} {new / old:8.3f}")
    return best


if __name__ == "__main__":
    main()
