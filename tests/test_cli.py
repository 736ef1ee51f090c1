"""The `uniscale` command, run as a user runs it: a real subprocess on the real S model."""

import subprocess
import sys

import pytest


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


def test_learn_runs_the_closed_loop_and_summarises() -> None:
    done = _uniscale("learn", "--questions", "4", "--models", "S", "--max-new-tokens", "8")
    assert done.returncode == 0, done.stderr
    assert "closed loop over 4 reasoning-gym questions" in done.stdout
    assert "accuracy" in done.stdout
    assert "configs chosen per tier" in done.stdout


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
