"""Writing the benchmark's results: JSON, CSV, a Markdown summary and the plots."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from uniscale_integrations.bench.evaluate import BenchResults, ModeResults
from uniscale_integrations.bench.replay import BEST_FIXED, BEST_PER_TIER, ORACLE, UNISCALE

METRICS = ("reward", "accuracy", "eflops", "regret_oracle", "regret_best")


def write_results(results: BenchResults, out: Path, *, plots: bool = True, command: str | None = None) -> str:
    """Write ``results.json``, ``policies.csv``, ``frontier.csv``, ``tiers.csv``, ``summary.md``
    (and the PNG plots) into ``out``; returns the Markdown summary."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(_plain(results), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    _write_policies_csv(results, out / "policies.csv")
    _write_frontier_csv(results, out / "frontier.csv")
    _write_tiers_csv(results, out / "tiers.csv")
    if plots:
        from uniscale_integrations.bench.plots import plot_all

        plot_all(results, out)
    markdown = summary_markdown(results, command=command, plots=plots)
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    return markdown


# ---------------------------------------------------------------------- JSON and CSV
def _plain(value: Any) -> Any:
    """JSON-able data: dataclasses as dicts, tuples as lists, NaN as None."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_policies_csv(results: BenchResults, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["mode", "policy", "kind", *(f"{m}_{s}" for m in METRICS for s in ("mean", "sd")), "seconds"])
        for mode, m in results.modes.items():
            for row in m.rows:
                values = [v for metric in METRICS for v in row[metric]]
                writer.writerow([mode, row["policy"], row["kind"], *values, row["seconds"]])


RIVAL_KNOBS = {"BEST-Route": "tolerance", "cascade": "threshold"}
"""Rivals whose frontier points come from their own knob, not from the cost weight."""


def _write_frontier_csv(results: BenchResults, path: Path) -> None:
    frontier = results.frontier
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["router", "cost_weight", "mean_eflops", "accuracy"])
        for name, points in frontier["points"].items():
            swept = len(points) == len(frontier["sweep"]) and name not in RIVAL_KNOBS
            for i, (cost, accuracy) in enumerate(points):
                writer.writerow(
                    [name, frontier["sweep"][i] if swept else f"{RIVAL_KNOBS.get(name, 'point')} {i}", cost, accuracy]
                )
        for name, (cost, accuracy) in frontier["fixed"].items():
            writer.writerow([f"Fixed {name}", "", cost, accuracy])
        writer.writerow(["Random", "", *frontier["random"]])


def _write_tiers_csv(results: BenchResults, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["tier", "questions", "config", "accuracy", "mean_eflops"])
        for row in results.tiers:
            for config, accuracy in row["accuracy"].items():
                writer.writerow([row["tier"], row["questions"], config, accuracy, row["eflops"][config]])


# ---------------------------------------------------------------------- Markdown
def _ms(value: tuple[float, float], digits: int = 3, *, percent: bool = False, sci: bool = False) -> str:
    mean, spread = value
    if not math.isfinite(mean):
        return "n/a"
    if sci:
        text = f"{mean:.3g}"
        return text if not math.isfinite(spread) or spread == 0 else f"{text} ± {spread:.2g}"
    scale = 100.0 if percent else 1.0
    unit = "%" if percent else ""
    text = f"{scale * mean:.{digits}f}{unit}"
    if math.isfinite(spread) and spread > 0:
        text += f" ± {scale * spread:.{digits}f}"
    return text


def _met(value: bool | None) -> str:
    return "report" if value is None else ("**yes**" if value else "**no**")


def _goal_value(goal: dict[str, Any]) -> str:
    measured = goal["measured"]
    if goal["goal"] == "P2":
        return _ms(measured, 1, percent=True)
    if goal["goal"] in ("P3", "P4"):
        return f"{measured[0]:+.1f}%"
    if "gap" in goal["what"]:
        return f"{measured[0]:.2f}" if math.isfinite(measured[0]) else "n/a (no gap: best fixed = best per tier)"
    if "mean reward" in goal["what"]:
        return _ms(measured, 3)
    return _ms(measured, 4 if "AIQ" in goal["what"] else 1)


def _goal_note(goal: dict[str, Any]) -> str:
    detail = goal.get("detail", {})
    if goal["goal"] == "P1" and "uniscale_reward" in detail:
        reward, best = detail["uniscale_reward"], detail["best_fixed_reward"]
        return f"mean reward: {detail['name']} {reward:.3f}, best fixed {best:.3f}"
    if goal["goal"] == "P1" and "per_tier" in detail:
        return (
            f"reward: {detail['name']} {detail['uniscale']:.3f}, best fixed {detail['best_fixed']:.3f}, "
            f"best per tier {detail['per_tier']:.3f}"
        )
    if goal["goal"] == "P1" and "hull_aiq" in detail:
        share = detail["share_of_points_above_hull"][0]
        return (
            f"hull AIQ {_ms(detail['hull_aiq'], 4)}; {100 * share:.0f}% of UniScale's sweep points lie above the hull"
        )
    if goal["goal"] == "P1" and "tuned_references" in detail:
        return "; ".join(f"{name} {value:.3f}" for name, value in detail["tuned_references"].items())
    if goal["goal"] == "P1" and "rivals_aiq" in detail:
        return "rivals' AIQ: " + ", ".join(f"{name} {value:.4f}" for name, value in detail["rivals_aiq"].items())
    if goal["goal"] == "P2":
        return (
            f"a UniScale point within the tolerance on {detail['seeds_with_a_qualifying_point']} of {detail['of']} "
            f"seeds; the Oracle's saving at the same accuracy: {_ms(detail['oracle_saving'], 1, percent=True)}; "
            f"UniScale + prior: {_ms(detail['with_prior'], 1, percent=True)} "
            f"({detail['with_prior_found']} of {detail['of']} seeds)"
        )
    if goal["goal"] == "P3" and detail.get("other_tts_only"):
        others = ", ".join(f"{name}: {gain:+.1f}%" for name, gain in detail["other_tts_only"].items())
        return f"against the untuned TTS-only variant(s): {others}"
    if goal["goal"] == "P4":
        return f"accuracy points lost: {detail['accuracy_points_lost']:+.1f}"
    return ""


def _recurrence(length: int, questions: int) -> str:
    low, high = length // questions, -(-length // questions)
    times = f"{low} or {high} times" if low != high else f"{low} time{'s' if low != 1 else ''}"
    return times if low else "at most once"


def summary_markdown(results: BenchResults, *, command: str | None = None, plots: bool = True) -> str:
    info = results.info
    settings = info["table_settings"]
    plan = settings.get("plan", {})
    lines = ["# UniScale benchmark", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    source = (
        f"{plan.get('style', 'reasoned')} answers, "
        f"{settings.get('cap', plan.get('max_new_tokens', '?'))} new tokens per path"
        if plan
        else "synthetic outcomes"
        if settings.get("synthetic")
        else "unknown settings"
    )
    lines += [
        f"Outcome table: {info['questions']} questions "
        f"({info['tune_questions']} tuning, {info['test_questions']} test) "
        f"over {len(info['tiers'])} tiers ({', '.join(info['tiers'])}) x {len(info['configs'])} configs "
        f"({', '.join(info['configs'])}); {source}. "
        f"Replay: {len(info['seeds'])} seeds x {info['length']} queries per stream, in shuffled passes over "
        f"the {info['test_questions']} distinct test questions "
        f"(each {_recurrence(info['length'], info['test_questions'])} per stream). "
        "Mean ± sd over seeds.",
        "",
    ]
    tuned = "; ".join(f"{mode}: {_tuned(m)}" for mode, m in results.modes.items())
    lines += [f"Tuned on the tuning split (never reported): {tuned}.", ""]
    lines += [
        "## Goals",
        "",
        "| goal | mode | what | measured | target | met | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for goal in results.goals:
        lines.append(
            f"| {goal['goal']} | {goal['mode']} | {goal['what']} | {_goal_value(goal)} | {goal['target']} "
            f"| {_met(goal['met'])} | {_goal_note(goal)} |"
        )
    lines.append("")
    for mode, m in results.modes.items():
        lines += _mode_markdown(mode, m, info["length"])
    lines += _frontier_markdown(results)
    lines += _tiers_markdown(results)
    if plots:
        lines += ["## Plots", ""]
        lines += ["![frontier](frontier.png)", ""]
        for mode in results.modes:
            lines += [f"![regret {mode}](regret_{mode}.png)", "", f"![choices {mode}](choices_{mode}.png)", ""]
    return "\n".join(lines).rstrip() + "\n"


def _tuned(m: ModeResults) -> str:
    """What the tuning split chose in one mode."""
    text = f"{m.bandit}, TTS-only model {m.tts_model}"
    if m.prior_bandit is not None:
        rivals = m.tuning["rivals"]
        text += (
            f"; with the prior {m.prior_bandit} (prior from one half, scored on the other); "
            f"BEST-Route tolerance {rivals['tolerance']:g}, cascade {rivals['small_config']} -> "
            f"{rivals['strong_config']} below a score of {rivals['threshold']:.3f}"
        )
    return text


def _mode_markdown(mode: str, m: ModeResults, length: int) -> list[str]:
    w = m.weights
    lines = [
        f"## {mode} (reward = {w.correct:g} correct + {w.score:g} score + {w.cost:g} (1 - cost))",
        "",
        f"| policy | mean reward | accuracy | mean eFLOPs | regret vs Oracle @{length} "
        f"| regret vs best fixed @{length} |",
        "|---|---|---|---|---|---|",
    ]
    order = {"policy": 0, "ablation": 1, "fixed": 2, "reference": 3}
    for row in sorted(m.rows, key=lambda r: order[r["kind"]]):
        name = row["policy"]
        if name == BEST_FIXED:
            name = f"{BEST_FIXED}: {m.best_fixed}"
        bold = "**" if row["policy"] in (UNISCALE, ORACLE, BEST_FIXED, BEST_PER_TIER) else ""
        lines.append(
            f"| {bold}{name}{bold} | {_ms(row['reward'])} | {_ms(row['accuracy'])} | {_ms(row['eflops'], sci=True)} "
            f"| {_ms(row['regret_oracle'], 1)} | {_ms(row['regret_best'], 1)} |"
        )
    lines += [
        "",
        "Best config per tier (hindsight, test split): "
        + ", ".join(f"{t}: {c}" for t, c in m.best_per_tier.items())
        + ".",
    ]
    choices = "; ".join(
        f"{tier}: " + ", ".join(f"{c} {100 * s:.0f}%" for c, s in sorted(shares.items(), key=lambda kv: -kv[1]))
        for tier, shares in m.tier_choices.items()
    )
    lines += ["", f"UniScale's choices per tier in the second half of the streams: {choices}.", ""]
    if m.early_stopping:
        lines += _early_stopping_markdown(m)
    return lines


def _early_stopping_markdown(m: ModeResults) -> list[str]:
    n = m.early_stopping[0]["questions"]
    lines = [
        f"Early stopping ({m.mode}, the {n} test questions collected both ways):",
        "",
        "| run | accuracy | mean eFLOPs | mean reward |",
        "|---|---|---|---|",
    ]
    for row in m.early_stopping:
        if row["kind"] == "fixed":
            lines.append(
                f"| {row['policy']}: on / off | {row['accuracy_on']:.3f} / {row['accuracy_off']:.3f} "
                f"| {row['eflops_on']:.3g} / {row['eflops_off']:.3g} "
                f"(tokens {row['tokens_on']:.0f} / {row['tokens_off']:.0f}; {row['pruned']:.1f} paths pruned) | |"
            )
        else:
            lines.append(
                f"| {row['policy']} | {_ms(row['accuracy'])} | {_ms(row['eflops'], sci=True)} | {_ms(row['reward'])} |"
            )
    return [*lines, ""]


def _frontier_markdown(results: BenchResults) -> list[str]:
    frontier = results.frontier
    sweep = ", ".join(f"{w:g}" for w in frontier["sweep"])
    lines = [
        "## Quality-cost frontier",
        "",
        f"Each learning policy replayed with cost weights w3 in {{{sweep}}} (w1 : w2 = 6 : 1); "
        "AIQ is the mean height of the non-decreasing convex hull of its (mean eFLOPs, accuracy) points between "
        "the cheapest and the dearest single config (RouterBench); APGR the mean share of the accuracy gap from the "
        f"cheapest to the most accurate single config ({frontier['most_accurate_config']}) recovered (RouteLLM). "
        "The rivals trace theirs over their own knobs: BEST-Route over its tolerances, the cascade over its "
        "escalation thresholds and two strong configs; the offline router and UniScale + prior are refitted "
        "(on the tuning split) per w3. Per seed, then mean ± sd.",
        "",
        "| router | AIQ | APGR |",
        "|---|---|---|",
    ]
    for name, metrics in frontier["metrics"].items():
        lines.append(f"| {name} | {_ms(metrics['aiq'], 4)} | {_ms(metrics['apgr'])} |")
    saving = frontier["saving"]
    weights = ", ".join(f"{w:g}" for w in frontier["saving_cost_weight"])
    lines += [
        "",
        f"eFLOPs saved against {frontier['most_accurate_config']} at <= 1 point of accuracy lost: "
        f"{_ms(saving, 1, percent=True)} (UniScale point with w3 = {weights} per seed; "
        f"{frontier['saving_found']} of {frontier['seeds']} seeds have one).",
        "",
    ]
    return lines


def _tiers_markdown(results: BenchResults) -> list[str]:
    configs = results.info["configs"]
    lines = [
        "## Accuracy per tier and config (test split)",
        "",
        "| tier | questions | " + " | ".join(configs) + " | per-question oracle |",
        "|---|---|" + "---|" * len(configs) + "---|",
    ]
    for row in results.tiers:
        cells = " | ".join(f"{row['accuracy'][c]:.2f}" for c in configs)
        lines.append(f"| {row['tier']} | {row['questions']} | {cells} | {row['oracle_accuracy']:.2f} |")
    total = max(1, sum(r["questions"] for r in results.tiers))
    eflops = " | ".join(f"{sum(r['eflops'][c] * r['questions'] for r in results.tiers) / total:.3g}" for c in configs)
    lines += [f"| mean eFLOPs | | {eflops} | |", ""]
    settings = results.info["table_settings"]
    pass_at_k = settings.get("pass_at_k")
    if pass_at_k:
        lines += [
            "pass@k per tier and config (test split): the share of questions on which some path of the config is "
            "right (what a perfect verifier could pick), from the table's samples:",
            "",
            "| tier | " + " | ".join(configs) + " |",
            "|---|" + "---|" * len(configs),
        ]
        for tier, shares in pass_at_k.items():
            lines.append(
                f"| {tier} | " + " | ".join(f"{shares[c]:.2f}" if c in shares else "-" for c in configs) + " |"
            )
        lines.append("")
    if "derived" in settings:
        lines += [f"How the outcomes were made: {settings['derived']}.", ""]
    return lines
