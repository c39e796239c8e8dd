"""``run_study``: an Optuna study over run configs, every trial an ordinary run folder.

Each trial applies the space's values to the run config, marks it ``data.search`` (the test
split is never loaded; a class- or group-disjoint share of the training classes validates), and
trains it into ``FOLDER/trial_NNNN`` with :func:`deepmetric.runs.run_training`. The epoch
validation value (``validation.select``) goes to Optuna after every epoch, so the pruner can
stop a trial that lags. The study lives in an RDB: SQLite in ``FOLDER/study.db`` by default, or
any URL Optuna takes (PostgreSQL, MySQL) shared by workers on several machines. Workers that run
the same command share the study and the trial budget; a worker that was killed leaves a trial
that the next start marks failed (Optuna's heartbeat) and runs again.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import load_config, save_config
from ..runs import run_training
from ..training import State
from .space import Space

STUDY_FILE = "study.db"


def _pruner(space: Space) -> Any:
    import optuna

    name = space.pruner.get("name", "none")
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(space.pruner.get("startup_trials", 5)),
            n_warmup_steps=int(space.pruner.get("warmup_epochs", 1)),
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(
    folder: Path, space: Space, *, storage: str | None = None, seed: int = 0, heartbeat: int = 60
) -> Any:
    """The study of ``folder`` (created, or loaded to continue), with stale trials of killed
    workers marked failed and queued again."""
    import optuna
    import sqlalchemy
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / STUDY_FILE).resolve()}"
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(5):  # workers started together race to create the tables: retry
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = RDBStorage(
                    url,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                    engine_kwargs=engine,
                )
            break
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial lines say what happened
    name = folder.resolve().name
    study = optuna.create_study(
        study_name=name, storage=rdb, load_if_exists=True,
        direction=space.direction,  # type: ignore[arg-type]
        pruner=_pruner(space),
    )  # fmt: skip
    # seeded by the trials so far: one worker's study is reproducible, and a resumed or second
    # worker does not repeat the first one's picks
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, queued again
    return study


class _Report:
    """Sends each epoch's validation value to the trial and stops a pruned run."""

    def __init__(self, trial: Any, key: str) -> None:
        self.trial, self.key, self.pruned = trial, key, False

    def __call__(self, state: State) -> None:
        value = state.metrics.get(self.key) if state.epoch_end else None
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), state.epoch - 1)
        if self.trial.should_prune():
            self.pruned = state.should_stop = True


def run_study(
    config: str | Path,
    space: Space,
    folder: str | Path,
    *,
    trials: int,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    seed: int = 0,
    repeats: int = 1,
    heartbeat: int = 60,
    on_trial: Callable[[Any], None] | None = None,
) -> Any:
    """Run trials until the study holds ``trials`` finished ones (complete or pruned), counted
    over every worker, this worker trying at most ``trials`` times; returns the Optuna study.
    A trial whose values make a bad run config (a ``ValueError``) fails and the study goes on.

    ``repeats`` trains each trial under that many seeds (``runtime.seed`` + 0, 1, ...) and scores
    it by their mean validation value, so that a gain can be told from noise.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    root = Path(folder)
    study = open_study(root, space, storage=storage, seed=seed, heartbeat=heartbeat)
    base = load_config(config, list(overrides))
    key = f"val_{base.validation.select}"

    def objective(trial: Any) -> float:
        values = {p.key: p.suggest(trial) for p in space.params}
        trial.set_user_attr("params", values)
        scores = []
        for repeat in range(repeats):
            where = root / f"trial_{trial.number:04d}" / (f"seed{repeat}" if repeats > 1 else "")
            sets = [
                *overrides,
                *space.overrides(values),
                "data.search=true",
                f"output.dir={where}",
                "output.report=false",
                "output.baselines=false",
                "runtime.progress=false",
                f"runtime.seed={base.runtime.seed + repeat}",
            ]
            report = _Report(trial, key) if repeat == 0 else None
            try:
                outcome = run_training(
                    load_config(config, sets), overwrite=True, callbacks=[report] if report else []
                )
            except ValueError as err:  # a bad combination of values: this trial fails
                trial.set_user_attr("error", str(err).splitlines()[0])
                raise
            if report is not None and report.pruned:
                raise optuna.TrialPruned()
            scores.append(float(outcome.result.best_metric or math.nan))
        trial.set_user_attr("repeats", scores)
        return statistics.fmean(scores)

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    callbacks: list[Any] = [MaxTrialsCallback(trials, states=done)]
    if on_trial is not None:
        callbacks.append(lambda study, trial: on_trial(trial))
    if sum(t.state in done for t in study.trials) < trials:
        study.optimize(objective, n_trials=trials, callbacks=callbacks, catch=(ValueError,))
    return study


def write_best(
    study: Any, config: str | Path, space: Space, path: Path, overrides: Sequence[str] = ()
) -> Path:
    """The best trial's values applied to the run config, as a plain run config (``best.yaml``)
    that trains on the full training set and scores the real test split once."""
    values = study.best_trial.user_attrs["params"]
    best = load_config(config, [*overrides, *space.overrides(values), "output.dir=runs/best"])
    save_config(best, path)
    (path.parent / "best.json").write_text(
        json.dumps(
            {"value": study.best_value, "trial": study.best_trial.number, "params": values},
            indent=2,
            default=str,
        )
    )
    return path
