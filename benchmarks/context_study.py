"""Which context lets the policy tell queries apart? Measured on table v2's tuning split only.

Run from the repository root::

    python benchmarks/context_study.py

Every representation re-encodes the table's questions (``OutcomeTable.with_contexts``) as
``[1, projection of MiniLM, four surface features]``, scaled to unit norm as the engine does:

- ``random-k``: the engine's seeded orthonormal random projection to k dimensions (k = 8 is the default);
- ``pca-k``: a PCA of the embeddings fitted on the tuning split's questions;
- ``full-384``: the whole embedding (timed on a short stream only: LinUCB's d = dz x 389 is too wide to
  replay 1,000 queries in a benchmark's time; its per-step cost is reported instead).

For each, UniScale is replayed on the tuning split (5 seeds x 1,000 queries, each of the 62 questions
about 16 times) at every exploration weight of the bench, in both modes; the table gives the best mean
reward per mode, the hindsight best fixed config and best config per tier for scale. Nothing here looks
at the test split. It replaces the "Context study (tuning split)" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _results import write_section
from threadpoolctl import threadpool_limits

from uniscale_integrations.bench.evaluate import BenchSettings, tune_alpha
from uniscale_integrations.bench.replay import BEST_FIXED, BEST_PER_TIER, UNISCALE, PolicySpec, replay, uniscale
from uniscale_integrations.features.encoder import MiniLMEmbedder, cheap_features
from uniscale_integrations.outcomes import default_table_path, load_table
from uniscale_integrations.reward.weights import RewardWeights

ROOT = Path(__file__).resolve().parent
MODES = ("cost-sensitive", "quality-first")


def representations(embeddings: np.ndarray, tune_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Each candidate projection of the embeddings, before the bias and surface features are added."""
    out = {}
    for k in (8, 16, 32, 64):
        basis, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((embeddings.shape[1], k)))
        out[f"random-{k}"] = embeddings @ basis * np.sqrt(embeddings.shape[1] / k)
    mean = embeddings[tune_mask].mean(axis=0)
    _, _, components = np.linalg.svd(embeddings[tune_mask] - mean, full_matrices=False)
    for k in (8, 16, 32):
        projected = (embeddings - mean) @ components[:k].T
        out[f"pca-{k}"] = projected / np.sqrt((projected[tune_mask] ** 2).sum(axis=1).mean())
    out["full-384"] = embeddings
    return out


def main() -> None:
    table = load_table(default_table_path())
    texts = [q.text for q in table.questions]
    embeddings = MiniLMEmbedder().embed(texts)
    cheap = np.asarray([cheap_features(t) for t in texts])
    tune_mask = np.asarray([q.split == "tune" for q in table.questions])
    settings = BenchSettings()
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for name, projected in representations(embeddings, tune_mask).items():
            contexts = np.hstack([np.ones((len(texts), 1)), projected, cheap])
            contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
            tune = table.with_contexts(contexts).subset("tune")
            if name == "full-384":
                started = time.perf_counter()
                spec = PolicySpec(UNISCALE, uniscale(0.5))
                replay(tune, [spec], RewardWeights.preset("cost-sensitive"), seeds=[0], length=50, hindsight=False)
                rows.append((name, contexts.shape[1], None, (time.perf_counter() - started) / 50))
                continue
            best = {}
            for mode in MODES:
                weights = RewardWeights.preset(mode)
                alpha, scores = tune_alpha(tune, weights, settings)
                best[mode] = (alpha, scores[f"{alpha:g}"])
            rows.append((name, contexts.shape[1], best, None))
            print(name, best, flush=True)
    references = {}
    tune = table.subset("tune")
    for mode in MODES:
        result = replay(tune, [], RewardWeights.preset(mode), seeds=[1000 + s for s in settings.seeds])
        references[mode] = [
            np.mean([t.reward.mean() for t in result.traces[ref].values()]) for ref in (BEST_FIXED, BEST_PER_TIER)
        ]
    lines = [
        "Command: `python benchmarks/context_study.py` (table v2's tuning split, 62 questions; UniScale replayed "
        f"with 5 seeds x {settings.length} queries at alpha in {{{', '.join(f'{a:g}' for a in settings.alphas)}}}; "
        "the best alpha's mean reward per mode). Hindsight references on the same streams: best fixed config "
        + "; ".join(f"{m} {references[m][0]:.3f}" for m in MODES)
        + ", best config per tier "
        + "; ".join(f"{m} {references[m][1]:.3f}" for m in MODES)
        + ".",
        "",
        "| context | numbers (dc) | cost-sensitive: reward (alpha) | quality-first: reward (alpha) | sum |",
        "|---|---|---|---|---|",
    ]
    for name, dc, best, seconds in rows:
        if best is None:
            lines.append(f"| {name} | {dc} | {1000 * seconds:.0f} ms per step (not replayed) | | |")
            continue
        cells = " | ".join(f"{best[m][1]:.4f} ({best[m][0]:g})" for m in MODES)
        lines.append(f"| {name} | {dc} | {cells} | {sum(best[m][1] for m in MODES):.4f} |")
    body = "\n".join(lines)
    print(body)
    write_section(ROOT / "RESULTS.md", "Context study (tuning split)", body)


if __name__ == "__main__":
    main()
