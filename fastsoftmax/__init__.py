"""fastsoftmax: softmax, log_softmax and logsumexp for NumPy arrays, multithreaded and SIMD-vectorized.

See ``fastsoftmax.reference`` for the plain NumPy versions the results are checked against.
"""
from ._api import get_num_threads, log_softmax, logsumexp, show_config, softmax
from ._version import __version__

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "get_num_threads",
    "show_config",
    "__version__",
]
