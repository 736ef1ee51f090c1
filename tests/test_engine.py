"""The engine end to end on the real S model (small budget), and its guards against bad input."""

import math

import numpy as np
import pytest

from uniscale_integrations import (
    Config,
    ConfigSpaceError,
    DuplicateFeedbackError,
    InvalidQueryError,
    UniScale,
    UnknownDecisionError,
    UnknownModelError,
)


@pytest.fixture(scope="module")
def engine() -> UniScale:
    return UniScale.from_defaults(models=("S",), qp=(1, 2), cp=(1, 2), max_new_tokens=12, seed=0)


def _state(engine: UniScale) -> dict[str, object]:
    return {k: np.array(v, copy=True) for k, v in engine.bandit.state_dict().items()}


def _assert_state_equal(engine: UniScale, before: dict[str, object]) -> None:
    after = engine.bandit.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(np.asarray(after[key]), value, err_msg=key)


def test_run_answers_with_its_config_cost_and_decision(engine: UniScale) -> None:
    result = engine.run("What is 2 + 3?")
    assert result.config in engine.space
    assert result.text
    assert result.answer
    assert result.eflops > 0
    assert 0 < result.cost <= 1
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 12 * result.config.paths
    assert 0 <= result.score <= 1
    assert len(result.paths) == result.config.paths
    assert result.estimate is not None
    assert result.estimate.config == result.config
    assert result.estimate.ucb == pytest.approx(result.estimate.mean + engine.bandit.alpha * result.estimate.width)
    assert len(result.decision_id) == 32


def test_forced_config_bypasses_selection(engine: UniScale) -> None:
    config = Config("S", qp=2, cp=2)
    result = engine.run("What is 10 - 4?", config=config)
    assert result.config == config
    assert result.estimate is None
    assert {p.variant for p in result.paths} == {0, 1}
    cheap = engine.run("What is 10 - 4?", config=Config("S"))
    assert cheap.eflops < result.eflops
    assert cheap.cost < result.cost


def test_feedback_updates_the_policy_exactly_once(engine: UniScale) -> None:
    query = "What is 7 + 8?"
    result = engine.run(query, config=Config("S"))
    index = engine.space.index(Config("S"))
    before = engine.explain(query)
    mean_before = next(e.mean for e in before if e.config == Config("S"))
    updates = engine.bandit.n_updates

    reward = engine.feedback(result.decision_id, correct=True)
    expected = engine.weights.reward(correct=1.0, score=result.score, cost=result.cost)
    assert reward == pytest.approx(expected)
    assert engine.bandit.n_updates == updates + 1
    mean_after = next(e.mean for e in engine.explain(query) if e.config == engine.space[index])
    assert mean_after > mean_before

    state = _state(engine)
    with pytest.raises(DuplicateFeedbackError, match=result.decision_id):
        engine.feedback(result.decision_id, correct=False)
    _assert_state_equal(engine, state)


def test_explain_lists_every_config_by_ucb(engine: UniScale) -> None:
    explanation = engine.explain("How many legs do 2 cats have?")
    assert sorted(str(e.config) for e in explanation) == sorted(str(c) for c in engine.space)
    ucbs = [e.ucb for e in explanation]
    assert ucbs == sorted(ucbs, reverse=True)
    assert "config" in str(explanation).splitlines()[0]


@pytest.mark.parametrize("query", ["", "   ", None, 42, [], [{"role": "system", "content": "hi"}], "x" * 100_001])
def test_bad_queries_are_refused_before_any_work(engine: UniScale, query: object) -> None:
    state = _state(engine)
    with pytest.raises(InvalidQueryError):
        engine.run(query)  # type: ignore[arg-type]
    _assert_state_equal(engine, state)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([{"role": "user", "content": None}], "messages[0] has no content"),
        ([{"role": "user", "content": {"text": "hi"}}], "messages[0]: UniScale takes text only; the content is a dict"),
        ([{"role": "system", "content": "x" * 60_000}, {"role": "user", "content": "y" * 60_000}], "all its messages"),
        ([{"role": "user", "content": "hi"}] * 1_001, "1,001 messages; the limit is 1,000"),
    ],
)
def test_chats_that_are_not_text_or_too_long_are_refused(engine: UniScale, query: object, message: str) -> None:
    state = _state(engine)
    with pytest.raises(InvalidQueryError) as caught:
        engine.run(query)  # type: ignore[arg-type]
    assert message in str(caught.value)
    _assert_state_equal(engine, state)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"stop": [""]}, "non-empty strings"), ({"temperature": True}, "temperature")]
)
def test_bad_options_get_the_servers_messages(engine: UniScale, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine.run("What is 1 + 1?", **kwargs)  # type: ignore[arg-type]


def test_a_prompt_past_every_window_is_refused_before_any_work() -> None:
    from uniscale_integrations.errors import ContextLengthError

    bounded = UniScale.from_defaults(models=("S",), qp=(1,), cp=(1,), max_new_tokens=12, max_prompt_tokens=64)
    state = _state(bounded)
    with pytest.raises(ContextLengthError, match="exceed the limit of 64"):
        bounded.run("Count the words: " + "one two three " * 40)
    with pytest.raises(ContextLengthError, match="context window of 8,192"):
        bounded.run("hi", max_new_tokens=9_000)
    _assert_state_equal(bounded, state)
    assert bounded.store.counts()["decisions"] == 0
    assert bounded.run("What is 1 + 1?").text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"correct": math.nan}, ValueError),
        ({"correct": math.inf}, ValueError),
        ({"correct": 2.0}, ValueError),
        ({"score": -0.5}, ValueError),
        ({"score": "high"}, ValueError),
        ({"score": True}, ValueError),
    ],
)
def test_bad_rewards_leave_state_and_decision_intact(
    engine: UniScale, kwargs: dict[str, object], error: type[Exception]
) -> None:
    result = engine.run("What is 1 + 1?", config=Config("S"))
    state = _state(engine)
    with pytest.raises(error):
        engine.feedback(result.decision_id, **kwargs)  # type: ignore[arg-type]
    _assert_state_equal(engine, state)
    engine.feedback(result.decision_id, correct=True)  # the decision still takes its one feedback


@pytest.mark.parametrize("decision_id", ["nope", "", None, 17])
def test_unknown_decision_ids_are_refused(engine: UniScale, decision_id: object) -> None:
    state = _state(engine)
    with pytest.raises(UnknownDecisionError, match="unknown decision id"):
        engine.feedback(decision_id, correct=True)  # type: ignore[arg-type]
    _assert_state_equal(engine, state)


def test_empty_config_space_is_refused() -> None:
    with pytest.raises(ConfigSpaceError, match="at least one"):
        UniScale.from_defaults(models=())


def test_models_restrict_the_choice_to_the_named_models(engine: UniScale) -> None:
    result = engine.run("What is 2 + 2?", models=["S"])
    assert result.config.model == "S"
    assert result.estimate is not None  # chosen by the policy, not forced
    with pytest.raises(UnknownModelError, match="not in the space"):
        engine.run("What is 2 + 2?", models=["Z"])
    with pytest.raises(ValueError, match="non-empty collection"):
        engine.run("What is 2 + 2?", models="S")
