"""The default stack: the one builder of what ``UniScale.from_defaults`` runs on (the offline S/M ladder,
a small QP x CP grid, an executor decoding in one answer style).

:class:`Defaults` is the stack's settings as data; :meth:`Defaults.build` makes the parts (space,
executor, model specs, cost model, query encoder) without loading anything: models load on first
use. The engine is built on them by ``UniScale.from_defaults``; the server builds one stack and an
engine per mode on it, the benchmark's collection one per early-stopping setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from uniscale_integrations.errors import ConfigSpaceError
from uniscale_integrations.executor.paths import Aggregation
from uniscale_integrations.executor.search import Executor
from uniscale_integrations.executor.stopping import EarlyStopping
from uniscale_integrations.executor.styles import AnswerStyle, answer_style
from uniscale_integrations.features.embedders import DEFAULT_EMBEDDER, EmbedderName, query_embedder
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.space import ConfigSpace
from uniscale_integrations.reward.cost import CostModel
from uniscale_integrations.reward.weights import Mode, RewardWeights

if TYPE_CHECKING:
    from uniscale_integrations.backends.base import Generator
    from uniscale_integrations.executor.verifiers import Verifier
    from uniscale_integrations.models import ModelRegistry, ModelSpec


class Grid(Protocol):
    """Settings that name a ladder, a grid and a token budget (``ServeSettings``, the benchmark's ``CollectPlan``)."""

    @property
    def models(self) -> Sequence[str] | None: ...
    @property
    def qp(self) -> Sequence[int]: ...
    @property
    def cp(self) -> Sequence[int]: ...
    @property
    def bs(self) -> Sequence[int]: ...
    @property
    def max_new_tokens(self) -> int | None: ...


@dataclass(frozen=True)
class Defaults:
    """What the default stack is made of; nothing loads until a model is used."""

    models: Sequence[str] | None = None
    """Rungs of the model ladder (default: S and M)."""
    qp: Sequence[int] = (1, 2)
    """Question variants per configuration, one value per configuration of the grid."""
    cp: Sequence[int] = (1, 4)
    """Candidates per variant."""
    bs: Sequence[int] = (1,)
    """Beam widths."""
    registry: ModelRegistry | None = None
    """Where the rungs' specs come from (default: the offline ladder)."""
    device: str | None = None
    """Where models run (default: CUDA when available, else the CPU)."""
    style: str | AnswerStyle = "plain"
    """The answer style (:data:`~uniscale_integrations.executor.styles.STYLES`: ``"plain"``, ``"reasoned"``,
    ``"brief"``, ...): the instruction appended to the question, each rung's token budget, whether a path
    stops at its answer line, and whether candidates pool by meaning."""
    max_new_tokens: int | None = None
    """New tokens per path on every rung (default: the style's budgets)."""
    temperature: float = 0.7
    """Temperature of sampled paths; ``temperature`` to ``stop_on_loop`` say how paths decode (table v2
    was decoded with the reasoned style, temperature 0.6, top-p 0.9, greedy first and the loop stop)."""
    top_p: float = 0.95
    greedy_first: bool | Mapping[str, bool] = False
    stop_at_answer: bool | None = None
    """Whether a path stops at its answer line (default: the style's)."""
    stop_on_loop: bool = False
    system_prompt: str | None = None
    """Put first in chats that bring no system message."""
    instruction: str | None = None
    """Appended to the question (default: the style's)."""
    verifier: Verifier | Literal["cross-model"] | None = None
    """Scores steps and answers (default: each path's own token confidence; ``"cross-model"``: each rung's
    paths by the next larger rung's log-likelihood, see
    :func:`~uniscale_integrations.executor.verifiers.cross_model_verifiers`)."""
    early_stopping: EarlyStopping | None = None
    aggregation: Aggregation = "weighted_vote"
    verifier_timeout: float | None = None
    """Seconds a verifier call may take (see :class:`~uniscale_integrations.executor.search.Executor`)."""
    query_embedder: EmbedderName = DEFAULT_EMBEDDER
    """The query encoder's embedding model (:data:`~uniscale_integrations.features.embedders.EmbedderName`):
    ``"static"`` (MiniLM distilled to a token table) or ``"minilm"`` (the transformer itself)."""
    remote: Mapping[str, str] | None = None
    """Rungs generated on an OpenAI-compatible server that serves them under the rung's name, by base URL
    (e.g. ``{"M": "http://gpu-box:8080/v1"}``): :class:`~uniscale_integrations.backends.openai.OpenAIGenerator`
    with ChatML prompts (no tools: a remote rung takes no tool calls), priced by the rung's declared size and
    the tokens the server reports."""

    @classmethod
    def of(cls, settings: Grid, **changes: Any) -> Defaults:
        """The stack of ``settings``' ladder, grid and token budget, with ``changes``."""
        grid = cls(settings.models, settings.qp, settings.cp, settings.bs, max_new_tokens=settings.max_new_tokens)
        return dataclasses.replace(grid, **changes)

    @classmethod
    def split(cls, options: Mapping[str, Any]) -> tuple[Defaults, dict[str, Any]]:
        """``options`` as the stack's settings and the rest (the engine's own keywords)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names}), {
            k: v for k, v in options.items() if k not in names
        }

    def build(self) -> Stack:
        """The stack's parts; a rung, a remote server or a verifier model is only touched on first use."""
        from uniscale_integrations.backends.hf.generator import HFGenerator
        from uniscale_integrations.backends.openai import OpenAIGenerator
        from uniscale_integrations.executor.pooling import MeaningPool
        from uniscale_integrations.executor.verifiers import cross_model_verifiers
        from uniscale_integrations.features.minilm import MiniLMEmbedder
        from uniscale_integrations.models import DEFAULT_LADDER, ModelRegistry, load_model, resolve_device

        registry = self.registry if self.registry is not None else ModelRegistry.default()
        models = tuple(self.models) if self.models is not None else DEFAULT_LADDER
        device = self.device or resolve_device()
        remote = dict(self.remote or {})
        unknown = sorted(set(remote) - set(models))
        if unknown:
            raise ConfigSpaceError(f"remote rung(s) {', '.join(unknown)} not among the models {', '.join(models)}")
        # a remote rung's prompts are ChatML, which shows no tools: it makes no tool calls
        specs = {
            name: dataclasses.replace(registry[name], tool_calls=None) if name in remote else registry[name]
            for name in models
        }
        cost_model = CostModel.for_device(device)
        answers = answer_style(self.style)
        budgets = answers.budgets(models) if self.max_new_tokens is None else dict.fromkeys(models, self.max_new_tokens)

        def factory(name: str) -> Callable[[], Generator]:
            if name in remote:
                return lambda: OpenAIGenerator(remote[name], name, specs[name]).check()
            return lambda: HFGenerator(load_model(specs[name], device=device))

        executor = Executor(
            {name: factory(name) for name in models},
            cost_model,
            max_new_tokens=max(budgets.values(), default=answers.max_new_tokens),
            token_budgets=budgets,
            temperature=self.temperature,
            top_p=self.top_p,
            greedy_first=self.greedy_first,
            stop_at_answer=answers.stop_at_answer if self.stop_at_answer is None else self.stop_at_answer,
            stop_on_loop=self.stop_on_loop,
            system_prompt=self.system_prompt,
            instruction=self.instruction if self.instruction is not None else answers.instruction,
            verifier=cross_model_verifiers(specs, device=device, cost_model=cost_model)
            if self.verifier == "cross-model"
            else self.verifier,
            early_stopping=self.early_stopping,
            aggregation=self.aggregation,
            verifier_timeout=self.verifier_timeout,
            meaning=MeaningPool(MiniLMEmbedder(device), cost_model=cost_model) if answers.pool_by_meaning else None,
        )
        encoder = QueryEncoder(query_embedder(self.query_embedder, device))
        return Stack(ConfigSpace.grid(models, self.qp, self.cp, self.bs), executor, specs, cost_model, encoder)


@dataclass(frozen=True)
class Stack:
    """What an engine runs on; several engines (one per reward mode) may share one stack."""

    space: ConfigSpace
    executor: Executor
    specs: Mapping[str, ModelSpec]
    """Each rung's spec: its name, its context window, and its shape for the cost model."""
    cost_model: CostModel
    encoder: QueryEncoder = dataclasses.field(default_factory=QueryEncoder)
    """The query encoder (default: :class:`QueryEncoder`'s own, the static MiniLM table)."""

    def engine_kwargs(self, mode: Mode) -> dict[str, Any]:
        """The keywords of an engine on this stack, under ``mode``'s reward weights."""
        return {
            "space": self.space,
            "executor": self.executor,
            "shapes": self.specs,
            "weights": RewardWeights.preset(mode),
            "cost_model": self.cost_model,
            "specs": self.specs,
            "encoder": self.encoder,
        }
