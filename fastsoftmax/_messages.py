"""How error messages show the values they name."""
from __future__ import annotations

import numbers


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
