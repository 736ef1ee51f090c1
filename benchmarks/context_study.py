"""Which context lets the policy tell queries apart? Measured on table v2's tuning split only.

Run from the repository root::

    python benchmarks/context_study.py [--only NAME,NAME]

Every representation re-encodes the table's questions (``OutcomeTable.with_contexts``) as
``[1, projection of an embedding, four surface features]``, scaled to unit norm as the engine does:

- ``random-k``: the engine's seeded orthonormal random projection of MiniLM (a transformer pass per query);
- ``pca-k``: a PCA of MiniLM's embeddings fitted on the tuning split's questions (scored in sample);
- ``static-k``: the same random projection of MiniLM's static distillation (``query_embedder="static"``,
  :mod:`~uniscale_integrations.features.static`): a token table instead of a transformer pass per query.
  ``static-16`` was the engine's default when the study was written (the table's stored contexts; checked
  below), and ``static-0`` has no embedding at all, only the bias and the surface features;
- ``NAME/seedS``: static-4, -8, -16 and random-16 with projection seeds 1-4 besides the engine's 0, summed up
  in a table of their own (the seed moves the score more than the size does);
- ``full-384``: the whole embedding (timed on a short stream only: LinUCB's d = dz x 389 is too wide to
  replay the tuning streams in a benchmark's time; its per-step cost is reported instead);
- ``... + S log-likelihood``: a signal known before generation, S's mean log-likelihood per token of the
  question (one prefill, charged in eFLOPs: the table reports its share of S/qp1/cp1's mean eFLOPs).

Each is scored as the bench tunes (:func:`~uniscale_integrations.bench.evaluate.tune_bandit`: 20 seeds,
streams that bring each tuning question back as often as the test streams do, about 4 times) at every
exploration weight of the bench, in both modes: cold, and for the contexts a decision can afford (the static
ones: MiniLM's transformer pass alone takes longer than the 5 ms budget) with the prior too, cross-fitted on
halves of the tuning split over the bench's alpha x prior-weight grid
(:func:`~uniscale_integrations.bench.evaluate.tune_prior_bandit`). The table gives the best mean reward per
mode and the hindsight references for scale. Results are cached per representation in
``benchmarks/results/context_study.json``, keyed by the tuning split's questions (a rerun computes only what
is missing). Nothing here looks at the test split. It replaces the "Context study (tuning split)" section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import write_section
from tqdm import tqdm

from uniscale_integrations.bench.evaluate import MODES, BenchSettings, tune_bandit, tune_prior_bandit, tuning_length
from uniscale_integrations.bench.replay import (
    BEST_FIXED,
    BEST_PER_TIER,
    UNISCALE,
    BanditSettings,
    PolicySpec,
    replay,
    uniscale,
)
from uniscale_integrations.features.encoder import DEFAULT_DIM, cheap_features
from uniscale_integrations.features.minilm import MiniLMEmbedder
from uniscale_integrations.features.static import StaticMiniLMEmbedder
from uniscale_integrations.outcomes import OutcomeTable, default_table_path, load_table
from uniscale_integrations.reward.cost import Usage
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
SEEDED = ("static-4", "static-8", "static-16", "random-16")
"""Projections also measured with other projection seeds (1-4): a projection's luck is not its size's."""


def with_prior(name: str) -> bool:
    """Measured with the prior too: the static contexts a decision can afford, and MiniLM's 16 beside them."""
    return name.startswith("static-") or name.split("/")[0] == "random-16"


def random_projection(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The engine's seeded orthonormal projection to ``k`` dimensions, scaled to keep the norm near 1."""
    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((embeddings.shape[1], k)))
    return embeddings @ basis * np.sqrt(embeddings.shape[1] / k)


def representations(embeddings: np.ndarray, tune_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Each candidate projection of the embeddings, before the bias and surface features are added."""
    out = {}
    out["random-0"] = np.zeros((len(embeddings), 0))  # no embedding: the bias and surface features alone
    for k in (4, 8, 16, 32, 64):
        out[f"random-{k}"] = random_projection(embeddings, k)
    mean = embeddings[tune_mask].mean(axis=0)
    _, _, components = np.linalg.svd(embeddings[tune_mask] - mean, full_matrices=False)
    for k in (8, 16, 32):
        projected = (embeddings - mean) @ components[:k].T
        out[f"pca-{k}"] = projected / np.sqrt((projected[tune_mask] ** 2).sum(axis=1).mean())
    out["full-384"] = embeddings
    return out


def _prefill(tokens: int) -> Usage:
    """One forward pass over ``tokens`` prompt tokens, each attending to those before it."""
    return Usage(prompt_tokens=tokens, tokens_processed=tokens, forward_passes=1, kv_reads=tokens * (tokens + 1) // 2)


def question_log_likelihood(texts: list[str]) -> tuple[np.ndarray, float]:
    """S's mean log-likelihood per token of each text (one prefill each), and the prefills' mean eFLOPs."""
    import torch

    from uniscale_integrations.models import ModelRegistry, load_model
    from uniscale_integrations.reward.cost import CostModel

    loaded = load_model(ModelRegistry.default()["S"], device="cpu")
    cost = CostModel.for_device("cpu")
    values, eflops = [], []
    with torch.inference_mode():
        for text in texts:
            ids = loaded.tokenizer(text, return_tensors="pt").input_ids
            logits = loaded.model(ids).logits[0, :-1].float()
            picked = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])
            values.append(float(picked.mean()))
            eflops.append(cost.eflops(loaded.spec, _prefill(ids.shape[1])))
    return np.asarray(values), float(np.mean(eflops))


def tuning_key(table: OutcomeTable) -> str:
    """Names the tuning split's questions, so that cached rows of another split are not reused."""
    ids = sorted(q.id for q in table.questions if q.split == "tune")
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def best_rewards(tune: OutcomeTable, settings: BenchSettings, repeats: float, prior: bool) -> dict[str, list[Any]]:
    """Per mode, the best settings' label and mean tuning reward, cold or with the cross-fitted prior."""
    best: dict[str, list[Any]] = {}
    for mode in MODES:
        weights = RewardWeights.preset(mode)
        if prior:
            bandit, scores = tune_prior_bandit(tune, weights, settings, repeats=repeats)
            best[mode] = [f"{bandit.alpha:g}, w {bandit.prior_weight:g}", scores[str(bandit)]]
        else:
            bandit, scores = tune_bandit(tune, weights, settings, repeats=repeats)
            best[mode] = [f"{bandit.alpha:g}", scores[str(bandit)]]
    return best


def _cells(best: dict[str, list[Any]] | None) -> str:
    if best is None:
        return " | | "
    cells = " | ".join(f"{best[m][1]:.4f} ({best[m][0]})" for m in MODES)
    return f"{cells} | {sum(best[m][1] for m in MODES):.4f}"


def seed_table(rows: dict[str, list[Any]]) -> list[str]:
    """Per projection, the sums over modes across projection seeds 0-4: how much is the size, how much the seed."""
    lines = [
        "Projections over seeds 0-4 (the engine uses seed 0): sum of the two modes' best rewards.",
        "",
        "| context | cold: mean ± sd (min - max) | prior: mean ± sd (min - max) |",
        "|---|---|---|",
    ]
    for base in SEEDED:
        names = [base, *(f"{base}/seed{seed}" for seed in range(1, 5))]
        if not all(n in rows for n in names):
            lines.append(f"| {base} | not measured yet (rerun the script: it resumes) | |")
            continue
        cells = []
        for column in (1, 2):
            sums = [sum(rows[n][column][m][1] for m in MODES) for n in names]
            cells.append(f"{np.mean(sums):.4f} ± {np.std(sums, ddof=1):.4f} ({min(sums):.4f} - {max(sums):.4f})")
        lines.append(f"| {base} | {' | '.join(cells)} |")
    return lines


def main(only: set[str] | None) -> None:
    table = load_table(default_table_path())
    texts = [q.text for q in table.questions]
    cheap = np.asarray([cheap_features(t) for t in texts])
    tune_mask = np.asarray([q.split == "tune" for q in table.questions])
    n_tune, n_test = int(tune_mask.sum()), int((~tune_mask).sum())
    settings = BenchSettings(shrinkages=(1.0,))  # plain ridge: the study compares contexts, not shrinkages
    repeats = settings.length / n_test
    cache_path = ROOT / "results" / "context_study.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    key = tuning_key(table)
    rows = cache.get("rows", {}) if cache.get("tuning") == key else {}
    static_embeddings = StaticMiniLMEmbedder().embed(texts)
    static = representations(static_embeddings, tune_mask)
    candidates = {f"static-{k}": static[f"random-{k}"] for k in (16, 8, 4, 0, 32)}
    for seed in range(1, 5):
        candidates |= {f"static-{k}/seed{seed}": random_projection(static_embeddings, k, seed) for k in (4, 8, 16)}
    minilm_embeddings = MiniLMEmbedder().embed(texts)
    minilm = representations(minilm_embeddings, tune_mask)
    candidates |= {k: minilm[k] for k in ("random-16", "random-8", "random-32", "pca-8", "pca-16", "pca-32")}
    loglik_names = [f"random-{k} + S log-likelihood" for k in (8, 16)]
    loglik, loglik_eflops = question_log_likelihood(texts)
    signal = np.clip(-loglik / 10.0, 0.0, 1.0)[:, None]  # mean NLL per token, scaled into [0, 1]
    for name in loglik_names:
        candidates[name] = np.hstack([minilm[name.split(" + ")[0]], signal])
    candidates |= {k: minilm[k] for k in ("random-64", "full-384")}
    candidates |= {f"random-16/seed{seed}": random_projection(minilm_embeddings, 16, seed) for seed in range(1, 5)}
    s_eflops = float(
        table.subset("tune").array("eflops")[:, [str(c) for c in table.configs].index("S/qp1/cp1/bs1")].mean()
    )
    unknown = sorted((only or set()) - set(candidates))
    if unknown:
        raise SystemExit(f"--only: no such context {', '.join(map(repr, unknown))}; known: {', '.join(candidates)}")
    for name, projected in tqdm(candidates.items(), desc="contexts"):
        if name in rows or (only is not None and name not in only):
            continue
        contexts = np.hstack([np.ones((len(texts), 1)), projected, cheap])
        contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
        if name == f"static-{DEFAULT_DIM}":  # the engine's default: the table's own contexts
            assert np.allclose(contexts, table.contexts), "the default context is not the shipped encoder's"
        tune = table.with_contexts(contexts).subset("tune")
        if name == "full-384":
            started = time.perf_counter()
            spec = PolicySpec(UNISCALE, uniscale(BanditSettings(0.5, shrinkage=1.0)))
            replay(tune, [spec], RewardWeights.preset("cost-sensitive"), seeds=[0], length=50, hindsight=False)
            rows[name] = [contexts.shape[1], None, None, (time.perf_counter() - started) / 50]
        else:
            cold = best_rewards(tune, settings, repeats, prior=False)
            prior = best_rewards(tune, settings, repeats, prior=True) if with_prior(name) else None
            rows[name] = [contexts.shape[1], cold, prior, None]
        cache_path.write_text(json.dumps({"tuning": key, "rows": rows}, indent=1))
        tqdm.write(f"{name}: {rows[name]}")
    references = {}
    tune = table.subset("tune")
    for mode in MODES:
        result = replay(
            tune,
            [],
            RewardWeights.preset(mode),
            seeds=list(settings.tuning_seeds),
            length=tuning_length(n_tune, repeats),
        )
        references[mode] = [
            np.mean([t.reward.mean() for t in result.traces[ref].values()]) for ref in (BEST_FIXED, BEST_PER_TIER)
        ]
    lines = [
        f"Command: `python benchmarks/context_study.py` (table v2's tuning split, {n_tune} questions; UniScale "
        f"replayed with {len(settings.tuning_seeds)} seeds x {tuning_length(n_tune, repeats)} queries at alpha in "
        f"{{{', '.join(f'{a:g}' for a in settings.alphas)}}}, the best alpha's mean reward per mode; with the "
        "prior, cross-fitted on halves of the tuning split over alpha x prior weight in "
        f"{{{', '.join(f'{w:g}' for w in settings.prior_weights)}}}, measured for the contexts a decision can "
        "afford). Hindsight references on the cold streams: best fixed config "
        + "; ".join(f"{m} {references[m][0]:.3f}" for m in MODES)
        + ", best config per tier "
        + "; ".join(f"{m} {references[m][1]:.3f}" for m in MODES)
        + f". S's question log-likelihood costs {loglik_eflops:.3g} eFLOPs per query, "
        f"{100 * loglik_eflops / s_eflops:.1f}% of S/qp1/cp1's mean on the tuning split.",
        "",
        "| context | numbers (dc) | cold: cost-sensitive (alpha) | cold: quality-first (alpha) | cold: sum "
        "| prior: cost-sensitive (alpha, weight) | prior: quality-first (alpha, weight) | prior: sum |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in (n for n in candidates if "/seed" not in n):  # the seeds are summed up below
        if name not in rows:
            lines.append(f"| {name} | not measured yet (rerun the script: it resumes) | | | | | | |")
            continue
        dc, cold, prior, seconds = rows[name]
        if seconds is not None:
            lines.append(f"| {name} | {dc} | {1000 * seconds:.0f} ms per step (not replayed) | | | | | |")
        else:
            lines.append(f"| {name} | {dc} | {_cells(cold)} | {_cells(prior)} |")
    lines += ["", *seed_table(rows)]
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "RESULTS.md", "Context study (tuning split)", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated contexts to measure now (the rest stay as cached)")
    args = parser.parse_args()
    main(set(args.only.split(",")) if args.only else None)
