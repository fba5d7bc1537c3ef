"""Shared fixtures, and the accuracy checks the tests hold fastsoftmax to.

The checks and their tolerances live in ``fastsoftmax._testing`` (the same code
checks an installed wheel, ``tools/check_wheel.py``, and ``python -m
fastsoftmax``); its docstring states the bounds.
"""
import contextlib
import os

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core
from fastsoftmax._testing import check_log_softmax, check_logsumexp, check_softmax  # noqa: F401

ISAS = _core.available_isas()
# FASTSOFTMAX_TEST_ISAS="avx512": the per-ISA tests for those tables only.
# tools/emulated_isas.sh sets it for its second pass over a build whose other tables are
# the ones CI's first pass has just tested.
if os.environ.get("FASTSOFTMAX_TEST_ISAS"):
    ISAS = tuple(i for i in ISAS if i in os.environ["FASTSOFTMAX_TEST_ISAS"].split())
    assert ISAS, f"FASTSOFTMAX_TEST_ISAS={os.environ['FASTSOFTMAX_TEST_ISAS']!r}: none available"
# The kernels' fixed chunk of a long row (FS_CHUNK): rows are reduced, and split
# between threads, in pieces of this many elements.  The same for every ISA.
CHUNK = _core.kernel_info()[ISAS[0]]["float32"]["chunk"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per instruction set this build and CPU have."""
    previous = _core.isa()
    assert _core.set_isa(request.param)
    yield request.param
    _core.set_isa(previous)


def random_logits(shape, dtype, seed=0, scale=3.0):
    """Normal logits with a spread like a model's."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


# The widest vector (AVX-512): byte offsets up to it reach every alignment.
VECTOR_BYTES = 64


def out_at(shape, dtype, byte_offset):
    """A NaN-filled output whose first element lies byte_offset past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + 2 * VECTOR_BYTES, np.uint8)
    start = (-raw.ctypes.data) % VECTOR_BYTES + byte_offset
    out = raw[start:start + size].view(dtype).reshape(shape)
    out.fill(np.nan)
    return out


@contextlib.contextmanager
def streaming_every_call():
    """Every softmax, log_softmax and cross_entropy call streams (where the kernels can)."""
    _core.set_stream_min_bytes(0)
    try:
        yield
    finally:
        fs.set_stream_threshold()


@contextlib.contextmanager
def refilled_meanwhile(x, values):
    """Another thread fills all of x with each of values in turn until the block ends.

    The kernels run without the GIL, so a call on x reads rows that change under it:
    a pass may see one value and the next pass another (a bound taken from high values,
    a scan of low ones).  Results may then be anything, but never an index outside the
    row, a crash or a hang.
    """
    import threading

    stop = threading.Event()

    def refill():
        while not stop.is_set():
            for value in values:
                x.fill(value)

    writer = threading.Thread(target=refill)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
