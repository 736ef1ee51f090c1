"""The local transformers backend: a :class:`~uniscale_integrations.backends.base.Generator` over a loaded model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.features.query import Message
from uniscale_integrations.tools import FORMATS, ToolFormat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from uniscale_integrations.backends.hf.session import DecodeSession
    from uniscale_integrations.models import LoadedModel, ModelSpec


class HFGenerator:
    """A local transformers causal LM; all ``len(prompts) * n`` paths decode as one batch.

    Decoding runs on :class:`~uniscale_integrations.backends.hf.session.DecodeSession`: each
    distinct prompt is prefilled once and shared by its ``n`` paths, a finished path
    leaves the batch at once, and on CPU the hand-written fast runner is used where the
    architecture allows (see that module).
    """

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    @property
    def name(self) -> str:
        return self.loaded.spec.name

    @property
    def shape(self) -> ModelSpec:
        """The model's spec, which declares its shape (parameters, layers, KV width) to the cost model."""
        return self.loaded.spec

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.loaded.tokenizer

    @property
    def tool_format(self) -> ToolFormat | None:
        """The format the spec declares (its chat template takes ``tools=``), or None."""
        calls = self.loaded.spec.tool_calls
        return FORMATS[calls] if calls is not None else None

    def render(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        if tools and self.tool_format is None:
            raise ValueError(f"model {self.name!r} declares no tool calls: its chat template takes no tools")
        text = self.loaded.tokenizer.apply_chat_template(
            list(messages),
            tools=[dict(tool) for tool in tools] if tools else None,
            tokenize=False,
            add_generation_prompt=True,
        )
        return str(text)

    def session(self, prompts: Sequence[str], n: int | Sequence[int], params: SamplingParams) -> DecodeSession:
        from uniscale_integrations.backends.hf.session import DecodeSession

        return DecodeSession(self.loaded, prompts, n, params)
