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

import math
import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation

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
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_STATED_CHOICE = re.compile(
    r"(?:answer|correct\s+(?:option|choice))\s*(?:is)?\s*(?:option|choice)?\s*[:=]?\s*\**\s*\(?([A-Za-z])\)?(?![A-Za-z])",
    re.IGNORECASE,
)
_BOXED_CHOICE = re.compile(r"\\boxed\{\s*\(?([A-Za-z])\)?\s*\}")
_LONE_CHOICE = re.compile(r"\(?([A-Za-z])\)?[.):]?")
_MARKED_CHOICE = re.compile(r"\(([A-Z])\)|^\s*([A-Z])[.)](?=\s|$)", re.MULTILINE)


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


def check_numeric(prediction: str | None, reference: str) -> bool:
    """Correctness of a predicted final answer against a numeric reference."""
    return prediction is not None and numbers_equal(prediction, reference)


def stated_answer(text: str) -> str | None:
    """The answer a solution states (last ``\\boxed{}``, else last "Answer: ..."), as written."""
    for stated in [*_BOXED.findall(text)[-1:], *_ANSWER_LINE.findall(text)[-1:]]:
        stated = _STATED_TRIM.sub("", stated)
        if stated and not stated.startswith("\\"):
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


def canonical_answer(answer: str) -> str:
    """A key under which equal answers compare equal: a canonical number, else normalised text."""
    stripped = answer.strip()
    if _NUMBER.fullmatch(stripped):
        return _canonical_number(stripped)
    return normalize_text(stripped)


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
