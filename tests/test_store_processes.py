"""The store under real processes: SIGKILL mid-stream, and threads and processes sharing one file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from store_support import SPACE, assert_same_policy, correct_of, make_engine, read_line, state_hash, tell

from uniscale_integrations import DuplicateFeedbackError, LinUCB
from uniscale_integrations.store.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WORKER = str(Path(__file__).with_name("store_support.py"))


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_stream_keeps_every_acknowledged_feedback(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    acked: list[str] = []
    for _ in range(3):  # three kill-and-restart rounds on the same file
        worker = _spawn("stream", str(db))
        acked += [read_line(worker, "ack ") for _ in range(25)]
        worker.send_signal(signal.SIGKILL)  # it is mid-way through the next run or feedback
        assert worker.wait(timeout=30) == -signal.SIGKILL

    engine = make_engine(db, snapshot_every=7)
    logged = [row["decision_id"] for row in engine.store.export()["feedback"]]
    assert set(acked) <= set(logged)
    assert len(logged) == len(set(logged)) >= len(acked) == 75
    # The restarted policy (a snapshot plus the log's tail) is exactly the replay of the whole log.
    assert engine.bandit.n_updates == len(logged)
    assert state_hash(engine.bandit) == state_hash(engine.rebuild())
    with pytest.raises(DuplicateFeedbackError):
        engine.feedback(acked[0], correct=True)


def test_decisions_made_before_a_kill_take_feedback_after_it(tmp_path: Path) -> None:
    db = tmp_path / "policy.db"
    worker = _spawn("decide", str(db), "5")
    pending = [read_line(worker, "decision ") for _ in range(5)]
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)

    engine = make_engine(db)
    assert engine.store.counts() == {"decisions": 5, "pending": 5, "feedback": 0}
    for decision_id in pending:
        engine.feedback(decision_id, correct=True)
    assert engine.bandit.n_updates == 5
    with pytest.raises(DuplicateFeedbackError):
        engine.feedback(pending[0], correct=False)


N_DECISIONS = 2000
N_THREADS = 8
N_PROCESSES = 4


def test_threads_and_processes_sharing_a_store_apply_each_feedback_once(tmp_path: Path) -> None:
    """8 threads and 4 processes send 2,000 feedbacks (and 200 duplicates) to one store file.

    gamma = 1, so the final policy must equal sequential application in any order (A and b
    are sums): we compare it, to 1e-9, with the 2,000 updates applied in decision order.
    Every process and the replay of the log must hold the very same state, bit for bit.
    """
    db = tmp_path / "policy.db"
    engine = make_engine(SQLiteStore(db, synchronous="normal"), gamma=1.0)
    configs = list(SPACE)
    ids = [engine.run(f"question {i}", config=configs[i % len(configs)]).decision_id for i in range(N_DECISIONS)]
    workers = N_THREADS + N_PROCESSES
    plans: list[list[tuple[str, float]]] = [[] for _ in range(workers)]
    for i, decision_id in enumerate(ids):
        plans[i % workers].append((decision_id, correct_of(i)))
        if i % 10 == 0:  # a second worker tries the same decision: exactly one may win
            plans[(i + 1) % workers].append((decision_id, correct_of(i)))

    processes = []
    for k in range(N_PROCESSES):
        plan = tmp_path / f"plan{k}.txt"
        plan.write_text("".join(f"{d} {c!r}\n" for d, c in plans[N_THREADS + k]))
        processes.append(_spawn("feedback", str(db), str(plan)))
    for proc in processes:
        read_line(proc, "ready")

    acked: list[list[str]] = [[] for _ in range(N_THREADS)]
    duplicates = [0] * N_THREADS
    start = threading.Barrier(N_THREADS + 1)

    def send(k: int) -> None:
        start.wait()
        for decision_id, correct in plans[k]:
            try:
                engine.feedback(decision_id, correct=correct)
                acked[k].append(decision_id)
            except DuplicateFeedbackError:
                duplicates[k] += 1

    threads = [threading.Thread(target=send, args=(k,)) for k in range(N_THREADS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    for proc in processes:
        tell(proc, "go")
    start.wait()
    for thread in threads:
        thread.join()
    for proc in processes:
        done = read_line(proc, "done ").split()
        duplicates.append(int(done[0]))
        acked.append(done[1:])
    seconds = time.perf_counter() - began
    print(f"\n{N_DECISIONS} feedbacks from {N_THREADS} threads + {N_PROCESSES} processes: {seconds:.2f} s")

    everything = [d for worker in acked for d in worker]
    assert sorted(everything) == sorted(ids)  # each decision acknowledged exactly once
    assert sum(duplicates) == N_DECISIONS // 10
    engine.sync()
    assert engine.bandit.n_updates == N_DECISIONS

    expected = LinUCB(engine.bandit.dim, alpha=engine.bandit.alpha, gamma=1.0)
    exported = engine.store.export()["decisions"]
    for i, decision in enumerate(exported):
        assert decision["id"] == ids[i]
        arm = engine.space.index(configs[i % len(configs)])
        x = np.outer(engine.features(f"question {i}").actions[arm], decision["context"]).ravel()
        reward = engine.weights.reward(correct=correct_of(i), score=decision["score"], cost=decision["cost"])
        expected.update(x, reward)
    actual = engine.bandit
    for name in ("A", "b", "theta", "A_inv"):
        np.testing.assert_allclose(getattr(actual, name), getattr(expected, name), rtol=1e-9, atol=1e-9, err_msg=name)

    local = state_hash(engine.bandit)
    assert local == state_hash(engine.rebuild())
    for proc in processes:
        tell(proc, "sync")
        assert_same_policy(engine.bandit, read_line(proc, "state "))
        assert proc.wait(timeout=30) == 0


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "policy.db")
    decision = engine.run("What is 6 * 7?").decision_id
    pid = os.fork()
    if pid == 0:  # the child: give the feedback through the inherited engine, then leave at once
        code = 0
        try:
            engine.feedback(decision, correct=True)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine.sync() == 1
    with pytest.raises(DuplicateFeedbackError):
        engine.feedback(decision, correct=True)
    engine.close()
