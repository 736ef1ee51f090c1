"""The store records the context representation its policy was fitted with, and never mixes two."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from store_support import HashEmbedder, make_engine, real_encoder, state_hash

from uniscale_integrations import Config, UniScale
from uniscale_integrations.errors import StoreRepresentationError
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.features.query import as_messages, query_record, record_messages
from uniscale_integrations.store.sqlite import SQLiteStore

QUESTIONS = ["What is 12 * 7?", "Name a prime above 90.", "Spell 'cat' backwards.", "How many legs do 3 ants have?"]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 9 + 10?"}]


def _learn(engine: UniScale, queries: Sequence[str | list[dict[str, str]]]) -> None:
    for i, query in enumerate(queries):
        result = engine.run(query)
        engine.feedback(result.decision_id, correct=float(i % 2))


def _meta(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'representation'").fetchone()
    return row[0] if row is not None else None


class PCAEncoder(QueryEncoder):
    projection = "pca"


def test_the_representation_is_named_after_the_encoder_settings() -> None:
    assert QueryEncoder().representation == "minilm-l6-static/random16/seed0+cheap4"
    assert QueryEncoder(MiniLMEmbedder(), dim=16, seed=3).representation == "minilm-l6/random16/seed3+cheap4"
    assert QueryEncoder(dim=0).representation == "minilm-l6-static/none+cheap4"
    assert QueryEncoder(HashEmbedder(), dim=8).representation == "HashEmbedder32/random8/seed0+cheap4"
    assert PCAEncoder().representation == "minilm-l6-static/pca16/seed0+cheap4"


@pytest.mark.parametrize("query", ["What is 2 + 2?", '[{"role": "user", "content": "hi"}]', CHAT])
def test_a_query_record_reads_back_as_its_chat(query: str | list[dict[str, str]]) -> None:
    messages = as_messages(query)
    assert record_messages(query_record(messages)) == messages


def test_another_representation_is_refused_and_the_store_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    with make_engine(path) as engine:
        _learn(engine, QUESTIONS * 2)
        before = state_hash(engine.bandit)
    assert _meta(path) == "HashEmbedder32/random8/seed0+cheap4"

    other = QueryEncoder(HashEmbedder(), dim=8, seed=1)  # same context size: only the record tells them apart
    with pytest.raises(StoreRepresentationError) as refused:
        make_engine(path, encoder=other)
    message = str(refused.value)
    assert "'HashEmbedder32/random8/seed0+cheap4'" in message
    assert "'HashEmbedder32/random8/seed1+cheap4'" in message
    assert "open a new store" in message
    assert "8 of its 8 decisions kept only their query's hash" in message  # why a refit cannot help here
    assert _meta(path) == "HashEmbedder32/random8/seed0+cheap4"
    with make_engine(path) as again:
        assert state_hash(again.bandit) == before
        assert again.store.counts()["feedback"] == 8


def test_a_store_without_decisions_takes_the_new_representation(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    make_engine(path).close()
    with make_engine(path, encoder=QueryEncoder(HashEmbedder(), dim=4)) as engine:
        _learn(engine, QUESTIONS)
    assert _meta(path) == "HashEmbedder32/random4/seed0+cheap4"


def test_a_store_that_recorded_none_records_the_current_one(tmp_path: Path) -> None:
    """A store made before representations were recorded is taken to be in the opening engine's."""
    path = tmp_path / "policy.db"
    with make_engine(path) as engine:
        _learn(engine, QUESTIONS)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'representation'")
    with make_engine(path) as engine:
        assert engine.bandit.n_updates == len(QUESTIONS)
    assert _meta(path) == "HashEmbedder32/random8/seed0+cheap4"
    with pytest.raises(StoreRepresentationError):
        make_engine(path, encoder=QueryEncoder(HashEmbedder(), dim=8, seed=2))


def test_refit_reencodes_every_logged_query_with_the_new_encoder(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    queries: list[str | list[dict[str, str]]] = [*QUESTIONS, CHAT, *QUESTIONS[:2]]
    with make_engine(SQLiteStore(path, keep_queries=True), encoder=real_encoder(), snapshot_every=2) as engine:
        _learn(engine, queries)
        pending = engine.run("Left without feedback: what is 1 + 1?")

    wider = QueryEncoder(real_encoder().embedder, dim=32)
    with pytest.raises(StoreRepresentationError, match="refit_representation=True"):
        make_engine(SQLiteStore(path, keep_queries=True), encoder=wider)
    with make_engine(SQLiteStore(path, keep_queries=True), encoder=wider, refit_representation=True) as engine:
        assert _meta(path) == "minilm-l6-static/random32/seed0+cheap4"
        assert engine.bandit.dim == engine.space.features().shape[1] * wider.context_dim
        assert engine.bandit.n_updates == len(queries)
        assert state_hash(engine.bandit) == state_hash(engine.rebuild())  # no stale snapshot was resumed
        exported = {d["id"]: d for d in engine.store.export()["decisions"]}
        for decision in exported.values():
            query = decision["query"]
            expected = engine.features(record_messages(query)).context
            np.testing.assert_allclose(decision["context"], expected, atol=1e-6)
        assert pending.decision_id in exported  # pending decisions are re-encoded too
        engine.feedback(pending.decision_id, correct=True)  # and take their feedback in the new representation
        assert engine.bandit.n_updates == len(queries) + 1
        engine.run("What is 3 * 3?", config=Config("S"))


def test_refit_needs_every_query_kept(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    with make_engine(path) as engine:
        _learn(engine, QUESTIONS)
    with pytest.raises(StoreRepresentationError, match="4 of its 4 decisions kept only their query's hash"):
        make_engine(
            SQLiteStore(path, keep_queries=True), encoder=QueryEncoder(HashEmbedder(), dim=4), refit_representation=True
        )
    assert _meta(path) == "HashEmbedder32/random8/seed0+cheap4"


def test_an_export_of_another_representation_is_not_imported(tmp_path: Path) -> None:
    with make_engine(tmp_path / "a.db") as engine:
        _learn(engine, QUESTIONS)
        engine.export_json(tmp_path / "a.json")
    with make_engine(tmp_path / "b.db", encoder=QueryEncoder(HashEmbedder(), dim=8, seed=5)) as other:
        with pytest.raises(StoreRepresentationError, match="seed0"):
            other.import_json(tmp_path / "a.json")
        assert other.store.counts()["decisions"] == 0
    with make_engine(tmp_path / "c.db") as same:
        assert same.import_json(tmp_path / "a.json") == len(QUESTIONS)
