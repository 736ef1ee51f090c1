"""What every policy store shares: the contract, the SQL, export and import.

A store keeps decisions, the feedback log and policy snapshots. The feedback log is the
source of truth; the policy is the replay of its rows in ``seq`` order (see
:mod:`uniscale_integrations.policy.replica`). Every write is one transaction that holds the
store's single writer lock from its first statement (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-scoped advisory lock), so

- a decision takes exactly one feedback, whichever process sends it (the transaction reads
  the decision, refuses it when resolved, marks it resolved with
  ``UPDATE ... WHERE resolved = false`` and appends the log row);
- log rows get their ``seq`` in commit order, so a reader that has applied every row up to
  ``seq`` never misses one committed later with a smaller ``seq``.

:class:`PolicyStore` holds all the SQL, written once in the subset SQLite and PostgreSQL
share (``?`` placeholders, translated by the dialect); a backend supplies the connection,
its transactions, its boolean literals and the translation of its errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from uniscale_integrations.errors import (
    DuplicateFeedbackError,
    StoreCorruptError,
    StoreError,
    StoreModeError,
    StoreRepresentationError,
    StoreVersionError,
    UniScaleError,
    UnknownDecisionError,
)
from uniscale_integrations.features.space import Config
from uniscale_integrations.store.records import Decision, LoggedFeedback, Outcome

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EXPORT_FORMAT = "uniscale-policy-store"
ARRAYS = ("A", "A_inv", "b", "theta")
"""The bandit state's arrays, each kept as raw little-endian float64 bytes."""

Connection = Any
"""A DB-API connection whose ``execute(sql, params)`` returns a cursor (sqlite3 and psycopg 3 both do)."""


class PolicyStore:
    """Decisions, the feedback log and policy snapshots in a database (see the module docstring).

    Safe to share between threads (one connection, one lock) and between processes (the
    database's locking); a forked child opens its own connection on first use.
    Subclasses implement the ``_``-prefixed hooks below.
    """

    TRUE = "1"
    FALSE = "0"
    """How the dialect writes the booleans of the ``resolved`` column in SQL."""
    path: str
    """Where the store lives, for messages (a file, or a database URL without its password)."""
    keep_queries: bool

    def __init__(self, path: str, *, keep_queries: bool) -> None:
        self.path = path
        self.keep_queries = keep_queries
        self._lock = threading.Lock()
        self._conn: Connection | None = self._open()
        self._pid = os.getpid()
        self._inherited: list[Connection] = []

    # ------------------------------------------------------------------ backend hooks
    def _open(self) -> Connection:
        """A new connection to a checked store (created when absent)."""
        raise NotImplementedError

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        """Turns the driver's errors into :class:`StoreError` / :class:`StoreCorruptError`."""
        raise NotImplementedError

    def _begin(self, conn: Connection) -> None:
        """Start a write transaction holding the store's writer lock."""
        raise NotImplementedError

    def _end(self, conn: Connection, commit: bool) -> None:
        """Commit, or roll back whatever is still open (never raising then), the transaction of :meth:`_begin`."""
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        """``statement`` (``?`` placeholders) in the driver's dialect."""
        return statement

    def _execute_many(self, conn: Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.executemany(self._sql(statement), rows)

    def _is_duplicate(self, error: BaseException) -> bool:
        """Whether ``error`` is a violated unique constraint."""
        raise NotImplementedError

    def _usable(self, conn: Connection) -> bool:
        """Whether ``conn`` can still be used (a network connection may have broken)."""
        return True

    def _acknowledged(self, seq: int) -> None:
        """Called after a commit that extended the feedback log to row ``seq`` (a hook: optional)."""

    def _recovery_hint(self) -> str:
        return "restore it from a backup or a JSON export (open a new store, then engine.import_json(export))"

    # ------------------------------------------------------------------ plumbing
    def _corrupt(self, problem: object) -> StoreCorruptError:
        return StoreCorruptError(
            f"the policy store {self.path} is damaged or is not a UniScale store ({problem}); nothing was changed. "
            f"To recover: {self._recovery_hint()}."
        )

    def _check_version(self, value: object) -> None:
        """Refuse a ``meta.schema_version`` that is missing, invalid or newer than this code reads."""
        version = int(value) if isinstance(value, str | int) and str(value).isdigit() else None
        if version is None or version < 1:
            raise self._corrupt(f"meta.schema_version is {value if value is not None else 'missing'}")
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"store {self.path} has schema version {version}; this version of uniscale_integrations "
                f"reads up to {SCHEMA_VERSION}. Upgrade uniscale_integrations to open it."
            )

    def _connection(self) -> Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        if self._pid != os.getpid():
            # A forked child must not use its parent's connection: keep it untouched, open its own.
            self._inherited.append(self._conn)
            self._conn, self._pid = self._open(), os.getpid()
        elif not self._usable(self._conn):
            logger.warning("store %s: the connection was lost; reconnecting", self.path)
            self._conn = self._open()
        return self._conn

    def _execute(self, conn: Connection, statement: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(statement), params)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock, self._translated():
            yield self._connection()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One write transaction under the store's writer lock, committed or rolled back."""
        with self._lock, self._translated():
            conn = self._connection()
            self._begin(conn)
            try:
                yield conn
                self._end(conn, commit=True)
            except BaseException:
                self._end(conn, commit=False)  # a no-op when nothing is left open
                raise

    def close(self) -> None:
        """Close the connection (idempotent); the store stays consistent whenever the process stops."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    # ------------------------------------------------------------------ the config space
    def attach(self, space: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record ``space`` (JSON-able) as the store's config space; returns the previous one if it differed."""
        text = json.dumps(space, sort_keys=True)
        with self._transaction() as conn:
            row = self._execute(conn, "SELECT value FROM meta WHERE key = 'space'").fetchone()
            if row is not None and row[0] == text:
                return None
            self._execute(
                conn,
                "INSERT INTO meta (key, value) VALUES ('space', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (text,),
            )
        return json.loads(row[0]) if row is not None else None

    def attach_reward(
        self, weights: Mapping[str, float], reweigh: Callable[[float | None, float, float], float] | None = None
    ) -> None:
        """Record the reward ``weights`` the log is written under, or check them against those recorded.

        A store whose feedback was logged under other weights raises :class:`StoreModeError`, unless
        ``reweigh(correct, score, cost)`` is given: then every logged reward is recomputed with it (and
        the policy snapshots, replays of the old rewards, are dropped) in one transaction.
        """
        text = json.dumps(dict(weights), sort_keys=True)
        with self._transaction() as conn:
            row = self._execute(conn, "SELECT value FROM meta WHERE key = 'reward'").fetchone()
            if row is not None and row[0] != text:
                logged = int(self._execute(conn, "SELECT count(*) FROM feedback").fetchone()[0])
                if logged and reweigh is None:
                    raise StoreModeError(
                        f"store {self.path} logged {logged} rewards under the weights {row[0]}; this engine's are "
                        f"{text}. Rewards of one weighting must not train another: open the store with its own mode "
                        "(or weights), or pass refit_rewards=True to recompute every logged reward under the new "
                        "weights."
                    )
                if logged and reweigh is not None:
                    rows = self._execute(
                        conn,
                        "SELECT f.seq, f.correct, f.score, d.cost FROM feedback AS f "
                        "JOIN decisions AS d ON d.id = f.decision_id",
                    ).fetchall()
                    self._execute_many(
                        conn,
                        "UPDATE feedback SET reward = ? WHERE seq = ?",
                        [(reweigh(c, sc, cost), seq) for seq, c, sc, cost in rows],
                    )
                    self._execute(conn, "DELETE FROM snapshots")
                    logger.warning(
                        "store %s: %d logged rewards recomputed under the weights %s", self.path, logged, text
                    )
            if row is None or row[0] != text:
                self._execute(
                    conn,
                    "INSERT INTO meta (key, value) VALUES ('reward', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (text,),
                )

    def attach_representation(
        self, representation: str, reencode: Callable[[list[str]], np.ndarray] | None = None
    ) -> None:
        """Record the context representation (the query encoder's) the decisions' contexts are in, or check it.

        A store that holds no decisions, or recorded no representation (it was made before stores
        recorded them: its contexts are taken to be in ``representation``), records this one. A store
        whose decisions were encoded with another one raises :class:`StoreRepresentationError` naming
        both, unless ``reencode(queries) -> contexts`` is given: then every decision's context is
        recomputed from its kept query (:func:`~uniscale_integrations.features.query.query_record` text)
        and the policy snapshots are dropped, in one transaction that holds the writer lock while it
        encodes. That needs every query kept (``keep_queries=True``); the policy is then the replay of
        the log in the new representation. Contexts of two representations are never mixed.
        """
        with self._transaction() as conn:
            row = self._execute(conn, "SELECT value FROM meta WHERE key = 'representation'").fetchone()
            if row is not None and row[0] != representation:
                held, kept = self._execute(conn, "SELECT count(*), count(query) FROM decisions").fetchone()
                if held and reencode is None:
                    raise StoreRepresentationError(
                        f"store {self.path} holds {held} decisions whose contexts were encoded with the context "
                        f"representation {row[0]!r}; this engine's encoder makes {representation!r}. Contexts of one "
                        "representation must not train a policy of another: open a new store (another path), or "
                        f"give the engine the encoder of {row[0]!r}, or " + self._refit_hint(int(held), int(kept))
                    )
                if held and reencode is not None:
                    self._reencode(conn, int(held), int(kept), row[0], representation, reencode)
            if row is None or row[0] != representation:
                self._execute(
                    conn,
                    "INSERT INTO meta (key, value) VALUES ('representation', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (representation,),
                )

    def _refit_hint(self, held: int, kept: int) -> str:
        if kept == held:
            return "pass refit_representation=True to re-encode every logged query with this engine's encoder."
        return (
            f"refit it from the logged queries (refit_representation=True), which needs them all: {held - kept} of "
            f"its {held} decisions kept only their query's hash (a store keeps the text with keep_queries=True)."
        )

    def _reencode(
        self,
        conn: Connection,
        held: int,
        kept: int,
        before: str,
        after: str,
        reencode: Callable[[list[str]], np.ndarray],
    ) -> None:
        """Replace every decision's context by ``reencode`` of its query, and drop the snapshots."""
        if kept != held:
            raise StoreRepresentationError(
                f"cannot re-encode store {self.path} from {before!r} to {after!r}: {held - kept} of its {held} "
                "decisions kept only their query's hash (a store keeps the text with keep_queries=True). Open a new "
                "store (another path), or give the engine the encoder it was made with."
            )
        rows = self._execute(conn, "SELECT id, query FROM decisions ORDER BY seq").fetchall()
        contexts = np.asarray(reencode([query for _, query in rows]), dtype=np.float64)
        if contexts.shape[0] != len(rows) or not np.isfinite(contexts).all():
            raise StoreError(f"re-encoding store {self.path}: expected {len(rows)} finite context vectors")
        self._execute_many(
            conn,
            "UPDATE decisions SET context = ? WHERE id = ?",
            [(to_blob(context), decision_id) for (decision_id, _), context in zip(rows, contexts, strict=True)],
        )
        self._execute(conn, "DELETE FROM snapshots")
        logger.warning("store %s: %d decisions re-encoded from %s to %s", self.path, held, before, after)

    # ------------------------------------------------------------------ decisions and feedback
    def record(self, decision: Decision, *, max_pending: int) -> list[str]:
        """Store a decision; drops (and returns) the oldest pending ones beyond ``max_pending``."""
        with self._transaction() as conn:
            try:
                self._execute(
                    conn,
                    "INSERT INTO decisions (id, config, context, cost, score, query_hash, query, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        decision.id,
                        str(decision.config),
                        to_blob(decision.context),
                        decision.cost,
                        decision.score,
                        decision.query_hash,
                        decision.query if self.keep_queries else None,
                        decision.created,
                    ),
                )
            except Exception as exc:
                if self._is_duplicate(exc):
                    raise StoreError(f"decision {decision.id} is already in store {self.path}") from exc
                raise
            dropped = [
                row[0]
                for row in self._execute(
                    conn,
                    f"SELECT id FROM decisions WHERE resolved = {self.FALSE} AND seq <= "
                    f"(SELECT seq FROM decisions WHERE resolved = {self.FALSE} ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (max_pending,),
                ).fetchall()
            ]
            if dropped:
                self._execute_many(conn, "DELETE FROM decisions WHERE id = ?", [(d,) for d in dropped])
        return dropped

    def resolve(self, decision_id: str, judge: Callable[[Decision], Outcome]) -> Outcome:
        """Apply ``judge`` to a pending decision and log its outcome, all in one transaction.

        Raises :class:`UnknownDecisionError` or :class:`DuplicateFeedbackError` (nothing is
        written then), or whatever ``judge`` raises (nothing is written either).
        """
        with self._transaction() as conn:
            row = self._execute(
                conn,
                "SELECT id, config, context, cost, score, query_hash, created, resolved FROM decisions WHERE id = ?",
                (decision_id,),
            ).fetchone()
            if row is None:
                raise UnknownDecisionError(f"unknown decision id {decision_id!r}")
            if row[7]:
                raise DuplicateFeedbackError(f"decision {decision_id} already received its feedback")
            outcome = judge(self._decision(row))
            changed = self._execute(
                conn,
                f"UPDATE decisions SET resolved = {self.TRUE} WHERE id = ? AND resolved = {self.FALSE}",
                (decision_id,),
            )
            if changed.rowcount != 1:  # cannot happen under the writer lock; guard all the same
                raise DuplicateFeedbackError(f"decision {decision_id} already received its feedback")
            self._execute(
                conn,
                "INSERT INTO feedback (decision_id, reward, correct, score, created) VALUES (?, ?, ?, ?, ?)",
                (decision_id, outcome.reward, outcome.correct, outcome.score, time.time()),
            )
            seq = int(self._execute(conn, "SELECT max(seq) FROM feedback").fetchone()[0])
        self._acknowledged(seq)
        return outcome

    def _decision(self, row: Sequence[Any]) -> Decision:
        try:
            return Decision(
                id=row[0],
                config=Config.parse(row[1]),
                context=from_blob(bytes(row[2])),
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
            rows = self._execute(
                conn,
                "SELECT f.seq, f.decision_id, d.config, d.context, f.reward FROM feedback AS f "
                "JOIN decisions AS d ON d.id = f.decision_id WHERE f.seq > ? ORDER BY f.seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        logged = []
        for row in rows:
            where = f"feedback row {row[0]} (decision {row[1]})"
            if not (isinstance(row[4], float) and math.isfinite(row[4])):
                raise self._corrupt(f"{where}: the reward is {row[4]!r}, not a finite number")
            try:
                context = from_blob(row[3])
            except ValueError as exc:
                raise self._corrupt(f"{where}: its context cannot be read ({exc})") from None
            if context.size == 0 or not np.isfinite(context).all():
                raise self._corrupt(f"{where}: its context is empty or holds NaN or infinite numbers")
            logged.append(LoggedFeedback(int(row[0]), row[1], row[2], context, row[4]))
        return logged

    def counts(self) -> dict[str, int]:
        """Numbers of decisions, pending decisions and feedback rows."""
        with self._reading() as conn:
            decisions, resolved = self._execute(
                conn,
                f"SELECT count(*), coalesce(sum(CASE WHEN resolved = {self.TRUE} THEN 1 ELSE 0 END), 0) FROM decisions",
            ).fetchone()
            feedback = self._execute(conn, "SELECT count(*) FROM feedback").fetchone()[0]
        return {"decisions": int(decisions), "pending": int(decisions - resolved), "feedback": int(feedback)}

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, key: str, seq: int, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (a :meth:`LinUCB.state_dict`) as the replay of the log up to ``seq``: the matrices as
        blobs, the rest (the ridge's short per-coordinate scale among them) as JSON, which keeps floats exactly."""
        scalars = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items() if k not in ARRAYS}
        with self._transaction() as conn:
            self._execute(
                conn,
                "INSERT INTO snapshots (key, seq, scalars, A, A_inv, b, theta, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key, seq) DO UPDATE SET scalars = excluded.scalars, A = excluded.A, "
                "A_inv = excluded.A_inv, b = excluded.b, theta = excluded.theta, created = excluded.created",
                (key, seq, json.dumps(scalars), *(to_blob(state[k]) for k in ARRAYS), time.time()),
            )
            self._execute(conn, "DELETE FROM snapshots WHERE key = ? AND seq < ?", (key, seq))

    def load_snapshot(self, key: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot for ``key`` as ``(seq, state)``; ``None`` if there is none.

        The state is not validated here (``LinUCB.from_state`` does that).
        """
        with self._reading() as conn:
            row = self._execute(
                conn,
                "SELECT seq, scalars, A, A_inv, b, theta FROM snapshots WHERE key = ? ORDER BY seq DESC LIMIT 1",
                (key,),
            ).fetchone()
        if row is None:
            return None
        state: dict[str, Any] = {
            k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v for k, v in json.loads(row[1]).items()
        }
        dim = int(state["dim"])
        for name, blob in zip(ARRAYS, row[2:], strict=True):
            state[name] = from_blob(bytes(blob)).reshape((dim, dim) if name.startswith("A") else (dim,))
        return int(row[0]), state

    # ------------------------------------------------------------------ export and import
    def export(self) -> dict[str, Any]:
        """Everything but the snapshots as JSON-able data (the feedback log in log order)."""
        with self._reading() as conn:
            space = self._execute(conn, "SELECT value FROM meta WHERE key = 'space'").fetchone()
            representation = self._execute(conn, "SELECT value FROM meta WHERE key = 'representation'").fetchone()
            decisions = self._execute(
                conn,
                "SELECT id, config, context, cost, score, query_hash, query, created, resolved "
                "FROM decisions ORDER BY seq",
            ).fetchall()
            feedback = self._execute(
                conn, "SELECT decision_id, reward, correct, score, created FROM feedback ORDER BY seq"
            ).fetchall()
        return {
            "format": EXPORT_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "space": json.loads(space[0]) if space is not None else None,
            "representation": representation[0] if representation is not None else None,
            "decisions": [
                {
                    "id": d[0],
                    "config": d[1],
                    "context": from_blob(bytes(d[2])).tolist(),
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

    def import_(
        self, data: Any, source: str, *, context_dim: int | None = None, representation: str | None = None
    ) -> int:
        """Load an :meth:`export` into this store, which must hold no decisions; returns the feedback count.

        Everything is checked before anything is written; a bad entry raises
        :class:`StoreError` naming ``source`` and the entry. ``context_dim`` is the length every
        decision's context must have and ``representation`` the one they must be in (the importing
        engine's encoder; an export that names none, from before stores recorded it, is not checked).
        """
        decisions, feedback = parse_export(data, source, context_dim=context_dim)
        exported = data.get("representation")
        if representation is not None and exported is not None and exported != representation:
            raise StoreRepresentationError(
                f"cannot import {source}: its contexts were encoded with the context representation {exported!r}; "
                f"this engine's encoder makes {representation!r}. Import it into an engine with that encoder."
            )
        with self._transaction() as conn:
            held = int(self._execute(conn, "SELECT count(*) FROM decisions").fetchone()[0])
            if held:
                raise StoreError(f"cannot import {source}: store {self.path} already holds {held} decisions")
            if decisions:
                self._execute_many(
                    conn,
                    "INSERT INTO decisions (id, config, context, cost, score, query_hash, query, created, resolved) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.id,
                            str(d.config),
                            to_blob(d.context),
                            d.cost,
                            d.score,
                            d.query_hash,
                            d.query if self.keep_queries else None,
                            d.created,
                            d.id in feedback,
                        )
                        for d in decisions
                    ],
                )
            if feedback:
                self._execute_many(
                    conn,
                    "INSERT INTO feedback (decision_id, reward, correct, score, created) VALUES (?, ?, ?, ?, ?)",
                    [(i, o.reward, o.correct, o.score, created) for i, (o, created) in feedback.items()],
                )
            last = self._execute(conn, "SELECT max(seq) FROM feedback").fetchone()[0]
        if last is not None:
            self._acknowledged(int(last))
        return len(feedback)


def to_blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    if not isinstance(blob, bytes) or len(blob) % 8:
        raise ValueError("an array blob must hold whole float64 numbers")
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def parse_export(
    data: Any, source: str, *, context_dim: int | None = None
) -> tuple[list[Decision], dict[str, tuple[Outcome, float]]]:
    """Decisions and, by decision id in log order, ``(outcome, time)`` of an export; ``StoreError`` if invalid.

    With ``context_dim``, every decision's context must hold exactly that many numbers.
    """

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
            size = decisions[-1].context.size
            if context_dim is not None and size != context_dim:
                raise ValueError(f"its context has {size} numbers; this engine's encoder makes {context_dim}")
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
