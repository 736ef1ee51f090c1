"""Question variants and prompts: how a chat is phrased before a model sees it."""

from __future__ import annotations

from collections.abc import Sequence

from uniscale_integrations.backends.base import Message
from uniscale_integrations.errors import ConfigSpaceError

VARIANT_TEMPLATES: tuple[str, ...] = (
    "{question}",
    "Read the problem carefully and solve it.\n\n{question}",
    "{question}\n\nWork it out step by step before answering.",
    "Here is a problem for you.\n{question}\nCheck your arithmetic, then answer.",
)


def question_variants(messages: Sequence[Message], qp: int, instruction: str | None = None) -> list[list[Message]]:
    """``qp`` chats that differ only in how the last user message is phrased."""
    if qp > len(VARIANT_TEMPLATES):
        raise ConfigSpaceError(f"qp={qp} exceeds the {len(VARIANT_TEMPLATES)} question variants available")
    last_user = last_user_index(messages)
    question = messages[last_user]["content"]
    variants = []
    for template in VARIANT_TEMPLATES[:qp]:
        chat = [dict(m) for m in messages]
        content = template.format(question=question)
        chat[last_user]["content"] = f"{content}\n{instruction}" if instruction else content
        variants.append(chat)
    return variants


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[Message]:
    """The chat with ``system_prompt`` first, unless the chat brings its own system message."""
    if any(m["role"] == "system" for m in messages):
        return [dict(m) for m in messages]
    return [{"role": "system", "content": system_prompt}, *(dict(m) for m in messages)]


def last_user_index(messages: Sequence[Message]) -> int:
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ValueError("the chat has no user message to answer")
    return last_user
