"""Checkpoint files: atomic writes, the last two kept, damage detected, no code executed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmetric.training import load_checkpoint, read_manifest, save_checkpoint
from deepmetric.training.checkpoint import MANIFEST, restore_rng, rng_state


def _save_three(folder: Path) -> None:
    for step in (10, 20, 30):
        save_checkpoint(
            folder, {"w": torch.full((3,), float(step)), "meta": {"s": step}}, step=step
        )


def test_the_last_two_checkpoints_are_kept(tmp_path: Path) -> None:
    _save_three(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == [
        "checkpoint-000000020.pt",
        "checkpoint-000000030.pt",
    ]
    assert [e["step"] for e in read_manifest(tmp_path)] == [30, 20]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded["meta"] == {"s": 30}
    assert torch.equal(loaded["w"], torch.full((3,), 30.0))


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    _save_three(tmp_path)
    newest = tmp_path / "checkpoint-000000030.pt"
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.warns(UserWarning, match=r"checkpoint-000000030.pt is unusable: .*truncated"):
        loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded["meta"] == {"s": 20}


def test_a_corrupted_checkpoint_of_the_same_size_is_detected(tmp_path: Path) -> None:
    _save_three(tmp_path)
    newest = tmp_path / "checkpoint-000000030.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="SHA-256 does not match"):
        loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded["meta"] == {"s": 20}


def test_no_usable_checkpoint_gives_none(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path) is None
    _save_three(tmp_path)
    for path in tmp_path.glob("checkpoint-*.pt"):
        path.write_bytes(b"")
    with pytest.warns(UserWarning, match="unusable"):
        assert load_checkpoint(tmp_path) is None
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.warns(UserWarning, match=r"manifest.json is unreadable"):
        assert load_checkpoint(tmp_path) is None


class _Payload:
    """An object whose unpickling would run code."""

    ran = False

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_mark_ran, ())


def _mark_ran() -> None:
    _Payload.ran = True


def test_loading_never_executes_code_from_the_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"evil": _Payload()}, step=1)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["checkpoints"][0]["step"] == 1  # the file itself is intact
    with pytest.warns(UserWarning, match="does not load"):
        assert load_checkpoint(tmp_path) is None
    assert not _Payload.ran


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)  # noqa: NPY002
    save_checkpoint(tmp_path, {"rng": rng_state()}, step=1)
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])  # noqa: NPY002
    torch.manual_seed(9), np.random.seed(9), random.seed(9)  # noqa: NPY002
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None
    restore_rng(checkpoint["rng"])
    assert torch.equal(torch.rand(3), draws[0])
    assert np.array_equal(np.random.rand(3), draws[1])  # noqa: NPY002
    assert [random.random() for _ in range(3)] == draws[2]


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep must be >= 1; got 0"):
        save_checkpoint(tmp_path, {}, step=1, keep=0)
