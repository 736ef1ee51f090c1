"""Verifiers and answer checkers: one contract for every verifier, then each one's behaviour.

The likelihood verifier runs on the real S rung and the embedding verifier on the real
MiniLM model (both load in seconds once S is converted into the cache).
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable, Sequence

import pytest

from uniscale_integrations.answers import choice_letter
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.executor import verifiers as verifiers_module
from uniscale_integrations.executor.verifiers import (
    LONE_AGREEMENT,
    CallableChecker,
    CallableVerifier,
    EmbeddingVerifier,
    LMLikelihoodVerifier,
    MultipleChoiceChecker,
    NumericChecker,
    ReferenceVerifier,
    RegexChecker,
    SelfConsistencyVerifier,
    StringChecker,
    Verdicts,
    Verifier,
    WeightedVerifier,
    combine,
)
from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.models import LoadedModel, ModelRegistry, load_model
from uniscale_integrations.reward.cost import CostModel, Usage

QUESTION = "What is 2 + 3?"
SOLUTIONS = ["2 + 3 = 5. Answer: 5", "Answer: 6", "", "I think it is 5, since two plus three is five."]
PREFIXES = ["2 + 3", "Let me", "I think it is"]


@pytest.fixture(scope="module")
def small_lm() -> LoadedModel:
    return load_model(ModelRegistry.default()["S"], device="cpu")


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


Factory = Callable[[pytest.FixtureRequest], Verifier]


def _likelihood(request: pytest.FixtureRequest) -> Verifier:
    return LMLikelihoodVerifier(request.getfixturevalue("small_lm"))


def _embedding(mode: str) -> Factory:
    def make(request: pytest.FixtureRequest) -> Verifier:
        reference = "The answer is 5." if mode == "reference" else None
        return EmbeddingVerifier(request.getfixturevalue("embedder"), mode, reference)  # type: ignore[arg-type]

    return make


def _weighted(request: pytest.FixtureRequest) -> Verifier:
    return combine(SelfConsistencyVerifier(), _embedding("agreement")(request), weights=[2, 1])


# (class, factory, model-based) for every verifier; test_every_verifier_is_under_contract keeps it complete
CONTRACT: list[tuple[type, Factory, bool]] = [
    (ReferenceVerifier, lambda r: ReferenceVerifier(NumericChecker(), "5"), False),
    (ReferenceVerifier, lambda r: ReferenceVerifier(StringChecker(), "five"), False),
    (ReferenceVerifier, lambda r: ReferenceVerifier(MultipleChoiceChecker(), "B"), False),
    (ReferenceVerifier, lambda r: ReferenceVerifier(RegexChecker(), r"5|five"), False),
    (ReferenceVerifier, lambda r: ReferenceVerifier(CallableChecker(lambda p, ref: ref in p), "5"), False),
    (SelfConsistencyVerifier, lambda r: SelfConsistencyVerifier(), False),
    (CallableVerifier, lambda r: CallableVerifier(lambda q, s: len(s) / (len(s) + 10), name="len"), False),
    (LMLikelihoodVerifier, _likelihood, True),
    (EmbeddingVerifier, _embedding("reference"), True),
    (EmbeddingVerifier, _embedding("agreement"), True),
    (WeightedVerifier, _weighted, True),
]
CONTRACT_IDS = [
    "reference-numeric",
    "reference-string",
    "reference-choice",
    "reference-regex",
    "reference-callable",
    "self-consistency",
    "callable",
    "likelihood-S",
    "embedding-reference",
    "embedding-agreement",
    "weighted",
]


@pytest.fixture(params=CONTRACT, ids=CONTRACT_IDS)
def contract_case(request: pytest.FixtureRequest) -> tuple[Verifier, bool]:
    cls, factory, model_based = request.param
    verifier = factory(request)
    assert isinstance(verifier, cls)
    return verifier, model_based


def test_every_verifier_is_under_contract() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(verifiers_module, inspect.isclass)
        if obj.__module__ == verifiers_module.__name__ and callable(getattr(obj, "score", None)) and obj is not Verifier
    }
    assert defined == {cls for cls, _, _ in CONTRACT}


def test_contract_scores_and_cost(contract_case: tuple[Verifier, bool]) -> None:
    verifier, model_based = contract_case
    verdicts = verifier.score(QUESTION, SOLUTIONS)
    assert isinstance(verifier.name, str)
    assert verifier.name
    assert len(verdicts.scores) == len(SOLUTIONS)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in verdicts.scores)
    if model_based:
        assert verdicts.eflops > 0
        assert verdicts.usage.tokens_processed > 0
    else:
        assert verdicts.eflops == 0.0
        assert verdicts.usage == Usage()


def test_contract_partial_prefixes(contract_case: tuple[Verifier, bool]) -> None:
    verifier, _ = contract_case
    verdicts = verifier.score(QUESTION, PREFIXES, partial=True)
    assert len(verdicts.scores) == len(PREFIXES)
    assert all(0.0 <= s <= 1.0 for s in verdicts.scores)


def test_contract_empty_batch(contract_case: tuple[Verifier, bool]) -> None:
    verifier, _ = contract_case
    assert verifier.score(QUESTION, []) == Verdicts([], 0.0, Usage())


def test_contract_deterministic(contract_case: tuple[Verifier, bool]) -> None:
    verifier, _ = contract_case
    first, second = verifier.score(QUESTION, SOLUTIONS), verifier.score(QUESTION, SOLUTIONS)
    assert first.scores == pytest.approx(second.scores, abs=1e-9)
    assert (first.eflops, first.usage) == (second.eflops, second.usage)


def test_verdicts_reject_scores_outside_unit_interval() -> None:
    for bad in ([1.5], [-0.1], [math.nan], [1]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            Verdicts(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eflops"):
        Verdicts([0.5], eflops=-1.0)


# --- answer checkers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("Answer: 1,250", "1250", True),
        ("The total is $1,250.00.", "1250", True),
        ("\\boxed{1250}", "1,250", True),
        ("Answer: **12.0** legs", "12", True),
        ("so we get -4", "-4", True),
        ("Answer: .5", "0.50", True),
        ("3 + 4 = 7, so 8 in all. Answer: 8", "7", False),
        ("Answer: 1251", "1250", False),
        ("no number here", "3", False),
        ("", "3", False),
    ],
)
def test_numeric_checker_formatting(prediction: str, reference: str, expected: bool) -> None:
    assert NumericChecker().check(prediction, reference) is expected


def test_numeric_checker_tolerance_and_validation() -> None:
    assert NumericChecker(rel_tol=0.01).check("Answer: 3.14", "3.1416")
    assert not NumericChecker().check("Answer: 3.14", "3.1416")
    with pytest.raises(ValueError, match="numeric reference"):
        NumericChecker().check("5", "five")
    with pytest.raises(ValueError, match="rel_tol"):
        NumericChecker(rel_tol=-1.0)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("the Eiffel  tower", True),
        ("EIFFEL TOWER!", True),
        ("It must be...\nAnswer: **The Eiffel Tower**.", True),
        ("\\boxed{eiffel tower}", True),
        ("“Eiffel” Tower", True),
        ("The Eiffel Tower is in Paris", False),
        ("Louvre", False),
        ("", False),
    ],
)
def test_string_checker_normalisation(prediction: str, expected: bool) -> None:
    assert StringChecker().check(prediction, "Eiffel Tower") is expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Answer: (B)", True),
        ("B. 42 legs", True),
        ("the answer is b", True),
        ("The correct option is B, since 4 > 3.", True),
        ("\\boxed{B}", True),
        ("(b)", True),
        ("Looking at (A) and (B)... Answer: C", False),
        ("A. 3\nB. 4", False),
        ("the answer is a dog", False),
        ("Answer: (E)", False),
        ("", False),
    ],
)
def test_multiple_choice_checker_variants(prediction: str, expected: bool) -> None:
    assert MultipleChoiceChecker("ABCD").check(prediction, "B") is expected


def test_multiple_choice_checker_validation() -> None:
    assert MultipleChoiceChecker("abcde").check("Answer: E", "(e)")
    assert choice_letter("Answer: E", "ABCD") is None
    with pytest.raises(ValueError, match="names none"):
        MultipleChoiceChecker("ABCD").check("Answer: A", "E")
    for bad in ("", "AAB", "A1"):
        with pytest.raises(ValueError, match="distinct ASCII letters"):
            MultipleChoiceChecker(bad)


def test_regex_checker_matches_the_whole_stated_answer() -> None:
    checker = RegexChecker()
    pattern = r"(new york|nyc)( city)?"
    assert checker.check("Answer: New York City.", pattern)
    assert checker.check("  nyc ", pattern)
    assert not checker.check("Answer: York", pattern)
    assert not checker.check("I love New York City but the answer is Boston", pattern)
    assert not RegexChecker(flags=re.NOFLAG).check("NYC", pattern)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        checker.check("x", "(unclosed")


def test_callable_checker_requires_a_bool() -> None:
    assert CallableChecker(lambda p, r: p.endswith(r)).check("so 42", "42")
    with pytest.raises(TypeError, match="must return a bool"):
        CallableChecker(lambda p, r: 1.0).check("so 42", "42")  # type: ignore[arg-type, return-value]


# --- rule-based verifiers --------------------------------------------------------------


def test_reference_verifier_scores_one_or_zero() -> None:
    verifier = ReferenceVerifier(MultipleChoiceChecker(), "C")
    assert verifier.score("q", ["Answer: C", "(c)", "Answer: D", "C and D"]).scores == [1.0, 1.0, 0.0, 0.0]


def test_self_consistency_shares() -> None:
    verifier = SelfConsistencyVerifier()
    solutions = ["Answer: 5", "2 + 3 = 5.0", "Answer: 6", "no idea", "\\boxed{5}", "answer: Six."]
    assert verifier.score(QUESTION, solutions).scores == pytest.approx([0.5, 0.5, 1 / 6, 0.0, 0.5, 1 / 6])
    assert verifier.score(QUESTION, ["Answer: 5"]).scores == [LONE_AGREEMENT]
    assert verifier.score(QUESTION, ["no idea"]).scores == [0.0]
    assert verifier.score(QUESTION, ["Answer: Paris", "answer: the paris!"]).scores == [1.0, 1.0]
    by_letter = SelfConsistencyVerifier(extract=choice_letter)
    assert by_letter.score("q", ["Answer: (B)", "b", "A. 3"]).scores == pytest.approx([2 / 3, 2 / 3, 1 / 3])


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf, None, "0.5"])
def test_callable_verifier_validates_results(bad: object) -> None:
    verifier = CallableVerifier(lambda q, s: bad, name="judge")  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match=r"verifier 'judge' returned .* for solution 0"):
        verifier.score("q", ["a"])


def test_callable_verifier_passes_question_and_solution() -> None:
    seen: list[tuple[str, str]] = []

    def judge(question: str, solution: str) -> float:
        seen.append((question, solution))
        return 1.0 if "5" in solution else 0.0

    assert CallableVerifier(judge).score(QUESTION, ["5", "6"]).scores == [1.0, 0.0]
    assert seen == [(QUESTION, "5"), (QUESTION, "6")]


# --- likelihood verifier (real S) ------------------------------------------------------


def test_likelihood_prefers_fluent_correct_answer_to_gibberish(small_lm: LoadedModel) -> None:
    fluent, gibberish = LMLikelihoodVerifier(small_lm).score(QUESTION, ["2 + 3 = 5. Answer: 5", "zq xv 9#&"]).scores
    assert fluent > 10 * gibberish


def test_likelihood_masks_padding_and_prices_the_batch(small_lm: LoadedModel) -> None:
    verifier = LMLikelihoodVerifier(small_lm, CostModel())
    short, long = "Answer: 5", "First, 2 + 3 = 5 because adding three to two gives five. Answer: 5"
    batch = verifier.score(QUESTION, [long, "", short])
    alone = verifier.score(QUESTION, [short])
    assert batch.scores[2] == pytest.approx(alone.scores[0], rel=1e-4)
    assert batch.scores[1] == 0.0
    tokenizer = small_lm.tokenizer
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True
    )
    n_prompt = len(tokenizer(str(prompt), add_special_tokens=False)["input_ids"])
    n_short, n_long = (len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in (short, long))
    assert batch.usage == Usage(
        prompt_tokens=2 * n_prompt + n_short + n_long, tokens_processed=2 * (n_prompt + n_long), forward_passes=1
    )
    assert batch.eflops == verifier.cost_model.eflops(verifier.shape, batch.usage)
    assert verifier.shape.params == small_lm.spec.params


def test_likelihood_chunks_by_batch_size(small_lm: LoadedModel) -> None:
    solutions = ["Answer: 5", "It is 5.", "Answer: 6"]
    together = LMLikelihoodVerifier(small_lm).score(QUESTION, solutions)
    one_by_one = LMLikelihoodVerifier(small_lm, batch_size=1).score(QUESTION, solutions)
    assert one_by_one.scores == pytest.approx(together.scores, rel=1e-4)
    assert (together.usage.forward_passes, one_by_one.usage.forward_passes) == (1, 3)
    with pytest.raises(ValueError, match="batch_size"):
        LMLikelihoodVerifier(small_lm, batch_size=0)


def test_a_likelihood_judge_given_as_a_loader_loads_on_first_use(small_lm: LoadedModel) -> None:
    calls: list[int] = []

    def load() -> LoadedModel:
        calls.append(1)
        return small_lm

    lazy = LMLikelihoodVerifier(load, name="S")
    assert lazy.name == "likelihood-S"
    assert calls == []  # nothing loaded yet
    assert lazy.score(QUESTION, SOLUTIONS).scores == LMLikelihoodVerifier(small_lm).score(QUESTION, SOLUTIONS).scores
    lazy.score(QUESTION, SOLUTIONS)
    assert calls == [1]
    with pytest.raises(ValueError, match="needs its name"):
        LMLikelihoodVerifier(load)


def test_cross_model_verifiers_let_the_next_larger_rung_judge() -> None:
    registry = ModelRegistry.default()
    judges = verifiers_module.cross_model_verifiers({"M": registry["M"], "S": registry["S"]}, device="cpu")
    assert list(judges) == ["S"]
    assert judges["S"].name == "likelihood-M"
    assert verifiers_module.cross_model_verifiers({"S": registry["S"]}) == {}


# --- embedding verifier (real MiniLM) --------------------------------------------------


def test_embedding_reference_ranks_paraphrase_above_unrelated(embedder: MiniLMEmbedder) -> None:
    verifier = EmbeddingVerifier(embedder, "reference", reference="The capital of France is Paris.")
    paraphrase, unrelated, blank = verifier.score(
        "", ["Paris is the capital city of France.", "I had pasta for lunch.", " "]
    ).scores
    assert paraphrase > 0.8 > 0.3 > unrelated
    assert blank == 0.0


def test_embedding_agreement_scores_the_odd_one_out_lowest(embedder: MiniLMEmbedder) -> None:
    verifier = EmbeddingVerifier(embedder, "agreement")
    solutions = [
        "Two plus three makes five, so the answer is 5.",
        "2 + 3 = 5, so the answer is 5.",
        "The autumn leaves fall softly on the river.",
        "Adding 2 and 3 gives 5.",
    ]
    scores = verifier.score(QUESTION, solutions).scores
    assert min(range(4), key=scores.__getitem__) == 2
    cosines = embedder.embed(solutions) @ embedder.embed(solutions).T
    assert scores == pytest.approx([(row.sum() - 1.0) / 3 for row in cosines], abs=1e-5)
    assert verifier.score(QUESTION, ["Answer: 5"]).scores == [LONE_AGREEMENT]
    assert verifier.score(QUESTION, ["Answer: 5", ""]).scores == [0.0, 0.0]


def test_embedding_cost_counts_tokens(embedder: MiniLMEmbedder) -> None:
    verifier = EmbeddingVerifier(embedder, "reference", reference="five")
    verdicts = verifier.score("", ["Answer: 5", "It is five, I am sure of it."])
    tokenizer = embedder.sentence_transformer.tokenizer  # type: ignore[attr-defined]
    lengths = [len(tokenizer(t)["input_ids"]) for t in ("Answer: 5", "It is five, I am sure of it.", "five")]
    assert verdicts.usage == Usage(prompt_tokens=sum(lengths), tokens_processed=3 * max(lengths), forward_passes=1)
    assert verdicts.eflops == CostModel().eflops(verifier.shape, verdicts.usage)


def test_embedding_verifier_validates_its_mode(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(ValueError, match="needs a non-blank reference"):
        EmbeddingVerifier(embedder, "reference")
    with pytest.raises(ValueError, match="only used with mode='reference'"):
        EmbeddingVerifier(embedder, "agreement", reference="x")
    with pytest.raises(ValueError, match="mode must be"):
        EmbeddingVerifier(embedder, "cosine")  # type: ignore[arg-type]


# --- combining -------------------------------------------------------------------------


class _Fixed:
    """A stand-in verifier with fixed scores and cost."""

    def __init__(self, name: str, scores: list[float], eflops: float = 0.0):
        self.name = name
        self.scores = scores
        self.eflops = eflops

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        return Verdicts(list(self.scores), self.eflops, Usage(tokens_processed=int(self.eflops)))


class _Broken:
    name = "broken"

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        raise RuntimeError("reward server down")


def test_weighted_verifier_averages_and_sums_cost() -> None:
    verifier = combine(_Fixed("a", [1.0, 0.0], eflops=10.0), _Fixed("b", [0.0, 0.5], eflops=5.0), weights=[3, 1])
    verdicts = verifier.score("q", ["x", "y"])
    assert verdicts.scores == pytest.approx([0.75, 0.125])
    assert verdicts.eflops == 15.0
    assert verdicts.usage == Usage(tokens_processed=15)
    assert verifier.name == "a+b"


def test_weighted_verifier_degrades_on_a_failing_verifier(caplog: pytest.LogCaptureFixture) -> None:
    verifier = combine(_Fixed("a", [1.0, 0.2], eflops=4.0), _Broken(), _Fixed("c", [0.0, 0.6]), weights=[1, 5, 3])
    with caplog.at_level(logging.WARNING, logger=verifiers_module.__name__):
        verdicts = verifier.score("q", ["x", "y"])
    assert verdicts.scores == pytest.approx([0.25, 0.5])
    assert verdicts.eflops == 4.0
    assert any("broken" in r.getMessage() and "reward server down" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_weighted_verifier_drops_a_verifier_with_the_wrong_number_of_scores(caplog: pytest.LogCaptureFixture) -> None:
    verifier = combine(_Fixed("short", [1.0]), _Fixed("ok", [0.4, 0.8]))
    with caplog.at_level(logging.WARNING, logger=verifiers_module.__name__):
        assert verifier.score("q", ["x", "y"]).scores == pytest.approx([0.4, 0.8])
    assert "short" in caplog.text


def test_weighted_verifier_raises_when_every_verifier_fails() -> None:
    with pytest.raises(UniScaleError, match="every verifier") as info:
        combine(_Broken(), _Broken()).score("q", ["x"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_weighted_verifier_validates_weights() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine()
    with pytest.raises(ValueError, match="2 weights for 1"):
        combine(_Broken(), weights=[1, 2])
    for bad in ([0.0], [-1.0], [math.inf]):
        with pytest.raises(ValueError, match="finite and positive"):
            combine(_Broken(), weights=bad)
