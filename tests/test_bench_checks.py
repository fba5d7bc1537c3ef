"""The benchmark suite's result checks: "every contender's result is checked against NumPy's
before it is timed, so a fast wrong answer cannot win" (README, Performance).

A check once looked at rows 0 and N-1 only, with an absolute tolerance far above the
entries of a softmax or of a batch's gradient (1e-6 against 1/(N*C)), and ran after the
timing, whose figures stayed in the JSON when it failed.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")
pytestmark = pytest.mark.skipif(not os.path.isdir(BENCHMARKS),
                                reason="benchmarks/ is not beside the tests (installed elsewhere)")


@pytest.fixture(scope="module")
def ops():
    spec = importlib.util.spec_from_file_location(
        "benchmarks_test_bench_ops", os.path.join(BENCHMARKS, "test_bench_ops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case(ops, rows, classes):
    rng = np.random.default_rng(ops.SEED)
    return ops.Case("rows", rng.standard_normal((rows, classes), dtype="float32"),
                    rng.integers(0, classes, size=rows, dtype=np.int64))


def _reference(ops, op, case):
    x = case.x.astype(np.float64)
    if op == "cross_entropy":
        loss, grad = ops._np_cross_entropy(x, case.target)
        return loss, grad.astype(np.float32)
    return ops.NUMPY_OPS[op](x).astype(np.float32)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp", "cross_entropy"])
def test_a_right_result_passes(ops, op):
    case = _case(ops, 300, 700)
    ops._check(op, case, _reference(ops, op, case))


def test_wrong_results_fail(ops):
    case = _case(ops, 300, 700)
    softmax = _reference(ops, "softmax", case)
    middle_wrong = softmax.copy()  # right on the first and last rows only
    middle_wrong[1:-1] = 1.0 / case.x.shape[1]
    off_by_a_percent = softmax * np.float32(1.01)  # small entries, all 1% off
    loss, grad = _reference(ops, "cross_entropy", case)
    label_only = np.zeros_like(grad)  # the gradient without its softmax term
    label_only[np.arange(len(grad)), case.target] = grad[np.arange(len(grad)), case.target]
    for op, wrong in (("softmax", middle_wrong), ("softmax", off_by_a_percent),
                      ("cross_entropy", (loss, label_only)),
                      ("cross_entropy", (loss, grad + np.float32(7e-7 / len(grad))))):
        with pytest.raises(AssertionError):
            ops._check(op, case, wrong)


PLUGIN = textwrap.dedent("""
    import numpy as np

    def pytest_collection_modifyitems(session, config, items):
        for item in items:
            module = item.module
            if module.__name__.endswith("test_bench_ops") and not hasattr(module, "_wrong"):
                module._wrong = True
                ops, _ = module.IMPLEMENTATIONS["numpy"]

                def wrong(op, case):  # fast and wrong: zeros
                    result = np.zeros(case.x.shape[:-1] if op == "logsumexp" else case.x.shape,
                                      case.x.dtype)
                    return lambda: result

                module.IMPLEMENTATIONS["numpy"] = (ops, wrong)
""")


def test_a_wrong_contender_is_never_timed(tmp_path):
    (tmp_path / "wrong_numpy_plugin.py").write_text(PLUGIN)
    report = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.join(BENCHMARKS, "test_bench_ops.py"),
         "-p", "wrong_numpy_plugin", "-p", "no:cacheprovider", "-q",
         "-k", "test_op and tiny_call and float32 and softmax and not log "
               "and (numpy or fastsoftmax_out)",
         "--benchmark-max-time=0.01", f"--benchmark-json={report}"],
        env=env, capture_output=True, text=True, timeout=300)
    assert "1 failed" in done.stdout, done.stdout + done.stderr
    timed = {b["extra_info"]["implementation"]
             for b in json.loads(report.read_text())["benchmarks"]}
    assert "fastsoftmax_out" in timed and "numpy" not in timed, timed
