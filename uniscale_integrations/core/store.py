"""The policy store: decisions, feedback and policy snapshots in one SQLite file.

Tables (schema version :data:`SCHEMA_VERSION`, kept in ``meta``):

- ``meta``: ``schema_version`` and ``space``, the config space last attached (JSON).
- ``decisions``: id, config, the query's context vector (raw float64 bytes), normalised cost,
  verifier score, the query's SHA-256 (the query itself only with ``keep_queries=True``),
  time, and whether feedback has resolved it.
- ``feedback``: the log, in the order it was committed (``seq``): decision id, reward,
  correctness (when given), score used, time.
- ``snapshots``: the bandit after the log's first ``seq`` rows, per policy key (space and
  hyperparameters); a cache that spares a full replay at start-up, never the truth.

The feedback log is the source of truth: the policy is the replay of its rows in ``seq``
order (see :mod:`uniscale_integrations.core.replica`). One feedback is one transaction
(``BEGIN IMMEDIATE``: check the decision is unresolved, mark it resolved, append the row),
so a decision takes exactly one feedback even when many processes share the file.

The file runs in WAL mode, so readers never block the one writer. ``synchronous="full"``
(the default) makes every commit survive a power cut; ``"normal"`` survives a crash of the
process (not of the machine) and commits far faster. Nothing is pickled: arrays are raw
little-endian float64 bytes, their shapes implied by the dimensions kept beside them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from uniscale_integrations.core.records import Decision, LoggedFeedback, Outcome
from uniscale_integrations.core.space import Config
from uniscale_integrations.errors import (
    DuplicateFeedbackError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    UniScaleError,
    UnknownDecisionError,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EXPORT_FORMAT = "uniscale-policy-store"
MEMORY = ":memory:"
Synchronous = Literal["full", "normal"]

_TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        context BLOB NOT NULL,
        cost REAL NOT NULL,
        score REAL NOT NULL,
        query_hash TEXT NOT NULL,
        query TEXT,
        created REAL NOT NULL,
        resolved INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX decisions_pending ON decisions (seq) WHERE resolved = 0",
    """CREATE TABLE feedback (
        seq INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE REFERENCES decisions (id),
        reward REAL NOT NULL,
        correct REAL,
        score REAL NOT NULL,
        created REAL NOT NULL
    )""",
    """CREATE TABLE snapshots (
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        scalars TEXT NOT NULL,
        A BLOB NOT NULL,
        A_inv BLOB NOT NULL,
        b BLOB NOT NULL,
        theta BLOB NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (key, seq)
    )""",
)
_ARRAYS = ("A", "A_inv", "b", "theta")


class SQLiteStore:
    """Decisions, the feedback log and policy snapshots in one SQLite file (WAL mode).

    ``path`` is a file (created if absent) or ``":memory:"``. Safe to share between
    threads (one connection, one lock) and between processes (SQLite's locking); a forked
    child opens its own connection on first use.
    ``keep_queries=True`` stores each query's text beside its hash.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = MEMORY,
        *,
        synchronous: Synchronous = "full",
        keep_queries: bool = False,
        timeout: float = 30.0,
    ):
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"a store path must be a str or os.PathLike, got {type(path).__name__}")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = str(path) if str(path) == MEMORY else str(Path(path).expanduser().absolute())
        self.keep_queries = keep_queries
        self._timeout = timeout
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []

    # ------------------------------------------------------------------ opening
    def _open(self) -> sqlite3.Connection:
        if self.path != MEMORY:
            self._create_if_absent(Path(self.path))
        with self._translated():
            conn = self._connect(self.path)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if self.path != MEMORY and mode != "wal":
                    raise StoreError(f"store {self.path}: SQLite refused WAL mode (journal mode {mode!r})")
                conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
                problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(problems[:3]))
                if self.path == MEMORY:
                    _create_tables(conn)
                self._check_schema(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _connect(self, path: str) -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=self._timeout, isolation_level=None, check_same_thread=False)

    def _create_if_absent(self, file: Path) -> None:
        """Build a new store beside ``file`` and link it into place, so no one sees it half made."""
        if file.is_dir():
            raise StoreError(f"store path {file} is a directory")
        if file.exists():
            if file.stat().st_size == 0 and not Path(f"{file}-wal").exists():
                raise StoreCorruptError(
                    f"store {file} is an empty file (truncated?); nothing was changed. "
                    f"Restore it from a backup, or delete it to start a new store."
                )
            return
        if not file.parent.is_dir():
            raise StoreError(f"cannot create store {file}: directory {file.parent} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".new", dir=file.parent)
        except OSError as exc:
            raise StoreError(f"cannot create store {file}: {exc}") from exc
        os.close(fd)
        try:
            with contextlib.closing(self._connect(tmp)) as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                _create_tables(conn)
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(tmp, file)
        except OSError as exc:
            raise StoreError(f"cannot create store {file}: {exc}") from exc
        finally:
            for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            raise sqlite3.DatabaseError(f"not a UniScale store (tables: {', '.join(sorted(tables)) or 'none'})")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if version is None or version < 1:
            raise sqlite3.DatabaseError(f"meta.schema_version is {row[0] if row else 'missing'}")
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"store {self.path} has schema version {version}; this version of uniscale_integrations "
                f"reads up to {SCHEMA_VERSION}. Upgrade uniscale_integrations to open it."
            )

    # ------------------------------------------------------------------ plumbing
    def _corrupt(self, problem: object) -> StoreCorruptError:
        return StoreCorruptError(
            f"the policy store {self.path} is damaged or is not a UniScale store ({problem}); nothing was changed. "
            f"To recover: restore it from a backup or a JSON export (open a new store, then "
            f"engine.import_json(export)); or salvage what SQLite can read with "
            f"`sqlite3 {self.path} .recover | sqlite3 {self.path}.recovered` and open the recovered file; "
            f"or move the file away to start an empty store (what it learned is then lost)."
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"store {self.path} stayed locked by another connection for {self._timeout:g} s"
                ) from exc
            if "unable to open" in text or "readonly" in text:
                raise StoreError(f"cannot write store {self.path}: {text}") from exc
            raise self._corrupt(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        if self._pid != os.getpid() and self.path != MEMORY:
            # A forked child must not use its parent's connection: keep it untouched, open its own.
            self._inherited.append(self._conn)
            self._conn, self._pid = self._open(), os.getpid()
        return self._conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._translated():
            yield self._connection()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``), committed or rolled back."""
        with self._lock, self._translated():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection (idempotent); the file stays consistent whenever the process stops."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self._synchronous!r})"

    # ------------------------------------------------------------------ the config space
    def attach(self, space: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record ``space`` (JSON-able) as the store's config space; returns the previous one if it differed."""
        text = json.dumps(space, sort_keys=True)
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'space'").fetchone()
            if row is not None and row[0] == text:
                return None
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('space', ?)", (text,))
        return json.loads(row[0]) if row is not None else None

    # ------------------------------------------------------------------ decisions and feedback
    def record(self, decision: Decision, *, max_pending: int) -> list[str]:
        """Store a decision; drops (and returns) the oldest pending ones beyond ``max_pending``."""
        with self._transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO decisions (id, config, context, cost, score, query_hash, query, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        decision.id,
                        str(decision.config),
                        _to_blob(decision.context),
                        decision.cost,
                        decision.score,
                        decision.query_hash,
                        decision.query if self.keep_queries else None,
                        decision.created,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"decision {decision.id} is already in store {self.path}") from exc
            dropped = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM decisions WHERE resolved = 0 AND seq <= "
                    "(SELECT seq FROM decisions WHERE resolved = 0 ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (max_pending,),
                )
            ]
            conn.executemany("DELETE FROM decisions WHERE id = ?", [(d,) for d in dropped])
        return dropped

    def resolve(self, decision_id: str, judge: Callable[[Decision], Outcome]) -> Outcome:
        """Apply ``judge`` to a pending decision and log its outcome, all in one transaction.

        Raises :class:`UnknownDecisionError` or :class:`DuplicateFeedbackError` (nothing is
        written then), or whatever ``judge`` raises (nothing is written either).
        """
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id, config, context, cost, score, query_hash, created, resolved FROM decisions WHERE id = ?",
                (decision_id,),
            ).fetchone()
            if row is None:
                raise UnknownDecisionError(f"unknown decision id {decision_id!r}")
            if row[7]:
                raise DuplicateFeedbackError(f"decision {decision_id} already received its feedback")
            outcome = judge(self._decision(row))
            changed = conn.execute("UPDATE decisions SET resolved = 1 WHERE id = ? AND resolved = 0", (decision_id,))
            if changed.rowcount != 1:  # cannot happen inside BEGIN IMMEDIATE; guard all the same
                raise DuplicateFeedbackError(f"decision {decision_id} already received its feedback")
            conn.execute(
                "INSERT INTO feedback (decision_id, reward, correct, score, created) VALUES (?, ?, ?, ?, ?)",
                (decision_id, outcome.reward, outcome.correct, outcome.score, time.time()),
            )
        return outcome

    def _decision(self, row: tuple[Any, ...]) -> Decision:
        try:
            return Decision(
                id=row[0],
                config=Config.parse(row[1]),
                context=_from_blob(row[2]),
                cost=row[3],
                score=row[4],
                query_hash=row[5],
                created=row[6],
            )
        except (ValueError, TypeError, UniScaleError) as exc:
            raise self._corrupt(f"decision {row[0]!r} is invalid: {exc}") from exc

    def feedback_since(self, seq: int, limit: int = 10_000) -> list[LoggedFeedback]:
        """Up to ``limit`` rows of the feedback log after ``seq``, in log order."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT f.seq, f.decision_id, d.config, d.context, f.reward FROM feedback AS f "
                "JOIN decisions AS d ON d.id = f.decision_id WHERE f.seq > ? ORDER BY f.seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        logged = []
        for row in rows:
            if not (isinstance(row[4], float) and math.isfinite(row[4]) and isinstance(row[3], bytes)):
                raise self._corrupt(f"feedback row {row[0]} is invalid")
            logged.append(LoggedFeedback(row[0], row[1], row[2], _from_blob(row[3]), row[4]))
        return logged

    def counts(self) -> dict[str, int]:
        """Numbers of decisions, pending decisions and feedback rows."""
        with self._reading() as conn:
            decisions, resolved = conn.execute("SELECT count(*), coalesce(sum(resolved), 0) FROM decisions").fetchone()
            feedback = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
        return {"decisions": int(decisions), "pending": int(decisions - resolved), "feedback": int(feedback)}

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, key: str, seq: int, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (a :meth:`LinUCB.state_dict`) as the replay of the log up to ``seq``."""
        scalars = {k: v for k, v in state.items() if k not in _ARRAYS}
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (key, seq, scalars, A, A_inv, b, theta, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, seq, json.dumps(scalars), *(_to_blob(state[k]) for k in _ARRAYS), time.time()),
            )
            conn.execute("DELETE FROM snapshots WHERE key = ? AND seq < ?", (key, seq))

    def load_snapshot(self, key: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot for ``key`` as ``(seq, state)``; ``None`` if there is none.

        The state is not validated here (``LinUCB.from_state`` does that).
        """
        with self._reading() as conn:
            row = conn.execute(
                "SELECT seq, scalars, A, A_inv, b, theta FROM snapshots WHERE key = ? ORDER BY seq DESC LIMIT 1",
                (key,),
            ).fetchone()
        if row is None:
            return None
        state: dict[str, Any] = json.loads(row[1])
        dim = int(state["dim"])
        for name, blob in zip(_ARRAYS, row[2:], strict=True):
            state[name] = _from_blob(blob).reshape((dim, dim) if name.startswith("A") else (dim,))
        return int(row[0]), state

    # ------------------------------------------------------------------ export and import
    def export(self) -> dict[str, Any]:
        """Everything but the snapshots as JSON-able data (the feedback log in log order)."""
        with self._reading() as conn:
            space = conn.execute("SELECT value FROM meta WHERE key = 'space'").fetchone()
            decisions = conn.execute(
                "SELECT id, config, context, cost, score, query_hash, query, created, resolved "
                "FROM decisions ORDER BY seq"
            ).fetchall()
            feedback = conn.execute(
                "SELECT decision_id, reward, correct, score, created FROM feedback ORDER BY seq"
            ).fetchall()
        return {
            "format": EXPORT_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "space": json.loads(space[0]) if space is not None else None,
            "decisions": [
                {
                    "id": d[0],
                    "config": d[1],
                    "context": _from_blob(d[2]).tolist(),
                    "cost": d[3],
                    "score": d[4],
                    "query_hash": d[5],
                    "query": d[6],
                    "created": d[7],
                    "resolved": bool(d[8]),
                }
                for d in decisions
            ],
            "feedback": [
                {"decision_id": f[0], "reward": f[1], "correct": f[2], "score": f[3], "created": f[4]} for f in feedback
            ],
        }

    def import_(self, data: Any, source: str) -> int:
        """Load an :meth:`export` into this store, which must hold no decisions; returns the feedback count.

        Everything is checked before anything is written; a bad entry raises
        :class:`StoreError` naming ``source`` and the entry.
        """
        decisions, feedback = _parse_export(data, source)
        with self._transaction() as conn:
            held = int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
            if held:
                raise StoreError(f"cannot import {source}: store {self.path} already holds {held} decisions")
            conn.executemany(
                "INSERT INTO decisions (id, config, context, cost, score, query_hash, query, created, resolved) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.id,
                        str(d.config),
                        _to_blob(d.context),
                        d.cost,
                        d.score,
                        d.query_hash,
                        d.query if self.keep_queries else None,
                        d.created,
                        int(d.id in feedback),
                    )
                    for d in decisions
                ],
            )
            conn.executemany(
                "INSERT INTO feedback (decision_id, reward, correct, score, created) VALUES (?, ?, ?, ?, ?)",
                [(i, o.reward, o.correct, o.score, created) for i, (o, created) in feedback.items()],
            )
        return len(feedback)


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("COMMIT")


def _to_blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def _from_blob(blob: bytes) -> np.ndarray:
    if not isinstance(blob, bytes) or len(blob) % 8:
        raise ValueError("an array blob must hold whole float64 numbers")
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def _parse_export(data: Any, source: str) -> tuple[list[Decision], dict[str, tuple[Outcome, float]]]:
    """Decisions and, by decision id in log order, ``(outcome, time)`` of an export; ``StoreError`` if invalid."""

    def bad(what: str) -> StoreError:
        return StoreError(f"cannot import {source}: {what}")

    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise bad(f"not a UniScale store export (expected format {EXPORT_FORMAT!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"cannot import {source}: it has schema version {version}; this version reads up to "
            f"{SCHEMA_VERSION}. Upgrade uniscale_integrations."
        )
    if not isinstance(data.get("decisions"), list) or not isinstance(data.get("feedback"), list):
        raise bad("'decisions' and 'feedback' must be lists")
    decisions: list[Decision] = []
    for i, entry in enumerate(data["decisions"]):
        try:
            query = entry.get("query")
            if query is not None and not isinstance(query, str):
                raise TypeError("query must be a string or null")
            decisions.append(
                Decision(
                    id=entry["id"],
                    config=Config.parse(entry["config"]),
                    context=np.asarray(entry["context"], dtype=np.float64),
                    cost=entry["cost"],
                    score=entry["score"],
                    query_hash=str(entry["query_hash"]),
                    query=query,
                    created=float(entry["created"]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError, UniScaleError) as exc:
            raise bad(f"decisions[{i}] is invalid: {exc}") from None
    known = {d.id for d in decisions}
    if len(known) != len(decisions):
        raise bad("a decision id appears twice")
    feedback: dict[str, tuple[Outcome, float]] = {}
    for i, entry in enumerate(data["feedback"]):
        try:
            decision_id = entry["decision_id"]
            if decision_id not in known:
                raise ValueError(f"decision {decision_id!r} is not among the decisions")
            if decision_id in feedback:
                raise ValueError(f"decision {decision_id} has a second feedback")
            outcome = Outcome(entry["reward"], entry["correct"], entry["score"])
            feedback[decision_id] = (outcome, float(entry["created"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise bad(f"feedback[{i}] is invalid: {exc}") from None
    return decisions, feedback
