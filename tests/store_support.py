"""Shared by the store tests: a scripted executor, a cheap embedder, an engine factory and a worker process.

Run as a script, this module is the worker the multi-process tests start::

    python store_support.py stream DB        # run + feedback forever, printing "ack <id>" after each feedback
    python store_support.py decide DB N      # make N decisions, print "decision <id>" each, then wait
    python store_support.py feedback DB FILE # after "go" on stdin, send the feedback listed in FILE
                                             # ("<id> <correct>" lines), then on "sync" print the state hash
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uniscale_integrations import Config, ConfigSpace, DuplicateFeedbackError, LinUCB, UniScale
from uniscale_integrations.events import Listener
from uniscale_integrations.executor.search import Execution
from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.options import RunOptions
from uniscale_integrations.reward.cost import CostModel, ModelShape, NominalBudget, nominal_usage
from uniscale_integrations.store.sqlite import SQLiteStore

SHAPES = {
    "S": ModelShape(134_515_008, 30, 192),
    "M": ModelShape(494_032_768, 24, 128),
    "L": ModelShape(1_540_000_000, 28, 256),
}
SPACE = ConfigSpace.grid(["S", "M"], qp=(1, 2), cp=(1, 4))
SCORES = {"S": 0.4, "M": 0.7, "L": 0.9}


class ScriptedExecutor:
    """Runs nothing: every config answers "42" at its nominal cost with a fixed score per model (S's if unknown)."""

    def __init__(self) -> None:
        self.calls: list[Config] = []

    def execute(
        self,
        messages: Sequence[dict[str, str]],
        config: Config,
        options: RunOptions,
        listeners: Iterable[Listener] = (),
    ) -> Execution:
        self.calls.append(config)
        usage = nominal_usage(config, NominalBudget())
        eflops = CostModel().eflops(SHAPES.get(config.model, SHAPES["S"]), usage)
        return Execution(config, "42", "Answer: 42", SCORES.get(config.model, 0.4), eflops, usage, 0.0)


class HashEmbedder:
    """A deterministic stand-in for MiniLM: a unit vector seeded by the text's hash (no model to load)."""

    dim = 32

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            row = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows)


@functools.cache
def real_encoder() -> QueryEncoder:
    """The real MiniLM query encoder, loaded once per test process."""
    encoder = QueryEncoder()
    encoder.encode_one("warm up")
    return encoder


def make_engine(
    store: str | Path | SQLiteStore | None,
    *,
    space: ConfigSpace = SPACE,
    encoder: QueryEncoder | None = None,
    **kwargs: Any,
) -> UniScale:
    """An engine over ``space`` with the scripted executor (and the hash embedder unless told otherwise)."""
    encoder = encoder if encoder is not None else QueryEncoder(HashEmbedder(), dim=8)
    store = str(store) if isinstance(store, Path) else store
    return UniScale(space, ScriptedExecutor(), SHAPES, encoder=encoder, store=store, **kwargs)


def state_hash(bandit: LinUCB) -> str:
    """A digest of a policy's arrays and counters, equal only for bit-identical states."""
    state = bandit.state_dict()
    digest = hashlib.sha256(repr(sorted((k, v) for k, v in state.items() if not isinstance(v, np.ndarray))).encode())
    for key in ("A", "A_inv", "b", "theta"):
        digest.update(np.ascontiguousarray(state[key]).tobytes())
    return digest.hexdigest()


def assert_same_policy(bandit: LinUCB, saved: str) -> None:
    """``bandit`` equals the arrays another process saved, to 1e-9.

    Not bit for bit: processes may run BLAS with different thread counts, which changes the
    order of floating-point sums.
    """
    with np.load(saved, allow_pickle=False) as arrays:
        state = bandit.state_dict()
        for key in arrays.files:
            np.testing.assert_allclose(state[key], arrays[key], rtol=1e-9, atol=1e-9, err_msg=key)


def correct_of(i: int) -> float:
    """The scripted correctness of the ``i``-th question."""
    return (i * 7 % 11) / 10


def read_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """The worker's next line, which must start with ``prefix``, without it."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(prefix), f"worker said {line!r}, expected {prefix!r}"
    return line[len(prefix) :].strip()


def tell(proc: subprocess.Popen[str], command: str) -> None:
    """Send the worker one command line."""
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()


def say(text: str) -> None:
    print(text, flush=True)


def _stream(db: str) -> None:
    engine = make_engine(SQLiteStore(db), snapshot_every=7)
    for i in range(10**9):
        result = engine.run(f"stream question {i}: what is {i} + {i}?")
        engine.feedback(result.decision_id, correct=correct_of(i))
        say(f"ack {result.decision_id}")


def _decide(db: str, n: int) -> None:
    engine = make_engine(SQLiteStore(db))
    for i in range(n):
        say(f"decision {engine.run(f'pending question {i}').decision_id}")
    time.sleep(600)  # the parent kills us


def _feedback(db: str, plan: str) -> None:
    feedback_worker(make_engine(SQLiteStore(db, synchronous="normal")), plan)


def feedback_worker(engine: UniScale, plan: str) -> None:
    """A worker of the concurrency tests: waits for "go", applies the plan's feedback, reports acks and state."""
    work = [(line.split()[0], float(line.split()[1])) for line in Path(plan).read_text().splitlines()]
    say("ready")
    assert sys.stdin.readline().strip() == "go"
    acked, duplicates = [], 0
    for decision_id, correct in work:
        try:
            engine.feedback(decision_id, correct=correct)
            acked.append(decision_id)
        except DuplicateFeedbackError:
            duplicates += 1
    say(f"done {duplicates} {' '.join(acked)}")
    assert sys.stdin.readline().strip() == "sync"
    engine.sync()
    saved = f"{plan}.state.npz"
    np.savez(saved, **{k: v for k, v in engine.bandit.state_dict().items() if isinstance(v, np.ndarray)})
    say(f"state {saved}")


if __name__ == "__main__":
    mode, db, *rest = sys.argv[1:]
    if mode == "stream":
        _stream(db)
    elif mode == "decide":
        _decide(db, int(rest[0]))
    elif mode == "feedback":
        _feedback(db, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
