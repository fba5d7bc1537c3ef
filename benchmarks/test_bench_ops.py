"""fastsoftmax vs NumPy / SciPy / PyTorch / JAX / ONNX Runtime on the workloads users run.

One benchmark group per op x workload x dtype, so each group is exactly one comparison. Each
result's extra_info carries the bytes a perfect kernel must move, from which benchmarks/report.py
computes the memory-bandwidth floor. Every result is also checked against a float64 reference on
its first and last rows, so that a fast but wrong (or wrong-axis) call cannot win a group.

Cross-entropy comes in two ops, told apart in extra_info["computes"]: `cross_entropy` is the mean
loss and its gradient (what training needs: fastsoftmax, NumPy, PyTorch autograd, JAX
value_and_grad), `cross_entropy_loss` the mean loss alone (what an inference graph computes:
ONNX Runtime's SoftmaxCrossEntropyLoss, against fastsoftmax.cross_entropy without return_grad).

ONNX Runtime (onnxruntime + onnx) runs one-node graphs built with onnx.helper (Softmax,
LogSoftmax, ReduceLogSumExp, SoftmaxCrossEntropyLoss; opset 18, last axis) on the CPU execution
provider, through an IOBinding of the NumPy input and a preallocated NumPy output, as a CPU
inference user would; intra_op_num_threads is ORT's default (0: ORT picks), matching the
automatic threads every other contender here runs with, or the count `--bench-threads N` gives
fastsoftmax, PyTorch and ORT alike (benchmarks/conftest.py). Its output is checked once before
it is timed (into a buffer first filled with NaN, so that a stale result cannot pass).
"""

import importlib
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import pytest

# name -> shape (rows, classes); the reduction is always over the last axis.
WORKLOADS = {
    "inference_row": (1, 128256),  # one next-token distribution, Llama-3 vocabulary
    "inference_batch": (32, 50257),  # a decoding batch, GPT-2 vocabulary
    "training_logits": (2048, 32000),  # one training step's logits, Llama-2 vocabulary
    "attention_scores": (16384, 512),  # attention rows: short rows that fit in L1/L2
    "classification": (1_000_000, 10),  # many rows shorter than one SIMD vector
    "tiny_call": (1, 4),  # nothing but per-call overhead
}
DTYPES = ("float32", "float64")
OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")  # cross_entropy: loss + gradient
# The mean loss without its gradient: all that an inference graph (ONNX Runtime) can compute, so
# it is a group of its own rather than a peer of the loss+grad cross_entropy.
LOSS_ONLY = "cross_entropy_loss"
ALL_OPS = OPS + (LOSS_ONLY,)
# What each cross-entropy op measures (extra_info["computes"], shown by benchmarks/report.py).
COMPUTES = {"cross_entropy": "loss+grad", LOSS_ONLY: "loss"}
SEED = 20240601

# Sanity-check tolerances: loose, since tests/ holds the accuracy contract; these only catch a
# benchmark that computes the wrong thing.
RTOL = {"float32": 1e-3, "float64": 1e-9}
ATOL = {"float32": 1e-6, "float64": 1e-12}  # log-domain results and losses, of order 1-10
PROBABILITY_ATOL = {"float32": 1e-37, "float64": 1e-307}  # the smallest normal number's scale


@dataclass
class Case:
    """One workload's inputs, made once per (shape, dtype) and shared by every op and implementation."""

    workload: str
    x: np.ndarray
    target: np.ndarray  # int64 class labels, one per row

    @property
    def dtype(self):
        return self.x.dtype.name

    # Outputs for the out=/grad_out= variant: allocated once, and filled so that their pages are
    # faulted in before any timing (np.zeros would map lazy zero pages).
    @cached_property
    def out_full(self):  # softmax / log_softmax out=, cross_entropy grad_out=
        return np.full_like(self.x, 0)

    @cached_property
    def out_rows(self):  # logsumexp out= (keepdims=False)
        return np.full(self.x.shape[:-1], 0, dtype=self.x.dtype)

    @cached_property
    def reference_loss(self):
        """Mean cross-entropy in float64, in row blocks so the big workloads need no full float64 copy."""
        total = 0.0
        block = max(1, 2**20 // self.x.shape[1])
        for start in range(0, len(self.x), block):
            rows = slice(start, start + block)
            x = self.x[rows].astype(np.float64)
            total += np.sum(_np_logsumexp(x) - np.take_along_axis(x, self.target[rows, None], -1)[:, 0])
        return total / len(self.x)

    def bytes_moved(self, op):
        """(read, written) by an ideal kernel: each input read once, each output written once.

        logsumexp writes only one value per row, so its floor is essentially a read-only one.
        """
        n_rows, item = self.x.shape[0], self.x.itemsize
        if op == "logsumexp":
            return self.x.nbytes, n_rows * item
        if op == "cross_entropy":  # logits + labels in; gradient + scalar loss out
            return self.x.nbytes + self.target.nbytes, self.x.nbytes + item
        if op == LOSS_ONLY:  # logits + labels in; the scalar loss out
            return self.x.nbytes + self.target.nbytes, item
        return self.x.nbytes, self.x.nbytes


@pytest.fixture(
    scope="module",
    params=[(w, d) for w in WORKLOADS for d in DTYPES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def case(request):
    # Module scope with params: pytest runs all tests of one (workload, dtype) together and frees
    # the previous inputs before making the next, so at most one training_logits copy is alive.
    workload, dtype = request.param
    rows, classes = WORKLOADS[workload]
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((rows, classes), dtype=dtype)
    target = rng.integers(0, classes, size=rows, dtype=np.int64)
    return Case(workload, x, target)


# --- NumPy written the usual way -----------------------------------------------------------------


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _np_logsumexp(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[:, 0]


def _np_cross_entropy(x, target):
    """Mean cross-entropy and its gradient d loss / d x = (softmax(x) - onehot(target)) / n."""
    n = len(x)
    rows = np.arange(n)
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(-1, keepdims=True)
    loss = np.mean((m + np.log(s))[:, 0] - x[rows, target])
    grad = e / s
    grad[rows, target] -= 1
    grad /= n
    return loss, grad


NUMPY_OPS = {
    "softmax": _np_softmax,
    "log_softmax": _np_log_softmax,
    "logsumexp": _np_logsumexp,
    "cross_entropy": _np_cross_entropy,
}


# --- Implementations: each builder turns (op, case) into a zero-argument call to time -------------
# Conversions into a library's own array type happen here, outside the timing; each library is
# imported here too, so that a missing one skips its cases rather than the whole module.


def _import_or_skip(name):
    # Unlike pytest.importorskip, also skip (and say why) when the module is there but fails to
    # import, e.g. an extension that is not built yet; run with -ra to see the reasons.
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"cannot import {name}: {exc}")


def _fastsoftmax(op, case, *, preallocated):
    fs = _import_or_skip("fastsoftmax")
    name = "cross_entropy" if op == LOSS_ONLY else op
    fn = getattr(fs, name, None)
    if fn is None:
        pytest.skip(f"fastsoftmax.{name} does not exist yet")
    if op == LOSS_ONLY:  # no out= for a scalar, hence no fastsoftmax_out case
        return partial(fn, case.x, case.target)
    if op == "cross_entropy":
        kwargs = {"grad_out": case.out_full} if preallocated else {}
        return partial(fn, case.x, case.target, return_grad=True, **kwargs)
    if preallocated:
        return partial(fn, case.x, out=case.out_rows if op == "logsumexp" else case.out_full)
    return partial(fn, case.x)


def _fastsoftmax_ordinary_stores(op, case):
    """fastsoftmax with out=/grad_out= and streaming stores off (fastsoftmax.set_stream_threshold):
    in the same group as fastsoftmax_out, which streams where the workload is at least the
    threshold, so the pair shows what streaming gains or costs at each size."""
    import sys

    fs = _import_or_skip("fastsoftmax")
    if not hasattr(fs, "set_stream_threshold"):
        pytest.skip("fastsoftmax.set_stream_threshold does not exist yet")
    if case.x.nbytes < 2**20:
        pytest.skip("a workload this small never streams")
    call = _fastsoftmax(op, case, preallocated=True)

    def run():
        fs.set_stream_threshold(sys.maxsize)
        try:
            return call()
        finally:
            fs.set_stream_threshold()

    return run


def _numpy(op, case):
    args = (case.x, case.target) if op == "cross_entropy" else (case.x,)
    return partial(NUMPY_OPS[op], *args)


def _scipy(op, case):
    special = _import_or_skip("scipy.special")
    return partial(getattr(special, op), case.x, axis=-1)


def _torch(op, case):
    torch = _import_or_skip("torch")
    logits = torch.from_numpy(case.x)  # shares memory: no copy
    if op != "cross_entropy":
        return partial(getattr(torch, op), logits, -1)
    logits = logits.requires_grad_(True)
    target = torch.from_numpy(case.target)

    def loss_and_grad():
        loss = torch.nn.functional.cross_entropy(logits, target)  # reduction="mean"
        # autograd.grad returns a fresh gradient instead of accumulating into logits.grad.
        (grad,) = torch.autograd.grad(loss, logits)
        return loss, grad

    return loss_and_grad


def _jax(op, case):
    jax = _import_or_skip("jax")
    jnp = jax.numpy
    jax.config.update("jax_enable_x64", True)  # float64 inputs and int64 labels stay what they are

    def cross_entropy(logits, target):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, target[:, None], axis=-1))

    if op == "cross_entropy":
        fn = jax.jit(jax.value_and_grad(cross_entropy))
        args = (jax.device_put(case.x), jax.device_put(case.target))
    else:
        fn = jax.jit(partial(getattr(jax.nn, op), axis=-1))
        args = (jax.device_put(case.x),)
    # JAX dispatches asynchronously: without blocking we would time only the dispatch.
    return lambda: jax.block_until_ready(fn(*args))


# ONNX Runtime: a one-node graph per op. Opset 18 is the first whose ReduceLogSumExp takes its axes
# as an input (as every opset-18+ Reduce* does); all four ops have CPU kernels for float32 and
# float64 there (onnxruntime 1.32; an older one without a float64 kernel skips those cases).
ORT_OPSET = 18


def _onnx_model(onnx, op, dtype):
    helper = onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inputs = [helper.make_tensor_value_info("x", elem, ["N", "C"])]
    initializers = []
    if op == "softmax" or op == "log_softmax":
        node = helper.make_node("Softmax" if op == "softmax" else "LogSoftmax", ["x"], ["y"], axis=-1)
        out_shape = ["N", "C"]
    elif op == "logsumexp":
        initializers.append(helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [-1]))
        node = helper.make_node("ReduceLogSumExp", ["x", "axes"], ["y"], keepdims=0)
        out_shape = ["N"]
    elif op == LOSS_ONLY:  # scores (N, C): the class axis is axis 1, the last one
        inputs.append(helper.make_tensor_value_info("target", onnx.TensorProto.INT64, ["N"]))
        node = helper.make_node("SoftmaxCrossEntropyLoss", ["x", "target"], ["y"], reduction="mean")
        out_shape = []
    else:
        raise ValueError(op)
    outputs = [helper.make_tensor_value_info("y", elem, out_shape)]
    graph = helper.make_graph([node], op, inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", ORT_OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    return model


def _ort_options(ort, n_threads):
    """ORT session options on n_threads intra-op threads; None is ORT's own default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 0 if n_threads is None else n_threads  # 0: ORT picks
    return options


def _onnxruntime(op, case, n_threads=None):
    """run_with_iobinding into a preallocated output; n_threads None is ORT's own default."""
    ort = _import_or_skip("onnxruntime")
    onnx = _import_or_skip("onnx")
    model = _onnx_model(onnx, op, case.dtype).SerializeToString()
    try:
        session = ort.InferenceSession(model, _ort_options(ort, n_threads),
                                       providers=["CPUExecutionProvider"])
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as exc:  # no kernel for this dtype
        pytest.skip(f"onnxruntime {ort.__version__} cannot run {op} on {case.dtype}: {exc}")

    if op == LOSS_ONLY:
        out = np.full((), 0, dtype=case.x.dtype)
    else:
        out = case.out_rows if op == "logsumexp" else case.out_full
    binding = session.io_binding()
    # Bound by address: ORT reads the NumPy input and writes the NumPy output in place, no copies.
    binding.bind_input("x", "cpu", 0, case.x.dtype, list(case.x.shape), case.x.ctypes.data)
    if op == LOSS_ONLY:
        binding.bind_input("target", "cpu", 0, np.int64, list(case.target.shape), case.target.ctypes.data)
    binding.bind_output("y", "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)

    def run():
        session.run_with_iobinding(binding)
        return out

    # Its result is checked by test_op's measure() before any timing (once: the full check
    # of a big workload takes about a second); here only that it writes where it is bound.
    run()
    out_ptr = binding.get_outputs()[0].data_ptr()
    assert out_ptr == out.ctypes.data, "onnxruntime did not write into the bound output"
    return run


# name -> (ops it provides, builder). Names starting with "fastsoftmax" are ours, all others are
# peers (benchmarks/report.py relies on that).
IMPLEMENTATIONS = {
    "fastsoftmax": (ALL_OPS, partial(_fastsoftmax, preallocated=False)),
    "fastsoftmax_out": (OPS, partial(_fastsoftmax, preallocated=True)),
    "fastsoftmax_out_ordinary_stores": (("softmax", "log_softmax", "cross_entropy"),
                                        _fastsoftmax_ordinary_stores),
    "numpy": (OPS, _numpy),
    "scipy": (("softmax", "log_softmax", "logsumexp"), _scipy),
    "torch": (OPS, _torch),
    "jax": (OPS, _jax),
    "onnxruntime": (("softmax", "log_softmax", "logsumexp", LOSS_ONLY), _onnxruntime),
}


# --- Checking a result --------------------------------------------------------------------------


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor, possibly part of an autograd graph
        value = value.detach()
    return np.asarray(value)


def _check(op, case, result):
    """Compare every row of a result with NumPy in float64 (in blocks of rows), and the loss.

    Probabilities and gradient entries are small (1/C, 1/(N*C)): they are compared by their
    relative error alone (PROBABILITY_ATOL only forgives results under the smallest normal
    number), so a result wrong in its small entries cannot pass under ATOL."""
    if op == LOSS_ONLY:
        loss = _to_numpy(result)
        assert loss.shape == ()
        _close(loss, case.reference_loss, case.dtype, ATOL)
        return
    if op == "cross_entropy":
        loss, grad = map(_to_numpy, result)
        _close(loss, case.reference_loss, case.dtype, ATOL)
        result = grad
    else:
        result = _to_numpy(result)
    assert result.shape == (case.x.shape[:-1] if op == "logsumexp" else case.x.shape)
    n = len(case.x)
    block = max(1, 2**20 // case.x.shape[1])
    for start in range(0, n, block):
        rows = slice(start, start + block)
        x = case.x[rows].astype(np.float64)
        if op == "cross_entropy":  # the gradient of the mean over these rows, rescaled to all
            _, expected = _np_cross_entropy(x, case.target[rows])
            _close(result[rows], expected * len(x) / n, case.dtype, PROBABILITY_ATOL)
        else:
            atol = PROBABILITY_ATOL if op == "softmax" else ATOL
            _close(result[rows], NUMPY_OPS[op](x), case.dtype, atol)


def _close(got, expected, dtype, atol):
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=atol[dtype])


@pytest.mark.parametrize(
    "op, implementation",
    [(op, name) for op in ALL_OPS for name, (ops, _) in IMPLEMENTATIONS.items() if op in ops],
)
def test_op(benchmark, measure, bench_threads, case, op, implementation):
    shape = "x".join(map(str, case.x.shape))
    benchmark.group = f"{op} {case.workload} {shape} {case.dtype}"
    bytes_read, bytes_written = case.bytes_moved(op)
    benchmark.extra_info.update(
        implementation=implementation,
        op=op,
        workload=case.workload,
        shape=list(case.x.shape),
        dtype=case.dtype,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
    )
    if op in COMPUTES:
        benchmark.extra_info["computes"] = COMPUTES[op]
    build = IMPLEMENTATIONS[implementation][1]
    if implementation == "onnxruntime":
        # 0 is ORT's default: it picks the count
        benchmark.extra_info["intra_op_num_threads"] = bench_threads or 0
        build = partial(build, n_threads=bench_threads)
    # Checked before it may be timed, its outputs first filled with NaN so that no earlier
    # contender's result in them can pass for its own.
    case.out_full.fill(np.nan)
    case.out_rows.fill(np.nan)
    measure(build(op, case), check=partial(_check, op, case))


# --- top_k: the k largest logits of each row and their indices ----------------------------------
# A group of its own per shape (float32, k = 50, the sampling workloads' shapes): fastsoftmax.top_k,
# torch.topk and NumPy's argpartition + a sort of the k, in the same run. bytes_read is x (the
# floor of a one-pass kernel); bytes_written the values and indices.

TOP_K = 50
TOP_K_SHAPES = {"inference_row": (1, 128256), "inference_batch": (32, 50257)}


def _np_top_k(x, k):
    part = np.argpartition(-x, k - 1, axis=-1)[:, :k]
    picked = np.take_along_axis(x, part, -1)
    order = np.argsort(-picked, axis=-1, kind="stable")
    return np.take_along_axis(picked, order, -1), np.take_along_axis(part, order, -1)


def _top_k_call(implementation, x):
    if implementation == "fastsoftmax":
        fs = _import_or_skip("fastsoftmax")
        if not hasattr(fs, "top_k"):
            pytest.skip("fastsoftmax.top_k does not exist yet")
        return partial(fs.top_k, x, TOP_K)
    if implementation == "torch":
        torch = _import_or_skip("torch")
        return partial(torch.topk, torch.from_numpy(x), TOP_K)
    return partial(_np_top_k, x, TOP_K)


@pytest.mark.parametrize("implementation", ["fastsoftmax", "torch", "numpy"])
@pytest.mark.parametrize("workload", list(TOP_K_SHAPES))
def test_top_k(benchmark, measure, workload, implementation):
    rows, classes = TOP_K_SHAPES[workload]
    x = np.random.default_rng(SEED).standard_normal((rows, classes), dtype="float32")
    benchmark.group = f"top_k {rows}x{classes} float32"
    benchmark.extra_info.update(
        implementation=implementation, op="top_k", workload=workload, shape=[rows, classes],
        dtype="float32", bytes_read=x.nbytes, bytes_written=rows * TOP_K * (4 + 8))
    expected = -np.sort(-x, axis=-1)[:, :TOP_K]  # no ties in normal float32 draws of this size

    def check(result):
        values, indices = map(_to_numpy, result)
        np.testing.assert_array_equal(values, expected)
        np.testing.assert_array_equal(np.take_along_axis(x, indices, -1), expected)

    measure(_top_k_call(implementation, x), check=check)


# --- softmax with a mask: causal attention -------------------------------------------------------
# Scores of a batch of heads (8, 512, 512) under a causal (512, 512) mask broadcast over the batch,
# float32: fastsoftmax's where= (with and without out=), what PyTorch users write
# (masked_fill with -inf, then softmax), JAX's softmax(where=), NumPy's np.where + softmax, and an
# ONNX Runtime graph of Where and Softmax. bytes_read is the scores and the mask once (a kernel
# that reads the broadcast mask once per head moves more); bytes_written the probabilities.

MASKED_SHAPE = (8, 512, 512)
MASKED_IMPLEMENTATIONS = ("fastsoftmax", "fastsoftmax_out", "torch", "jax", "numpy",
                          "onnxruntime")


@pytest.fixture(scope="module")
def masked_case():
    x = np.random.default_rng(SEED).standard_normal(MASKED_SHAPE, dtype="float32")
    causal = np.tril(np.ones(MASKED_SHAPE[1:], bool))
    return x, causal, np.full_like(x, 0)


def _np_masked_softmax(x, mask):
    return _np_softmax(np.where(mask, x, -np.inf))


def _onnx_masked_softmax(x, mask, out, n_threads):
    ort = _import_or_skip("onnxruntime")
    onnx = _import_or_skip("onnx")
    helper = onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    ninf = helper.make_tensor("ninf", elem, [], [-np.inf])
    nodes = [helper.make_node("Where", ["mask", "x", "ninf"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "masked_softmax",
        [helper.make_tensor_value_info("x", elem, list(x.shape)),
         helper.make_tensor_value_info("mask", onnx.TensorProto.BOOL, list(mask.shape))],
        [helper.make_tensor_value_info("y", elem, list(x.shape))], initializer=[ninf])
    opsets = [helper.make_opsetid("", ORT_OPSET)]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), _ort_options(ort, n_threads),
                                   providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    binding.bind_input("x", "cpu", 0, x.dtype, list(x.shape), x.ctypes.data)
    binding.bind_input("mask", "cpu", 0, np.bool_, list(mask.shape), mask.ctypes.data)
    binding.bind_output("y", "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)

    def run():
        session.run_with_iobinding(binding)
        return out

    out.fill(np.nan)  # checked by the caller, from a buffer that cannot pass by accident
    return run


def _masked_call(implementation, x, mask, out, n_threads):
    if implementation.startswith("fastsoftmax"):
        fs = _import_or_skip("fastsoftmax")
        kwargs = {"out": out} if implementation == "fastsoftmax_out" else {}
        return partial(fs.softmax, x, where=mask, **kwargs)
    if implementation == "torch":
        torch = _import_or_skip("torch")
        scores, masked_out = torch.from_numpy(x), torch.from_numpy(~mask)
        return lambda: scores.masked_fill(masked_out, float("-inf")).softmax(-1)
    if implementation == "jax":
        jax = _import_or_skip("jax")
        fn = jax.jit(lambda s, m: jax.nn.softmax(s, axis=-1, where=m))
        args = (jax.device_put(x), jax.device_put(mask))
        return lambda: jax.block_until_ready(fn(*args))
    if implementation == "onnxruntime":
        return _onnx_masked_softmax(x, mask, out, n_threads)
    return partial(_np_masked_softmax, x, mask)


@pytest.mark.parametrize("implementation", MASKED_IMPLEMENTATIONS)
def test_masked_softmax(benchmark, measure, bench_threads, masked_case, implementation):
    x, mask, out = masked_case
    benchmark.group = f"softmax where=causal {'x'.join(map(str, x.shape))} float32"
    benchmark.extra_info.update(
        implementation=implementation, op="softmax where=", workload="causal_attention",
        shape=list(x.shape), dtype="float32", bytes_read=x.nbytes + mask.nbytes,
        bytes_written=x.nbytes)
    if implementation == "onnxruntime":
        benchmark.extra_info["intra_op_num_threads"] = bench_threads or 0

    def check(result):  # every head, in float64 (masked entries exactly 0)
        got = _to_numpy(result)
        assert got.shape == x.shape
        expected = _np_masked_softmax(x.astype(np.float64), mask)
        _close(got, expected, "float32", PROBABILITY_ATOL)

    out.fill(np.nan)  # (no earlier contender's result may pass for this one's)
    measure(_masked_call(implementation, x, mask, out, bench_threads), check=check)
