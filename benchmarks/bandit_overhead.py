"""Per-step overhead of the LinUCB router, beside MABWiser's LinUCB on the same stream.

Run from the repository root::

    python benchmarks/bandit_overhead.py

It times one ``select`` + one ``update`` per step (the median over many steps, after a
warm-up) at two sizes:

(a) 64 configurations, joint dimension d = 64 (dz = 8 configuration features x dc = 8
    context features);
(b) 1,024 configurations (4 models x 4 QP x 8 CP x 8 BS), d = 256 (dz = 16, dc = 16).

Contenders, all fed the same contexts, configurations and reward noise:

* ours, factored: ``LinUCB.select(ProductFeatures(c, Z))`` then
  ``LinUCB.update(features.row(arm), reward)``, as the engine calls it;
* ours, dense (reference, size (b) only): ``select`` on the ``(n, d)`` joint matrix;
* MABWiser ``LearningPolicy.LinUCB``: ``predict`` then ``partial_fit``. Its natural form
  is disjoint LinUCB, one ridge model per arm on the dc-dimensional context, so that is
  how it is run (it cannot share evidence across configurations).

A second table times three ways of computing the factored width matrix
``M[i, k] = sum_{j,l} c_j A^{-1}[(i, j), (k, l)] c_l``.

The script replaces the "Bandit overhead" section of ``benchmarks/RESULTS.md`` and
leaves the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import platform
import time
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _results import write_section

from uniscale_integrations.features.joint import ProductFeatures
from uniscale_integrations.policy.linucb import LinUCB

LOG = logging.getLogger("bandit_overhead")
SECTION_TITLE = "Bandit overhead"
COMMAND = "python benchmarks/bandit_overhead.py"


@dataclass(frozen=True)
class Case:
    label: str
    n_configs: int
    dz: int
    dc: int
    goal_ms: float
    goal_speedup: float | None

    @property
    def dim(self) -> int:
        return self.dz * self.dc


@dataclass(frozen=True)
class Stream:
    """Configurations, contexts and rewards shared by every contender."""

    actions: np.ndarray  # (n_configs, dz), first column 1
    contexts: np.ndarray  # (steps, dc), first entry 1
    theta: np.ndarray  # (dz, dc) hidden reward weights
    noise: np.ndarray  # (steps,)

    def reward(self, step: int, arm: int) -> float:
        mean = self.actions[arm] @ self.theta @ self.contexts[step]
        return float(mean + self.noise[step])


@dataclass(frozen=True)
class Timing:
    name: str
    median_us: float
    p90_us: float
    steps: int


CASES = (
    Case("(a)", n_configs=64, dz=8, dc=8, goal_ms=0.1, goal_speedup=50.0),
    Case("(b)", n_configs=1024, dz=16, dc=16, goal_ms=1.0, goal_speedup=None),
)


def make_stream(case: Case, steps: int, seed: int) -> Stream:
    rng = np.random.default_rng(seed)
    actions = np.column_stack([np.ones(case.n_configs), rng.normal(size=(case.n_configs, case.dz - 1))])
    contexts = np.column_stack([np.ones(steps), rng.normal(size=(steps, case.dc - 1))])
    theta = rng.normal(size=(case.dz, case.dc)) / np.sqrt(case.dim)
    return Stream(actions, contexts, theta, 0.1 * rng.normal(size=steps))


def _time_steps(step: Callable[[int], None], warmup: int, steps: int) -> np.ndarray:
    for t in range(warmup):
        step(t)
    durations = np.empty(steps)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(steps):
            start = time.perf_counter_ns()
            step(warmup + i)
            durations[i] = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return durations / 1e3  # microseconds


def _summary(name: str, durations_us: np.ndarray) -> Timing:
    return Timing(name, float(np.median(durations_us)), float(np.percentile(durations_us, 90)), len(durations_us))


def time_ours_factored(stream: Stream, warmup: int, steps: int) -> Timing:
    dz, dc = stream.actions.shape[1], stream.contexts.shape[1]
    bandit = LinUCB(dz * dc)
    features = [ProductFeatures(context=c, actions=stream.actions) for c in stream.contexts]

    def step(t: int) -> None:
        arm = bandit.select(features[t])
        bandit.update(features[t].row(arm), stream.reward(t, arm))

    return _summary("ours, factored (ProductFeatures)", _time_steps(step, warmup, steps))


def time_ours_dense(stream: Stream, warmup: int, steps: int) -> Timing:
    dz, dc = stream.actions.shape[1], stream.contexts.shape[1]
    bandit = LinUCB(dz * dc)
    matrices = [ProductFeatures(context=c, actions=stream.actions).dense() for c in stream.contexts]

    def step(t: int) -> None:
        arm = bandit.select(matrices[t])
        bandit.update(matrices[t][arm], stream.reward(t, arm))

    return _summary("ours, dense (n, d) matrix", _time_steps(step, warmup, steps))


def time_mabwiser(stream: Stream, warmup: int, steps: int) -> Timing:
    from mabwiser.mab import MAB, LearningPolicy

    n_configs, dc = stream.actions.shape[0], stream.contexts.shape[1]
    mab = MAB(arms=list(range(n_configs)), learning_policy=LearningPolicy.LinUCB(alpha=1.0, l2_lambda=1.0))
    mab.fit(decisions=[], rewards=[], contexts=np.empty((0, dc)))
    contexts = stream.contexts[:, None, :]

    def step(t: int) -> None:
        arm = int(mab.predict(contexts[t]))
        mab.partial_fit(decisions=[arm], rewards=[stream.reward(t, arm)], contexts=contexts[t])

    return _summary("MABWiser LinUCB (disjoint, dc-dim contexts)", _time_steps(step, warmup, steps))


def time_width_kernels(case: Case, seed: int) -> dict[str, float]:
    """Microseconds per evaluation of ``width^2`` for all configurations, three ways."""
    rng = np.random.default_rng(seed)
    d, dz, dc = case.dim, case.dz, case.dc
    root = rng.normal(size=(d, d))
    a_inv = np.linalg.inv(root @ root.T + np.eye(d))
    a_inv4 = a_inv.reshape(dz, dc, dz, dc)
    context, actions = rng.normal(size=dc), rng.normal(size=(case.n_configs, dz))
    path = np.einsum_path("ijkl,j,l->ik", a_inv4, context, context, optimize="optimal")[0]

    def matmul() -> np.ndarray:  # what LinUCB uses
        m = context @ (a_inv.reshape(d * dz, dc) @ context).reshape(dz, dc, dz)
        return np.einsum("ij,ij->i", actions @ m, actions)

    def einsum_optimize_true() -> np.ndarray:
        m = np.einsum("ijkl,j,l->ik", a_inv4, context, context, optimize=True)
        return np.einsum("ij,ij->i", actions @ m, actions)

    def einsum_precomputed_path() -> np.ndarray:
        m = np.einsum("ijkl,j,l->ik", a_inv4, context, context, optimize=path)
        return np.einsum("ij,ij->i", actions @ m, actions)

    kernels = {
        "matmul reshape (used)": matmul,
        "einsum optimize=True": einsum_optimize_true,
        "einsum, precomputed path": einsum_precomputed_path,
    }
    reference = matmul()
    result = {}
    for name, kernel in kernels.items():
        np.testing.assert_allclose(kernel(), reference, rtol=1e-10)
        number = 200
        best = min(timeit.repeat(kernel, number=number, repeat=7)) / number
        result[name] = best * 1e6
    return result


def time_feature_row(case: Case, seed: int) -> float:
    """Microseconds per ``ProductFeatures.row``, part of every factored step."""
    rng = np.random.default_rng(seed)
    features = ProductFeatures(context=rng.normal(size=case.dc), actions=rng.normal(size=(case.n_configs, case.dz)))
    number = 2000
    return min(timeit.repeat(lambda: features.row(1), number=number, repeat=7)) / number * 1e6


def _environment() -> str:
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    mabwiser_version = importlib.metadata.version("mabwiser")
    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, mabwiser {mabwiser_version}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), OPENBLAS_NUM_THREADS={blas}, "
        f"1-min load average {os.getloadavg()[0]:.1f} at the end of the run"
    )


def render_section(
    rows: list[tuple[Case, list[Timing]]],
    kernels: dict[str, dict[str, float]],
    row_us: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"Command: `{COMMAND}` (written by that script; {time.strftime('%Y-%m-%d')}).",
        "",
        f"Environment: {_environment()}.",
        "",
        "Median wall time of one `select` + one `update` per step, after "
        f"{args.warmup} warm-up steps; all contenders see the same stream (contexts, "
        "configurations, reward noise), alpha = 1, lambda = 1. Building `ProductFeatures` "
        "(the query's features) is outside the timed step. MABWiser runs in its natural "
        "form, disjoint LinUCB: one ridge model per configuration on the dc-dimensional "
        "context (it shares no evidence across configurations; our joint model does).",
        "",
        "| case | configs | d (dz x dc) | contender | steps | median (us) | p90 (us) | MABWiser / this | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for case, timings in rows:
        mab = next((t for t in timings if t.name.startswith("MABWiser")), None)
        for timing in timings:
            ratio = f"{mab.median_us / timing.median_us:.0f}x" if mab and timing is not mab else ""
            goal = ""
            if timing.name.startswith("ours, factored"):
                met_time = timing.median_us <= case.goal_ms * 1e3
                goal = f"<= {case.goal_ms * 1e3:.0f} us: {'met' if met_time else 'NOT met'}"
                verdicts.append(met_time)
                if case.goal_speedup is not None and mab is not None:
                    met_speed = mab.median_us / timing.median_us >= case.goal_speedup
                    goal += f"; >= {case.goal_speedup:.0f}x: {'met' if met_speed else 'NOT met'}"
                    verdicts.append(met_speed)
            lines.append(
                f"| {case.label} | {case.n_configs} | {case.dim} ({case.dz} x {case.dc}) | {timing.name} | "
                f"{timing.steps} | {timing.median_us:,.1f} | {timing.p90_us:,.1f} | {ratio} | {goal} |"
            )
    lines += [
        "",
        "Factored width kernel, `width^2` for every configuration from `A^{-1}` (best of 7 x 200 "
        "calls, microseconds); the matmul form is what `LinUCB` uses:",
        "",
        "| case | " + " | ".join(next(iter(kernels.values()))) + " |",
        "|---|" + "---|" * len(next(iter(kernels.values()))),
    ]
    for label, timings_us in kernels.items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in timings_us.values()) + " |")
    row_cost = ", ".join(f"{label}: {value:.1f} us" for label, value in row_us.items())
    lines += [
        "",
        f"Of each factored step, building the chosen row with `ProductFeatures.row` takes {row_cost}.",
        "",
        "The dense row is dominated by one `(n, d) @ (d, d)` BLAS product; with multi-threaded "
        "OpenBLAS it is sensitive to other load on the machine (see the load average above), "
        "the factored path much less so.",
        "",
        "All goals met." if all(verdicts) else "Some goals NOT met; see the goal column.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="timed steps for our bandit (default 1000)")
    parser.add_argument(
        "--mabwiser-steps",
        type=int,
        nargs=2,
        default=(300, 60),
        metavar=("A", "B"),
        help="timed MABWiser steps at sizes (a) and (b) (default 300 60; it is slow at (b))",
    )
    parser.add_argument("--dense-steps", type=int, default=200, help="timed steps, dense path at (b)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "RESULTS.md",
        help="markdown file whose 'Bandit overhead' section is replaced",
    )
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", module="mabwiser")
    rows: list[tuple[Case, list[Timing]]] = []
    kernels: dict[str, dict[str, float]] = {}
    row_us: dict[str, float] = {}
    for index, case in enumerate(CASES):
        mab_steps = args.mabwiser_steps[index]
        longest = args.warmup + max(args.steps, mab_steps, args.dense_steps)
        stream = make_stream(case, longest, args.seed)
        LOG.info("%s: %d configs, d = %d", case.label, case.n_configs, case.dim)
        timings = [time_ours_factored(stream, args.warmup, args.steps)]
        if case.n_configs >= 1024:
            timings.append(time_ours_dense(stream, args.warmup, args.dense_steps))
        timings.append(time_mabwiser(stream, args.warmup, mab_steps))
        for timing in timings:
            LOG.info("  %-45s median %10.1f us  p90 %10.1f us", timing.name, timing.median_us, timing.p90_us)
        rows.append((case, timings))
        kernels[f"{case.label} n={case.n_configs}, d={case.dim}"] = time_width_kernels(case, args.seed)
        row_us[case.label] = time_feature_row(case, args.seed)
    section = render_section(rows, kernels, row_us, args)
    if args.no_write:
        print(section)
    else:
        write_section(args.results, SECTION_TITLE, section)
        LOG.info("wrote the %r section of %s", SECTION_TITLE, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
