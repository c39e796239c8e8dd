"""Index a labelled image dataset with a model directory (what ``deepmetric index`` runs)."""

from __future__ import annotations

import os
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..data import LabeledDataset, build_dataset
from .calibration import pair_scores
from .encoder import Encoder
from .index import Index
from .vectors import IdArray, IndexMetric


def _parse_spec(data: str) -> dict[str, Any]:
    """A YAML (or JSON, which is YAML) mapping with a ``name`` key, or a ValueError naming
    ``--data``, the problem and where it is."""
    example = "'{name: folder, root: photos/, image_size: 224}'"
    try:
        spec = yaml.safe_load(data)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or type(err).__name__
        mark = getattr(err, "problem_mark", None)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        raise ValueError(
            f"--data is not a valid YAML mapping ({problem}{where}); got {data!r}; write it "
            f"like {example}"
        ) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(
            f"--data must be a mapping with a dataset 'name' key, like {example}; got {data!r}"
        )
    return spec


def dataset_spec(data: str, encoder: Encoder) -> dict[str, Any]:
    """A ``build_dataset`` spec from a folder-per-class path, a ``.csv`` file or a YAML spec
    (a flow mapping such as ``{name: cub200, root: data/CUB_200_2011}``; JSON works too),
    decoding images at the encoder's size and channels (unless the spec sets them).
    """
    if data.lstrip().startswith("{"):
        spec = _parse_spec(data)
    elif data.lower().endswith(".csv"):
        spec = {"name": "csv", "root": data}
    elif Path(data).is_dir():
        spec = {"name": "folder", "root": data}
    else:
        raise ValueError(
            f"data must be a folder with one sub-folder per class, a .csv file, or a YAML "
            f"dataset spec such as '{{name: cub200, root: ...}}'; got {data!r}"
        )
    spec.setdefault("image_size", list(encoder.image_size))
    spec.setdefault("channels", encoder.channels)
    return spec


def index_dataset(
    index: Index, encoder: Encoder, dataset: LabeledDataset
) -> tuple[IdArray, np.ndarray]:
    """Embed every item of ``dataset`` and add it with its class name, file and extra fields;
    returns the new ids ``(n,)`` and the vectors ``(n, dim)``."""
    vectors = encoder.encode_dataset(dataset)
    names = np.asarray(dataset.class_names, dtype=object)[dataset.labels]
    columns = {key: value.tolist() for key, value in dataset.extra.items()}
    attributes = [
        dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]
    ids = index.add(
        vectors,
        labels=names.tolist(),
        sources=dataset.paths,
        attributes=attributes or None,
        fingerprint=encoder.fingerprint,
    )
    return ids, vectors


def build_index(
    model_path: str | PathLike[str],
    data: str,
    *,
    metric: IndexMetric = "cosine",
    factory: str = "auto",
    recall: float | None = 0.95,
    far: float | None = 1e-3,
    device: str = "cpu",
) -> Index:
    """An in-memory index of the dataset ``data`` (see :func:`dataset_spec`) embedded by the
    model at ``model_path``, its search settings tuned to ``recall`` (see :class:`Index`), and
    its match threshold calibrated at ``far`` on pairs of its own items (skipped, with a
    warning, when there are too few different pairs for that FAR)."""
    encoder = Encoder(model_path, device)
    dataset = build_dataset(dataset_spec(data, encoder))
    if len(dataset) == 0:
        raise ValueError(f"the dataset {data!r} has no readable items")
    folders = [str(Path(p).resolve().parent) for p in dataset.paths or []]
    index = Index(
        encoder.dim,
        metric=metric,
        factory=factory,
        recall=recall,
        fingerprint=encoder.fingerprint,
        model_path=str(Path(model_path).resolve()),
        roots=[os.path.commonpath(folders)] if folders else [],
    )
    _, vectors = index_dataset(index, encoder, dataset)
    if far is not None:
        scores, same = pair_scores(vectors, dataset.labels, metric=metric)
        if (~same).sum() * far >= 1 and same.any():
            index.calibrate(scores, same, far=far)
        else:
            warnings.warn(
                f"too few labelled pairs to calibrate at far={far}; no match threshold set",
                stacklevel=2,
            )
    return index
