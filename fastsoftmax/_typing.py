"""Annotation aliases shared by the public functions and ``fastsoftmax.reference``.

They are evaluated at runtime, so they use ``Union``, not ``X | Y`` (the
package supports Python 3.9).  Not exported from ``fastsoftmax``: users can
spell them with ``numpy.typing`` alone.
"""
from typing import Any, Literal, Tuple, Union, get_args

import numpy as np
import numpy.typing as npt

# A float32/float64 ndarray: what every function returns or writes into ``out``.
FloatArray = npt.NDArray[np.floating[Any]]
# The softmax family's axis: one axis, several (NumPy's tuple), or None for all.
Axes = Union[int, Tuple[int, ...], None]
# logsumexp's result and cross_entropy's loss: NumPy scalars when 0-d.
FloatScalarOrArray = Union[np.floating[Any], FloatArray]
Reduction = Literal["mean", "sum", "none"]
# A count (n_threads, a number of bytes) as the runtime takes it: a Python or NumPy int,
# or None for the default.
Count = Union[int, np.integer[Any], None]
# The reductions cross_entropy accepts, for the runtime checks.
REDUCTIONS: Tuple[str, ...] = get_args(Reduction)
