"""A generator behind an OpenAI-compatible ``/v1/completions`` endpoint (llama.cpp, llama-cpp-python, vLLM).

:class:`OpenAIGenerator` does what the :class:`~uniscale_integrations.executor.search.Executor` asks of a
generator, over HTTP: it renders chats to prompts, samples ``n`` candidates per prompt, and runs
step-level search through :class:`RemoteSession`, which has the interface of
:class:`~uniscale_integrations.backends.hf.session.DecodeSession` (``rows``, ``advance``, ``select``,
``resume``, ``finish``, ``usage``).

- **Candidates** go out as one request with ``n`` when the server honours it; a server that returns
  fewer choices (llama-cpp-python ignores ``n``) gets one request per missing candidate, each with
  its own seed, sent concurrently (at most ``max_concurrency`` requests at once per generator).
- **Steps**: a request stops at the step delimiter (a ``stop`` sequence); the next step continues
  the partial solution as a new prompt (``prompt + text so far``). Servers cut the stop sequence
  from the text and say ``finish_reason: "stop"`` both for it and for the end of sequence; which
  one it was is read from vLLM's ``stop_reason`` or from the returned log-probability tokens (which
  include the stop sequence's tokens), else a non-empty step is taken as a step end and the end of
  sequence shows as one empty continuation. Re-sending text re-tokenises it, which may differ from
  the sampled tokens at the seam (the usual approximation of step search over an API).
- **Scores**: with ``logprobs`` (default) each path has its tokens' log-probabilities, so the
  default step score (the path's own confidence) works; without them it is 1 for every step and a
  verifier should score the paths.
- **Usage** comes from the server's ``usage``: prompt tokens once per path, every generated token,
  and, for the eFLOPs, each request's prompt and completion as positions processed (a server that
  caches prompt prefixes computes less than that), one forward pass per request and generated token.
- **Faults**: each request has a ``timeout``; connection errors, timeouts, 429 and 5xx are retried
  ``retries`` times with exponential backoff; then, or on any other HTTP error, a
  :class:`RemoteGeneratorError` names the server, the status and its message.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from uniscale_integrations.backends.base import Row, SamplingParams, Session
from uniscale_integrations.errors import ModelUnavailableError, UniScaleError
from uniscale_integrations.features.query import Message
from uniscale_integrations.reward.cost import Shaped, Usage

logger = logging.getLogger(__name__)

_RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}
_Stop = Literal["step", "stop", "eos", "length"]


class RemoteGeneratorError(UniScaleError):
    """An OpenAI-compatible server failed a request (after the retries, where retrying made sense)."""


def chatml(messages: Sequence[Message]) -> str:
    """The ChatML prompt of a chat (SmolLM2, Qwen and many others), ending where the assistant answers."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


@dataclass
class RemoteRow(Row):
    """One path of a :class:`RemoteSession`: the text the server returned, one placeholder token per
    generated token (servers return text, not ids), and the seed of its next request."""

    prompt: str = field(default="", repr=False, kw_only=True)
    seed: int = field(default=0, kw_only=True)
    generated: str = ""
    step_char: int = 0
    """Where the current step begins in :attr:`generated`."""
    started: bool = field(default=False, repr=False)

    def text(self, tokenizer: object = None) -> str:
        """The generated text (the server has already cut it at a stop sequence)."""
        return self.generated

    def step_text(self, tokenizer: object = None) -> str:
        return self.generated[self.step_char :]

    def duplicate(self, copy_index: int) -> RemoteRow:
        row = super().duplicate(copy_index)
        row.seed = (self.seed * 31 + 104_729 * copy_index + len(self.token_ids)) % 2**31
        return row

    def start_step(self) -> None:
        super().start_step()
        self.step_char = len(self.generated)


@dataclass
class _Request:
    rows: list[int]
    """Session rows this request's choices go to, in order."""
    prompt: str
    n: int
    max_tokens: int
    seed: int | None


class OpenAIGenerator:
    """A model served by an OpenAI-compatible completions endpoint.

    ``base_url`` ends in ``/v1`` (e.g. ``http://127.0.0.1:8080/v1``); ``model`` is the name the
    server knows. ``shape`` (parameters, layers, KV width) prices its work in eFLOPs. ``render``
    turns a chat into a prompt (default :func:`chatml`; pass the model's own chat template, e.g.
    a tokenizer's ``apply_chat_template``). ``name`` is the rung's name in the config space.
    ``extra_body`` is merged into every request, for a server's own sampling options: e.g.
    ``{"repeat_penalty": 1.0}`` for llama-cpp-python's server, whose default of 1.1 makes its
    samples differ from the same model's under the HF backend.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        shape: Shaped,
        *,
        name: str | None = None,
        render: Callable[[Sequence[Message]], str] = chatml,
        extra_body: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        logprobs: bool = True,
        max_concurrency: int = 4,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        if max_concurrency < 1 or retries < 0 or not timeout > 0 or backoff < 0:
            raise ValueError("max_concurrency >= 1, retries >= 0, timeout > 0 and backoff >= 0 are required")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._shape = shape
        self._name = name if name is not None else model
        self._render = render
        self.extra_body = dict(extra_body or {})
        self._api_key = api_key
        self.logprobs = logprobs
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix=f"openai-{self._name}")
        self.n_supported: bool | None = None
        """Whether the server returns ``n`` choices per request (None: not known yet)."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the Generator protocol
    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> Shaped:
        return self._shape

    @property
    def tokenizer(self) -> None:
        """None: the server tokenises; rows return text directly."""
        return None

    @property
    def tool_format(self) -> None:
        """None: prompts are rendered by ``render`` (ChatML by default), which shows the model no tools."""
        return None

    def render(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        if tools:
            raise ValueError(
                f"the remote rung {self._name!r} renders its prompts without tools: it makes no tool calls"
            )
        return self._render(messages)

    def session(self, prompts: Sequence[str], n: int | Sequence[int], params: SamplingParams) -> RemoteSession:
        return RemoteSession(self, prompts, n, params)

    def check(self) -> OpenAIGenerator:
        """Ask the server for its models; :class:`ModelUnavailableError` if it is unreachable or lacks ``model``."""
        try:
            listed = self._call("GET", "/models", None)
        except RemoteGeneratorError as exc:
            raise ModelUnavailableError(self._name, f"model {self._name!r} at {self.base_url}: {exc}") from exc
        names = {str(m.get("id")) for m in listed.get("data", []) if isinstance(m, dict)}
        if names and self.model not in names:
            raise ModelUnavailableError(
                self._name, f"{self.base_url} serves {', '.join(sorted(names))}, not {self.model!r}"
            )
        return self

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ HTTP
    def complete(
        self, requests: Sequence[_Request], params: SamplingParams, stop: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Send the requests concurrently; their responses in order."""
        bodies = [self._body(r, params, stop) for r in requests]
        futures = [self._pool.submit(self._call, "POST", "/completions", body) for body in bodies]
        return [f.result() for f in futures]

    def _body(self, request: _Request, params: SamplingParams, stop: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "n": request.n,
        }
        if stop:
            body["stop"] = list(stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if self.logprobs:
            body["logprobs"] = 1
        return body

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    parsed = json.loads(response.read())
                if not isinstance(parsed, dict):
                    raise RemoteGeneratorError(f"{url} answered {type(parsed).__name__}, not a JSON object")
                return parsed
            except urllib.error.HTTPError as exc:
                detail = _error_message(exc)
                if exc.code not in _RETRIED_STATUS or attempt == self.retries:
                    raise RemoteGeneratorError(f"{method} {url} failed with HTTP {exc.code}: {detail}") from None
                problem: str = f"HTTP {exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
                if attempt == self.retries:
                    raise RemoteGeneratorError(
                        f"{method} {url} failed after {self.retries + 1} attempts: {exc}"
                    ) from None
                problem = repr(exc)
            delay = self.backoff * 2**attempt * (1 + random.random() / 4)
            logger.warning("%s %s: %s; retrying in %.2f s", method, url, problem, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class RemoteSession(Session):
    """Step-wise decoding over an OpenAI-compatible server (the :class:`Session` of :class:`OpenAIGenerator`)."""

    rows: list[RemoteRow]

    def __init__(
        self, generator: OpenAIGenerator, prompts: Sequence[str], n: int | Sequence[int], params: SamplingParams
    ):
        super().__init__(prompts, n, params)
        self.generator = generator
        base = params.seed if params.seed is not None else random.SystemRandom().getrandbits(31)
        self.rows = []
        for i, count in enumerate(self.counts):
            for _ in range(count):
                self.rows.append(RemoteRow(i, prompt=prompts[i], seed=(base + 7919 * len(self.rows)) % 2**31))
        self._stops = [s for s in params.stop if s] + ([params.step_delimiter] if params.step_delimiter else [])

    @property
    def backend(self) -> str:
        return "openai"

    def _advance(self, max_tokens: int | None) -> None:
        """Run every running row to its next step end (or finish), or for ``max_tokens`` more tokens."""
        while True:
            running = [i for i, r in enumerate(self.rows) if r.status == "running"]
            if not running or max_tokens == 0:
                return
            requests = self._requests(running, max_tokens)
            responses = self.generator.complete(requests, self.params, self._stops)
            for request, response in zip(requests, responses, strict=True):
                self._apply(request, response)
            if max_tokens is not None:
                return

    # -- internals ---------------------------------------------------------------------
    def _requests(self, running: list[int], max_tokens: int | None) -> list[_Request]:
        """Fresh rows of one prompt share a request with ``n`` (while the server honours it); others go alone."""
        requests: list[_Request] = []
        fresh: dict[int, list[int]] = {}
        for i in running:
            row = self.rows[i]
            if not row.started and self.generator.n_supported is not False:
                fresh.setdefault(row.prompt_index, []).append(i)
            else:
                requests.append(self._request([i], max_tokens))
        requests += [self._request(group, max_tokens) for group in fresh.values()]
        return requests

    def _request(self, rows: list[int], max_tokens: int | None) -> _Request:
        row = self.rows[rows[0]]
        left = self.params.max_new_tokens - len(row.token_ids)
        return _Request(
            rows=rows,
            prompt=row.prompt + row.generated,
            n=len(rows),
            max_tokens=max(1, min(left, max_tokens) if max_tokens is not None else left),
            seed=row.seed,
        )

    def _apply(self, request: _Request, response: dict[str, Any]) -> None:
        choices = sorted(response.get("choices") or [], key=lambda c: int(c.get("index", 0)))
        if not choices:
            raise RemoteGeneratorError(f"{self.generator.base_url} returned no choices")
        if request.n > 1:
            self.generator.n_supported = len(choices) >= request.n
        served = request.rows[: len(choices)]
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total = int(usage.get("completion_tokens") or 0)
        counted = [
            self._take(self.rows[i], choice, total, len(served)) for i, choice in zip(served, choices, strict=False)
        ]
        for i in served:
            if not self.rows[i].started:
                self.rows[i].started = True
                self.usage += Usage(prompt_tokens=prompt_tokens)
        generated = sum(counted)
        self.usage += Usage(
            completion_tokens=generated,
            tokens_processed=prompt_tokens + generated,
            forward_passes=1 + max(counted, default=0),
            kv_reads=sum(c * prompt_tokens + c * (c - 1) // 2 for c in counted),
        )
        # Rows the server did not answer (it ignored ``n``) stay fresh and go out alone next time.

    def _take(self, row: RemoteRow, choice: dict[str, Any], total_tokens: int, choices: int) -> int:
        """Append one choice to its row and update its status; returns the tokens it generated."""
        text = str(choice.get("text") or "")
        logprobs = choice.get("logprobs") or {}
        tokens = [str(t) for t in logprobs.get("tokens") or []]
        values = [float(v) for v in logprobs.get("token_logprobs") or [] if v is not None]
        count = len(tokens) if tokens else (total_tokens // max(1, choices) if total_tokens else len(text.split()))
        row.generated += text
        row.token_ids += [0] * count
        row.logprob_sum += sum(values)
        kind = _why_stopped(choice, text, tokens, self._stops, self.params.step_delimiter)
        if kind == "eos":
            row.status, row.finish_reason = "finished", "eos"
        elif kind == "stop":
            row.status, row.finish_reason = "finished", "stop"
        elif len(row.token_ids) >= self.params.max_new_tokens:
            row.status, row.finish_reason = "finished", "length"
        elif kind == "step" and self.params.step_delimiter is not None:
            had_content = bool(row.generated[row.step_char :].strip())
            row.generated += self.params.step_delimiter
            if had_content:  # a step needs content before its delimiter; leading blank lines are not a step
                row.status = "step_done"
        return count


def _why_stopped(
    choice: dict[str, Any], text: str, tokens: list[str], stops: list[str], delimiter: str | None
) -> _Stop:
    """Whether a choice ended at the step delimiter, another stop sequence, the end of sequence, or its length."""
    if choice.get("finish_reason") == "length":
        return "length"
    reason = choice.get("stop_reason", choice.get("matched_stop"))
    if isinstance(reason, str):  # vLLM / SGLang say which stop sequence matched
        return "step" if reason == delimiter else "stop"
    if "stop_reason" in choice:  # vLLM: None or a token id means the end of sequence
        return "eos"
    if tokens:  # llama-cpp-python returns the stop sequence's tokens among the log-probabilities
        joined = "".join(tokens)
        tail = joined[len(text) :] if joined.startswith(text) else joined[-max(map(len, stops), default=0) * 2 :]
        found = [(tail.find(s), s) for s in stops if s in tail]
        if not found:
            return "eos"
        return "step" if min(found)[1] == delimiter else "stop"
    if not text.strip():
        return "eos"
    return "step" if delimiter is not None else "stop"  # ambiguous without log-probabilities


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        message = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:500]
    except Exception:
        return str(error.reason)
