"""benchmarks/ab_builds.py: the old ÷ new build comparison runs and reports every cell.

Both "builds" are the fastsoftmax these tests import, so the run checks the tool's
plumbing (a process per build, the rounds, the table), never a timing.
"""
import importlib.util
import os

import pytest

import fastsoftmax as fs

TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "ab_builds.py")


def _tool():
    spec = importlib.util.spec_from_file_location("ab_builds", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype, spread", [("float64", None), ("float16", "0.5"),
                                           ("bfloat16", None)])
def test_every_op_and_shape_is_timed_in_both_builds(capsys, dtype, spread):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    tree = os.path.dirname(os.path.dirname(os.path.abspath(fs.__file__)))
    tool = _tool()
    best = tool.main([tree, tree, "--shapes", "3x40,2x70", "--ops", ",".join(tool.OPS),
                      "--rounds", "2", "--window", "0.01", "--dtype", dtype,
                      *(["--spread", spread] if spread else [])])
    cells = {f"{op} {shape}" for op in tool.OPS for shape in ("3x40", "2x70")}
    assert set(best["old"]) == set(best["new"]) == cells
    assert all(ns > 0 for build in best.values() for ns in build.values())
    table = capsys.readouterr().out
    assert f"{dtype} N(0, {spread or 3}^2), default ISA, 1 thread(s), min of 2 rounds" in table
    assert all(cell in table for cell in cells)


@pytest.mark.parametrize("argv, message", [
    (["--ops", "softmax,bogus"], "unknown ['bogus']"),
    (["--shapes", "10"], "a shape is ROWSxCOLUMNS"),
    (["--rounds", "0"], "at least 1"),
    (["--spread", "nan"], "--spread must be"),
    (["--spread", "0"], "--spread must be"),
])
def test_bad_arguments_name_the_argument(argv, message, capsys):
    tree = os.path.dirname(os.path.dirname(os.path.abspath(fs.__file__)))
    with pytest.raises(SystemExit):
        _tool().main([tree, tree, *argv])
    assert message in capsys.readouterr().err


def test_a_tree_without_the_package_is_refused(tmp_path, capsys):
    tree = os.path.dirname(os.path.dirname(os.path.abspath(fs.__file__)))
    with pytest.raises(SystemExit):
        _tool().main([str(tmp_path), tree])
    assert "holds no fastsoftmax package" in capsys.readouterr().err
