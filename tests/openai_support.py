"""A scripted OpenAI-compatible completions server (answers like llama-cpp-python), for the backend tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Scripted(BaseHTTPRequestHandler):
    """Answers like llama-cpp-python: ``n`` ignored, stop sequences cut from the text but kept in the
    log-probability tokens; the first ``fail`` requests get ``status``."""

    fail = 0
    status = 503
    bodies: list[dict[str, Any]] = []  # noqa: RUF012 - reset per test
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Scripted.lock:
            Scripted.bodies.append(body)
            failing = Scripted.fail > 0
            Scripted.fail -= 1
        if failing:
            self._send(Scripted.status, {"error": {"message": "scripted failure"}})
            return
        if body.get("max_tokens", 1) > 100:
            self._send(400, {"error": {"message": "max_tokens too large"}})
            return
        # The "model" writes two steps, then ends: "Step one.\n\nAnswer: 42" (seed picks the words).
        continuing = body["prompt"].endswith("\n\n")
        words = ["Answer:", "42"] if continuing else ["Step", f"{body.get('seed', 0) % 97}."]
        stops = body.get("stop") or []
        if continuing:
            text, tokens, reason = " ".join(words), [words[0], " " + words[1]], "stop"  # the end of sequence
        else:
            text, tokens, reason = " ".join(words), [words[0], " " + words[1], "\n\n"], "stop"
            if "\n\n" not in stops:
                text += "\n\nAnswer: 42"
                tokens += ["Answer:", " 42"]
        self._send(
            200,
            {
                "object": "text_completion",
                "choices": [
                    {
                        "index": 0,
                        "text": text,
                        "finish_reason": reason,
                        "logprobs": {"tokens": tokens, "token_logprobs": [-0.1] * len(tokens)},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(tokens), "total_tokens": 10 + len(tokens)},
            },
        )


def serve_scripted() -> Iterator[str]:
    """Run a :class:`Scripted` server for one test; yields its base URL."""
    Scripted.fail, Scripted.status, Scripted.bodies = 0, 503, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
