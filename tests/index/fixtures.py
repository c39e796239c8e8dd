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


def make_dual_model(path: Path) -> Path:
    """A conv4 + word-transformer dual encoder trained one epoch on 64 16x16 shapes, saved at
    ``path`` (the image tower, with the text tower in ``path/text``)."""
    from deepmetric.data import Shapes
    from deepmetric.losses import ClipLoss
    from deepmetric.models import DualEncoder, build_vocab
    from deepmetric.training import RuntimeOptions, SamplerOptions, TrainOptions, train

    data = Shapes("train", n=64, seed=0, image_size=16)
    torch.manual_seed(0)
    model = DualEncoder(
        {"backbone": {"name": "conv4", "channels": 4, "num_blocks": 2}, "embedding_dim": 8},
        {"backbone": {"name": "text_transformer", "vocab": build_vocab(data.captions),
                      "dim": 8, "heads": 2, "depth": 1}, "embedding_dim": 8},
    )  # fmt: skip
    model.image.preprocessing = {"image_size": [16, 16], "channels": 3}
    options = TrainOptions(epochs=1, sampler=SamplerOptions(batch_size=16, m_per_class=1),
                           runtime=RuntimeOptions(progress=False))  # fmt: skip
    train(model, data, loss=ClipLoss(), options=options, out_dir=path)
    return path / "model"


def make_shape_images(root: Path, n: int = 8) -> Path:
    """``root/<caption>/<i>.png``: ``n`` generated 16x16 test shapes, a folder per caption."""
    from deepmetric.data import Shapes

    shapes = Shapes("test", n=n, seed=1, image_size=16)
    for i in range(len(shapes)):
        folder = root / shapes.captions[i].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        array = (shapes.images()[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i}.png")
    return root
