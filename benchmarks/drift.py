"""Drift: the world changes half way through the stream; who recovers?

Run from the repository root::

    python benchmarks/drift.py --kind mix      # the tier mix changes
    python benchmarks/drift.py --kind price    # M's compute gets dearer

Two kinds of drift on table v2's test split, each seed's stream of 1,000 queries:

- ``mix``: the first half draws from the "easy" tiers, the second from the "hard" ones. The split is
  made on the tuning split alone: tiers ranked by M/qp1/cp1's accuracy there, the better half easy.
  What pays for a given query does not change; only which queries come.
- ``price``: the queries come as usual, but from the second half on every M configuration costs
  ``--factor`` times as much (its normalised cost, clipped at 1): what pays for a given query changes,
  and nothing in the query says so.

Replayed on the same streams:

- UniScale with gamma = 1 and discounted (gamma < 1, D-LinUCB; gamma chosen on a drift stream of the
  tuning split), each cold and started from the tuning split's prior;
- the offline router and BEST-Route, trained on the tuning split's whole mix (they never adapt);
- kNN (online, no forgetting).

It reports each policy's mean reward before and after the switch, over the 200 queries right after it
(recovery), and its regret over the second half against the best fixed config of that half (hindsight),
writes ``benchmarks/results/drift_<kind>.png`` (rolling mean reward) and replaces the "Drift (<kind>)"
section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _results import write_section

from uniscale_integrations.bench.evaluate import (
    BEST_ROUTE_TOLERANCES,
    BenchSettings,
    tune_bandit,
    tune_prior_bandit,
    tune_rivals,
)
from uniscale_integrations.bench.practitioners import BEST_ROUTE, OFFLINE_ROUTER, BestRoute, OfflineRouter
from uniscale_integrations.bench.replay import (
    BanditSettings,
    PolicySpec,
    drift_stream,
    replay,
    stream,
    uniscale,
    warmed_uniscale,
)
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.policy.baselines import KNN
from uniscale_integrations.policy.prior import Prior
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
GAMMAS = (0.98, 0.99, 0.995, 0.998)
RECOVERY = 200


def easy_and_hard(tune: OutcomeTable) -> tuple[list[str], list[str]]:
    """Tiers ranked by M/qp1/cp1's accuracy on the tuning split: the better half easy, the rest hard."""
    arm = [str(c) for c in tune.configs].index("M/qp1/cp1/bs1")
    correct = tune.array("correct")[:, arm]
    accuracy = {t: float(correct[tune.tier_index == k].mean()) for k, t in enumerate(tune.tiers)}
    ranked = sorted(accuracy, key=lambda t: -accuracy[t])
    return ranked[: len(ranked) // 2], ranked[len(ranked) // 2 :]


def repriced(table: OutcomeTable, model: str, factor: float) -> OutcomeTable:
    """``table`` with a copy of every question (id ``<id>#repriced``, same text and context) whose outcomes
    on ``model``'s configurations cost ``factor`` times as much: questions ``n .. 2n - 1`` of the result."""
    copies = [dataclasses.replace(q, id=f"{q.id}#repriced") for q in table.questions]
    rows = [
        dataclasses.replace(
            r,
            question=f"{r.question}#repriced",
            cost=min(1.0, r.cost * factor) if r.config.startswith(f"{model}/") else r.cost,
        )
        for r in table.rows()
    ]
    return OutcomeTable(table.meta, [*table.questions, *copies], [*table.rows(), *rows])


def streams_of(table: OutcomeTable, kind: str, tiers, length: int, seeds) -> dict[int, np.ndarray]:
    """Each seed's stream: the tier mix changes at ``length // 2`` (``mix``), or, over a :func:`repriced`
    table, the second half comes from the repriced copies (``price``)."""
    if kind == "mix":
        return {s: drift_stream(table, *tiers, length, s) for s in seeds}
    n = table.n_questions // 2
    out = {}
    for s in seeds:
        questions = stream(n, length, s)
        questions[length // 2 :] += n
        out[s] = questions
    return out


def tune_gamma(
    tune: OutcomeTable, weights: RewardWeights, bandit: BanditSettings, kind: str, tiers, length: int
) -> tuple[float, dict]:
    """The discount with the best second-half reward on drift streams of the tuning split."""
    streams = streams_of(tune, kind, tiers, length, [1000 + s for s in range(5)])
    specs = [PolicySpec(f"{g:g}", uniscale(bandit, gamma=g)) for g in GAMMAS]
    result = replay(tune, specs, weights, streams=streams, hindsight=False)
    half = length // 2
    scores = {
        name: float(np.mean([t.reward[half:].mean() for t in result.traces[name].values()])) for name in result.names
    }
    best = max(GAMMAS, key=lambda g: scores[f"{g:g}"])
    return best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="mix", choices=("mix", "price"))
    parser.add_argument("--factor", type=float, default=4.0, help="price: how much dearer M becomes")
    parser.add_argument("--mode", default="cost-sensitive", choices=("cost-sensitive", "quality-first"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    table = load_table(default_table_path())
    tune, test = table.subset("tune"), table.subset("test")
    weights = RewardWeights.preset(args.mode)
    tiers = easy_and_hard(tune)
    repeats = args.queries / test.n_questions  # each question's text per stream, repriced copies or not
    # Everything but gamma is tuned and trained before the drift; gamma on a drifting stream of the tuning split.
    drifting_tune, test = (
        (tune, test) if args.kind == "mix" else (repriced(tune, "M", args.factor), repriced(test, "M", args.factor))
    )
    settings = BenchSettings(seeds=tuple(range(args.seeds)), length=args.queries)
    bandit, _ = tune_bandit(tune, weights, settings, repeats=repeats)
    prior_bandit, _ = tune_prior_bandit(tune, weights, settings, repeats=repeats)
    gamma, gamma_scores = tune_gamma(drifting_tune, weights, bandit, args.kind, tiers, args.queries)
    rivals = tune_rivals(tune, weights)
    prior = Prior.of_table(tune, weights)
    specs = [
        PolicySpec("UniScale (gamma 1)", uniscale(bandit)),
        PolicySpec(f"UniScale (gamma {gamma:g})", uniscale(bandit, gamma=gamma)),
        PolicySpec("UniScale + prior (gamma 1)", warmed_uniscale(prior_bandit, prior, test)),
        PolicySpec(f"UniScale + prior (gamma {gamma:g})", warmed_uniscale(prior_bandit, prior, test, gamma=gamma)),
        PolicySpec(OFFLINE_ROUTER, lambda c: OfflineRouter.from_table(tune, weights)),
        PolicySpec(BEST_ROUTE, lambda c: BestRoute.from_table(tune, rivals["tolerance"])),
        PolicySpec("kNN", lambda c: KNN(c.n_arms, k=10)),
    ]
    streams = streams_of(test, args.kind, tiers, args.queries, settings.seeds)
    result = replay(test, specs, weights, streams=streams, hindsight=False)
    half = args.queries // 2
    rewards = test.rewards(weights)
    best_after = {s: rewards[q[half:]].sum(axis=0).max() for s, q in streams.items()}
    best_before = {s: rewards[q[:half]].sum(axis=0).max() / half for s, q in streams.items()}
    rows = []
    for name in result.names:
        traces = result.traces[name]
        before = [t.reward[:half].mean() for t in traces.values()]
        after = [t.reward[half:].mean() for t in traces.values()]
        recovery = [t.reward[half : half + RECOVERY].mean() for t in traces.values()]
        regret = [best_after[s] - t.reward[half:].sum() for s, t in traces.items()]
        rows.append((name, before, after, recovery, regret))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    window = 50
    for name, *_ in rows:
        curves = np.asarray(
            [np.convolve(t.reward, np.ones(window) / window, mode="valid") for t in result.traces[name].values()]
        )
        ax.plot(np.arange(window, args.queries + 1), curves.mean(axis=0), label=name)
    ax.axvline(half, color="grey", linestyle=":")
    ax.set_xlabel("query")
    ax.set_ylabel(f"reward ({args.mode}), rolling mean of {window}")
    ax.set_title(f"Drift ({args.kind}) on table v2's test split at query {half}")
    ax.legend(fontsize=7)
    png = ROOT / "results" / f"drift_{args.kind}_{args.mode}.png"
    png.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    ms = lambda v: f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}"  # noqa: E731
    command = f"python benchmarks/drift.py --kind {args.kind} --mode {args.mode}"
    if args.kind == "price":
        command += f" --factor {args.factor:g}"
        what = f"From the second half on, every M configuration costs {args.factor:g}x (normalised cost, clipped at 1)."
    else:
        what = (
            f"Easy tiers (first half): {', '.join(tiers[0])}; hard tiers (second half): {', '.join(tiers[1])}, "
            "split by M/qp1/cp1's accuracy on the tuning split."
        )
    gammas = ", ".join(f"{k} {v:.3f}" for k, v in gamma_scores.items())
    tolerances = ", ".join(f"{t:g}" for t in BEST_ROUTE_TOLERANCES)
    after_best = np.mean([v / (args.queries - half) for v in best_after.values()])
    lines = [
        f"Command: `{command}` ({args.seeds} seeds x {args.queries} queries, table v2's test split). {what} "
        f"Tuned on the tuning split: {bandit} ({prior_bandit} with the prior); gamma {gamma:g} "
        "(second-half reward on drifting streams of "
        f"the tuning split: {gammas}); BEST-Route tolerance {rivals['tolerance']:g} (from {tolerances}). "
        f"Best fixed config per half (hindsight): {np.mean(list(best_before.values())):.3f} before, "
        f"{after_best:.3f} after.",
        "",
        f"| policy | reward before | reward after | first {RECOVERY} after the switch "
        "| regret after, vs that half's best fixed |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {ms(b)} | {ms(a)} | {ms(r)} | {np.mean(g):.1f} ± {np.std(g, ddof=1):.1f} |" for n, b, a, r, g in rows
    ]
    lines += ["", f"![drift](results/{png.name})"]
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "RESULTS.md", f"Drift: {args.kind} ({args.mode})", body)


if __name__ == "__main__":
    main()
