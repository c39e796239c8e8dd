"""Kornia pipelines: eval is a fixed resize/crop/normalise, train is random but shape-keeping."""

from __future__ import annotations

import pytest
import torch

from deepmetric.data import AugmentConfig, build_augmentation

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


def test_eval_pipeline_is_a_center_crop_and_normalisation_by_hand() -> None:
    config = AugmentConfig(size=4, mean=MEAN, std=STD, eval_crop_fraction=0.5)
    evaluate = build_augmentation(config, mode="eval")
    images = torch.rand(3, 3, 8, 10)  # shorter side 8 = 4 / 0.5: the resize is the identity
    out = evaluate(images)
    crop = images[:, :, 2:6, 3:7]  # the centered 4x4 window
    expected = (crop - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(evaluate(images), out)  # deterministic


def test_eval_pipeline_resizes_the_shorter_side_and_takes_height_width() -> None:
    out = build_augmentation({"size": 6, "mean": None, "std": None}, mode="eval")(
        torch.rand(2, 3, 20, 12)
    )
    assert out.shape == (2, 3, 6, 6)
    rect = build_augmentation({"size": [4, 6], "eval_crop_fraction": 1.0}, mode="eval")
    assert rect(torch.rand(1, 3, 9, 9)).shape == (1, 3, 4, 6)


def test_train_pipeline_changes_the_batch_but_keeps_its_shape() -> None:
    config = {
        "size": 8,
        "crop_scale": [0.3, 1.0],
        "hflip": 0.5,
        "rotation": 20,
        "affine_scale": [0.9, 1.1],
        "color_jitter": [0.4, 0.4, 0.4, 0.1],
        "mean": list(MEAN),
        "std": list(STD),
    }
    train = build_augmentation(config)
    images = torch.rand(6, 3, 8, 8)
    torch.manual_seed(0)
    first = train(images)
    assert first.shape == images.shape and first.dtype == images.dtype
    assert torch.isfinite(first).all()
    evaluate = build_augmentation(config, mode="eval")
    assert not torch.allclose(first, evaluate(images))
    torch.manual_seed(0)
    torch.testing.assert_close(train(images), first)  # reproducible through the global seed
    assert not torch.allclose(train(images), first)


def test_grey_images_and_empty_batches() -> None:
    train = build_augmentation({"size": 5, "mean": [0.5], "std": [0.5], "crop_scale": None})
    assert train(torch.rand(2, 1, 7, 7)).shape == (2, 1, 5, 5)
    assert train(torch.rand(0, 1, 7, 7)).shape == (0, 1, 7, 7)


@pytest.mark.gpu
def test_runs_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    images = torch.rand(4, 3, 16, 16, device="cuda")
    for mode in ("train", "eval"):
        out = build_augmentation({"size": 8, "rotation": 10, "color_jitter": [0.2] * 4}, mode=mode)(
            images
        )  # type: ignore[arg-type]
        assert out.device.type == "cuda" and out.shape == (4, 3, 8, 8)


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            {"sise": 4},
            KeyError,
            r"unknown key 'sise' in augmentation; did you mean 'size'\?",
        ),
        ({"size": 0}, ValueError, r"size must be a positive int or \(height, width\); got 0"),
        (
            {"crop_scale": [0.5, 0.2]},
            ValueError,
            r"crop_scale must be \(min, max\) with 0\.0 <= min <= max <= 1\.0",
        ),
        ({"hflip": 2}, ValueError, r"hflip must be a probability in \[0, 1\]; got 2\.0"),
        ({"rotation": -5}, ValueError, r"rotation must be in \[0, 180\] degrees; got -5\.0"),
        (
            {"color_jitter": [0.1, 0.1]},
            ValueError,
            r"color_jitter must be \(brightness, contrast, saturation, hue\)",
        ),
        ({"mean": [0.5], "std": None}, ValueError, r"mean and std must both be None or sequences"),
        (
            {"eval_crop_fraction": 0},
            ValueError,
            r"eval_crop_fraction must be in \(0, 1\]; got 0\.0",
        ),
    ],
)
def test_bad_settings_raise(
    config: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build_augmentation(config)


def test_bad_inputs_raise() -> None:
    train = build_augmentation({"size": 4})
    with pytest.raises(
        ValueError, match=r"images must be a float \(B, C, H, W\) batch; got torch\.uint8"
    ):
        train(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"images have 1 channel\(s\) but mean/std have 3"):
        train(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"mode must be 'train' or 'eval'; got 'test'"):
        build_augmentation({}, mode="test")  # type: ignore[arg-type]
