"""Shared fixtures: a real engine on the offline model S with a tiny space, M for tool calls, and an event log."""

from collections.abc import Iterator

import pytest
from llama_index.core.instrumentation import root_dispatcher
from llama_index_support import EventLog

from uniscale_integrations import UniScale
from uniscale_integrations.llama_index import UniScaleLLM


@pytest.fixture(scope="module")
def engine() -> Iterator[UniScale]:
    with UniScale.from_defaults(models=("S",), qp=(1,), cp=(1, 2), bs=(1,), max_new_tokens=20, seed=0) as engine:
        yield engine


@pytest.fixture(scope="module")
def qwen() -> Iterator[UniScaleLLM]:
    """M (the rung that makes tool calls), greedy, one configuration."""
    with UniScale.from_defaults(models=("M",), qp=(1,), cp=(1,), bs=(1,), max_new_tokens=64, seed=0) as engine:
        yield UniScaleLLM(engine=engine)


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    """Every instrumentation event of the test, from LlamaIndex's root dispatcher."""
    log = EventLog()
    root_dispatcher.add_event_handler(log)
    yield log
    root_dispatcher.event_handlers.remove(log)
