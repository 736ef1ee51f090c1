"""Test-run options (``--runslow`` also runs the tests marked ``slow``: long real-model runs) and shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_support import serve_scripted


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def scripted() -> Iterator[str]:
    """The base URL of a scripted OpenAI-compatible server (:class:`openai_support.Scripted`)."""
    yield from serve_scripted()
