"""``deepmetric evaluate RUN --data SPEC``: score a trained model on a dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from ._common import (
    checked_device,
    device_option,
    guarded,
    model_dir,
    parse_spec,
    set_threads,
    threads_option,
)

PROTOCOLS = ("retrieval", "verification", "reid", "fewshot", "clustering", "anomaly")


def _ks(text: str, protocol: str) -> list[int]:
    if not text.strip():
        return [1, 5, 10] if protocol == "reid" else [1, 2, 4, 8]
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--ks must be comma-separated integers like 1,5,10; got {text!r}"
        ) from None


def _run_test_set(run: Path) -> Any:
    """The test set of the run directory ``run``, rebuilt from its ``config.yaml`` (the classes
    or groups that training never saw)."""
    from ..config import load_config
    from ..runs import CONFIG_FILE, build_data

    file = run / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{str(run)!r} is not a run directory with a {CONFIG_FILE}; pass --data to say "
            "what to evaluate on"
        )
    return build_data(load_config(file)).test


def _embed_data(
    folder: Path, spec: dict[str, Any] | Any, protocol: str, batch_size: int, device: str
) -> Any:
    """The embeddings of the dataset ``spec`` (through the model's eval transform, see
    ``saved_eval_transform``), the dataset, and LFW's verification pairs (or None)."""
    from torch import nn

    from ..data import LabeledDataset, LFWPairs, build_dataset
    from ..models import embed, load_model
    from ..runs import saved_eval_transform

    model = load_model(folder)
    pairs = None
    data: LabeledDataset
    if isinstance(spec, LabeledDataset):
        data = spec  # the run's own test set
    elif protocol == "verification" and spec.get("name") == "lfw":
        found = LFWPairs(**{k: v for k, v in spec.items() if k not in ("name", "split")})
        data, pairs = found.images, (found.pair_indices, found.is_same)
    else:
        data = build_dataset(spec)
    transform = saved_eval_transform(folder, model, data)
    net = model if transform is None else nn.Sequential(transform, model)
    return embed(net, data, batch_size=batch_size, device=device, progress=True), data, pairs


def _fewshot_with_file(x: Any, data: Any, ev: Any, file: Path) -> dict[str, float]:
    """Few-shot metrics on the episodes saved in ``file``, or on fresh ones saved there."""
    from ..evaluation import load_episodes, save_episodes
    from ..runs.protocols import episodes_of, fewshot_scores

    if not file.exists():
        save_episodes(file, episodes_of(data, ev))
    return fewshot_scores(x, data, load_episodes(file, data.labels), ev.metric)


def evaluate(
    run: Path = typer.Argument(..., help="A run directory (with model/) or a model directory."),  # noqa: B008
    data: str | None = typer.Option(
        None,
        "--data",
        help="Dataset spec: a name or '{name: ..., root: ...}' (default: the run's own test set, "
        "the classes its training never saw).",
    ),
    protocol: str = typer.Option("retrieval", help="|".join(PROTOCOLS)),
    metric: str = typer.Option("cosine", help="cosine, euclidean, squared_euclidean or dot."),
    batch_size: int = typer.Option(256, min=1, help="Embedding batch size."),
    ks: str = typer.Option(
        "", help="K values, comma-separated, e.g. 1,5,10 (default 1,2,4,8; reid 1,5,10)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ways: int = typer.Option(5, min=2, help="Few-shot: classes per episode."),
    shots: int = typer.Option(1, min=1, help="Few-shot: support items per class."),
    queries: int = typer.Option(15, min=1, help="Few-shot: queries per class."),
    episodes: int = typer.Option(600, min=1, help="Few-shot: episodes (seeded)."),
    group: str | None = typer.Option(
        None,
        help="A dataset field (e.g. alphabet): few-shot episodes within one group; "
        "retrieval adds group_* metrics.",
    ),
    source: str | None = typer.Option(
        None, help="A dataset field (e.g. drawing): support and queries from different sources."
    ),
    episodes_file: Path | None = typer.Option(  # noqa: B008
        None,
        "--episodes-file",
        help="Few-shot: score these saved episodes; if the file does not exist, save the drawn "
        "ones there (so that two models meet the same trials).",
    ),
    rerank: str | None = typer.Option(
        None, help="Re-id: re-rank the gallery, k-reciprocal (Zhong et al. 2017)."
    ),
    query_expansion: int = typer.Option(
        0, "--query-expansion", min=0, help="Re-id: alpha query expansion over N neighbours."
    ),
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Embed a dataset with a trained model and print its metrics (retrieval by default).

    Images go through the eval transform the model was tested with (resize, center crop,
    mean/std of the run's augmentation, else the model's saved preprocessing).
    """
    set_threads(threads)
    from ..config import EvaluationConfig
    from ..runs import evaluate_embeddings

    if protocol not in PROTOCOLS:
        guarded(
            lambda: (_ for _ in ()).throw(
                ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
            )
        )
    folder = model_dir(run)
    spec = parse_spec(data) if data is not None else guarded(lambda: _run_test_set(run))
    name = spec["name"] if isinstance(spec, dict) else f"the test set of {run}"
    ev = guarded(
        lambda: EvaluationConfig(
            protocol=protocol, metric=metric, ks=_ks(ks, protocol), ways=ways, shots=shots,  # type: ignore[arg-type]
            queries=queries, episodes=episodes, group=group, source=source,
            rerank=None if rerank is None else rerank.replace("-", "_"),  # type: ignore[arg-type]
            query_expansion=query_expansion,
        )
    )  # fmt: skip
    x, dataset, pairs = guarded(
        lambda: _embed_data(folder, spec, protocol, batch_size, checked_device(device))
    )
    if protocol == "fewshot" and episodes_file is not None:
        metrics = guarded(lambda: _fewshot_with_file(x, dataset, ev, episodes_file))
    else:
        metrics = guarded(lambda: evaluate_embeddings(x, dataset, ev, pairs=pairs))
    if as_json:
        plain = {k: v if math.isfinite(v) else None for k, v in metrics.items()}
        typer.echo(json.dumps(plain, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{protocol}: {name} ({len(dataset)} items)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)
