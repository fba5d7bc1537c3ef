"""Type stub for the compiled ``fastsoftmax._core`` (``_core.pyx``).

Nothing here validates its input: the Python layer passes C-contiguous
float32/float64 arrays of the right shapes and a thread count >= 1.  The
``Py_ssize_t``/``int``/``long long`` arguments are Python ints, ``double`` ones
floats and ``bint`` ones bools.
"""
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

# softmax_family's `op`: the C kernels' fs_op (src/fs_kernels.h).
OP_SOFTMAX: int
OP_LOG_SOFTMAX: int
OP_LOGSUMEXP: int

def isa() -> str: ...
def available_isas() -> tuple[str, ...]: ...
def set_isa(name: str) -> bool: ...
def kernel_info() -> dict[str, dict[str, dict[str, int]]]: ...
def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def openmp_runtime() -> tuple[str, int] | None: ...
def openmp_runtime_users() -> int: ...
def softmax_family(
    x: NDArray[np.floating[Any]],
    out: NDArray[np.floating[Any]],
    where: NDArray[np.bool_] | None,
    outer: int,
    n: int,
    inner: int,
    scale: float,
    op: int,
    nthreads: int,
    log_sums: NDArray[np.float64] | None = None,
    shift: NDArray[np.floating[Any]] | None = None,
    adjust: NDArray[np.floating[Any]] | None = None,
) -> None: ...
def backward(
    grad_output: NDArray[np.floating[Any]],
    output: NDArray[np.floating[Any]],
    out: NDArray[np.floating[Any]],
    outer: int,
    n: int,
    inner: int,
    log_output: bool,
    nthreads: int,
) -> None: ...
def cross_entropy(
    logits: NDArray[np.floating[Any]],
    labels: NDArray[np.int64] | None,
    target: NDArray[np.floating[Any]] | None,
    weight: NDArray[np.floating[Any]] | None,
    weight_sum: float,
    label_smoothing: float,
    ignore_index: int,
    loss: NDArray[np.float64],
    grad: NDArray[np.floating[Any]] | None,
    grad_scale: float,
    outer: int,
    n: int,
    inner: int,
    nthreads: int,
) -> None: ...
def top_k(x: NDArray[np.floating[Any]], values: NDArray[np.floating[Any]],
          indices: NDArray[np.int64], rows: int, n: int, k: int, largest: bool,
          nthreads: int) -> None: ...
def sample(logits: NDArray[np.floating[Any]], params: NDArray[Any], results: NDArray[Any],
           top_tokens: NDArray[np.int64], top_logprobs: NDArray[np.float32], rows: int, n: int,
           nthreads: int) -> int: ...
def greedy(logits: NDArray[np.floating[Any]], rows: int, n: int,
           nthreads: int) -> tuple[NDArray[np.int64], int, int]: ...
def first_outside(values: NDArray[np.float64], low: float, low_ok: bool, high: float,
                  high_ok: bool) -> int: ...
def label_stats(labels: NDArray[np.int64], n_classes: int, ignore_index: int,
                weight: NDArray[np.floating[Any]] | None) -> tuple[int, float]: ...
def overlap(a: NDArray[Any], b: NDArray[Any]) -> Literal[0, 1, 2]: ...
def exp(x: NDArray[np.floating[Any]], out: NDArray[np.floating[Any]]) -> None: ...
def narrow(x: NDArray[Any], out: NDArray[Any], nthreads: int) -> NDArray[Any]: ...

# The output pool (fastsoftmax/_pool.py).
class PooledBlock:
    def __buffer__(self, flags: int, /) -> memoryview: ...
def take_block(nbytes: int) -> PooledBlock: ...
def set_pool_bound(limit: int, keeps_two: bool) -> None: ...
def forget_pool() -> None: ...
def pool_state() -> tuple[int, int, int, bool]: ...
def small_call(x: object, op: int, limit: int) -> Any: ...
def small_cross_entropy(logits: object, target: object, ignore_index: int, mean: bool,
                        limit: int) -> Any: ...
