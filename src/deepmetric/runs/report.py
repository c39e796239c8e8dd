"""The run report: the training log and the test embeddings before and after, as HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import RunConfig
from ..data import ArrayDataset, LabeledDataset
from ..training import read_jsonl
from .protocols import episodes_of


def _images(data: LabeledDataset) -> np.ndarray | None:
    """``(n, H, W)`` or ``(n, H, W, C)`` pictures of an in-memory image set, for the report."""
    if not isinstance(data, ArrayDataset) or data.inputs.dim() != 4:
        return None
    pictures = data.inputs.permute(0, 2, 3, 1).numpy()
    return pictures[..., 0] if pictures.shape[3] == 1 else pictures


def write_run_report(
    config: RunConfig,
    out_dir: Path,
    before: Any,
    after: Any,
    test: LabeledDataset,
    pixels: Any = None,
) -> Path:
    """``out_dir/report.html`` from the training log and the test embeddings (and the raw
    inputs as a baseline when given); few-shot runs get their first episodes drawn."""
    from ..report import EmbeddingSet, build_report

    log = out_dir / "metrics.jsonl"
    history = read_jsonl(log) if log.is_file() else []
    names = list(test.class_names)
    images = _images(test)
    ev = config.evaluation
    episodes = None
    if "fewshot" in ev.protocols() and images is not None:
        episodes = episodes_of(test, ev.model_copy(update={"episodes": min(ev.episodes, 200)}))

    def view(x: Any) -> EmbeddingSet:
        return EmbeddingSet(x.numpy(), test.labels, images=images, class_names=names)

    return build_report(
        out_dir / "report.html",
        history=history,
        before=view(before),
        after=view(after),
        baseline=None if pixels is None else view(pixels),
        config=config.to_dict(),
        title=f"deepmetric run: {out_dir.name}",
        metric=ev.metric,
        ks=ev.ks,
        episodes=episodes,
    )
