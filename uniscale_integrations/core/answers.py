"""Final answers: extraction from a solution's text, normalisation, and checking.

In order of preference: the last ``\\boxed{...}``, the last ``Answer: ...`` (or "the
answer is ...") that holds a value, and failing both the last number in the text (small
models often skip the format).

>>> extract_answer("3 + 4 = 7, plus 5 is 12.\\nAnswer: 12")
'12'
>>> extract_answer("The total is 1,250 legs.")
'1250'
>>> extract_answer("so the final answer is:\\n\\\\[ \\\\boxed{2,873} \\\\]")
'2873'
>>> numbers_equal("12.0", "12")
True
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_LINE = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\**\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return _canonical_number(numbers[-1])


def _canonical_number(token: str) -> str:
    cleaned = token.replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return cleaned
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: a canonical number where there is one, else the text."""
    for stated in [*_BOXED.findall(text)[-1:], *_ANSWER_LINE.findall(text)[-1:]]:
        stated = stated.strip().strip("*").strip()
        number = _last_number(stated)
        if number is not None:
            return number
        if stated.rstrip(".").strip() and not stated.startswith("\\"):
            return stated.rstrip(".").strip()
    return _last_number(text)


def numbers_equal(a: str, b: str, rel_tol: float = 1e-6) -> bool:
    """Whether two answers denote the same number (formatting, commas and trailing zeros ignored)."""
    try:
        x = float(a.replace(",", ""))
        y = float(b.replace(",", ""))
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9)


def check_numeric(prediction: str | None, reference: str) -> bool:
    """Correctness of a predicted final answer against a numeric reference."""
    return prediction is not None and numbers_equal(prediction, reference)
