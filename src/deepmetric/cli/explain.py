"""``deepmetric explain MODEL A B`` and ``deepmetric explain MODEL QUERY --index INDEX``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..distances import METRICS
from ._common import (
    checked_device,
    device_option,
    fail,
    guarded,
    model_dir,
    model_metric,
    readable_errors,
    set_threads,
    threads_option,
)


def explain(
    run: Annotated[Path, typer.Argument(metavar="MODEL", help="A model or run directory.")],
    images: Annotated[
        list[Path], typer.Argument(metavar="A [B]", help="Two images, or one with --index.")
    ],
    index_dir: Annotated[
        Path | None, typer.Option("--index", help="Explain A's nearest items in this index.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours, with --index.")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="Write the picture (.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    method: Annotated[str, typer.Option(help="auto, exact or gradient.")] = "auto",
    metric: Annotated[
        str | None, typer.Option(help="cosine, dot, euclidean (default: the model's).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Integration steps (gradient).")] = 32,
    lines: Annotated[int, typer.Option(min=0, help="Correspondences drawn and listed.")] = 5,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Why the model finds two images similar: maps of where the similarity comes from.

    Average-pooled conv models get the exact decomposition (the maps add up to the similarity,
    with cell-to-cell correspondences); any other model gets integrated gradients, with the
    share of the similarity they account for.
    """
    set_threads(threads)
    if len(images) != (1 if index_dir else 2):
        fail("give two images A B, or one image with --index INDEX")
    if out is not None and out.suffix.lower() != ".png":
        fail(f"--out must end in .png; got {str(out)!r}")
    if out is not None and out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    from ..index import Encoder

    folder = model_dir(run)
    encoder = guarded(lambda: Encoder(folder, checked_device(device)))
    pictures = guarded(lambda: _read(encoder, images))
    options = {"method": method, "steps": steps}
    with readable_errors():
        if index_dir is None:
            found = _pair(encoder, pictures, metric or model_metric(folder), options)
        else:
            found = _neighbours(encoder, pictures, images[0], index_dir, k, metric, options)
    report, drawings = found
    if out is not None:
        from .._atomic import replace_file_atomically

        out.parent.mkdir(parents=True, exist_ok=True)
        guarded(lambda: replace_file_atomically(out, lambda tmp: drawings(lines).save(tmp, "PNG")))
    if as_json:
        typer.echo(json.dumps(report(lines, maps=True), indent=1))
    else:
        typer.echo("\n".join(report(lines, maps=False)["text"]))
    if out is not None:
        typer.echo(f"wrote {out}", err=as_json)


def _read(encoder: Any, paths: list[Path]) -> Any:
    """The images at the model's size, in [0, 1]; one line naming a file that is missing or
    not an image."""
    import torch

    decoded = []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path}: no such image file")
        try:
            decoded.append(encoder.decode(path.read_bytes()))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return torch.stack(decoded)


def _pair(encoder: Any, pictures: Any, metric: str, options: dict[str, Any]) -> tuple[Any, Any]:
    from ..explain import describe, draw_pair, explain_pair

    if metric not in METRICS:
        raise ValueError(f"--metric must be one of {', '.join(METRICS)}; got {metric!r}")
    x = encoder.prepare(pictures)
    found = explain_pair(encoder.model, x[0], x[1], metric=metric, **options)

    def report(lines: int, maps: bool) -> dict[str, Any]:
        return _summary(found, lines, maps, [describe(found), *_correspondences(found, lines)])

    return report, lambda lines: draw_pair(found, pictures[0], pictures[1], correspondences=lines)


def _neighbours(
    encoder: Any, pictures: Any, query: Path, index_dir: Path, k: int, metric: str | None,
    options: dict[str, Any],
) -> tuple[Any, Any]:  # fmt: skip
    from ..explain import describe, draw_pair, neighbour_evidence, stack
    from ..index import Index

    index = Index.load(index_dir)
    if metric not in (None, index.metric):
        raise ValueError(f"the index ranks by {index.metric}; --metric {metric} would not match")
    x = encoder.prepare(pictures)
    _, ids = index.search(encoder.encode(pictures), min(len(index), max(4 * k, 50)),
                          fingerprint=encoder.fingerprint)  # fmt: skip
    items = [item for item in index.items(ids[0][ids[0] >= 0]) if item is not None]
    files = [item for item in items if item.source and Path(item.source).is_file()]
    if not files:
        raise ValueError(f"the items found in {index_dir} have no image files to explain")
    ranked = _read(encoder, [Path(str(item.source)) for item in files])
    evidence = neighbour_evidence(
        encoder.model, x[0], encoder.prepare(ranked), [item.label for item in files], k=k,
        ids=[item.id for item in files], metric=index.metric, **options,
    )  # fmt: skip
    rows = [("match", n) for n in evidence.matches]
    rows += [] if evidence.why_not is None else [("why not", evidence.why_not)]
    where = {item.id: i for i, item in enumerate(files)}

    def caption(kind: str, rank: int, n: Any) -> str:
        head = f"#{rank}" if kind == "match" else "why not"
        return f"{head}: item {n.position} ({n.label}) · {describe(n.explanation)}"

    def report(lines: int, maps: bool) -> dict[str, Any]:
        text, entries = [], []
        for rank, (kind, n) in enumerate(rows, 1):
            text.append(caption(kind, rank, n))
            entries.append({"kind": kind, "id": n.position, "label": n.label,
                            **_summary(n.explanation, lines, maps, [])})  # fmt: skip
        return {"query": str(query), "neighbours": entries, "text": text}

    def draw(lines: int) -> Any:
        return stack([
            draw_pair(n.explanation, pictures[0], ranked[where[n.position]],
                      correspondences=lines, caption=caption(kind, rank, n))
            for rank, (kind, n) in enumerate(rows, 1)
        ])  # fmt: skip

    return report, draw


def _correspondences(found: Any, lines: int) -> list[str]:
    return [
        f"  A ({ya:.0f}, {xa:.0f}) ~ B ({yb:.0f}, {xb:.0f}): {c:+.4f}"
        for (ya, xa), (yb, xb), c in found.correspondences(lines)
    ]


def _summary(found: Any, lines: int, maps: bool, text: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {**found.summary(), "text": text}
    out["correspondences"] = [
        {"a": list(pa), "b": list(pb), "contribution": c}
        for pa, pb, c in found.correspondences(lines)
    ]
    if maps:
        out["map_a"] = found.map_a.round(8).tolist()
        out["map_b"] = found.map_b.round(8).tolist()
    return out
