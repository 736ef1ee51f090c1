"""What ``uniscale serve`` serves: the modes, the model ladder, the search grid, the store, the limits.

The settings travel to every worker process as JSON (``uvicorn`` starts workers by import
string), so they are plain data: :meth:`ServeSettings.to_json` / :meth:`ServeSettings.from_json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

from uniscale_integrations.features.embedders import DEFAULT_EMBEDDER, EMBEDDER_NAMES
from uniscale_integrations.reward.weights import Mode
from uniscale_integrations.serve.front_door import DEFAULT_MAX_BODY_BYTES
from uniscale_integrations.store import PolicyStore, is_postgres_url, open_store
from uniscale_integrations.store.sqlite import Synchronous

MODEL_PREFIX = "uniscale-"
"""A served model's name is this prefix and the mode it selects: ``uniscale-cost-sensitive``."""
MODES: tuple[Mode, ...] = get_args(Mode)
SETTINGS_ENV = "UNISCALE_SERVE_SETTINGS"
"""Environment variable through which a worker process receives its settings (JSON)."""
LOG_LEVEL_ENV = "UNISCALE_SERVE_LOG_LEVEL"
"""Environment variable with a worker process's logging level."""


def model_name(mode: str) -> str:
    """The served model name of a mode."""
    return f"{MODEL_PREFIX}{mode}"


@dataclass(frozen=True)
class ServeSettings:
    """One engine per mode; every engine shares the model ladder, the grid and the executor.

    ``store``: ``None`` (each engine in memory, lost with the process), an SQLite file path,
    or a PostgreSQL URL. A store holds one policy, and the reward weights differ between
    modes, so each mode keeps its own log: with one mode the file is ``store`` itself, with
    several it is ``store`` with the mode before the suffix (``uniscale.quality-first.db``);
    on PostgreSQL each mode has its own schema (``uniscale_quality_first``).
    """

    modes: tuple[str, ...] = MODES
    models: tuple[str, ...] | None = None
    qp: tuple[int, ...] = (1, 2)
    cp: tuple[int, ...] = (1, 4)
    bs: tuple[int, ...] = (1,)
    max_new_tokens: int = 128
    """Default new tokens per path; a request's ``max_tokens`` overrides it, up to ``max_tokens_limit``."""
    max_tokens_limit: int = 1024
    instruction: str | None = None
    system_prompt: str | None = None
    seed: int = 0
    store: str | None = None
    synchronous: str = "full"
    """SQLite stores: ``"full"`` (every commit survives a power cut) or ``"normal"``."""
    api_key: str | None = field(default=None, repr=False)
    """When set, every request must send ``Authorization: Bearer <api_key>`` (an empty key is refused)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body read; a larger one gets 413 before it is read."""
    max_prompt_tokens: int = 4096
    """The most tokens a request's rendered prompt may have (each model's context window bounds it too):
    a longer one gets 400 ``context_length_exceeded`` before anything is allocated."""
    max_concurrency: int = 4
    """Searches running at once per worker; further requests wait their turn."""
    warmup: bool = True
    """Load the models and the query encoder before accepting requests."""
    remote: tuple[tuple[str, str], ...] = ()
    """Rungs generated on an OpenAI-compatible server: ``(rung, base URL)`` pairs."""
    query_embedder: str = DEFAULT_EMBEDDER
    """The query encoder's model, ``"static"`` or ``"minilm"``
    (:data:`~uniscale_integrations.features.embedders.EmbedderName`)."""

    def __post_init__(self) -> None:
        if not self.modes:
            raise ValueError("serve at least one mode")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError(f"a mode is listed twice: {', '.join(self.modes)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty: give a real key, or leave --api-key (and UNISCALE_API_KEY) unset")
        for name in ("max_new_tokens", "max_tokens_limit", "max_concurrency", "max_body_bytes", "max_prompt_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_new_tokens > self.max_tokens_limit:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) exceeds max_tokens_limit ({self.max_tokens_limit})"
            )
        if self.query_embedder not in EMBEDDER_NAMES:
            raise ValueError(f"unknown query embedder {self.query_embedder!r}; choose from {', '.join(EMBEDDER_NAMES)}")
        if self.synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {self.synchronous!r}")
        rungs = [rung for rung, _ in self.remote]
        if len(set(rungs)) != len(rungs):
            raise ValueError(f"a remote rung is given twice: {', '.join(rungs)}")
        if rungs:
            from uniscale_integrations.models import DEFAULT_LADDER  # imports torch: only when needed

            ladder = self.models if self.models is not None else DEFAULT_LADDER
            unknown = [rung for rung in rungs if rung not in ladder]
            if unknown:
                raise ValueError(f"remote rung(s) {', '.join(unknown)} not among the models {', '.join(ladder)}")
        for rung, url in self.remote:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"remote rung {rung}: expected an http(s):// base URL, got {url!r}")

    @property
    def model_names(self) -> list[str]:
        return [model_name(m) for m in self.modes]

    def store_for(self, mode: str) -> str | None:
        """The store of one mode's engine (see the class docstring)."""
        if self.store is None or is_postgres_url(self.store) or len(self.modes) == 1:
            return self.store
        path = Path(self.store)
        return str(path.with_name(f"{path.stem}.{mode}{path.suffix}"))

    def schema_for(self, mode: str) -> str:
        """The PostgreSQL schema of one mode's engine."""
        return "uniscale_" + mode.replace("-", "_")

    def open_store(self, mode: str) -> PolicyStore:
        """The store of one mode's engine: in memory, an SQLite file or a PostgreSQL schema."""
        synchronous: Synchronous = "full" if self.synchronous == "full" else "normal"
        return open_store(self.store_for(mode), schema=self.schema_for(mode), synchronous=synchronous)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        for key in ("modes", "models", "qp", "cp", "bs"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        data["remote"] = tuple(tuple(pair) for pair in data.get("remote", ()))
        return cls(**data)

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the server with `uniscale serve`")
        return cls.from_json(text)
