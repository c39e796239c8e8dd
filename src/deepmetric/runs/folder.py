"""A run folder is deepmetric's own: created and marked by a run, refused when it holds anything
else, and continued or started again only when asked.

The marker is ``.deepmetric-run`` (JSON: the library version and when the folder was made).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .._atomic import write_text_atomically
from .._version import __version__

MARKER = ".deepmetric-run"


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` was made by a deepmetric run."""
    return (folder / MARKER).is_file()


def check_run_folder(folder: Path, *, resume: bool, overwrite: bool) -> None:
    """Raise ``FileExistsError`` saying what to do unless ``folder`` may take this run:

    - new or empty: yes;
    - a run folder: continued with ``resume``, started again with ``overwrite``, refused
      otherwise (nothing of a finished run is replaced silently);
    - anything else that is not empty (a data folder, someone's project): always refused.
    """
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite starts it again: pick one")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"output folder {str(folder)!r} is a file; choose a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_run_folder(folder):
            raise FileExistsError(
                f"output folder {str(folder)!r} is not empty and was not made by deepmetric; "
                "choose a new or empty output.dir"
            )
        if not (resume or overwrite):
            raise FileExistsError(
                f"output folder {str(folder)!r} holds a run; pass --resume to continue it, "
                "--overwrite to start it again, or choose another output.dir"
            )


def prepare_run_folder(folder: Path, *, resume: bool, overwrite: bool) -> Path:
    """Make ``folder`` ready for a run (:func:`check_run_folder` first): created and marked, or
    emptied for ``overwrite``."""
    check_run_folder(folder, resume=resume, overwrite=overwrite)
    if overwrite and folder.is_dir():
        for entry in folder.iterdir():
            if entry.name != MARKER:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if not is_run_folder(folder):
        stamp = {"version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text_atomically(folder / MARKER, json.dumps(stamp) + "\n")
    return folder
