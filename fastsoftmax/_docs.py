"""Docstring text that several public functions share, written once.

A docstring names a shared piece on a line of its own, ``%(name)s``, and
:func:`fill_doc` puts the text there when the function is defined, indented as
that line: the rendered docstrings (``help()``, the doctests, numpydoc) read as
if the text had been written in each.
"""
from __future__ import annotations

import re
import textwrap
from typing import Any, Callable, TypeVar

_Function = TypeVar("_Function", bound=Callable[..., Any])

# The analysis every numerical function cites.
REFERENCES = """\
.. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurate and efficient
   evaluation of the log-sum-exp and softmax functions", IMA Journal of
   Numerical Analysis 41(4), 2311-2330, 2021."""


def accuracy(inherent: str) -> str:
    """The accuracy paragraph, for a function whose rounding of its input costs ``inherent``.

    ``inherent`` completes the paragraph on a line of its own (under 70 characters).
    """
    return ("The result is within a relative 1e-6 (float32) or 1e-13 (float64) of the\n"
            "exact value, plus the error that rounding to the working precision causes\n"
            "by itself, which no algorithm working in that precision avoids [1]_:\n"
            f"{inherent}\n"
            "(``u = 2**-24`` for float32, ``2**-53`` for float64).")


_PLACEHOLDER = re.compile(r"^( *)%\((\w+)\)s$", re.M)


def fill_doc(**pieces: str) -> Callable[[_Function], _Function]:
    """Decorator: each line ``%(name)s`` of the docstring becomes ``pieces[name]``, indented.

    Every piece must be used and every placeholder known, so a typo fails at
    import rather than showing in ``help()``.  The function itself is returned
    unchanged (no wrapper, nothing added to a call).
    """
    def decorate(function: _Function) -> _Function:
        doc = function.__doc__
        if doc is None:  # python -OO strips docstrings
            return function
        used = set()

        def insert(match: re.Match[str]) -> str:
            indent, name = match.groups()
            used.add(name)
            return textwrap.indent(pieces[name], indent)

        function.__doc__ = _PLACEHOLDER.sub(insert, doc)
        unused = set(pieces) - used
        if unused:
            raise ValueError(f"{function.__name__}'s docstring has no place for {sorted(unused)}")
        return function
    return decorate


def axes(copy: str) -> str:
    """The Notes paragraph on tuples of axes and 0-d input.

    ``copy`` completes "Axes apart in memory, such as ``(0, 2)``, are": what
    such axes cost the function (under 70 characters a line).
    """
    return ("``axis`` follows NumPy's reductions.  A tuple of axes makes each slice\n"
            "the sub-array those axes span (SciPy's ``axis=(1, 2)``, PyTorch's\n"
            "``dim=(1, 2)``); ``()`` makes every element a slice of its own.\n"
            "Adjacent axes, such as ``(1, 2)``, are read in place as one axis of\n"
            "their product's length, with no copy.  Axes apart in memory, such as\n"
            f"``(0, 2)``, are {copy}.\n"
            "A 0-d array is one slice, itself, for ``axis=0``, ``-1``, ``None``\n"
            "and ``()``; a tuple naming an axis the array lacks, such as ``(0,)``\n"
            "for a 0-d array, raises ``numpy.exceptions.AxisError`` (a ValueError),\n"
            "as in NumPy.")
