"""benchmarks/report.py: the tables the README's performance figures come from.

A small pytest-benchmark JSON written here stands in for a suite run, so the ratios, the
floor and the summary's choices are checked against numbers worked out by hand.
"""
import importlib.util
import json
import os
import sys

import pytest

TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "report.py")
GB = 1e9
pytestmark = pytest.mark.skipif(not os.path.exists(TOOL),
                                reason="benchmarks/ is not beside the tests (installed elsewhere)")


def _tool():
    spec = importlib.util.spec_from_file_location("benchmarks_report", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def _case(group, implementation, median_s, op, dtype="float32", shape=(2, 1000),
          read=8000, written=8000, **extra):
    info = {"implementation": implementation, "op": op, "workload": "rows", "shape": list(shape),
            "dtype": dtype, "bytes_read": read, "bytes_written": written, **extra}
    return {"group": group, "extra_info": info, "stats": {"median": median_s}}


@pytest.fixture
def suite_json(tmp_path):
    benchmarks = [
        # the probes: a copy moving 16 GB/s (8 GB each way), a read of 10 GB/s
        _case("bandwidth", "numpy", 1.0, "copy", read=8 * GB, written=8 * GB),
        _case("bandwidth", "numpy", 1.0, "read", read=10 * GB, written=0),
        # softmax float32: ours with and without out=, two peers
        _case("softmax f32", "fastsoftmax", 2e-6, "softmax"),
        _case("softmax f32", "fastsoftmax_out", 1e-6, "softmax"),
        _case("softmax f32", "torch", 3e-6, "softmax"),
        _case("softmax f32", "onnxruntime", 1.5e-6, "softmax", intra_op_num_threads=0),
        # a loss: no out= variant, one peer
        _case("loss f32", "fastsoftmax", 4e-6, "cross_entropy_loss", written=4,
              computes="loss"),
        _case("loss f32", "onnxruntime", 8e-6, "cross_entropy_loss", written=4),
        # float64: left out of a float32 summary
        _case("softmax f64", "fastsoftmax_out", 5e-6, "softmax", dtype="float64"),
        _case("softmax f64", "torch", 5e-6, "softmax", dtype="float64"),
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benchmarks}))
    return str(path)


def test_summary_shows_out_times_floors_and_each_peer_over_ours(suite_json, capsys):
    assert _tool().main([suite_json, "--summary", "float32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| op | workload | shape | fastsoftmax | × floor | torch ÷ ours "
                        "| onnxruntime ÷ ours |")
    # 16000 bytes at 16 GB/s: a floor of 1 µs, the read's 8000 bytes at 10 GB/s being less
    assert lines[2] == "| softmax | rows | 2x1000 | 1 µs | 1.00× | 3.00× | 1.50× |"
    # no out= variant: the new result, marked; floor max(8004 / 16e9, 8000 / 10e9) = 0.8 µs
    assert lines[3] == "| cross_entropy_loss | rows | 2x1000 | 4 µs † | 5.00× | — | 2.00× |"
    assert len(lines) == 6 and lines[5].startswith("† a new result")


def test_full_report_names_probes_threads_and_every_variant(suite_json, capsys):
    assert _tool().main([suite_json]) == 0
    text = capsys.readouterr().out
    assert "Bandwidth: 16.00 GB/s (best of the parallel copy/read probes: copy); reading alone 10.00 GB/s" in text
    assert "`cross_entropy_loss` measures loss" in text
    assert "onnxruntime runs with intra_op_num_threads=0 (its default: it picks the count)" in text
    # each variant against each peer, and against the fastest (ORT at 1.5 µs)
    assert "| softmax | rows | float32 | fastsoftmax | 2 µs | 1.50× | 0.75× | 0.75× (onnxruntime) | 2.00× |" in text
    assert "| softmax | rows | float64 | fastsoftmax_out | 5 µs | 1.00× | — | 1.00× (torch) | 5.00× |" in text


def test_summary_of_a_dtype_the_run_lacks_is_a_usage_error(suite_json, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _tool().main([suite_json, "--summary", "float16"])
    assert exit_info.value.code == 2
    assert "no fastsoftmax result in dtype 'float16' in this run (it has: float32, float64)" in (
        capsys.readouterr().err)
