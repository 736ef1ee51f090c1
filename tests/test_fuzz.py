"""Hostile input at the public entry points: clear errors, and the policy and the store left as they were."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_support import SHAPES, ScriptedExecutor, make_engine, real_encoder, state_hash

from uniscale_integrations import (
    Config,
    ConfigSpace,
    ConfigSpaceError,
    DuplicateFeedbackError,
    InvalidQueryError,
    UniScale,
    UniScaleError,
    UnknownDecisionError,
)
from uniscale_integrations.models import ModelRegistry, load_model
from uniscale_integrations.models.registry import HFDirectory, ModelSpec
from uniscale_integrations.store.sqlite import SQLiteStore

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UniScale]:
    """The real query encoder and a file store; the executor is scripted (the store and bandit are under test)."""
    with make_engine(tmp_path_factory.mktemp("fuzz") / "policy.db", encoder=real_encoder()) as engine:
        for i in range(6):  # some learning, so that a change to the state would show
            engine.feedback(engine.run(f"What is {i} + {i}?").decision_id, correct=i % 2 == 0)
        yield engine


def _snapshot(engine: UniScale) -> tuple[str, dict[str, int]]:
    engine.sync()
    return state_hash(engine.bandit), engine.store.counts()


# ----------------------------------------------------------------------------- queries
surrogates = st.characters(categories=["Cs"])
text_with = st.builds(lambda a, s, b: a + s + b, st.text(max_size=20), surrogates, st.text(max_size=20))
queries = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(categories=["Cc"]), max_size=50),  # control characters only
    st.text(st.characters(categories=["Cc", "Zs", "Zl", "Zp"]), min_size=1, max_size=20),
    text_with,  # lone surrogates: what undecodable bytes become
    st.sampled_from(["", " ", "\n\t", "x" * 1_000_000, "7 + 5 = ?" * 120_000, "\x00" * 1_000]),
    st.binary(max_size=20),
    st.none(),
    st.integers(),
    st.lists(st.dictionaries(st.sampled_from(["role", "content", "x"]), st.text(max_size=5) | text_with), max_size=3),
)


@FUZZ
@given(query=queries)
def test_any_query_is_answered_or_refused_clearly(engine: UniScale, query: Any) -> None:
    before = _snapshot(engine)
    try:
        result = engine.run(query)
    except InvalidQueryError as exc:
        refused: InvalidQueryError | None = exc
    else:
        refused = None
    if refused is not None:
        assert str(refused)
        assert _snapshot(engine) == before
        with pytest.raises(InvalidQueryError):
            engine.explain(query)
        return
    assert result.config in engine.space
    assert _snapshot(engine)[0] == before[0]  # a decision changes the log, never the policy
    engine.feedback(result.decision_id, correct=True)


# ----------------------------------------------------------------------------- rewards
rewards = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.0000001, -1e-12, 1e308, "0.5", b"1", [1.0], 1j]),
)


def _valid(value: object, *, booleans: bool = True) -> bool:
    """A feedback value the engine takes: ``correct`` may be a bool, ``score`` (a rating) may not."""
    if value is None or isinstance(value, bool):
        return value is None or booleans
    return isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1


@FUZZ
@given(correct=rewards, score=rewards)
def test_any_reward_is_applied_or_refused_leaving_the_decision_pending(
    engine: UniScale, correct: Any, score: Any
) -> None:
    decision = engine.run("How many legs do 3 spiders have?").decision_id
    before = _snapshot(engine)
    if _valid(correct) and _valid(score, booleans=False):
        reward = engine.feedback(decision, correct=correct, score=score)
        assert math.isfinite(reward)
        assert engine.bandit.n_updates == before[1]["feedback"] + 1
        return
    with pytest.raises((ValueError, TypeError), match="must be"):
        engine.feedback(decision, correct=correct, score=score)
    assert _snapshot(engine) == before
    engine.feedback(decision, correct=True)  # it still takes its one feedback


# ----------------------------------------------------------------------------- decision ids
ids = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),  # well formed, never issued
    st.from_regex(r"[0-9A-F]{32}", fullmatch=True),
    text_with,
    st.binary(max_size=40),
    st.integers(),
    st.none(),
    st.just("a" * 1_000_000),
    st.lists(st.text(max_size=3), max_size=2),
)


@FUZZ
@given(decision_id=ids)
def test_unknown_or_malformed_ids_are_refused(engine: UniScale, decision_id: Any) -> None:
    before = _snapshot(engine)
    with pytest.raises(UnknownDecisionError, match="unknown decision id") as raised:
        engine.feedback(decision_id, correct=True)
    assert len(str(raised.value)) < 200
    assert _snapshot(engine) == before


@FUZZ
@given(correct=st.booleans())
def test_a_second_feedback_is_refused(engine: UniScale, correct: bool) -> None:
    decision = engine.run("Is 7 a prime number?").decision_id
    engine.feedback(decision, correct=True)
    before = _snapshot(engine)
    with pytest.raises(DuplicateFeedbackError, match=decision):
        engine.feedback(decision, correct=correct)
    assert _snapshot(engine) == before


# ----------------------------------------------------------------------------- config spaces
names = st.one_of(st.sampled_from(["S", "M", "L"]), st.text(max_size=6), text_with)
sizes = st.one_of(st.integers(min_value=-3, max_value=5), st.sampled_from([0, 4096, 4097, 2**70, True, 1.5, "2"]))
axis = st.lists(sizes, max_size=3) | sizes


@FUZZ
@given(models=st.lists(names, max_size=3) | names, qp=axis, cp=axis, bs=axis)
def test_any_space_is_built_or_refused_clearly(models: Any, qp: Any, cp: Any, bs: Any) -> None:
    try:
        space = ConfigSpace.grid(models, qp, cp, bs)
    except ConfigSpaceError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "must" in message or "at least one" in message or "duplicate" in message
        return
    shapes = dict.fromkeys(space.models, SHAPES["S"])
    engine = UniScale(space, ScriptedExecutor(), shapes, encoder=make_engine(None).encoder)
    with engine:
        result = engine.run("What is 2 + 2?")
        assert result.config in space
        assert Config.parse(str(result.config)) == result.config
        engine.feedback(result.decision_id, correct=True)


def test_duplicate_and_foreign_entries_are_refused() -> None:
    with pytest.raises(ConfigSpaceError, match="duplicate configurations"):
        ConfigSpace([Config("S"), Config("S", 1, 1, 1)])
    with pytest.raises(ConfigSpaceError, match="expected Config"):
        ConfigSpace(["S/qp1/cp1/bs1"])  # type: ignore[list-item]
    with pytest.raises(ConfigSpaceError, match="iterable of Config"):
        ConfigSpace(5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- remote code
def test_no_model_source_enables_remote_code_by_default() -> None:
    assert not any(spec.trust_remote_code for spec in ModelRegistry.default())
    for method in (ModelRegistry.register_gguf, ModelRegistry.register_hf_dir):
        assert inspect.signature(method).parameters["trust_remote_code"].default is False
    assert ModelSpec.__dataclass_fields__["trust_remote_code"].default is False


def test_a_model_directory_asking_for_remote_code_does_not_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory whose config maps the Auto classes to its own code: loading refuses, the code never runs."""
    transformers = pytest.importorskip("transformers")
    marker = tmp_path / "remote-code-ran"
    evil = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "evil.py").write_text(
        evil + "from transformers import PretrainedConfig\nclass EvilConfig(PretrainedConfig):\n"
        "    model_type = 'evil'\n"
    )
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["evil.Tok", None]}}))
    seen: list[object] = []
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        original = auto.from_pretrained

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(kwargs.get("trust_remote_code"))
            return _original(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)
    spec = ModelSpec("evil", "evil", 1, 1, 1, 1, HFDirectory(tmp_path))
    with pytest.raises(UniScaleError, match="could not load model 'evil'"):
        load_model(spec, device="cpu")
    assert seen
    assert set(seen) == {False}
    assert not marker.exists()


# ----------------------------------------------------------------------------- engine and store options
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"store": 5}, TypeError, "store path must be a str"),
        ({"store": b"policy.db"}, TypeError, "store path must be a str"),
        ({"snapshot_every": -1}, ValueError, "snapshot_every"),
        ({"max_pending": 0}, ValueError, "max_pending"),
        ({"alpha": math.nan}, ValueError, "alpha"),
        ({"gamma": 1.5}, ValueError, "gamma"),
    ],
)
def test_bad_engine_options_are_refused(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make_engine(kwargs.pop("store", None), **kwargs)


def test_bad_store_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "policy.db", synchronous="off")  # type: ignore[arg-type]
    assert not (tmp_path / "policy.db").exists()
