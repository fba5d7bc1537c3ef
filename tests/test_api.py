"""The Python layer: dtype conversion, axis/temperature/out/n_threads handling and their errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core, _threads, reference

FUNCS = [fs.softmax, fs.log_softmax, fs.logsumexp]


def test_public_names():
    assert set(fs.__all__) >= {"softmax", "log_softmax", "logsumexp", "get_num_threads",
                               "show_config", "__version__"}
    assert isinstance(fs.__version__, str) and fs.__version__.count(".") >= 2


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("dtype,result", [
    (np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32),
    (np.int8, np.float64), (np.int64, np.float64), (np.uint16, np.float64), (np.bool_, np.float64),
])
def test_result_dtype(func, dtype, result):
    x = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    y = func(x)
    assert np.asarray(y).dtype == result
    np.testing.assert_allclose(y, getattr(reference, func.__name__)(x), rtol=1e-6)


@pytest.mark.parametrize("func", FUNCS)
def test_lists_and_scalars(func):
    np.testing.assert_allclose(func([[1, 2, 3], [0, 0, 0]]), getattr(reference, func.__name__)(
        np.array([[1.0, 2, 3], [0, 0, 0]])), rtol=1e-13)
    # A 0-d input is one slice of one element with axis=None.
    assert np.asarray(func(np.float64(2.5), axis=None)).shape == ()


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("bad", [np.ones(3, np.complex128), np.array([1, "a"], dtype=object),
                                 np.array(["1", "2"]), np.array([1, 2], dtype="datetime64[s]")])
def test_non_real_dtypes_raise_type_error(func, bad):
    with pytest.raises(TypeError, match="x must hold real numbers.*dtype"):
        func(bad)


@pytest.mark.parametrize("func", FUNCS)
def test_axis_errors(func):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="axis=2 is out of range for an array of 2"):
        func(x, 2)
    with pytest.raises(ValueError, match="axis=-3"):
        func(x, -3)
    with pytest.raises(TypeError, match="axis must be an int, a tuple of ints or None, got 1.0"):
        func(x, 1.0)
    with pytest.raises(TypeError, match="axis must be an int, a tuple of ints or None, got True"):
        func(x, True)
    # A 0-d array takes 0 and -1, as NumPy's reductions (tests/test_parity_axes.py), not 1.
    with pytest.raises(ValueError, match="axis=1 is out of range for an array of 0"):
        func(np.float64(1.0), 1)


@pytest.mark.parametrize("func", [fs.softmax, fs.log_softmax])
@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, np.nan, np.inf, -np.inf])
def test_bad_temperature(func, temperature):
    with pytest.raises(ValueError, match=f"temperature must be finite and > 0, got {temperature!r}"):
        func(np.ones(3), temperature=temperature)


@pytest.mark.parametrize("func", [fs.softmax, fs.log_softmax])
def test_temperature_types(func):
    x = np.array([1.0, 2.0, 4.0])
    expected = func(x / 2.0)
    for t in (2, 2.0, np.float32(2.0), np.int64(2)):
        np.testing.assert_allclose(func(x, temperature=t), expected, rtol=1e-15)
    for bad in ("2", None, 2j, True):
        with pytest.raises(TypeError, match="temperature must be a real number"):
            func(x, temperature=bad)


def _out_cases(shape, dtype):
    """(out, exception, message) for every way `out` can be wrong."""
    other = np.float64 if dtype == np.float32 else np.float32
    readonly = np.empty(shape, dtype)
    readonly.flags.writeable = False
    yield [0.0] * 4, TypeError, "out must be a numpy.ndarray, got list"
    yield np.empty(shape, other), TypeError, f"out must have dtype {np.dtype(dtype)}"
    yield np.empty((9, 9), dtype), ValueError, r"out must have shape"
    yield np.empty(shape + (2,), dtype)[..., 0], ValueError, "out must be C-contiguous"
    yield readonly, ValueError, "out must be writeable"


@pytest.mark.parametrize("func", FUNCS)
def test_bad_out_raises_before_writing(func):
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    shape = np.shape(func(x))
    for out, error, message in _out_cases(shape, np.float32):
        before = np.array(out, copy=True)
        with pytest.raises(error, match=message):
            func(x, out=out)
        np.testing.assert_array_equal(np.asarray(out), before)


@pytest.mark.parametrize("func", [fs.softmax, fs.log_softmax])
def test_out_partially_overlapping_input(func):
    base = np.random.default_rng(0).standard_normal(40)
    expected = func(base[:30].reshape(3, 10).copy())
    out = base[10:40].reshape(3, 10)       # overlaps x's last two rows, shifted by one row
    x = base[:30].reshape(3, 10)
    func(x, out=out)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_logsumexp_out_overlapping_input():
    x = np.random.default_rng(1).standard_normal((5, 7))
    expected = fs.logsumexp(x)
    out = x[0, :5]                          # the result lands inside the input
    fs.logsumexp(x, out=out)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


@pytest.mark.parametrize("func", FUNCS)
def test_n_threads_argument(func):
    x = np.random.default_rng(2).standard_normal((50, 1000))
    expected = func(x, n_threads=1)
    for n in (2, -1, -2, np.int64(3)):
        np.testing.assert_array_equal(func(x, n_threads=n), expected)
    with pytest.raises(ValueError, match="n_threads must be nonzero.*got 0"):
        func(x, n_threads=0)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="n_threads must be an int or None"):
            func(x, n_threads=bad)


def test_get_num_threads_follows_omp_num_threads(tmp_path):
    code = "import fastsoftmax; print(fastsoftmax.get_num_threads())"
    # None of the runner's OpenMP settings (or fastsoftmax's), but the rest of its
    # environment: what finds and loads this build (PYTHONPATH for a checkout built in
    # place, LD_PRELOAD for tools/sanitize.sh's instrumented one).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "GOMP_", "KMP_", "FASTSOFTMAX_"))}
    env["OMP_NUM_THREADS"] = "3"
    result = subprocess.run([sys.executable, "-c", code], env=env,
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ("3" if _core.openmp_enabled() else "1")


def test_small_inputs_run_on_one_thread():
    assert _threads.resolve_threads(None, _threads.PARALLEL_MIN_ELEMENTS - 1) == 1
    assert _threads.resolve_threads(None, _threads.PARALLEL_MIN_ELEMENTS) == fs.get_num_threads()


def test_show_config(capsys):
    fs.show_config()
    text = capsys.readouterr().out
    assert f"fastsoftmax {fs.__version__}" in text
    assert _core.isa() in text
    assert "OpenMP:" in text and "threads:" in text


def test_main_module_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastsoftmax"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check: all results agree" in result.stdout
    for shape in ("1x128256", "32x50257", "2048x32000"):
        assert shape in result.stdout


# Every public function with the arguments they share, called with one bad value at a time.
def _callers():
    x = np.random.default_rng(9).standard_normal((4, 6))
    labels = np.array([0, 1, 2, 3])
    return {
        "softmax": lambda **kw: fs.softmax(kw.pop("x", x), **kw),
        "log_softmax": lambda **kw: fs.log_softmax(kw.pop("x", x), **kw),
        "logsumexp": lambda **kw: fs.logsumexp(kw.pop("x", x), **kw),
        "softmax_backward": lambda **kw: fs.softmax_backward(kw.pop("x", x), fs.softmax(x), **kw),
        "log_softmax_backward": lambda **kw: fs.log_softmax_backward(kw.pop("x", x), fs.log_softmax(x), **kw),
        "cross_entropy": lambda **kw: fs.cross_entropy(kw.pop("x", x), labels, **kw),
        "top_k": lambda **kw: fs.top_k(kw.pop("x", x), 2, **kw),
    }


@pytest.mark.parametrize("name", sorted(_callers()))
@pytest.mark.parametrize("kwargs,error,message", [
    ({"x": np.ones((4, 6), complex)}, TypeError, "must hold real numbers"),
    ({"x": np.array([["a"] * 6] * 4)}, TypeError, "must hold real numbers"),
    ({"x": np.empty((4, 6), object)}, TypeError, "must hold real numbers"),
    ({"axis": 5}, ValueError, "axis=5 is out of range"),
    ({"axis": "0"}, TypeError, "axis must be an int"),
    ({"n_threads": 0}, ValueError, "n_threads must be nonzero"),
    ({"n_threads": 2.0}, TypeError, "n_threads must be an int or None"),
])
def test_every_function_rejects_bad_arguments(name, kwargs, error, message):
    with pytest.raises(error, match=message):
        _callers()[name](**kwargs)


def test_set_num_threads_and_context_manager():
    default = fs.get_num_threads()
    x = np.random.default_rng(3).standard_normal((300, 1000))
    expected = fs.softmax(x)
    try:
        fs.set_num_threads(1)
        assert fs.get_num_threads() == 1
        with fs.num_threads(3):
            assert fs.get_num_threads() == (3 if _core.openmp_enabled() else 1)
            np.testing.assert_array_equal(fs.softmax(x), expected)
        assert fs.get_num_threads() == 1
        with pytest.raises(RuntimeError):
            with fs.num_threads(2):
                raise RuntimeError("restored even so")
        assert fs.get_num_threads() == 1
    finally:
        fs.set_num_threads(None)
    assert fs.get_num_threads() == default
    for bad, error in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n must be a positive int or None"):
            fs.set_num_threads(bad)
    assert fs.get_num_threads() == default


def test_threadpoolctl_sees_and_limits_the_openmp_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _core.openmp_enabled():
        pytest.skip("built without OpenMP")
    info = threadpoolctl.threadpool_info()
    assert any(entry["user_api"] == "openmp" for entry in info), info
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fs.get_num_threads() == 1
    assert fs.get_num_threads() == _threads._openmp_maximum()


# ---------------------------------------------------------------- byte order and absurd values

@pytest.mark.parametrize("name", sorted(_callers()))
@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2", ">i4"])
def test_non_native_byte_order_is_converted_once(name, dtype):
    """'>f4' on a little-endian CPU is float32 with its bytes swapped: computed, as SciPy does."""
    x = np.random.default_rng(9).standard_normal((4, 6)) * 3
    if dtype == ">i4":
        x = np.round(x)
    swapped = x.astype(dtype)
    native = x.astype(np.dtype(dtype).newbyteorder("="))
    got, expected = _callers()[name](x=swapped), _callers()[name](x=native)
    np.testing.assert_array_equal(got, expected)
    assert np.asarray(got).dtype.isnative


def test_non_native_byte_order_in_every_other_argument():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 20))
    labels = rng.integers(0, 20, 5)
    weight = rng.random(20) + 0.5
    p = fs.softmax(rng.standard_normal((5, 20)))
    expected = fs.cross_entropy(x, labels, weight=weight, return_grad=True)
    got = fs.cross_entropy(x.astype(">f8"), labels.astype(">i8"), weight=weight.astype(">f4"),
                           return_grad=True)
    np.testing.assert_allclose(got[0], fs.cross_entropy(x, labels, weight=weight.astype("f4")))
    np.testing.assert_array_equal(fs.cross_entropy(x, labels.astype(">u8"), weight=weight.astype(">f8")),
                                  expected[0])
    np.testing.assert_array_equal(fs.cross_entropy(x, p.astype(">f8")), fs.cross_entropy(x, p))
    np.testing.assert_array_equal(fs.softmax_backward(x.astype(">f8"), p.astype(">f8")),
                                  fs.softmax_backward(x, p))
    assert got[1].dtype == np.float64
    huge = np.array([2**63 + 5, 1, 2, 3, 4], dtype=">u8")
    with pytest.raises(ValueError, match=r"target holds label 9223372036854775813 at position \(0,\)"):
        fs.cross_entropy(x, huge)


@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_out_in_the_other_byte_order_is_refused_saying_so(dtype):
    x = np.zeros((2, 3), np.dtype(dtype).newbyteorder("="))
    with pytest.raises(TypeError, match=rf"out must have dtype {x.dtype} in the machine's byte "
                                        rf"order \(the result's\), got {dtype}"):
        fs.softmax(x, out=np.zeros((2, 3), dtype))
    with pytest.raises(TypeError, match="grad_out must have dtype .* in the machine's byte order"):
        fs.cross_entropy(x, [0, 1], return_grad=True, grad_out=np.zeros((2, 3), dtype))


@pytest.mark.parametrize("absurd", [10**400, -10**400, 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_absurd_ints_give_value_errors_naming_the_argument(absurd):
    x = np.random.default_rng(11).standard_normal((4, 6))
    bits = abs(absurd).bit_length()
    cases = [
        (lambda: fs.cross_entropy(x, [0, 1, 2, 3], ignore_index=absurd),
         rf"ignore_index must fit in int64 .*got (a negative|an) int of {bits} bits"),
        (lambda: fs.softmax(x, axis=absurd), rf"axis=(a negative|an) int of {bits} bits is out of range"),
        (lambda: fs.logsumexp(x, axis=absurd), "axis=.* is out of range"),
        (lambda: fs.cross_entropy(x, [0, 1, 2, 3], axis=absurd), "axis=.* is out of range"),
    ]
    if absurd > 0:
        cases += [
            (lambda: fs.softmax(x, temperature=absurd), "temperature is too large for a float"),
            (lambda: fs.log_softmax(x, temperature=absurd), "temperature is too large for a float"),
            (lambda: fs.cross_entropy(x, [0, 1, 2, 3], label_smoothing=absurd),
             "label_smoothing is too large for a float"),
        ]
    else:
        cases += [(lambda: fs.softmax(x, temperature=absurd), "temperature is too large")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    # Large but representable values keep their ordinary errors.
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        fs.cross_entropy(x, [0, 1, 2, 3], label_smoothing=10**300)
    np.testing.assert_array_equal(fs.softmax(x, temperature=10**300), np.full(x.shape, 1 / 6))


def test_self_check_and_check_wheel_pass_with_the_shared_checker():
    """``python -m fastsoftmax`` and tools/check_wheel.py check with fastsoftmax._testing."""
    import importlib.util
    import pathlib

    from fastsoftmax import _testing
    from fastsoftmax.__main__ import self_check

    assert self_check() == []
    path = pathlib.Path(__file__).resolve().parent.parent / "tools" / "check_wheel.py"
    if not path.exists():
        pytest.skip("tools/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("check_wheel", path)
    check_wheel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_wheel)
    x = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    target = np.arange(5) % 40
    check_wheel.check_case(fs, _testing, x, -1, target, 1, "ok")

    class Tampered:  # fastsoftmax with a softmax 1e-4 off: check_wheel must fail it
        def __getattr__(self, name):
            return getattr(fs, name)

        @staticmethod
        def softmax(*args, **kwargs):
            return fs.softmax(*args, **kwargs) * np.float32(1.0001)

    with pytest.raises(check_wheel.CheckFailed, match="tampered softmax: .* outside the bound"):
        check_wheel.check_case(Tampered(), _testing, x, -1, target, 1, "tampered")


@pytest.mark.parametrize("call,name", [
    (lambda x, v: fs.logsumexp(x, keepdims=v), "keepdims"),
    (lambda x, v: fs.logsumexp(x, return_sign=v), "return_sign"),
    (lambda x, v: fs.logsumexp(x, b=np.ones(x.shape), keepdims=v), "keepdims"),
    (lambda x, v: fs.logsumexp(x, b=np.ones(x.shape), return_sign=v), "return_sign"),
    (lambda x, v: fs.cross_entropy(x, np.zeros(len(x), np.int64), return_grad=v), "return_grad"),
    (lambda x, v: fs.top_k(x, 1, largest=v), "largest"),
    (lambda x, v: fs.top_k(x, 1, sorted=v), "sorted"),
])
def test_flags_take_only_bools(call, name):
    """A truthy string, an int or an array is a mistake, not a choice: `keepdims="no"` kept
    the axis and `return_grad="no"` returned the gradient (audit, 2026-12-06)."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    for bad in ("no", 1, 0, None, 1.0, np.array([1, 2]), np.array(True)):
        with pytest.raises(TypeError, match=f"{name} must be a bool, got "):
            call(x, bad)
    for good in (True, False, np.True_, np.False_):
        call(x, good)


@pytest.mark.parametrize("call,name", [
    (lambda m: fs.softmax(m), "x"), (lambda m: fs.log_softmax(m), "x"),
    (lambda m: fs.logsumexp(m), "x"), (lambda m: fs.top_k(m, 1), "x"),
    (lambda m: fs.sample(m, u=0.5), "logits"),
    (lambda m: fs.cross_entropy(m, np.zeros(2, np.int64)), "logits"),
    (lambda m: fs.cross_entropy(np.ones((2, 3)), np.ma.getdata(m).astype(np.int64)[:, 0]
                                .view(np.ma.MaskedArray)), "target"),
    (lambda m: fs.softmax(np.ones((2, 3)), where=np.ma.getdata(m) > 0), None),
    (lambda m: fs.softmax(np.ones((2, 3)), where=np.ma.masked_array(np.ones((2, 3), bool))),
     "where"),
    (lambda m: fs.softmax_backward(m, np.ones((2, 3))), "grad_output"),
    # outputs: written without their masks, which then hid results (audit, 2026-12-07)
    (lambda m: fs.softmax(np.ones((2, 3)), out=m), "out"),
    (lambda m: fs.log_softmax(np.ones((2, 3)), out=m), "out"),
    (lambda m: fs.logsumexp(np.ones((2, 3)), out=m[:, 0].copy()), "out"),
    (lambda m: fs.cross_entropy(np.ones((2, 3)), np.zeros(2, np.int64), return_grad=True,
                                grad_out=m), "grad_out"),
    (lambda m: fs.log_softmax_backward(np.ones((2, 3)), np.ones((2, 3)), out=m), "out"),
    # sample's per-row arguments and previous tokens: read without their masks
    (lambda m: fs.sample(np.ones((2, 3)), u=m[:, 0].copy() / 4), "u"),
    (lambda m: fs.sample(np.ones((2, 3)), u=0.5, temperature=m[:, 0].copy()), "temperature"),
    (lambda m: fs.sample(np.ones((2, 3)), u=0.5, top_k=m[:, 0].astype(np.int64)), "top_k"),
    (lambda m: fs.sample(np.ones((2, 3)), u=0.5, prev_tokens=m.astype(np.int64)),
     "prev_tokens"),
    (lambda m: fs.sample(np.ones((2, 3)), u=0.5, prev_tokens=list(m.astype(np.int64))),
     r"prev_tokens\[0\]"),
])
def test_masked_arrays_are_refused_not_read_without_their_mask(call, name):
    """np.asarray drops a MaskedArray's mask, so its masked entries counted:
    softmax([1, --, 3]) gave the 2.0 a share (audit, 2026-12-06), and an output's stale
    mask hid results.  Refused, naming the argument, like any input whose meaning the
    kernels would change, before anything is written."""
    m = np.ma.masked_array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], mask=[[0, 1, 0], [0, 0, 0]])
    if name is None:  # (a plain array from the masked one's data: accepted)
        call(m)
        return
    before = np.ma.getdata(m).copy()
    with pytest.raises(TypeError, match=f"{name} is a numpy.ma.MaskedArray"):
        call(m)
    np.testing.assert_array_equal(np.ma.getdata(m), before)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is double here")
def test_long_double_is_named_as_such():
    with pytest.raises(TypeError, match=r"x has dtype float(96|128), which fastsoftmax does not "
                                        r"compute in .*astype\(np.float64\)"):
        fs.softmax(np.ones(3, np.longdouble))
    with pytest.raises(TypeError, match="got dtype object .Python objects, such as ints beyond "
                                        "int64"):
        fs.softmax([10**30, 1])


_RAGGED = [[1.0, 2.0], [3.0]]  # a nesting NumPy cannot make an array of


@pytest.mark.parametrize("call,name", [
    (lambda: fs.softmax(_RAGGED), "x"),
    (lambda: fs.log_softmax(_RAGGED), "x"),
    (lambda: fs.softmax(np.ones((2, 2)), where=[[1.0], [1.0, 0.0]]), "where"),
    (lambda: fs.softmax_backward(_RAGGED, np.ones((2, 2))), "grad_output"),
    (lambda: fs.log_softmax_backward(np.ones((2, 2)), _RAGGED), "output"),
    (lambda: fs.logsumexp(_RAGGED), "x"),
    (lambda: fs.logsumexp(np.ones((2, 2)), b=_RAGGED), "b"),
    (lambda: fs.cross_entropy(_RAGGED, [0, 1]), "logits"),
    (lambda: fs.cross_entropy(np.ones((2, 3)), [[1.0], [1.0, 2.0]]), "target"),
    (lambda: fs.cross_entropy(np.ones((2, 3)), [0, 1], weight=[[1.0], [1.0, 2.0]]), "weight"),
    (lambda: fs.cross_entropy(np.ones((2, 3)), [0, 1], sample_weight=_RAGGED),
     "sample_weight"),
    (lambda: fs.top_k(_RAGGED, 1), "x"),
    (lambda: fs.sample(_RAGGED, u=0.5), "logits"),
    *[(lambda option=option: fs.sample(np.ones((2, 3)), **{"u": 0.5, option: _RAGGED}), option)
      for option in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                     "presence_penalty", "frequency_penalty", "min_tokens_to_keep", "u")],
])
def test_ragged_sequences_give_value_errors_naming_the_argument(call, name):
    """NumPy's own error for a ragged nesting names neither the argument nor its value
    (audit, 2026-12-07): every array argument converts through one helper that does."""
    with pytest.raises(ValueError, match=rf"^{name} cannot be read as an array: .*got \[\[1\.0"):
        call()


@pytest.mark.parametrize("axis", [True, 1.0, None, "1"])
def test_cross_entropy_axis_type_errors_ask_for_an_int(axis):
    """The class axis cannot be None: its TypeError does not offer it (audit, 2026-12-07)."""
    with pytest.raises(TypeError, match=r"^axis must be an int \(the class axis\), got "):
        fs.cross_entropy(np.ones((2, 3)), [0, 1], axis=axis)
