"""Report figures drawn with matplotlib's object API and returned as PNG ``data:`` URIs.

No pyplot and no global backend: each figure is a ``matplotlib.figure.Figure`` rendered by the
Agg canvas, under a local style (``rc_context``), so importing or calling this module leaves
matplotlib's global state as it was.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .history import Panel

HIT, MISS, QUERY = "#2e9d4b", "#d1453b", "#3b6fd1"
_PAIR_COLOURS = {"same-class": HIT, "different-class": MISS}
COLOURS = {"after": "#3b6fd1", "before": "#9aa3ad", "baseline": "#e0a030"}
_STYLE: Any = {  # rcParams, applied locally with rc_context
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e8eb",
    "grid.linewidth": 0.8,
    "axes.edgecolor": "#9aa3ad",
    "axes.labelcolor": "#333a42",
    "xtick.color": "#59616b",
    "ytick.color": "#59616b",
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def to_data_uri(fig: Figure, dpi: int = 110) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure: no global backend
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def panels_figure(panels: Sequence[Panel], columns: int = 3) -> str:
    """Small multiples: one axes per panel, one line per series."""
    with rc_context(_STYLE):
        cols = min(columns, len(panels))
        rows = -(-len(panels) // cols)
        fig = _figure(3.6 * cols, 2.6 * rows)
        for i, panel in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1)
            for series in panel.series:
                marker = "o" if len(series.x) <= 30 else None
                ax.plot(series.x, series.y, marker=marker, markersize=3, linewidth=1.6,
                        label=series.label, color=_PAIR_COLOURS.get(series.label))  # fmt: skip
            if panel.log_y:
                ax.set_yscale("log")
            ax.set_title(panel.title, loc="left")
            ax.set_xlabel(panel.xlabel)
            if len(panel.series) > 1:
                ax.legend()
        return to_data_uri(fig)


def histograms_figure(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    xlabel: str,
    aucs: tuple[float, float],
) -> str:
    """Same-class and different-class score histograms, before and after, side by side."""
    with rc_context(_STYLE):
        fig = _figure(8.4, 2.9)
        for i, (name, (same, diff), auc) in enumerate(
            (("Before training", before, aucs[0]), ("After training", after, aucs[1]))
        ):
            ax = fig.add_subplot(1, 2, i + 1)
            values = np.concatenate([same, diff])
            edges = np.linspace(values.min(), values.max(), 51).tolist() if len(values) else 50
            ax.hist(diff, bins=edges, density=True, alpha=0.55, color=MISS, label="different class")
            ax.hist(same, bins=edges, density=True, alpha=0.55, color=HIT, label="same class")
            ax.set_title(f"{name}  (AUC {auc:.3f})", loc="left")
            ax.set_xlabel(xlabel)
            ax.set_yticks([])
            ax.legend()
        return to_data_uri(fig)


def recall_figure(curves: Mapping[str, Mapping[int, float]]) -> str:
    """Recall@K against K (log 2 axis), one line per embedding set."""
    with rc_context(_STYLE):
        fig = _figure(5.2, 3.2)
        ax = fig.add_subplot(1, 1, 1)
        for name, curve in curves.items():
            ks = sorted(curve)
            ax.plot(ks, [curve[k] for k in ks], marker="o", linewidth=2, label=name,
                    color=COLOURS.get(name))  # fmt: skip
        all_ks = sorted({k for curve in curves.values() for k in curve})
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        lowest = min((v for curve in curves.values() for v in curve.values()), default=0.0)
        ax.set_ylim(max(0.0, lowest - 0.1 * (1.0 - lowest) - 0.02), 1.005)
        ax.set_xlabel("K (neighbours retrieved)")
        ax.set_ylabel("Recall@K")
        ax.legend()
        return to_data_uri(fig)


def projection_figure(
    points: Mapping[str, np.ndarray], labels: np.ndarray, names: Sequence[str], method: str
) -> str:
    """2-D scatter of each embedding set, coloured by class, legend up to 20 classes."""
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) <= 20:
        palette = colormaps["tab10" if len(classes) <= 10 else "tab20"]
        colours = palette(np.arange(len(classes)))  # listed colormaps: integer i is colour i
    else:
        colours = colormaps["turbo"](np.linspace(0.0, 1.0, len(classes)))
    with rc_context(_STYLE):
        fig = _figure(4.2 * len(points) + 1.2, 4.2)
        size = float(np.clip(3000 / len(labels), 3, 30))
        for i, (name, xy) in enumerate(points.items()):
            ax = fig.add_subplot(1, len(points), i + 1)
            ax.scatter(xy[:, 0], xy[:, 1], c=colours[codes], s=size, alpha=0.85, linewidths=0)
            ax.set_title(f"{name} ({method})", loc="left")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        if len(classes) <= 20:
            handles = [ax.scatter([], [], color=colour, s=25) for colour in colours]
            fig.legend(handles, [_short(n, 18) for n in names], loc="outside right center")
        return to_data_uri(fig)


def grid_figure(
    images: np.ndarray,
    rows: Sequence[tuple[int, Sequence[int]]],
    labels: np.ndarray,
    names: Sequence[str],
) -> str:
    """Thumbnails: one row per ``(query, neighbours)``, bordered blue (query), green (same class)
    or red (another class), each under its class name.

    The grid is composed as one RGB mosaic and drawn in a single axes: a figure with one axes per
    thumbnail takes seconds to lay out.
    """
    pictures = _rgb(_displayable(images))
    cols = 1 + max(len(found) for _, found in rows)
    height, width = pictures.shape[1:3]
    scale = max(1, 64 // max(height, width))  # small images (8x8 digits) upscaled, pixels kept
    h, w = height * scale, width * scale
    border = max(2, round(0.05 * max(h, w)))
    cell_h, cell_w = h + 2 * border, w + 2 * border
    band, gap = round(0.32 * cell_h), round(0.12 * cell_w)
    step_y, step_x = cell_h + band, cell_w + gap
    mosaic = np.ones((len(rows) * step_y, cols * step_x + gap, 3))
    texts = []
    for r, (query, found) in enumerate(rows):
        for c, item in enumerate([query, *found]):
            colour = QUERY if c == 0 else HIT if labels[item] == labels[query] else MISS
            top, left = r * step_y + band, c * step_x + (gap if c > 0 else 0)
            mosaic[top : top + cell_h, left : left + cell_w] = _hex(colour)
            thumb = pictures[item].repeat(scale, 0).repeat(scale, 1)
            mosaic[top + border : top + border + h, left + border : left + border + w] = thumb
            title = f"#{query} · {_short(names[item], 9)}" if c == 0 else _short(names[item], 13)
            texts.append((left + cell_w / 2, top - band * 0.18, title, colour))
    with rc_context(_STYLE):
        fig = Figure(figsize=(1.0 * cols, 1.0 * cols * mosaic.shape[0] / mosaic.shape[1]))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_axis_off()
        for x, y, title, colour in texts:
            ax.text(x, y, title, ha="center", va="bottom", fontsize=6.5, color=colour)
        return to_data_uri(fig)


def episode_figure(
    images: np.ndarray, support: np.ndarray, query: np.ndarray, correct: np.ndarray
) -> str:
    """One episode as two rows of thumbnails: the support item of each way (top) and a query of
    the same way under it, bordered green when the model classified it right, red otherwise."""
    pictures = _rgb(_displayable(images))
    height, width = pictures.shape[1:3]
    scale = max(1, 48 // max(height, width))
    h, w = height * scale, width * scale
    border = max(2, round(0.08 * max(h, w)))
    cell_h, cell_w = h + 2 * border, w + 2 * border
    gap = round(0.15 * cell_w)
    mosaic = np.ones((2 * cell_h + gap, len(support) * (cell_w + gap), 3))
    for way, (s_item, q_item) in enumerate(zip(support, query, strict=True)):
        left = way * (cell_w + gap)
        for row, item, colour in ((0, s_item, QUERY), (1, q_item, HIT if correct[way] else MISS)):
            top = row * (cell_h + gap)
            mosaic[top : top + cell_h, left : left + cell_w] = _hex(colour)
            thumb = pictures[item].repeat(scale, 0).repeat(scale, 1)
            mosaic[top + border : top + border + h, left + border : left + border + w] = thumb
    with rc_context(_STYLE):
        fig = Figure(
            figsize=(0.5 * len(support), 0.5 * len(support) * mosaic.shape[0] / mosaic.shape[1])
        )
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(mosaic, interpolation="nearest")
        ax.set_axis_off()
        return to_data_uri(fig)


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5)])


def _rgb(pictures: np.ndarray) -> np.ndarray:
    """``(n, H, W, 3)`` floats: grey repeated, alpha composited on white."""
    if pictures.ndim == 3:
        return np.repeat(pictures[..., None], 3, axis=3)
    if pictures.shape[3] == 4:
        alpha = pictures[..., 3:]
        return pictures[..., :3] * alpha + (1.0 - alpha)
    return pictures


def _displayable(images: np.ndarray) -> Any:
    """Images as floats in [0, 1], grey as ``(n, H, W)``, colour as ``(n, H, W, 3 or 4)``."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    x = x.astype(np.float64)
    low, high = float(x.min()), float(x.max())
    if low >= 0.0 and high <= 1.0:
        return x
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
