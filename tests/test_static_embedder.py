"""The static distillation of MiniLM: the query encoder's fast model, its cache, and how one chooses it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from store_support import make_engine

from uniscale_integrations.cli import build_parser
from uniscale_integrations.defaults import Defaults
from uniscale_integrations.errors import StoreRepresentationError
from uniscale_integrations.features import static
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.features.static import StaticMiniLMEmbedder
from uniscale_integrations.serve.command import settings_of
from uniscale_integrations.serve.settings import ServeSettings
from uniscale_integrations.store.sqlite import SQLiteStore

TEXTS = [
    "Calculate 12 + 45 + 7.",
    "Calculate 31 + 8 + 66.",
    "All birds are animals. No animals are stones. Can a bird be a stone?",
    "A train leaves at 9:40 and arrives at 11:05. How long is the trip?",
    "Write a poem about autumn leaves falling.",
    "How many legs do 3 spiders and 2 cows have?",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the distilled table (distilled once for the module, about 10 s)."""
    folder = tmp_path_factory.mktemp("static")
    StaticMiniLMEmbedder(cache=folder).embed(["warm up"])
    return folder


def _no_distilling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(embedder: MiniLMEmbedder) -> None:
        raise AssertionError("distilled again")

    monkeypatch.setattr(static, "distill_token_table", refuse)


def test_embeddings_are_unit_norm_and_an_empty_text_is_zero(cache: Path) -> None:
    vectors = StaticMiniLMEmbedder(cache=cache).embed([*TEXTS, ""])
    assert vectors.shape == (len(TEXTS) + 1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors[:-1], axis=1), 1.0, atol=1e-9)
    assert not vectors[-1].any()


def test_it_orders_neighbours_as_minilm_does(cache: Path) -> None:
    fast = StaticMiniLMEmbedder(cache=cache).embed(TEXTS)
    slow = MiniLMEmbedder().embed(TEXTS)
    assert fast[0] @ fast[1] > max(fast[0] @ fast[j] for j in range(2, len(TEXTS)))
    upper = np.triu_indices(len(TEXTS), k=1)
    agreement = np.corrcoef((fast @ fast.T)[upper], (slow @ slow.T)[upper])[0, 1]
    assert agreement > 0.7, agreement


def test_a_second_embedder_reads_the_cached_table(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = StaticMiniLMEmbedder(cache=cache).embed(TEXTS)
    _no_distilling(monkeypatch)
    again = StaticMiniLMEmbedder(cache=cache)
    assert again.cache_file is not None
    assert again.cache_file.parent == cache
    np.testing.assert_array_equal(again.embed(TEXTS), first)


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "pickled"])
def test_a_damaged_cache_file_is_distilled_again_never_used(
    cache: Path, tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = StaticMiniLMEmbedder(cache=cache)
    assert good.cache_file is not None
    table = np.load(good.cache_file)
    distilled: list[MiniLMEmbedder] = []
    monkeypatch.setattr(static, "distill_token_table", lambda embedder: distilled.append(embedder) or table)
    broken = StaticMiniLMEmbedder(cache=tmp_path)
    assert broken.cache_file is not None
    if damage == "truncated":
        broken.cache_file.write_bytes(good.cache_file.read_bytes()[:1000])
    elif damage == "wrong shape":
        np.save(broken.cache_file, table[:10])
    else:
        np.save(broken.cache_file, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with caplog.at_level(logging.WARNING, logger="uniscale_integrations.features.static"):
        vectors = broken.embed(TEXTS)
    assert "distilling it again" in caplog.text
    assert len(distilled) == 1
    np.testing.assert_array_equal(vectors, good.embed(TEXTS))
    np.testing.assert_array_equal(np.load(broken.cache_file), table)  # repaired in place


def test_an_unwritable_cache_keeps_the_table_in_memory(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the cache folder would be")
    table = np.load(StaticMiniLMEmbedder(cache=cache).cache_file)  # type: ignore[arg-type]
    monkeypatch.setattr(static, "distill_token_table", lambda embedder: table)
    with caplog.at_level(logging.WARNING, logger="uniscale_integrations.features.static"):
        vectors = StaticMiniLMEmbedder(cache=blocked / "static").embed(TEXTS)
    assert "stays in memory" in caplog.text
    assert vectors.shape == (len(TEXTS), 384)
    assert blocked.read_text().startswith("a file")
    assert StaticMiniLMEmbedder(cache=None).cache_file is None


def test_it_is_a_representation_of_its_own(cache: Path) -> None:
    fast = QueryEncoder(StaticMiniLMEmbedder(cache=cache))
    assert fast.representation == "minilm-l6-static/random16/seed0+cheap4"
    assert fast.representation == QueryEncoder().representation  # the default
    assert QueryEncoder(MiniLMEmbedder()).representation == "minilm-l6/random16/seed0+cheap4"
    assert fast.encode(TEXTS).shape == (len(TEXTS), fast.context_dim)


def test_a_minilm_store_refits_into_the_static_encoder(cache: Path, tmp_path: Path) -> None:
    """The way to move a policy between the two encoders: a store that kept its queries, refitted."""
    path = tmp_path / "policy.db"
    with make_engine(SQLiteStore(path, keep_queries=True), encoder=QueryEncoder(MiniLMEmbedder())) as engine:
        for i, question in enumerate(TEXTS):
            engine.feedback(engine.run(question).decision_id, correct=float(i % 2))
    fast = QueryEncoder(StaticMiniLMEmbedder(cache=cache))
    with pytest.raises(StoreRepresentationError, match="minilm-l6-static"):
        make_engine(SQLiteStore(path, keep_queries=True), encoder=fast)
    with make_engine(SQLiteStore(path, keep_queries=True), encoder=fast, refit_representation=True) as engine:
        assert engine.bandit.n_updates == len(TEXTS)
        assert engine.encoder.representation == fast.representation


def test_settings_the_cli_and_the_server_choose_it_by_name() -> None:
    assert isinstance(Defaults().build().encoder.embedder, StaticMiniLMEmbedder)
    assert isinstance(Defaults(query_embedder="minilm").build().encoder.embedder, MiniLMEmbedder)
    with pytest.raises(ValueError, match="unknown query embedder 'fast'; choose from static, minilm"):
        Defaults(query_embedder="fast").build()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown query embedder"):
        ServeSettings(query_embedder="fast")
    assert build_parser().parse_args(["ask", "What is 2 + 2?"]).query_embedder == "static"
    args = build_parser().parse_args(["ask", "What is 2 + 2?", "--query-embedder", "minilm"])
    assert args.query_embedder == "minilm"
    served = build_parser().parse_args(["serve", "--query-embedder", "minilm", "--no-warmup"])
    assert settings_of(served).query_embedder == "minilm"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ask", "What is 2 + 2?", "--query-embedder", "fast"])
