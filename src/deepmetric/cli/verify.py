"""``deepmetric verify MODEL PAIRS.csv``: same or different, at a calibrated threshold."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ._common import device_option, fail, guarded, readable_errors, set_threads, threads_option
from .apps import (
    Metric,
    Model,
    Out,
    Overwrite,
    check_out,
    encode_files,
    labelled,
    print_table,
    start,
    write_csv,
)

LABELS = {"1": True, "0": False, "true": True, "false": False, "same": True, "different": False}


def read_pairs(path: Path) -> tuple[list[Path], list[Path], list[bool] | None]:
    """``a, b[, same]`` rows (a header row is skipped; paths relative to the file's folder);
    ``same`` is 1/0, true/false or same/different, on every row or on none."""
    if not path.is_file():
        raise ValueError(f"{path}: no such pairs file")
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["a", "b"]:
        rows = rows[1:]
    a, b, same = [], [], []
    for number, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not cells or cells == [""]:
            continue
        if len(cells) not in (2, 3) or (len(cells) == 3 and cells[2].lower() not in LABELS):
            raise ValueError(
                f"{path}, row {number}: expected 'a,b' or 'a,b,same' with same one of "
                f"{'/'.join(LABELS)}; got {','.join(cells)!r}"
            )
        a.append(path.parent / cells[0])
        b.append(path.parent / cells[1])
        same.append(LABELS[cells[2].lower()] if len(cells) == 3 else None)
    if not a:
        raise ValueError(f"{path}: no pairs")
    if len({s is None for s in same}) > 1:
        raise ValueError(f"{path}: give 'same' on every row or on none")
    return a, b, None if same[0] is None else [bool(s) for s in same]


def verify(
    run: Model,
    pairs: Annotated[Path, typer.Argument(metavar="PAIRS.csv", help="Rows a,b[,same].")],
    calibrate: Annotated[
        Path | None, typer.Option(help="Labelled pairs (a,b,same) to calibrate the threshold.")
    ] = None,
    far: Annotated[float, typer.Option(help="False accept rate of the calibration.")] = 1e-2,
    threshold: Annotated[float | None, typer.Option(help="Use this threshold.")] = None,
    index: Annotated[Path | None, typer.Option(help="Use this index's threshold.")] = None,
    metric: Metric = None,
    out: Out = None,
    roc: Annotated[Path | None, typer.Option(help="With labels: draw the ROC here (.png).")] = None,
    overwrite: Overwrite = False,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Same or different? Score each pair and decide at a threshold: calibrated at --far on
    labelled --calibrate pairs, given with --threshold, or an index's (--index)."""
    set_threads(threads)
    from ..apps.verify import calibrate_threshold, decide, pair_scores, verification_report

    check_out(out, overwrite)
    check_out(roc, overwrite, ".png")
    if sum(x is not None for x in (calibrate, threshold, index)) > 1:
        fail("give at most one of --calibrate, --threshold and --index")
    chosen, encoder = start(run, metric, device)
    with readable_errors():
        a, b, same = read_pairs(pairs)
        scores = pair_scores(encode_files(encoder, a, "a"), encode_files(encoder, b, "b"), chosen)
        stated = far if calibrate is not None else None
        if calibrate is not None:
            ca, cb, csame = read_pairs(calibrate)
            if csame is None:
                raise ValueError(f"{calibrate}: calibration pairs need the 'same' column")
            cal = pair_scores(encode_files(encoder, ca, "calibration a"),
                              encode_files(encoder, cb, "calibration b"), chosen)  # fmt: skip
            threshold = calibrate_threshold(cal, csame, far=far, metric=chosen)
        elif index is not None:
            threshold, stated, chosen = _index_threshold(index)
    said = None
    if threshold is None:
        typer.echo("no threshold: pass --calibrate, --threshold or --index to decide")
    else:
        said = decide(scores, threshold, chosen)
        at = "" if stated is None else f" (calibrated at FAR {stated:g})"
        count = int(said.sum())
        typer.echo(
            f"threshold {threshold:.6g} on {chosen}{at}: {count} of {len(scores)} pairs same"
        )
    columns = {"a": [str(x) for x in a], "b": [str(y) for y in b],
               "score": [f"{v:.6g}" for v in scores],
               "same": [""] * len(a) if said is None else said.astype(int).tolist()}  # fmt: skip
    labels = None if same is None else [int(v) for v in same]
    guarded(lambda: write_csv(out, labelled(columns, labels)))
    if same is not None:
        report = guarded(
            lambda: verification_report(scores, same, metric=chosen, threshold=threshold)
        )
        print_table(f"{len(scores)} labelled pairs", report)
        if roc is not None:
            guarded(lambda: _draw_roc(roc, scores, same, chosen))


def _index_threshold(index: Path) -> tuple[float, float | None, str]:
    from ..index import Index

    loaded = Index.load(index)
    if loaded.threshold is None:
        raise ValueError(f"{index} has no calibrated threshold; use --calibrate or --threshold")
    return float(loaded.threshold), getattr(loaded, "far", None), str(loaded.metric)


def _draw_roc(path: Path, scores: np.ndarray, same: list[bool], metric: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .._atomic import replace_file_atomically
    from ..distances import is_similarity
    from ..roc import roc_curve

    curve = roc_curve(scores, np.asarray(same), higher_is_similar=is_similarity(metric))
    fig = Figure(figsize=(4, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(curve.fpr, curve.tpr)
    ax.set_xscale("log")
    ax.set(xlabel="false accept rate", ylabel="true accept rate", title="ROC")
    ax.grid(alpha=0.3)
    replace_file_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    typer.echo(f"wrote {path}")
