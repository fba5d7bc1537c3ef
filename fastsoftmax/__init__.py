"""fastsoftmax: softmax, log_softmax, logsumexp, cross-entropy, top_k and token sampling for NumPy arrays, multithreaded and SIMD-vectorized.

See ``fastsoftmax.reference`` for the plain NumPy versions the results are checked against.
"""
from . import (_config, _cross_entropy, _logsumexp, _pool, _sample, _softmax, _stream, _threads,
               _top_k)
from ._config import *  # noqa: F403  (each module's __all__ lists its public names, once)
from ._cross_entropy import *  # noqa: F403
from ._logsumexp import *  # noqa: F403
from ._pool import *  # noqa: F403
from ._sample import *  # noqa: F403
from ._softmax import *  # noqa: F403
from ._stream import *  # noqa: F403
from ._threads import *  # noqa: F403
from ._top_k import *  # noqa: F403
from ._version import __version__

__all__ = ["__version__"]
__all__ += _softmax.__all__
__all__ += _logsumexp.__all__
__all__ += _cross_entropy.__all__
__all__ += _top_k.__all__
__all__ += _sample.__all__
__all__ += _threads.__all__
__all__ += _config.__all__
__all__ += _pool.__all__
__all__ += _stream.__all__
