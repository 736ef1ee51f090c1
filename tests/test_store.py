"""The policy store in one process: restarts, shared files, space changes, export and import, damage."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from store_support import SPACE, HashEmbedder, make_engine, real_encoder, state_hash

from uniscale_integrations import (
    Config,
    ConfigSpace,
    DuplicateFeedbackError,
    LinUCB,
    UniScale,
    UnknownDecisionError,
)
from uniscale_integrations.errors import StoreCorruptError, StoreError, StoreVersionError
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.store.sqlite import SCHEMA_VERSION, SQLiteStore

QUESTIONS = [
    "What is 17 + 25?",
    "A farmer has 12 sheep and buys 30 more. How many sheep does he have?",
    "Name the capital of France.",
    "Compute 123 * 45.",
    "If a train travels 60 km in 1.5 hours, what is its speed?",
    "Spell the word 'necessary' backwards.",
    "What is the square root of 144?",
    "How many days are there in a leap year?",
]


def _teach(engine: UniScale, n: int, *, good_model: str = "M") -> list[str]:
    """``n`` forced decisions over the space, each answered: right on ``good_model``, wrong elsewhere."""
    configs = list(engine.space)
    ids = []
    for i in range(n):
        config = configs[i % len(configs)]
        result = engine.run(QUESTIONS[i % len(QUESTIONS)], config=config)
        engine.feedback(result.decision_id, correct=config.model == good_model)
        ids.append(result.decision_id)
    return ids


# ----------------------------------------------------------------------------- restarts
def test_state_and_pending_decisions_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    with make_engine(db, snapshot_every=4) as engine:
        _teach(engine, 10)
        pending = [engine.run(q).decision_id for q in QUESTIONS[:3]]
        before = state_hash(engine.bandit)
    with make_engine(db, snapshot_every=4) as engine:
        assert state_hash(engine.bandit) == before  # a snapshot (at 8) and the log's tail (9, 10)
        assert engine.store.counts() == {"decisions": 13, "pending": 3, "feedback": 10}
        for decision_id in pending:
            engine.feedback(decision_id, correct=True)
        with pytest.raises(DuplicateFeedbackError):
            engine.feedback(pending[0], correct=True)
        assert engine.bandit.n_updates == 13
        assert state_hash(engine.bandit) == state_hash(engine.rebuild())


def test_engines_sharing_a_file_see_each_others_feedback(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    with make_engine(db) as first, make_engine(db) as second:
        before = {e.config: e.mean for e in second.explain(QUESTIONS[0])}
        _teach(first, 8)
        after = {e.config: e.mean for e in second.explain(QUESTIONS[0])}  # explain syncs first
        assert second.bandit.n_updates == 8
        assert after != before
        assert state_hash(first.bandit) == state_hash(second.bandit)
        decision = first.run(QUESTIONS[1])  # made by one engine, resolved by the other
        second.feedback(decision.decision_id, correct=True)
        with pytest.raises(DuplicateFeedbackError):
            first.feedback(decision.decision_id, correct=True)
        assert first.sync() == 1
        assert first.bandit.n_updates == 9


def test_an_invalid_snapshot_is_ignored_and_the_log_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "policy.db"
    with make_engine(db, snapshot_every=3) as engine:
        _teach(engine, 6)
        expected = state_hash(engine.bandit)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshots SET theta = zeroblob(length(theta))")
    with caplog.at_level(logging.WARNING), make_engine(db, snapshot_every=3) as engine:
        assert state_hash(engine.bandit) == expected
    assert "invalid policy snapshot" in caplog.text


def test_a_snapshot_is_resumed_only_under_the_shrinkage_it_was_made_with(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    with make_engine(db, snapshot_every=3, shrinkage=16.0) as engine:
        _teach(engine, 7)
        shrunk = state_hash(engine.bandit)
        scale = engine.bandit.ridge_scale.copy()
    assert sorted(set(scale.tolist())) == [1.0, 16.0]
    with make_engine(db, snapshot_every=3, shrinkage=16.0) as engine:
        assert state_hash(engine.bandit) == shrunk  # the snapshot at 6 and the log's last row
        np.testing.assert_array_equal(engine.bandit.ridge_scale, scale)
    with make_engine(db, snapshot_every=3, shrinkage=1.0) as engine:
        assert (engine.bandit.ridge_scale == 1.0).all()
        assert engine.bandit.n_updates == 7
        assert state_hash(engine.bandit) == state_hash(engine.rebuild()) != shrunk
    with pytest.raises(ValueError, match="shrinkage must be > 0"):
        make_engine(None, shrinkage=0.0)


def test_the_oldest_pending_decisions_are_dropped_beyond_max_pending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), make_engine(tmp_path / "policy.db", max_pending=3) as engine:
        ids = [engine.run(q).decision_id for q in QUESTIONS[:5]]
        assert engine.store.counts()["pending"] == 3
        for dropped in ids[:2]:
            assert f"forgetting decision {dropped}" in caplog.text
            with pytest.raises(UnknownDecisionError):
                engine.feedback(dropped, correct=True)
        engine.feedback(ids[4], correct=True)


def test_queries_are_stored_as_hashes_unless_asked(tmp_path: Path) -> None:
    query = "My account number is 12345678; what is 2 + 2?"
    for keep in (False, True):
        db = tmp_path / f"keep-{keep}.db"
        with make_engine(SQLiteStore(db, keep_queries=keep)) as engine:
            engine.run(query)
        with sqlite3.connect(db) as conn:
            stored, digest = conn.execute("SELECT query, query_hash FROM decisions").fetchone()
        assert digest == hashlib.sha256(query.encode()).hexdigest()
        assert stored == (query if keep else None)
        assert (b"12345678" in db.read_bytes()) is keep  # closing checkpointed the WAL into the file


def test_the_store_records_its_schema_and_space(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    make_engine(db).close()
    with sqlite3.connect(db) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    space = json.loads(meta["space"])
    assert space["configs"] == [str(c) for c in SPACE]
    assert space["config_features"] == list(SPACE.feature_names)
    assert space["context_features"][0] == "bias"


def test_a_failed_feedback_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_engine(tmp_path / "policy.db") as engine:
        decision = engine.run(QUESTIONS[0]).decision_id
        before = engine.store.counts()

        class Broken:
            def reward(self, **_: float) -> float:
                raise RuntimeError("reward service down")

        monkeypatch.setattr(engine, "weights", Broken())  # fails inside the feedback transaction
        with pytest.raises(RuntimeError, match="down"):
            engine.feedback(decision, correct=True)
        assert engine.store.counts() == before
        monkeypatch.undo()
        engine.feedback(decision, correct=True)
        assert engine.store.counts()["feedback"] == 1


def test_from_defaults_takes_a_store(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    with UniScale.from_defaults(models=("S", "M"), store=db) as engine:  # nothing loads until used
        assert engine.store.path == str(db)
        assert engine.store.counts() == {"decisions": 0, "pending": 0, "feedback": 0}


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "policy.db")
    engine.close()
    with pytest.raises(StoreError, match="is closed"):
        engine.run(QUESTIONS[0])


# ----------------------------------------------------------------------------- space changes
PROBE = "What is 9 + 33?"


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """A store taught over S and M with the real encoder (M right, S wrong): path, state hash, M's lead on PROBE."""
    db = tmp_path_factory.mktemp("space") / "policy.db"
    with make_engine(db, encoder=real_encoder()) as engine:
        _teach(engine, 32)
        estimates = _means(engine, PROBE)
        return db, state_hash(engine.bandit), estimates[Config("M")][0] - estimates[Config("S")][0]


def _expected_refit(engine: UniScale) -> LinUCB:
    """The log replayed by hand on the configs of ``engine``'s space, features recomputed there."""
    actions = engine.features(QUESTIONS[0]).actions
    configs = [str(c) for c in engine.space]
    data = engine.store.export()
    decisions = {d["id"]: d for d in data["decisions"]}
    bandit = LinUCB(engine.bandit.dim, alpha=engine.bandit.alpha)
    for row in data["feedback"]:
        decision = decisions[row["decision_id"]]
        if decision["config"] in configs:
            x = np.outer(actions[configs.index(decision["config"])], decision["context"]).ravel()
            bandit.update(x, row["reward"])
    return bandit


def _means(engine: UniScale, query: str) -> dict[Config, tuple[float, float]]:
    return {e.config: (e.mean, e.width) for e in engine.explain(query)}


def test_adding_a_model_keeps_what_was_learned(
    taught: tuple[Path, str, float], caplog: pytest.LogCaptureFixture
) -> None:
    db, _, lead = taught
    wider = ConfigSpace.grid(["S", "M", "L"], qp=(1, 2), cp=(1, 4))
    with caplog.at_level(logging.INFO), make_engine(db, space=wider, encoder=real_encoder()) as engine:
        assert "added: L/qp1/cp1/bs1" in caplog.text
        assert engine.bandit.n_updates == 32
        assert state_hash(engine.bandit) == state_hash(_expected_refit(engine))
        estimates = _means(engine, PROBE)
        s, m, new = (estimates[Config(model)] for model in ("S", "M", "L"))
        print(f"M's lead over S: {lead:.3f} before adding L, {m[0] - s[0]:.3f} after")
        assert m[0] - s[0] == pytest.approx(lead, abs=0.05)  # M still beats S by as much as it was taught
        assert new[1] > max(s[1], m[1])  # the new model is the uncertain one


def test_removing_a_model_refits_on_the_rest_and_restoring_it_restores_the_policy(
    taught: tuple[Path, str, float],
) -> None:
    db, original, _ = taught
    only_m = ConfigSpace.grid(["M"], qp=(1, 2), cp=(1, 4))
    with make_engine(db, space=only_m, encoder=real_encoder()) as engine:
        assert engine.bandit.n_updates == 16  # the feedback on M's configs
        assert state_hash(engine.bandit) == state_hash(_expected_refit(engine))
        assert min(mean for mean, _ in _means(engine, PROBE).values()) > 0.5
    with make_engine(db, encoder=real_encoder()) as engine:  # S and M again: the log had kept everything
        assert state_hash(engine.bandit) == original


def test_a_store_made_with_another_encoder_is_refused(taught: tuple[Path, str, float]) -> None:
    db, _, _ = taught
    expected = r"'minilm-l6-static/random16/seed0.*encoder makes 'HashEmbedder32/random4/seed0"
    with pytest.raises(StoreError, match=expected):
        make_engine(db, encoder=QueryEncoder(HashEmbedder(), dim=4))


# ----------------------------------------------------------------------------- export and import
def test_export_then_import_reproduces_the_policy(tmp_path: Path) -> None:
    with make_engine(tmp_path / "a.db") as source:
        _teach(source, 12)
        pending = source.run(QUESTIONS[0]).decision_id
        source.export_json(tmp_path / "export.json")
        expected = state_hash(source.bandit)
    data = json.loads((tmp_path / "export.json").read_text())
    assert data["format"] == "uniscale-policy-store"
    assert len(data["decisions"]) == 13
    assert len(data["feedback"]) == 12
    assert len(data["policy"]["A"]) == data["policy"]["dim"]
    with make_engine(tmp_path / "b.db") as target:
        assert target.import_json(tmp_path / "export.json") == 12
        assert state_hash(target.bandit) == expected
        target.feedback(pending, correct=True)  # pending decisions travel too
        with pytest.raises(StoreError, match="already holds 13 decisions"):
            target.import_json(tmp_path / "export.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), "not a UniScale store export"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema version"),
        (lambda d: d["decisions"][0].update(context=["nan"]), r"decisions\[0\] is invalid"),
        (lambda d: d["decisions"][1].update(config="M/qp1"), r"decisions\[1\] is invalid"),
        (lambda d: d["decisions"][2].update(cost=1.5), r"decisions\[2\] is invalid.*cost"),
        (lambda d: d["decisions"][3].update(id="x"), r"decisions\[3\] is invalid.*unknown decision id"),
        (lambda d: d["feedback"][0].update(reward=float("inf")), r"feedback\[0\] is invalid.*reward"),
        (lambda d: d["feedback"].append(dict(d["feedback"][0])), "second feedback"),
        (lambda d: d["feedback"][1].update(decision_id="0" * 32), "not among the decisions"),
        (lambda d: d.update(decisions={}), "must be lists"),
    ],
)
def test_a_bad_import_names_the_problem_and_writes_nothing(tmp_path: Path, edit: object, message: str) -> None:
    with make_engine(None) as source:
        _teach(source, 4)
        data = source.store.export()
    edit(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with make_engine(tmp_path / "target.db") as target:
        with pytest.raises(StoreError, match=message) as raised:
            target.import_json(path)
        assert str(path) in str(raised.value)
        assert target.store.counts() == {"decisions": 0, "pending": 0, "feedback": 0}


def test_an_unreadable_import_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "uniscale-policy-store", "decis')
    with make_engine(None) as engine, pytest.raises(StoreError, match=f"cannot import {path}"):
        engine.import_json(path)


# ----------------------------------------------------------------------------- damage
@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    db = tmp_path / "policy.db"
    with make_engine(db) as engine:
        _teach(engine, 40)
    assert not Path(f"{db}-wal").exists()  # closing checkpointed the log into the file
    return db


def _damage_header(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[:16] = b"not a database!!"
    db.write_bytes(bytes(data))


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _scramble_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(page, len(data), 2 * page):  # every other page after the first
        data[start : start + page] = bytes(range(256)) * (page // 256)
    db.write_bytes(bytes(data))


def _empty(db: Path) -> None:
    db.write_bytes(b"")


@pytest.mark.parametrize("damage", [_damage_header, _truncate, _scramble_pages, _empty])
def test_a_damaged_file_is_refused_with_a_way_back_and_left_as_it_is(store_file: Path, damage: object) -> None:
    damage(store_file)  # type: ignore[operator]
    before = store_file.read_bytes()
    with pytest.raises(StoreCorruptError) as raised:
        make_engine(store_file)
    message = str(raised.value)
    assert str(store_file) in message
    assert "backup" in message
    assert store_file.read_bytes() == before  # nothing was reset or repaired behind the user's back


def test_another_sqlite_file_is_not_taken_for_a_store(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreCorruptError, match="not a UniScale store"):
        make_engine(db)


def test_a_newer_schema_is_refused(store_file: Path) -> None:
    with sqlite3.connect(store_file) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*Upgrade"):
        make_engine(store_file)


def test_a_store_path_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        make_engine(tmp_path / "missing" / "policy.db")
    with pytest.raises(StoreError, match="is a directory"):
        make_engine(tmp_path)


def test_nothing_is_pickled() -> None:
    package = Path(__file__).parents[1] / "uniscale_integrations"
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "import pickle" not in text, source
        assert "allow_pickle=True" not in text, source
