"""Bad settings and bad data fail before training, with a ValueError naming the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.losses import build as build_loss
from deepmetric.training import (
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    TrainOptions,
    ValidationOptions,
    train,
)

from .common import digits, options, tiny_model


def _train(train_data=None, val_data=None, opts=None, **kwargs):  # type: ignore[no-untyped-def]
    return train(
        tiny_model(),
        digits() if train_data is None else train_data,
        loss=build_loss("triplet"),
        val_data=val_data,
        options=opts or options(epochs=1),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: OptimizerOptions(name="adamm"), r"optimizer.name must be one of .*'adam'"),
        (lambda: OptimizerOptions(lr=0), r"optimizer.lr must be > 0; got 0"),
        (lambda: OptimizerOptions(grad_clip=-1.0), r"optimizer.grad_clip must be"),
        (lambda: ScheduleOptions(name="cosin"), r"schedule.name must be one of .*'cosine'"),
        (lambda: ScheduleOptions(min_lr_ratio=2.0), r"schedule.min_lr_ratio must be in \[0, 1\]"),
        (lambda: ValidationOptions(select="mapr"), r"validation.select must be one of"),
        (lambda: ValidationOptions(patience=0), r"validation.patience must be an integer >= 1"),
        (lambda: RuntimeOptions(amp="fp8"), r"runtime.amp must be one of"),
        (lambda: RuntimeOptions(channels_last="yes"), r"runtime.channels_last must be true"),  # type: ignore[arg-type]
        (lambda: TrainOptions(epochs=0), r"epochs must be an integer >= 1; got 0"),
        (
            lambda: SamplerOptions(batch_size=10, m_per_class=4),
            r"sampler.batch_size must be a multiple of sampler.m_per_class; got batch_size=10, ",
        ),
        (lambda: TrainOptions(augmentation={"size": 0}), r"size must be a positive int"),
        (
            lambda: TrainOptions.from_dict({"epoch": 3}),
            r"unknown key 'epoch' in train options; did you mean 'epochs'\?",
        ),
    ],
)
def test_bad_options_name_the_field(build, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        build()


def test_classes_per_group_needs_a_group_field() -> None:
    with pytest.raises(ValueError, match="sampler.classes_per_group needs group"):
        TrainOptions(sampler=SamplerOptions(batch_size=8, m_per_class=2, classes_per_group=2))


def test_options_round_trip_through_a_dict() -> None:
    opts = options(patience=2, name="sgd", amp="bf16", augmentation={"size": 8})
    assert TrainOptions.from_dict(opts.to_dict()) == opts


def test_empty_training_data_is_rejected() -> None:
    with pytest.raises(ValueError, match="train_data must hold at least one item; got an empty"):
        _train(train_data=digits().subset([]))


def test_too_few_classes_for_a_batch_is_rejected() -> None:
    data = digits()
    two_classes = data.subset(np.flatnonzero(data.labels < 2))
    with pytest.raises(ValueError, match=r"train_data has 2 classes, fewer than batch_size // m"):
        _train(train_data=two_classes)


def test_validation_set_with_one_class_is_rejected() -> None:
    val = digits("test")
    one_class = val.subset(np.flatnonzero(val.labels == 3)[:10])
    with pytest.raises(ValueError, match=r"val_data must have at least 2 classes .* got 1 class"):
        _train(val_data=one_class)


def test_training_data_without_labels_is_rejected() -> None:
    with pytest.raises(ValueError, match="train_data must be a deepmetric LabeledDataset"):
        _train(train_data=torch.zeros(4, 64))


def test_fp16_without_cuda_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"runtime.amp='fp16' needs a CUDA device"):
        _train(opts=options(epochs=1, amp="fp16"))


def test_resume_without_an_output_folder_is_rejected() -> None:
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        _train(resume=True)
