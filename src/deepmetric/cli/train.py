"""``deepmetric train CONFIG``: train as a YAML run config says."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
import yaml

from ._common import checked_device, device_option, guarded, set_threads, threads_option


def train(
    config: Path = typer.Argument(..., help="A YAML run config (see configs/)."),  # noqa: B008
    overrides: list[str] = typer.Option([], "--set", help="Override a key: key.path=value."),  # noqa: B008
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start the run in output.dir again, deleting the old one."
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the resolved config and exit."
    ),
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Train a model; writes config.yaml, checkpoints/, metrics.jsonl, model/ and report.html.

    Under torchrun (``torchrun --nproc-per-node N $(which deepmetric) train CONFIG``) every
    process joins the group, takes its share of each batch, and rank 0 alone writes and prints.
    """
    from ..config import load_config
    from ..runs import run_training
    from ..training.distributed import is_main_process, process_group_from_environment

    if device is not None:
        overrides = [*overrides, f"runtime.device={checked_device(device)}"]
    cfg = guarded(lambda: load_config(config, overrides))
    if print_config:
        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False), nl=False)
        return
    if threads is not None or cfg.runtime.threads is None:  # record what the run uses
        count = set_threads(threads)
        cfg = guarded(lambda: load_config(config, [*overrides, f"runtime.threads={count}"]))
    try:
        with process_group_from_environment(cfg.runtime.device):
            if is_main_process():
                typer.echo(f"training {config} -> {cfg.output.dir}", err=True)
            outcome = guarded(lambda: run_training(cfg, resume=resume, overwrite=overwrite))
            if not is_main_process():
                return
    except KeyboardInterrupt:
        checkpoints = Path(cfg.output.dir) / "checkpoints"
        if not checkpoints.is_dir() or not any(checkpoints.iterdir()):
            typer.echo("\ninterrupted before the first checkpoint: nothing to resume", err=True)
            raise typer.Exit(130) from None
        again = ["deepmetric", "train", str(config), *[f"--set={o}" for o in overrides]]
        typer.echo(f"\ninterrupted: the last checkpoint is in {checkpoints}", err=True)
        typer.echo(f"resume with: {shlex.join([*again, '--resume'])}", err=True)
        raise typer.Exit(130) from None
    for name, value in outcome.metrics.items():
        typer.echo(f"{name:>16} {value:.4f}")
    typer.echo(f"model: {outcome.result.model_dir or outcome.out_dir / 'model'}")
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")
    sys.stdout.flush()
