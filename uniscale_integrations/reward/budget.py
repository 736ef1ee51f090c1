"""Per-query caps on what answering may spend: eFLOPs, generated tokens, seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Cap = Literal["eflops", "tokens", "seconds"]


@dataclass(frozen=True)
class Budget:
    """Caps for one query; ``None`` leaves a quantity uncapped.

    ``tokens`` counts generated tokens over all paths. Selection skips configurations
    whose nominal cost (every path running the nominal prompt and answer) exceeds a cap;
    the search checks the caps as it decodes and, once one is reached, stops and answers
    with the best it has (``Result.budget_exhausted`` names the cap).

    >>> Budget(tokens=100).exceeded(eflops=1e9, tokens=120, seconds=0.5)
    'tokens'
    """

    eflops: float | None = None
    tokens: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("eflops", "tokens", "seconds"):
            value = getattr(self, name)
            if value is None:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise ValueError(f"budget {name} must be a positive finite number or None, got {value!r}")
        if self.tokens is not None and not isinstance(self.tokens, int):
            raise ValueError(f"budget tokens must be an integer, got {self.tokens!r}")

    def fits(self, *, eflops: float, tokens: int) -> bool:
        """Whether a configuration of this nominal cost may be chosen."""
        return (self.eflops is None or eflops <= self.eflops) and (self.tokens is None or tokens <= self.tokens)

    def exceeded(self, *, eflops: float, tokens: int, seconds: float) -> Cap | None:
        """The first cap that the spending so far has reached, or ``None``."""
        if self.eflops is not None and eflops >= self.eflops:
            return "eflops"
        if self.tokens is not None and tokens >= self.tokens:
            return "tokens"
        if self.seconds is not None and seconds >= self.seconds:
            return "seconds"
        return None
