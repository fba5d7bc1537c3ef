"""Interop: what NumPy can view without a copy is taken without a copy.

PyTorch CPU tensors (DLPack, ``__array__``), JAX arrays, objects that offer
only DLPack, memoryviews and memmaps (read-only ones as input, writeable ones
as ``out=``).  "No hidden copy" is measured with tracemalloc, which sees every
NumPy allocation: a call on a C-contiguous float32 tensor allocates the output
and nothing of its size besides.  Results are compared bitwise with the same
call on a plain ndarray.
"""
import importlib.util
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastsoftmax as fs

try:
    import torch
except ImportError:  # the torch tests skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

ROWS, COLUMNS = 64, 16384  # 4 MiB of float32: any copy of it stands out


def _logits(dtype=np.float32, shape=(ROWS, COLUMNS), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _bytes_allocated_during(call):
    """(result, peak bytes NumPy & Python allocated during ``call()`` beyond what was live before)."""
    call()  # warm-up: lazy imports, caches
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - before


def _assert_only_the_output_allocated(call, output_bytes):
    result, allocated = _bytes_allocated_during(call)
    # The output, plus a little for Python objects; a copy of the input would double it.
    assert allocated < output_bytes + output_bytes // 8, (
        f"allocated {allocated} bytes for a {output_bytes}-byte output: a hidden copy?")
    return result


class DLPackOnly:
    """An array from some other library that speaks only DLPack (no buffer, no __array__)."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


# ---------------------------------------------------------------- PyTorch

@needs_torch
@pytest.mark.parametrize("op", [fs.softmax, fs.log_softmax, fs.logsumexp])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_cpu_tensor_gives_the_ndarray_result(op, dtype):
    x = _logits(dtype, (37, 1000))
    expected = op(x, n_threads=1)
    got = op(torch.from_numpy(x.copy()), n_threads=1)
    assert type(got) is type(expected) and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@needs_torch
@pytest.mark.parametrize("op", [fs.softmax, fs.log_softmax])
def test_torch_tensor_shares_no_hidden_copy(op):
    x = _logits()
    tensor = torch.from_numpy(x.copy())
    y = _assert_only_the_output_allocated(lambda: op(tensor), x.nbytes)
    np.testing.assert_array_equal(y, op(x))
    np.testing.assert_array_equal(tensor.numpy(), x)  # the input is untouched


@needs_torch
def test_torch_tensor_logsumexp_and_cross_entropy_allocate_no_copy():
    x = _logits()
    tensor = torch.from_numpy(x.copy())
    _assert_only_the_output_allocated(lambda: fs.logsumexp(tensor), 1 << 16)
    labels = torch.from_numpy(np.arange(ROWS) % COLUMNS)
    _assert_only_the_output_allocated(lambda: fs.cross_entropy(tensor, labels), 1 << 16)
    loss, grad = _assert_only_the_output_allocated(
        lambda: fs.cross_entropy(tensor, labels, return_grad=True), x.nbytes)
    expected_loss, expected_grad = fs.cross_entropy(x, labels.numpy(), return_grad=True)
    assert loss == expected_loss
    np.testing.assert_array_equal(grad, expected_grad)


@needs_torch
def test_torch_out_of_a_tensor_writes_into_the_tensor():
    """``out=tensor.numpy()`` is the zero-copy way to get the result in a tensor."""
    x = torch.from_numpy(_logits(shape=(8, 300)))
    result = torch.empty_like(x)
    fs.softmax(x, out=result.numpy())
    torch.testing.assert_close(result, torch.softmax(x, dim=-1), rtol=1e-6, atol=1e-7)
    back = torch.from_numpy(fs.log_softmax(x))  # and back to torch, sharing memory
    torch.testing.assert_close(back, torch.log_softmax(x, dim=-1), rtol=1e-5, atol=1e-6)


@needs_torch
def test_non_contiguous_torch_tensor_is_copied_once_and_correct():
    x = _logits(shape=(300, 8))
    transposed = torch.from_numpy(x).T  # (8, 300) with strides (1, 8)
    np.testing.assert_array_equal(fs.softmax(transposed), fs.softmax(np.ascontiguousarray(x.T)))


@needs_torch
def test_torch_integer_targets_bool_masks_and_backward_inputs():
    x = _logits(shape=(6, 50))
    labels = np.array([0, 49, 3, 7, 7, 1])
    mask = np.random.default_rng(1).random((6, 50)) < 0.7
    assert fs.cross_entropy(torch.from_numpy(x), torch.from_numpy(labels)) == \
        fs.cross_entropy(x, labels)
    np.testing.assert_array_equal(fs.softmax(torch.from_numpy(x), where=torch.from_numpy(mask)),
                                  fs.softmax(x, where=mask))
    y = fs.softmax(x)
    g = np.ones_like(x)
    np.testing.assert_array_equal(fs.softmax_backward(torch.from_numpy(g), torch.from_numpy(y)),
                                  fs.softmax_backward(g, y))


@needs_torch
def test_torch_tensor_that_requires_grad_is_refused_with_the_fix():
    x = torch.zeros(3, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"^x \(torch\.Tensor\).*detach"):
        fs.softmax(x)
    with pytest.raises(TypeError, match=r"^logits \(torch\.Tensor\).*detach"):
        fs.cross_entropy(x, torch.tensor([0, 1, 2]))
    assert fs.softmax(x.detach()).shape == (3, 4)


@needs_torch
def test_torch_dtype_numpy_cannot_hold_is_refused():
    """float8 has neither a NumPy dtype nor kernels: refused, saying which argument."""
    with pytest.raises(TypeError, match=r"^x \(torch\.Tensor\)"):
        fs.softmax(torch.zeros(3, dtype=torch.float8_e4m3fn))
    with pytest.raises(TypeError, match=r"^logits \(torch\.Tensor\)"):
        fs.cross_entropy(torch.zeros(2, 3, dtype=torch.float8_e4m3fn), [0, 1])
    np.testing.assert_allclose(fs.softmax(torch.zeros(4, dtype=torch.float8_e4m3fn).float()),
                               0.25)


# Lazy views: torch keeps a negation or a conjugation as a bit on the tensor,
# which __dlpack__ does not carry; the memory holds the un-negated values.
LAZY_NEGATIONS = {
    "conj().imag": lambda v: torch.complex(torch.zeros_like(v), v).conj().imag,
    "_neg_view": lambda v: torch._neg_view(v),
}


@needs_torch
@pytest.mark.parametrize("make", sorted(LAZY_NEGATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64] if torch else [])
def test_torch_negative_bit_is_applied(make, dtype):
    values = torch.tensor([[1.0, 2.0, 3.0, 0.5], [-4.0, 0.0, 2.5, 1.0]], dtype=dtype)
    lazy = LAZY_NEGATIONS[make](values)
    assert lazy.is_neg()
    negated = (-values).numpy()
    np.testing.assert_array_equal(fs.softmax(lazy), fs.softmax(negated))
    np.testing.assert_array_equal(fs.logsumexp(lazy), fs.logsumexp(negated))
    np.testing.assert_array_equal(fs.cross_entropy(lazy, torch.tensor([0, 1])),
                                  fs.cross_entropy(negated, np.array([0, 1])))
    probabilities = LAZY_NEGATIONS[make](-torch.from_numpy(fs.softmax(values.numpy())))
    np.testing.assert_array_equal(
        fs.cross_entropy(negated, probabilities, weight=LAZY_NEGATIONS[make](-values[0])),
        fs.cross_entropy(negated, fs.softmax(values.numpy()), weight=values[0].numpy()))
    np.testing.assert_array_equal(fs.softmax_backward(lazy, fs.softmax(negated)),
                                  fs.softmax_backward(negated, fs.softmax(negated)))


@needs_torch
def test_torch_conjugate_bit_gives_the_complex_refusal():
    lazy = torch.tensor([1 + 2j, 3 - 1j]).conj()
    assert lazy.is_conj()
    with pytest.raises(TypeError, match="x must hold real numbers.*complex"):
        fs.softmax(lazy)


@needs_torch
def test_torch_views_with_an_offset_or_zero_strides():
    base = torch.from_numpy(_logits(shape=(10, 33)))
    offset = base[3:, 5:]            # a storage offset, and not contiguous
    np.testing.assert_array_equal(fs.softmax(offset), fs.softmax(base.numpy()[3:, 5:]))
    row = base[4:5, :].reshape(33)    # contiguous, with a storage offset
    np.testing.assert_array_equal(fs.log_softmax(row), fs.log_softmax(base.numpy()[4]))
    expanded = base[2].expand(6, 33)  # stride 0 along the rows
    assert expanded.stride()[0] == 0
    np.testing.assert_array_equal(fs.softmax(expanded), fs.softmax(np.tile(base.numpy()[2], (6, 1))))
    np.testing.assert_array_equal(fs.softmax(expanded, axis=0), np.full((6, 33), 1 / 6, np.float32))
    np.testing.assert_array_equal(base.numpy(), _logits(shape=(10, 33)))  # untouched


def test_dlpack_read_only_and_negative_strides():
    """A read-only DLPack export is read, never written; negative strides are copied."""
    x = _logits(shape=(5, 40))
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(fs.softmax(DLPackOnly(frozen)), fs.softmax(x))
    view = np.from_dlpack(DLPackOnly(frozen))
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="out must be writeable"):
        fs.softmax(x, out=view)
    reversed_rows = DLPackOnly(x[::-1])
    np.testing.assert_array_equal(fs.softmax(reversed_rows), fs.softmax(x[::-1].copy()))
    np.testing.assert_array_equal(fs.logsumexp(DLPackOnly(x[:, ::-2]), axis=0),
                                  fs.logsumexp(x[:, ::-2].copy(), axis=0))


# ---------------------------------------------------------------- JAX, DLPack

def test_jax_array_is_accepted():
    """In a child process: JAX starts threads that would make this process's fork tests unsafe."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    script = textwrap.dedent("""
        import numpy as np, jax.numpy as jnp, fastsoftmax as fs
        x = np.random.default_rng(0).standard_normal((5, 129)).astype(np.float32)
        np.testing.assert_array_equal(fs.softmax(jnp.asarray(x)), fs.softmax(x))
        np.testing.assert_array_equal(fs.logsumexp(jnp.asarray(x)), fs.logsumexp(x))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dlpack_only_object_is_viewed_not_copied(dtype):
    x = _logits(dtype)
    producer = DLPackOnly(x)
    with pytest.raises(Exception):
        memoryview(producer)  # truly no other way in
    y = _assert_only_the_output_allocated(lambda: fs.softmax(producer), x.nbytes)
    np.testing.assert_array_equal(y, fs.softmax(x))


def test_dlpack_refusal_becomes_a_type_error_naming_the_argument():
    class Refuses(DLPackOnly):
        def __dlpack__(self, **kwargs):
            raise BufferError("device memory, not CPU")

    with pytest.raises(TypeError, match=r"^x \(.*Refuses\).*device memory, not CPU"):
        fs.log_softmax(Refuses(np.zeros(3)))


# ---------------------------------------------------------------- memoryview, memmap

def test_memoryview_is_viewed_not_copied():
    x = _logits()
    view = memoryview(x)
    y = _assert_only_the_output_allocated(lambda: fs.softmax(view), x.nbytes)
    np.testing.assert_array_equal(y, fs.softmax(x))


def test_read_only_memoryview_and_strided_memoryview():
    x = _logits(shape=(10, 40))
    read_only = memoryview(x.tobytes()).cast("f", x.shape)
    assert read_only.readonly
    np.testing.assert_array_equal(fs.log_softmax(read_only), fs.log_softmax(x))
    strided = memoryview(x[:, ::3])  # not contiguous: copied once, still correct
    assert not strided.c_contiguous
    np.testing.assert_array_equal(fs.softmax(strided), fs.softmax(x[:, ::3]))


def test_read_only_memmap_as_input(tmp_path):
    x = _logits()
    path = tmp_path / "logits.f32"
    x.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    y = _assert_only_the_output_allocated(lambda: fs.softmax(mapped), x.nbytes)
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, fs.softmax(x))
    np.testing.assert_array_equal(fs.logsumexp(mapped), fs.logsumexp(x))
    np.testing.assert_array_equal(np.fromfile(path, np.float32).reshape(x.shape), x)
    with pytest.raises(ValueError, match="out must be writeable"):
        fs.softmax(mapped, out=mapped)  # in place on a read-only map: refused, file unchanged
    np.testing.assert_array_equal(np.fromfile(path, np.float32).reshape(x.shape), x)


def test_writeable_memmap_as_out_and_in_place(tmp_path):
    x = _logits(shape=(16, 500))
    out_map = np.memmap(tmp_path / "out.f32", dtype=np.float32, mode="w+", shape=x.shape)
    assert fs.softmax(x, out=out_map) is out_map
    out_map.flush()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.f32", np.float32).reshape(x.shape),
                                  fs.softmax(x))
    in_place = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=x.shape)
    in_place[:] = x
    assert fs.log_softmax(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(np.asarray(in_place), fs.log_softmax(x))
