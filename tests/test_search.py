"""The TTS executor on the real S model: batching, beams, early stopping, variants, aggregation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from uniscale_integrations import Config, CostModel, Usage
from uniscale_integrations.answers import canonical_answer, extract_answer, stated_answer
from uniscale_integrations.backends.hf.generator import HFGenerator
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.events import Event, PathPruned, StepScored
from uniscale_integrations.executor import STEP_BY_STEP, EarlyStopping, Executor, vote_decided
from uniscale_integrations.executor.stopping import vote_settled
from uniscale_integrations.executor.verifiers import Verdicts
from uniscale_integrations.models import ModelRegistry, load_model

QUESTION = [{"role": "user", "content": "Tom has 3 boxes with 4 apples each. He eats 2. How many apples are left?"}]


class ScriptedVerifier:
    """Scores partial solutions and finished ones by fixed rules (a collaborator under our control)."""

    name = "scripted"

    def __init__(self, partial: float | Callable[[str], float], final: Callable[[str], float] | float) -> None:
        self.partial = partial
        self.final = final
        self.calls: list[tuple[int, bool]] = []

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        self.calls.append((len(solutions), partial))
        rule = self.partial if partial else self.final
        scores = [rule(s) if callable(rule) else rule for s in solutions]
        return Verdicts(scores=scores, eflops=0.0, usage=Usage())


@pytest.fixture(scope="module")
def generator() -> HFGenerator:
    return HFGenerator(load_model(ModelRegistry.default()["S"]))


def _executor(generator: HFGenerator, **kwargs: object) -> Executor:
    options: dict[str, object] = {"max_new_tokens": 48, "instruction": STEP_BY_STEP}
    options.update(kwargs)
    return Executor({"S": lambda: generator}, CostModel(), **options)  # type: ignore[arg-type]


def _recording() -> tuple[list[Event], Callable[[Event], None]]:
    events: list[Event] = []
    return events, events.append


def test_cp4_decodes_four_candidates_in_one_batched_session(generator: HFGenerator) -> None:
    execution = _executor(generator, early_stopping=EarlyStopping(enabled=False)).execute(
        QUESTION, Config("S", cp=4), seed=1
    )
    assert len(execution.paths) == 4
    assert all(p.finished for p in execution.paths)
    assert len({p.text for p in execution.paths}) > 1  # sampled, not copies
    # one batch: one forward pass per decoded position, not one per path and position
    assert execution.usage.completion_tokens > 48
    assert execution.usage.tokens_processed >= execution.usage.completion_tokens


def test_bs2_keeps_at_most_two_beams_per_step(generator: HFGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[int] = []
    original = DecodeSession.select

    def spy(self: DecodeSession, indices: Sequence[int]) -> None:
        kept.append(len(indices))
        original(self, indices)

    monkeypatch.setattr(DecodeSession, "select", spy)
    events, listener = _recording()
    execution = _executor(generator, early_stopping=EarlyStopping(enabled=False, h_max=4)).execute(
        QUESTION, Config("S", bs=2), seed=3, listeners=[listener]
    )
    # one tree, 2 beams x 2 children: never more than 4 rows alive, 2 survivors expanded
    assert kept
    assert all(n <= 4 and n % 2 == 0 for n in kept)
    scored_per_step = Counter(e.step for e in events if isinstance(e, StepScored))
    assert scored_per_step[1] == 4
    assert all(n <= 4 for n in scored_per_step.values())
    outranked = [p for p in execution.paths if p.status == "outranked"]
    assert outranked, "beam search must drop the paths outside the top 2"
    assert sum(p.finished for p in execution.paths) <= 2


def test_early_stopping_prunes_exactly_when_the_bound_says(generator: HFGenerator) -> None:
    verifier = ScriptedVerifier(partial=0.2, final=0.9)
    stopping = EarlyStopping(h_max=4, v_sup=1.0, decided_vote=False)
    events, listener = _recording()
    execution = _executor(generator, verifier=verifier, early_stopping=stopping, max_new_tokens=64).execute(
        QUESTION, Config("S", cp=6), seed=5, listeners=[listener]
    )
    pruned = [e for e in events if isinstance(e, PathPruned)]
    finished_steps = sorted(p.steps for p in execution.paths if p.finished)
    assert finished_steps, "some path must finish for the bound to bite"
    for event in pruned:
        path = execution.paths[event.path_id]
        expected = stopping.bound(event.step, path.mean_score, 1.0)
        assert event.bound == pytest.approx(expected)
        assert event.best_final == pytest.approx(0.9)
        assert expected < 0.9
        assert path.status == "pruned"
    # every path still running after the first finish was at a step where the bound fell below 0.9
    first_finish = finished_steps[0]
    for path in execution.paths:
        if not path.finished and path.status == "pruned":
            assert path.steps >= first_finish
            assert stopping.bound(path.steps, path.mean_score, 1.0) < 0.9
    # with a horizon so long that the bound never drops below 0.9, nothing is pruned
    lenient = _executor(
        generator, verifier=verifier, early_stopping=EarlyStopping(h_max=1000, v_sup=1.0), max_new_tokens=64
    ).execute(QUESTION, Config("S", cp=6), seed=5)
    assert not [p for p in lenient.paths if p.status == "pruned"]
    if pruned:
        assert execution.usage.tokens_processed < lenient.usage.tokens_processed
        assert execution.eflops < lenient.eflops


def test_a_pruned_beam_leaves_its_tree_for_good(generator: HFGenerator) -> None:
    # Steps of even length score 1, odd ones 0: after the first finish, paths with a bad step are
    # pruned while the others go on, so the trees shrink unevenly.
    verifier = ScriptedVerifier(partial=lambda text: float(len(text) % 2 == 0), final=0.9)
    stopping = EarlyStopping(h_max=8, v_sup=1.0, decided_vote=False)
    config = Config("S", cp=3, bs=2)
    events, listener = _recording()
    execution = _executor(generator, verifier=verifier, early_stopping=stopping, max_new_tokens=96).execute(
        QUESTION, config, seed=2, listeners=[listener]
    )
    pruned = {p.id for p in execution.paths if p.status == "pruned"}
    assert pruned, "the scripted scores must prune some beams"
    for tree in range(config.cp):
        paths = [p for p in execution.paths if p.tree == tree]
        finalists = sum(p.final_score is not None for p in paths)
        # each of the tree's BS beams ends once: as a candidate answer or pruned, never both
        assert finalists + sum(p.id in pruned for p in paths) <= config.bs
    scored = Counter(e.step for e in events if isinstance(e, StepScored))
    first_prune = min(e.step for e in events if isinstance(e, PathPruned) and e.path_id in pruned)
    assert scored[first_prune + 1] < scored[first_prune]  # fewer paths decode after a prune


def test_the_vote_is_decided_only_when_no_answer_can_overtake() -> None:
    from uniscale_integrations.executor.paths import PathTrace

    def path(i: int, answer: str | None, score: float | None) -> PathTrace:
        return PathTrace(i, 0, i, None, answer=answer, final_score=score)

    done = [path(0, "7", 0.9), path(1, "7", 0.8), path(2, "9", 0.6)]
    # leader 1.7, runner-up 0.6: one open beam (up to 1.0) cannot close the gap, two can
    assert vote_decided(done, 1, 1.0) is not None
    assert vote_decided(done, 2, 1.0) is None
    assert vote_decided(done, 3, 0.3) is not None  # the open beams can add 0.9 at most
    # majority counts paths: 2 vs 1 is decided with no open beam only
    assert vote_decided(done, 0, 1.0, "majority") is not None
    assert vote_decided(done, 1, 1.0, "majority") is None
    # best score: decided once a finished path reaches the largest score any path could get
    assert vote_decided(done, 5, 0.9, "best_score") is not None
    assert vote_decided(done, 5, 0.95, "best_score") is None
    assert vote_decided([path(0, None, 0.9)], 0, 1.0) is None  # no extracted answer, nothing to decide
    assert vote_decided([path(0, "7", None)], 0, 1.0) is None  # nothing finished


def test_a_decided_vote_stops_the_search(generator: HFGenerator) -> None:
    # Finished paths score 0.45 and no step can score above v_sup = 0.5, so over a long horizon the
    # path bound (about 0.5) never prunes; the search stops once the open beams, 0.5 each, cannot
    # lift another answer past the leader.
    verifier = ScriptedVerifier(partial=0.3, final=0.45)
    question = [{"role": "user", "content": "What is 2 + 3?"}]
    options = {"verifier": verifier, "max_new_tokens": 48, "temperature": 0.3}
    events, listener = _recording()
    on = _executor(generator, early_stopping=EarlyStopping(h_max=1000, v_sup=0.5), **options).execute(
        question, Config("S", cp=8), seed=6, listeners=[listener]
    )
    off = _executor(generator, early_stopping=EarlyStopping(enabled=False, h_max=1000), **options).execute(
        question, Config("S", cp=8), seed=6
    )
    decided = [e for e in events if isinstance(e, PathPruned) and e.reason.startswith("vote decided")]
    assert decided, "the seed must give a vote that is decided before every path finishes"
    assert len(decided) == sum(isinstance(e, PathPruned) for e in events)  # the path bound pruned none
    assert vote_decided([p for p in on.paths if p.finished], len(decided), 0.5) is not None
    assert vote_decided([p for p in on.paths if p.finished], len(decided) + 2, 0.5) is None
    assert on.answer == off.answer  # exact: the stopped paths could not have changed the winner
    assert on.usage.completion_tokens < off.usage.completion_tokens


def test_a_settled_vote_stops_an_unpaused_search(generator: HFGenerator) -> None:
    question = [{"role": "user", "content": "What is 2 + 3?"}]
    options = {"max_new_tokens": 96, "temperature": 0.3}
    events, listener = _recording()
    settled = EarlyStopping(pause_at_steps=False, settle=0.6)
    on = _executor(generator, early_stopping=settled, **options).execute(
        question, Config("S", cp=6), seed=6, listeners=[listener]
    )
    off = _executor(generator, early_stopping=EarlyStopping(enabled=False), **options).execute(
        question, Config("S", cp=6), seed=6
    )
    stopped = [e for e in events if isinstance(e, PathPruned)]
    assert stopped, "the seed must give a leader that settles before every path finishes"
    assert all(e.reason.startswith(("vote settled", "vote decided")) for e in stopped)
    assert any(e.reason.startswith("vote settled") for e in stopped)
    assert not any(isinstance(e, StepScored) and not e.final for e in events)  # no pause, no partial scores
    finished = [p for p in on.paths if p.finished]
    assert vote_settled(finished, len(stopped), 0.6) is not None
    assert [p.text for p in finished] == [p.text for p in off.paths if p.id in {q.id for q in finished}]
    assert on.usage.completion_tokens < off.usage.completion_tokens
    with pytest.raises(ValueError, match="settle"):
        EarlyStopping(settle=0.5)


def test_early_stopping_saves_compute_that_shows_in_the_cost(generator: HFGenerator) -> None:
    verifier = ScriptedVerifier(partial=0.1, final=0.95)
    options = {"verifier": verifier, "max_new_tokens": 64}
    on = _executor(generator, early_stopping=EarlyStopping(h_max=2, v_sup=1.0), **options).execute(
        QUESTION, Config("S", cp=6), seed=7
    )
    off = _executor(generator, early_stopping=EarlyStopping(enabled=False, h_max=2), **options).execute(
        QUESTION, Config("S", cp=6), seed=7
    )
    if not any(p.status == "pruned" for p in on.paths):
        pytest.fail("the scripted scores must make the bound prune after the first finish")
    assert on.usage.completion_tokens < off.usage.completion_tokens
    assert on.eflops < off.eflops


def test_qp2_solves_two_question_variants(generator: HFGenerator) -> None:
    execution = _executor(generator, max_new_tokens=24, early_stopping=EarlyStopping(enabled=False)).execute(
        QUESTION, Config("S", qp=2), seed=0
    )
    assert sorted(p.variant for p in execution.paths) == [0, 1]
    assert execution.paths[0].text != execution.paths[1].text


def test_aggregation_returns_the_verifiers_favourite(generator: HFGenerator) -> None:
    probe = _executor(generator, early_stopping=EarlyStopping(enabled=False), max_new_tokens=160).execute(
        QUESTION, Config("S", cp=6), seed=11
    )
    answers = Counter(p.answer for p in probe.paths if p.answer is not None)
    assert len(answers) >= 2, "need disagreeing candidates to test the vote"
    favourite = answers.most_common()[-1][0]  # the least common answer

    def final(text: str) -> float:
        return 1.0 if extract_answer(text.strip()) == favourite else 0.05

    for method in ("weighted_vote", "best_score"):
        execution = _executor(
            generator,
            verifier=ScriptedVerifier(partial=0.5, final=final),
            early_stopping=EarlyStopping(enabled=False),
            max_new_tokens=160,
            aggregation=method,
        ).execute(QUESTION, Config("S", cp=6), seed=11)
        assert execution.answer == favourite, method
        assert execution.score == pytest.approx(1.0)
    majority = _executor(
        generator,
        verifier=ScriptedVerifier(partial=0.5, final=final),
        early_stopping=EarlyStopping(enabled=False),
        max_new_tokens=160,
        aggregation="majority",
    ).execute(QUESTION, Config("S", cp=6), seed=11)
    top_count = answers.most_common(1)[0][1]
    if top_count > answers[favourite]:
        assert majority.answer in {a for a, n in answers.items() if n == top_count}


def test_a_verifier_mapping_scores_only_the_models_it_names(generator: HFGenerator) -> None:
    for verifiers, expected in (
        ({"S": ScriptedVerifier(0.5, 0.9)}, "scripted"),
        ({"M": ScriptedVerifier(0.5, 0.9)}, "self-confidence"),
    ):
        events, listener = _recording()
        execution = _executor(generator, verifier=verifiers, early_stopping=EarlyStopping(enabled=False)).execute(
            QUESTION, Config("S", cp=2), seed=1, listeners=[listener]
        )
        names = {e.verifier for e in events if isinstance(e, StepScored)}
        assert names == {expected}
        scores = {p.final_score for p in execution.paths}
        assert (scores == {0.9}) is (expected == "scripted")


def test_candidate_zero_is_greedy_on_the_models_a_mapping_names(generator: HFGenerator) -> None:
    off = EarlyStopping(enabled=False)
    greedy = _executor(generator, early_stopping=off).execute(QUESTION, Config("S"), seed=2)
    texts = {}
    for setting in (True, {"S": True}, {"S": False}, {"M": True}):
        execution = _executor(generator, early_stopping=off, greedy_first=setting).execute(
            QUESTION, Config("S", cp=3), seed=2
        )
        texts[str(setting)] = [p.text for p in execution.paths]
    assert texts["True"] == texts["{'S': True}"]
    assert texts["True"][0] == greedy.paths[0].text  # candidate 0 is the greedy path
    assert texts["{'S': False}"] == texts["{'M': True}"]  # a model the mapping leaves out samples
    assert texts["{'S': False}"][0] != greedy.paths[0].text
    assert texts["True"][1:] == texts["{'S': False}"][:2]  # the samples after it are the plain session's


def test_invalid_options_are_refused(generator: HFGenerator) -> None:
    with pytest.raises(ValueError, match="aggregation"):
        _executor(generator, aggregation="mean")
    with pytest.raises(ValueError, match="h_max"):
        EarlyStopping(h_max=0)
    with pytest.raises(ValueError, match="v_sup"):
        EarlyStopping(v_sup=1.5)


def test_answer_score_pools_only_paths_that_agree() -> None:
    from uniscale_integrations.executor.paths import PathTrace, aggregate, answer_score

    def path(i: int, answer: str | None, score: float) -> PathTrace:
        return PathTrace(i, 0, i, None, text=f"path {i}", answer=answer, final_score=score, status="finished")

    numeric = [path(0, "7", 0.6), path(1, "7", 0.8), path(2, "9", 0.9)]
    winner = aggregate(numeric)
    assert winner is not None
    assert winner.answer == "7"
    assert answer_score(numeric, winner) == pytest.approx(0.7)
    free_text = [path(0, None, 0.5), path(1, None, 0.8)]  # nothing extracted: no vote to pool
    winner = aggregate(free_text)
    assert winner is not None
    assert winner.id == 1
    assert answer_score(free_text, winner) == pytest.approx(0.8)


def test_a_path_cut_at_the_cap_before_it_states_an_answer_casts_no_vote(generator: HFGenerator) -> None:
    execution = _executor(generator, max_new_tokens=12, early_stopping=EarlyStopping(enabled=False)).execute(
        QUESTION, Config("S", cp=3), seed=1
    )
    cut = [p for p in execution.paths if p.status == "length"]
    assert cut, "12 new tokens must cut a step-by-step answer"
    for path in cut:
        assert (path.answer is None) == (stated_answer(path.text) is None)
    assert execution.answer is not None  # the reply still carries the best path's text


def test_the_trace_summarises_the_search_it_ran(generator: HFGenerator) -> None:
    execution = _executor(generator).execute(QUESTION, Config("S", qp=2, cp=3), seed=2)
    trace = execution.trace
    assert trace is not None
    assert [p.id for p in trace.paths] == [p.id for p in execution.paths]
    assert [p.status for p in trace.paths] == [p.status for p in execution.paths]
    assert sum(trace.statuses.values()) == len(execution.paths)
    assert trace.completion_tokens == execution.usage.completion_tokens  # no verifier: generation alone
    assert trace.prompt_tokens == execution.usage.prompt_tokens
    voters = [p for p in execution.paths if p.finished and p.key is not None]
    assert sum(v.paths for v in trace.votes) == len(voters)
    if trace.winner is not None:
        assert trace.winner == canonical_answer(execution.answer)
        assert trace.agreement == pytest.approx(sum(p.key == trace.winner for p in voters) / len(voters))
    vote_stops = [p.reason for p in execution.paths if p.status == "pruned" and (p.reason or "").startswith("vote")]
    assert trace.stop_reason.startswith(vote_stops[0] if vote_stops else "every path ended")
    assert f"{len(execution.paths)} paths" in str(trace)
