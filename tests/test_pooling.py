"""Free-form replies pooled by meaning: MeaningPool's mechanics, and the executor on the RAG
examples the LlamaIndex tests use, with the real S model and the real MiniLM."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from uniscale_integrations import Config, UniScale
from uniscale_integrations.executor.pooling import MeaningPool
from uniscale_integrations.reward.cost import Usage

DOCUMENTS = [
    "The lighthouse on Gull Island is kept by a woman named Marta Okafor.",
    "The Gull Island ferry leaves the harbour every morning at 7 o'clock.",
    "Gull Island has about 300 residents and one bakery.",
    "The island's bakery is famous for its rye bread.",
]


class _Axes:
    """Embeds a text as the unit vector of the axis its first word names (a collaborator fake)."""

    sentence_transformer = None
    dim = 3

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        axes = {"x": [1.0, 0.0, 0.0], "xy": [0.8, 0.6, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}
        return np.asarray([axes[t.split()[0]] for t in texts])


def test_links_are_transitive_and_blank_replies_stand_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("uniscale_integrations.executor.pooling.embedding_usage", lambda embedder, texts: Usage())
    pool = MeaningPool(_Axes(), threshold=0.6)  # type: ignore[arg-type]
    # x ~ xy (0.8) and xy ~ y (0.6): one group through xy, though x and y are orthogonal.
    assert pool.group(["x a", "y b", "xy c", "z d", "  "]).labels == [0, 0, 0, 1, 2]
    assert pool.group(["x a", "z b"], same=["5", "5"]).labels == [0, 0]
    with pytest.raises(ValueError, match="2 keys for 1 replies"):
        pool.group(["x a"], same=["1", "2"])
    with pytest.raises(ValueError, match="threshold"):
        MeaningPool(_Axes(), threshold=0.0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine() -> Iterator[UniScale]:
    with UniScale.from_defaults(models=("S",), qp=(1,), cp=(4,), max_new_tokens=64, seed=0) as engine:
        yield engine


def _rag(question: str) -> str:
    context = "\n".join(DOCUMENTS)
    return f"Context information is below.\n{context}\nAnswer the query using the context.\nQuery: {question}\nAnswer:"


def test_the_plain_style_pools_rag_replies_by_meaning(engine: UniScale) -> None:
    assert engine.executor.meaning is not None  # the default style is "plain"
    result = engine.run(_rag("Who keeps the lighthouse on Gull Island?"), config=Config("S", cp=4), seed=1)
    keys = Counter(p.key for p in result.paths if p.finished)
    assert all(k is not None and k.startswith("meaning-") for k in keys)
    assert "Marta Okafor" in result.text
    assert result.answer == result.text  # a free-form answer is the reply itself, not a number read out of it
    winners = [p for p in result.paths if p.key == max(keys, key=keys.__getitem__)]
    assert len(winners) >= 3
    assert all("Marta Okafor" in p.text for p in winners)


def test_a_wrong_reply_is_outvoted_by_the_replies_that_agree(engine: UniScale) -> None:
    result = engine.run(_rag("When does the ferry leave?"), config=Config("S", cp=4), seed=1)
    groups = {p.key for p in result.paths if p.finished}
    assert len(groups) >= 2  # the S model wanders off on some candidates
    winner_key = next(p.key for p in result.paths if p.text == result.text)
    backers = [p for p in result.paths if p.key == winner_key]
    assert len(backers) >= 2
    assert all("7" in p.text for p in backers)


def test_pooling_by_meaning_is_priced(engine: UniScale) -> None:
    question = _rag("How many residents does Gull Island have?")
    pooled = engine.executor.execute([{"role": "user", "content": question}], Config("S", cp=4), seed=1)
    pool, engine.executor.meaning = engine.executor.meaning, None
    try:
        plain = engine.executor.execute([{"role": "user", "content": question}], Config("S", cp=4), seed=1)
    finally:
        engine.executor.meaning = pool
    assert [p.text for p in pooled.paths] == [p.text for p in plain.paths]
    assert pool is not None
    embedded = pool.group([p.text for p in pooled.paths if p.finished])
    assert embedded.eflops > 0
    assert pooled.pooling_eflops == pytest.approx(embedded.eflops)
    assert pooled.eflops == pytest.approx(plain.eflops + embedded.eflops)
    assert pooled.usage == plain.usage  # the tokens reported are the generation's
