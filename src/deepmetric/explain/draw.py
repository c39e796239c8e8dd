"""Pictures of explanations: both images, their maps overlaid, the top correspondences as lines.

Yellow marks where similarity comes from, blue where it is lost; the opacity follows the size of
each contribution against the largest of the pair (the 99th percentile for pixel maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .pair import EXPLAINED, PairExplanation

GAP = 16
CAPTION = 22
LINE_COLOURS = ((255, 215, 0), (0, 230, 118), (0, 229, 255), (255, 64, 129), (224, 64, 251))


def _picture(image: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 from ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` floats in [0, 1] or
    uint8 (a torch tensor or a numpy array)."""
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"an image must be (H, W), (H, W, C) or (C, H, W); got {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array.astype(np.float64)) * 255.0 + 0.5, 0, 255)
    return array.astype(np.uint8)


def _overlay(
    picture: np.ndarray, cells: np.ndarray, scale: float, size: tuple[int, int]
) -> Image.Image:
    """The picture at ``size`` (w, h) with the map resized over it, yellow for positive."""
    base = Image.fromarray(picture).resize(size, Image.Resampling.NEAREST)
    values = Image.fromarray(np.asarray(cells, dtype=np.float32)).resize(
        size, Image.Resampling.BILINEAR
    )
    value = np.asarray(values, dtype=np.float64) / scale if scale > 0 else np.zeros(size[::-1])
    alpha = np.clip(np.abs(value), 0, 1)[..., None] * 0.65
    colour = np.where(value[..., None] >= 0, [[[255, 214, 0]]], [[[0, 110, 255]]])
    mixed = np.asarray(base, dtype=np.float64) * (1 - alpha) + colour * alpha
    return Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8))


def _scale(explanation: PairExplanation) -> float:
    """The opacity scale: the largest |contribution| of a cell map, the 99th percentile of a
    pixel map (a few pixels would otherwise wash the rest out)."""
    values = np.abs(np.concatenate([explanation.map_a.ravel(), explanation.map_b.ravel()]))
    if not values.size:
        return 0.0
    return float(values.max() if explanation.pairs is not None else np.percentile(values, 99))


def draw_pair(
    explanation: PairExplanation,
    image_a: Any,
    image_b: Any,
    *,
    correspondences: int = 5,
    height: int = 224,
    caption: str | None = None,
) -> Image.Image:
    """Both images side by side at ``height`` pixels, each with its map overlaid, the
    ``correspondences`` strongest cell pairs joined by lines, under a caption (default:
    :func:`describe`; ``""`` for none).

    Vector inputs have no picture; explain those with ``explanation.map_a`` directly.
    """
    if explanation.map_a.ndim != 2:
        raise ValueError("draw_pair draws image explanations; this one is of vector inputs")
    pictures = [_picture(image_a), _picture(image_b)]
    sizes = [(max(1, round(p.shape[1] * height / p.shape[0])), height) for p in pictures]
    scale = _scale(explanation)
    panels = [
        _overlay(pictures[0], explanation.map_a, scale, sizes[0]),
        _overlay(pictures[1], explanation.map_b, scale, sizes[1]),
    ]
    words = describe(explanation) if caption is None else caption
    band = CAPTION if words else 0
    canvas = Image.new("RGB", (sizes[0][0] + GAP + sizes[1][0], height + band), "white")
    canvas.paste(panels[0], (0, band))
    canvas.paste(panels[1], (sizes[0][0] + GAP, band))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 5), words, fill=(20, 20, 20))
    for n, (pa, pb, _) in enumerate(explanation.correspondences(correspondences)):
        ya = band + pa[0] * height / explanation.input_shape_a[0]
        xa = pa[1] * sizes[0][0] / explanation.input_shape_a[1]
        yb = band + pb[0] * height / explanation.input_shape_b[0]
        xb = sizes[0][0] + GAP + pb[1] * sizes[1][0] / explanation.input_shape_b[1]
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        draw.line([(xa, ya), (xb, yb)], fill=colour, width=2)
        for x, y in ((xa, ya), (xb, yb)):
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=colour, width=2)
    return canvas


def describe(explanation: PairExplanation) -> str:
    """One line: the score, what the maps decompose, and how much of it they account for."""
    e = explanation
    head = f"{e.metric} {e.score:.4g}"
    if e.method == "exact":
        return f"{head} · exact map of the {EXPLAINED[e.metric]} {e.explained:.4g}: 100% accounted"
    return (
        f"{head} · integrated gradients ({e.steps} steps) from the baseline: A's map holds "
        f"{e.accounted:.1%} of the change in the {EXPLAINED[e.metric]} "
        f"({e.baseline_a:.4g} -> {e.explained:.4g})"
    )


def stack(pictures: Sequence[Image.Image], captions: Sequence[str] | None = None) -> Image.Image:
    """Pictures one under another, each under its caption (a neighbour list, say)."""
    captions = list(captions or [""] * len(pictures))
    width = max(p.width for p in pictures)
    heights = [p.height + (CAPTION if c else 0) for p, c in zip(pictures, captions, strict=True)]
    canvas = Image.new("RGB", (width, sum(heights) + GAP * (len(pictures) - 1)), "white")
    draw, top = ImageDraw.Draw(canvas), 0
    for picture, text, step in zip(pictures, captions, heights, strict=True):
        if text:
            draw.text((4, top + 5), text, fill=(20, 20, 20))
        canvas.paste(picture, (0, top + (CAPTION if text else 0)))
        top += step + GAP
    return canvas


__all__ = ["describe", "draw_pair", "stack"]
