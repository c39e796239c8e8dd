"""The training loop end to end on tiny digit vectors: learning, selection, stopping, logging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.data import ArrayDataset
from deepmetric.evaluation import retrieval_metrics
from deepmetric.losses import build as build_loss
from deepmetric.miners import build as build_miner
from deepmetric.models import Embedder, EmbedderConfig, embed, load_model
from deepmetric.training import State, read_jsonl, train

from .common import digits, options, proxy_loss, tiny_model


def _map_at_r(model: torch.nn.Module, data) -> float:  # type: ignore[no-untyped-def]
    scores = retrieval_metrics(embed(model, data), data.labels, include=("map_at_r",))
    return scores["map_at_r"]


def test_training_improves_held_out_map_at_r_and_keeps_the_best_model(tmp_path: Path) -> None:
    train_data, val_data = digits(per_class=60), digits("test", per_class=60)
    model = tiny_model()
    before = _map_at_r(model, val_data)
    result = train(
        model, train_data, loss=build_loss({"name": "triplet", "margin": 0.2}),
        miner=build_miner("semi_hard"), val_data=val_data,
        options=options(epochs=3, lr=1e-2), out_dir=tmp_path,
    )  # fmt: skip
    assert result.best_metric is not None and result.best_metric > before + 0.05
    history = [record["val_map_at_r"] for record in result.history]
    assert result.best_metric == max(history) and result.best_epoch == history.index(max(history))
    # the model holds the best epoch's weights, as an independent evaluation confirms
    assert _map_at_r(model, val_data) == pytest.approx(result.best_metric, abs=1e-6)
    saved = load_model(result.model_dir)  # type: ignore[arg-type]
    assert _map_at_r(saved, val_data) == pytest.approx(result.best_metric, abs=1e-6)
    assert result.steps == 3 * 15 and result.epochs == 3 and not result.stopped_early


def test_early_stopping_after_patience_validations_without_improvement() -> None:
    result = train(
        tiny_model(), digits(), loss=build_loss("triplet"), val_data=digits("test", per_class=10),
        options=options(epochs=6, lr=1e-30, loss_lr=1e-30, patience=2),
    )  # fmt: skip
    assert result.stopped_early and result.epochs == 3 and result.best_epoch == 0
    assert len(result.history) == 3


def test_jsonl_log_holds_step_and_epoch_records(tmp_path: Path) -> None:
    result = train(
        tiny_model(), digits(), loss=proxy_loss(), options=options(epochs=2, log_every=4),
        out_dir=tmp_path,
    )  # fmt: skip
    records = read_jsonl(tmp_path / "metrics.jsonl")
    steps = [r["step"] for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert steps == list(range(4, result.steps + 1, 4))
    assert [r["epoch"] for r in epochs] == [0, 1]
    for key in ("loss", "lr", "train_pos_dist", "train_neg_dist", "train_violation_rate",
                "train_mean_cosine", "train_effective_rank", "data_time"):  # fmt: skip
        assert all(isinstance(r[key], float) for r in epochs), key


def test_callbacks_see_every_step_and_can_stop_the_run() -> None:
    seen: list[tuple[int, bool]] = []

    def stop_at_seven(state: State) -> None:
        seen.append((state.step, state.epoch_end))
        state.should_stop = state.step == 7

    result = train(
        tiny_model(), digits(), loss=build_loss("triplet"), options=options(epochs=2),
        callbacks=[stop_at_seven],
    )  # fmt: skip
    assert seen == [(s, False) for s in range(1, 8)]
    assert result.steps == 7 and result.stopped_early


def test_gradient_clipping_bounds_the_update() -> None:
    model = tiny_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])

    def stop(state: State) -> None:
        state.should_stop = True

    opts = options(
        name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip=1e-3, warmup_steps=None
    )
    train(model, digits(), loss=build_loss("contrastive"), options=opts, callbacks=[stop])
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = float((after - before).norm())
    assert 0 < step <= 1e-3 * (1 + 1e-4)  # lr 1 (factor 1 at step 0 of a cosine) x clipped norm


def test_bf16_autocast_trains_on_cpu() -> None:
    result = train(
        tiny_model(), digits(), loss=build_loss("multi_similarity"),
        options=options(epochs=1, amp="bf16"),
    )  # fmt: skip
    assert np.isfinite(result.history[0]["loss"])


def test_the_backbone_stays_frozen_for_the_first_epochs() -> None:
    model = tiny_model()
    start = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.projection.weight.detach().clone()
    snapshots = []

    def snapshot(state: State) -> None:
        if state.epoch_end:
            snapshots.append({k: v.clone() for k, v in model.backbone.state_dict().items()})

    train(
        model, digits(), loss=build_loss("triplet"),
        options=options(epochs=2, freeze_backbone_epochs=1), callbacks=[snapshot],
    )  # fmt: skip
    assert all(torch.equal(start[k], snapshots[0][k]) for k in start)
    assert not all(torch.equal(start[k], snapshots[1][k]) for k in start)
    assert not torch.equal(head, model.projection.weight)
    assert not model.frozen


def test_image_batches_are_augmented_on_the_device() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 12, 12, generator=gen)
    data = ArrayDataset(images, np.arange(40) % 5)
    torch.manual_seed(0)
    model = Embedder(EmbedderConfig(backbone={"name": "conv4", "in_channels": 1, "channels": 4,
                                              "num_blocks": 2}, embedding_dim=4))  # fmt: skip
    augment = {"size": 8, "crop_scale": (0.5, 1.0), "hflip": 0.5, "mean": (0.5,), "std": (0.5,)}
    result = train(
        model, data, loss=build_loss("triplet"), val_data=data,
        options=options(epochs=1, batch_size=10, m_per_class=2, augmentation=augment),
    )  # fmt: skip
    assert np.isfinite(result.history[0]["loss"]) and result.best_metric is not None


def test_channels_last_trains_the_same_model_and_gives_it_back_contiguous() -> None:
    gen = torch.Generator().manual_seed(1)
    data = ArrayDataset(torch.rand(40, 3, 10, 10, generator=gen), np.arange(40) % 5)
    config = EmbedderConfig(backbone={"name": "conv4", "in_channels": 3, "channels": 4,
                                      "num_blocks": 2}, embedding_dim=4)  # fmt: skip
    weights = []
    for channels_last, expected in ((False, False), (True, True), (None, True)):
        torch.manual_seed(0)
        model = Embedder(config)
        seen: list[bool] = []
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))

        def layout(state: State, conv: torch.nn.Module = conv, seen: list[bool] = seen) -> None:
            seen.append(conv.weight.is_contiguous(memory_format=torch.channels_last))

        train(
            model, data, loss=build_loss("triplet"), callbacks=[layout],
            options=options(epochs=2, batch_size=10, m_per_class=2, channels_last=channels_last),
        )  # fmt: skip
        assert set(seen) == {expected}  # the layout it trained in (a 4-channel weight)
        assert all(p.is_contiguous() for p in model.parameters())
        weights.append(model.state_dict())
    # other kernels, so equal up to rounding; not the conv biases (a bias before BatchNorm has
    # a zero gradient up to rounding, which AdamW's normalisation turns into lr-sized steps)
    # nor the running means that follow them
    for key in [k for k in weights[0] if k.endswith("weight")]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(weights[2][key], weights[1][key], rtol=0, atol=0)


def test_the_default_layout_is_the_backbones_preference() -> None:
    def model(name: str, **kw: object) -> Embedder:
        return Embedder(EmbedderConfig(backbone={"name": name, **kw}))

    plain = options().runtime
    assert plain.wants_channels_last(model("conv4", in_channels=1, channels=4)) is True
    assert plain.wants_channels_last(model("resnet18", in_channels=1)) is False
    assert plain.wants_channels_last(model("mlp", in_features=4, hidden_sizes=[4])) is False
    forced = options(channels_last=False).runtime
    assert forced.wants_channels_last(model("conv4", channels=4)) is False
