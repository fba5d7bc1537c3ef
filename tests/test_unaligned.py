"""How the kernels touch memory: unaligned arrays, and class labels read only once.

Unaligned arrays.  NumPy arrays can be C-contiguous yet not aligned to their
element size (``np.frombuffer(bytearray(4 * n + 1), np.float32, offset=1)``,
``.flags.aligned`` False), and NumPy accepts such an array as ``out=``.  The
kernels must then touch every element through memcpy (a plain ``x[i]`` is
undefined behaviour: UBSan reports it, and a vectorizer may emit an aligned
vector move that faults).  Every op runs here, in both dtypes, on every ISA,
with rows on both sides of FS_SHORT_ROW = 16, panels of several tile widths
and long rows split across threads, with every float (and label) input and
every output unaligned: the results must equal those of aligned copies bit for
bit.  Each case calls ``fastsoftmax._core`` directly, so the arrays surely
reach the kernels unaligned whatever the API layer copies, and then the public
function, which must accept the unaligned ``out=``/``grad_out=``.  On x86 the
hardware forgives unaligned scalar loads, so a regression shows under
``tools/sanitize.sh`` (UBSan's alignment check) rather than as wrong numbers.

Labels read once.  A cross-entropy kernel that checked a label and later read
it again to index the gradient wrote out of bounds when the labels changed in
between: when they share memory with the gradient it writes, or when another
Python thread rewrites them while the kernel runs without the GIL.  Both run
in a child process, so a crash fails the test instead of ending the run.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _logsumexp
from conftest import (CHUNK, VECTOR_BYTES, check_log_softmax, check_logsumexp, check_softmax,
                      random_logits)

# (dtype, byte offset from an element-aligned address): float32 at an odd
# address; float64 at 4 mod 8 (a float32-aligned buffer) and at an odd one.
MISALIGNMENTS = [(np.float32, 1), (np.float64, 4), (np.float64, 1)]
MISALIGNMENT_IDS = ["float32+1", "float64+4", "float64+1"]
# (shape, axis): short rows (one per lane), rows of the row kernels, and panels
# whose widths give a partial tile, whole tiles and two-vector tiles plus a rest.
LAYOUTS = [((37, 5), -1), ((37, 16), -1), ((37, 17), -1), ((9, 100), -1),
           ((3, 5, 5), 1), ((3, 17, 16), 1), ((2, 9, 40), 1), ((40, 3), 0)]
LAYOUT_IDS = ["rows5", "rows16", "rows17", "rows100", "panel5x5", "panel17x16", "panel9x40",
              "axis0"]
LONG_ROW = (1, 2 * CHUNK + 3)  # split across threads in FS_CHUNK pieces (_run_long_rows)


def placed(a, offset):
    """A copy of `a` (C-contiguous, writeable) that starts `offset` bytes past a 64-byte boundary."""
    a = np.ascontiguousarray(a)
    raw = np.zeros(a.nbytes + 128, np.uint8)
    start = (offset - raw.ctypes.data) % 64
    copy = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    copy[...] = a
    assert copy.ctypes.data % 64 == offset and copy.flags.c_contiguous and copy.flags.writeable
    return copy


def unaligned(a, offset):
    """placed(a, offset) where that is not a multiple of a's element size."""
    copy = placed(a, offset)
    assert not copy.flags.aligned
    return copy


def assert_bitwise(got, expected, what):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    assert got.tobytes() == expected.tobytes(), (
        f"{what}: differs at {np.argwhere(got.view(np.uint8) != expected.view(np.uint8))[:4]}")


def reduction_view(shape, axis):
    """(outer, n, inner) as the API hands it to _core."""
    axis %= len(shape)
    return (int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:])))


def threads_for(shape):
    return 2 if shape == LONG_ROW else 1


# ---------------------------------------------------------------- softmax, log_softmax, logsumexp

@pytest.mark.parametrize("dtype,offset", MISALIGNMENTS, ids=MISALIGNMENT_IDS)
@pytest.mark.parametrize("shape,axis", LAYOUTS + [(LONG_ROW, -1)], ids=LAYOUT_IDS + ["long_row"])
def test_softmax_family(isa, dtype, offset, shape, axis):
    x = random_logits(shape, dtype, seed=sum(shape))
    x.flat[::7] = -np.inf
    if shape != LONG_ROW:
        # Slices whose max is infinite, which logsumexp scans for a NaN: all -inf, and a +inf.
        first, last = [0] * len(shape), [-1] * len(shape)
        first[axis], last[axis] = slice(None), 1
        x[tuple(first)] = -np.inf
        x[tuple(last)] = np.inf
    where = np.random.default_rng(1).random(shape) > 0.3
    outer, n, inner = reduction_view(shape, axis)
    reduced = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    xu = unaligned(x, offset)
    for op, name in enumerate(("softmax", "log_softmax", "logsumexp")):
        out_shape = reduced if name == "logsumexp" else shape
        for temperature in ((1.0,) if name == "logsumexp" else (1.0, 0.7)):
            for mask in (None, where):
                what = f"{name} T={temperature} where={mask is not None}"
                expected = np.empty(out_shape, dtype)
                _core.softmax_family(x, expected, mask, outer, n, inner, 1 / temperature, op,
                                     threads_for(shape))
                got = unaligned(np.zeros(out_shape, dtype), offset)
                _core.softmax_family(xu, got, mask, outer, n, inner, 1 / temperature, op,
                                     threads_for(shape))
                assert_bitwise(got, expected, f"_core {what}")
                if name == "logsumexp":  # float32 results near 0 are computed again in float64
                    _logsumexp._redo_near_zero(x, expected, mask, outer, n, inner,
                                               threads_for(shape))
                # The public function, into an unaligned out= (and in place for the first two).
                func = getattr(fs, name)
                kwargs = {} if name == "logsumexp" else {"temperature": temperature}
                got = unaligned(np.zeros(out_shape, dtype), offset)
                assert func(xu, axis, where=mask, out=got, n_threads=threads_for(shape),
                            **kwargs) is got
                assert_bitwise(got, expected, what)
                if name != "logsumexp":
                    inplace = unaligned(x, offset)
                    func(inplace, axis, where=mask, out=inplace, **kwargs)
                    assert_bitwise(inplace, expected, f"{what} in place")


# ---------------------------------------------------------------- vector alignment

def _row_lengths(isa, dtype):
    """Around the vector, the unrolled step and the blocked step: where rows go alone."""
    info = _core.kernel_info()[isa][np.dtype(dtype).name]
    lanes, step = info["lanes"], info["lanes"] * info["unroll"]
    block = step * info["flush_steps"]
    lengths = {info["short_row"] + 1, info["short_softmax_row"] + 1, lanes - 1, lanes + 1,
               2 * lanes - 1, step + 1,
               block - 1, block, block + 1, block + lanes - 1, 3 * block + 2}
    return sorted(n for n in lengths if n > info["short_row"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=str)
def test_every_vector_offset_gives_the_same_bits(isa, dtype):
    """A row's max pass and its element-wise last pass start with a partial vector up to
    the first vector-aligned address of x (the max) or of out (the last pass), and its sum
    pass stores whole vectors at out's aligned addresses (VJOIN), so that NumPy's 16-byte
    alignment does not split their loads and stores across cache lines.  No result
    depends on which lane an element meets: x and out at every element offset, apart and
    together and in place, give the bits of 64-byte aligned arrays."""
    itemsize = np.dtype(dtype).itemsize
    out_dtype = np.float32 if dtype == np.float16 else dtype
    rng = np.random.default_rng(3)
    for n in _row_lengths(isa, dtype) + [CHUNK - 1, CHUNK + 5]:
        rows = 1 if n > CHUNK else 3
        x = random_logits((rows, n), dtype, seed=n)
        x[0, ::5] = -np.inf
        x[-1, n // 2] = 40  # a max that dominates its row's sum
        x[0, 2] = 45  # a max among the first elements, where the partial vector reads
        where = rng.random(x.shape) > 0.2
        for name in ("softmax", "log_softmax", "logsumexp"):
            func = getattr(fs, name)
            out_shape = (rows,) if name == "logsumexp" else (rows, n)
            cases = [{}, {"where": where}]
            if name != "logsumexp":
                cases.append({"temperature": 0.7})
            for kwargs, threads in [(k, 1) for k in cases] + [({}, 2)]:
                what = f"{name} n={n} {sorted(kwargs)} threads={threads}"
                expected = placed(np.zeros(out_shape, out_dtype), 0)
                func(placed(x, 0), out=expected, n_threads=threads, **kwargs)
                check = {"softmax": check_softmax, "log_softmax": check_log_softmax,
                         "logsumexp": check_logsumexp}[name]
                check(expected, x.astype(out_dtype), axis=-1, where=kwargs.get("where"),
                      **({"temperature": kwargs["temperature"]} if "temperature" in kwargs
                         else {}))
                for offset in range(itemsize, VECTOR_BYTES, itemsize):
                    for x_at, out_at in ((offset, 0), (0, offset), (offset, offset)):
                        got = placed(np.full(out_shape, np.nan, out_dtype), out_at)
                        func(placed(x, x_at), out=got, n_threads=threads, **kwargs)
                        assert_bitwise(got, expected, f"{what} x at +{x_at} out at +{out_at}")
                    if name != "logsumexp" and dtype != np.float16:
                        inplace = placed(x, offset)
                        func(inplace, out=inplace, n_threads=threads, **kwargs)
                        assert_bitwise(inplace, expected, f"{what} in place at +{offset}")
        if dtype == np.float16:  # 16-bit results: the last pass stores half as many bytes
            expected = fs.softmax(placed(x, 0), out=placed(np.zeros(x.shape, dtype), 0))
            for offset in range(itemsize, VECTOR_BYTES, itemsize):
                got = fs.softmax(placed(x, offset), out=placed(np.zeros(x.shape, dtype), offset))
                assert_bitwise(got, expected, f"float16 softmax n={n} at +{offset}")


# ---------------------------------------------------------------- backward helpers

@pytest.mark.parametrize("dtype,offset", MISALIGNMENTS, ids=MISALIGNMENT_IDS)
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("log", [False, True])
def test_backward(isa, dtype, offset, shape, axis, log):
    x = random_logits(shape, dtype, seed=sum(shape))
    y = (fs.log_softmax if log else fs.softmax)(x, axis)
    g = random_logits(shape, dtype, seed=2, scale=1.0)
    outer, n, inner = reduction_view(shape, axis)
    expected = np.empty(shape, dtype)
    _core.backward(g, y, expected, outer, n, inner, log, 1)
    gu, yu = unaligned(g, offset), unaligned(y, offset)
    got = unaligned(np.zeros(shape, dtype), offset)
    _core.backward(gu, yu, got, outer, n, inner, log, 1)
    assert_bitwise(got, expected, "_core backward")
    func = fs.log_softmax_backward if log else fs.softmax_backward
    got = unaligned(np.zeros(shape, dtype), offset)
    assert func(gu, yu, axis, out=got) is got
    assert_bitwise(got, expected, func.__name__)
    assert_bitwise(func(gu, yu, axis, out=gu), expected, f"{func.__name__} into grad_output")


# ---------------------------------------------------------------- cross_entropy

def ce_inputs(shape, axis, dtype, targets):
    """(logits, labels or probabilities, weight) for one layout, with ignored samples."""
    rng = np.random.default_rng(sum(shape))
    logits = random_logits(shape, dtype, seed=sum(shape) + 1)
    n_classes = shape[axis]
    sample_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    if targets == "index":
        target = rng.integers(0, n_classes, sample_shape)
        target.flat[::5] = -100
    else:
        target = fs.softmax(rng.standard_normal(shape), axis).astype(dtype)
    weight = (rng.random(n_classes) + 0.5).astype(dtype)
    return logits, target, weight


@pytest.mark.parametrize("dtype,offset", MISALIGNMENTS, ids=MISALIGNMENT_IDS)
@pytest.mark.parametrize("shape,axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("targets", ["index", "probabilities"])
def test_cross_entropy(isa, dtype, offset, shape, axis, targets):
    logits, target, weight = ce_inputs(shape, axis, dtype, targets)
    outer, n, inner = reduction_view(shape, axis)
    labels = target if targets == "index" else None
    probabilities = None if targets == "index" else target
    xu = unaligned(logits, offset)
    # int64 labels at the same offset: unaligned too (for offsets that are not multiples of 8).
    lu = None if labels is None else unaligned(labels, offset)
    pu = None if probabilities is None else unaligned(probabilities, offset)
    for w, smoothing in ((None, 0.0), (weight, 0.0), (weight, 0.2)):
        wu = None if w is None else unaligned(w, offset)
        weight_sum = float(n) if w is None else float(w.sum(dtype=np.float64))
        what = f"weight={w is not None} smoothing={smoothing}"
        if labels is not None:
            stats = _core.label_stats(labels, n, -100, w)
            assert _core.label_stats(lu, n, -100, wu) == stats, f"label_stats {what}"
        for with_grad in (False, True):
            loss = np.zeros((outer, inner))
            grad = np.empty(shape, dtype) if with_grad else None
            _core.cross_entropy(logits, labels, probabilities, w, weight_sum, smoothing, -100,
                                loss, grad, 0.5, outer, n, inner, 1)
            loss_u = unaligned(np.zeros((outer, inner)), offset)
            grad_u = unaligned(np.zeros(shape, dtype), offset) if with_grad else None
            _core.cross_entropy(xu, lu, pu, wu, weight_sum, smoothing, -100, loss_u, grad_u, 0.5,
                                outer, n, inner, 1)
            assert_bitwise(loss_u, loss, f"_core loss, {what}")
            if with_grad:
                assert_bitwise(grad_u, grad, f"_core gradient, {what}")
            if with_grad:  # in place: the gradient over the unaligned logits
                inplace = unaligned(logits, offset)
                _core.cross_entropy(inplace, lu, pu, wu, weight_sum, smoothing, -100, loss_u,
                                    inplace, 0.5, outer, n, inner, 1)
                assert_bitwise(loss_u, loss, f"_core loss in place, {what}")
                assert_bitwise(inplace, grad, f"_core gradient in place, {what}")
        # The public function: unaligned logits, target, weight and grad_out.
        expected = fs.cross_entropy(logits, target, axis=axis, weight=w, label_smoothing=smoothing,
                                    reduction="none", return_grad=True)
        grad_out = unaligned(np.zeros(shape, dtype), offset)
        got = fs.cross_entropy(xu, lu if labels is not None else pu, axis=axis, weight=wu,
                               label_smoothing=smoothing, reduction="none", return_grad=True,
                               grad_out=grad_out)
        assert got[1] is grad_out
        assert_bitwise(got[0], expected[0], f"loss, {what}")
        assert_bitwise(got[1], expected[1], f"gradient, {what}")
        for reduction in ("mean", "sum"):
            assert_bitwise(
                fs.cross_entropy(xu, lu if labels is not None else pu, axis=axis, weight=wu,
                                 label_smoothing=smoothing, reduction=reduction),
                fs.cross_entropy(logits, target, axis=axis, weight=w, label_smoothing=smoothing,
                                 reduction=reduction), f"{reduction} loss, {what}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_cross_entropy_gradient_at_every_vector_offset(isa, dtype):
    """The gradient's sum pass stores the exponentials at the logits' lanes (unlike
    softmax's, which go to out's aligned addresses) and its gradient pass reads them back
    there: logits and grad_out at every element offset, apart, together and in place,
    with the label in the first vector, the last or between, give the bits of 64-byte
    aligned arrays."""
    itemsize = np.dtype(dtype).itemsize
    for n in _row_lengths(isa, dtype) + [CHUNK - 1, CHUNK, CHUNK + 5]:
        rows = 1 if n > CHUNK else 3
        x = random_logits((rows, n), dtype, seed=n)
        labels = np.array([0, n - 1, n // 2][:rows])
        probabilities = fs.softmax(random_logits((rows, n), dtype, seed=n + 1), axis=-1)
        weight = (np.random.default_rng(n).random(n) + 0.5).astype(dtype)
        for target, kwargs in ((labels, {}), (labels, {"weight": weight, "label_smoothing": 0.1}),
                               (probabilities, {})):
            for threads in (1, 2):
                what = f"n={n} {'labels' if target is labels else 'probabilities'} " \
                       f"{sorted(kwargs)} threads={threads}"
                expected_grad = placed(np.zeros((rows, n), dtype), 0)
                expected_loss, _ = fs.cross_entropy(placed(x, 0), target, reduction="none",
                                                    return_grad=True, grad_out=expected_grad,
                                                    n_threads=threads, **kwargs)
                for offset in range(itemsize, VECTOR_BYTES, itemsize):
                    for x_at, grad_at in ((offset, 0), (0, offset), (offset, offset)):
                        grad = placed(np.full((rows, n), np.nan, dtype), grad_at)
                        loss, _ = fs.cross_entropy(placed(x, x_at), target, reduction="none",
                                                   return_grad=True, grad_out=grad,
                                                   n_threads=threads, **kwargs)
                        where = f"{what} logits at +{x_at} grad at +{grad_at}"
                        assert_bitwise(grad, expected_grad, where)
                        assert_bitwise(loss, expected_loss, f"loss, {where}")
                    inplace = placed(x, offset)
                    fs.cross_entropy(inplace, target, reduction="none", return_grad=True,
                                     grad_out=inplace, n_threads=threads, **kwargs)
                    assert_bitwise(inplace, expected_grad, f"{what} in place at +{offset}")


# ---------------------------------------------------------------- labels read once

def run_child(code, *args):
    """Run `code` in a child python that imports this very fastsoftmax; its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fs.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args, root], cwd=root,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"child exited with {result.returncode} (a negative status is the signal that killed it: "
        f"-11 is SIGSEGV)\n{result.stdout}\n{result.stderr}")
    return result.stdout


LABELS_IN_THE_GRADIENT = """
    import sys
    import numpy as np
    from fastsoftmax import _core

    import fastsoftmax
    isa, dtype, root = sys.argv[1], np.dtype(sys.argv[2]), sys.argv[3]
    assert fastsoftmax.__file__.startswith(root), fastsoftmax.__file__
    assert _core.set_isa(isa)
    for shape, axis in (((2, 5, 8), 1), ((2, 20, 9), 1), ((16, 5), -1), ((16, 40), -1)):
        n = shape[axis]
        outer, inner = (shape[0], shape[2]) if axis == 1 else (shape[0], 1)
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        guard = 4096
        memory = np.zeros(2 * guard + x.size, dtype)
        grad = memory[guard:guard + x.size].reshape(shape)
        # The labels are the gradient's first bytes: the kernel's own stores change them.
        labels = grad.reshape(-1).view(np.int64)[:outer * inner].reshape(outer, inner)
        labels[...] = np.arange(outer * inner).reshape(outer, inner) % n
        loss = np.zeros((outer, inner))
        _core.cross_entropy(x, labels, None, None, float(n), 0.0, -100, loss, grad, 1.0,
                            outer, n, inner, 1)
        assert (memory[:guard] == 0).all() and (memory[guard + x.size:] == 0).all(), shape
    print("ok")
"""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_sharing_memory_with_the_gradient(isa, dtype):
    """A label overwritten by the gradient store was read again to index the gradient:
    the panel kernel then wrote far out of bounds (SIGSEGV)."""
    assert run_child(LABELS_IN_THE_GRADIENT, isa, np.dtype(dtype).name).strip() == "ok"


LABELS_REWRITTEN_BY_A_THREAD = """
    import sys
    import threading
    import time
    import numpy as np
    from fastsoftmax import _core

    import fastsoftmax
    isa, dtype, root = sys.argv[1], np.dtype(sys.argv[2]), sys.argv[3]
    assert fastsoftmax.__file__.startswith(root), fastsoftmax.__file__
    assert _core.set_isa(isa)
    stop = False
    def rewrite(labels):
        while not stop:
            labels[...] = 1
            labels[...] = 1 << 40          # far outside [0, C)
    for shape, axis in (((64, 5, 64), 1), ((4096, 5), -1), ((512, 40), -1)):
        n = shape[axis]
        outer, inner = (shape[0], shape[2]) if axis == 1 else (shape[0], 1)
        x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        labels = np.ones((outer, inner), np.int64)
        loss, grad = np.zeros((outer, inner)), np.empty_like(x)
        stop = False
        thread = threading.Thread(target=rewrite, args=(labels,))
        thread.start()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            _core.cross_entropy(x, labels, None, None, float(n), 0.0, -100, loss, grad, 1.0,
                                outer, n, inner, 1)
            # Every sample saw label 1 or a bad label (NaN), never anything else.
            good = ~np.isnan(loss)
            assert np.isfinite(loss[good]).all()
        stop = True
        thread.join()
    print("ok")
"""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_rewritten_by_another_thread(isa, dtype):
    """The GIL is released around the kernels: another thread may change the labels
    between the kernel's check and its use.  The kernel must read each one once."""
    assert run_child(LABELS_REWRITTEN_BY_A_THREAD, isa, np.dtype(dtype).name).strip() == "ok"
