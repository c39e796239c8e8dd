"""The demo job through the command line: a small run of the recipe, and the default one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.config import load_config
from deepmetric.data import bundled_omniglot
from deepmetric.evaluation import sample_episodes
from deepmetric.models import load_model
from deepmetric.runs import run_training
from deepmetric.runs.demo import ROWS, demo_config, run_demo

SMALL = [
    "data.train={name: omniglot, alphabets: [Latin, Greek, Armenian, Korean]}",
    "data.test_groups=[Korean]",
    "data.rotate_classes=false",
    "sampler.classes_per_group=5",
    "sampler.batch_size=20",
    "evaluation.episodes=40",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo") / "run"
    args = ["demo", "--epochs", "1", "--out", str(out), "--threads", "1"]
    result = CliRunner().invoke(app, [*args, *(f"--set={s}" for s in SMALL)])
    assert result.exit_code == 0, result.output
    return result.output, out


def test_demo_prints_progress_the_three_rows_and_next_commands(demo_run: tuple[str, Path]) -> None:
    output, out = demo_run
    assert "ETA" in output and "done in" in output
    for row in ROWS:
        assert row in output
    for header in ("20-way 1-shot", "MAP@R", "R@1", "points over raw pixels", "next:"):
        assert header in output
    assert f"deepmetric train {out}/config.yaml" in output


def test_demo_is_a_config_run(demo_run: tuple[str, Path]) -> None:
    _, out = demo_run
    for name in ("config.yaml", "metrics.jsonl", "test_metrics.json", "baselines.json"):
        assert (out / name).is_file(), name
    assert (out / "model" / "model.safetensors").is_file()
    baselines = json.loads((out / "baselines.json").read_text())
    assert set(baselines) == {"raw inputs", "untrained network"}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="fewshot"' in page and "Few-shot episodes" in page
    assert "wrong in pixels and right in the model" in page


def test_its_config_trains_the_same_model(demo_run: tuple[str, Path], tmp_path: Path) -> None:
    _, out = demo_run
    config = load_config(
        out / "config.yaml",
        [f"output.dir={tmp_path / 'again'}", "output.report=false", "output.baselines=false"],
    )
    again = run_training(config)
    first = load_model(out / "model").state_dict()
    second = load_model(again.result.model_dir or tmp_path / "again" / "model").state_dict()
    assert all(torch.equal(v, second[k]) for k, v in first.items())
    saved = json.loads((out / "test_metrics.json").read_text())
    assert again.metrics["fewshot_accuracy"] == saved["fewshot_accuracy"]


def test_raw_pixel_row_matches_a_naive_loop(demo_run: tuple[str, Path]) -> None:
    _, out = demo_run
    pixels = json.loads((out / "baselines.json").read_text())["raw inputs"]
    data = bundled_omniglot(["Korean"])
    x = data.inputs.flatten(1).double() / 255
    drawn = sample_episodes(
        data.labels, ways=20, shots=1, queries=1, episodes=40, seed=0,
        groups=data.extra["alphabet"], sources=data.extra["drawing"],
    )  # fmt: skip
    right = 0
    for items in drawn.items:
        for way in range(20):
            d = [float((x[items[way, 1]] - x[items[w, 0]]).norm()) for w in range(20)]
            right += int(np.argmin(d) == way)
    assert pixels["fewshot_accuracy"] == pytest.approx(right / (40 * 20))


def test_bad_option_exits_non_zero_with_a_message() -> None:
    out = CliRunner().invoke(app, ["demo", "--epochs", "0"])
    assert out.exit_code != 0 and "epochs" in out.output
    out = CliRunner().invoke(app, ["demo", "--set", "data.test_groups=[Klingon]"])
    assert out.exit_code == 2 and "Klingon" in out.output


def test_the_default_demo_recognises_unseen_alphabets_50_points_above_pixels(
    tmp_path: Path,
) -> None:
    # the demo's promise at its defaults (seed 0, the whole recipe): one-shot accuracy on
    # alphabets never seen in training at least 50 points above raw pixels
    table = run_demo(demo_config(out_dir=str(tmp_path / "run"), report=False)).table
    trained, pixels = table[ROWS[2]], table[ROWS[0]]
    assert trained["fewshot_accuracy"] >= pixels["fewshot_accuracy"] + 0.50
    assert trained["map_at_r"] > table[ROWS[1]]["map_at_r"] + 0.2


def test_evaluate_scores_the_same_episodes_from_a_file(
    demo_run: tuple[str, Path], tmp_path: Path
) -> None:
    _, out = demo_run
    file = tmp_path / "episodes.npz"
    args = [
        "evaluate", str(out), "--data", "{name: omniglot, alphabets: [Korean]}", "--protocol",
        "fewshot", "--ways", "20", "--shots", "1", "--queries", "1", "--episodes", "40",
        "--group", "alphabet", "--source", "drawing", "--metric", "euclidean",
        "--episodes-file", str(file), "--json", "--threads", "1",
    ]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output and file.is_file()
    again = CliRunner().invoke(app, args)  # now reads the file
    scores = [json.loads(r.output[r.output.index("{") :]) for r in (first, again)]
    assert scores[0] == scores[1]
    saved = json.loads((out / "test_metrics.json").read_text())
    assert scores[0]["fewshot_accuracy"] == pytest.approx(saved["fewshot_accuracy"])
    other = [*args[:3], "{name: omniglot, alphabets: [Latin]}", *args[4:]]
    refused = CliRunner().invoke(app, other)
    assert refused.exit_code == 2 and "drawn from other labels" in refused.output
