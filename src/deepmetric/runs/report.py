"""The run report: the training log and the test embeddings before and after, as HTML."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

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
    model: nn.Module | None = None,
    transform: nn.Module | None = None,
) -> Path:
    """``out_dir/report.html`` from the training log and the test embeddings (and the raw
    inputs as a baseline when given); few-shot runs get their first episodes drawn, and with
    the ``model`` the report explains a few pairs (:mod:`deepmetric.explain`) of the test
    inputs as ``transform`` (the eval transform) prepares them."""
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
        explain=None
        if model is None or images is None
        else _explainer(model, transform, test, config),
    )


def _explainer(
    model: nn.Module, transform: nn.Module | None, test: LabeledDataset, config: RunConfig
) -> Any:
    """``explain(query, others)`` on the test items as the model sees them."""
    from ..explain import explain_pairs

    inputs: Tensor = test.inputs  # type: ignore[attr-defined]
    param = next(model.parameters(), None)

    def explain(query: int, others: Sequence[int]) -> Any:
        x = inputs[[query, *others]].float()
        if param is not None:
            x = x.to(param.device)
        x = x if transform is None else transform.to(x.device)(x)
        return explain_pairs(model, x[0], x[1:], metric=config.evaluation.metric)

    return explain
