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
>>> stated_answer("so it is Paris.\\nAnswer: **Paris**.")
'Paris'
>>> stated_answer("The final answer is: Answer: No")
'No'
>>> normalize_text("The  Eiffel-Tower!")
'eiffeltower'
>>> canonical_answer("1,250.0"), canonical_answer("The Nile")
('1250', 'nile')
>>> choice_letter("Answer: (b)"), choice_letter("C. 42"), choice_letter("A. 3\\nB. 4")
('B', 'C', None)
"""

from __future__ import annotations

import functools
import logging
import math
import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_LINE = re.compile(
    r"\banswer\b\s*(?:is\b\s*[:=]?|[:=])\s*\**\s*(?:answer\s*[:=]\s*\**\s*)*([^\n]+)", re.IGNORECASE
)
"""'Answer: x', 'answer = x' or 'the answer is x' (not 'the answer lies in ...', not 'answered');
a repeated prefix ('The final answer is: Answer: x') is skipped."""
_FINAL_LINE = re.compile(r"^[\s*#>-]*(?:the\s+)?(?:final\s+)?answer\s*[:=]\s*\**\s*\S", re.IGNORECASE)
"""A line that opens with 'Answer:' (or 'Final answer =', '**Answer:** ...')."""
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_STATED_TRIM = re.compile(r"^[\s*]+|[\s*.]+$")
_MATH_DELIMITERS = re.compile(r"\\[\[\]()]|^\s*\$|\$\s*$")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_STATED_CHOICE = re.compile(
    r"(?:answer|correct\s+(?:option|choice))\s*(?:is)?\s*(?:option|choice)?\s*[:=]?\s*\**\s*\(?([A-Za-z])\)?(?![A-Za-z])",
    re.IGNORECASE,
)
_BOXED_CHOICE = re.compile(r"\\boxed\{\s*\(?([A-Za-z])\)?\s*\}")
_LONE_CHOICE = re.compile(r"\(?([A-Za-z])\)?[.):]?")
_MARKED_CHOICE = re.compile(r"\(([A-Z])\)|^\s*([A-Z])[.)](?=\s|$)", re.MULTILINE)
_COMPOUND = re.compile(r"[:/^]|\d\s*[-+*x×]\s*\d|\d\s*,\s*\d{1,2}(?!\d)")
"""A stated answer with one number that still is more than that number (a time, a fraction, ...)."""
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_NOT_MATH = re.compile(r"[:;\[\]]|[A-Za-z]{2,}")
"""Outside LaTeX commands, math answers hold no colon, bracket or word (a lone variable is fine)."""
_POWER_TOWER = re.compile(r"\^.*\^|\*\*.*\*\*|\^\{?\d{4,}")
_MATH_MAX_CHARS = 64


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
    """The final answer of a solution: the stated one (last ``\\boxed{}``, else last "Answer: ..."),
    as a canonical number when it is one number with decoration ("$1,250.00", "12 legs"), else
    as written ("17:37:00", "Monday", "48 + 37 = 85"); without one, the last number in the text.

    >>> extract_answer("Answer: 17:37:00"), extract_answer("Answer: No."), extract_answer("so 12 legs")
    ('17:37:00', 'No', '12')
    """
    stated = stated_answer(text)
    if stated is None:
        return _last_number(text)
    numbers = _NUMBER.findall(stated)
    if len(numbers) == 1 and not _COMPOUND.search(stated):
        return _canonical_number(numbers[0])
    return stated


def voted_answer(text: str, *, cut: bool = False) -> str | None:
    """The answer a path casts in a vote: :func:`extract_answer`, or ``None`` for a path ``cut`` at
    the token cap before it stated one (its last number is read from unfinished reasoning).

    >>> voted_answer("3 + 4 = 7, and then 7 +", cut=True) is None, voted_answer("So 9.\\nAnswer: 9", cut=True)
    (True, '9')
    """
    if cut and stated_answer(text) is None:
        return None
    return extract_answer(text)


def numbers_equal(a: str, b: str, rel_tol: float = 1e-6) -> bool:
    """Whether two answers denote the same number (formatting, commas and trailing zeros ignored)."""
    try:
        x = float(a.replace(",", ""))
        y = float(b.replace(",", ""))
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9)


def stated_answer(text: str) -> str | None:
    """The answer a solution states (last ``\\boxed{}``, else last "Answer: ..."), as written
    but for emphasis, a final full stop and math delimiters (``\\[ 5 \\]``, ``$5$``)."""
    for stated in [*_BOXED.findall(text)[-1:], *_ANSWER_LINE.findall(text)[-1:]]:
        stated = _STATED_TRIM.sub("", _MATH_DELIMITERS.sub("", stated))
        if stated:
            return stated
    return None


def is_final_answer_line(line: str) -> bool:
    """Whether a line states a final answer in the format the instructions ask for.

    >>> is_final_answer_line("**Answer:** 12"), is_final_answer_line("The answer is the sum of both")
    (True, False)
    """
    return _FINAL_LINE.match(line) is not None


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, articles (a, an, the) dropped, whitespace collapsed."""
    kept = "".join(
        ch for ch in text.lower() if ch not in string.punctuation and not unicodedata.category(ch).startswith("P")
    )
    return " ".join(_ARTICLES.sub(" ", kept).split())


@functools.lru_cache(maxsize=4096)
def canonical_answer(answer: str) -> str:
    """A key under which equal answers compare equal: numbers and math by value (``math-verify``
    parses fractions, LaTeX and equations), other answers as :func:`normalize_text`.

    >>> [canonical_answer(a) for a in ("3/4", "\\\\frac{3}{4}", "0.75", "48 + 37 = 85", "2x+1", "1 + 2x")]
    ['0.75', '0.75', '0.75', '85', '2*x + 1', '2*x + 1']
    """
    stripped = answer.strip()
    if _NUMBER.fullmatch(stripped):
        return _canonical_number(stripped)
    value = math_value(stripped)
    if value is None:
        return normalize_text(stripped)
    if value.is_number:
        try:
            return _canonical_number(format(float(value), ".12g"))
        except (OverflowError, TypeError, ValueError):  # too large for a float, or complex
            pass
    return str(value)


def math_value(answer: str) -> Any | None:
    """The value of a math-shaped answer ("3/4", "\\frac{1}{2}", "x = 12", "2^{10}") as a SymPy
    expression parsed by ``math-verify``, or ``None`` for anything else (words, times, lists).

    An equation's right-hand side is its value. Parsing runs without math-verify's signal-based
    timeout (it works only in the main thread; the engine runs in a server's worker threads), so
    only short answers without towers of powers are parsed.
    """
    text = answer.strip()
    bare = _LATEX_COMMAND.sub("", text)
    if (
        len(text) > _MATH_MAX_CHARS
        or not any(ch.isdigit() for ch in text)
        or _NOT_MATH.search(bare)
        or _POWER_TOWER.search(text)
    ):
        return None
    import sympy
    from math_verify import parse

    _quiet_math_verify()
    parsed = parse(f"${text}$", parsing_timeout=None)
    if not parsed or not isinstance(parsed[0], sympy.Basic):
        return None
    value = parsed[0]
    return value.rhs if isinstance(value, sympy.Eq) else value


@functools.cache
def _quiet_math_verify() -> None:
    """Drop math-verify's warning, on every parse, that its timeout is off (it is off on purpose)."""
    logging.getLogger("math_verify.parser").addFilter(lambda record: "Timeout is disabled" not in record.getMessage())


def same_answer(a: str, b: str) -> bool:
    """Whether two stated answers are equal: by value when both are math (``math-verify``, to six
    significant digits), else under :func:`canonical_answer`.

    >>> same_answer("1/3", "0.333333"), same_answer("No.", "no"), same_answer("17:37:00", "17:37")
    (True, True, False)
    """
    if canonical_answer(a) == canonical_answer(b):
        return True
    left, right = math_value(a), math_value(b)
    if left is None or right is None:
        return False
    from math_verify import verify

    return bool(verify(left, right, timeout_seconds=None))


def choice_letter(text: str, choices: str = "ABCD") -> str | None:
    """The option a multiple-choice solution picks, as an upper-case letter of ``choices``.

    In order: the last stated choice ("Answer: (B)", "the answer is b", "the correct option is C",
    ``\\boxed{B}``; a lower-case letter only when nothing but punctuation follows it on its
    line, so "the answer is a dog" picks nothing); a text that is just a letter ("b", "(B)",
    "B."); else the one option marked as "(B)" anywhere or "B." / "B)" at a line's start,
    where marks of two different options are ambiguous (``None``).
    """
    options = choices.upper()
    stated = sorted([*_STATED_CHOICE.finditer(text), *_BOXED_CHOICE.finditer(text)], key=lambda m: m.start())
    for match in reversed(stated):
        letter = match.group(1)
        rest_of_line = text[match.end() :].split("\n", 1)[0]
        if letter.upper() in options and (letter.isupper() or not any(ch.isalnum() for ch in rest_of_line)):
            return letter.upper()
    lone = _LONE_CHOICE.fullmatch(text.strip())
    if lone and lone.group(1).upper() in options:
        return lone.group(1).upper()
    marked = {a or b for a, b in _MARKED_CHOICE.findall(text)} & set(options)
    return marked.pop() if len(marked) == 1 else None
