"""``python -m fastsoftmax``: its options, exit statuses, broken peers, and output that goes away.

Each test runs the job in a subprocess, on the fastsoftmax these tests import, with fake
peers first on PYTHONPATH: packages that fail the way broken installs do (a missing shared
library, a build for another NumPy), and packages that raise ModuleNotFoundError for
themselves, which is how an absent peer looks.  Every run fakes all four peers, so that
what the job prints does not depend on what this machine has installed (except the one
test that needs a working PyTorch), and ``--check`` or ``--quick`` keep each run to
seconds.
"""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

import fastsoftmax
from fastsoftmax import __main__ as job

PACKAGE_PARENT = str(pathlib.Path(fastsoftmax.__file__).parent.parent)
TIMEOUT = 120  # seconds; a run here takes a few, the whole benchmark about 25

ABSENT = {f"{name}/__init__.py": f'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'
          for name in ("scipy", "torch", "jax", "transformers")}

# A torch wheel built for NumPy 1 under NumPy 2: it imports, and fails on every array.
TORCH_WITHOUT_NUMPY = """\
def from_numpy(a):
    raise RuntimeError("Numpy is not available")

def softmax(t, dim=-1):
    raise RuntimeError("unreachable: from_numpy fails first")
"""

# A torch that imports and runs softmax, but has none of autograd: it fails in the
# cross-entropy table, after the softmax table has timed it.
TORCH_WITHOUT_AUTOGRAD = """\
import numpy

def from_numpy(a):
    return a

def softmax(t, dim=-1):
    e = numpy.exp(t - t.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)
"""

# fastsoftmax as a run with too little memory has it: every call works until the largest
# --quick softmax workload (64x2000), whose output cannot be allocated.
SHORT_OF_MEMORY = """\
import runpy
import fastsoftmax as fs

real_softmax = fs.softmax

def softmax(x, *args, **kwargs):
    if getattr(x, "shape", None) == (64, 2000):
        raise MemoryError("fastsoftmax: cannot allocate an output of 512000 bytes")
    return real_softmax(x, *args, **kwargs)

fs.softmax = softmax
runpy.run_module("fastsoftmax", run_name="__main__", alter_sys=True)
"""

# fastsoftmax with a softmax 0.1 % off: the self-check must fail it.
WRONG_SOFTMAX = """\
import runpy
import fastsoftmax as fs

real_softmax = fs.softmax
fs.softmax = lambda *args, **kwargs: real_softmax(*args, **kwargs) * 1.001
runpy.run_module("fastsoftmax", run_name="__main__", alter_sys=True)
"""


def job_environment(tmp_path, fakes):
    """os.environ with the packages ``fakes`` ({path: source}), written under tmp_path, and
    this fastsoftmax first on PYTHONPATH."""
    root = tmp_path / "fakes"
    for relative, source in fakes.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    paths = [str(root), PACKAGE_PARENT, os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def run_job(tmp_path, *args, fakes=ABSENT, code=None, stdout=subprocess.PIPE):
    """``python -m fastsoftmax *args`` (or ``python -c code *args``) in tmp_path, with the
    fake peers ``fakes``: the CompletedProcess."""
    command = [sys.executable] + (["-m", "fastsoftmax"] if code is None else ["-c", code])
    return subprocess.run(command + list(args), cwd=tmp_path, env=job_environment(tmp_path, fakes),
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)


def test_help_describes_the_job_and_every_exit_status(tmp_path):
    result = run_job(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m fastsoftmax [-h] [--check | --quick]")
    assert "self-check" in result.stdout and "--check" in result.stdout and "--quick" in result.stdout
    assert "fastsoftmax.reference" in result.stdout and "``" not in result.stdout
    statuses = {int(line.split()[0]) for line in result.stdout.split("Exit statuses:")[1].splitlines()
                if line.startswith("  ") and line.split()[0].isdigit()}
    assert statuses == {value for name, value in vars(job).items() if name.startswith("EXIT_")}
    assert "kernels:" not in result.stdout  # the job itself did not run


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["extra"], "unrecognized arguments: extra"),
    (["--check", "--quick"], "argument --quick: not allowed with argument --check"),
])
def test_usage_errors_exit_2_before_anything_runs(tmp_path, args, message):
    result = run_job(tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


def test_check_runs_the_self_check_only(tmp_path):
    result = run_job(tmp_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fastsoftmax ") and "  kernels:  " in result.stdout
    assert lines[-1] == "self-check: all results agree with fastsoftmax.reference"
    assert result.stderr == ""


def test_absent_peers_are_named_as_not_installed(tmp_path):
    result = run_job(tmp_path, "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unusable" not in result.stdout
    assert "cross-entropy: PyTorch is not installed, no comparison" in result.stdout
    assert "sampling: PyTorch is not installed, no comparison" in result.stdout


BROKEN_PEERS = {
    "torch: a missing shared library": (
        {"torch/__init__.py": "raise OSError('libtorch_cpu.so: cannot open shared object file')\n"},
        "torch: unusable (OSError: libtorch_cpu.so: cannot open shared object file)"),
    "torch: its compiled part missing": (
        {"torch/__init__.py": "from torch._C import _initExtension\n"},
        "torch: unusable (ModuleNotFoundError: No module named 'torch._C')"),
    "torch: built for NumPy 1": (
        {"torch/__init__.py": TORCH_WITHOUT_NUMPY},
        "torch: unusable (RuntimeError: Numpy is not available)"),
    "torch: fails after the softmax table": (
        {"torch/__init__.py": TORCH_WITHOUT_AUTOGRAD},
        "torch: unusable (AttributeError: 'numpy.ndarray' object has no attribute 'requires_grad_')"),
    "scipy: built for another NumPy": (
        {"scipy/__init__.py": "raise RuntimeError('scipy compiled against another numpy')\n"},
        "scipy: unusable (RuntimeError: scipy compiled against another numpy)"),
    "jax: jaxlib mismatch": (
        {"jax/__init__.py": "import jax.numpy\n",
         "jax/numpy/__init__.py": "raise RuntimeError('jaxlib version mismatch\\nsecond line')\n"},
        "jax: unusable (RuntimeError: jaxlib version mismatch ...)"),
}


@pytest.mark.parametrize("broken, note", list(BROKEN_PEERS.values()), ids=list(BROKEN_PEERS))
def test_a_broken_peer_is_left_out_with_one_note(tmp_path, broken, note):
    result = run_job(tmp_path, "--quick", fakes={**ABSENT, **broken})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines.count(note) == 1, result.stdout
    assert any(line.startswith("training logits ") for line in lines), result.stdout  # the table
    peer = note.partition(":")[0]
    if peer == "torch":
        assert "sampling: PyTorch is unusable, no comparison" in lines


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch")
def test_a_broken_transformers_leaves_the_sampling_line_to_torch(tmp_path):
    fakes = {name: source for name, source in ABSENT.items() if not name.startswith("torch/")}
    fakes["transformers/__init__.py"] = "raise AttributeError('module transformers has no attribute x')\n"
    result = run_job(tmp_path, "--quick", fakes=fakes)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "transformers: unusable (AttributeError: module transformers has no attribute x)" in (
        result.stdout.splitlines())
    assert "torch (transformers' steps) + multinomial" in result.stdout


def test_out_of_memory_in_the_benchmark_is_not_a_wrong_result(tmp_path):
    result = run_job(tmp_path, "--quick", code=SHORT_OF_MEMORY)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert "self-check: all results agree with fastsoftmax.reference" in lines
    assert any(line.strip().startswith("inference batch ") for line in lines)  # the rows that fit
    assert not any(line.startswith("training logits ") for line in lines)
    assert ("softmax: out of memory, its remaining workloads skipped "
            "(MemoryError: fastsoftmax: cannot allocate an output of 512000 bytes)") in lines
    assert "cross-entropy: PyTorch is not installed, no comparison" in lines  # the next sections ran


# numpy.random is loaded on first use; short of memory, the loader's mmap fails with this.
UNLOADABLE_RANDOM = """\
import runpy
import numpy as np

def default_rng(*args, **kwargs):
    raise ImportError("/numpy/random/_generator.so: failed to map segment from shared object")

np.random.default_rng = default_rng
runpy.run_module("fastsoftmax", run_name="__main__", alter_sys=True)
"""


def test_a_module_that_cannot_be_mapped_is_out_of_memory_not_a_wrong_result(tmp_path):
    """Under a tight address-space limit the self-check's first use of numpy.random failed
    as an ImportError, and the job exited 1, "a result is wrong" (audit, 2026-12-07)."""
    result = run_job(tmp_path, "--check", code=UNLOADABLE_RANDOM)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert ("self-check: out of memory (ImportError: /numpy/random/_generator.so: failed to "
            "map segment from shared object)") in result.stdout.splitlines()
    # an ImportError of another kind is no shortage of memory: it still shows as an error
    other = run_job(tmp_path, "--check", code=UNLOADABLE_RANDOM.replace(
        "failed to map segment from shared object", "undefined symbol: x"))
    assert other.returncode == 1 and "Traceback" in other.stderr


def test_a_wrong_result_exits_1(tmp_path):
    result = run_job(tmp_path, "--check", code=WRONG_SOFTMAX)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SELF-CHECK FAILED:" in result.stdout and "\n  softmax float32" in result.stdout


def head(tmp_path, *args, until=None, code=None, unbuffered=False):
    """As ``python -m fastsoftmax | head``: read the job's lines up to the first that is
    ``until`` (the first line when None), close the pipe, and wait for the job.

    ``unbuffered``: run with PYTHONUNBUFFERED=1, where every print reaches the pipe at
    once, rather than at the job's flushes.  Returns (lines read, exit status, stderr).
    """
    env = job_environment(tmp_path, ABSENT)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable] + (["-m", "fastsoftmax"] if code is None else ["-c", code])
    with subprocess.Popen(command + list(args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as reader:
        lines = [reader.stdout.readline()]
        while until is not None and lines[-1] not in (until, ""):
            lines.append(reader.stdout.readline())
        reader.stdout.close()
        stderr = reader.stderr.read()
        return lines, reader.wait(timeout=TIMEOUT), stderr


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_closed_pipe_ends_the_job_quietly(tmp_path, unbuffered):
    # The whole job, which would run for many seconds: it ends at its next write instead.
    lines, status, stderr = head(tmp_path, unbuffered=unbuffered)
    assert lines[0].startswith("fastsoftmax ")
    assert (status, stderr) == (141, "")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_wrong_result_exits_1_even_when_the_pipe_is_closed(tmp_path, unbuffered):
    # The reader goes after the configuration, while the self-check runs: the job cannot
    # print the failures, and still exits 1.
    lines, status, stderr = head(tmp_path, "--check", until="\n", code=WRONG_SOFTMAX,
                                 unbuffered=unbuffered)
    assert lines[0].startswith("fastsoftmax ") and lines[-1] == "\n"
    assert (status, stderr) == (1, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [[], ["--help"]])
def test_a_failed_write_is_one_line_on_stderr(tmp_path, args):
    with open("/dev/full", "w") as full:
        result = run_job(tmp_path, *args, stdout=full)
    assert result.returncode == 4
    assert result.stderr == ("python -m fastsoftmax: cannot write the output "
                             "(OSError: [Errno 28] No space left on device)\n")
