"""The outcome table: what every configuration did on every question, as plain data on disk.

A table holds, for each question (id, tier, split, text, reference answer and the context
vector the engine's encoder gives it) and each configuration of a space, with path-aware
early stopping on and, where collected, off: the final answer, whether it was right, the
verifier score, eFLOPs, the cost normalised as the engine normalises it, tokens and seconds.

On disk it is one gzip-compressed JSON-lines file (no pickle)::

    {"kind": "meta", "format": "uniscale-outcomes", "version": 1, "configs": [...], ...}
    {"kind": "question", "id": ..., "tier": ..., "split": ..., "context": [...], ...}
    {"kind": "outcome", "question": ..., "config": ..., "early_stopping": true, ...}

:func:`load_table` validates everything it reads and raises :class:`OutcomeTableError`
naming the first problem; a table is complete (every question has an outcome for every
configuration and every early-stopping setting it declares) or it is rejected.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.features.joint import FloatArray, ProductFeatures
from uniscale_integrations.features.space import Config
from uniscale_integrations.reward.weights import RewardWeights

SPLITS = ("tune", "test")
"""A question tunes (hyperparameters, the prior) or tests; nothing is tuned on a test question."""

SHIPPED_TABLES = {"v2": "v2.jsonl.gz", "v1": "v1.jsonl.gz"}
"""The outcome tables shipped with the package: v2 (the default, derived from samples by
``benchmarks/build_table_v2.py``) and v1 (40 questions, made by ``uniscale bench --collect``)."""


def default_table_path(version: str = "v2") -> Path:
    """A shipped outcome table (default: v2)."""
    if version not in SHIPPED_TABLES:
        raise ValueError(f"no shipped table {version!r}; choose from {', '.join(SHIPPED_TABLES)}")
    return Path(str(resources.files("uniscale_integrations") / "tables" / SHIPPED_TABLES[version]))


FORMAT = "uniscale-outcomes"
FORMAT_VERSION = 1


class OutcomeTableError(UniScaleError, ValueError):
    """An outcome table that cannot be read or is not complete and consistent."""


@dataclass(frozen=True)
class QuestionRow:
    """One question of the table and its context vector (unit norm, as the engine scores it)."""

    id: str
    tier: str
    split: str
    text: str
    answer: str
    context: tuple[float, ...]


@dataclass(frozen=True)
class OutcomeRow:
    """What one configuration did on one question."""

    question: str
    config: str
    early_stopping: bool
    answer: str
    correct: bool
    score: float
    eflops: float
    cost: float
    """eFLOPs normalised against the dearest configuration's nominal cost, clipped to [0, 1]."""
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    pruned: int = 0
    """Paths stopped early by path-aware early stopping."""


@dataclass(frozen=True)
class TableMeta:
    """What the table was collected over and how."""

    configs: tuple[str, ...]
    action_features: tuple[tuple[float, ...], ...]
    """Each configuration's feature vector ``z_a`` (unit norm), in the engine's order."""
    early_stopping: tuple[bool, ...] = (True, False)
    """The early-stopping settings collected. The first is complete (every question and config);
    a later one may cover a subset of the questions, each of them for every config."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """How the outcomes were produced: models, style, token budget, seeds, machine."""


COLUMNS = ("correct", "score", "eflops", "cost", "seconds", "prompt_tokens", "completion_tokens", "pruned")
"""The numeric columns available as ``(n_questions, n_configs)`` arrays (``correct`` as 0/1)."""

_META_KEYS = {"kind", "format", "version", "configs", "action_features", "early_stopping", "settings"}
_QUESTION_KEYS = {f.name for f in fields(QuestionRow)} | {"kind"}
_OUTCOME_KEYS = {f.name for f in fields(OutcomeRow)} | {"kind"}


class OutcomeTable:
    """A complete outcome table, as arrays indexed ``[question, config]`` per early-stopping setting."""

    def __init__(self, meta: TableMeta, questions: Sequence[QuestionRow], outcomes: Iterable[OutcomeRow]):
        self.meta = meta
        self.questions: tuple[QuestionRow, ...] = tuple(questions)
        self.configs: tuple[Config, ...] = _parse_configs(meta.configs)
        self.action_features: FloatArray = _matrix(meta.action_features, "action_features")
        if self.action_features.shape[0] != len(self.configs):
            raise OutcomeTableError(
                f"action_features has {self.action_features.shape[0]} rows for {len(self.configs)} configs"
            )
        if not meta.early_stopping or len(set(meta.early_stopping)) != len(meta.early_stopping):
            raise OutcomeTableError(f"early_stopping must list distinct settings, got {meta.early_stopping!r}")
        if not self.questions:
            raise OutcomeTableError("the table has no questions")
        self._question_index = _index_questions(self.questions)
        self.contexts: FloatArray = _matrix([q.context for q in self.questions], "context")
        self._arrays = self._fill(outcomes)
        self.tiers: tuple[str, ...] = tuple(dict.fromkeys(q.tier for q in self.questions))
        self.tier_index = np.asarray([self.tiers.index(q.tier) for q in self.questions], dtype=np.int64)

    # ------------------------------------------------------------------ construction
    def _fill(self, outcomes: Iterable[OutcomeRow]) -> dict[bool, dict[str, np.ndarray]]:
        n_q, n_a = len(self.questions), len(self.configs)
        config_index = {str(c): i for i, c in enumerate(self.configs)}
        arrays = {es: {name: np.zeros((n_q, n_a)) for name in COLUMNS} for es in self.meta.early_stopping}
        rows: dict[tuple[bool, int, int], OutcomeRow] = {}
        for row in outcomes:
            _check_outcome(row)
            q = self._question_index.get(row.question)
            a = config_index.get(row.config)
            if q is None:
                raise OutcomeTableError(f"outcome for unknown question {row.question!r}")
            if a is None:
                raise OutcomeTableError(f"outcome for config {row.config!r}, which is not in the table's space")
            if row.early_stopping not in arrays:
                raise OutcomeTableError(f"outcome with early_stopping={row.early_stopping}, not declared in the meta")
            key = (row.early_stopping, q, a)
            if key in rows:
                raise OutcomeTableError(
                    f"two outcomes for ({row.question}, {row.config}, early_stopping={row.early_stopping})"
                )
            rows[key] = row
            for name in COLUMNS:
                arrays[row.early_stopping][name][q, a] = float(getattr(row, name))
        primary = self.meta.early_stopping[0]
        self.coverage: dict[bool, np.ndarray] = {}
        for es, values in arrays.items():
            counts = np.zeros(n_q, dtype=np.int64)
            for setting, q, _ in rows:
                if setting == es:
                    counts[q] += 1
            partial = np.flatnonzero((counts > 0) & (counts < n_a))
            absent = np.flatnonzero(counts == 0)
            if partial.size or (es == primary and absent.size):
                q = int(partial[0]) if partial.size else int(absent[0])
                a = next(a for a in range(n_a) if (es, q, a) not in rows)
                missing = (
                    int(n_q * n_a - counts.sum()) if es == primary else int(n_a * partial.size - counts[partial].sum())
                )
                raise OutcomeTableError(
                    f"incomplete table: {missing} outcomes missing for early_stopping={es}, e.g. "
                    f"({self.questions[q].id}, {self.configs[a]})"
                )
            self.coverage[es] = counts == n_a
            for name in COLUMNS:
                values[name][~self.coverage[es]] = np.nan
        self._rows = rows
        return arrays

    # ------------------------------------------------------------------ views
    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    def array(self, name: str, early_stopping: bool = True) -> FloatArray:
        """``(n_questions, n_configs)`` values of one column (``correct`` is 0/1), read-only.

        Questions not covered by ``early_stopping`` (see :meth:`covered`) hold NaN.
        """
        try:
            values = self._arrays[early_stopping][name]
        except KeyError:
            raise OutcomeTableError(
                f"no column {name!r} with early_stopping={early_stopping} in this table "
                f"(columns: {list(COLUMNS)}; settings: {list(self._arrays)})"
            ) from None
        view = values.view()
        view.flags.writeable = False
        return view

    def answer(self, question: int, config: int, early_stopping: bool = True) -> str:
        """The final answer a config gave to a question."""
        return self._rows[(early_stopping, question, config)].answer

    def rewards(self, weights: RewardWeights, early_stopping: bool = True) -> FloatArray:
        """The dense reward of every (question, config), ``w1 C + w2 S + w3 (1 - cost)``.

        The same formula as :meth:`RewardWeights.reward` (the engine's feedback with the
        correctness known), vectorised.
        """
        correct = self.array("correct", early_stopping)
        score = self.array("score", early_stopping)
        cost = self.array("cost", early_stopping)
        return weights.correct * correct + weights.score * score + weights.cost * (1.0 - cost)

    def features(self, question: int, arms: Sequence[int] | None = None) -> ProductFeatures:
        """The joint features of a question, over all configs or the given subset of them."""
        actions = self.action_features if arms is None else self.action_features[list(arms)]
        return ProductFeatures(self.contexts[question], actions)

    def subset(self, split: str) -> OutcomeTable:
        """The table restricted to the questions of one split (``"tune"`` or ``"test"``)."""
        if split not in SPLITS:
            raise OutcomeTableError(f"unknown split {split!r}; choose from {SPLITS}")
        keep = [i for i, q in enumerate(self.questions) if q.split == split]
        if not keep:
            raise OutcomeTableError(f"the table has no {split!r} questions")
        return self.select(keep)

    def select(self, keep: Sequence[int]) -> OutcomeTable:
        """The table restricted to the questions at the given indices."""
        return OutcomeTable(self.meta, [self.questions[i] for i in keep], self.rows(keep))

    def with_contexts(self, contexts: FloatArray) -> OutcomeTable:
        """The same outcomes, with every question's context vector replaced (one row per question):
        the table re-encoded by another query encoder."""
        matrix = np.asarray(contexts, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != self.n_questions or not np.isfinite(matrix).all():
            raise OutcomeTableError(
                f"need a finite ({self.n_questions}, dim) array of contexts, got shape {matrix.shape}"
            )
        questions = [replace(q, context=tuple(map(float, row))) for q, row in zip(self.questions, matrix, strict=True)]
        return OutcomeTable(self.meta, questions, self.rows())

    def rows(self, questions: Sequence[int] | None = None) -> list[OutcomeRow]:
        """The outcome rows of the given questions (default: all), in table order."""
        chosen = range(self.n_questions) if questions is None else questions
        return [
            self._rows[(es, q, a)]
            for q in chosen
            for es in self.meta.early_stopping
            for a in range(self.n_configs)
            if (es, q, a) in self._rows
        ]

    def covered(self, early_stopping: bool) -> OutcomeTable:
        """The table restricted to the questions that have outcomes with ``early_stopping``."""
        if early_stopping not in self.coverage:
            raise OutcomeTableError(f"the table has no outcomes with early_stopping={early_stopping}")
        keep = np.flatnonzero(self.coverage[early_stopping]).tolist()
        if not keep:
            raise OutcomeTableError(f"no question has outcomes with early_stopping={early_stopping}")
        return self.select(keep)

    def __repr__(self) -> str:
        return (
            f"OutcomeTable({self.n_questions} questions over {len(self.tiers)} tiers x {self.n_configs} configs, "
            f"early_stopping settings {list(self.meta.early_stopping)})"
        )


# ---------------------------------------------------------------------- file format
def save_table(
    path: Path, meta: TableMeta, questions: Sequence[QuestionRow], outcomes: Sequence[OutcomeRow]
) -> OutcomeTable:
    """Validate and write a table (gzip JSON lines); returns the validated table."""
    table = OutcomeTable(meta, questions, outcomes)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "kind": "meta",
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "configs": list(meta.configs),
        "action_features": [list(row) for row in meta.action_features],
        "early_stopping": list(meta.early_stopping),
        "settings": dict(meta.settings),
    }
    # No name and mtime=0 in the header: the same table always compresses to the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write((json.dumps(header, sort_keys=True) + "\n").encode())
        for question in questions:
            # Full precision (JSON floats round-trip exactly): rounding the unit-norm features would
            # break the engine's exact ties between configurations before any feedback.
            record = {"kind": "question", **asdict(question), "context": list(question.context)}
            gz.write((json.dumps(record, sort_keys=True) + "\n").encode())
        for outcome in outcomes:
            gz.write((json.dumps({"kind": "outcome", **asdict(outcome)}, sort_keys=True) + "\n").encode())
    return table


def load_table(path: Path | str) -> OutcomeTable:
    """Read and validate a table written by :func:`save_table` (``.gz`` or plain JSON lines)."""
    path = Path(path)
    if not path.is_file():
        raise OutcomeTableError(f"no outcome table at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    meta: TableMeta | None = None
    questions: list[QuestionRow] = []
    outcomes: list[OutcomeRow] = []
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise OutcomeTableError(f"{path}:{number}: not JSON ({error})") from None
                kind = record.get("kind") if isinstance(record, dict) else None
                where = f"{path}:{number}"
                if number == 1 and kind != "meta":
                    raise OutcomeTableError(f"{where}: the first record must be the meta record")
                if kind == "meta":
                    if meta is not None:
                        raise OutcomeTableError(f"{where}: a second meta record")
                    meta = _meta_from(record, where)
                elif kind == "question":
                    questions.append(_question_from(record, where))
                elif kind == "outcome":
                    outcomes.append(_outcome_from(record, where))
                else:
                    raise OutcomeTableError(f"{where}: unknown record kind {kind!r}")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise OutcomeTableError(f"cannot read {path}: {error}") from None
    if meta is None:
        raise OutcomeTableError(f"{path} is empty")
    return OutcomeTable(meta, questions, outcomes)


def _meta_from(record: Mapping[str, Any], where: str) -> TableMeta:
    _check_keys(record, _META_KEYS, where)
    if record["format"] != FORMAT or record["version"] != FORMAT_VERSION:
        raise OutcomeTableError(
            f"{where}: format {record['format']!r} version {record['version']!r}; "
            f"this reader takes {FORMAT!r} version {FORMAT_VERSION}"
        )
    configs = record["configs"]
    if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        raise OutcomeTableError(f"{where}: configs must be a list of strings")
    features = record["action_features"]
    if not isinstance(features, list) or not all(isinstance(r, list) for r in features):
        raise OutcomeTableError(f"{where}: action_features must be a list of lists")
    stopping = record["early_stopping"]
    if not isinstance(stopping, list) or not all(isinstance(s, bool) for s in stopping):
        raise OutcomeTableError(f"{where}: early_stopping must be a list of booleans")
    if not isinstance(record["settings"], dict):
        raise OutcomeTableError(f"{where}: settings must be an object")
    return TableMeta(
        configs=tuple(configs),
        action_features=tuple(tuple(float(v) for v in row) for row in features),
        early_stopping=tuple(stopping),
        settings=record["settings"],
    )


def _question_from(record: Mapping[str, Any], where: str) -> QuestionRow:
    _check_keys(record, _QUESTION_KEYS, where)
    for key in ("id", "tier", "split", "text", "answer"):
        if not isinstance(record[key], str):
            raise OutcomeTableError(f"{where}: question {key} must be a string")
    if record["split"] not in SPLITS:
        raise OutcomeTableError(f"{where}: split must be one of {SPLITS}, got {record['split']!r}")
    context = record["context"]
    if not isinstance(context, list) or not all(_is_number(v) for v in context):
        raise OutcomeTableError(f"{where}: context must be a list of numbers")
    return QuestionRow(
        id=record["id"],
        tier=record["tier"],
        split=record["split"],
        text=record["text"],
        answer=record["answer"],
        context=tuple(float(v) for v in context),
    )


def _outcome_from(record: Mapping[str, Any], where: str) -> OutcomeRow:
    _check_keys(record, _OUTCOME_KEYS - {"pruned"}, where, optional=frozenset({"pruned"}))
    types: dict[str, tuple[type, ...]] = {
        "question": (str,),
        "config": (str,),
        "early_stopping": (bool,),
        "answer": (str,),
        "correct": (bool,),
        "prompt_tokens": (int,),
        "completion_tokens": (int,),
        "pruned": (int,),
    }
    for key, allowed in types.items():
        if key in record and not isinstance(record[key], allowed):
            raise OutcomeTableError(f"{where}: {key} must be {allowed[0].__name__}, got {record[key]!r}")
    for key in ("score", "eflops", "cost", "seconds"):
        if not _is_number(record[key]):
            raise OutcomeTableError(f"{where}: {key} must be a number, got {record[key]!r}")
    row = OutcomeRow(**{k: v for k, v in record.items() if k != "kind"})
    try:
        _check_outcome(row)
    except OutcomeTableError as error:
        raise OutcomeTableError(f"{where}: {error}") from None
    return row


def _check_outcome(row: OutcomeRow) -> None:
    if not (math.isfinite(row.score) and 0.0 <= row.score <= 1.0):
        raise OutcomeTableError(f"score must lie in [0, 1], got {row.score!r} ({row.question}, {row.config})")
    if not (math.isfinite(row.cost) and 0.0 <= row.cost <= 1.0):
        raise OutcomeTableError(f"cost must lie in [0, 1], got {row.cost!r} ({row.question}, {row.config})")
    if not (math.isfinite(row.eflops) and row.eflops > 0.0):
        raise OutcomeTableError(f"eflops must be positive, got {row.eflops!r} ({row.question}, {row.config})")
    if not (math.isfinite(row.seconds) and row.seconds >= 0.0):
        raise OutcomeTableError(f"seconds must be >= 0, got {row.seconds!r} ({row.question}, {row.config})")
    if min(row.prompt_tokens, row.completion_tokens, row.pruned) < 0:
        raise OutcomeTableError(f"token and path counts must be >= 0 ({row.question}, {row.config})")


def _check_keys(
    record: Mapping[str, Any], required: set[str], where: str, optional: frozenset[str] = frozenset()
) -> None:
    missing = sorted(required - set(record))
    unknown = sorted(set(record) - required - optional)
    if missing or unknown:
        raise OutcomeTableError(f"{where}: missing fields {missing}, unknown fields {unknown}")


def _parse_configs(configs: Sequence[str]) -> tuple[Config, ...]:
    if not configs:
        raise OutcomeTableError("the table's space has no configs")
    try:
        parsed = tuple(Config.parse(c) for c in configs)
    except UniScaleError as error:
        raise OutcomeTableError(str(error)) from None
    if len(set(parsed)) != len(parsed):
        raise OutcomeTableError("duplicate configs in the table's space")
    return parsed


def _index_questions(questions: Sequence[QuestionRow]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, question in enumerate(questions):
        if question.id in index:
            raise OutcomeTableError(f"duplicate question id {question.id!r}")
        if question.split not in SPLITS:
            raise OutcomeTableError(f"question {question.id!r}: split must be one of {SPLITS}")
        index[question.id] = i
    return index


def _matrix(rows: Sequence[Sequence[float]], name: str) -> FloatArray:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1 or 0 in lengths:
        raise OutcomeTableError(f"{name} vectors must be non-empty and all of one length, got lengths {lengths}")
    matrix = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise OutcomeTableError(f"{name} vectors must be finite")
    return matrix


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
