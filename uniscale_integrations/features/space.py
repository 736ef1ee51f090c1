"""Configurations ``(model, QP, CP, BS)`` and the finite space the policy chooses from."""

from __future__ import annotations

import itertools
import math
import re
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from uniscale_integrations.errors import ConfigSpaceError
from uniscale_integrations.features.joint import FloatArray

_CONFIG_PATTERN = re.compile(r"^(?P<model>[^/\s]+)/qp(?P<qp>\d+)/cp(?P<cp>\d+)/bs(?P<bs>\d+)$")
_MODEL_NAME = re.compile(r"[^/\s]+")
MAX_SIZE = 4096
"""The largest QP, CP or BS a configuration may ask for."""


@dataclass(frozen=True, order=True)
class Config:
    """One joint configuration: a model and how much test-time scaling to spend on it.

    ``qp`` question variants are solved side by side, each with ``cp`` independent
    candidates, each searched with step-level beams of width ``bs``.

    >>> Config("M", qp=1, cp=4)
    Config('M/qp1/cp4/bs1')
    >>> Config.parse("S/qp2/cp1/bs1").paths
    2
    """

    model: str
    qp: int = 1
    cp: int = 1
    bs: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.model, str) and _MODEL_NAME.fullmatch(self.model) and self.model.isprintable()):
            raise ConfigSpaceError(
                f"model must be a non-empty printable name without '/' or spaces, got {reprlib.repr(self.model)}"
            )
        for field in ("qp", "cp", "bs"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise ConfigSpaceError(f"{field} must be an integer from 1 to {MAX_SIZE}, got {reprlib.repr(value)}")

    @property
    def paths(self) -> int:
        """Number of solution paths searched side by side: ``qp * cp * bs``."""
        return self.qp * self.cp * self.bs

    @classmethod
    def parse(cls, text: str) -> Config:
        """Read the ``model/qpN/cpN/bsN`` form that ``str(config)`` writes."""
        match = _CONFIG_PATTERN.match(text.strip())
        if match is None:
            raise ConfigSpaceError(f"cannot parse config {reprlib.repr(text)}; expected e.g. 'M/qp1/cp4/bs1'")
        return cls(match["model"], int(match["qp"]), int(match["cp"]), int(match["bs"]))

    def __str__(self) -> str:
        return f"{self.model}/qp{self.qp}/cp{self.cp}/bs{self.bs}"

    def __repr__(self) -> str:
        return f"Config({str(self)!r})"


IDENTITY_LIMIT = 32
"""The largest space whose features include each configuration's identity by default."""


class ConfigSpace(Sequence[Config]):
    """An ordered, duplicate-free set of configurations and their feature vectors.

    Each configuration's feature vector ``z_a`` (see :meth:`features`) is::

        [1, one-hot(model), log2 QP, log2 CP, log2 BS, one-hot(model) * log2 paths, cost, one-hot(config)]

    where ``cost`` is the configuration's nominal cost normalised to [0, 1] (given by
    the engine's cost model), so a linear reward model can price each configuration
    exactly and learn per model how much scaling pays. The last block, the configuration's
    identity, is the hybrid model of LinUCB's paper (Li et al., WWW 2010: features shared
    by all arms, plus each arm's own): the shared features carry evidence across
    configurations early, and the identity lets the model fit any reward per configuration
    and query context, which the shared ones alone cannot (given the tier and every outcome of table v2's tuning
    split, the shared features alone pick a worse configuration than the tier's best on 9 of
    10 tiers, in either mode). It is on by default for spaces of at
    most :data:`IDENTITY_LIMIT` configurations (``identity=None``), whose joint dimension
    stays small; ``identity`` forces it on or off.
    """

    def __init__(
        self,
        configs: Iterable[Config],
        nominal_cost: Mapping[Config, float] | None = None,
        *,
        identity: bool | None = None,
    ):
        if not isinstance(configs, Iterable) or isinstance(configs, str | bytes):
            raise ConfigSpaceError(f"configs must be an iterable of Config, got {type(configs).__name__}")
        configs = tuple(configs)
        if not configs:
            raise ConfigSpaceError("a config space needs at least one configuration")
        for config in configs:
            if not isinstance(config, Config):
                raise ConfigSpaceError(f"expected Config, got {type(config).__name__}: {config!r}")
        duplicates = sorted({str(c) for c in configs if configs.count(c) > 1})
        if duplicates:
            raise ConfigSpaceError(f"duplicate configurations: {', '.join(duplicates)}")
        self._configs = configs
        self._index = {config: i for i, config in enumerate(configs)}
        self.models: tuple[str, ...] = tuple(dict.fromkeys(c.model for c in configs))
        self._nominal_cost = self._validated_costs(nominal_cost)
        self.identity = len(configs) <= IDENTITY_LIMIT if identity is None else bool(identity)
        """Whether the features end with the configuration's one-hot identity."""
        self._features = self._build_features()

    @classmethod
    def grid(
        cls,
        models: Sequence[str],
        qp: Sequence[int] = (1,),
        cp: Sequence[int] = (1,),
        bs: Sequence[int] = (1,),
        *,
        max_paths: int | None = None,
        nominal_cost: Mapping[Config, float] | None = None,
        identity: bool | None = None,
    ) -> ConfigSpace:
        """Every combination of the given values, optionally capped at ``qp*cp*bs <= max_paths``."""
        if max_paths is not None and max_paths < 1:
            raise ConfigSpaceError(f"max_paths must be >= 1, got {max_paths}")
        for name, values in (("models", models), ("qp", qp), ("cp", cp), ("bs", bs)):
            if not isinstance(values, Iterable) or isinstance(values, str | bytes):
                raise ConfigSpaceError(f"{name} must be a sequence of values, got {reprlib.repr(values)}")
        configs = [
            Config(m, q, c, b)
            for m, q, c, b in itertools.product(models, qp, cp, bs)
            if max_paths is None or q * c * b <= max_paths
        ]
        return cls(configs, nominal_cost, identity=identity)

    def with_costs(self, nominal_cost: Mapping[Config, float]) -> ConfigSpace:
        """The same configurations with nominal costs (normalised to [0, 1]) attached."""
        return ConfigSpace(self._configs, nominal_cost, identity=self.identity)

    def _validated_costs(self, nominal_cost: Mapping[Config, float] | None) -> dict[Config, float]:
        if nominal_cost is None:
            return {}
        missing = [str(c) for c in self._configs if c not in nominal_cost]
        if missing:
            raise ConfigSpaceError(f"nominal cost missing for: {', '.join(missing)}")
        costs = {c: float(nominal_cost[c]) for c in self._configs}
        bad = [f"{c}={v}" for c, v in costs.items() if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
        if bad:
            raise ConfigSpaceError(f"nominal costs must lie in [0, 1]: {', '.join(bad)}")
        return costs

    def _build_features(self) -> FloatArray:
        rows = []
        for config in self._configs:
            one_hot = [1.0 if config.model == m else 0.0 for m in self.models]
            log_paths = math.log2(config.paths)
            rows.append(
                [1.0, *one_hot, math.log2(config.qp), math.log2(config.cp), math.log2(config.bs)]
                + [h * log_paths for h in one_hot]
                + [self._nominal_cost.get(config, 0.0)]
                + ([float(config == other) for other in self._configs] if self.identity else [])
            )
        return np.asarray(rows, dtype=np.float64)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return (
            "bias",
            *(f"model={m}" for m in self.models),
            "log2_qp",
            "log2_cp",
            "log2_bs",
            *(f"model={m}*log2_paths" for m in self.models),
            "nominal_cost",
            *((f"config={c}" for c in self._configs) if self.identity else ()),
        )

    def features(self) -> FloatArray:
        """The ``(len(self), dz)`` matrix of configuration features (read-only)."""
        view = self._features.view()
        view.flags.writeable = False
        return view

    def index(self, config: Config, start: int = 0, stop: int | None = None) -> int:
        try:
            return self._index[config]
        except KeyError:
            raise ConfigSpaceError(f"{config} is not in this config space") from None

    def __contains__(self, config: object) -> bool:
        return config in self._index

    def __getitem__(self, i: int) -> Config:  # type: ignore[override]
        return self._configs[i]

    def __iter__(self) -> Iterator[Config]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)

    def __repr__(self) -> str:
        return f"ConfigSpace({len(self)} configs over models {list(self.models)})"
