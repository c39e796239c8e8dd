"""train, evaluate, embed and bench through CliRunner: outputs, saved files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.config import load_config
from deepmetric.data import DigitsDataset, ImageFolderDataset, build_augmentation
from deepmetric.index import Encoder
from deepmetric.models import embed, load_model
from deepmetric.runs import evaluate_embeddings, label_pairs
from tests.index.fixtures import IMAGE_SIZE, make_images, make_model

DIGITS = str(Path(__file__).resolve().parents[2] / "configs" / "digits.yaml")
SPEC = "{name: digits, split: test, as_vectors: true}"
runner = CliRunner()


def one_line_error(result: object, match: str) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    text = result.output.strip()  # type: ignore[attr-defined]
    last = text.splitlines()[-1]  # a progress bar may come before it
    assert last.startswith("error: ") and "Traceback" not in text and text.count("error: ") == 1
    assert match in last


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    sets = ["epochs=1", f"output.dir={out}", "output.report=false"]
    result = runner.invoke(app, ["train", DIGITS, *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert "map_at_r" in result.output and f"model: {out / 'model'}" in result.output
    return out


def test_train_saves_the_resolved_config_and_the_model(run_dir: Path) -> None:
    saved = load_config(run_dir / "config.yaml")
    assert saved.epochs == 1 and saved.output.dir == str(run_dir)
    assert (run_dir / "model" / "config.json").is_file()
    metrics = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
    assert 0.0 <= metrics["map_at_r"] <= 1.0


def test_print_config_prints_yaml_that_loads_back() -> None:
    result = runner.invoke(app, ["train", DIGITS, "--set", "epochs=7", "--print-config"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["epochs"] == 7


def test_train_bad_config_is_one_line(tmp_path: Path) -> None:
    one_line_error(
        runner.invoke(app, ["train", DIGITS, "--set", "epoch=3"]), "did you mean 'epochs'"
    )
    one_line_error(runner.invoke(app, ["train", str(tmp_path / "no.yaml")]), "not found")


def test_interrupted_training_prints_the_resume_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import deepmetric.runs

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(deepmetric.runs, "run_training", interrupted)
    out = tmp_path / "run"
    args = ["train", DIGITS, "--set", "epochs=2", "--set", f"output.dir={out}"]
    result = runner.invoke(app, args)  # before the first checkpoint: no folder to point at
    assert (
        result.exit_code == 130
        and "before the first checkpoint: nothing to resume" in (result.output)
        and "resume with" not in result.output
    )
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "step-00000010.pt").write_bytes(b"x")
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert (
        f"resume with: deepmetric train {DIGITS} --set=epochs=2 --set=output.dir={out} --resume"
        in result.output
    )


def test_a_run_folder_is_deepmetrics_own(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.yaml").write_text("mine")
    base = ["train", DIGITS, "--set", "epochs=1", "--set", "output.report=false"]
    result = runner.invoke(app, [*base, "--set", f"output.dir={data}"])
    one_line_error(result, "is not empty and was not made by deepmetric")
    assert [p.name for p in data.iterdir()] == ["config.yaml"]
    assert (data / "config.yaml").read_text() == "mine"  # untouched, also with --overwrite
    one_line_error(
        runner.invoke(app, [*base, "--set", f"output.dir={data}", "--overwrite"]), "not made by"
    )
    run = [*base, "--set", f"output.dir={tmp_path / 'run'}"]
    assert runner.invoke(app, run).exit_code == 0
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    one_line_error(runner.invoke(app, run), "holds a run; pass --resume to continue it")
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == log
    assert runner.invoke(app, [*run, "--overwrite"]).exit_code == 0
    again = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert log.count('"epoch"') > 0 and again.count('"epoch"') == log.count('"epoch"')  # one run
    one_line_error(runner.invoke(app, [*run, "--overwrite", "--resume"]), "pick one")


@pytest.mark.parametrize("protocol", ["retrieval", "clustering", "fewshot", "verification"])
def test_evaluate_protocols_as_json(run_dir: Path, protocol: str) -> None:
    result = runner.invoke(
        app, ["evaluate", str(run_dir), "--data", SPEC, "--protocol", protocol, "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output[result.output.index("{") :])
    finite = [v for v in metrics.values() if v is not None]  # unmeasurable values are null
    assert finite and all(np.isfinite(finite))
    if protocol == "verification":
        assert 0.5 < metrics["auc"] <= 1.0 and metrics["tar_at_far_1e-04"] is None


def test_evaluate_prints_a_table_and_rejects_bad_input(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(run_dir), "--data", SPEC])
    assert result.exit_code == 0 and "recall_at_1" in result.output
    one_line_error(
        runner.invoke(app, ["evaluate", str(run_dir), "--data", SPEC, "--protocol", "rank"]),
        "--protocol must be one of",
    )
    one_line_error(
        runner.invoke(app, ["evaluate", str(tmp_path), "--data", SPEC]), "is neither a run"
    )
    one_line_error(
        runner.invoke(app, ["evaluate", str(run_dir), "--data", "digts"]), "did you mean 'digits'"
    )
    one_line_error(
        runner.invoke(app, ["evaluate", str(run_dir), "--data", "{name: digits}"]),
        "vectors must be 2-D",
    )


def test_embed_npz_holds_ids_labels_and_the_npy_rows(run_dir: Path, tmp_path: Path) -> None:
    for suffix in ("npy", "npz"):
        result = runner.invoke(
            app, ["embed", str(run_dir), "--data", SPEC, "--out", str(tmp_path / f"e.{suffix}")]
        )
        assert result.exit_code == 0, result.output
    plain, full = np.load(tmp_path / "e.npy"), np.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(plain, full["embeddings"])
    assert plain.shape == (len(full["labels"]), 64) and len(np.unique(full["ids"])) == len(plain)
    one_line_error(
        runner.invoke(app, ["embed", str(run_dir), "--data", SPEC, "--out", "e.csv"]),
        "--out must end in .npy, .npz, .parquet",
    )


def test_embed_parquet_without_pyarrow_says_so(run_dir: Path, tmp_path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        result = runner.invoke(
            app, ["embed", str(run_dir), "--data", SPEC, "--out", str(tmp_path / "e.parquet")]
        )
        one_line_error(result, "writing .parquet needs pyarrow")
    else:
        pytest.skip("pyarrow is installed")


def test_label_pairs_are_same_and_different_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pairs, same = label_pairs(labels, seed=3)
    assert pairs.shape == (18, 2) and same.sum() == 9
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    np.testing.assert_array_equal(a == b, same)
    assert np.all(pairs[same, 0] != pairs[same, 1])


def test_bench_lists_runs_and_rejects_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "fast.py").write_text("print('fast ran')\n", encoding="utf-8")
    (tmp_path / "broken.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    (tmp_path / "slow.py").write_text("# bench: by hand\nraise SystemExit(4)\n", encoding="utf-8")
    (tmp_path / "_helper.py").write_text("raise SystemExit(5)\n", encoding="utf-8")
    listed = runner.invoke(app, ["bench", "--dir", str(tmp_path), "--list"])
    assert listed.exit_code == 0 and listed.output.split() == ["broken", "fast"]
    ran = runner.invoke(app, ["bench", "--dir", str(tmp_path), "--only", "fast"])
    assert ran.exit_code == 0, ran.output
    failed = runner.invoke(app, ["bench", "--dir", str(tmp_path), "--only", "broken"])
    assert failed.exit_code == 2 and "failed: broken (exit 3)" in failed.output
    one_line_error(
        runner.invoke(app, ["bench", "--dir", str(tmp_path), "--only", "fst"]), "unknown benchmark"
    )


def test_every_command_has_help() -> None:
    for command in ("demo", "train", "evaluate", "embed", "bench"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


# digits as 1x8x8 images through a 2-block conv4, with a non-trivial mean/std and eval crop
AUGMENT = {"size": 8, "crop_scale": None, "hflip": 0.0, "mean": [0.3], "std": [0.2]}
IMAGE_SPEC = "{name: digits, split: test}"


@pytest.fixture(scope="module")
def image_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("image")
    config = {
        "data": {
            "train": {"name": "digits", "split": "train"},
            "test": {"name": "digits", "split": "test"},
        },
        "model": {
            "backbone": {"name": "conv4", "in_channels": 1, "channels": 8, "num_blocks": 2},
            "embedding_dim": 16,
        },
        "sampler": {"batch_size": 40, "m_per_class": 8},
        "epochs": 1,
        "augmentation": AUGMENT,
        "runtime": {"progress": False},
        "output": {"dir": str(folder / "run"), "report": False},
    }
    (folder / "image.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = runner.invoke(app, ["train", str(folder / "image.yaml")])
    assert result.exit_code == 0, result.output
    return folder / "run"


def by_hand(run: Path) -> torch.Tensor:
    """Oracle: the eval pipeline built here from AUGMENT, then the saved model."""
    model = load_model(run / "model")
    return embed(nn.Sequential(build_augmentation(AUGMENT, "eval"), model), DigitsDataset("test"))


def test_evaluate_scores_an_image_run_as_its_test_did(image_run_dir: Path) -> None:
    for target in (image_run_dir, image_run_dir / "model"):
        result = runner.invoke(app, ["evaluate", str(target), "--data", IMAGE_SPEC, "--json"])
        assert result.exit_code == 0, result.output
        got = json.loads(result.output[result.output.index("{") :])
        saved = json.loads((image_run_dir / "test_metrics.json").read_text(encoding="utf-8"))
        assert got == pytest.approx(saved, abs=1e-6)
    ev = load_config(image_run_dir / "config.yaml").evaluation
    want = evaluate_embeddings(by_hand(image_run_dir), DigitsDataset("test"), ev)
    assert got == pytest.approx(want, abs=1e-6)  # (raw items score differently: test_config)


def test_embed_an_image_run_through_its_eval_pipeline(image_run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.npy"
    result = runner.invoke(
        app, ["embed", str(image_run_dir), "--data", IMAGE_SPEC, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(out), by_hand(image_run_dir).numpy(), atol=1e-5)


def test_a_model_with_preprocessing_embeds_as_the_index_encoder(tmp_path: Path) -> None:
    model, images = make_model(tmp_path / "model"), make_images(tmp_path / "images")
    spec = f"{{name: folder, root: {images}, image_size: {IMAGE_SIZE}}}"
    out = tmp_path / "e.npz"
    result = runner.invoke(app, ["embed", str(model), "--data", spec, "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = ImageFolderDataset(images).paths  # the dataset's order
    want = Encoder(model).encode_files(files)  # oracle: the index's decode, resize, mean/std
    np.testing.assert_allclose(np.load(out)["embeddings"], want, atol=1e-5)
    result = runner.invoke(app, ["evaluate", str(model), "--data", spec, "--json"])
    assert result.exit_code == 0, result.output


def test_saved_transform_errors_are_one_line(tmp_path: Path) -> None:
    model, images = make_model(tmp_path / "model"), make_images(tmp_path / "images")
    spec = f"{{name: folder, root: {images}, image_size: {IMAGE_SIZE}}}"
    one_line_error(
        runner.invoke(app, ["evaluate", str(model), "--data", IMAGE_SPEC]),
        "images have 1 channel(s) but mean/std have 3",
    )
    damaged = [
        ("{", "train_config.json' is not valid JSON"),
        ('{"augmentation": 3}', "augmentation must be a mapping or null; got 3"),
    ]
    out = str(tmp_path / "e.npy")
    for text, match in damaged:
        (model / "train_config.json").write_text(text, encoding="utf-8")
        for command in (["evaluate", str(model)], ["embed", str(model), "--out", out]):
            one_line_error(runner.invoke(app, [*command, "--data", spec]), match)


def test_evaluate_takes_the_ks(run_dir: Path) -> None:
    args = ["evaluate", str(run_dir), "--data", SPEC, "--json"]
    result = runner.invoke(app, [*args, "--ks", "1,3"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output[result.output.index("{") :])
    assert {"recall_at_1", "recall_at_3"} <= set(metrics) and "recall_at_2" not in metrics
    one_line_error(
        runner.invoke(app, [*args, "--ks", "1,five"]), "--ks must be comma-separated integers"
    )


def test_version_is_the_installed_distribution_version() -> None:
    import importlib.metadata

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"deepmetric {importlib.metadata.version('deepmetric')}"


def test_library_warnings_reach_the_user_as_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from deepmetric.cli._common import brief_warnings

    with warnings.catch_warnings(record=True):
        brief_warnings()
        assert warnings.formatwarning(UserWarning("4 files skipped"), UserWarning, "x.py", 1) == (
            "warning: 4 files skipped\n"
        )


def test_embed_on_a_full_disk_is_one_line_and_leaves_nothing(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from deepmetric.cli import embed as embed_cli

    def full(file: object, *args: object, **kwargs: object) -> None:
        os.write(file.fileno(), b"partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(embed_cli.np, "savez", full)
    out = tmp_path / "out" / "x.npz"
    result = runner.invoke(app, ["embed", str(run_dir), "--data", SPEC, "--out", str(out)])
    one_line_error(result, f"no space left on the device to write {out}")
    assert list(out.parent.iterdir()) == []


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
@pytest.mark.parametrize(
    "args",
    [
        ["train", DIGITS, "--device", "cuda"],
        ["train", DIGITS, "--set", "runtime.device=cuda", "--set", "epochs=1"],
        ["evaluate", "RUN", "--data", SPEC, "--device", "cuda"],
        ["embed", "RUN", "--data", SPEC, "--out", "x.npz", "--device", "cuda"],
        ["index", "build", "RUN", "--data", "photos", "--out", "i", "--device", "cuda:0"],
        ["serve", "INDEX", "--device", "cuda"],
    ],
    ids=["train", "train-set", "evaluate", "embed", "index", "serve"],
)
def test_cuda_on_a_cpu_only_torch_is_one_line(
    args: list[str], run_dir: Path, tmp_path: Path
) -> None:
    args = [str(run_dir) if a == "RUN" else a for a in args]
    args = [str(tmp_path / "missing") if a == "INDEX" else a for a in args]
    if args[0] == "train":
        args += ["--set", f"output.dir={tmp_path / 'run'}"]
    result = runner.invoke(app, args)
    one_line_error(result, "but this torch has no CUDA device")


def test_train_shows_a_line_per_epoch_with_the_score_and_eta(tmp_path: Path) -> None:
    sets = ["epochs=2", f"output.dir={tmp_path / 'run'}", "output.report=false",
            "data.val_set=test"]  # fmt: skip
    result = runner.invoke(app, ["train", DIGITS, *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val map_at_r 0." in line and "ETA" in line for line in lines)


def test_on_a_terminal_the_progress_is_a_live_bar() -> None:
    import io

    from deepmetric.training.logging import Progress
    from deepmetric.training.state import State

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(epochs=1, select="map_at_r", stream=screen)
    for step in (1, 2):
        progress(State(step=step, steps_per_epoch=2, loss=0.5))
    progress.close()
    assert "epoch 1/1  step 2/2  loss 0.5" in screen.getvalue()


def test_evaluate_without_data_scores_the_runs_own_held_out_classes(run_dir: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output[result.output.index("{") :])
    saved = json.loads((run_dir / "test_metrics.json").read_text())
    assert found["map_at_r"] == pytest.approx(saved["map_at_r"], abs=1e-6)
    one_line_error(
        runner.invoke(app, ["evaluate", str(run_dir / "model"), "--json"]),
        "is not a run directory with a config.yaml; pass --data",
    )
