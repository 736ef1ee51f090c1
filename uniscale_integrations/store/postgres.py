"""The policy store in PostgreSQL: the same contract as the SQLite file, for engines on many machines.

``PostgresStore("postgresql://user:pass@host/db", schema="uniscale")`` keeps the tables of
:mod:`uniscale_integrations.store.sqlite` (decisions, the feedback log, snapshots, ``meta``)
in one schema of the database, created on first use. Several schemas hold several
independent policies in one database.

**Exactly once and commit order.** Every write transaction first takes a transaction-scoped
advisory lock keyed by the schema (``pg_advisory_xact_lock``), held until it commits or
rolls back: writers of one schema take turns, as SQLite's ``BEGIN IMMEDIATE`` makes them.
So a feedback reads its decision, refuses it when resolved, marks it resolved
(``UPDATE ... WHERE resolved = FALSE``) and appends its log row with no other writer in
between; and a log row's ``seq`` (an identity column) is drawn while the lock is held, so
``seq`` order is commit order. PostgreSQL makes a transaction visible before it releases
its locks, so a reader that has seen row ``n`` has seen every row before it: every process
replays the same rows in the same order, and none is skipped.

Needs ``psycopg`` 3 (``pip install "uniscale_integrations[postgres]"``) and a role that may
create a schema in the database (or an existing schema it owns).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from uniscale_integrations.errors import StoreError
from uniscale_integrations.store.base import SCHEMA_VERSION, PolicyStore

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.pq import TransactionStatus
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError('the PostgreSQL store needs psycopg 3: pip install "uniscale_integrations[postgres]"') from exc

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE decisions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        context BYTEA NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        query_hash TEXT NOT NULL,
        query TEXT,
        created DOUBLE PRECISION NOT NULL,
        resolved BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    "CREATE INDEX decisions_pending ON decisions (seq) WHERE NOT resolved",
    """CREATE TABLE feedback (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE REFERENCES decisions (id),
        reward DOUBLE PRECISION NOT NULL,
        correct DOUBLE PRECISION,
        score DOUBLE PRECISION NOT NULL,
        created DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE snapshots (
        key TEXT NOT NULL,
        seq BIGINT NOT NULL,
        scalars TEXT NOT NULL,
        A BYTEA NOT NULL,
        A_inv BYTEA NOT NULL,
        b BYTEA NOT NULL,
        theta BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key, seq)
    )""",
)
_STORE_TABLES = {"meta", "decisions", "feedback", "snapshots"}


class PostgresStore(PolicyStore):
    """Decisions, the feedback log and policy snapshots in one schema of a PostgreSQL database.

    ``url`` is a libpq connection string or URL; ``schema`` a lowercase SQL identifier.
    ``timeout`` bounds the wait for the schema's writer lock (seconds); ``connect_timeout``
    the wait for a connection. A lost connection is reopened on the next call (the call
    that found it lost raises :class:`StoreError`; a transaction is never half applied).
    """

    TRUE = "TRUE"
    FALSE = "FALSE"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "uniscale",
        keep_queries: bool = False,
        timeout: float = 30.0,
        connect_timeout: int = 10,
    ):
        if not isinstance(url, str) or not url:
            raise TypeError("a PostgreSQL store needs a connection URL or string")
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier (a-z, 0-9, _), got {schema!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url = url
        self.schema = schema
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._lock_key = int.from_bytes(hashlib.sha256(f"uniscale:{schema}".encode()).digest()[:8], "big", signed=True)
        """The schema's advisory lock: every write transaction holds it."""
        super().__init__(f"{_redacted(url)} (schema {schema})", keep_queries=keep_queries)

    # ------------------------------------------------------------------ opening
    def _open(self) -> psycopg.Connection[Any]:
        with self._translated():
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout)
            try:
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(self._timeout * 1000)}ms",))
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
                self._create_if_absent(conn)
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                self._check_version(row[0] if row is not None else None)
            except BaseException:
                conn.close()
                raise
        return conn

    def _create_if_absent(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and its tables unless they exist (under the writer lock: one process does it)."""
        self._begin(conn)
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,)
                )
            }
            if not tables:
                for statement in _TABLES:
                    conn.execute(statement)
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            elif "meta" not in tables:
                raise self._corrupt(f"not a UniScale store (tables: {', '.join(sorted(tables))})")
            elif _STORE_TABLES - tables:
                raise self._corrupt(f"tables missing: {', '.join(sorted(_STORE_TABLES - tables))}")
            self._end(conn, commit=True)
        except BaseException:
            self._end(conn, commit=False)
            raise

    # ------------------------------------------------------------------ the backend's hooks
    def _recovery_hint(self) -> str:
        return (
            f"{super()._recovery_hint()}; or use another schema (PostgresStore(url, schema=...)) "
            f"and keep {self.schema!r} as it is to inspect it"
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as exc:
            raise StoreError(f"store {self.path} stayed locked by another connection for {self._timeout:g} s") from exc
        except pg_errors.InsufficientPrivilege as exc:
            raise StoreError(f"cannot write store {self.path}: {exc}") from exc
        except (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.DatatypeMismatch) as exc:
            raise self._corrupt(exc) from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot reach store {self.path}: {str(exc).strip()}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"store {self.path}: {str(exc).strip()}") from exc

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _execute_many(self, conn: psycopg.Connection[Any], statement: str, rows: Sequence[Sequence[Any]]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(self._sql(statement), rows)

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))

    def _end(self, conn: psycopg.Connection[Any], commit: bool) -> None:
        status = conn.info.transaction_status
        if commit:
            if status == TransactionStatus.INERROR:  # COMMIT would silently roll back
                raise StoreError(f"store {self.path}: the transaction failed and was rolled back")
            conn.execute("COMMIT")
        elif status in (TransactionStatus.INTRANS, TransactionStatus.INERROR) and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def _is_duplicate(self, error: BaseException) -> bool:
        return isinstance(error, pg_errors.UniqueViolation)

    def _usable(self, conn: psycopg.Connection[Any]) -> bool:
        return not (conn.closed or conn.broken)

    def __repr__(self) -> str:
        return f"PostgresStore({_redacted(self.url)!r}, schema={self.schema!r})"


def _redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    url = re.sub(r"password\s*=\s*[^\s&]+", "password=***", url)
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
