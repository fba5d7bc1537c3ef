"""tools/kernel_ab.sh: two builds of one ISA's kernels linked into one harness and timed.

Both trees are this checkout, built for the plain C ISA (the quickest to compile, about a
minute), so the run checks the tool's plumbing (the renamed tables, the options, the bit
comparison), never a timing.
"""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "kernel_ab.sh")


@pytest.mark.skipif(sys.platform == "win32" or not all(
    shutil.which(tool) for tool in ("bash", "cc", "objcopy")), reason="needs bash, cc, objcopy")
def test_two_builds_of_one_tree_time_every_shape_with_the_same_bits(tmp_path):
    run = subprocess.run(
        ["bash", TOOL, REPO, REPO, "--isa", "scalar", "--", "--calls", "3", "3x40",
         "--op", "log_softmax", "--dtype", "float64", "--in-cache", "2x70",
         "--stream", "--offset", "16", "5x33"],
        capture_output=True, text=True, env={**os.environ, "KERNEL_AB_DIR": str(tmp_path)},
        timeout=600)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["3x40", "2x70", "5x33"]
    assert all("new / old" in line and line.endswith("same bits") for line in lines), lines
    # The binary stays for other shapes, and refuses one it cannot read.
    refused = subprocess.run([str(tmp_path / "kernel_ab"), "3x"], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.startswith("usage: kernel_ab")

