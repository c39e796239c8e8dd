"""``deepmetric classify``, ``cluster`` and ``anomaly`` (and what ``verify`` shares with them):
the applications on images.

Image sets are a folder with one sub-folder per class (labelled), a flat folder of images
(unlabelled), a ``.csv`` of paths and labels, or a YAML dataset spec. Every command writes a CSV
(refusing to replace a file without ``--overwrite``) and prints what it decided and, where the
inputs carry labels, how well.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

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

Model = Annotated[Path, typer.Argument(metavar="MODEL", help="A model or run directory.")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the results here (.csv).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace --out.")]
Metric = Annotated[str | None, typer.Option(help="cosine or euclidean (default: the model's).")]
LABELS = {"1": True, "0": False, "true": True, "false": False, "same": True, "different": False}


@dataclass
class Images:
    """Embedded images: ``vectors (n, dim)``, their files, and class names when labelled."""

    vectors: np.ndarray
    paths: list[str]
    labels: list[str] | None


def encoder_of(run: Path, device: str | None) -> Any:
    from ..index import Encoder

    return guarded(lambda: Encoder(model_dir(run), checked_device(device)))


def encode_files(encoder: Any, paths: Sequence[Path | str], what: str) -> np.ndarray:
    """Embed image files in batches, with a progress bar on a terminal."""
    from rich.progress import track

    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"{what}: {path}: no such image file")
    chunks = [list(paths[i : i + 64]) for i in range(0, len(paths), 64)]
    parts = [
        encoder.encode_files([str(p) for p in chunk])
        for chunk in track(chunks, description=f"embed {what}", disable=not sys.stderr.isatty(),
                           transient=True)
    ]  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


def read_images(encoder: Any, data: str, what: str) -> Images:
    """Embed an image set (see the module docstring); ``what`` names it in errors."""
    from ..data import build_dataset
    from ..data.images import IMAGE_SUFFIXES
    from ..index import dataset_spec

    folder = Path(data)
    if folder.is_dir() and not any(p.is_dir() for p in folder.iterdir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{what}: {data} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return Images(encode_files(encoder, files, what), [str(p) for p in files], None)
    dataset = build_dataset(dataset_spec(data, encoder))
    if len(dataset) == 0:
        raise ValueError(f"{what}: {data} holds no images")
    names = np.asarray(dataset.class_names, dtype=object)[dataset.labels].tolist()
    paths = list(dataset.paths or [f"{data}[{i}]" for i in range(len(dataset))])
    return Images(encoder.encode_dataset(dataset), paths, [str(n) for n in names])


def write_csv(out: Path | None, columns: Mapping[str, Sequence[Any]]) -> None:
    """The columns as a CSV at ``out`` (written atomically), if asked for."""
    if out is None:
        return
    from .._atomic import write_text_atomically

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*columns.values(), strict=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, text.getvalue())
    typer.echo(f"wrote {len(next(iter(columns.values())))} rows to {out}")


def labelled(
    columns: Mapping[str, Sequence[Any]], labels: Sequence[Any] | None
) -> Mapping[str, Sequence[Any]]:
    return columns if labels is None else {**columns, "label": labels}


def check_out(out: Path | None, overwrite: bool, suffix: str = ".csv") -> None:
    if out is None:
        return
    if out.suffix.lower() != suffix:
        fail(f"{out}: the file must end in {suffix}")
    if out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")


def start(run: Path, metric: str | None, device: str | None) -> tuple[Any, Any]:
    """``(metric, encoder)`` of an application: ``--metric`` or the model's, and the model."""
    return chosen_metric(run, metric, ("cosine", "euclidean")), encoder_of(run, device)


def chosen_metric(run: Path, metric: str | None, allowed: Sequence[str]) -> Any:
    """``--metric``, else the model's (dot read as cosine, squared euclidean as euclidean)."""
    chosen = metric or guarded(lambda: model_metric(model_dir(run)))
    if metric is None:
        chosen = {"dot": "cosine", "squared_euclidean": "euclidean"}.get(chosen, chosen)
    if chosen not in allowed:
        fail(f"--metric must be one of {', '.join(allowed)}; got {chosen!r}")
    return chosen


def print_table(title: str, values: dict[str, float]) -> None:
    typer.echo(title)
    for key, value in values.items():
        typer.echo(f"  {key:<20} {value:.4f}")


# --- classify -----------------------------------------------------------------------------


def classify(
    run: Model,
    support: Annotated[str, typer.Option(help="A few labelled images per class (folder/CSV).")],
    query: Annotated[str, typer.Option(help="The images to label (folder or CSV).")],
    far: Annotated[
        float, typer.Option(help="Open set: rate at which unseen classes pass (0: closed set).")
    ] = 0.05,
    mode: Annotated[str, typer.Option(help="prototype or nearest.")] = "prototype",
    metric: Metric = None,
    out: Out = None,
    overwrite: Overwrite = False,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Recognise classes the model never saw from a few examples each; "unknown" below a
    threshold calibrated on the examples (leave one class out)."""
    set_threads(threads)
    from ..apps import FewShotClassifier

    check_out(out, overwrite)
    chosen, encoder = start(run, metric, device)
    with readable_errors():
        known = read_images(encoder, support, "--support")
        if known.labels is None:
            raise ValueError("--support must be labelled: a folder with one sub-folder per class")
        asked = read_images(encoder, query, "--query")
        clf = FewShotClassifier(chosen, mode).fit(known.vectors, known.labels)
        if far > 0:
            typer.echo(f"open set: threshold {clf.calibrate(far):.6g} on {chosen} at FAR {far:g}")
        labels, scores = clf.predict(asked.vectors)
    unknown = sum(label is None for label in labels)
    typer.echo(f"{len(labels)} queries, {len(clf.classes_)} classes: {unknown} unknown")
    columns = {"path": asked.paths, "prediction": ["" if lab is None else lab for lab in labels],
               "score": [f"{v:.6g}" for v in scores]}  # fmt: skip
    guarded(lambda: write_csv(out, labelled(columns, asked.labels)))
    if asked.labels is not None:
        truth = np.asarray(asked.labels, dtype=object)
        seen = np.isin(truth, clf.classes_)
        said = np.asarray(labels, dtype=object)
        found = {
            "accuracy (seen classes)": float((said[seen] == truth[seen]).mean())
            if seen.any()
            else float("nan")
        }
        if (~seen).any():
            found["unknown answered (unseen)"] = float(np.mean([s is None for s in said[~seen]]))
        print_table("with the query labels", found)


# --- cluster ------------------------------------------------------------------------------


def cluster(
    run: Model,
    data: Annotated[str, typer.Option("--data", help="The images (folder or CSV).")],
    k: Annotated[int | None, typer.Option("--k", "-k", min=1, help="Number of clusters.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Agglomerative: merge under this distance.")
    ] = None,
    method: Annotated[str, typer.Option(help="auto, kmeans, agglomerative or hdbscan.")] = "auto",
    min_cluster_size: Annotated[int, typer.Option(min=2, help="HDBSCAN's smallest.")] = 5,
    metric: Metric = None,
    out: Out = None,
    sheet: Annotated[
        Path | None, typer.Option(help="A contact sheet of each cluster (.png).")
    ] = None,
    overwrite: Overwrite = False,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Group unlabelled images: k-means with --k, agglomerative at --threshold, or HDBSCAN."""
    set_threads(threads)
    from ..apps import cluster_embeddings
    from ..evaluation import partition_scores

    check_out(out, overwrite)
    check_out(sheet, overwrite, ".png")
    chosen, encoder = start(run, metric, device)
    with readable_errors():
        images = read_images(encoder, data, "--data")
        found = cluster_embeddings(images.vectors, k=k, threshold=threshold, method=method,
                                   metric=chosen, min_cluster_size=min_cluster_size)  # fmt: skip
    sizes = np.bincount(found[found >= 0]) if (found >= 0).any() else np.zeros(0, int)
    noise = int((found < 0).sum())
    typer.echo(
        f"{len(found)} items in {len(sizes)} clusters" + (f", {noise} noise" if noise else "")
    )
    columns = {"path": images.paths, "cluster": found.tolist()}
    guarded(lambda: write_csv(out, labelled(columns, images.labels)))
    if sheet is not None:
        guarded(lambda: _contact_sheet(sheet, images.paths, found, encoder))
    if images.labels is not None:
        codes = np.unique(np.asarray(images.labels), return_inverse=True)[1]
        print_table("against the labels", partition_scores(codes, found))


def _contact_sheet(path: Path, paths: list[str], clusters: np.ndarray, encoder: Any) -> None:
    """Up to 12 clusters, largest first, a row of up to 10 thumbnails each."""
    from PIL import Image, ImageDraw

    from .._atomic import replace_file_atomically

    ids = [c for c in np.argsort(-np.bincount(clusters[clusters >= 0]), kind="stable")][:12]
    size, label = 64, 60
    sheet = Image.new("RGB", (label + 10 * (size + 4), max(1, len(ids)) * (size + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, cid in enumerate(ids):
        members = np.flatnonzero(clusters == cid)
        draw.text((4, row * (size + 4) + size // 2 - 6), f"#{cid} ({len(members)})", fill=(0, 0, 0))
        for col, item in enumerate(members[:10]):
            with Image.open(paths[item]) as img:
                thumb = img.convert("RGB").resize((size, size))
            sheet.paste(thumb, (label + col * (size + 4), row * (size + 4)))
    replace_file_atomically(path, lambda tmp: sheet.save(tmp, format="PNG"))
    typer.echo(f"wrote {path}")


# --- anomaly ------------------------------------------------------------------------------


def anomaly(
    run: Model,
    normal: Annotated[str, typer.Option(help="Normal images only (folder or CSV).")],
    score: Annotated[str, typer.Option("--score", help="The images to score.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Nearest normal items.")] = 5,
    false_alarm: Annotated[
        float, typer.Option(help="Share of held-out normal items that may raise an alarm.")
    ] = 0.05,
    metric: Metric = None,
    out: Out = None,
    overwrite: Overwrite = False,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Score images by their distance to the k nearest normal images; alarm above a threshold
    calibrated at --false-alarm on normal images held out (20 %, seeded). With class folders,
    a class absent from --normal counts as an anomaly: AUROC and AUPR are printed."""
    set_threads(threads)
    from ..apps import AnomalyDetector
    from ..evaluation import detection_metrics

    check_out(out, overwrite)
    chosen, encoder = start(run, metric, device)
    with readable_errors():
        reference = read_images(encoder, normal, "--normal")
        scored = read_images(encoder, score, "--score")
        detector = AnomalyDetector(k, chosen).fit(reference.vectors, false_alarm=false_alarm)
        values = detector.score(scored.vectors)
    threshold = float(detector.threshold or 0.0)  # fit holds 20 % out: always set
    alarms = values > threshold
    typer.echo(
        f"threshold {threshold:.6g} ({chosen}, false alarm {false_alarm:g} on held-out "
        f"normal items): {int(alarms.sum())} of {len(values)} items raise an alarm"
    )
    columns = {"path": scored.paths, "score": [f"{v:.6g}" for v in values],
               "anomaly": alarms.astype(int).tolist()}  # fmt: skip
    guarded(lambda: write_csv(out, labelled(columns, scored.labels)))
    if scored.labels is not None and reference.labels is not None:
        truth = ~np.isin(np.asarray(scored.labels), np.asarray(reference.labels))
        if truth.any() and not truth.all():
            found = detection_metrics(values, truth)
            found["detected (anomalies)"] = float(alarms[truth].mean())
            found["false alarms (normal)"] = float(alarms[~truth].mean())
            print_table("classes absent from --normal as anomalies", found)
