"""fastsoftmax: softmax, log_softmax, logsumexp and cross-entropy for NumPy arrays, multithreaded and SIMD-vectorized.

See ``fastsoftmax.reference`` for the plain NumPy versions the results are checked against.
"""
from ._api import (
    cross_entropy,
    get_num_threads,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    num_threads,
    set_num_threads,
    show_config,
    softmax,
    softmax_backward,
)
from ._version import __version__

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "softmax_backward",
    "log_softmax_backward",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "show_config",
    "__version__",
]
