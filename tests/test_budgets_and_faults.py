"""Per-query budgets (selection and execution) and faults: models that fail to load, verifiers that fail."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from store_support import SPACE, ScriptedExecutor, make_engine

from uniscale_integrations import Config, ConfigSpace, CostModel, UniScale
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.errors import BudgetError, ModelUnavailableError
from uniscale_integrations.events import Listener
from uniscale_integrations.executor.search import Execution, Executor
from uniscale_integrations.executor.stopping import CHECK_TOKENS
from uniscale_integrations.executor.verifiers import Verdicts
from uniscale_integrations.models import ModelRegistry, load_model
from uniscale_integrations.options import RunOptions
from uniscale_integrations.reward.budget import Budget

QUESTION = [{"role": "user", "content": "Tom has 3 boxes with 4 apples each. He eats 2. How many apples are left?"}]


class BudgetedExecutor(ScriptedExecutor):
    """Records the budget it is given; reports the seconds cap as reached whenever there is one."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: list[Budget | None] = []

    def execute(
        self, messages: Sequence[dict[str, str]], config: Config, options: RunOptions, listeners: Any = ()
    ) -> Execution:
        budget = options.budget
        self.budgets.append(budget)
        execution = super().execute(messages, config, options, listeners)
        if budget is not None and budget.seconds is not None:
            execution.budget_exhausted = "seconds"
        return execution


def _engine(executor: ScriptedExecutor, **kwargs: Any) -> UniScale:
    engine = make_engine(None, **kwargs)
    engine.executor = executor
    return engine


# ----------------------------------------------------------------------------- budgets: selection
def test_configs_over_a_cap_are_never_selected() -> None:
    executor = BudgetedExecutor()
    engine = _engine(executor)
    nominal = engine.pricing.nominal
    cap = sorted(nominal.values())[3]  # half the space fits
    for i in range(24):  # teach it that the dearest configurations pay, so it would pick them unconstrained
        config = SPACE[i % len(SPACE)]
        engine.feedback(engine.run(f"lesson {i}", config=config).decision_id, correct=nominal[config] > cap)
    for i in range(12):
        result = engine.run(f"question {i}", budget=Budget(eflops=cap))
        assert nominal[result.config] <= cap
        engine.feedback(result.decision_id, correct=False)
    assert executor.budgets[-1] == Budget(eflops=cap)
    unconstrained = engine.run("question 99")
    assert nominal[unconstrained.config] > cap
    assert executor.budgets[-1] is None


def test_a_token_cap_keeps_to_single_path_configs() -> None:
    engine = _engine(BudgetedExecutor())
    chosen = {engine.run(f"q{i}", budget=Budget(tokens=64)).config for i in range(6)}
    assert chosen
    assert all(config.paths == 1 for config in chosen)


def test_no_config_fitting_the_budget_is_a_clear_error() -> None:
    engine = _engine(BudgetedExecutor())
    with pytest.raises(BudgetError, match=r"no configuration fits .* the cheapest, S/qp1/cp1/bs1, needs"):
        engine.run("What is 1 + 1?", budget=Budget(eflops=1.0))


def test_an_exhausted_budget_is_flagged_in_the_result() -> None:
    engine = _engine(BudgetedExecutor())
    result = engine.run("What is 1 + 1?", budget=Budget(seconds=0.5))
    assert result.budget_exhausted == "seconds"
    assert engine.run("What is 1 + 1?").budget_exhausted is None


@pytest.mark.parametrize(
    "kwargs",
    [{"eflops": -1.0}, {"eflops": 0}, {"tokens": 1.5}, {"seconds": math.nan}, {"seconds": math.inf}, {"tokens": True}],
)
def test_invalid_budgets_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="budget"):
        Budget(**kwargs)


# ----------------------------------------------------------------------------- faults: models
class FailingModelExecutor(ScriptedExecutor):
    """Model M cannot be loaded (as the real executor reports it)."""

    def __init__(self, broken: Iterable[str] = ("M",)) -> None:
        super().__init__()
        self.broken = set(broken)

    def execute(
        self,
        messages: Sequence[dict[str, str]],
        config: Config,
        options: RunOptions,
        listeners: Iterable[Listener] = (),
    ) -> Execution:
        if config.model in self.broken:
            raise ModelUnavailableError(config.model, f"model {config.model!r} could not be loaded: out of memory")
        return super().execute(messages, config, options, listeners)


def test_a_model_that_fails_to_load_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(FailingModelExecutor(), space=ConfigSpace.grid(["M", "S"], cp=(1, 4)))
    with caplog.at_level(logging.WARNING):  # all tied before any feedback: the first config, M's, is chosen
        results = [engine.run(f"question {i}") for i in range(5)]
    assert all(r.config.model == "S" for r in results)
    assert caplog.text.count("model 'M' could not be loaded: out of memory") == 1
    with pytest.raises(ModelUnavailableError, match="out of memory"):
        engine.run("q", config=Config("M"))  # a forced configuration is not replaced


def test_no_loadable_model_is_a_clear_error() -> None:
    engine = _engine(FailingModelExecutor(broken=("S", "M")))
    with pytest.raises(ModelUnavailableError, match=r"no model of the space could be loaded \(M, S\)"):
        engine.run("What is 2 + 2?")


def test_the_executor_reports_a_failed_load_as_unavailable() -> None:
    def broken() -> Any:
        raise RuntimeError("CUDA out of memory")

    executor = Executor({"M": broken}, CostModel())
    with pytest.raises(ModelUnavailableError, match="model 'M' could not be loaded: CUDA out of memory") as raised:
        executor.generator("M")
    assert raised.value.model == "M"


# ----------------------------------------------------------------------------- the real search under caps
@pytest.fixture(scope="module")
def generator() -> HFGenerator:
    return HFGenerator(load_model(ModelRegistry.default()["S"]))


@pytest.fixture
def executor(generator: HFGenerator) -> Executor:
    return Executor({"S": lambda: generator}, CostModel(), max_new_tokens=48)


def test_a_token_cap_stops_the_search_with_its_best_answer(executor: Executor) -> None:
    free = executor.execute(QUESTION, Config("S", cp=4), seed=3)
    capped = executor.execute(QUESTION, Config("S", cp=4), seed=3, budget=Budget(tokens=40))
    assert free.budget_exhausted is None
    assert capped.budget_exhausted == "tokens"
    assert 40 <= capped.usage.completion_tokens < 40 + 4 * CHECK_TOKENS < free.usage.completion_tokens
    assert capped.text
    assert capped.eflops < free.eflops
    assert {p.status for p in capped.paths} <= {"budget", "finished"}
    assert "budget" in {p.status for p in capped.paths}


def test_eflops_and_seconds_caps_stop_the_search(executor: Executor) -> None:
    free = executor.execute(QUESTION, Config("S", cp=2), seed=4)
    cap = free.eflops / 3
    capped = executor.execute(QUESTION, Config("S", cp=2), seed=4, budget=Budget(eflops=cap))
    assert capped.budget_exhausted == "eflops"
    assert cap <= capped.eflops < free.eflops
    hurried = executor.execute(QUESTION, Config("S", cp=2), seed=4, budget=Budget(seconds=1e-6))
    assert hurried.budget_exhausted == "seconds"
    assert hurried.usage.completion_tokens == 0  # spent before the first token: nothing to answer with
    assert {p.status for p in hurried.paths} == {"budget"}


def test_a_failing_verifier_degrades_to_self_confidence(
    generator: HFGenerator, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        name = "broken"

        def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Any:
            raise TimeoutError("verifier service timed out")

    checked = Executor({"S": lambda: generator}, CostModel(), max_new_tokens=24, verifier=Broken())
    with caplog.at_level(logging.WARNING):
        execution = checked.execute(QUESTION, Config("S", cp=2), seed=5)
    assert "verifier 'broken' failed" in caplog.text
    assert 0.0 <= execution.score <= 1.0
    assert all(0.0 <= s <= 1.0 for p in execution.paths for s in p.step_scores)


def test_a_verifier_past_its_timeout_counts_as_failed(generator: HFGenerator, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    class Hanging:
        name = "hanging"

        def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
            release.wait(30)  # a service that does not answer
            return Verdicts(scores=[1.0] * len(solutions))

    checked = Executor(
        {"S": lambda: generator}, CostModel(), max_new_tokens=24, verifier=Hanging(), verifier_timeout=0.2
    )
    started = time.perf_counter()
    try:
        with caplog.at_level(logging.WARNING):
            execution = checked.execute(QUESTION, Config("S", cp=2), seed=5)
    finally:
        release.set()
    calls = caplog.text.count("verifier 'hanging' failed")
    assert calls >= 1
    assert "no verdict within 0.2 s" in caplog.text
    assert time.perf_counter() - started < 30  # the search did not wait for the verifier
    assert all(0.0 <= s < 1.0 for p in execution.paths for s in p.step_scores)  # own confidence, not 1.0
    with pytest.raises(ValueError, match="verifier_timeout"):
        Executor({"S": lambda: generator}, CostModel(), verifier_timeout=0)
