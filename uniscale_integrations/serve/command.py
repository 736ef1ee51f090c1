"""``uniscale serve``: its arguments, and starting uvicorn with one or several worker processes."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from uniscale_integrations.features.embedders import DEFAULT_EMBEDDER, EMBEDDER_HELP, EMBEDDER_NAMES
from uniscale_integrations.serve.front_door import DEFAULT_MAX_BODY_BYTES
from uniscale_integrations.serve.settings import LOG_LEVEL_ENV, MODES, SETTINGS_ENV, ServeSettings
from uniscale_integrations.store import is_postgres_url

logger = logging.getLogger(__name__)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _remote(text: str) -> tuple[str, str]:
    rung, sep, url = text.partition("=")
    if not sep or not rung.strip() or not url.strip():
        raise argparse.ArgumentTypeError(f"expected RUNG=URL (e.g. M=http://gpu-box:8080/v1), got {text!r}")
    return rung.strip(), url.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own engines and models (needs --store)"
    )
    parser.add_argument(
        "--modes",
        type=_names,
        default=MODES,
        help=f"modes to serve, each as model 'uniscale-<mode>' (default: {','.join(MODES)})",
    )
    parser.add_argument("--models", type=_names, help="comma-separated ladder rungs (default: S,M)")
    parser.add_argument("--qp", type=_ints, default=(1, 2), help="question variants of the grid (default: 1,2)")
    parser.add_argument("--cp", type=_ints, default=(1, 4), help="candidates of the grid (default: 1,4)")
    parser.add_argument("--bs", type=_ints, default=(1,), help="beam sizes of the grid (default: 1)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="new tokens per path unless a request says")
    parser.add_argument("--max-tokens-limit", type=int, default=1024, help="the largest max_tokens a request may ask")
    parser.add_argument("--instruction", help="appended to every question (e.g. an answer format)")
    parser.add_argument("--system-prompt", help="system message for chats that bring none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--store",
        help="keep what is learned: an SQLite file (one per mode: FILE, or FILE with the mode before its suffix) "
        "or a postgresql:// URL (one schema per mode); default: in memory",
    )
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full", help="SQLite durability")
    parser.add_argument(
        "--api-key", default=os.environ.get("UNISCALE_API_KEY"), help="require this bearer key (env UNISCALE_API_KEY)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body read; larger ones get 413 unread (default: {DEFAULT_MAX_BODY_BYTES:,})",
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=4096,
        help="most tokens a rendered prompt may have; longer ones get 400 context_length_exceeded (default: 4096)",
    )
    parser.add_argument("--max-concurrency", type=int, default=4, help="searches at once per worker (default: 4)")
    parser.add_argument(
        "--query-embedder",
        choices=EMBEDDER_NAMES,
        default=DEFAULT_EMBEDDER,
        help=EMBEDDER_HELP,
    )
    parser.add_argument("--no-warmup", action="store_true", help="load models on the first request, not at start")
    parser.add_argument(
        "--remote",
        type=_remote,
        action="append",
        default=[],
        metavar="RUNG=URL",
        help="generate a rung on an OpenAI-compatible server that serves it under the rung's name "
        "(e.g. M=http://gpu-box:8080/v1; llama.cpp: --model_alias M, vLLM: --served-model-name M); repeatable",
    )


def settings_of(args: argparse.Namespace) -> ServeSettings:
    """The settings the arguments give: each argument sets the setting of its name (see :func:`add_arguments`)."""
    named = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings) if hasattr(args, f.name)}
    derived = {
        "models": args.models or None,
        "max_tokens_limit": max(args.max_tokens_limit, args.max_new_tokens),
        "warmup": not args.no_warmup,
        "remote": tuple(args.remote),
    }
    return ServeSettings(**(named | derived))


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print('uniscale serve needs the serve extra: pip install "uniscale_integrations[serve]"', file=sys.stderr)
        return 2
    try:
        settings = settings_of(args)
    except ValueError as exc:
        print(f"uniscale serve: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("uniscale serve: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.store is None:
        print(
            "uniscale serve: several workers need a shared --store (an SQLite file or a postgresql:// URL): "
            "feedback may reach another worker than the one that answered",
            file=sys.stderr,
        )
        return 2
    os.environ[SETTINGS_ENV] = settings.to_json()
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    os.environ[LOG_LEVEL_ENV] = level
    shown = settings.store if settings.store is None or not is_postgres_url(settings.store) else "postgresql://..."
    logger.info(
        "serving %s on %s:%d, %d worker(s), store %s", settings.model_names, args.host, args.port, args.workers, shown
    )
    uvicorn.run(
        "uniscale_integrations.serve.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",  # uvicorn's own start-up and access lines
    )
    return 0
