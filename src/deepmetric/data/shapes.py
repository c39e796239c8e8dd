"""Captioned images of coloured shapes, generated: a small image-text retrieval task with
attribute combinations that training never shows.

Each image is one shape (circle, square, triangle, cross) in one colour (red, green, blue,
yellow), small or large, at the left, right, top or bottom of a noisy grey canvas, with a
little random jitter in place and size; its caption says exactly that, e.g. ``"a small red
circle at the left"``. The ``train`` split never holds the colour-shape pairs of ``held_out``
(by default every colour and every shape is held out once: a red triangle, a green cross, a
blue circle, a yellow square), so each word is seen in training but not those pairs; the
``test`` split holds every combination, with ``extra["held_out"]`` marking the unseen ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .base import DATASETS, check_split
from .captions import CaptionedImages

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 230),
           "yellow": (225, 205, 40)}  # fmt: skip
PLACES = {"left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28), "bottom": (0.5, 0.72)}
SIZES = {"small": 0.14, "large": 0.24}
HELD_OUT = (("red", "triangle"), ("green", "cross"), ("blue", "circle"), ("yellow", "square"))


def caption(size: str, colour: str, shape: str, place: str) -> str:
    """The caption of one image, e.g. ``"a small red circle at the left"``."""
    return f"a {size} {colour} {shape} at the {place}"


def draw(size: str, colour: str, shape: str, place: str, rng: np.random.Generator,
         side: int = 32) -> np.ndarray:  # fmt: skip
    """``(3, side, side)`` uint8: the shape on a noisy grey canvas, jittered a little."""
    noise = rng.normal(128, 12, (side, side, 3)).clip(0, 255).astype(np.uint8)
    canvas = Image.fromarray(noise)
    pen = ImageDraw.Draw(canvas)
    cx, cy = (np.array(PLACES[place]) + rng.uniform(-0.05, 0.05, 2)) * side
    r = SIZES[size] * side * rng.uniform(0.9, 1.1)
    fill = COLOURS[colour]
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        pen.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = r / 3
        pen.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        pen.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return np.asarray(canvas).transpose(2, 0, 1).copy()


@DATASETS.register("shapes")
class Shapes(CaptionedImages):
    """Generated captioned shapes (see the module docstring): ``split`` ``"train"`` (no
    ``held_out`` colour-shape pair) or ``"test"`` (every pair), ``n`` images, seeded.

    Example:
        >>> data = Shapes("test", n=8, seed=0)
        >>> data[0][0][0].shape, data[0][0][1], data.extra["held_out"][:2].tolist()
        (torch.Size([3, 32, 32]), 'a small red circle at the left', [False, False])
    """

    def __init__(
        self, split: str = "train", n: int = 2000, seed: int = 0, image_size: int = 32,
        held_out: Sequence[Sequence[str]] = HELD_OUT,
    ) -> None:  # fmt: skip
        check_split(split, ("train", "test"), "shapes")
        unseen = {tuple(pair) for pair in held_out}
        combos = [(s, c, shape, p) for c in COLOURS for shape in SHAPES for s in SIZES
                  for p in PLACES if split == "test" or (c, shape) not in unseen]  # fmt: skip
        rng = np.random.default_rng([seed, split == "test"])
        picks = [combos[i % len(combos)] for i in range(n)]
        images = np.stack([draw(*combo, rng, image_size) for combo in picks])
        super().__init__(images, [caption(*combo) for combo in picks])
        self.extra = {"held_out": np.array([(c, shape) in unseen for _, c, shape, _ in picks])}


__all__ = ["COLOURS", "HELD_OUT", "SHAPES", "Shapes", "caption", "draw"]
