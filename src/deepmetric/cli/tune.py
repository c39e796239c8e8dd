"""``deepmetric tune CONFIG --space SPACE.yaml --trials N``: an Optuna study of run configs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import fail, guarded, readable_errors, set_threads, threads_option


def _line(trial: Any) -> str:
    value = "" if trial.value is None else f"{trial.value:.4f}"
    params = ", ".join(f"{k}={v}" for k, v in (trial.user_attrs.get("params") or {}).items())
    error = trial.user_attrs.get("error")
    return f"trial {trial.number:>3}  {trial.state.name.lower():<8} {value:>8}  {params}" + (
        f"\n             error: {error}" if error else ""
    )


def tune(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The run config to tune.")],
    space: Annotated[Path, typer.Option("--space", help="The search space (YAML).")],
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold.")],
    folder: Annotated[Path, typer.Option("--dir", help="The study folder.")] = Path("runs/tune"),
    storage: Annotated[
        str | None, typer.Option(help="An Optuna RDB URL shared by workers (default: SQLite).")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Seeds per trial, scored by their mean.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="The sampler's seed.")] = 0,
    heartbeat: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds between heartbeats; a trial silent for twice "
            "that (a killed worker's) is marked failed and run again.",
        ),
    ] = 60,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: key.path=value.")
    ] = None,
    threads: int | None = threads_option(),
) -> None:
    """Search hyper-parameters on a class-disjoint validation split of the training classes;
    the test split is never loaded. Run the same command in more processes (or on more
    machines with --storage) to share the study; run it again after a kill to continue."""
    set_threads(threads)
    try:
        import optuna  # noqa: F401
    except ImportError:
        fail("deepmetric tune needs Optuna: pip install 'deepmetric[tune]'")
    from ..tune import load_space, run_study, write_best
    from ..tune.report import write_study_report

    sets = list(overrides or [])
    parsed = guarded(lambda: load_space(space, config))
    typer.echo(f"study {folder} ({len(parsed.params)} parameters, {trials} trials)")
    with readable_errors():
        study = run_study(
            config,
            parsed,
            folder,
            trials=trials,
            overrides=sets,
            storage=storage,
            seed=seed,
            repeats=repeats,
            heartbeat=heartbeat,
            on_trial=lambda t: typer.echo(_line(t)),
        )
    finished = [t for t in study.trials if t.value is not None]
    if not finished:
        fail(f"no trial of {folder} finished; see the trial folders")
    typer.echo("all finished trials of the study:")
    typer.echo("\n".join(_line(t) for t in sorted(finished, key=lambda t: t.number)))
    best = guarded(lambda: write_best(study, config, parsed, folder / "best.yaml", sets))
    report = guarded(lambda: write_study_report(study, folder))
    typer.echo(f"best: trial {study.best_trial.number}, {study.best_value:.4f} -> {best}")
    typer.echo(f"report: {report}")
    typer.echo(f"next: deepmetric train {best}   # trains on all training classes, tests once")
