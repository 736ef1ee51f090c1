"""Generator backends: turn prompts into many sampled paths at once, with exact accounting."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from uniscale_integrations.core.cost import ModelShape, Usage

if TYPE_CHECKING:
    from uniscale_integrations.models import LoadedModel

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Completion:
    """One generated path."""

    prompt_index: int
    text: str
    completion_tokens: int
    mean_logprob: float
    """Mean log-probability of the generated tokens under the (untempered) model."""
    finish_reason: str
    """``"stop"`` (end of sequence or a stop string) or ``"length"``."""


@dataclass
class GenerationBatch:
    """Every path of one batched call, and the work the call did."""

    completions: list[Completion]
    usage: Usage = field(default_factory=Usage)


class Generator(Protocol):
    """A model that samples ``n`` paths for each of several prompts in one batched call."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> ModelShape: ...

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for a chat, through the model's chat template."""
        ...

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> GenerationBatch: ...


class HFGenerator:
    """A local transformers causal LM; all ``len(prompts) * n`` paths decode as one batch."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    @property
    def shape(self) -> ModelShape:
        spec = self.loaded.spec
        return ModelShape(params=spec.params, n_layers=spec.n_layers, kv_dim=spec.kv_dim)

    def render(self, messages: Sequence[Message]) -> str:
        text = self.loaded.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return str(text)

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> GenerationBatch:
        import torch

        if not prompts:
            raise ValueError("generate needs at least one prompt")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        tokenizer = self.loaded.tokenizer
        model = self.loaded.model
        encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.loaded.device)
        greedy = params.temperature == 0
        kwargs: dict[str, object] = {
            "max_new_tokens": params.max_new_tokens,
            "num_return_sequences": n,
            "do_sample": not greedy,
            "return_dict_in_generate": True,
            "output_logits": True,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if not greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = model.generate(**encoded, **kwargs)  # type: ignore[operator]
        return self._collect(out, encoded["attention_mask"], n, params)

    def _collect(self, out: object, attention_mask: object, n: int, params: SamplingParams) -> GenerationBatch:
        import torch

        tokenizer = self.loaded.tokenizer
        mask = attention_mask.repeat_interleave(n, dim=0)  # type: ignore[attr-defined]
        prompt_len = int(mask.shape[1])
        generated = out.sequences[:, prompt_len:]  # type: ignore[attr-defined]
        rows, steps = generated.shape
        logprobs = torch.stack(
            [
                torch.log_softmax(step.float(), dim=-1).gather(1, generated[:, i : i + 1]).squeeze(1)
                for i, step in enumerate(out.logits)  # type: ignore[attr-defined]
            ],
            dim=1,
        )
        eos_ids = _eos_ids(self.loaded.model, tokenizer)
        completions = []
        for row in range(rows):
            tokens = generated[row].tolist()
            length = _useful_length(tokens, eos_ids, tokenizer.pad_token_id)
            hit_eos = length < steps or (length > 0 and tokens[length - 1] in eos_ids)
            text = str(tokenizer.decode(tokens[:length], skip_special_tokens=True))
            text, hit_stop = _cut_at_stop(text, params.stop)
            mean_lp = float(logprobs[row, :length].mean()) if length else 0.0
            completions.append(
                Completion(
                    prompt_index=row // n,
                    text=text.strip(),
                    completion_tokens=length,
                    mean_logprob=mean_lp,
                    finish_reason="stop" if (hit_eos or hit_stop) else "length",
                )
            )
        useful_prompt = int(mask.sum())
        usage = Usage(
            prompt_tokens=useful_prompt,
            completion_tokens=sum(c.completion_tokens for c in completions),
            tokens_processed=rows * (prompt_len + steps - 1),
            forward_passes=steps,
            kv_reads=rows * sum(prompt_len + t for t in range(1, steps)),
        )
        return GenerationBatch(completions, usage)


def _eos_ids(model: object, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _useful_length(tokens: list[int], eos_ids: set[int], pad_id: int | None) -> int:
    """Generated tokens up to and including the first end-of-sequence token."""
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return i + 1
    if pad_id is not None and pad_id not in eos_ids:
        while tokens and tokens[-1] == pad_id:
            tokens = tokens[:-1]
    return len(tokens)


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
