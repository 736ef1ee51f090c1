"""``uniscale serve`` as a real subprocess on loopback, driven by the official OpenAI client and LangChain.

The server runs the real offline S model over a tiny space (S with one or two candidates, 16 new
tokens), both modes, with an SQLite store per mode.
"""

from __future__ import annotations

import concurrent.futures
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (dev extra)")
openai = pytest.importorskip("openai", reason="the serve tests need the openai client (dev extra)")
pytest.importorskip("fastapi", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")

from serve_support import Server, start_server, stop_server  # noqa: E402 - after the extras' checks

pytest.importorskip("uvicorn", reason="uniscale serve needs the serve extra (fastapi, uvicorn)")

COST = "uniscale-cost-sensitive"
QUALITY = "uniscale-quality-first"
SPACE = {"S/qp1/cp1/bs1", "S/qp1/cp2/bs1"}
QUESTION = "What is 2 + 3?"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(store_dir: Path) -> Iterator[Server]:
    started = start_server(
        store_dir,
        *("--models", "S", "--qp", "1", "--cp", "1,2", "--max-new-tokens", "16", "--max-tokens-limit", "64"),
        *("--store", str(store_dir / "policy.db"), "--synchronous", "normal"),
    )
    yield started
    stop_server(started)
    # A clean shutdown on SIGTERM (uvicorn re-raises the signal once it has shut down).
    assert started.proc.returncode in (0, -signal.SIGTERM), started.output()
    assert "Application shutdown complete" in started.output()


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120.0)


def _feedback(server: Server, **body: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/feedback", json=body, timeout=30.0)


def _logged(db: Path, decision_id: str) -> list[tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT decision_id, reward FROM feedback WHERE decision_id = ?", (decision_id,))
        return [(str(r[0]), float(r[1])) for r in rows]


def test_models_lists_one_model_per_mode(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [COST, QUALITY]
    assert client.models.retrieve(QUALITY).owned_by == "uniscale"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_carries_the_decision_and_feedback_applies_exactly_once(
    client: openai.OpenAI, server: Server, store_dir: Path
) -> None:
    response = client.chat.completions.create(model=COST, messages=[{"role": "user", "content": QUESTION}])
    assert response.object == "chat.completion"
    assert response.model == COST
    (choice,) = response.choices
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.usage.completion_tokens > 0

    extra = response.model_extra["uniscale"]  # the OpenAI client keeps the extra top-level field
    assert response.id == "chatcmpl-" + extra["decision_id"]
    assert extra["config"] in SPACE
    assert extra["model"] == "SmolLM2-135M-Instruct"
    assert extra["eflops"] > 0
    assert 0.0 <= extra["score"] <= 1.0
    assert 0.0 < extra["cost"] <= 1.0
    assert set(extra["estimate"]) == {"mean", "width", "ucb"}

    first = _feedback(server, id=response.id, correct=True)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["model"] == COST
    assert body["decision_id"] == extra["decision_id"]
    assert 0.0 < body["reward"] <= 1.0
    # The log is the truth: the reward is in this mode's own store file, once.
    assert _logged(store_dir / "policy.cost-sensitive.db", extra["decision_id"]) == [
        (extra["decision_id"], pytest.approx(body["reward"]))
    ]
    assert _logged(store_dir / "policy.quality-first.db", extra["decision_id"]) == []

    again = _feedback(server, id=response.id, correct=False)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "feedback_already_given"
    assert _logged(store_dir / "policy.cost-sensitive.db", extra["decision_id"])[0][1] == pytest.approx(body["reward"])


def test_feedback_errors_are_clear_and_change_nothing(client: openai.OpenAI, server: Server, store_dir: Path) -> None:
    response = client.chat.completions.create(model=QUALITY, messages=[{"role": "user", "content": "Name a colour."}])
    decision_id = response.model_extra["uniscale"]["decision_id"]

    unknown = _feedback(server, id="chatcmpl-" + "0" * 32, correct=True)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "decision_not_found"
    malformed = _feedback(server, id="chatcmpl-nope", correct=True)
    assert malformed.status_code == 422
    assert malformed.json()["error"]["param"] == "id"
    for bad in ({"correct": 1.5}, {"score": -0.1}, {"correct": "yes"}, {"id": 3}):
        refused = _feedback(server, **{"id": response.id, **bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["type"] == "invalid_request_error"
    nan = httpx.post(
        server.url + "/v1/feedback",
        content=f'{{"id": "{response.id}", "score": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert _logged(store_dir / "policy.quality-first.db", decision_id) == []

    ok = _feedback(server, id=decision_id, correct=0.5, score=0.9, model=QUALITY)  # the bare decision id works too
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"] == QUALITY
    assert len(_logged(store_dir / "policy.quality-first.db", decision_id)) == 1


def test_streaming_sends_openai_chunks_with_usage_last(client: openai.OpenAI, server: Server) -> None:
    stream = client.chat.completions.create(
        model=COST,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    extra = last.model_extra["uniscale"]
    assert last.id == "chatcmpl-" + extra["decision_id"]
    assert extra["config"] in SPACE
    assert all(c.usage is None for c in chunks[:-1])

    without_usage = list(
        client.chat.completions.create(model=COST, messages=[{"role": "user", "content": QUESTION}], stream=True)
    )
    assert without_usage[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in without_usage)

    assert _feedback(server, id=last.id, correct=True).status_code == 200


def test_request_options_reach_the_search(client: openai.OpenAI) -> None:
    def ask(**options: object) -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=COST,
            messages=[{"role": "user", "content": QUESTION}],
            **options,  # type: ignore[call-overload]
        )

    forced = {"extra_body": {"uniscale": {"config": "S/qp1/cp1/bs1"}}}
    greedy = ask(**forced)
    assert greedy.model_extra["uniscale"]["config"] == "S/qp1/cp1/bs1"
    assert greedy.model_extra["uniscale"]["estimate"] is None  # forced, not chosen
    assert "+" in (greedy.choices[0].message.content or "")

    stopped = ask(stop=["+"], **forced)
    assert "+" not in (stopped.choices[0].message.content or "")

    short = ask(max_tokens=2, **forced)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None
    assert short.usage.completion_tokens == 2
    assert ask(max_completion_tokens=3, **forced).usage.completion_tokens == 3  # type: ignore[union-attr]

    sampled = {"extra_body": {"uniscale": {"config": "S/qp1/cp2/bs1"}}}
    one = ask(seed=11, temperature=1.2, **sampled)
    two = ask(seed=11, temperature=1.2, **sampled)
    assert one.choices[0].message.content == two.choices[0].message.content  # the seed fixes the sampling
    assert one.model_extra["uniscale"]["paths"] == 2


@pytest.mark.parametrize(
    ("request_body", "status", "param"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"model": COST, "messages": []}, 400, "messages"),
        ({"model": COST, "messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, 400, "messages[0].role"),
        ({"model": COST, "messages": [{"role": "system", "content": "only a system message"}]}, 400, "messages"),
        ({"model": COST, "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
        ({"model": COST, "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 400, "temperature"),
        ({"model": COST, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}, 400, "max_tokens"),
        (
            {"model": COST, "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
            400,
            "stop",
        ),
        (
            {"model": COST, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
            400,
            "tools",
        ),
        (
            {"model": COST, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            400,
            "messages[0].content",
        ),
        (
            {"model": COST, "messages": [{"role": "user", "content": "hi"}], "uniscale": {"config": "L/qp9"}},
            400,
            "uniscale.config",
        ),
        ({"model": COST, "messages": [{"role": "user", "content": "   "}]}, 400, None),
    ],
)
def test_bad_requests_get_openai_style_errors(
    server: Server, request_body: dict[str, object], status: int, param: str | None
) -> None:
    response = httpx.post(server.url + "/v1/chat/completions", json=request_body, timeout=60.0)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param


def test_malformed_json_and_unknown_paths_get_error_json(server: Server, client: openai.OpenAI) -> None:
    broken = httpx.post(
        server.url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]["message"]
    missing = httpx.get(server.url + "/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=COST, messages=[{"role": "user", "content": "hi"}], n=3)
    assert caught.value.param == "n"


def test_concurrent_requests_each_get_their_own_decision(server: Server) -> None:
    def ask(i: int) -> dict[str, object]:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": COST, "messages": [{"role": "user", "content": f"What is {i} + {i}?"}], "max_tokens": 8},
            timeout=120.0,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(ask, range(4)))
    ids = [str(b["id"]) for b in bodies]
    assert len(set(ids)) == 4
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda i: _feedback(server, id=i, correct=True).status_code, ids * 2))
    assert sorted(statuses) == [200] * 4 + [409] * 4  # each exactly once, even when sent twice at once


def test_langchain_chat_openai_talks_to_the_server(server: Server) -> None:
    langchain_openai = pytest.importorskip("langchain_openai", reason="needs langchain-openai (dev extra)")
    llm = langchain_openai.ChatOpenAI(
        base_url=server.url + "/v1", api_key="x", model=COST, max_tokens=16, max_retries=0, stream_usage=True
    )
    message = llm.invoke(QUESTION)
    assert isinstance(message.content, str)
    assert message.content.strip()
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["model_name"] == COST
    response_id = message.response_metadata["id"]
    assert response_id.startswith("chatcmpl-")
    assert _feedback(server, id=response_id, correct=True).status_code == 200

    streamed = list(llm.stream([("system", "Answer briefly."), ("human", QUESTION)]))
    assert "".join(str(c.content) for c in streamed).strip()
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in streamed) > 0


def test_api_key_is_required_when_set(store_dir: Path) -> None:
    secured = start_server(store_dir, "--models", "S", "--no-warmup", "--api-key", "secret", "--modes", "quality-first")
    try:
        denied = httpx.get(secured.url + "/v1/models")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
        listed = openai.OpenAI(base_url=secured.url + "/v1", api_key="secret", max_retries=0).models.list()
        assert [m.id for m in listed] == [QUALITY]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=secured.url + "/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        stop_server(secured)


def test_several_workers_need_a_shared_store() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "uniscale_integrations.cli", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--store" in done.stderr


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        ("S", "expected RUNG=URL"),
        ("S=gpu-box:8080", "expected an http(s):// base URL"),
        ("Z=http://127.0.0.1:9/v1", "remote rung(s) Z not among the models S"),
    ],
)
def test_bad_remote_rungs_are_refused_clearly(remote: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "uniscale_integrations.cli", "serve", "--models", "S", "--remote", remote],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_two_workers_share_one_store(store_dir: Path) -> None:
    db = store_dir / "workers.db"
    workers = start_server(
        store_dir,
        *("--workers", "2", "--modes", "cost-sensitive", "--store", str(db), "--synchronous", "normal"),
        *("--models", "S", "--qp", "1", "--cp", "1,2", "--max-new-tokens", "8", "--no-warmup"),
    )
    try:
        ids = []
        for i in range(4):  # a new connection each time: either worker may answer
            response = httpx.post(
                workers.url + "/v1/chat/completions",
                json={"model": COST, "messages": [{"role": "user", "content": f"What is {i} * 2?"}]},
                timeout=180.0,
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        statuses = [_feedback(workers, id=i, correct=True).status_code for i in ids + ids]
        assert statuses == [200] * 4 + [409] * 4  # whichever worker takes it: the store decides, once
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 4
        pids = {httpx.get(workers.url + "/health").json()["pid"] for _ in range(8)}
        assert pids  # the workers answer (which one is the OS's choice)
    finally:
        stop_server(workers)
