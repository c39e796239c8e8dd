"""``deepmetric demo``: the offline demo job on scikit-learn's digits."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

COLUMNS = ("recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "map_at_r", "nmi")
HEADERS = ("R@1", "R@2", "R@4", "R@8", "MAP@R", "NMI")


def table(rows: dict[str, dict[str, float]], held_out: str) -> Table:
    """The before/after table: one row per embedding, best value of each column in bold."""
    out = Table(title=f"held-out digits {held_out} (never seen in training)")
    out.add_column("embedding")
    for header in HEADERS:
        out.add_column(header, justify="right")
    best = {c: max(r[c] for r in rows.values()) for c in COLUMNS}
    for name, row in rows.items():
        cells = [
            f"[bold]{row[c]:.3f}[/]" if row[c] == best[c] else f"{row[c]:.3f}" for c in COLUMNS
        ]
        out.add_row(name, *cells)
    return out


def demo(
    epochs: int = typer.Option(60, min=1, help="Training epochs."),
    out_dir: str = typer.Option("runs/demo", "--out", help="Where the model and report go."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    report: bool = typer.Option(True, help="Write report.html."),
) -> None:
    """Learn a metric on seven digits, test it on three never seen; print before/after."""
    from ..demo import HELD_OUT, TEST_CLASSES, run_demo

    console = Console()
    train = ", ".join(str(d) for d in range(10) if str(d) not in TEST_CLASSES)
    console.print(f"deepmetric demo: scikit-learn's 8x8 digits; {train} train,")
    console.print(f"{HELD_OUT} are held out. MLP embedder; SupCon + NT-Xent on two affine warps.")
    with console.status(f"training {epochs} epochs on CPU ..."):
        result = run_demo(epochs=epochs, out_dir=out_dir, seed=seed, report=report)
    console.print(f"trained in {result.seconds:.1f} s")
    console.print(table(result.table, HELD_OUT))
    trained, pixels = result.table["trained embedder"], result.table["raw pixels"]
    wins = [h for c, h in zip(COLUMNS, HEADERS, strict=True) if trained[c] > pixels[c]]
    console.print(f"the learned embedding beats raw pixels on: {', '.join(wins) or 'nothing'}")
    query, top = result.example
    console.print(f"\nexample retrieval: a held-out '{query}' and its 5 nearest neighbours:")
    console.print("  " + "  ".join(f"{label} ({sim:.2f})" for label, sim in top))
    spec = "'{name: digits, as_vectors: true}'"
    lines = [f"\nmodel:  {result.model_dir}"]
    if result.report is not None:
        lines.append(f"report: {result.report}")
    lines += [
        "next:   deepmetric train configs/digits.yaml --print-config",
        f"        deepmetric evaluate {out_dir} --data {spec}",
        f"        deepmetric embed {out_dir} --data {spec} --out embeddings.npz",
    ]
    typer.echo("\n".join(lines))
