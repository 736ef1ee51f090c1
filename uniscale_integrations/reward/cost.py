"""Equivalent FLOPs (eFLOPs): compute plus memory traffic in FLOP-equivalents.

For a model with ``P`` parameters, ``L`` layers and a key-value width ``kv`` (KV heads
times head size), a generation costs::

    compute = 2 * P * tokens_processed
    memory  = flops_per_byte * bytes_per_param * (P * forward_passes + 2 * L * kv * kv_reads)
    eFLOPs  = compute + memory

``tokens_processed`` counts every token the hardware pushed through the model, padding
of finished paths in a batch included; ``forward_passes`` counts batched model calls
(each reads all weights once, shared by the whole batch); ``kv_reads`` counts cached
positions read by attention, summed over paths and decode steps. The verifier's own
work is costed the same way and added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol

from uniscale_integrations.features.space import Config, ConfigSpace


class Shaped(Protocol):
    """What the cost model needs to know of a model: a :class:`ModelShape`, or a
    :class:`~uniscale_integrations.models.ModelSpec` (which declares the same numbers)."""

    @property
    def params(self) -> int: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def kv_dim(self) -> int: ...


@dataclass(frozen=True)
class ModelShape:
    """A model's shape as plain numbers (for a model known by its size only: a remote or embedding model)."""

    params: int
    n_layers: int
    kv_dim: int


@dataclass
class Usage:
    """Work done by one model: what the backend counted while generating or scoring."""

    prompt_tokens: int = 0
    """Useful prompt tokens, one copy per path (reported to users as input tokens)."""
    completion_tokens: int = 0
    """Useful generated tokens (reported to users as output tokens)."""
    tokens_processed: int = 0
    """Every token position the model computed, padding included (drives compute)."""
    forward_passes: int = 0
    """Batched model calls; each reads every weight once."""
    kv_reads: int = 0
    """Cached positions read by attention, summed over paths and steps."""

    def __iadd__(self, other: Usage) -> Usage:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def __add__(self, other: Usage) -> Usage:
        total = Usage()
        total += self
        total += other
        return total

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def tokens(self) -> dict[str, int]:
        """Prompt, completion and total tokens, under the names OpenAI's ``usage`` gives them."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class CostModel:
    """Prices :class:`Usage` in eFLOPs for given hardware.

    ``flops_per_byte`` is the hardware's ratio of compute to memory bandwidth. The CPU
    default (2.0) reproduces the measured cost of batching on the 2-core machine this
    project is developed on (batch 8 decodes ~2.8x the tokens/s of batch 1); a data-centre
    GPU is closer to 150. ``bytes_per_param`` follows the dtype the weights are held in.
    """

    flops_per_byte: float = 2.0
    bytes_per_param: float = 4.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name} must be a finite non-negative number, got {value!r}")

    @classmethod
    def for_device(cls, device: str) -> CostModel:
        """Defaults for ``"cpu"`` (fp32) or ``"cuda"`` (16-bit weights)."""
        if device.startswith("cuda"):
            return cls(flops_per_byte=150.0, bytes_per_param=2.0)
        return cls()

    def eflops(self, shape: Shaped, usage: Usage) -> float:
        compute = 2.0 * shape.params * usage.tokens_processed
        weight_bytes = self.bytes_per_param * shape.params * usage.forward_passes
        kv_bytes = self.bytes_per_param * 2 * shape.n_layers * shape.kv_dim * usage.kv_reads
        return compute + self.flops_per_byte * (weight_bytes + kv_bytes)


@dataclass(frozen=True)
class NominalBudget:
    """The token budget assumed when pricing a configuration before running it."""

    prompt_tokens: int = 96
    new_tokens: int = 64


@dataclass(frozen=True)
class SpacePricing:
    """Nominal eFLOPs of every configuration of a space, and normalisation against the dearest."""

    nominal: Mapping[Config, float] = field(repr=False)

    @classmethod
    def of(
        cls,
        space: ConfigSpace,
        shapes: Mapping[str, Shaped],
        cost_model: CostModel,
        budget: NominalBudget = NominalBudget(),
    ) -> SpacePricing:
        missing = sorted(set(space.models) - set(shapes))
        if missing:
            raise ValueError(f"no model shape for: {', '.join(missing)}")
        return cls({c: cost_model.eflops(shapes[c.model], nominal_usage(c, budget)) for c in space})

    @property
    def max_eflops(self) -> float:
        return max(self.nominal.values())

    def normalise(self, eflops: float) -> float:
        """eFLOPs as a share of the dearest configuration's nominal cost, clipped to [0, 1]."""
        return min(1.0, max(0.0, eflops / self.max_eflops))

    def normalised(self) -> dict[Config, float]:
        return {c: self.normalise(v) for c, v in self.nominal.items()}


def nominal_usage(config: Config, budget: NominalBudget) -> Usage:
    """The usage of a configuration whose paths all run the full token budget in one batch.

    Beam search expands each of the ``bs`` beams into ``bs`` children per step, so a
    config searches ``qp * cp * bs`` paths but its decode batch holds ``bs`` times as many.
    """
    batch = config.qp * config.cp * config.bs * (config.bs if config.bs > 1 else 1)
    new = budget.new_tokens
    prompt = budget.prompt_tokens
    return Usage(
        prompt_tokens=config.paths * prompt,
        completion_tokens=config.paths * new,
        tokens_processed=batch * (prompt + new),
        forward_passes=1 + new,
        kv_reads=batch * (new * prompt + new * (new - 1) // 2),
    )
