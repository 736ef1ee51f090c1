"""What the policy store keeps: one record per decision, one per feedback, checked on the way in."""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from uniscale_integrations.checks import unit_interval
from uniscale_integrations.errors import UnknownDecisionError
from uniscale_integrations.features.joint import FloatArray
from uniscale_integrations.features.space import Config

_DECISION_ID = re.compile(r"[0-9a-f]{32}")


def new_decision_id() -> str:
    """A fresh decision id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def checked_decision_id(decision_id: object) -> str:
    """``decision_id`` if it has the form ids are issued in, else :class:`UnknownDecisionError`."""
    if isinstance(decision_id, str) and _DECISION_ID.fullmatch(decision_id):
        return decision_id
    shown = repr(decision_id) if not isinstance(decision_id, str) or len(decision_id) <= 80 else "(too long)"
    raise UnknownDecisionError(f"unknown decision id {shown}: ids are 32 lowercase hex digits")


def query_hash(text: str) -> str:
    """SHA-256 of the query's UTF-8 bytes: what the store keeps unless told to keep queries."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Decision:
    """A configuration chosen for a query, with what its feedback will need.

    ``context`` is the query's unit-norm context vector ``c_t``; the joint features are
    rebuilt from it and the configuration's features in whatever space replays the log.
    """

    id: str
    config: Config
    context: FloatArray = field(repr=False)
    cost: float
    """Normalised eFLOPs in [0, 1]."""
    score: float
    """Verifier score in [0, 1]."""
    query_hash: str
    query: str | None = field(default=None, repr=False)
    """The query itself, only where the store was told to keep queries."""
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        checked_decision_id(self.id)
        context = np.array(self.context, dtype=np.float64)
        if context.ndim != 1 or context.size == 0 or not np.isfinite(context).all():
            raise ValueError(f"decision {self.id}: context must be a non-empty finite vector")
        context.flags.writeable = False
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "cost", unit_interval("cost", self.cost))
        object.__setattr__(self, "score", unit_interval("score", self.score))


@dataclass(frozen=True)
class Outcome:
    """What a feedback resolved a decision to."""

    reward: float
    correct: float | None
    """Correctness as given (``None`` when the verifier score stood in)."""
    score: float
    """The score used: the user's, or else the verifier's."""

    def __post_init__(self) -> None:
        if isinstance(self.reward, bool) or not isinstance(self.reward, int | float) or not math.isfinite(self.reward):
            raise ValueError(f"reward must be a finite number, got {self.reward!r}")
        if self.correct is not None:
            unit_interval("correct", self.correct)
        unit_interval("score", self.score)


@dataclass(frozen=True)
class LoggedFeedback:
    """One row of the feedback log joined with its decision: what a replay applies."""

    seq: int
    """Position in the log; replays apply rows in this order."""
    decision_id: str
    config: str
    context: FloatArray = field(repr=False)
    reward: float
