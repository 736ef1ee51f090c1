"""The benchmark's PNG plots (matplotlib, Agg backend): frontier, regret curves, choices over time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from uniscale_integrations.bench.evaluate import BenchResults, ModeResults

REGRET_POLICIES = ("UniScale", "UniScale TTS-only", "UniScale routing-only", "Random", "Greedy", "kNN")
REFERENCE_POLICIES = ("best fixed (hindsight)", "best config per tier (hindsight)")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_all(results: BenchResults, out: Path) -> list[Path]:
    """Write every plot into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_frontier(results, out / "frontier.png")]
    for mode, m in results.modes.items():
        paths.append(plot_regret(m, out / f"regret_{mode}.png"))
        paths.append(plot_choices(m, results.info["configs"], out / f"choices_{mode}.png"))
    return paths


def plot_frontier(results: BenchResults, path: Path) -> Path:
    """Accuracy against mean eFLOPs: every fixed config, their hull, and each learning policy's sweep."""
    plt = _pyplot()
    frontier = results.frontier
    fig, ax = plt.subplots(figsize=(8, 5.5))
    fixed = frontier["fixed"]
    for name, (cost, accuracy) in fixed.items():
        ax.scatter(cost, accuracy, marker="s", color="black", zorder=3)
        ax.annotate(name, (cost, accuracy), textcoords="offset points", xytext=(5, -10), fontsize=8)
    hull = np.asarray(frontier["fixed_hull"])
    ax.plot(hull[:, 0], hull[:, 1], "k--", lw=1, label="hull of single configs")
    styles = {
        "UniScale": ("tab:red", "o-"),
        "UniScale + prior": ("tab:pink", "o-"),
        "kNN": ("tab:green", "v:"),
        "offline router": ("tab:blue", "^:"),
        "BEST-Route": ("tab:cyan", "s:"),
        "cascade": ("tab:brown", "d:"),
        "Oracle": ("tab:gray", "*:"),
    }
    for name, points in frontier["points"].items():
        color, style = styles.get(name, ("tab:purple", "x:"))
        pts = np.asarray(points)
        order = np.argsort(pts[:, 0])
        ax.plot(
            pts[order, 0],
            pts[order, 1],
            style,
            color=color,
            ms=5,
            lw=1.2 if name == "UniScale" else 0.8,
            label=f"{name} ({'its own knob' if name in ('BEST-Route', 'cascade') else 'w3 sweep'})",
        )
    random = frontier["random"]
    ax.scatter(random[0], random[1], marker="D", color="tab:orange", label="Random", zorder=3)
    for mode, m in results.modes.items():
        row = next(r for r in m.rows if r["policy"] == "UniScale")
        ax.scatter(
            row["eflops"][0], row["accuracy"][0], marker="o", s=90, facecolors="none", edgecolors="tab:red", zorder=4
        )
        ax.annotate(
            f"UniScale {mode}",
            (row["eflops"][0], row["accuracy"][0]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
            color="tab:red",
        )
    ax.set_xlabel("mean eFLOPs per query")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Quality-cost frontier (test split, mean of {frontier['seeds']} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_regret(mode: ModeResults, path: Path) -> Path:
    """Cumulative regret against the Oracle and against the best fixed config, mean +- sd over seeds."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in (
        (axes[0], "oracle", "against the Oracle"),
        (axes[1], "best_fixed", "against the best fixed config"),
    ):
        for name, curves in mode.curves.items():
            if not (name.startswith(REGRET_POLICIES) or name in REFERENCE_POLICIES) or " w/o " in name:
                continue
            mean, spread = (np.asarray(v) for v in curves[key])
            steps = np.arange(1, mean.size + 1)
            style = "--" if name in REFERENCE_POLICIES else "-"
            width = 2.0 if name == "UniScale" else 1.0
            (line,) = ax.plot(steps, mean, style, lw=width, label=name)
            ax.fill_between(steps, mean - spread, mean + spread, color=line.get_color(), alpha=0.15)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xlabel("query")
        ax.set_ylabel("cumulative regret (reward)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{mode.mode}: cumulative regret")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_choices(mode: ModeResults, configs: list[str], path: Path) -> Path:
    """UniScale's share of each config per window of the stream (mean over seeds), stacked."""
    plt = _pyplot()
    shares = np.asarray(mode.choices)
    starts = np.arange(shares.shape[0]) * mode.window
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(shares.shape[0])
    for a, config in enumerate(configs):
        ax.bar(starts, shares[:, a], width=mode.window, bottom=bottom, align="edge", label=config, alpha=0.85)
        bottom += shares[:, a]
    ax.set_xlim(0, starts[-1] + mode.window)
    ax.set_ylim(0, 1)
    ax.set_xlabel("query")
    ax.set_ylabel(f"share of choices (windows of {mode.window})")
    ax.set_title(f"{mode.mode}: configurations UniScale chose over time")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_margin(rewards: dict[str, np.ndarray], mode: str, path: Path) -> Path:
    """The running mean reward of each policy over one stream (the demo's margin plot)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, reward in rewards.items():
        steps = np.arange(1, reward.size + 1)
        style = ":" if "hindsight" in name else "-"
        ax.plot(steps, np.cumsum(reward) / steps, style, label=name)
    ax.set_xlabel("query")
    ax.set_ylabel(f"running mean reward ({mode})")
    ax.set_title("UniScale against the best single config and a cascade, on the same questions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
