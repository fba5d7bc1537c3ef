"""src/cflags.txt: the one list of C flags that setup.py and the tools that compile src/
themselves (through tools/cflags.sh) all take, and the numerics contract's rules for it."""
import os
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_FILE = os.path.join(REPO, "src", "cflags.txt")

pytestmark = pytest.mark.skipif(not os.path.exists(FLAGS_FILE),
                                reason="no source tree beside the tests")


def _flags():
    with open(FLAGS_FILE) as f:
        return shlex.split(f.read(), comments=True)  # as setup.py reads them


def test_no_flag_tunes_for_the_build_machine_or_relaxes_ieee_semantics():
    """The wheel runs on any CPU of its architecture, and inf/NaN behave as the README
    says: no -march/-mtune, no -Ofast, no part of -ffast-math but -fno-math-errno."""
    relaxing = ("-march", "-mtune", "-mcpu", "-Ofast", "-ffast-math", "-funsafe-math",
                "-ffinite-math", "-fno-signed-zeros", "-fno-trapping-math",
                "-fassociative-math", "-freciprocal-math", "-fno-honor")
    flags = _flags()
    assert "-O3" in flags and "-fno-math-errno" in flags
    assert [f for f in flags if f.startswith(relaxing)] == []


@pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None,
                    reason="needs bash")
def test_the_tools_read_the_same_flags_as_setup_py():
    got = subprocess.run(["bash", "-c", f"source {shlex.quote(REPO)}/tools/cflags.sh && "
                          "printf '%s\\n' $FS_CFLAGS"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert got == _flags()


def test_setup_py_and_the_tools_define_no_flags_of_their_own():
    """The list lives in one place: a tool that spells it out again drifts from it."""
    for path in ("setup.py", "tools/isa_check.sh", "tools/emulated_isas.sh",
                 "tools/kernel_ab.sh", "tools/arm64_suite.sh"):
        with open(os.path.join(REPO, path)) as f:
            text = f.read()
        assert "-ffp-contract" not in text, path
