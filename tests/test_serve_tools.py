"""Tool calling and structured output through ``uniscale serve`` (a real subprocess on loopback, the real offline M
model, greedy: one candidate, so every run decodes alike), driven by the official OpenAI client and LangChain's
``ChatOpenAI``: calls, streamed call deltas, tool results in the history, ``response_format``, and bad tool requests
refused before anything runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (dev extra)")
openai = pytest.importorskip("openai", reason="the serve tests need the openai client (dev extra)")
pytest.importorskip("fastapi", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")
pytest.importorskip("uvicorn", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")

from serve_support import Server, start_server, stop_server  # noqa: E402 - after the extras' checks

MODEL = "uniscale-cost-sensitive"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers a and b.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
WEEKDAY = {
    "type": "function",
    "function": {
        "name": "weekday",
        "description": "The day of the week of a date (YYYY-MM-DD).",
        "parameters": {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]},
    },
}
QUESTION = [{"role": "user", "content": "What is 17 + 25? Use the add tool."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("serve-tools")
    started = start_server(
        store,
        *("--models", "M", "--qp", "1", "--cp", "1", "--max-new-tokens", "48", "--max-tokens-limit", "64"),
        *("--store", str(Path(store) / "policy.db")),
    )
    yield started
    stop_server(started)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300.0)


def test_a_forced_call_comes_back_and_its_result_is_answered(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[ADD, WEEKDAY],
        tool_choice={"type": "function", "function": {"name": "add"}},
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 17, "b": 25}
    assert response.model_extra["uniscale"]["config"].startswith("M/")

    history: list[Any] = [*QUESTION, choice.message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": "42"})
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=[ADD, WEEKDAY], tool_choice="none")
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert not answer.choices[0].message.tool_calls
    assert "42" in (answer.choices[0].message.content or "")


def test_streamed_calls_arrive_as_tool_call_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=[ADD], tool_choice="required", stream=True, parallel_tool_calls=False
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for piece in delta.tool_calls or ():
            if piece.id:
                ids[piece.index] = piece.id
            if piece.function and piece.function.name:
                names[piece.index] = piece.function.name
            arguments[piece.index] = arguments.get(piece.index, "") + (
                (piece.function and piece.function.arguments) or ""
            )
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert names == {0: "add"}
    assert ids[0].startswith("call_")
    assert json.loads(arguments[0]) == {"a": 17, "b": 25}


def test_response_formats_give_json_that_fits_the_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name the capital of France and its country."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
    )
    value = json.loads(response.choices[0].message.content or "")
    assert set(value) >= {"city", "country"}
    assert all(isinstance(value[key], str) for key in ("city", "country"))
    plain = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a JSON object with the key answer set to 2 + 3."}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(plain.choices[0].message.content or ""), dict)


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"tools": [ADD], "tool_choice": "sub"}, "tool_choice", "names no tool given: 'sub'"),
        ({"tool_choice": "required"}, "tool_choice", "gives no tools"),
        ({"tools": [{"type": "function", "function": {"name": "x", "parameters": []}}]}, "tools", None),
        ({"response_format": {"type": "json_schema"}}, "response_format", "json_schema"),
        ({"functions": [ADD["function"]]}, "functions", "send tools"),
    ],
)
def test_bad_tool_requests_are_refused_before_anything_runs(
    server: Server, extra: dict[str, Any], param: str, message: str | None
) -> None:
    body = {"model": MODEL, "messages": QUESTION, **extra}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60.0)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert message is None or message in error["message"]


def test_langchain_chat_openai_binds_tools_against_the_server(server: Server) -> None:
    langchain_openai = pytest.importorskip("langchain_openai", reason="needs langchain-openai (dev extra)")
    llm = langchain_openai.ChatOpenAI(base_url=server.url + "/v1", api_key="x", model=MODEL, max_retries=0)
    bound = llm.bind_tools([ADD], tool_choice="add")
    message = bound.invoke("What is 17 + 25? Use the add tool.")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("add", {"a": 17, "b": 25})]
    streamed = None
    for chunk in bound.stream("What is 17 + 25? Use the add tool."):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("add", {"a": 17, "b": 25})]
