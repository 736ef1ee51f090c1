"""The `uniscale` command, run as a user runs it: a real subprocess on the real S model."""

import subprocess
import sys
from pathlib import Path

import pytest
from store_support import SHAPES, ScriptedExecutor, real_encoder

from uniscale_integrations import ConfigSpace, UniScale


def _uniscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uniscale_integrations.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ask_prints_answer_config_cost_and_why() -> None:
    done = _uniscale("ask", "What is 2 + 3?", "--models", "S", "--max-new-tokens", "8", "--explain")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("answer:", "config:", "cost:", "score:", "why:", "decision id:"):
        assert label in out
    assert "eFLOPs" in out
    assert out.count("S/qp") >= 4  # the chosen config plus the explain table
    assert "nothing learned yet" in out  # a fresh policy: no context feature has a share


def _learned_store(path: Path) -> None:
    """A store whose policy learned, on the CLI's S space, that CP 4 pays on arithmetic and not on prose."""
    space = ConfigSpace.grid(["S"], qp=(1, 2), cp=(1, 4))
    questions = ["What is 17 * 3?", "Compute 120 / 8 + 5.", "Name a famous painter.", "Describe a calm sea."]
    with UniScale(space, ScriptedExecutor(), SHAPES, encoder=real_encoder(), store=str(path)) as engine:
        for _ in range(3):
            for question in questions:
                for config in space:
                    result = engine.run(question, config=config)
                    arithmetic = any(ch.isdigit() for ch in question)
                    engine.feedback(result.decision_id, correct=float(arithmetic == (config.cp == 4)))


def test_ask_explain_prints_the_features_behind_the_choice_then_the_path_trace(tmp_path: Path) -> None:
    store = tmp_path / "policy.db"
    _learned_store(store)
    done = _uniscale(
        "ask", "What is 6 * 7?", "--models", "S", "--max-new-tokens", "8", "--store", str(store), "--explain",
        "--config", "S/qp2/cp4/bs1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    before, after = out.split("answer:", 1)
    headline = next(line for line in before.splitlines() if line.startswith("why "))
    assert headline.startswith("why S/qp")
    assert "/cp4/" in headline.split(" rather than ")[0]
    assert "rather than S/qp" in headline
    assert "lead +" in headline
    assert "feature" in before
    assert "share" in before
    assert any(name in before for name in ("bias", "log_length", "digit_share", "numbers", "operators", "emb0"))
    assert "search:  8 paths" in after  # the forced QP 2 x CP 4 search, read off its paths
    for label in ("votes:", "stopped:", "#0 ", "#7 "):
        assert label in after
    assert "completion tokens" in after


def test_learn_runs_the_closed_loop_and_shows_the_margin(tmp_path: Path) -> None:
    png = tmp_path / "margin.png"
    done = _uniscale("learn", "--questions", "4", "--models", "S", "--max-new-tokens", "8", "--margin", str(png))
    assert done.returncode == 0, done.stderr
    assert "closed loop over 4 reasoning-gym questions" in done.stdout
    assert "accuracy" in done.stdout
    assert "configs chosen per tier" in done.stdout
    # Beside the curve: the best single config and the cascade on the same questions, and the plot's path.
    for line in ("best single config (tuning split): M/", "cascade", "UniScale + prior", "margin of UniScale"):
        assert line in done.stdout
    assert f"plot: {png}" in done.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ask", "What?", "--config", "M-qp1"), "cannot parse config"),
        (("ask", "What?", "--models", "XL"), "XL"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    done = _uniscale(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
