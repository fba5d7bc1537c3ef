"""How error messages show the values they name, and the settings read from the environment."""
from __future__ import annotations

import numbers
import os
import re
import warnings
from typing import Callable


def shown(value: object) -> str:
    """``repr(value)``, or a description for an int too long to print.

    An error message names the bad value; an absurd int such as ``10**5000``
    would make the message unreadable, or raise ValueError itself (Python's
    limit on int-to-str conversion), so it is described by its size.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        bits = abs(int(value)).bit_length()
        if bits > 64:
            return f"{'a negative' if value < 0 else 'an'} int of {bits} bits"
    return repr(value)


def configure_from_environment(variable: str, configure: Callable[..., None],
                               fallback: str) -> None:
    """``configure(n)`` with the environment variable ``variable`` read as a number of bytes
    ``n >= 0``, or ``configure()`` (its default) where it is unset or blank.

    A value that is not such a number gets the default too, and a RuntimeWarning naming
    the variable, the value (cut short if long) and ``fallback``, the default it gets.
    A number too large for ``int()`` to read (over 4300 digits) is any huge number to the
    setters, which cap theirs: read as 10**100.
    """
    value = os.environ.get(variable)
    if value is None or not value.strip():
        configure()
        return
    digits = value.strip()
    try:
        # int() would take "1_000" and "\u0663"; one "+" at most, as int() takes
        if not re.fullmatch(r"\+?\d+", digits, re.ASCII):
            raise ValueError(value)
        digits = digits.lstrip("+")
        configure(int(digits) if len(digits) <= 100 else 10**100)
    except ValueError:
        quoted = repr(value) if len(value) <= 40 else f"{value[:20]!r}... ({len(value)} characters)"
        warnings.warn(f"{variable}={quoted} is not a number of bytes >= 0; {fallback} is used",
                      RuntimeWarning, stacklevel=3)
        configure()
