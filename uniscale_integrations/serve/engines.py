"""One UniScale engine per served model name (= mode), sharing the models, the executor and the encoder."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from uniscale_integrations.defaults import Defaults
from uniscale_integrations.engine import UniScale
from uniscale_integrations.errors import UnknownDecisionError
from uniscale_integrations.reward.weights import Mode
from uniscale_integrations.serve.settings import ServeSettings, model_name

logger = logging.getLogger(__name__)


class Engines(Mapping[str, UniScale]):
    """The engines by served model name (``uniscale-cost-sensitive``, ...)."""

    def __init__(self, engines: Mapping[str, UniScale]):
        if not engines:
            raise ValueError("serve at least one engine")
        self._engines = dict(engines)

    @classmethod
    def build(cls, settings: ServeSettings) -> Engines:
        """Engines for ``settings`` on one stack; nothing loads until :meth:`warmup` or the first request."""
        stack = Defaults.of(
            settings,
            system_prompt=settings.system_prompt,
            instruction=settings.instruction,
            remote=dict(settings.remote),
            query_embedder=settings.query_embedder,
        ).build()
        engines: dict[str, UniScale] = {}
        try:
            for mode in settings.modes:
                engine = UniScale(
                    **stack.engine_kwargs(_mode(mode)),
                    seed=settings.seed,
                    store=settings.open_store(mode),
                    max_prompt_tokens=settings.max_prompt_tokens,
                )
                engines[model_name(mode)] = engine
                logger.info("serving %s: %d configs, store %s", model_name(mode), len(engine.space), engine.store)
        except BaseException:
            for engine in engines.values():
                engine.close()
            raise
        return cls(engines)

    def __getitem__(self, name: str) -> UniScale:
        return self._engines[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._engines)

    def __len__(self) -> int:
        return len(self._engines)

    def warmup(self) -> None:
        """Load every model and the query encoder now, so the first request does not wait for them."""
        seen: set[int] = set()
        for name, engine in self._engines.items():
            load = getattr(engine.executor, "generator", None)
            if id(engine.executor) not in seen and callable(load):
                seen.add(id(engine.executor))
                for model in engine.space.models:
                    logger.info("%s: loading model %s", name, model)
                    load(model)
            engine.features("warm up")

    def feedback(
        self, decision_id: str, *, correct: bool | float | None, score: float | None, model: str | None = None
    ) -> tuple[str, float]:
        """Apply a decision's feedback in the engine that made it; returns ``(model name, reward)``.

        Decision ids are random UUIDs and every engine has its own store, so the engine
        whose store holds the id is the one that made the decision.
        """
        names = [model] if model is not None else list(self._engines)
        for name in names:
            try:
                return name, self._engines[name].feedback(decision_id, correct=correct, score=score)
            except UnknownDecisionError:
                continue
        raise UnknownDecisionError(f"no served model issued decision {decision_id} (or it was forgotten)")

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()


def _mode(mode: str) -> Mode:
    return "quality-first" if mode == "quality-first" else "cost-sensitive"
