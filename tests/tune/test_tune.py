"""``deepmetric tune``: the space file, trials as run folders, pruning, a killed study resumed,
two workers on one SQLite study, and a search that never loads the test split."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("optuna")

from deepmetric.config import load_config  # noqa: E402
from deepmetric.models import load_model  # noqa: E402
from deepmetric.training import State  # noqa: E402
from deepmetric.tune import SpaceError, load_space, open_study, run_study  # noqa: E402
from deepmetric.tune.study import _Report  # noqa: E402

DIGITS = Path(__file__).resolve().parents[2] / "configs" / "digits.yaml"
SMALL = ["epochs=1", "data.val_fraction=0.4", "sampler.batch_size=64", "runtime.threads=1"]
SPACE = {
    "pruner": {"name": "none"},
    "params": {
        "optimizer.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "loss": {"type": "categorical",
                 "choices": [{"name": "supcon", "temperature": 0.1}, {"name": "multi_similarity"}]},
    },
}  # fmt: skip


def _space(tmp_path: Path, space: dict = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


@pytest.mark.parametrize(
    "params, message",
    [
        ({"optimizer.lrr": {"type": "float", "low": 0.1, "high": 0.2}}, "params.optimizer.lrr"),
        ({"optimizer.lr": {"type": "float", "low": 0.2, "high": 0.1}}, "low < high"),
        ({"optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "0 < low"),
        ({"optimizer.lr": {"type": "floaty", "low": 0.1, "high": 0.2}}, "type"),
        ({"optimizer.lr": {"type": "float", "low": 0.1, "hi": 0.2}}, "did you mean 'high'"),
        ({"sampler.m_per_class": {"type": "int", "low": 0.5, "high": 4}}, "int range"),
        ({"loss": {"type": "categorical", "choices": [{"name": "tripplet"}]}}, "params.loss"),
        ({"optimizer.lr": {"type": "float", "low": -1.0, "high": 0.1}}, "optimizer.lr = -1.0"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_key(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(SpaceError, match="space.yaml") as caught:
        load_space(_space(tmp_path, {"params": params}), DIGITS)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_trials_are_run_folders_and_best_yaml_is_a_run_config(tmp_path: Path) -> None:
    from deepmetric.tune import write_best

    space = load_space(_space(tmp_path), DIGITS)
    study = run_study(DIGITS, space, tmp_path / "study", trials=2, overrides=SMALL)
    assert len([t for t in study.trials if t.value is not None]) == 2
    for number in (0, 1):
        folder = tmp_path / "study" / f"trial_{number:04d}"
        config = load_config(folder / "config.yaml")
        assert config.data.search and load_model(folder / "model").embedding_dim == 64
    best = write_best(study, DIGITS, space, tmp_path / "study" / "best.yaml", SMALL)
    promoted = load_config(best)
    assert not promoted.data.search and promoted.output.dir == "runs/best"
    assert promoted.optimizer.lr == pytest.approx(
        study.best_trial.user_attrs["params"]["optimizer.lr"]
    )


def test_the_search_never_loads_the_test_split(tmp_path: Path) -> None:
    missing = ["data.test={name: folder, root: /nonexistent/test-split}", "data.test_classes=[]"]
    with pytest.raises(OSError):  # an ordinary run opens it
        from deepmetric.runs import build_data

        build_data(load_config(DIGITS, missing))
    space = load_space(_space(tmp_path), DIGITS)
    study = run_study(DIGITS, space, tmp_path / "study", trials=1, overrides=[*SMALL, *missing])
    assert study.trials[0].value is not None


class _Trial:
    def __init__(self, prune_at: int) -> None:
        self.prune_at, self.reported = prune_at, []

    def report(self, value: float, step: int) -> None:
        self.reported.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reported) >= self.prune_at


def test_the_epoch_value_goes_to_the_trial_and_a_pruned_run_stops() -> None:
    trial, state = _Trial(prune_at=2), State()
    report = _Report(trial, "val_map_at_r")
    for epoch, value in ((1, 0.3), (2, 0.4)):
        state.epoch, state.epoch_end, state.metrics = epoch, True, {"val_map_at_r": value}
        report(state)
    assert trial.reported == [(0, 0.3), (1, 0.4)] and state.should_stop and report.pruned


def test_the_median_pruner_stops_a_trial_that_lags(tmp_path: Path) -> None:
    lr = {"type": "float", "low": 1.0e-7, "high": 1.0e-2, "log": True}
    pruner = {"name": "median", "warmup_epochs": 0, "startup_trials": 2}
    space = load_space(_space(tmp_path, {"pruner": pruner, "params": {"optimizer.lr": lr}}), DIGITS)
    study = open_study(tmp_path / "study", space)
    # on this 4-class toy split an untrained MLP (lr 1e-7) keeps a val MAP@R of 0.68 while
    # lr 3e-3 drops to 0.59 after one epoch: the last trial lags the median from its first report
    for value in (1e-7, 1e-7, 3e-3):
        study.enqueue_trial({"optimizer.lr": value})
    study = run_study(DIGITS, space, tmp_path / "study", trials=3, overrides=[*SMALL, "epochs=3"])
    states = [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]
    log = (tmp_path / "study" / "trial_0002" / "metrics.jsonl").read_text()
    assert log.count('"kind": "epoch"') < 3  # stopped before its last epoch


def _tune(tmp_path: Path, trials: int, *extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
    command = [str(Path(sys.executable).parent / "deepmetric"), "tune", str(DIGITS), "--space",
               str(_space(tmp_path)), "--trials", str(trials), "--dir", str(tmp_path / "study"),
               "--heartbeat", "1", "--threads", "1", *[a for s in SMALL for a in ("--set", s)],
               *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _states(tmp_path: Path) -> list[str]:
    db = tmp_path / "study" / "study.db"
    if not db.is_file():
        return []
    with sqlite3.connect(db) as connection:
        try:
            return [
                row[0] for row in connection.execute("SELECT state FROM trials ORDER BY number")
            ]
        except sqlite3.OperationalError:
            return []


def _beating(tmp_path: Path) -> bool:
    """Whether a trial after a complete one is running and has recorded a heartbeat (Optuna
    fails only such trials as stale)."""
    with sqlite3.connect(tmp_path / "study" / "study.db") as connection:
        try:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM trials JOIN trial_heartbeats USING (trial_id) "
                "WHERE state = 'RUNNING'"
            ).fetchone()
        except sqlite3.OperationalError:
            return False
    return count > 0 and "COMPLETE" in _states(tmp_path)


def test_a_killed_study_resumes_with_the_same_command(tmp_path: Path) -> None:
    first = _tune(tmp_path, 4, "--set", "epochs=3")
    deadline = time.monotonic() + 120
    while not (tmp_path / "study" / "study.db").is_file() or not _beating(tmp_path):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-trial: it ran past its first heartbeat
    first.wait()
    before = _states(tmp_path)
    time.sleep(5)  # well past the grace period of two heartbeats
    second = _tune(tmp_path, 4, "--set", "epochs=3")
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    after = _states(tmp_path)
    assert after[: before.count("COMPLETE")] == ["COMPLETE"] * before.count("COMPLETE")
    assert "FAIL" in after and after.count("COMPLETE") == 4  # the killed trial failed, retried
    assert "RUNNING" not in after


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    workers = [_tune(tmp_path, 4) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    states = _states(tmp_path)
    assert 4 <= states.count("COMPLETE") <= 5  # a worker may start a trial as the other ends one
    folders = sorted(p.name for p in (tmp_path / "study").glob("trial_*"))
    assert len(folders) == len(states) and len(set(folders)) == len(folders)
    assert all("best: trial" in out for out in outputs)


def test_the_study_report_renders_in_chromium(tmp_path: Path) -> None:
    """With DEEPMETRIC_DOCS_SCREENSHOT=1 and STUDY=folder, docs/study-report.png is taken of
    that study's report instead (the README's)."""
    from tests.report.test_browser import close, open_report
    from tests.serve.test_browser import CHROMIUM, DRIVER

    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {DRIVER}")
    from deepmetric.tune.report import write_study_report

    space = load_space(_space(tmp_path), DIGITS)
    study = run_study(DIGITS, space, tmp_path / "study", trials=2, overrides=SMALL)
    page = write_study_report(study, tmp_path / "study")
    text = page.read_text()
    assert all(f'id="{a}"' in text for a in ("history", "importances", "curves", "trials"))
    shown = Path(os.environ["STUDY"]) / "study.html" if os.environ.get("STUDY") else page
    driver = open_report(shown)
    try:
        images = driver.execute_script(
            "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert len(images) == 2 and all(images)  # history and curves
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        if os.environ.get("DEEPMETRIC_DOCS_SCREENSHOT") == "1":
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1200, min(int(height), 2400))
            driver.save_screenshot(
                str(Path(__file__).resolve().parents[2] / "docs" / "study-report.png")
            )
    finally:
        close(driver)


def test_the_shipped_spaces_load_against_their_configs() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    for space in sorted((root / "spaces").glob("*.yaml")):
        assert load_space(space, root / space.name).params
