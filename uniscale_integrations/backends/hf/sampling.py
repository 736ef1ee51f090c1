"""Sampling the next token of many rows at once, each row from its own random stream.

A row's draw at position ``t`` is a function of its stream and ``t`` alone (:func:`uniform`), so
what a row samples never depends on which other rows share its batch.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from uniscale_integrations.backends.base import SamplingParams

TOP_P_CANDIDATES = 64
"""Top-p sampling first looks at this many most likely tokens and widens only when the
nucleus does not fit (exact either way; avoids sorting a 151k vocabulary per step)."""


def sample_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    *,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row (greedy at temperature 0, else temperature + top-p) and its log-prob.

    The log-prob is under the untempered model (``log_softmax`` of the raw logits).
    ``uniforms`` (one draw in [0, 1) per row) picks each row's token by inverting its own
    distribution, so a row's sample depends on nothing but its logits and its draw;
    without them, ``generator`` drives ``torch.multinomial``.
    """
    logits = logits.float()
    if params.temperature == 0:
        tokens = logits.argmax(dim=-1)
    else:
        scaled = logits / params.temperature if params.temperature != 1 else logits
        if params.top_p < 1:
            tokens = _top_p_sample(scaled, params.top_p, generator, uniforms)
        else:
            probs = torch.softmax(scaled, dim=-1)
            tokens = _draw(probs, generator, uniforms).squeeze(1)
    chosen = logits.gather(1, tokens.unsqueeze(1)).squeeze(1)
    return tokens, chosen - torch.logsumexp(logits, dim=-1)


def _top_p_sample(
    scaled: torch.Tensor, top_p: float, generator: torch.Generator | None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """Nucleus sampling without sorting the whole vocabulary when the nucleus is small.

    Keeps the most likely tokens whose preceding cumulative probability is below
    ``top_p`` (the most likely token always). Looks at the top ``TOP_P_CANDIDATES``
    first and widens (x4) until their mass reaches ``top_p``, so the result is exact.
    """
    vocab = scaled.shape[-1]
    total = torch.logsumexp(scaled, dim=-1, keepdim=True)
    k = min(vocab, TOP_P_CANDIDATES)
    while True:
        values, ids = scaled.topk(k, dim=-1)
        probs = (values - total).exp()
        cumulative = probs.cumsum(dim=-1)
        if k == vocab or bool((cumulative[:, -1] >= top_p).all()):
            break
        k = min(vocab, k * 4)
    keep = (cumulative - probs) < top_p
    keep[:, 0] = True
    probs = probs.masked_fill(~keep, 0.0)
    return ids.gather(1, _draw(probs, generator, uniforms)).squeeze(1)


def _draw(probs: torch.Tensor, generator: torch.Generator | None, uniforms: torch.Tensor | None) -> torch.Tensor:
    """One index per row of unnormalised ``probs``: inverse CDF at ``uniforms``, else multinomial."""
    if uniforms is None:
        return torch.multinomial(probs, 1, generator=generator)
    cumulative = probs.double().cumsum(dim=-1)
    target = uniforms.to(cumulative.device).unsqueeze(1) * cumulative[:, -1:]
    choice = (cumulative <= target).sum(dim=-1, keepdim=True)
    return choice.clamp(max=probs.shape[-1] - 1)


@functools.lru_cache(maxsize=8)
def tokens_starting_with(tokenizer: Any, texts: tuple[str, ...]) -> tuple[int, ...]:
    """The ids of the vocabulary's tokens whose text, leading whitespace aside, starts with one of ``texts``
    (or is a prefix of one: a first token may not begin ``<tool_call>`` piece by piece either)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    banned = []
    for token_id, piece in enumerate(pieces):
        text = tokenizer.convert_tokens_to_string([piece]).lstrip() if piece else ""
        if text and any(text.startswith(t) or t.startswith(text) for t in texts):
            banned.append(token_id)
    return tuple(banned)


_MASK64 = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 finaliser), for deriving independent streams."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = ((h ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 29
    return h


def row_stream(seed: int, prompt_index: int, sample: int) -> int:
    """The random stream of a session's row: sample ``sample`` of prompt ``prompt_index`` (the greedy
    row of ``greedy_first`` is sample -1). Its draws depend on nothing else (:func:`uniform`)."""
    return mix(seed, prompt_index, sample)


def uniform(stream: int, position: int) -> float:
    """A row's draw for its token at ``position``: a function of its stream and the position only."""
    return (mix(stream, position) >> 11) / float(1 << 53)
