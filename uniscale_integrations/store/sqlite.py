"""The policy store: decisions, feedback and policy snapshots in one SQLite file.

Tables (schema version :data:`SCHEMA_VERSION`, kept in ``meta``):

- ``meta``: ``schema_version``, ``space`` (the config space last attached, JSON), ``reward`` (the
  weights the log was written under) and ``representation`` (the query encoder's context
  representation the decisions' contexts are in; a store from before it was recorded takes the
  opening engine's).
- ``decisions``: id, config, the query's context vector (raw float64 bytes), normalised cost,
  verifier score, the query's SHA-256 (the query itself only with ``keep_queries=True``),
  time, and whether feedback has resolved it.
- ``feedback``: the log, in the order it was committed (``seq``): decision id, reward,
  correctness (when given), score used, time.
- ``snapshots``: the bandit after the log's first ``seq`` rows, per policy key (space and
  hyperparameters); a cache that spares a full replay at start-up, never the truth.

The feedback log is the source of truth: the policy is the replay of its rows in ``seq``
order (see :mod:`uniscale_integrations.policy.replica`). One feedback is one transaction
(``BEGIN IMMEDIATE``: check the decision is unresolved, mark it resolved, append the row),
so a decision takes exactly one feedback even when many processes share the file. The
SQL is shared with the PostgreSQL store (:mod:`uniscale_integrations.store.base`).

Beside the file, ``<file>-log`` keeps the highest feedback row ever acknowledged (written after
each commit, outside the WAL). At open, a log that ends below it lost committed rows (a deleted
or stale ``-wal`` file, an older copy of the file): the store refuses to open
(:class:`StoreLostRowsError`) rather than hand a lost decision a second feedback.

The file runs in WAL mode, so readers never block the one writer. ``synchronous="full"``
(the default) makes every commit survive a power cut; ``"normal"`` survives a crash of the
process (not of the machine) and commits far faster. Nothing is pickled: arrays are raw
little-endian float64 bytes, their shapes implied by the dimensions kept beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from uniscale_integrations.errors import StoreCorruptError, StoreError, StoreIOError, StoreLostRowsError
from uniscale_integrations.store.base import EXPORT_FORMAT, SCHEMA_VERSION, PolicyStore

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_FORMAT", "MEMORY", "SCHEMA_VERSION", "PolicyStore", "SQLiteStore", "Synchronous"]

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


class SQLiteStore(PolicyStore):
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
        self._timeout = timeout
        self._synchronous = synchronous
        super().__init__(
            str(path) if str(path) == MEMORY else str(Path(path).expanduser().absolute()), keep_queries=keep_queries
        )

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
                self._check_log_length(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    @property
    def _counter(self) -> Path | None:
        """The file beside the store that keeps the highest acknowledged feedback row."""
        return None if self.path == MEMORY else Path(f"{self.path}-log")

    def _check_log_length(self, conn: sqlite3.Connection) -> None:
        acknowledged = _read_counter(self._counter) if self._counter is not None else 0
        if not acknowledged:
            return
        present = conn.execute("SELECT coalesce(max(seq), 0) FROM feedback").fetchone()[0]
        if present < acknowledged:
            raise StoreLostRowsError(
                f"store {self.path} has lost committed feedback: its log ends at row {present}, but rows up to "
                f"{acknowledged} were acknowledged ({self._counter}). Its {self.path}-wal file was probably deleted "
                f"or replaced by an older copy (or the file itself was). Nothing was changed. To recover: put the "
                f"-wal file back beside the store and open it again, or restore the store from a backup or a JSON "
                f"export. To accept the loss and go on with what is left, delete {self._counter}."
            )

    def _acknowledged(self, seq: int) -> None:
        if self._counter is None:
            return
        try:
            _raise_counter(self._counter, seq)
        except OSError as exc:  # the row is committed; only the check of a later open is weaker
            logger.warning(
                "store %s: could not record acknowledged row %d in %s: %s", self.path, seq, self._counter, exc
            )

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
                with contextlib.suppress(FileNotFoundError):  # a counter left by a store deleted on purpose
                    os.unlink(f"{file}-log")
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
        self._check_version(row[0] if row is not None else None)

    # ------------------------------------------------------------------ the backend's hooks
    def _recovery_hint(self) -> str:
        return (
            f"{super()._recovery_hint()}; or salvage what SQLite can read with "
            f"`sqlite3 {self.path} .recover | sqlite3 {self.path}.recovered` and open the recovered file; "
            f"or move the file away to start an empty store (what it learned is then lost)"
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
            if "disk is full" in text or "disk I/O error" in text:
                raise StoreIOError(
                    f"store {self.path}: the disk failed ({text}). The store is not damaged: the write was rolled "
                    f"back and nothing committed is lost. Free disk space (or fix the disk) and try again."
                ) from exc
            raise self._corrupt(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self.path == MEMORY and self._conn is not None:
            return self._conn  # a forked child keeps the in-memory database it was given
        conn: sqlite3.Connection = super()._connection()
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # the writer lock, taken at once

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        if commit:
            conn.execute("COMMIT")
        elif conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _is_duplicate(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self._synchronous!r})"


def _read_counter(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"cannot read {path} ({exc}); delete it to open the store without the check") from exc
    if not text.isdigit():
        raise StoreCorruptError(f"{path} does not hold a row number ({text[:40]!r}); delete it to open the store")
    return int(text)


def _raise_counter(path: Path, seq: int) -> None:
    """Write ``seq`` into the counter file unless it already holds a larger one (under a file lock)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.pread(fd, 32, 0).strip()
        if not held.isdigit() or int(held) < seq:
            data = f"{seq}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("COMMIT")
