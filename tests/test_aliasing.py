"""Outputs that share memory with inputs: the answer is the one for separate arrays.

The rule (README, "Reliability"): every input a kernel reads after it starts
writing is either proven disjoint from the output, by memory ranges, or copied
first; exact aliasing is allowed only where the kernel is written for it
(``out=x``, ``grad_out=logits``, ``out=grad_output``/``out=output``).

Every pair (output, other input) of every function is placed in one shared
buffer three ways (the same start, the input starting inside the output, the
output starting inside the input), and exactly on top of each other where
their sizes allow, for rows on both sides of the short-row size (16) and for
a reduced axis that is not the last.  The result must be bitwise the one
computed on separate arrays.  Cases where the labels sit in ``grad_out``'s
memory once crashed the process (the kernel indexed memory with a label
re-read after the gradient overwrote it), so they run in a child process:
a regression fails the test instead of killing the run.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs

# (shape, axis): rows of 7 and 40 (the short-row and the row kernels), and a panel.
LAYOUTS = [((6, 7), -1), ((5, 40), -1), ((3, 21, 10), 1)]
DTYPES = [np.float32, np.float64]
PLACEMENTS = ["same start", "input inside output", "output inside input", "exactly"]
ALIGN = 8  # every view starts on a multiple of this many bytes: aligned for any dtype here


def _inputs(function, shape, axis, dtype, seed=0):
    """The named inputs of one call of ``function`` (arrays only) and its other arguments."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    classes = shape[axis]
    if function in ("softmax", "log_softmax", "logsumexp"):
        where = rng.random(shape) < 0.7
        return {"x": x, "where": where}, {"axis": axis}
    if function in ("softmax_backward", "log_softmax_backward"):
        forward = fs.softmax if function == "softmax_backward" else fs.log_softmax
        return {"grad_output": x, "output": forward(rng.standard_normal(shape).astype(dtype),
                                                    axis)}, {"axis": axis}
    sample_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    labels = rng.integers(0, classes, size=sample_shape).astype(np.int64)
    probabilities = fs.softmax(rng.standard_normal(shape).astype(dtype), axis)
    weight = rng.random(classes).astype(dtype) + 0.5
    if function == "cross_entropy_labels":
        return {"logits": x, "target": labels, "weight": weight}, {
            "axis": axis, "label_smoothing": 0.1}
    if function == "cross_entropy_sample_weight":  # (the weights: read after the kernel wrote)
        return {"logits": x, "target": labels, "weight": weight,
                "sample_weight": rng.random(sample_shape).astype(dtype) - 0.2}, {"axis": axis}
    return {"logits": x, "target": probabilities, "weight": weight}, {"axis": axis}


def _call(function, inputs, kwargs, out):
    """Run ``function`` on the inputs into ``out`` (None: a fresh array); returns what it wrote."""
    if function.startswith("cross_entropy"):
        loss, grad = fs.cross_entropy(inputs["logits"], inputs["target"], weight=inputs["weight"],
                                      sample_weight=inputs.get("sample_weight"),
                                      reduction="none", return_grad=True, grad_out=out, **kwargs)
        return loss, grad
    if function in ("softmax_backward", "log_softmax_backward"):
        return getattr(fs, function)(inputs["grad_output"], inputs["output"], out=out, **kwargs)
    return getattr(fs, function)(inputs["x"], where=inputs["where"], out=out, **kwargs)


# (function, input name) pairs: every input of every function.
PAIRS = [(f, name) for f in ("softmax", "log_softmax", "logsumexp") for name in ("x", "where")] \
    + [(f, name) for f in ("softmax_backward", "log_softmax_backward")
       for name in ("grad_output", "output")] \
    + [("cross_entropy_labels", name) for name in ("logits", "target", "weight")] \
    + [("cross_entropy_probabilities", name) for name in ("logits", "target", "weight")] \
    + [("cross_entropy_sample_weight", "sample_weight")]


def _place(placement, out_bytes, in_bytes):
    """Byte offsets (output, input) in a shared buffer, or None if the placement is impossible."""
    if placement == "same start":
        return ALIGN, ALIGN
    if placement == "exactly":
        return (ALIGN, ALIGN) if out_bytes == in_bytes else None
    inner = min(out_bytes, in_bytes) // 2 // ALIGN * ALIGN
    if inner == 0:
        return None
    return (ALIGN, ALIGN + inner) if placement == "input inside output" else (ALIGN + inner, ALIGN)


def check_pair(function, name, shape, axis, dtype, placement):
    """Assert that ``function`` with ``name`` sharing the output's memory gives the separate answer.

    Returns False if the placement cannot be made for these sizes.
    """
    inputs, kwargs = _inputs(function, shape, axis, dtype)
    expected = _call(function, {k: v.copy() for k, v in inputs.items()}, kwargs, None)
    expected_out = expected[1] if isinstance(expected, tuple) else expected
    value = inputs[name]
    offsets = _place(placement, expected_out.nbytes, value.nbytes)
    if offsets is None:
        return False
    out_at, in_at = offsets
    buffer = np.zeros(max(out_at + expected_out.nbytes, in_at + value.nbytes) + ALIGN, np.uint8)
    out = buffer[out_at:out_at + expected_out.nbytes].view(expected_out.dtype)
    out = out.reshape(expected_out.shape)
    shared = buffer[in_at:in_at + value.nbytes].view(value.dtype).reshape(value.shape)
    shared[...] = value
    assert np.shares_memory(out, shared)
    got = _call(function, {**inputs, name: shared}, kwargs, out)
    if isinstance(got, tuple):
        np.testing.assert_array_equal(got[0], expected[0], err_msg=f"{function} loss")
        got = got[1]
    assert got is out
    np.testing.assert_array_equal(out, expected_out, err_msg=f"{function}, {name} {placement}")
    return True


# The inputs of the output's shape and dtype, which can also sit exactly on it.
SAME_SIZE = {("softmax", "x"), ("log_softmax", "x"), ("softmax_backward", "grad_output"),
             ("softmax_backward", "output"), ("log_softmax_backward", "grad_output"),
             ("log_softmax_backward", "output"), ("cross_entropy_labels", "logits"),
             ("cross_entropy_probabilities", "logits"), ("cross_entropy_probabilities", "target")}


@pytest.mark.parametrize("shape,axis", LAYOUTS)
@pytest.mark.parametrize("function,name,placement", [
    (f, name, placement) for f, name in PAIRS if (f, name) != ("cross_entropy_labels", "target")
    for placement in PLACEMENTS if placement != "exactly" or (f, name) in SAME_SIZE])
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_sharing_the_output_memory(function, name, shape, axis, dtype, placement):
    assert check_pair(function, name, shape, axis, dtype, placement)


_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _in_child(code):
    """Run ``code`` (with this module imported as ``t``) in a fresh interpreter; fail on a crash."""
    program = f"import sys; sys.path.insert(0, {_TESTS_DIR!r}); import test_aliasing as t\n"
    result = subprocess.run([sys.executable, "-c", program + textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"child exited with {result.returncode} (negative: killed by that signal)\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@pytest.mark.parametrize("shape,axis", LAYOUTS)
def test_labels_sharing_grad_out_memory_in_a_child(shape, axis):
    _in_child(f"""
        for dtype in t.DTYPES:
            for placement in t.PLACEMENTS[:-1]:  # (int64 labels are smaller than the gradient)
                assert t.check_pair("cross_entropy_labels", "target", {shape!r}, {axis}, dtype, placement)
    """)


def test_issue_reproducer_labels_in_grad_out_in_a_child():
    """The report's SIGSEGV: labels viewed from grad_out's own memory, class axis 1."""
    out = _in_child("""
        import numpy as np, fastsoftmax as fs
        logits = np.random.default_rng(0).standard_normal((2, 3, 8))
        g = np.zeros((2, 3, 8))
        labels = g.reshape(-1)[:16].view(np.int64).reshape(2, 8)
        labels[...] = 1
        expected = fs.cross_entropy(logits, labels.copy(), axis=1, return_grad=True)
        loss, grad = fs.cross_entropy(logits, labels, axis=1, return_grad=True, grad_out=g)
        assert grad is g and loss == expected[0], (loss, expected[0])
        np.testing.assert_array_equal(g, expected[1])
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_target_as_grad_out(dtype):
    """``grad_out=target`` once gave a gradient off by 0.25 (exp values stored before the target was read)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 37)).astype(dtype)
    p = fs.softmax(rng.standard_normal((4, 37)).astype(dtype))
    expected = fs.cross_entropy(x, p.copy(), return_grad=True)
    loss, grad = fs.cross_entropy(x, p, return_grad=True, grad_out=p)
    assert grad is p and loss == expected[0]
    np.testing.assert_array_equal(grad, expected[1])


def test_mask_in_the_output_memory():
    """A ``where=`` mask viewed from ``out``'s bytes once made a softmax row sum to 0.795."""
    x = np.random.default_rng(5).standard_normal((8, 64)).astype(np.float32)
    out = np.ones_like(x)
    where = out.reshape(-1).view(np.bool_)[:x.size].reshape(x.shape)  # out's first quarter
    where[...] = np.random.default_rng(6).random((8, 64)) < 0.5
    expected = fs.softmax(x, where=where.copy())
    fs.softmax(x, where=where, out=out)
    np.testing.assert_array_equal(out, expected)
    kept = where.copy().any(axis=-1)
    np.testing.assert_allclose(out.sum(axis=-1)[kept], 1, rtol=1e-6)
