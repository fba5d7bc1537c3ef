"""The type hints: ``mypy --strict`` passes on the package and on a user's script,
and reports exactly the deliberate mistakes of ``tests/typecheck/misuse.py``.

One mypy run checks all three, from the repository root, where mypy finds the
``fastsoftmax/`` sources (and ``_core.pyi``, the compiled module's stub)
directly, whether or not the package is installed (an editable install's import
hook is invisible to mypy anyway).  The optional imports of
``fastsoftmax/__main__.py`` (PyTorch, JAX, SciPy) are not followed: analysing
PyTorch alone takes mypy about 30 s, and their hints are not what is tested.
"""
import io
import os
import pathlib
import re
import runpy
import subprocess
import sys
import tokenize

import pytest

pytest.importorskip("mypy")

ROOT = pathlib.Path(__file__).resolve().parent.parent
TYPECHECK = pathlib.Path("tests", "typecheck")  # relative to ROOT, as mypy reports it
USAGE = TYPECHECK / "usage.py"
MISUSE = TYPECHECK / "misuse.py"

# Skipped where installed, and not an error where not: the test extras leave PyTorch and JAX
# out, so on a machine without them their imports cannot be found at all.
MYPY_CONFIG = """\
[mypy]
[mypy-torch.*,jax.*,jaxlib.*,scipy.*]
follow_imports = skip
ignore_missing_imports = True
"""

MESSAGE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): (?P<severity>error|note): ", re.M)


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    """mypy --strict over the package, usage.py and misuse.py: (returncode, output)."""
    if not (ROOT / "fastsoftmax" / "__init__.py").exists():
        pytest.skip("the fastsoftmax sources are not beside the tests")
    tmp = tmp_path_factory.mktemp("mypy")
    config = tmp / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
               f"--cache-dir={tmp / 'cache'}", f"--config-file={config}", "--no-color-output",
               "--no-pretty", "--show-error-codes", "fastsoftmax", str(USAGE), str(MISUSE)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    if not MESSAGE.search(output) and "Success" not in output:
        pytest.fail(f"mypy did not run (exit status {result.returncode}):\n{output}")
    return result.returncode, output


def _errors(output, path):
    """Line numbers of mypy's errors in ``path``."""
    wanted = pathlib.Path(path)
    return sorted({int(m["line"]) for m in MESSAGE.finditer(output)
                   if m["severity"] == "error" and pathlib.Path(m["path"]) == wanted})


def _files_with_errors(output):
    return {pathlib.Path(m["path"]) for m in MESSAGE.finditer(output) if m["severity"] == "error"}


def test_package_and_usage_pass_mypy_strict(mypy_run):
    _, output = mypy_run
    unexpected = _files_with_errors(output) - {MISUSE}
    assert not unexpected, f"mypy --strict found errors outside misuse.py:\n{output}"


def test_misuse_is_rejected_line_by_line(mypy_run):
    """Each ``# E:`` line fails, and nothing else does: the hints are precise, not Any."""
    _, output = mypy_run
    source = (ROOT / MISUSE).read_text()
    marked = sorted(token.start[0]
                    for token in tokenize.generate_tokens(io.StringIO(source).readline)
                    if token.type == tokenize.COMMENT and token.string.startswith("# E:"))
    assert len(marked) >= 15
    errors = _errors(output, MISUSE)
    missing = sorted(set(marked) - set(errors))
    unmarked = sorted(set(errors) - set(marked))
    assert not missing and not unmarked, (
        f"misuse.py: no error on the marked lines {missing}, errors on the unmarked lines "
        f"{unmarked}; mypy said:\n{output}")


def test_usage_script_runs():
    """What usage.py type-checks also works (its asserts hold)."""
    if not (ROOT / USAGE).exists():
        pytest.skip("tests/typecheck is not beside the tests")
    runpy.run_path(str(ROOT / USAGE), run_name="__main__")
