"""Why a configuration was chosen: the estimate split over the context features, and the search's trace."""

from __future__ import annotations

import numpy as np
import pytest
from store_support import ScriptedExecutor, make_engine, real_encoder

from uniscale_integrations import Config, ConfigSpace, LinUCB
from uniscale_integrations.executor.paths import PathTrace
from uniscale_integrations.executor.trace import SearchTrace
from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.policy.attribution import attribute
from uniscale_integrations.reward.cost import Usage

SPACE = ConfigSpace.grid(["S", "M"], qp=(1, 2), cp=(1, 4))
NAMES = ("bias", "emb0", "emb1", "log_length")


def _trained(rng: np.random.Generator, actions: np.ndarray, steps: int = 60) -> LinUCB:
    """A LinUCB fitted on a stream whose reward depends on the configuration and the context."""
    dz, dc = actions.shape[1], len(NAMES)
    bandit = LinUCB(dz * dc, alpha=0.7)
    hidden = rng.normal(size=(dz, dc))
    for _ in range(steps):
        features = ProductFeatures(np.r_[1.0, rng.normal(size=dc - 1)], actions)
        arm = bandit.select(features)
        bandit.update(features.row(arm), float(actions[arm] @ hidden @ features.context) + 0.1 * rng.normal())
    return bandit


def test_contributions_add_up_to_the_estimate_and_the_lead() -> None:
    rng = np.random.default_rng(3)
    actions = np.column_stack([np.ones(5), rng.normal(size=(5, 2))])
    configs = [Config("S", qp=q) for q in range(1, 6)]
    bandit = _trained(rng, actions)
    features = ProductFeatures(np.r_[1.0, rng.normal(size=3)], actions)
    mean, width = bandit.scores(features)
    ucb = mean + bandit.alpha * width
    chosen, runner_up = np.argsort(-ucb)[:2]

    why = attribute(bandit, features, NAMES, configs, int(chosen), int(runner_up))

    assert why.config == configs[chosen]
    assert why.runner_up == configs[runner_up]
    assert sorted(c.feature for c in why.contributions) == sorted(NAMES)
    assert sum(c.contribution for c in why.contributions) == pytest.approx(mean[chosen], abs=1e-12)
    assert sum(c.lead or 0.0 for c in why.contributions) == pytest.approx(mean[chosen] - mean[runner_up], abs=1e-12)
    assert why.exploration_lead == pytest.approx(bandit.alpha * (width[chosen] - width[runner_up]), abs=1e-12)
    leads = [abs(c.lead or 0.0) for c in why.contributions]
    assert leads == sorted(leads, reverse=True)


def test_a_known_theta_gives_the_contributions_by_hand() -> None:
    """theta reads only log_length on the configuration's second feature: nothing else may get a share."""
    actions = np.array([[1.0, 0.0], [1.0, 2.0]])
    dz, dc = actions.shape[1], len(NAMES)
    theta = np.zeros((dz, dc))
    theta[1, 3] = 0.5  # z[1] x log_length
    theta[0, 0] = 0.1  # z[0] x bias: every configuration alike
    lam = 2.0
    bandit = LinUCB.from_state(
        {
            **LinUCB(dz * dc, l2_lambda=lam).state_dict(),
            "b": lam * theta.ravel(),
            "theta": theta.ravel(),
        }
    )
    context = np.array([1.0, 0.3, -0.2, 0.8])
    features = ProductFeatures(context, actions)
    configs = [Config("S"), Config("S", cp=4)]

    why = attribute(bandit, features, NAMES, configs, 1, 0)

    shares = {c.feature: c.contribution for c in why.contributions}
    assert shares == pytest.approx({"bias": 0.1, "emb0": 0.0, "emb1": 0.0, "log_length": 2.0 * 0.5 * 0.8})
    assert why.mean == pytest.approx(0.1 + 0.8)
    assert why.contributions[0].feature == "log_length"
    assert why.contributions[0].lead == pytest.approx(0.8)
    assert why.contributions[1].lead == pytest.approx(0.0)  # the bias term is the same for both
    assert "why S/qp1/cp4/bs1 rather than S/qp1/cp1/bs1" in str(why)
    assert "log_length" in str(why).splitlines()[2]


def test_engine_explain_names_the_encoder_features_of_its_choice() -> None:
    engine = make_engine(None, encoder=real_encoder())
    for i, question in enumerate(["What is 12 * 7?", "Name a prime above 90.", "Spell 'cat' backwards."] * 4):
        result = engine.run(question)
        engine.feedback(result.decision_id, correct=float(i % 2))

    explanation = engine.explain("What is 48 / 6?")
    why = explanation.attribution
    assert why is not None
    assert why.config == explanation[0].config
    assert why.runner_up == explanation[1].config
    assert {c.feature for c in why.contributions} == set(engine.encoder.feature_names)
    assert sum(c.contribution for c in why.contributions) == pytest.approx(explanation[0].mean, abs=1e-12)
    lead = sum(c.lead or 0.0 for c in why.contributions)
    assert lead == pytest.approx(explanation[0].mean - explanation[1].mean, abs=1e-12)
    assert engine.run("What is 48 / 6?").config == why.config  # the choice explained is the one made
    text = str(explanation)
    assert f"why {why.config} rather than {why.runner_up}" in text
    assert why.contributions[0].feature in text


def _path(id: int, answer: str | None, final: float | None, status: str, reason: str | None = None) -> PathTrace:
    path = PathTrace(id=id, variant=0, tree=id, parent=None, answer=answer, final_score=final, status=status)  # type: ignore[arg-type]
    path.step_scores = [0.5] if final is None else [0.5, final]
    path.reason = reason
    path.completion_tokens = 10 * (id + 1)
    return path


def test_the_trace_reads_votes_prunes_and_tokens_off_the_paths() -> None:
    decided = "vote decided: leader 1.600 > runner-up 0.500 + 1 open beams (1.000)"
    paths = [
        _path(0, "12", 0.8, "finished"),
        _path(1, "12", 0.8, "finished"),
        _path(2, "13", 0.5, "finished"),
        _path(3, None, None, "pruned", "bound 0.400 < best finished 0.800 after step 1"),
        _path(4, None, None, "pruned", decided),
    ]
    trace = SearchTrace.of(paths, paths[0], Usage(prompt_tokens=40, completion_tokens=150), None)

    assert trace.statuses == {"finished": 3, "pruned": 2}
    assert [(v.answer, v.paths) for v in trace.votes] == [("12", 2), ("13", 1)]
    assert trace.winner == "12"
    assert trace.agreement == pytest.approx(2 / 3)
    assert (trace.prompt_tokens, trace.completion_tokens, trace.steps) == (40, 150, 2)
    assert trace.stop_reason == f"{decided}; 1 pruned by the path bound"
    assert [p.tokens for p in trace.paths] == [10, 20, 30, 40, 50]
    assert trace.to_dict()["votes"][0] == {"answer": "12", "paths": 2, "weight": pytest.approx(1.6)}
    text = str(trace)
    assert "5 paths (3 finished, 2 pruned)" in text
    assert "67% of the voting paths" in text
    assert SearchTrace.of(paths[:3], paths[0], Usage(), "eflops").stop_reason.startswith("the eflops budget was spent")
    assert SearchTrace.of(paths[:3], paths[0], Usage(), None).stop_reason == "every path ended"


def test_results_without_a_trace_say_so_in_their_record() -> None:
    engine = make_engine(None)
    assert isinstance(engine.executor, ScriptedExecutor)
    assert engine.run("What is 2 + 2?").to_dict()["trace"] is None
