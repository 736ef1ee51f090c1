"""Store faults that must never be silent: lost WAL rows, a full disk, unreadable rows, bad imports, another mode.

Every test works on real SQLite files; none may change a stored byte it refuses.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from store_support import make_engine

from uniscale_integrations import UniScale
from uniscale_integrations.errors import (
    DuplicateFeedbackError,
    StoreCorruptError,
    StoreError,
    StoreIOError,
    StoreLostRowsError,
    StoreModeError,
)
from uniscale_integrations.reward.weights import RewardWeights


def _answered(engine: UniScale, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        result = engine.run(f"What is {i} + {i}?")
        engine.feedback(result.decision_id, correct=i % 2 == 0)
        ids.append(result.decision_id)
    return ids


def test_a_log_that_lost_committed_rows_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    engine = make_engine(db)
    _answered(engine, 5)
    engine.store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # rows 1-5 are in the main file
    ids = _answered(engine, 7, start=5)  # rows 6-12 only in the -wal file, as after a crash
    pending = engine.run("What is 100 + 1?").decision_id
    # The state after a crash whose -wal and -shm files were then deleted: the main file alone.
    crashed = tmp_path / "crashed.db"
    shutil.copy(db, crashed)
    shutil.copy(f"{db}-log", f"{crashed}-log")
    engine.close()
    before = crashed.read_bytes()
    with pytest.raises(StoreLostRowsError) as caught:
        make_engine(crashed)
    message = str(caught.value)
    for part in ("ends at row 5", "up to 12", f"{crashed}-wal", f"{crashed}-log"):
        assert part in message
    assert crashed.read_bytes() == before
    # The intact store still holds every acknowledged row and takes feedback exactly once.
    reopened = make_engine(db)
    assert reopened.store.counts()["feedback"] == 12
    with pytest.raises(DuplicateFeedbackError):
        reopened.feedback(ids[-1], correct=True)
    reopened.feedback(pending, correct=True)
    reopened.close()
    # Accepting the loss is a deliberate act: delete the counter, and the rest opens.
    Path(f"{crashed}-log").unlink()
    survivor = make_engine(crashed)
    assert survivor.store.counts()["feedback"] == 5
    survivor.close()


def test_a_new_store_does_not_inherit_a_stale_counter(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    engine = make_engine(db)
    _answered(engine, 3)
    engine.close()
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)  # the user deletes the store to start over
    fresh = make_engine(db)
    assert fresh.store.counts()["feedback"] == 0
    fresh.close()


def test_a_full_disk_is_reported_as_such_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    engine = make_engine(db)
    _answered(engine, 3)
    conn = engine.store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk

    def fill() -> None:
        for i in range(200):
            engine.run(f"What is {i} * {i}? " + "x" * 2000)

    with pytest.raises(StoreIOError) as caught:
        fill()
    message = str(caught.value)
    assert "disk" in message
    assert "not damaged" in message
    assert "restore" not in message.lower()
    engine.close()
    reopened = make_engine(db)
    assert reopened.store.counts()["feedback"] == 3
    reopened.close()


@pytest.mark.parametrize(
    ("blob", "why"),
    [(b"\x00" * 7, "cannot be read"), (struct.pack("<8d", *[float("nan")] * 8), "NaN")],
    ids=["too-short", "nan"],
)
def test_an_unreadable_stored_context_names_the_file_the_row_and_the_way_back(
    tmp_path: Path, blob: bytes, why: str
) -> None:
    db = tmp_path / "policy.db"
    engine = make_engine(db)
    (decision,) = _answered(engine, 1)
    engine.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE decisions SET context = ? WHERE id = ?", (blob, decision))
    before = db.read_bytes()
    with pytest.raises(StoreCorruptError) as caught:
        make_engine(db)
    message = str(caught.value)
    for part in (str(db), "feedback row 1", decision, why, "To recover"):
        assert part in message
    assert db.read_bytes() == before


def test_an_import_is_checked_whole_before_anything_is_written(tmp_path: Path) -> None:
    source = make_engine(tmp_path / "a.db")
    _answered(source, 2)
    source.run("A pending question")
    source.export_json(tmp_path / "export.json")
    source.close()
    data = json.loads((tmp_path / "export.json").read_text())
    pending = next(d for d in data["decisions"] if not d["resolved"])
    pending["context"] = list(np.linspace(0, 1, 10_000))
    (tmp_path / "bad.json").write_text(json.dumps(data))
    target = make_engine(tmp_path / "b.db")
    with pytest.raises(StoreError, match=r"decisions\[2\].*10000 numbers; this engine.s encoder makes \d+"):
        target.import_json(tmp_path / "bad.json")
    assert target.store.counts() == {"decisions": 0, "pending": 0, "feedback": 0}
    target.close()
    reopened = make_engine(tmp_path / "b.db")  # and the store still opens
    assert reopened.store.counts()["decisions"] == 0
    reopened.close()


def test_a_store_of_another_mode_is_refused_unless_refitted(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    cost = RewardWeights.preset("cost-sensitive")
    quality = RewardWeights.preset("quality-first")
    engine = make_engine(db, weights=cost)
    _answered(engine, 4)
    engine.close()
    before = db.read_bytes()
    with pytest.raises(StoreModeError, match="refit_rewards=True"):
        make_engine(db, weights=quality)
    assert db.read_bytes() == before
    make_engine(db, weights=cost).close()  # its own mode opens as before
    refitted = make_engine(db, weights=quality, refit_rewards=True)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT f.reward, f.correct, f.score, d.cost FROM feedback f JOIN decisions d ON d.id = f.decision_id"
        ).fetchall()
    for reward, correct, score, spent in rows:
        assert reward == pytest.approx(quality.reward(correct=correct, score=score, cost=spent))
    refitted.close()
    with pytest.raises(StoreModeError):  # the store now belongs to the new mode
        make_engine(db, weights=cost)
