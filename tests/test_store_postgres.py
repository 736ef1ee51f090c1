"""PostgresStore on a real PostgreSQL server started here: the SQLite store's contract, across processes.

The fixture runs ``initdb`` and ``pg_ctl`` (loopback only, trust authentication, a free port,
``fsync=off``: durability is PostgreSQL's business, the contract is ours). PostgreSQL refuses
to run as root: under root the server runs as the ``postgres`` user through ``runuser``, in a
directory made for it (pytest's own temporary directory is private to root).

Run as a script, this module is the worker the multi-process tests start::

    python test_store_postgres.py feedback URL SCHEMA PLAN  # after "go", send PLAN's feedback; "sync": save the state
    python test_store_postgres.py stream URL SCHEMA         # run + feedback forever, "ack <id>" after each
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serve_support import free_port
from store_support import (
    SPACE,
    assert_same_policy,
    correct_of,
    feedback_worker,
    make_engine,
    read_line,
    say,
    state_hash,
    tell,
)

from uniscale_integrations import DuplicateFeedbackError, LinUCB, UnknownDecisionError
from uniscale_integrations.errors import StoreCorruptError, StoreError, StoreVersionError
from uniscale_integrations.store import SQLiteStore, open_store

psycopg = pytest.importorskip("psycopg", reason='PostgresStore needs psycopg 3: pip install "psycopg[binary]"')
from uniscale_integrations.store.postgres import PostgresStore  # noqa: E402


def _binary(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/local/bin")
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


INITDB, PG_CTL = _binary("initdb"), _binary("pg_ctl")
pytestmark = pytest.mark.skipif(
    INITDB is None or PG_CTL is None or sys.platform == "win32",
    reason="the PostgreSQL server binaries (initdb, pg_ctl) are not installed",
)
WORKER = str(Path(__file__).resolve())
N_PROCESSES = 4
N_PER_PROCESS = 500


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1; yields the URL of its ``postgres`` database."""
    user: str | None = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no 'postgres' user to run the PostgreSQL server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and runuser is missing to start PostgreSQL as 'postgres'")
        user = "postgres"
        base = Path(tempfile.mkdtemp(prefix="uniscale-pg-"))
        os.chown(base, account.pw_uid, account.pw_gid)
    else:
        base = tmp_path_factory.mktemp("postgres")
    data, port = base / "data", free_port()

    def run(*command: str) -> None:
        prefix = ["runuser", "-u", user, "--"] if user else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            log = base / "server.log"
            raise RuntimeError(
                f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}"
                + (f"\nserver log:\n{log.read_text()[-2000:]}" if log.exists() else "")
            )

    assert INITDB is not None
    assert PG_CTL is not None
    run(INITDB, "-D", str(data), "-U", "uniscale", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off -c max_connections=50"
    run(PG_CTL, "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "120", "-o", options, "start")
    try:
        yield f"postgresql://uniscale@127.0.0.1:{port}/postgres"
    finally:
        run(PG_CTL, "-D", str(data), "-m", "fast", "-w", "stop")
        if user is not None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, WORKER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def test_four_processes_apply_each_feedback_once_and_match_sequential_application(
    postgres: str, schema: str, tmp_path: Path
) -> None:
    """4 processes send 500 feedbacks each (and 200 duplicates between them) to one schema.

    gamma = 1, so the final policy must equal the 2,000 updates applied one after the other
    in decision order (A and b are sums), to 1e-9. Meanwhile this process keeps replaying
    the log as it grows; at the end it, every worker and a full replay hold the very same
    state, bit for bit: no process missed a row or applied one twice.
    """
    engine = make_engine(PostgresStore(postgres, schema=schema), gamma=1.0)
    configs = list(SPACE)
    n = N_PROCESSES * N_PER_PROCESS
    ids = [engine.run(f"question {i}", config=configs[i % len(configs)]).decision_id for i in range(n)]
    plans: list[list[tuple[int, str, float]]] = [[] for _ in range(N_PROCESSES)]
    for i, decision_id in enumerate(ids):
        plans[i % N_PROCESSES].append((i, decision_id, correct_of(i)))
        if i % 10 == 0:  # the next process sends it too, at about the same time: exactly one may win
            plans[(i + 1) % N_PROCESSES].append((i, decision_id, correct_of(i)))
    for plan in plans:
        plan.sort()

    processes = []
    for k in range(N_PROCESSES):
        plan = tmp_path / f"plan{k}.txt"
        plan.write_text("".join(f"{d} {c!r}\n" for _, d, c in plans[k]))
        processes.append(_spawn("feedback", postgres, schema, str(plan)))
    for proc in processes:
        read_line(proc, "ready")

    stop = threading.Event()
    replayed: list[int] = []

    def follow() -> None:  # a reader replaying the log while it is being written
        while not stop.is_set():
            replayed.append(engine.sync())
            time.sleep(0.01)

    reader = threading.Thread(target=follow)
    reader.start()
    began = time.perf_counter()
    for proc in processes:
        tell(proc, "go")
    acked: list[list[str]] = []
    duplicates = 0
    for proc in processes:
        done = read_line(proc, "done ").split()
        duplicates += int(done[0])
        acked.append(done[1:])
    seconds = time.perf_counter() - began
    stop.set()
    reader.join()
    print(f"\n{n} feedbacks (+{n // 10} duplicates) from {N_PROCESSES} processes on PostgreSQL: {seconds:.2f} s")

    everything = [d for worker in acked for d in worker]
    assert sorted(everything) == sorted(ids)  # each decision acknowledged exactly once
    assert duplicates == n // 10
    assert all(len(worker) > 0 for worker in acked)
    engine.sync()
    assert engine.bandit.n_updates == n
    assert sum(replayed) > 0  # the reader did catch up while the log grew
    assert engine.store.counts() == {"decisions": n, "pending": 0, "feedback": n}

    expected = LinUCB(engine.bandit.dim, alpha=engine.bandit.alpha, gamma=1.0)
    exported = engine.store.export()["decisions"]
    for i, decision in enumerate(exported):
        assert decision["id"] == ids[i]
        arm = engine.space.index(configs[i % len(configs)])
        x = np.outer(engine.features(f"question {i}").actions[arm], decision["context"]).ravel()
        reward = engine.weights.reward(correct=correct_of(i), score=decision["score"], cost=decision["cost"])
        expected.update(x, reward)
    for name in ("A", "b", "theta", "A_inv"):
        np.testing.assert_allclose(
            getattr(engine.bandit, name), getattr(expected, name), rtol=1e-9, atol=1e-9, err_msg=name
        )

    local = state_hash(engine.bandit)
    assert local == state_hash(engine.rebuild())
    for proc in processes:
        tell(proc, "sync")
        assert_same_policy(engine.bandit, read_line(proc, "state "))
        assert proc.wait(timeout=60) == 0
    engine.close()


def test_a_killed_process_loses_no_acknowledged_feedback(postgres: str, schema: str) -> None:
    acked: list[str] = []
    for _ in range(2):  # two kill-and-restart rounds on the same schema
        worker = _spawn("stream", postgres, schema)
        acked += [read_line(worker, "ack ") for _ in range(20)]
        worker.send_signal(signal.SIGKILL)  # it is mid-way through the next run or feedback
        assert worker.wait(timeout=30) == -signal.SIGKILL

    with make_engine(PostgresStore(postgres, schema=schema), snapshot_every=7) as engine:
        logged = [row["decision_id"] for row in engine.store.export()["feedback"]]
        assert set(acked) <= set(logged)
        assert len(logged) == len(set(logged)) >= len(acked) == 40
        assert engine.bandit.n_updates == len(logged)  # a snapshot plus the log's tail ...
        assert state_hash(engine.bandit) == state_hash(engine.rebuild())  # ... is exactly the whole replay
        with pytest.raises(DuplicateFeedbackError):
            engine.feedback(acked[0], correct=True)


def test_the_engine_contract_holds_on_postgres(postgres: str, schema: str) -> None:
    with make_engine(PostgresStore(postgres, schema=schema), max_pending=5, snapshot_every=3) as engine:
        ids = [engine.run(f"what is {i} + 1?").decision_id for i in range(8)]  # the 3 oldest are dropped
        assert engine.store.counts() == {"decisions": 5, "pending": 5, "feedback": 0}
        with pytest.raises(UnknownDecisionError):
            engine.feedback(ids[0], correct=True)
        with pytest.raises(ValueError, match="correct"):
            engine.feedback(ids[3], correct=1.5)
        rewards = [engine.feedback(d, correct=i % 2 == 0) for i, d in enumerate(ids[3:])]
        assert all(0.0 <= r <= 1.0 for r in rewards)
        with pytest.raises(DuplicateFeedbackError):
            engine.feedback(ids[3], correct=False)
        assert engine.store.counts() == {"decisions": 5, "pending": 0, "feedback": 5}
        before = state_hash(engine.bandit)
        pending = engine.run("one more").decision_id

    with make_engine(PostgresStore(postgres, schema=schema), snapshot_every=3) as reopened:
        assert state_hash(reopened.bandit) == before  # snapshot + tail after a restart
        reopened.feedback(pending, score=0.25)  # a decision made before the restart
        assert reopened.bandit.n_updates == 6
        assert state_hash(reopened.bandit) == state_hash(reopened.rebuild())


def test_a_log_exported_from_postgres_replays_identically_in_sqlite(postgres: str, schema: str, tmp_path: Path) -> None:
    with make_engine(PostgresStore(postgres, schema=schema, keep_queries=True)) as source:
        for i in range(30):
            result = source.run(f"question {i}")
            if i % 3:
                source.feedback(result.decision_id, correct=correct_of(i))
        source.export_json(tmp_path / "policy.json")
        hashed = state_hash(source.bandit)
        exported = source.store.export()
    with make_engine(SQLiteStore(tmp_path / "copy.db", keep_queries=True)) as copy:
        assert copy.import_json(tmp_path / "policy.json") == 20
        assert state_hash(copy.bandit) == hashed
        assert copy.store.export()["decisions"] == exported["decisions"]
    with make_engine(PostgresStore(postgres, schema=schema + "_back")) as back:  # and into PostgreSQL again
        assert back.import_json(tmp_path / "policy.json") == 20
        assert state_hash(back.bandit) == hashed
        with pytest.raises(StoreError, match="already holds"):
            back.import_json(tmp_path / "policy.json")


def test_schemas_urls_and_damage(postgres: str, schema: str) -> None:
    with make_engine(postgres) as default:  # a URL is enough: the schema "uniscale"
        assert isinstance(default.store, PostgresStore)
        assert default.store.schema == "uniscale"
        default.feedback(default.run("a").decision_id, correct=True)
    with make_engine(PostgresStore(postgres, schema=schema)) as other:  # another schema, another policy
        assert other.store.counts()["feedback"] == 0
    assert isinstance(open_store(postgres), PostgresStore)

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}_foreign")
        conn.execute(f"CREATE TABLE {schema}_foreign.orders (id int)")
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreCorruptError, match="not a UniScale store"):
        PostgresStore(postgres, schema=f"{schema}_foreign")
    with pytest.raises(StoreVersionError, match="schema version 99"):
        PostgresStore(postgres, schema=schema)
    with pytest.raises(ValueError, match="schema"):
        PostgresStore(postgres, schema="Robert'); DROP TABLE")

    closed = f"postgresql://uniscale:hunter2@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StoreError, match="cannot reach") as caught:
        PostgresStore(closed, connect_timeout=5)
    assert "hunter2" not in str(caught.value)


def test_serve_gives_each_mode_its_own_schema(postgres: str) -> None:
    from uniscale_integrations.serve.settings import ServeSettings

    settings = ServeSettings(store=postgres)
    stores = [settings.open_store(mode) for mode in settings.modes]
    try:
        assert [s.schema for s in stores if isinstance(s, PostgresStore)] == [
            "uniscale_cost_sensitive",
            "uniscale_quality_first",
        ]
    finally:
        for store in stores:
            if store is not None:
                store.close()


# ---------------------------------------------------------------------- the worker processes
def _feedback_worker(url: str, schema: str, plan: str) -> None:
    engine = make_engine(PostgresStore(url, schema=schema), gamma=1.0)
    feedback_worker(engine, plan)
    engine.close()


def _stream_worker(url: str, schema: str) -> None:
    engine = make_engine(PostgresStore(url, schema=schema), snapshot_every=7)
    for i in range(10**9):
        result = engine.run(f"stream question {i}: what is {i} + {i}?")
        engine.feedback(result.decision_id, correct=correct_of(i))
        say(f"ack {result.decision_id}")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        mode, *arguments = sys.argv[1:]
        if mode == "feedback":
            _feedback_worker(*arguments)
        elif mode == "stream":
            _stream_worker(*arguments)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
