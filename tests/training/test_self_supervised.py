"""Self-supervised and semi-supervised training: unlabelled formats, two-view batches, the
projection head kept out of the saved model, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from deepmetric.config import load_config
from deepmetric.data import (
    ArrayDataset,
    CSVDataset,
    ImageFolderDataset,
    NpzDataset,
    combine,
    labelled_mask,
    without_labels,
)
from deepmetric.losses import build as build_loss
from deepmetric.models import Embedder
from deepmetric.runs import run_training
from deepmetric.training import train
from deepmetric.training.checkpoint import load_checkpoint

from .common import options

AUGMENT = {"size": 12, "crop_scale": [0.4, 0.7], "crop_ratio": [0.9, 1.1], "hflip": 0.0,
           "mean": None, "std": None}  # fmt: skip


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 12, 12), dtype=np.uint8)


def test_flat_folders_npz_and_csv_without_labels_are_unlabelled(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("L", (4, 4), color=40 * i).save(flat / f"{i}.png")
    np.savez(tmp_path / "x.npz", images=_images(3))
    (flat / "x.csv").write_text("path\n0.png\n1.png\n2.png\n")
    for data in (ImageFolderDataset(flat, check="none"), NpzDataset(tmp_path / "x.npz"),
                 CSVDataset(flat / "x.csv")):  # fmt: skip
        assert data.labels[:3].tolist() == [0, 1, 2] and data.num_classes == len(data)
        assert not labelled_mask(data).any()
    assert float(CSVDataset(flat / "x.csv")[2][0].mean()) == pytest.approx(80 / 255, abs=1e-3)


def test_without_labels_and_combine_keep_the_labelled_classes() -> None:
    labelled = ArrayDataset(_images(4), ["a", "b", "a", "b"])
    pool = ArrayDataset(_images(3, seed=1).astype(np.float32) / 255, [0, 0, 0])
    both = combine(labelled, pool)
    assert both.labels.tolist() == [0, 1, 0, 1, 2, 3, 4]
    assert labelled_mask(both).tolist() == [True] * 4 + [False] * 3
    torch.testing.assert_close(both[5][0], pool[1][0])  # uint8 and float inputs, one scale
    with pytest.raises(ValueError, match=r"data.unlabelled: items of shape \(1, 8, 8\) differ"):
        combine(labelled, ArrayDataset(_images(2)[:, :8, :8], [0, 1]))
    part = without_labels(labelled, keep=np.array([True, False, True, False]))
    assert part.labels.tolist() == [0, 1, 0, 2] and part.class_names == ["a", "item 1", "item 3"]


class Spy(nn.Module):
    """A model that records every batch it sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, list[torch.Tensor]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.model(x)


class LabelSpy(nn.Module):
    """NT-Xent that records the labels of every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_loss({"name": "ntxent", "temperature": 0.5})
        self.seen = list[torch.Tensor]()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, **kw: object) -> torch.Tensor:
        self.seen.append(labels.clone())
        return self.inner(embeddings, labels, **kw)


def test_two_view_batches_hold_two_different_views_of_the_same_item() -> None:
    # item i: brightness 10 i + 4 plus a smooth pattern within +-4, so a crop of it shows a
    # new pattern while its mean still names the item
    coarse = torch.rand(24, 1, 3, 3, generator=torch.Generator().manual_seed(0)) * 8 - 4
    pattern = nn.functional.interpolate(coarse, size=(12, 12), mode="bilinear")[:, 0]
    raw = (pattern + 10 * torch.arange(24)[:, None, None] + 4).round().to(torch.uint8).numpy()
    data = without_labels(ArrayDataset(raw, np.zeros(24, np.int64)))
    torch.manual_seed(0)
    spy = Spy(Embedder({"backbone": {"name": "conv4", "in_channels": 1, "channels": 4,
                                     "num_blocks": 2}, "embedding_dim": 4}))  # fmt: skip
    loss = LabelSpy()
    opts = options(epochs=1, batch_size=8, m_per_class=2, augmentation=AUGMENT)
    train(spy, data, loss=loss, options=opts)
    assert len(spy.seen) == len(loss.seen) == 6
    for views, labels in zip(spy.seen, loss.seen, strict=True):
        assert sorted(torch.bincount(labels).unique().tolist()) in ([0, 2], [2])
        for item in labels.unique():
            pair = views[labels == item]
            assert not torch.allclose(pair[0], pair[1])  # two different views
            items = ((pair.mean(dim=(1, 2, 3)) * 255 - 4) / 10).round()  # each of its own item
            assert items.tolist() == [float(item)] * 2


def test_unlabelled_training_needs_an_augmentation_and_two_views() -> None:
    data = without_labels(ArrayDataset(_images(8), np.zeros(8, np.int64)))
    model = Embedder({"backbone": {"name": "conv4", "in_channels": 1, "channels": 2}})
    loss = build_loss("ntxent")
    with pytest.raises(ValueError, match="unlabelled items.*set an augmentation"):
        train(model, data, loss=loss, options=options(epochs=1, batch_size=4, m_per_class=2))


def _config(tmp_path: Path, *sets: str) -> object:
    np.savez(tmp_path / "pool.npz", images=_images(40, seed=3))
    (tmp_path / "run.yaml").write_text("epochs: 1\n")
    return load_config(
        tmp_path / "run.yaml",
        [f"data.train={{name: npz, path: {tmp_path / 'pool.npz'}}}",
         "data.test={name: digits, split: test, as_vectors: false}",
         "model.backbone={name: conv4, in_channels: 1, channels: 4, num_blocks: 2}",
         "model.embedding_dim=8", "sampler.batch_size=8", "sampler.m_per_class=2",
         "loss={name: projected, dim: 4, loss: {name: ntxent, temperature: 0.5}}",
         f"augmentation={json.dumps({**AUGMENT, 'size': 8})}", "epochs=1",
         "runtime.progress=false", "output.report=false", f"output.dir={tmp_path / 'run'}",
         *sets],
    )  # fmt: skip


def test_the_projection_head_trains_but_is_not_in_the_saved_model(tmp_path: Path) -> None:
    outcome = run_training(_config(tmp_path))  # type: ignore[arg-type]
    assert outcome.result.steps == 10 and "map_at_r" in outcome.metrics  # 40 items, 2 views
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert checkpoint is not None
    state = checkpoint["loss"]
    assert state["head.0.weight"].shape == (8, 8) and state["head.2.weight"].shape == (4, 8)
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert saved and not any("head" in key or "loss" in key for key in saved)
    model = Embedder({"backbone": {"name": "conv4", "in_channels": 1, "channels": 4,
                                   "num_blocks": 2}, "embedding_dim": 8})  # fmt: skip
    assert set(saved) == set(model.state_dict())


def test_an_unlabelled_test_set_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, "data.test=null")
    with pytest.raises(ValueError, match="the test set holds unlabelled items"):
        run_training(config)  # type: ignore[arg-type]


def test_semi_supervised_runs_join_labelled_and_unlabelled_items(tmp_path: Path) -> None:
    from deepmetric.runs.train import build_data

    np.savez(tmp_path / "pool8.npz", images=_images(40, seed=3)[:, :8, :8])
    config = _config(
        tmp_path,
        "data.train={name: digits, split: train, as_vectors: false}",
        f"data.unlabelled={{name: npz, path: {tmp_path / 'pool8.npz'}}}",
    )
    data = build_data(config)  # type: ignore[arg-type]
    mask = labelled_mask(data.train)
    assert mask.sum() == 901 and (~mask).sum() == 40
    assert len(np.unique(data.train.labels[~mask])) == 40  # one class per unlabelled item
    assert data.train.num_classes == 5 + 40
