"""``deepmetric demo``: the offline demo job on scikit-learn's digits."""

from __future__ import annotations

import logging
import time

import typer


def demo(
    epochs: int = typer.Option(20, min=1, help="Training epochs."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train a small embedder on scikit-learn's digits; report Recall@k on held-out digits."""
    from ..demo import run_digits_demo

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    typer.echo("deepmetric demo: multi-similarity loss and miner, 16-per-class batches;")
    typer.echo("an MLP embedder trains on 2/3 of scikit-learn's digits, is tested on the rest")
    start = time.perf_counter()
    result = run_digits_demo(epochs=epochs, seed=seed)
    typer.echo(f"\ntrained in {time.perf_counter() - start:.1f} s")
    typer.echo("Recall@1 on the held-out digits (each queries all the others):")
    typer.echo(f"  raw pixels          {result['pixels_recall_at_1']:.4f}")
    typer.echo(f"  untrained network   {result['initial_recall_at_1']:.4f}")
    typer.echo(f"  trained embedder    {result['recall_at_1']:.4f}")
    ks = ", ".join(f"R@{k} {result[f'recall_at_{k}']:.4f}" for k in (1, 2, 4, 8))
    typer.echo(f"  ({ks})")
