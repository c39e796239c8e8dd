"""``Encoder``: a model directory ready to turn image files, uploads, datasets or (for a dual
encoder's) texts into vectors.

The model's ``config.json`` says how its inputs were prepared (``preprocessing``:
``image_size``, ``channels``, ``mean``, ``std``); the encoder repeats exactly that: decode,
convert to greyscale or RGB, bilinear resize, scale to [0, 1], then ``(x - mean) / std`` per
channel, and runs the model in eval mode.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .._checks import check_device
from ..data.images import load_image, pil_to_tensor, to_mode
from ..models import embed, load_model, load_text_model, model_fingerprint

MAX_PIXELS = 64_000_000


class Encoder:
    """Embeds images with the model saved at ``model_path``.

    Attributes:
        model: the loaded ``Embedder`` (eval mode).
        fingerprint: :func:`deepmetric.models.model_fingerprint` of the directory.
        dim: the embedding width.
        image_size: ``(height, width)`` inputs are resized to.
        channels: 1 or 3.
    """

    def __init__(self, model_path: str | PathLike[str], device: str = "cpu") -> None:
        self.model_path = str(model_path)
        self.device = check_device(device)
        self.model = load_model(model_path).to(self.device)
        self.text_model: Any = None  # a dual encoder's text tower, loaded at the first text
        self.fingerprint = model_fingerprint(model_path)
        self.dim = int(self.model.embedding_dim)
        prep = self.model.preprocessing or {}
        size = prep.get("image_size")
        if size is None:
            raise ValueError(
                f"{self.model_path}: config.json has no preprocessing.image_size, so images "
                "cannot be prepared for this model; save the model with preprocessing="
                "{'image_size': ..., 'channels': ...}"
            )
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self.channels = int(prep.get("channels", 3))
        self.mean = torch.tensor(prep.get("mean", [0.0] * self.channels)).view(1, -1, 1, 1)
        self.std = torch.tensor(prep.get("std", [1.0] * self.channels)).view(1, -1, 1, 1)

    def decode(self, data: bytes, max_pixels: int = MAX_PIXELS) -> Tensor:
        """An uploaded file's bytes as a ``(channels, height, width)`` float tensor in [0, 1].

        Raises:
            ValueError: the bytes are not a decodable image, or it has over ``max_pixels``
                pixels (64 megapixels by default; checked from the header, before decoding).
        """
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > max_pixels:
                    raise ValueError(
                        f"the image has {img.width}x{img.height} pixels; at most "
                        f"{max_pixels} are accepted"
                    )
                img.load()
                converted = to_mode(img, self.channels)
        except UnidentifiedImageError:
            raise ValueError("the data is not a readable image (unknown format)") from None
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:
            raise ValueError(f"the data is not a readable image ({err})") from None
        height, width = self.image_size
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        return pil_to_tensor(converted)

    def prepare(self, images: Tensor) -> Tensor:
        """``images`` in [0, 1] standardised as the model was trained: ``(x - mean) / std``."""
        return (images.float() - self.mean) / self.std

    def encode(self, images: Tensor) -> np.ndarray:
        """``images: (n, channels, height, width)`` in [0, 1] -> ``(n, dim)`` float32 vectors."""
        return embed(self.model, self.prepare(images), batch_size=256).numpy()

    def read_files(self, paths: Sequence[str | PathLike[str]]) -> Tensor:
        """Image files as ``(n, channels, height, width)`` in [0, 1] at the model's size
        (OSError naming a file that cannot be decoded)."""
        images = [
            load_image(str(p), image_size=self.image_size, channels=self.channels) for p in paths
        ]
        return torch.stack(images)

    def encode_bytes(self, blobs: Sequence[bytes]) -> np.ndarray:
        """Uploaded image files -> ``(n, dim)`` vectors (ValueError for a non-image)."""
        return self.encode(torch.stack([self.decode(blob) for blob in blobs]))

    def encode_files(self, paths: Sequence[str]) -> np.ndarray:
        """Image files -> ``(n, dim)`` vectors (OSError naming a file that cannot be decoded)."""
        return self.encode(self.read_files(paths))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> ``(n, dim)`` vectors in the images' space, by the text tower saved with a
        dual encoder (ValueError when the model has none)."""
        if isinstance(texts, str) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError("text queries must be a list of non-empty strings")
        if self.text_model is None:
            self.text_model = load_text_model(self.model_path).to(self.device)
        with torch.no_grad():
            out: Tensor = self.text_model(list(texts))
        return out.float().cpu().numpy()

    def encode_dataset(self, data: Dataset[Any], batch_size: int = 256) -> np.ndarray:
        """A dataset of ``(image, label)`` items, already decoded at this encoder's size and
        channels -> ``(len(data), dim)`` vectors."""
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        parts = [self.encode(batch[0]) for batch in loader]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
