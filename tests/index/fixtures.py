"""A tiny model directory and a folder of tiny class images, shared by the index and serve tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepmetric.models import Embedder, save_model

IMAGE_SIZE = 16
CLASSES = ("blue", "green", "red")
PER_CLASS = 4
PREPROCESSING = {"image_size": IMAGE_SIZE, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}


def make_model(path: Path, seed: int = 0) -> Path:
    """A conv4 (2 blocks, 8 channels) embedder of 16x16 RGB images, saved at ``path``."""
    torch.manual_seed(seed)
    model = Embedder(
        {
            "backbone": {"name": "conv4", "in_channels": 3, "channels": 8, "num_blocks": 2},
            "embedding_dim": 8,
        }
    )
    return save_model(model.eval(), path, preprocessing=PREPROCESSING)


def make_images(root: Path, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: noisy images dominated by the class's colour channel."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 90, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
            pixels[:, :, 2 - c] += 120 + 30 * i
            pixels[: 4 * (i + 1), :, :] //= 2  # a different band per image
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root
