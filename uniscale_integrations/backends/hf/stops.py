"""Where a row of a decode session stops: end-of-sequence tokens, stop strings, a final-answer
line, or a loop it has fallen into.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from uniscale_integrations.answers import is_final_answer_line

ANSWER_WINDOW = 48
"""Tokens looked at to find the line a newline just ended (``SamplingParams.stop_at_answer``)."""


LOOP_MAX_PERIOD = 64


LOOP_MIN_SPAN = 48


LOOP_MIN_REPEATS = 3


LOOP_LINE_PERIOD = 4
"""The most lines in a block that :func:`lines_repeat` looks for."""


LOOP_LINE_REPEATS = 6
"""How many times in a row a block of lines must come back (numbers aside) to count as a loop."""


LOOP_LINE_WINDOW = 512
"""Tokens decoded to look for repeated lines (enough for 24 lines of ~20 tokens)."""


COUNT_SPAN = 160
"""Characters, numbers masked, that must repeat one short pattern for :func:`counts_on`."""
COUNT_MAX_PERIOD = 24
"""The longest pattern (in characters, numbers masked) that :func:`counts_on` looks for."""
COUNT_EVERY = 8
"""Tokens between two looks for counting (a decode of the tail costs more than a token compare)."""
COUNT_WINDOW = 512
"""Tokens decoded to look for counting: enough for :data:`COUNT_SPAN` characters once numbers are
masked, with tokenizers that split numbers into single digits."""

_DIGITS = re.compile(r"\d+")


def repeats_itself(ids: Sequence[int]) -> bool:
    """Whether the tail of ``ids`` is one block of at most :data:`LOOP_MAX_PERIOD` tokens written
    :data:`LOOP_MIN_REPEATS` or more times in a row, over at least :data:`LOOP_MIN_SPAN` tokens.

    Written by hand: transformers' ``no_repeat_ngram_size`` and repetition penalties change the
    distribution; this only ends a row that has already fallen into a loop (``"1974 - 2026 = "``
    over and over), keeping every token it sampled before.

    >>> repeats_itself([7, 8, 9] * 16), repeats_itself([7, 8, 9] * 15), repeats_itself(list(range(60)))
    (True, False, False)
    """
    n = len(ids)
    for period in range(1, min(LOOP_MAX_PERIOD, n // LOOP_MIN_REPEATS) + 1):
        repeats = max(LOOP_MIN_REPEATS, -(-LOOP_MIN_SPAN // period))
        span = repeats * period
        if span > n or ids[n - period :] != ids[n - 2 * period : n - period]:
            continue
        tail = ids[n - span :]
        if all(tail[i] == tail[i + period] for i in range(span - period)):
            return True
    return False


def lines_repeat(text: str) -> bool:
    """Whether the last complete lines of ``text`` are one block of at most
    :data:`LOOP_LINE_PERIOD` lines written :data:`LOOP_LINE_REPEATS` times in a row, numbers
    aside: a row counting on without end ("27. Check: 68*r = 3394", "28. Check: 68*r = 3394",
    ...), which :func:`repeats_itself` misses because the numbers change. Blank lines are
    skipped; lines of fewer than 8 characters once numbers are masked never make a block.

    >>> lines_repeat("".join(f"{i}. She used {i} + 1 = {i + 1} spoons.\\n" for i in range(6)))
    True
    >>> lines_repeat("".join(f"{i}. She used {i} + 1 = {i + 1} spoons.\\n" for i in range(5)))
    False
    >>> lines_repeat("12 + 5 = 17\\n17 + 8 = 25\\n25 + 3 = 28\\n28 + 9 = 37\\nAnswer: 37\\n")
    False
    """
    lines = [masked for line in text.split("\n")[:-1] if (masked := _DIGITS.sub("#", line).strip())]
    for period in range(1, LOOP_LINE_PERIOD + 1):
        need = period * LOOP_LINE_REPEATS
        if len(lines) < need:
            break
        tail = lines[-need:]
        if all(len(line) >= 8 for line in tail[:period]) and all(
            tail[i] == tail[i + period] for i in range(need - period)
        ):
            return True
    return False


def counts_on(text: str) -> bool:
    """Whether the last :data:`COUNT_SPAN` characters of ``text``, numbers masked, repeat one
    pattern of at most :data:`COUNT_MAX_PERIOD` characters: a row counting on and on ("119, 120,
    121, ..." or "60. 79.0", "61. 80.0", ... line after short line), which :func:`lines_repeat`
    leaves to short lines of a list. A list must run to about 30 short items before it counts.

    >>> counts_on(", ".join(str(i) for i in range(40, 120)))
    True
    >>> counts_on("".join(f"{i}. {i + 19}.0\\n" for i in range(1, 13)))
    False
    >>> counts_on("".join(f"{i}. {i + 19}.0\\n" for i in range(1, 40)))
    True
    """
    masked = _DIGITS.sub("#", text)
    tail = masked[-COUNT_SPAN:]
    return len(masked) > COUNT_SPAN and any(
        len(masked) >= COUNT_SPAN + period and tail == masked[-COUNT_SPAN - period : -period]
        for period in range(1, COUNT_MAX_PERIOD + 1)
    )


def ends_in_loop(ids: Sequence[int], tokenizer: Any) -> bool:
    """Whether a row that just sampled ``ids[-1]`` is in a loop (``SamplingParams.stop_on_loop``):
    its tail repeats itself (:func:`repeats_itself`), the line it just ended closes a run of
    repeated lines (:func:`lines_repeat`), or, looked at every :data:`COUNT_EVERY` tokens, it
    counts on (:func:`counts_on`)."""
    if repeats_itself(ids):
        return True
    if len(ids) % COUNT_EVERY == 0 and counts_on(decode(tokenizer, ids[-COUNT_WINDOW:])):
        return True
    if "\n" not in decode(tokenizer, ids[-1:]):
        return False
    return lines_repeat(decode(tokenizer, ids[-LOOP_LINE_WINDOW:]))


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    if not ids:
        return ""
    return str(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))


def eos_ids(model: object, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


def ends_answer_line(ids: Sequence[int], tokenizer: Any) -> bool:
    """Whether the last token of ``ids`` ended a line that states a final answer (``SamplingParams.stop_at_answer``)."""
    if "\n" not in decode(tokenizer, ids[-1:]):
        return False
    lines = decode(tokenizer, ids[-ANSWER_WINDOW:]).split("\n")
    finished = [line for line in lines[:-1] if line.strip()]
    return bool(finished) and is_final_answer_line(finished[-1])
