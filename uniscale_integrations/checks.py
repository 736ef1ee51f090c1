"""The one place each rule on a value is written: validators that name the value they refuse.

>>> unit_interval("score", 0.25), unit_interval("correct", True, booleans=True), positive_int("n", 3)
(0.25, 1.0, 3)
>>> unit_interval("score", 1.5)
Traceback (most recent call last):
...
ValueError: score must be a finite number in [0, 1], got 1.5
"""

from __future__ import annotations

import math
import numbers


def is_number(value: object) -> bool:
    """A real number that is not a bool (``True`` is not a count nor a score)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def unit_interval(name: str, value: object, *, booleans: bool = False) -> float:
    """``value`` as a float in [0, 1]; with ``booleans``, ``True`` and ``False`` count as 1 and 0."""
    if booleans and isinstance(value, bool):
        return float(value)
    if not (is_number(value) and math.isfinite(value) and 0.0 <= value <= 1.0):  # type: ignore[arg-type,operator]
        kind = "a bool or a finite number" if booleans else "a finite number"
        raise ValueError(f"{name} must be {kind} in [0, 1], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative(name: str, value: object) -> float:
    """``value`` as a finite float >= 0."""
    if not (is_number(value) and math.isfinite(value) and value >= 0):  # type: ignore[arg-type,operator]
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]
