"""Batched image augmentation with kornia, run on the training device.

``build_augmentation(config, mode="train")`` returns an ``nn.Module`` that maps a float batch
``(B, C, H, W)`` in [0, 1] on any device to ``(B, C, h, w)`` at ``config.size``:

- train: random resized crop (``crop_scale``, ``crop_ratio``; plain resize when ``crop_scale``
  is None), horizontal flip (probability ``hflip``), one affine warp with a random rotation in
  ``[-rotation, rotation]`` degrees and a random scale in ``affine_scale``, colour jitter
  (``color_jitter`` = brightness, contrast, saturation, hue, applied with probability
  ``color_jitter_p``), then normalisation with ``mean``/``std``.
- eval: resize (the shorter side to ``size / eval_crop_fraction``; both sides when ``size``
  is ``(h, w)``), center crop to ``size``, normalise. Deterministic.

Randomness: kornia draws its parameters from torch's global RNG (it takes no
``torch.Generator``), so a train pipeline is reproducible only through ``torch.manual_seed``,
which the training loop calls; the data sampler keeps its own generator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import kornia.augmentation as K
from torch import Tensor, nn

from .._checks import reject_unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(name: str, value: tuple[float, float] | None, low: float, high: float) -> None:
    if value is None:
        return
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"{name} must be (min, max) with {low} <= min <= max <= {high}; got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Settings of the train and eval pipelines; see the module docstring for each step.

    Example:
        >>> AugmentConfig.from_mapping({"size": 32, "rotation": 10}).rotation
        10.0
    """

    size: int | tuple[int, int] = 224
    crop_scale: tuple[float, float] | None = (0.16, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotation: float = 0.0
    affine_scale: tuple[float, float] | None = None
    color_jitter: tuple[float, float, float, float] | None = None
    color_jitter_p: float = 0.8
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD
    eval_crop_fraction: float = 0.875

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"size must be a positive int or (height, width); got {self.size!r}")
        _pair("crop_scale", self.crop_scale, 0.0, 1.0)
        _pair("crop_ratio", self.crop_ratio, 1e-3, 1e3)
        _pair("affine_scale", self.affine_scale, 1e-3, 1e3)
        for name in ("hflip", "color_jitter_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"{name} must be a probability in [0, 1]; got {getattr(self, name)!r}"
                )
        if not 0.0 <= self.rotation <= 180.0:
            raise ValueError(f"rotation must be in [0, 180] degrees; got {self.rotation!r}")
        jitter = self.color_jitter
        if jitter is not None and (len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5):
            raise ValueError(
                "color_jitter must be (brightness, contrast, saturation, hue), all >= 0 and "
                f"hue <= 0.5; got {jitter!r}"
            )
        if (self.mean is None) != (self.std is None) or (
            self.mean is not None
            and self.std is not None
            and (len(self.mean) != len(self.std) or min(self.std) <= 0)
        ):
            raise ValueError(
                "mean and std must both be None or sequences of one value per channel, std > 0; "
                f"got mean={self.mean!r}, std={self.std!r}"
            )
        if not 0.0 < self.eval_crop_fraction <= 1.0:
            raise ValueError(
                f"eval_crop_fraction must be in (0, 1]; got {self.eval_crop_fraction!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AugmentConfig:
        """A config from a dict (e.g. parsed JSON/YAML); unknown keys raise KeyError with a hint."""
        fields = [f.name for f in dataclasses.fields(cls)]
        reject_unknown("key", values, fields, "augmentation", KeyError)
        converted: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        for key in ("hflip", "rotation", "color_jitter_p", "eval_crop_fraction"):
            if key in converted:
                converted[key] = float(converted[key])
        return cls(**converted)

    @property
    def size_pair(self) -> tuple[int, int]:
        """``size`` as ``(height, width)``."""
        return (
            (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[1])
        )


class Augmentation(nn.Module):
    """A kornia pipeline with input checks: ``(B, C, H, W)`` float in [0, 1] -> ``(B, C, h, w)``."""

    def __init__(self, steps: list[nn.Module], channels: int | None) -> None:
        super().__init__()
        self.steps = nn.Sequential(*steps)
        self.channels = channels

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or not images.dtype.is_floating_point:
            raise ValueError(
                f"images must be a float (B, C, H, W) batch; got {images.dtype} of shape "
                f"{tuple(images.shape)}"
            )
        if self.channels is not None and images.shape[1] != self.channels:
            raise ValueError(
                f"images have {images.shape[1]} channel(s) but mean/std have {self.channels}; "
                "set mean and std to one value per channel"
            )
        if images.shape[0] == 0:
            return images
        out: Tensor = self.steps(images)
        return out


def build_augmentation(
    config: AugmentConfig | Mapping[str, Any], mode: Literal["train", "eval"] = "train"
) -> Augmentation:
    """The train or eval pipeline of ``config`` (an :class:`AugmentConfig` or a dict of its fields).

    Example:
        >>> import torch
        >>> evaluate = build_augmentation({"size": 4, "mean": None, "std": None}, mode="eval")
        >>> evaluate(torch.rand(2, 3, 6, 5)).shape
        torch.Size([2, 3, 4, 4])
    """
    cfg = config if isinstance(config, AugmentConfig) else AugmentConfig.from_mapping(config)
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval'; got {mode!r}")
    height, width = cfg.size_pair
    steps: list[nn.Module] = []
    if mode == "eval":
        fraction = cfg.eval_crop_fraction
        if isinstance(cfg.size, int):
            steps.append(K.Resize(round(cfg.size / fraction), side="short", antialias=True))
        else:
            steps.append(
                K.Resize((round(height / fraction), round(width / fraction)), antialias=True)
            )
        steps.append(K.CenterCrop((height, width)))
    else:
        if cfg.crop_scale is None:
            steps.append(K.Resize((height, width), antialias=True))
        else:
            steps.append(
                K.RandomResizedCrop((height, width), scale=cfg.crop_scale, ratio=cfg.crop_ratio)
            )
        if cfg.hflip > 0:
            steps.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.rotation > 0 or cfg.affine_scale is not None:
            steps.append(K.RandomAffine(degrees=cfg.rotation, scale=cfg.affine_scale, p=1.0))
        if cfg.color_jitter is not None:
            steps.append(K.ColorJitter(*cfg.color_jitter, p=cfg.color_jitter_p))
    if cfg.mean is not None and cfg.std is not None:
        steps.append(K.Normalize(mean=cfg.mean, std=cfg.std))
    return Augmentation(steps, None if cfg.mean is None else len(cfg.mean))
