"""16-bit logits: float16 and bfloat16 read natively, against float32 input and PyTorch's own.

One group per op x workload x 16-bit dtype (the decoding batch 32x50257 and the training logits
2048x32000): fastsoftmax on the same values as float32 with out= (the yardstick), on the 16-bit
array with a float32 out= and with an out= of its own 16-bit type, and PyTorch's 16-bit kernel
on the same tensor (softmax, log_softmax, cross_entropy forward + backward).  Every result is
checked against the float32 computation on the same values before it may win.
"""

from functools import partial

import numpy as np
import pytest

from test_bench_ops import SEED, _import_or_skip

SHAPES = {"inference_batch": (32, 50257), "training_logits": (2048, 32000)}
OPS = ("softmax", "log_softmax", "cross_entropy")
IMPLEMENTATIONS = ("float32_out", "half_in_float32_out", "half_in_half_out", "torch_half")


def _inputs(dtype_name, rows, classes):
    x32 = (np.random.default_rng(SEED).standard_normal((rows, classes), dtype="float32") * 3)
    if dtype_name == "bfloat16":
        dtype = np.dtype(_import_or_skip("ml_dtypes").bfloat16)
    else:
        dtype = np.dtype(np.float16)
    half = x32.astype(dtype)
    labels = np.random.default_rng(SEED + 1).integers(0, classes, rows)
    return half, half.astype(np.float32), labels


def _call(fs, op, x, out, labels):
    if op == "cross_entropy":
        return partial(fs.cross_entropy, x, labels, return_grad=True, grad_out=out)
    return partial(getattr(fs, op), x, out=out)


def _torch_call(op, half, labels):
    torch = _import_or_skip("torch")
    t = torch.from_numpy(half.view(np.int16)).view(
        torch.bfloat16 if half.dtype.name == "bfloat16" else torch.float16)
    if op == "softmax":
        return partial(torch.softmax, t, -1)
    if op == "log_softmax":
        return partial(torch.log_softmax, t, -1)
    target = torch.from_numpy(labels)

    def forward_backward():
        leaf = t.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(leaf, target)
        loss.backward()
        return loss.detach(), leaf.grad
    return forward_backward


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("workload", list(SHAPES))
def test_half(benchmark, measure, workload, op, dtype_name, implementation):
    fs = _import_or_skip("fastsoftmax")
    rows, classes = SHAPES[workload]
    half, wide, labels = _inputs(dtype_name, rows, classes)
    benchmark.group = f"half {op} {workload} {rows}x{classes} {dtype_name}"
    if implementation == "float32_out":
        x, out = wide, np.full(wide.shape, 0, np.float32)
    elif implementation == "half_in_float32_out":
        x, out = half, np.full(wide.shape, 0, np.float32)
    elif implementation == "half_in_half_out":
        x, out = half, np.full(wide.shape, 0, half.dtype)
    if implementation == "torch_half":
        call = _torch_call(op, half, labels)
        out_bytes = half.nbytes
    else:
        call = _call(fs, op, x, out, labels)
        out_bytes = out.nbytes
    benchmark.extra_info.update(implementation=implementation, op=op, workload=workload,
                                shape=[rows, classes], dtype=dtype_name,
                                bytes_read=half.nbytes if implementation != "float32_out"
                                else wide.nbytes, bytes_written=out_bytes)
    expected = (fs.cross_entropy(wide, labels, return_grad=True)[1] if op == "cross_entropy"
                else getattr(fs, op)(wide))

    def check(result):  # every row, before anything is timed
        if op == "cross_entropy":
            result = result[1]
        got = np.asarray(result.float() if hasattr(result, "float") else result, dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=2e-2, atol=1e-2 * np.abs(expected).max())

    measure(call, check=check)
