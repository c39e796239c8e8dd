"""The demo job, through the library and through the command line."""

from __future__ import annotations

from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.demo import run_digits_demo


def test_demo_training_improves_recall_on_held_out_digits() -> None:
    result = run_digits_demo(epochs=4, seed=1)
    assert result["recall_at_1"] > result["initial_recall_at_1"] + 0.03
    assert result["recall_at_1"] <= result["recall_at_2"] <= result["recall_at_8"] <= 1.0


def test_demo_command_prints_the_recall_table() -> None:
    out = CliRunner().invoke(app, ["demo", "--epochs", "2"])
    assert out.exit_code == 0, out.output
    assert "trained embedder" in out.output and "raw pixels" in out.output


def test_bad_option_exits_non_zero_with_a_message() -> None:
    out = CliRunner().invoke(app, ["demo", "--epochs", "0"])
    assert out.exit_code != 0
    assert "epochs" in out.output
