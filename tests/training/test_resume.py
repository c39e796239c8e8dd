"""A run killed at a random step and resumed ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepmetric.training import State, TrainResult, read_manifest, train

from .common import assert_equal_weights, resume_setup, weights

SCRIPT = Path(__file__).with_name("resume_script.py")


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, torch.Tensor], TrainResult]:
    """The uninterrupted run: its final weights (model and loss) and result."""
    setup = resume_setup()
    result = train(**setup, out_dir=tmp_path_factory.mktemp("reference"))
    return weights(setup["model"], setup["loss"]), result


def _resume(out_dir: Path) -> tuple[dict[str, torch.Tensor], TrainResult]:
    setup = resume_setup(seed=123)  # a different initialisation: everything must come back
    result = train(**setup, out_dir=out_dir, resume=True)
    return weights(setup["model"], setup["loss"]), result


def _same_history(first: TrainResult, second: TrainResult) -> None:
    """Every epoch record (losses, monitor, validation) equal, timings aside."""

    def values(result: TrainResult) -> str:
        rows = [{k: v for k, v in r.items() if not k.endswith("_time")} for r in result.history]
        return json.dumps(rows)

    assert values(first) == values(second)


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kill_after = random.Random(os.urandom(8)).randint(1, 5)  # checkpoints every 3 of 20 steps
    out_dir = tmp_path / "run"
    command = [sys.executable, str(SCRIPT), str(out_dir), str(torch.get_num_threads()), "0.05"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            entries = read_manifest(out_dir / "checkpoints") if out_dir.exists() else []
            if entries and entries[0]["step"] >= 3 * kill_after:
                break
            time.sleep(0.005)
        assert process.poll() is None, f"the run ended before the kill: {process.stderr.read()!r}"  # type: ignore[union-attr]
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = read_manifest(out_dir / "checkpoints")[0]["step"]
    assert killed_at < reference[1].steps, "the kill came after the last checkpoint"
    resumed, result = _resume(out_dir)
    assert_equal_weights(resumed, reference[0])
    assert result.steps == reference[1].steps and result.best_epoch == reference[1].best_epoch
    _same_history(result, reference[1])


def test_a_truncated_checkpoint_is_skipped_for_the_previous_one(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def stop_at_eight(state: State) -> None:
        state.should_stop = state.step == 8

    train(**resume_setup(), out_dir=tmp_path, callbacks=[stop_at_eight])
    entries = read_manifest(tmp_path / "checkpoints")
    assert [e["step"] for e in entries] == [6, 3]
    newest = tmp_path / "checkpoints" / entries[0]["file"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"checkpoint-000000006.pt is unusable: .*truncated"):
        resumed, _ = _resume(tmp_path)
    assert_equal_weights(resumed, reference[0])


def test_resuming_a_finished_run_changes_nothing(reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = resume_setup()
    train(**setup, out_dir=tmp_path)
    resumed, result = _resume(tmp_path)
    assert_equal_weights(resumed, reference[0])
    assert result.steps == reference[1].steps


def _stop(state: State) -> None:
    state.should_stop = True


def test_changed_options_on_resume_are_reported(tmp_path: Path) -> None:
    setup = resume_setup()
    train(**setup, out_dir=tmp_path, callbacks=[lambda s: setattr(s, "should_stop", s.step == 4)])
    changed = resume_setup()
    changed["options"] = type(changed["options"]).from_dict(
        {**changed["options"].to_dict(), "epochs": 3}
    )
    with pytest.warns(UserWarning, match=r"differ from the checkpoint's in \['epochs'\]"):
        train(**changed, out_dir=tmp_path, resume=True, callbacks=[_stop])
