"""``uniscale serve`` against hostile input, as a real subprocess: long prompts, the front door, loose fields.

One server with a key runs the real S model; each class of bad input must get a 4xx (never a
5xx), fast, and leave the server's memory and health as they were.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (dev extra)")
pytest.importorskip("fastapi", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")
pytest.importorskip("uvicorn", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_support import Server, start_server, stop_server  # noqa: E402

KEY = "test-key-0123"
AUTH = {"authorization": f"Bearer {KEY}"}
MODEL = "uniscale-cost-sensitive"
BODY_LIMIT = 8_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(
        tmp_path_factory.mktemp("hardened"),
        *("--models", "S", "--qp", "1", "--cp", "1", "--max-new-tokens", "8", "--modes", "cost-sensitive"),
        *("--api-key", KEY, "--max-body-bytes", str(BODY_LIMIT), "--max-prompt-tokens", "2048"),
    )
    yield started
    stop_server(started)


def _rss(server: Server) -> int:
    """The server's resident memory in bytes (``/proc``)."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _chat(server: Server, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60.0, **kwargs)


def _user(text: str) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


LONG_INPUTS = {
    "99k-character prompt": _user("word " * 19_800),
    "200k-character system message": {
        "model": MODEL,
        "messages": [{"role": "system", "content": "rule " * 40_000}, {"role": "user", "content": "hi"}],
    },
    "1 MB system message": {
        "model": MODEL,
        "messages": [{"role": "system", "content": "x" * 1_000_000}, {"role": "user", "content": "hi"}],
    },
    "50 turns of 99k characters": {
        "model": MODEL,
        "messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": "y" * 99_000} for i in range(49)]
        + [{"role": "user", "content": "hi"}],
    },
    "50,000 short messages": {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"} for _ in range(50_000)],
    },
    "20k-character prompt": _user("Please count these words. " + "apple banana cherry " * 1_000),
}


@pytest.mark.parametrize("name", list(LONG_INPUTS))
def test_a_long_input_gets_400_within_a_second(server: Server, name: str) -> None:
    started = time.perf_counter()
    response = _chat(server, LONG_INPUTS[name])
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "limit" in error["message"] or "context window" in error["message"]
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"


def test_prompts_past_the_window_say_context_length_exceeded(server: Server) -> None:
    response = _chat(server, LONG_INPUTS["20k-character prompt"])
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert "2,048" in error["message"]


def test_memory_stays_put_after_twenty_long_requests(server: Server) -> None:
    assert _chat(server, _user("What is 2 + 2?")).status_code == 200
    before = _rss(server)
    for i in range(20):
        body = LONG_INPUTS[list(LONG_INPUTS)[i % len(LONG_INPUTS)]]
        assert _chat(server, body).status_code == 400
    after = _rss(server)
    assert after <= 1.2 * before, f"RSS {before / 1e9:.2f} GB -> {after / 1e9:.2f} GB"
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_an_unauthenticated_body_is_never_read(server: Server) -> None:
    before = _rss(server)

    def body() -> Iterator[bytes]:
        for _ in range(300):  # 300 MB, if it were read
            yield b" " * 1_000_000

    started = time.perf_counter()
    response = httpx.post(server.url + "/v1/chat/completions", content=body(), timeout=30.0)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert time.perf_counter() - started < 5.0
    assert _rss(server) < before + 50_000_000


def test_a_body_over_the_limit_gets_413_declared_or_streamed(server: Server) -> None:
    declared = httpx.post(
        server.url + "/v1/chat/completions",
        content=b"{" + b" " * (BODY_LIMIT + 10) + b"}",
        headers={**AUTH, "content-type": "application/json"},
        timeout=30.0,
    )
    assert declared.status_code == 413
    assert "8,000,000" in declared.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:
        for _ in range(BODY_LIMIT // 1_000_000 + 2):
            yield b" " * 1_000_000

    streamed = httpx.post(server.url + "/v1/chat/completions", content=chunked(), headers=AUTH, timeout=30.0)
    assert streamed.status_code == 413


def test_health_says_only_ok_without_the_key(server: Server) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    wrong = httpx.get(server.url + "/health", headers={"authorization": "Bearer nope"}).json()
    assert wrong == {"status": "ok"}
    full = httpx.get(server.url + "/health", headers=AUTH).json()
    assert full["models"] == [MODEL]
    assert full["pid"] == server.proc.pid


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("max_tokens", "8"),
        ("max_tokens", True),
        ("max_tokens", 8.0),
        ("temperature", "0.5"),
        ("seed", "3"),
        ("stream", 1),
    ],
)
def test_fields_are_never_coerced(server: Server, field: str, value: object) -> None:
    response = _chat(server, {**_user("What is 1 + 1?"), field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_engine_rules_hold_at_the_server_too(server: Server) -> None:
    empty_stop = _chat(server, {**_user("What is 1 + 1?"), "stop": [""]})
    assert empty_stop.status_code == 400
    assert empty_stop.json()["error"]["message"] == "stop sequences must be non-empty strings"
    none = _chat(server, {"model": MODEL, "messages": [{"role": "user", "content": None}]})
    assert none.status_code == 400
    assert none.json()["error"]["message"] == "messages[0] has no content"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=200),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=20), inner, max_size=8),
    max_leaves=60,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from([MODEL, "gpt-4o", ""]) | JSON,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]) | JSON},
                optional={"content": st.text(max_size=300) | JSON},
            ),
            max_size=4,
        )
        | JSON,
        "max_tokens": st.integers(-5, 10) | JSON,
        "temperature": st.floats(-1, 3, allow_nan=False) | JSON,
        "stop": st.lists(st.text(max_size=5), max_size=5) | JSON,
        "stream": st.booleans() | JSON,
        "n": st.integers(-1, 3) | JSON,
        "seed": st.integers() | JSON,
        "uniscale": st.fixed_dictionaries({}, optional={"config": st.text(max_size=20)}) | JSON,
        "padding": st.text(max_size=50) | st.just("z" * 999_000),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=FIELDS | JSON)
def test_any_json_body_gets_a_2xx_or_4xx_never_a_5xx(server: Server, body: object) -> None:
    payload = json.dumps(body).encode()
    assume_size = len(payload) <= 1_000_000
    if not assume_size:
        return
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=payload,
        headers={**AUTH, "content-type": "application/json"},
        timeout=120.0,
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(server.url + "/health", timeout=10.0).status_code == 200


def test_an_empty_api_key_is_refused_at_start() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "uniscale_integrations.cli", "serve", "--models", "S", "--api-key", ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "API key is empty" in done.stderr
