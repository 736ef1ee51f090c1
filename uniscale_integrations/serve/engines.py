"""One UniScale engine per served model name (= mode), sharing the models, the executor and the encoder."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from uniscale_integrations.engine import UniScale
from uniscale_integrations.errors import UnknownDecisionError
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.reward.cost import ModelShape
from uniscale_integrations.reward.weights import Mode, RewardWeights
from uniscale_integrations.serve.settings import ServeSettings, is_postgres, model_name
from uniscale_integrations.store.sqlite import PolicyStore, SQLiteStore

logger = logging.getLogger(__name__)


class Engines(Mapping[str, UniScale]):
    """The engines by served model name (``uniscale-cost-sensitive``, ...)."""

    def __init__(self, engines: Mapping[str, UniScale]):
        if not engines:
            raise ValueError("serve at least one engine")
        self._engines = dict(engines)

    @classmethod
    def build(cls, settings: ServeSettings) -> Engines:
        """Engines for ``settings``; nothing loads until :meth:`warmup` or the first request."""
        engines: dict[str, UniScale] = {}
        try:
            first: UniScale | None = None
            for mode in settings.modes:
                store = open_store(settings, mode)
                if first is None:
                    first = UniScale.from_defaults(
                        _mode(mode),
                        models=settings.models,
                        qp=settings.qp,
                        cp=settings.cp,
                        bs=settings.bs,
                        max_new_tokens=settings.max_new_tokens,
                        system_prompt=settings.system_prompt,
                        instruction=settings.instruction,
                        seed=settings.seed,
                        store=store,
                        remote=dict(settings.remote),
                        max_prompt_tokens=settings.max_prompt_tokens,
                    )
                    engine = first
                else:  # the same models, executor and encoder under another mode's reward and store
                    shapes = {n: ModelShape.of(s) for n, s in first.specs.items()}
                    engine = UniScale(
                        ConfigSpace.grid(list(first.specs), settings.qp, settings.cp, settings.bs),
                        first.executor,
                        shapes,
                        encoder=first.encoder,
                        weights=RewardWeights.preset(_mode(mode)),
                        cost_model=first.cost_model,
                        specs=first.specs,
                        seed=settings.seed,
                        store=store,
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


def open_store(settings: ServeSettings, mode: str) -> PolicyStore | None:
    """The store of one mode's engine: ``None`` (in memory), an SQLite store or a PostgreSQL one."""
    target = settings.store_for(mode)
    if target is None:
        return None
    if is_postgres(target):
        from uniscale_integrations.store.postgres import PostgresStore

        return PostgresStore(target, schema=settings.schema_for(mode))
    return SQLiteStore(target, synchronous="full" if settings.synchronous == "full" else "normal")


def _mode(mode: str) -> Mode:
    return "quality-first" if mode == "quality-first" else "cost-sensitive"
