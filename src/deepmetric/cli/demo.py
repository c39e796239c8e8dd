"""``deepmetric demo``: one-shot recognition of characters from alphabets never seen."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ._common import guarded, set_threads, threads_option

COLUMNS = ("fewshot_accuracy", "map_at_r", "recall_at_1")
HEADERS = ("20-way 1-shot", "MAP@R", "R@1")


def table(rows: dict[str, dict[str, float]], title: str) -> Table:
    """The before/after table: one row per embedding, best value of each column in bold."""
    out = Table(title=title)
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
    out_dir: str = typer.Option("runs/demo", "--out", help="Where the run goes."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    epochs: int | None = typer.Option(None, min=1, help="Training epochs (default: the recipe's)."),
    report: bool = typer.Option(True, help="Write report.html."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: key.path=value."),  # noqa: B008
    threads: int | None = threads_option(),
) -> None:
    """Learn on 20 alphabets of handwritten characters, recognise those of 10 never seen from
    one drawing each (the bundled recipe, a config run; --set changes it)."""
    from ..runs.demo import ROWS, demo_config, run_demo

    extra = [*([f"epochs={epochs}"] if epochs is not None else []), "runtime.progress=true"]
    extra += overrides
    count = set_threads(threads)  # recorded in the config, so that it retrains the same model
    config = guarded(
        lambda: demo_config(
            out_dir=out_dir, seed=seed, threads=count, report=report, overrides=extra
        )
    )
    console = Console()
    held_out = config.data.test_groups
    names = ", ".join(h.split("_(")[0].replace("_", " ") for h in held_out)
    console.print(
        f"deepmetric demo: the bundled {config.data.train['name']} data set (see README, MIT).\n"
        f"Learns on its other {config.data.group}s; {len(held_out)} are never seen in training "
        f"({names}).\n"
        f"Conv-4 network, prototypical loss, {config.epochs} epochs on "
        f"{config.runtime.device} ({count} threads); scored by "
        f"{config.evaluation.ways}-way one-shot episodes "
        "within an alphabet (support and query drawn by different people)."
    )
    result = guarded(lambda: run_demo(config))
    console.print(f"done in {result.seconds:.0f} s (wall time, training and evaluation)")
    console.print(table(result.table, "characters of alphabets never seen in training"))
    trained, pixels = result.table[ROWS[2]], result.table[ROWS[0]]
    gain = 100 * (trained["fewshot_accuracy"] - pixels["fewshot_accuracy"])
    console.print(f"one-shot accuracy: {gain:+.1f} points over raw pixels")
    lines = [f"\nrun:    {result.out_dir} (config.yaml, model/, metrics.jsonl)"]
    if result.report is not None:
        lines.append(f"report: {result.report}")
    spec = f"'{{name: {config.data.train['name']}, alphabets: [{', '.join(held_out[:2])}]}}'"
    ev = config.evaluation
    lines += [
        f"next:   deepmetric train {result.out_dir}/config.yaml --set output.dir=runs/again",
        f"        deepmetric evaluate {result.out_dir} --data {spec} --protocol fewshot "
        f"--ways {ev.ways} --shots {ev.shots} --queries {ev.queries} --group {ev.group} "
        f"--source {ev.source} --metric {ev.metric}",
        f"        deepmetric embed {result.out_dir} --data {spec} --out embeddings.npz",
    ]
    typer.echo("\n".join(lines))
