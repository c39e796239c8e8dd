"""Atomic writes on a full disk: one line naming the path, no temporary file left behind, and
the leftovers of killed directory saves removed by the next successful save."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from deepmetric import _atomic
from deepmetric._atomic import DiskFullError, replace_file_atomically, write_directory_atomically


def no_space(path: Path) -> None:
    path.write_bytes(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_path_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(DiskFullError, match=f"no space left on the device to write {target}"):
        replace_file_atomically(target, no_space)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DiskFullError, match="no space left"):
        write_directory_atomically(
            tmp_path / "dir", lambda d: no_space(d / "f"), managed=(), marker="m", what="dir"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_library_error_on_a_nearly_full_disk_counts_as_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def torch_like(path: Path) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64 vs 0")

    usage = type("Usage", (), {"free": 4096})
    monkeypatch.setattr(_atomic.shutil, "disk_usage", lambda where: usage)
    with pytest.raises(DiskFullError, match="no space left"):
        replace_file_atomically(tmp_path / "ckpt.pt", torch_like)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with space left: a real bug
        replace_file_atomically(tmp_path / "ckpt.pt", torch_like)


def test_leftovers_of_killed_saves_go_with_the_next_save(tmp_path: Path) -> None:
    def fill(folder: Path) -> None:
        (folder / "m").write_text("marker")

    target = tmp_path / "model"
    for leftover in (".model.tmp-0123456789ab", ".model.old-ba9876543210"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "weights").write_bytes(b"half")
    (tmp_path / ".other.tmp-0123456789ab").mkdir()  # another target's: kept
    write_directory_atomically(target, fill, managed=("m",), marker="m", what="model")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-0123456789ab", "model"]
