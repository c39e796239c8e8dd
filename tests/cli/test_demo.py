"""The demo job, through the library and the command line (one epoch, to stay fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors
from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.demo import TEST_CLASSES, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(app, ["demo", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output, out


def test_demo_prints_the_three_row_table_and_an_example(demo_run: tuple[str, Path]) -> None:
    output, out = demo_run
    for row in ("raw pixels", "untrained network", "trained embedder"):
        assert row in output
    for header in ("R@1", "R@8", "MAP@R", "NMI"):
        assert header in output
    assert "example retrieval" in output and "next:" in output
    assert f"report: {out / 'report.html'}" in output


def test_demo_writes_model_report_and_config(demo_run: tuple[str, Path]) -> None:
    _, out = demo_run
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "config.yaml").is_file() and (out / "metrics.jsonl").is_file()
    assert "<html" in (out / "report.html").read_text(encoding="utf-8")[:500].lower()


def test_raw_pixel_row_matches_a_scikit_learn_oracle(tmp_path: Path) -> None:
    result = run_demo(epochs=1, out_dir=str(tmp_path / "run"), report=False)
    digits = load_digits()
    held = np.isin(digits.target.astype(str), TEST_CLASSES)
    x, y = digits.data[held] / 16.0, digits.target[held]
    # the nearest other item under cosine distance, by brute force
    _, idx = NearestNeighbors(n_neighbors=2, metric="cosine").fit(x).kneighbors(x)
    oracle = float(np.mean(y[idx[:, 1]] == y))
    assert result.table["raw pixels"]["recall_at_1"] == pytest.approx(oracle, abs=2e-3)
    assert result.report is None and result.example[0] in TEST_CLASSES
    assert len(result.example[1]) == 5


def test_bad_option_exits_non_zero_with_a_message() -> None:
    out = CliRunner().invoke(app, ["demo", "--epochs", "0"])
    assert out.exit_code != 0
    assert "epochs" in out.output


def test_the_default_demo_learns_a_metric_above_raw_pixels(tmp_path: Path) -> None:
    # the demo's promise, at its defaults (seed 0, every epoch): the unseen digits rank and
    # cluster better in the learned embedding than in pixel space, and better than untrained
    table = run_demo(out_dir=str(tmp_path / "run"), report=False).table
    trained, pixels = table["trained embedder"], table["raw pixels"]
    assert trained["map_at_r"] > pixels["map_at_r"] + 0.02
    assert trained["nmi"] > pixels["nmi"]
    assert trained["map_at_r"] > table["untrained network"]["map_at_r"] + 0.02
