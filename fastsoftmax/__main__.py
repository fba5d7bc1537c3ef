"""``python -m fastsoftmax``: configuration, a self-check, and a benchmark table for this machine.

Prints the configuration (``fastsoftmax.show_config()``) and checks every function
against ``fastsoftmax.reference`` on a few inputs, to the tolerances the tests use.
Then it times softmax on three float32 workloads against NumPy and, where installed,
SciPy, PyTorch and JAX; with PyTorch, cross-entropy loss and gradient are also checked
against and timed with torch's forward + backward, and ``sample`` against Hugging Face's
sampling chain (median of a few calls each; for careful numbers use the pytest-benchmark
suite in ``benchmarks/``).  A peer that is installed but fails to import or to run is
left out, with a line naming it and its error: ``torch: unusable (OSError: ...)``.

Exit statuses:
  0    the self-check passed, and so did the check against PyTorch where it ran
  1    a result is wrong: it disagrees with fastsoftmax.reference or with PyTorch
  2    usage error: an unknown option or argument
  3    out of memory: the self-check could not run, or a benchmark section stopped
       at a workload too large for this machine (a line says which; the rows before
       it, and the sections after it, are still shown)
  4    the output could not be written (a full disk, an I/O error); a line on stderr
       says why
  141  the output's reader went away (a closed pipe, as with ``| head``): the job
       ends quietly, with the status a shell gives a program that SIGPIPE ends
A wrong result found before the output failed still gives 1.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence, TextIO, cast

import numpy as np
import numpy.typing as npt

import fastsoftmax as fs
from fastsoftmax import _testing

from ._peers import PeerUnusable, hugging_face_chain, import_peer, one_line

EXIT_OK = 0
EXIT_WRONG = 1
EXIT_USAGE = 2  # argparse's own
EXIT_OUT_OF_MEMORY = 3
EXIT_OUTPUT_FAILED = 4
EXIT_CLOSED_PIPE = 128 + 13  # 128 + SIGPIPE, what `yes | head -1` reports under pipefail

WORKLOADS = [("inference row", (1, 128256)), ("inference batch", (32, 50257)),
             ("training logits", (2048, 32000))]
CROSS_ENTROPY_WORKLOADS = WORKLOADS[1:]
SAMPLE_SHAPE = (32, 50257)
TRANSFORMERS = "transformers.generation.logits_process"  # the module sampling_line needs


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


def _short_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that the machine is short of memory: a MemoryError, or an
    ImportError or OSError from a mapping that failed for want of it (ENOMEM; the dynamic
    loader's "failed to map segment from shared object" where a module imported on first
    use, numpy.random say, cannot be loaded)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, (ImportError, OSError)) and (
        getattr(exc, "errno", None) == errno.ENOMEM
        or any(sign in str(exc) for sign in ("failed to map segment", "Cannot allocate memory")))


class _OutputError(Exception):
    """Writing to stdout failed; ``error`` is the OSError (BrokenPipeError for a closed pipe)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class _Output:
    """stdout while the job runs: its write errors become _OutputError, told apart from an
    OSError that anything else raises (a peer's missing shared library, say)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _OutputError(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise _OutputError(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)  # encoding, isatty, fileno: as the stream has them


def _flush() -> None:
    """Flush stdout, so that a closed pipe or a full disk shows now, not after the next long
    section, nor at exit (where Python can only report it as an ignored exception)."""
    if sys.stdout is not None:  # (None where the job was started with stdout closed)
        sys.stdout.flush()


class _Peers:
    """The optional peers this run compares with: each imported once, and left out, with a
    one-line note, the first time it fails to import or to run."""

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType] = {}
        self._unusable: set[str] = set()

    def get(self, module: str) -> ModuleType | None:
        """The imported module; None where its peer is not installed or is unusable."""
        if not self.usable(module.partition(".")[0]):
            return None
        if module not in self._modules:
            try:
                imported = import_peer(module)
            except PeerUnusable as exc:
                self.unusable(exc.peer, exc.error)
                return None
            if imported is None:
                return None
            self._modules[module] = imported
        return self._modules[module]

    def usable(self, peer: str) -> bool:
        return peer not in self._unusable

    def unusable(self, peer: str, error: BaseException) -> None:
        """Leave peer out from now on; the first time, print the note naming it and error."""
        if peer not in self._unusable:
            self._unusable.add(peer)
            print(PeerUnusable(peer, error))

    def missing(self, peer: str) -> str:
        """Why a peer that ``get`` did not give is missing, for the lines that skip it."""
        return "not installed" if self.usable(peer) else "unusable"

    @contextlib.contextmanager
    def running(self, peer: str) -> Iterator[None]:
        """Run a peer's code: an exception from it makes the peer unusable, and the with
        block ends there (test ``usable`` after it).  MemoryError is this machine's, not
        the peer's fault, and a failed write to stdout is the job's: both go on up."""
        try:
            yield
        except (MemoryError, _OutputError):
            raise
        except Exception as exc:  # a broken install can raise anything when called
            self.unusable(peer, exc)


def _sized(shape: tuple[int, int], quick: bool) -> tuple[int, int]:
    """The shape a run uses: ``--quick`` divides the rows by 32 and the columns by 16
    (2048x32000 becomes 64x2000), so that every table and peer runs within seconds."""
    return (max(1, shape[0] // 32), shape[1] // 16) if quick else shape


def _repeats(size: int, quick: bool) -> int:
    return 3 if quick else 5 if size > 10**7 else 20


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


def _softmax_peers(peers: _Peers) -> dict[str, Callable[..., object]]:
    """name -> function(x) computing softmax over the last axis, for each peer that imports."""
    functions: dict[str, Callable[..., object]] = {"numpy": _numpy_softmax}
    special = peers.get("scipy.special")
    if special is not None:
        functions["scipy"] = lambda x: special.softmax(x, axis=-1)
    torch = peers.get("torch")
    if torch is not None:
        functions["torch"] = lambda x: torch.softmax(torch.from_numpy(x), dim=-1)
    jnp = peers.get("jax.numpy")
    jax = peers.get("jax")  # (imported with jax.numpy)
    if jnp is not None and jax is not None:
        with peers.running("jax"):
            jitted = jax.jit(lambda a: jax.nn.softmax(a, axis=-1))
            functions["jax"] = lambda x, _cache={}: jitted(
                _cache.setdefault(id(x), (x, jnp.asarray(x)))[1]).block_until_ready()
    return functions


def benchmark_table(peers: _Peers, quick: bool = False) -> None:
    """Time softmax with fastsoftmax and each usable peer on the workloads; print the table.

    Raises
    ------
    MemoryError
        Where a workload does not fit, after printing the rows of those before it.
    """
    functions = _softmax_peers(peers)
    probe = np.random.default_rng(0).standard_normal((2, 8), dtype=np.float32)
    for peer, func in list(functions.items()):
        # A peer that imports but cannot run (a torch built for another NumPy) is left
        # out before the columns are laid out.
        with peers.running(peer):
            func(probe)
        if not peers.usable(peer):
            del functions[peer]
    rng = np.random.default_rng(1)
    header = ["workload", "shape", "fastsoftmax", "fastsoftmax out="] + list(functions) + ["speedup"]
    rows: list[list[str]] = []
    try:
        for name, shape in WORKLOADS:
            x = rng.standard_normal(_sized(shape, quick), dtype=np.float32)
            out = np.empty_like(x)
            repeats = _repeats(x.size, quick)
            times = {"fastsoftmax": _median_seconds(lambda: fs.softmax(x), repeats),
                     "fastsoftmax out=": _median_seconds(lambda: fs.softmax(x, out=out), repeats)}
            for peer, func in functions.items():
                if peers.usable(peer):  # (a peer that failed on a smaller workload gets a "-")
                    with peers.running(peer):
                        times[peer] = _median_seconds(lambda: func(x), repeats)
            best_peer = min((times[p] for p in functions if p in times), default=None)
            rows.append([name, "x".join(map(str, x.shape))]
                        + [f"{times[c] * 1e3:.3f} ms" if c in times else "-" for c in header[2:-1]]
                        + [f"{best_peer / times['fastsoftmax']:.1f}x" if best_peer is not None else "-"])
    finally:  # the rows measured, also when a later workload ran out of memory
        if rows:
            widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
            lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in [header] + rows]
            print("softmax, float32, last axis, automatic threads (median time; "
                  "speedup = fastest peer / fastsoftmax):")
            print("\n".join(lines))


def cross_entropy_table(peers: _Peers, quick: bool = False) -> list[str]:
    """Loss + gradient against PyTorch's forward + backward, when PyTorch is usable.

    Returns the disagreements.  Raises MemoryError where a workload does not fit,
    after the lines of those before it.
    """
    torch = peers.get("torch")
    if torch is None:
        print(f"cross-entropy: PyTorch is {peers.missing('torch')}, no comparison")
        return []
    rng = np.random.default_rng(2)
    failures: list[str] = []
    print("cross-entropy loss + gradient, float32, mean, automatic threads, against torch fwd+bwd:")
    for name, shape in CROSS_ENTROPY_WORKLOADS:
        logits = rng.standard_normal(_sized(shape, quick), dtype=np.float32)
        labels = rng.integers(0, logits.shape[1], logits.shape[0])
        grad = np.empty_like(logits)
        with peers.running("torch"):
            tlogits = torch.from_numpy(logits).requires_grad_(True)
            tlabels = torch.from_numpy(labels)

            def torch_step() -> Any:
                tlogits.grad = None
                loss = torch.nn.functional.cross_entropy(tlogits, tlabels)
                loss.backward()
                return loss

            t_loss = torch_step().item()
            t_grad = np.array(tlogits.grad.numpy())
        if not peers.usable("torch"):
            return failures
        loss, _ = fs.cross_entropy(logits, labels, return_grad=True, grad_out=grad)
        if not (np.isclose(loss, t_loss, rtol=1e-5)
                and np.allclose(grad, t_grad, rtol=0, atol=1e-5 * np.abs(grad).max())):
            failures.append(f"cross_entropy {logits.shape} disagrees with torch")
        repeats = _repeats(logits.size, quick)
        ours = _median_seconds(lambda: fs.cross_entropy(logits, labels, return_grad=True,
                                                        grad_out=grad), repeats)
        with peers.running("torch"):
            theirs = _median_seconds(torch_step, repeats)
        if not peers.usable("torch"):
            return failures
        print(f"  {name:16s} {'x'.join(map(str, logits.shape)):>11s}  fastsoftmax {ours * 1e3:8.3f} ms"
              f"  torch {theirs * 1e3:8.3f} ms  speedup {theirs / ours:.1f}x")
    return failures


def sampling_line(peers: _Peers, quick: bool = False) -> list[str]:
    """One line: sample (T=0.7, top-k 50, top-p 0.9) against Hugging Face's chain, with torch.

    The chain is transformers' warpers where transformers is usable, else the same steps
    in torch.  Returns the failures (a token outside the kept set).
    """
    torch = peers.get("torch")
    if torch is None:
        print(f"sampling: PyTorch is {peers.missing('torch')}, no comparison")
        return []
    from .reference import sample_kept

    temperature, top_k, top_p = 0.7, 50, 0.9
    logits = np.random.default_rng(3).standard_normal(_sized(SAMPLE_SHAPE, quick),
                                                      dtype=np.float32) * 3
    rng = np.random.default_rng(4)
    kept = sample_kept(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    repeats = _repeats(logits.size, quick)

    def ours() -> object:
        return fs.sample(logits, temperature=temperature, top_k=top_k, top_p=top_p, rng=rng)

    ours_tokens = np.asarray(fs.sample(logits, temperature=temperature, top_k=top_k,
                                       top_p=top_p, rng=rng).tokens)
    with peers.running("torch"):
        scores = torch.from_numpy(logits)
    if not peers.usable("torch"):
        return []
    for peer in ("transformers", "torch"):  # the torch steps also where transformers' fail
        if peer == "transformers" and peers.get(TRANSFORMERS) is None:
            continue
        with peers.running(peer):
            name, hf = hugging_face_chain(temperature, top_k, top_p,
                                          transformers=peer == "transformers")
            theirs_tokens = np.asarray(hf(scores).numpy()[:, 0])
            theirs_s = _median_seconds(lambda: hf(scores), min(repeats, 5))
        if peers.usable(peer):
            break
    else:  # torch failed too, and its note is printed
        return []
    rows = np.arange(logits.shape[0])
    if not (kept[rows, ours_tokens].all() and kept[rows, theirs_tokens].all()):
        return ["sample: a token outside the kept set"]
    ours_s = _median_seconds(ours, repeats)
    print(f"sample {'x'.join(map(str, logits.shape))} float32 (T=0.7, top_k=50, top_p=0.9): "
          f"fastsoftmax {ours_s * 1e3:.3f} ms  {name} + multinomial {theirs_s * 1e3:.3f} ms  "
          f"speedup {theirs_s / ours_s:.0f}x")
    return []


@contextlib.contextmanager
def _section(name: str, out_of_memory: list[str]) -> Iterator[None]:
    """One section of the benchmark, after a blank line.  Where it runs out of memory the
    job says so in one line and goes on with the next section: the machine is short,
    not a result wrong, and the sections' small workloads still tell something."""
    print()
    _flush()
    try:
        yield
    except (MemoryError, ImportError, OSError) as exc:
        if not _short_of_memory(exc):
            raise
        out_of_memory.append(name)
        print(f"{name}: out of memory, its remaining workloads skipped ({one_line(exc)})")


def _parser() -> argparse.ArgumentParser:
    # The help text is the module docstring, so that the two cannot drift apart (python -OO,
    # which drops docstrings, leaves the usage line and the options).
    parser = argparse.ArgumentParser(
        prog="python -m fastsoftmax", description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="the configuration and the self-check only, no benchmark (about a second)")
    mode.add_argument("--quick", action="store_true",
                      help="the benchmark on small shapes (rows / 32, columns / 16) with few calls: "
                           "it shows that every table and peer runs, not how fast")
    return parser


def _run(args: argparse.Namespace, wrong: list[str]) -> int:
    """The job; every wrong result goes into ``wrong`` before it is printed."""
    fs.show_config()
    print()
    _flush()
    try:
        failures = self_check()
    except (MemoryError, ImportError, OSError) as exc:
        if not _short_of_memory(exc):
            raise
        print(f"self-check: out of memory ({one_line(exc)})")
        return EXIT_OUT_OF_MEMORY
    if failures:
        wrong.extend(failures)
        print("SELF-CHECK FAILED:", *failures, sep="\n  ")
        return EXIT_WRONG
    print("self-check: all results agree with fastsoftmax.reference")
    if args.check:
        return EXIT_OK
    peers = _Peers()
    out_of_memory: list[str] = []
    with _section("softmax", out_of_memory):
        if args.quick:
            print("--quick: small shapes, few calls; the times say little about speed")
        benchmark_table(peers, args.quick)
    with _section("cross-entropy", out_of_memory):
        wrong.extend(cross_entropy_table(peers, args.quick))
    with _section("sampling", out_of_memory):
        wrong.extend(sampling_line(peers, args.quick))
    if wrong:  # (only PyTorch's disagreements: a failed self-check has returned)
        print("CHECK AGAINST PYTORCH FAILED:", *wrong, sep="\n  ")
        return EXIT_WRONG
    return EXIT_OUT_OF_MEMORY if out_of_memory else EXIT_OK


def _to_devnull(stream: TextIO | None) -> None:
    """Point stream's file descriptor at os.devnull, as the Python docs' note on SIGPIPE
    does: Python flushes stdout again at exit, and the bytes that could not be written
    would fail again, with a second message and exit status 120."""
    if stream is None:
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test's capture): nothing is flushed to a descriptor at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job with the command-line arguments argv (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit status, as the module docstring lists them; ``--help`` and usage
        errors leave through argparse's SystemExit (0 and 2).
    """
    wrong: list[str] = []  # filled before printed: a failed write cannot hide a wrong result
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = cast(TextIO, _Output(stdout))
    try:
        try:
            return _run(_parser().parse_args(argv), wrong)
        finally:
            _flush()  # the last lines (or --help's), while a write error is still caught below
    except _OutputError as exc:
        _to_devnull(stdout)
        if isinstance(exc.error, BrokenPipeError):
            status = EXIT_CLOSED_PIPE  # quietly: the reader (| head) has what it wanted
        else:
            status = EXIT_OUTPUT_FAILED
            if sys.stderr is not None:
                with contextlib.suppress(OSError, ValueError):  # stderr may be as broken
                    print(f"python -m fastsoftmax: cannot write the output ({one_line(exc.error)})",
                          file=sys.stderr, flush=True)
        return EXIT_WRONG if wrong else status
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
