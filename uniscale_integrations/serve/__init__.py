"""``uniscale serve``: an OpenAI-compatible HTTP server in front of UniScale engines (needs the ``serve`` extra).

One engine per mode, each served as a model name (``uniscale-cost-sensitive``,
``uniscale-quality-first``); see ``docs/serve.md``.
"""

from uniscale_integrations.serve.settings import MODEL_PREFIX, ServeSettings, model_name

__all__ = ["MODEL_PREFIX", "ServeSettings", "create_app", "model_name"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # imports fastapi: only when asked for
        from uniscale_integrations.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
