"""Verifiers score a question's candidate solutions in [0, 1]; answer checkers decide Correct.

A :class:`Verifier` scores a batch of solutions (complete, or unfinished prefixes when a
step-level beam search asks with ``partial=True``) and reports the work it did, priced in
eFLOPs like generation (method.md, section 4: the verifier's own work is part of the cost).

- :class:`SelfConsistencyVerifier`: share of the solutions with the same final answer (free);
- :class:`ReferenceVerifier`: 1/0 from an :class:`AnswerChecker` and a known reference (free);
- :class:`CallableVerifier`: a user's ``fn(question, solution) -> float`` (not priced);
- :class:`LMLikelihoodVerifier`: ``exp(mean token log-prob)`` under a causal LM (one pass);
- :class:`EmbeddingVerifier`: sentence-embedding cosine to a reference text, or to the
  other candidates (one pass);
- :class:`WeightedVerifier` (see :func:`combine`): weighted mean of several, their costs added.

Self-consistency is the cheap, strong default on small models. No reward model,
process reward model or cross-encoder ships offline with bundled weights (none was found
on PyPI, see offline-stack.md), so none is offered here; a user's own scorer plugs in
through :class:`CallableVerifier` or any class with the :class:`Verifier` protocol.

Answer checkers (``check(prediction, reference) -> bool``) take a whole solution text
as the prediction and find its final answer themselves: :class:`NumericChecker`,
:class:`StringChecker`, :class:`MultipleChoiceChecker`, :class:`RegexChecker`,
:class:`CallableChecker`.

>>> verifier = combine(SelfConsistencyVerifier(), ReferenceVerifier(NumericChecker(), "5"), weights=[1, 3])
>>> verifier.score("What is 2 + 3?", ["Answer: 5", "It is 5.", "Answer: 6"]).scores
[0.9166666666666666, 0.9166666666666666, 0.08333333333333333]
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from uniscale_integrations.answers import (
    canonical_answer,
    choice_letter,
    extract_answer,
    math_value,
    normalize_text,
    numbers_equal,
    same_answer,
    stated_answer,
)
from uniscale_integrations.errors import UniScaleError
from uniscale_integrations.features.joint import FloatArray
from uniscale_integrations.reward.cost import CostModel, ModelShape, Shaped, Usage

if TYPE_CHECKING:
    from uniscale_integrations.models import LoadedModel, ModelSpec

logger = logging.getLogger(__name__)

LONE_AGREEMENT = 0.5
"""Agreement score of a solution with no other candidate to agree with: no evidence either way."""

MINILM_SHAPE = ModelShape(params=10_794_624, n_layers=6, kv_dim=384)
"""all-MiniLM-L6-v2 as the cost model sees it: of its 22.7M parameters, the 10.8M multiplied
per token (its 11.9M embedding-table entries are looked up, not multiplied; the ladder's
``ModelSpec.params`` counts the same way). An encoder keeps no KV cache."""

_ST_BATCH = 32
"""sentence-transformers' default ``encode`` batch size, for counting padded tokens."""


@dataclass(frozen=True)
class Verdicts:
    """Scores of a batch of solutions, and what computing them cost."""

    scores: list[float]
    """One per solution, each in [0, 1]."""
    eflops: float = 0.0
    """The verifier's own work, priced (0 for rule-based verifiers)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens the verifier processed (zeros for rule-based verifiers)."""

    def __post_init__(self) -> None:
        bad = [s for s in self.scores if not (isinstance(s, float) and 0.0 <= s <= 1.0)]
        if bad:
            raise ValueError(f"verifier scores must be floats in [0, 1], got {bad[:3]!r}")
        if not (math.isfinite(self.eflops) and self.eflops >= 0):
            raise ValueError(f"eflops must be finite and non-negative, got {self.eflops!r}")


class Verifier(Protocol):
    """Scores solutions to a question in [0, 1], one forward pass for the batch where it can.

    ``partial=True`` says the solutions are unfinished prefixes; an empty batch gives
    empty verdicts; the same call gives the same scores.
    """

    name: str

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts: ...


class AnswerChecker(Protocol):
    """Decides whether a prediction (a final answer or a whole solution) matches a reference."""

    def check(self, prediction: str, reference: str) -> bool: ...


# --- answer checkers -------------------------------------------------------------------


@dataclass(frozen=True)
class NumericChecker:
    """The final numbers agree within ``rel_tol`` (and 1e-9 absolute), whatever the formatting.

    Both sides go through :func:`extract_answer`, so commas, ``$``, trailing zeros, a
    ``\\boxed{}`` or an "Answer:" line do not matter; answers that are more than a number
    (fractions, LaTeX, an equation) are compared by value with ``math-verify``
    (:func:`same_answer`). A reference with no number in it is a ``ValueError``.

    >>> checker = NumericChecker()
    >>> [checker.check(p, "1250") for p in ["Answer: $1,250.00", "\\\\boxed{1250}", "so 1250.5", ""]]
    [True, True, False, False]
    >>> NumericChecker(rel_tol=0.01).check("3.14", "3.1416"), checker.check("Answer: \\\\frac{1}{2}", "0.5")
    (True, True)
    """

    rel_tol: float = 1e-6

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rel_tol) and self.rel_tol >= 0):
            raise ValueError(f"rel_tol must be finite and non-negative, got {self.rel_tol!r}")

    def check(self, prediction: str, reference: str) -> bool:
        expected = extract_answer(reference)
        if expected is None or (not _is_number(expected) and math_value(expected) is None):
            raise ValueError(f"NumericChecker needs a numeric reference, got {reference!r}")
        predicted = extract_answer(prediction)
        if predicted is None:
            return False
        if _is_number(predicted) and _is_number(expected):
            return numbers_equal(predicted, expected, self.rel_tol)
        return same_answer(predicted, expected)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class StringChecker:
    """The stated answer equals the reference after :func:`normalize_text`.

    Normalisation ignores case, punctuation, the articles a/an/the and spacing. The
    prediction's stated answer (``\\boxed{}`` or "Answer: ...") is compared when it has one,
    else its whole text.

    >>> checker = StringChecker()
    >>> [checker.check(p, "Eiffel Tower") for p in ["the eiffel tower.", "Answer: **The Eiffel Tower**", "Louvre"]]
    [True, True, False]
    """

    def check(self, prediction: str, reference: str) -> bool:
        stated = stated_answer(prediction)
        return normalize_text(stated if stated is not None else prediction) == normalize_text(reference)


@dataclass(frozen=True)
class MultipleChoiceChecker:
    """The option the prediction picks (:func:`choice_letter`) is the reference's letter.

    >>> checker = MultipleChoiceChecker("ABCD")
    >>> [checker.check(p, "B") for p in ["Answer: (B)", "B. 42", "the answer is b", "(C)", "A. 3\\nB. 4"]]
    [True, True, True, False, False]
    """

    choices: str = "ABCD"

    def __post_init__(self) -> None:
        letters = self.choices.upper()
        if not letters or not letters.isalpha() or not letters.isascii() or len(set(letters)) != len(letters):
            raise ValueError(f"choices must be distinct ASCII letters, got {self.choices!r}")

    def check(self, prediction: str, reference: str) -> bool:
        expected = choice_letter(reference, self.choices)
        if expected is None:
            raise ValueError(f"reference {reference!r} names none of the choices {self.choices!r}")
        return choice_letter(prediction, self.choices) == expected


@dataclass(frozen=True)
class RegexChecker:
    """The *reference is a regular expression* that must match the whole stated answer.

    The stated answer is the prediction's ``\\boxed{}`` or "Answer: ..." (trailing period
    dropped) if it has one, else its whole text, stripped. ``flags`` apply to every pattern.
    An invalid pattern is a ``ValueError``.

    >>> checker = RegexChecker()
    >>> [checker.check(p, r"(new york|nyc)( city)?") for p in ["Answer: New York City.", "NYC", "York"]]
    [True, True, False]
    """

    flags: re.RegexFlag = re.IGNORECASE

    def check(self, prediction: str, reference: str) -> bool:
        try:
            pattern = re.compile(reference, self.flags)
        except re.error as exc:
            raise ValueError(f"reference {reference!r} is not a valid regular expression: {exc}") from exc
        stated = stated_answer(prediction)
        return pattern.fullmatch(stated if stated is not None else prediction.strip()) is not None


@dataclass(frozen=True)
class CallableChecker:
    """A user's ``fn(prediction, reference) -> bool``; any other return type is a ``TypeError``.

    >>> CallableChecker(lambda p, r: r in p).check("it is 42", "42")
    True
    """

    fn: Callable[[str, str], bool]

    def check(self, prediction: str, reference: str) -> bool:
        result = self.fn(prediction, reference)
        if not isinstance(result, bool | np.bool_):
            raise TypeError(f"checker {self.fn!r} must return a bool, got {result!r}")
        return bool(result)


# --- rule-based verifiers --------------------------------------------------------------


class ReferenceVerifier:
    """Scores 1.0 where ``checker`` accepts a solution against the known ``reference``, else 0.0.

    Partial solutions are checked as they stand, so a prefix scores 0 until it states the
    answer.

    >>> ReferenceVerifier(NumericChecker(), "12").score("3 * 4?", ["Answer: 12", "Answer: 13"]).scores
    [1.0, 0.0]
    """

    def __init__(self, checker: AnswerChecker, reference: str, name: str | None = None):
        self.checker = checker
        self.reference = reference
        self.name = name or f"reference-{type(checker).__name__}"

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        return Verdicts([1.0 if self.checker.check(s, self.reference) else 0.0 for s in solutions])


class SelfConsistencyVerifier:
    """Answer-level agreement: the share of all solutions whose final answer equals this one's.

    Answers come from ``extract`` (default :func:`extract_answer`) and compare under
    :func:`canonical_answer` (numbers by value, text normalised). A solution without an
    answer scores 0 and still counts in the share's denominator; a lone solution with an
    answer scores :data:`LONE_AGREEMENT`. Partial solutions are compared on what they
    state so far (:func:`extract_answer` falls back to the last number written).

    >>> SelfConsistencyVerifier().score("2 + 3?", ["Answer: 5", "so 5.0", "Answer: 6", "no idea"]).scores
    [0.5, 0.5, 0.25, 0.0]
    """

    name = "self-consistency"

    def __init__(self, extract: Callable[[str], str | None] = extract_answer):
        self.extract = extract

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        keys = [None if (answer := self.extract(s)) is None else canonical_answer(answer) for s in solutions]
        if len(keys) == 1:
            return Verdicts([0.0 if keys[0] is None else LONE_AGREEMENT])
        counts = Counter(keys)
        return Verdicts([0.0 if key is None else counts[key] / len(keys) for key in keys])


class CallableVerifier:
    """A user's ``fn(question, solution) -> float``, called per solution; its work is not priced.

    A result that is not a finite number in [0, 1] is a ``ValueError`` naming the verifier.

    >>> CallableVerifier(lambda q, s: min(1.0, len(s) / 10), name="length").score("q", ["abcde"]).scores
    [0.5]
    """

    def __init__(self, fn: Callable[[str, str], float], name: str = "callable"):
        self.fn = fn
        self.name = name

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        scores: list[float] = []
        for i, solution in enumerate(solutions):
            value = self.fn(question, solution)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(
                    f"verifier {self.name!r} returned {value!r} for solution {i}: expected a finite number in [0, 1]"
                )
            scores.append(float(value))
        return Verdicts(scores)


# --- model-based verifiers -------------------------------------------------------------


class LMLikelihoodVerifier:
    """``exp(mean token log-prob)`` of each solution as the assistant's reply to the question.

    The question is rendered with the model's chat template as a user turn (with the
    generation prompt), the solution's tokens follow, and only those are scored (on S,
    "2 + 3 = 5. Answer: 5" scores ~0.2 and "zq xv 9#&" ~5e-4). Solutions are right-padded and
    run ``batch_size`` at a time, shortest first (one forward pass for up to
    ``batch_size`` solutions), keeping logits for the solution positions only. A solution
    with no tokens scores 0; solutions are cut to fit the model's context. ``partial``
    changes nothing: a mean log-prob is already a per-token score of a prefix.
    eFLOPs price every position computed, padding included, with ``cost_model`` (default:
    :meth:`CostModel.for_device` of the model's device). ``loaded`` may be a loader, called on
    first use (``name`` then names the model).
    """

    def __init__(
        self,
        loaded: LoadedModel | Callable[[], LoadedModel],
        cost_model: CostModel | None = None,
        *,
        batch_size: int = 16,
        name: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if callable(loaded) and name is None:
            raise ValueError("a model loaded on first use needs its name")
        self._loaded = loaded
        self._cost_model = cost_model
        self.batch_size = batch_size
        self.name = f"likelihood-{name if name is not None else loaded.spec.name}"  # type: ignore[union-attr]

    @property
    def loaded(self) -> LoadedModel:
        """The scoring model (loaded on first use when given as a loader)."""
        if callable(self._loaded):
            self._loaded = self._loaded()
        return self._loaded

    @property
    def cost_model(self) -> CostModel:
        return self._cost_model if self._cost_model is not None else CostModel.for_device(self.loaded.device)

    @property
    def shape(self) -> Shaped:
        return self.loaded.spec

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        tokenizer = self.loaded.tokenizer
        chat = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt_ids: list[int] = tokenizer(str(prompt), add_special_tokens=False)["input_ids"]
        room = max(0, self.loaded.spec.context_length - len(prompt_ids))
        bodies: list[list[int]] = [tokenizer(s, add_special_tokens=False)["input_ids"][:room] for s in solutions]
        order = sorted((i for i, body in enumerate(bodies) if body), key=lambda i: len(bodies[i]))
        scores = [0.0] * len(solutions)
        usage = Usage()
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            for i, value in zip(rows, self._mean_logprobs(prompt_ids, [bodies[i] for i in rows]), strict=True):
                scores[i] = min(1.0, math.exp(value))
            width = len(prompt_ids) + len(bodies[rows[-1]])
            usage += Usage(
                prompt_tokens=sum(len(prompt_ids) + len(bodies[i]) for i in rows),
                tokens_processed=len(rows) * width,
                forward_passes=1,
            )
        return Verdicts(scores, self.cost_model.eflops(self.shape, usage), usage)

    def _mean_logprobs(self, prompt_ids: list[int], bodies: list[list[int]]) -> list[float]:
        """Mean log-prob of each body after the prompt, in one right-padded forward pass."""
        import torch

        n_prompt, longest = len(prompt_ids), max(len(body) for body in bodies)
        pad = self.loaded.tokenizer.pad_token_id or 0
        ids = torch.full((len(bodies), n_prompt + longest), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, body in enumerate(bodies):
            ids[row, : n_prompt + len(body)] = torch.tensor(prompt_ids + body)
            mask[row, : n_prompt + len(body)] = 1
        ids, mask = ids.to(self.loaded.device), mask.to(self.loaded.device)
        with torch.inference_mode():
            # logits of positions n_prompt - 1 .. end - 1 predict the body tokens
            out = self.loaded.model(input_ids=ids, attention_mask=mask, logits_to_keep=longest + 1)
            logits = out.logits[:, :-1].float()
            targets = ids[:, n_prompt:]
            logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            body_mask = mask[:, n_prompt:].to(logprobs.dtype)
            means = (logprobs * body_mask).sum(dim=1) / body_mask.sum(dim=1)
        return [float(m) for m in means.cpu()]


def cross_model_verifiers(
    specs: Mapping[str, ModelSpec], *, device: str | None = None, cost_model: CostModel | None = None
) -> dict[str, Verifier]:
    """Each rung's candidates scored by the next larger rung's log-likelihood
    (:class:`LMLikelihoodVerifier`, loaded on first use); the largest rung scores itself.

    The judge is a stronger model than the writer, yet reads the solution in one prefill (no
    decoding); its work is charged in eFLOPs like any verifier's.
    """
    from uniscale_integrations.models import load_model

    ladder = sorted(specs.values(), key=lambda spec: spec.params)
    return {
        writer.name: LMLikelihoodVerifier(functools.partial(load_model, judge, device), cost_model, name=judge.name)
        for writer, judge in itertools.pairwise(ladder)
    }


class SentenceEmbedder(Protocol):
    """A text embedder backed by a sentence-transformers model (e.g. ``MiniLMEmbedder``)."""

    def embed(self, texts: Sequence[str]) -> FloatArray: ...

    @property
    def sentence_transformer(self) -> object: ...


class EmbeddingVerifier:
    """Sentence-embedding cosine similarity, clipped to [0, 1] (negative cosines score 0).

    ``mode="reference"``: each solution's cosine to ``reference`` (the question is not
    used). ``mode="agreement"``: each solution's mean cosine to the other candidates; a
    lone solution scores :data:`LONE_AGREEMENT`. Empty (blank) solutions are not embedded:
    they score 0 and count as 0 in the others' means. All texts go to the embedder in one
    call; ``partial`` changes nothing. eFLOPs price the tokens embedded (counted with the
    embedder's tokenizer, padded per batch of 32 as sentence-transformers does) with
    ``shape`` (default :data:`MINILM_SHAPE`). Embeddings tell paraphrases apart from
    unrelated text, not right arithmetic from wrong (offline-stack.md).
    """

    def __init__(
        self,
        embedder: SentenceEmbedder,
        mode: Literal["reference", "agreement"] = "reference",
        reference: str | None = None,
        *,
        cost_model: CostModel | None = None,
        shape: Shaped = MINILM_SHAPE,
    ):
        if mode not in ("reference", "agreement"):
            raise ValueError(f"mode must be 'reference' or 'agreement', got {mode!r}")
        if mode == "reference" and not (reference and reference.strip()):
            raise ValueError("mode='reference' needs a non-blank reference text")
        if mode == "agreement" and reference is not None:
            raise ValueError("a reference is only used with mode='reference'")
        self.embedder = embedder
        self.mode = mode
        self.reference = reference
        self.cost_model = cost_model if cost_model is not None else CostModel()
        self.shape = shape
        self.name = f"embedding-{mode}"

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        filled = [i for i, s in enumerate(solutions) if s.strip()]
        if not filled:
            return Verdicts([0.0] * len(solutions))
        if self.reference is None and len(solutions) == 1:
            return Verdicts([LONE_AGREEMENT])
        texts = [solutions[i] for i in filled]
        if self.reference is not None:
            texts.append(self.reference)
        embedded = self.embedder.embed(texts)
        vectors = np.zeros((len(solutions), embedded.shape[1]))
        vectors[filled] = embedded[: len(filled)]
        if self.reference is not None:
            cosines = vectors @ embedded[-1]
        else:
            similarity = vectors @ vectors.T
            np.fill_diagonal(similarity, 0.0)
            cosines = similarity.sum(axis=1) / (len(solutions) - 1)
        usage = embedding_usage(self.embedder, texts)
        scores = [float(c) for c in np.clip(cosines, 0.0, 1.0)]
        return Verdicts(scores, self.cost_model.eflops(self.shape, usage), usage)


def embedding_usage(embedder: SentenceEmbedder, texts: Sequence[str]) -> Usage:
    """The work of embedding ``texts`` in one call: tokens counted with the embedder's tokenizer,
    padded per batch of 32 as sentence-transformers does."""
    model: Any = embedder.sentence_transformer
    encoded = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
    lengths = sorted((len(ids) for ids in encoded["input_ids"]), reverse=True)
    batches = [lengths[i : i + _ST_BATCH] for i in range(0, len(lengths), _ST_BATCH)]
    return Usage(
        prompt_tokens=sum(lengths),
        tokens_processed=sum(batch[0] * len(batch) for batch in batches),
        forward_passes=len(batches),
    )


# --- combining -------------------------------------------------------------------------


class WeightedVerifier:
    """The weighted mean of several verifiers' scores; their eFLOPs and usage add up.

    A verifier that raises (or returns the wrong number of scores) is logged as a
    warning and left out, and the others' weights are renormalised: a failing verifier
    degrades the score, it does not stop the search. Only when every verifier fails is
    a :class:`~uniscale_integrations.errors.UniScaleError` raised.

    >>> def broken(question: str, solution: str) -> float:
    ...     raise RuntimeError("offline")
    >>> combine(SelfConsistencyVerifier(), CallableVerifier(broken)).score("q", ["4", "4"]).scores
    [1.0, 1.0]
    """

    def __init__(self, verifiers: Sequence[Verifier], weights: Sequence[float] | None = None):
        if not verifiers:
            raise ValueError("WeightedVerifier needs at least one verifier")
        weights = [1.0] * len(verifiers) if weights is None else [float(w) for w in weights]
        if len(weights) != len(verifiers):
            raise ValueError(f"{len(weights)} weights for {len(verifiers)} verifiers")
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f"weights must be finite and positive, got {weights!r}")
        self.verifiers = list(verifiers)
        self.weights = weights
        self.name = "+".join(v.name for v in self.verifiers)

    def score(self, question: str, solutions: Sequence[str], *, partial: bool = False) -> Verdicts:
        total = np.zeros(len(solutions))
        weight_used = eflops = 0.0
        usage = Usage()
        failures = []
        for verifier, weight in zip(self.verifiers, self.weights, strict=True):
            try:
                verdicts = verifier.score(question, solutions, partial=partial)
                if len(verdicts.scores) != len(solutions):
                    raise ValueError(f"{len(verdicts.scores)} scores for {len(solutions)} solutions")
            except Exception as exc:  # a verifier must degrade the score, not crash the search
                logger.warning("verifier %r failed, scoring without it: %r", verifier.name, exc)
                failures.append(exc)
                continue
            total += weight * np.asarray(verdicts.scores)
            weight_used += weight
            eflops += verdicts.eflops
            usage += verdicts.usage
        if len(failures) == len(self.verifiers):
            raise UniScaleError(f"every verifier of {self.name!r} failed") from failures[-1]
        return Verdicts([float(s) for s in np.clip(total / weight_used, 0.0, 1.0)], eflops, usage)


def combine(*verifiers: Verifier, weights: Sequence[float] | None = None) -> WeightedVerifier:
    """A :class:`WeightedVerifier` over ``verifiers`` (equal weights by default)."""
    return WeightedVerifier(verifiers, weights)
