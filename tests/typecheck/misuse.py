"""Calls that must NOT type-check: ``mypy --strict`` must report an error on
exactly the lines marked ``# E:`` (tests/test_typing.py checks it), which shows
the public hints are precise rather than ``Any``.  Never run; one mistake per
line, each on a line of its own.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import fastsoftmax
from fastsoftmax import reference


def misuse(x: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> None:
    fastsoftmax.softmax(x, axis="last")  # E: axis is an int, a tuple of ints or None
    fastsoftmax.softmax(x, axis=[0, 1])  # E: several axes are a tuple, as in NumPy
    fastsoftmax.logsumexp(x, axis=(0, 1.0))  # E: a tuple of ints
    fastsoftmax.softmax(x, -1, np.float64)  # E: dtype is keyword-only
    fastsoftmax.softmax(x, -1, 2.0)  # E: temperature is keyword-only
    fastsoftmax.softmax(x, temperature="hot")  # E: temperature is a float
    fastsoftmax.log_softmax(x, n_threads=1.5)  # E: n_threads is an int or None
    fastsoftmax.log_softmax(x, out=[0.0] * 10)  # E: out is an ndarray
    fastsoftmax.logsumexp(x, keepdims="yes")  # E: keepdims is a bool
    lse: npt.NDArray[np.floating[Any]] = fastsoftmax.logsumexp(x)  # E: may be a NumPy scalar
    value, sign = fastsoftmax.logsumexp(x, b=x)  # E: no sign without return_sign=True
    fastsoftmax.logsumexp(x, return_sign=True).shape  # E: a tuple, not the result
    fastsoftmax.logsumexp(x, b=x, return_sign=1)  # E: return_sign is a bool
    ref_value, ref_sign = reference.logsumexp(x, b=x)  # E: no sign without return_sign
    fastsoftmax.softmax_backward(x)  # E: output is required
    fastsoftmax.log_softmax_backward(x, x, axis=1.0)  # E: axis is an int, a tuple or None

    loss, grad = fastsoftmax.cross_entropy(x, labels)  # E: no grad without return_grad=True
    fastsoftmax.cross_entropy(x, labels, return_grad=True).shape  # E: a tuple, not the loss
    float(fastsoftmax.cross_entropy(x, labels, return_grad=True))  # E: a tuple, not the loss
    fastsoftmax.cross_entropy(x, labels, reduction="avg")  # E: not a reduction
    fastsoftmax.cross_entropy(x, labels, axis=None)  # E: the class axis is an int
    fastsoftmax.cross_entropy(x, labels, grad_out=np.empty_like(x))  # E: needs return_grad=True
    fastsoftmax.cross_entropy(x, labels, n_threads="all")  # E: n_threads is an int or None
    ref_loss, ref_grad = reference.cross_entropy(x, labels)  # E: no grad without return_grad

    fastsoftmax.set_num_threads(1.5)  # E: an int or None
    threads: str = fastsoftmax.get_num_threads()  # E: an int
    with fastsoftmax.num_threads(2) as n:
        n + 1  # E: num_threads yields None
    fastsoftmax.show_config(file="config.txt")  # E: a text stream, not a path
    fastsoftmax.__version__ + 1  # E: the version is a str
