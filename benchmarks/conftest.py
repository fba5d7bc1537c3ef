"""pytest-benchmark suite: fastsoftmax against NumPy, SciPy, PyTorch, JAX and ONNX Runtime.

Run the suite and write JSON (under 10 minutes on a 2-core machine, plus about 6 for the
dask front end's 25 GB workloads: add `-k "not dask"` to leave them out), then make the report:

    python -m pytest benchmarks/ --benchmark-json=bench.json
    python benchmarks/report.py bench.json --markdown bench.md --png bench.png

Smoke test, every case run once without timing (about 2 minutes: the slow peers still run the
big workloads once, and each result is checked):

    python -m pytest benchmarks/ --benchmark-disable

`python -m pytest` puts the repository root on sys.path, so it benchmarks the in-tree fastsoftmax
(built in place); plain `pytest` benchmarks the installed one. Cases of a fastsoftmax function
that does not exist, or of a peer (scipy, torch, jax, onnxruntime with onnx) that is not
installed, are skipped.
`--bench-threads N` runs fastsoftmax, PyTorch and ONNX Runtime on N threads each (by default
each picks its own count); NumPy, SciPy and JAX keep theirs. `--bench-threads 1` compares the
kernels themselves, one core each, as users of multi-process servers or of dask chunks run them.

Narrow a run with -k on the test ids (workload-dtype-op-implementation), e.g.
`-k "bandwidth or tiny_call"` or `-k "bandwidth or (training_logits and float32)"`; keep the
`bandwidth` tests in any run whose report should show the "× floor" column.

Timing: rounds fill `--benchmark-max-time` (default 1 s) per benchmark, with at least
`--benchmark-min-rounds` (default 5) where that many fit in the budget and at least FEW_ROUNDS
otherwise: with the peers the big workloads take 0.1-2 s per call, and memory-bound calls vary
little from round to round.
"""

import argparse
import importlib
import math
import os
import platform
import time
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent

# Least number of rounds for calls too slow to fit --benchmark-min-rounds into the time budget.
FEW_ROUNDS = 3
# A round repeats a call until it lasts at least this long, so that timer resolution and
# per-round overhead do not dominate calls of a few microseconds (tiny_call).
MIN_ROUND_S = 1e-3


def _thread_count(text):
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a thread count must be an integer, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"a thread count must be at least 1, got {count}")
    return count


def pytest_addoption(parser):
    parser.addoption(
        "--bench-threads", type=_thread_count, default=None, metavar="N",
        help="run fastsoftmax, PyTorch and ONNX Runtime on N threads each (default: each "
             "library's own count); NumPy, SciPy and JAX keep theirs")


@pytest.fixture(scope="session", autouse=True)
def bench_threads(pytestconfig):
    """--bench-threads: the thread count fastsoftmax and PyTorch are set to before the first
    benchmark, for ONNX Runtime's sessions to take too, or None where each keeps its own."""
    count = pytestconfig.getoption("bench_threads")
    if count is not None:
        for name in ("fastsoftmax", "torch"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            module.set_num_threads(count)
            if module.get_num_threads() != count:  # (the smoke run in .ci/run checks this)
                raise RuntimeError(f"{name}.set_num_threads({count}) left it on "
                                   f"{module.get_num_threads()} threads")
    return count


def _is_under(path, directory):
    return path == directory or directory in path.parents


def pytest_ignore_collect(collection_path, config):
    """Collect these benchmarks only when the command line points into benchmarks/.

    The project's pytest config sets testpaths = ["tests"], but `pytest .` or an IDE's
    "run everything" would still walk in here and spend minutes timing things (and fail where
    pytest-benchmark is not installed). Returning None (not False) leaves other ignore rules alone.
    """
    if not _is_under(Path(collection_path).resolve(), BENCH_DIR):
        return None
    here = config.invocation_params.dir
    targets = (here / str(arg).split("::")[0] for arg in config.args)
    if any(_is_under(target.resolve(), BENCH_DIR) for target in targets):
        return None
    return True


def pytest_collection_modifyitems(config, items):
    # Skip rather than error with "fixture 'benchmark' not found" when pytest-benchmark is not
    # installed, or is disabled with -p no:benchmark.
    if config.pluginmanager.hasplugin("benchmark"):
        return
    skip = pytest.mark.skip(reason="pytest-benchmark is not installed (or -p no:benchmark)")
    for item in items:
        if _is_under(Path(item.path).resolve(), BENCH_DIR):
            item.add_marker(skip)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary():
    """What the report's header names: CPU, cores, library versions and thread counts."""
    versions, threads = {}, {}
    for name in ("numpy", "scipy", "torch", "jax", "onnxruntime", "onnx", "fastsoftmax"):
        try:
            module = importlib.import_module(name)
        except Exception:  # not installed, or broken: the report says "not installed"
            versions[name] = None
            continue
        versions[name] = getattr(module, "__version__", "unknown")
        if hasattr(module, "get_num_threads"):  # fastsoftmax and torch: threads they run on
            threads[name] = module.get_num_threads()
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "versions": versions, "threads": threads}


# optionalhook: this conftest is also loaded where pytest-benchmark is absent, and an unknown
# hook would otherwise be an error there.
@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    # Recorded in the JSON so that the report describes the machine that ran the benchmarks,
    # not the one that renders the report.
    machine_info["fastsoftmax_bench"] = machine_summary()


@pytest.fixture
def measure(benchmark, request):
    """measure(fn, check) -> fn's result: time a zero-argument callable, once with
    --benchmark-disable.  ``check(result)``, if given, sees the first call's result before
    any call is timed: a contender whose result it refuses fails with no timing recorded.

    Uses benchmark.pedantic with rounds derived from one untimed warm-up call (JAX compiles,
    PyTorch spins up its thread pool, first-touch page faults happen there) and one timed probe
    call. pytest-benchmark's own calibration would instead run the slow peers for the whole
    budget plus its warm-up on every one of ~250 cases, far past 10 minutes on two cores.
    """

    def run(fn, check=None):
        if benchmark.disabled:  # --benchmark-disable: pedantic just calls fn once
            result = benchmark.pedantic(fn)
            if check is not None:
                check(result)
            return result
        result = fn()
        if check is not None:  # before anything is timed: a wrong result fails, untimed
            check(result)
        start = time.perf_counter()
        fn()
        call_s = time.perf_counter() - start
        budget_s = float(request.config.getoption("benchmark_max_time"))
        min_rounds = request.config.getoption("benchmark_min_rounds")
        iterations = max(1, math.ceil(MIN_ROUND_S / max(call_s, 1e-9)))
        round_s = call_s * iterations
        least = min_rounds if min_rounds * round_s <= budget_s else FEW_ROUNDS
        rounds = max(least, math.ceil(budget_s / round_s))
        return benchmark.pedantic(fn, rounds=rounds, iterations=iterations)

    return run
