"""Replace a file or a whole directory atomically: a kill at any instant leaves the previous
good version.

A file is written to a hidden temporary sibling, flushed to disk and renamed over the target.
A directory is built in a hidden sibling and swapped in. On Linux the swap is one
``renameat2(RENAME_EXCHANGE)`` call, so at every instant the path holds either the complete old
version or the complete new one. Where that call is missing the old directory is first renamed
to a hidden ``.<name>.old-<tag>`` sibling and the new one renamed into place; only a kill between
those two renames leaves the path absent, with the previous version intact under the hidden name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Collection
from os import PathLike
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_FULL = 1 << 20  # less free space than this after a failed write: the disk is full


class DiskFullError(OSError):
    """A write failed because the device has no space left; the message names the path."""


def _disk_full(err: BaseException, where: Path) -> DiskFullError | None:
    """The error to raise instead of ``err`` when it means a full disk, else None.

    Besides ``OSError(ENOSPC)``, libraries report a full disk in their own words (torch:
    "unexpected pos", SQLite: "database or disk is full"), so any error counts when the
    device is nearly full afterwards.
    """
    if isinstance(err, DiskFullError) or not isinstance(err, Exception):
        return None
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = _FULL
    if getattr(err, "errno", None) == errno.ENOSPC or free < _FULL:
        found = DiskFullError(f"no space left on the device to write {where}; free some space "
                              "or write elsewhere")  # fmt: skip
        found.errno = errno.ENOSPC
        return found
    return None


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one system call; ``False`` where the OS cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    code = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if code == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # old kernel or a filesystem without exchange: use two renames
    raise OSError(err, f"cannot swap {str(second)!r} into place: {os.strerror(err)}")


def _fsync(path: Path) -> None:
    """Flush a file, or a directory entry list where the OS allows it."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    with contextlib.suppress(OSError):  # directories cannot be opened on some systems
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_or_copy(source: str, destination: str) -> str:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
    return destination


def _carry_over(old: Path, new: Path, managed: Collection[str]) -> None:
    """Bring every entry of ``old`` that the writer does not manage into ``new``."""
    for entry in old.iterdir():
        if entry.name in managed or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(new / entry.name))


def _swap_in(staged: Path, target: Path, tag: str) -> Path | None:
    """Put ``staged`` at ``target``; returns where the previous version now lies, if any."""
    if not target.exists():
        os.rename(staged, target)
        return None
    if _exchange(staged, target):
        return staged
    backup = target.with_name(f".{target.name}.old-{tag}")
    os.rename(target, backup)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(backup, target)
        raise
    return backup


def write_directory_atomically(
    path: str | PathLike[str],
    write: Callable[[Path], None],
    *,
    managed: Collection[str],
    marker: str,
    what: str,
) -> Path:
    """Make ``path`` the directory that ``write(folder)`` fills, atomically; returns ``path``.

    ``write`` fills a fresh hidden sibling folder; entries of the previous version that are not
    in ``managed`` are carried over (hard-linked, or copied). If anything fails the staged folder
    is removed and the previous version is untouched. An existing non-empty directory without
    the ``marker`` file is refused, so a wrong path never destroys unrelated files.
    """
    target = Path(os.path.abspath(path))  # "." has no name to derive a sibling from
    if target.exists() and not target.is_dir():
        raise ValueError(f"{str(target)!r} is a file; a {what} path must be a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise ValueError(
            f"{str(target)!r} exists and is not a {what} (no {marker}); it is never "
            "overwritten: choose a new path or empty it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    staged = target.with_name(f".{target.name}.tmp-{tag}")
    staged.mkdir()
    try:
        write(staged)
        if target.is_dir():
            _carry_over(target, staged, managed)
        for file in staged.rglob("*"):
            _fsync(file)
        _fsync(staged)
        previous = _swap_in(staged, target, tag)
    except BaseException as err:
        shutil.rmtree(staged, ignore_errors=True)
        full = _disk_full(err, target)
        if full is not None:
            raise full from err
        raise
    _fsync(target.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*-*"):  # killed saves' leftovers
        if stale.name.rsplit("-", 1)[0] in (f".{target.name}.tmp", f".{target.name}.old"):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(path)


def replace_file_atomically(path: str | PathLike[str], write: Callable[[Path], object]) -> None:
    """``write(temporary)`` fills a hidden sibling of ``path``, which is flushed and renamed over
    ``path``; on any failure the temporary file is removed and ``path`` is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        write(temporary)
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        full = _disk_full(err, target)
        if full is not None:
            raise full from err
        raise
    _fsync(target.parent)


def write_text_atomically(path: str | PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` with :func:`replace_file_atomically`."""
    replace_file_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
