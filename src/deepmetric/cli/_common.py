"""Shared pieces of the commands: one-line errors, dataset specs, run directories."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
import yaml

T = TypeVar("T")
# what a bad input raises (OSError: unreadable or missing files, a full disk); anything else is a
# bug and keeps its traceback
INPUT_ERRORS = (ValueError, KeyError, TypeError, OSError, ImportError)


def _warning_line(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> str:
    return f"warning: {message}\n"


def brief_warnings() -> None:
    """Show library warnings (skipped files, uncalibrated thresholds) as ``warning: ...`` lines,
    once each, without the source location a user cannot act on."""
    warnings.formatwarning = _warning_line
    warnings.simplefilter("default", UserWarning)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` to stderr and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def readable_errors() -> Iterator[None]:
    """Turn a bad-input exception into one line on stderr and exit status 2."""
    try:
        yield
    except INPUT_ERRORS as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        fail(text.splitlines()[0] if text else type(err).__name__)
    # typer.Exit and KeyboardInterrupt pass through


def guarded(call: Callable[[], T]) -> T:
    """``call()`` under ``readable_errors``."""
    with readable_errors():
        return call()
    raise AssertionError("unreachable")  # pragma: no cover


def threads_option() -> Any:
    """The ``--threads`` option of every command that computes."""
    return typer.Option(
        None, "--threads", min=1,
        help="CPU threads for torch (default: the cores that other processes leave free).",
    )  # fmt: skip


def device_option() -> Any:
    """The ``--device`` option of every command that runs a model."""
    return typer.Option(
        None, "--device", help="Where the model runs: cpu, cuda, cuda:1, mps (default: cpu)."
    )


def checked_device(device: str | None) -> str:
    """``device`` (default ``cpu``) if this machine has it; one error line otherwise."""
    from .._checks import check_device

    name = device or "cpu"
    guarded(lambda: check_device(name, "--device"))
    return name


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads, or as many as the machine has free (``auto_threads``)."""
    from .._threads import set_threads as apply

    return apply(threads)


def parse_spec(text: str) -> dict[str, Any]:
    """A dataset spec from ``--data``: a YAML/JSON mapping, or a bare dataset name."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        fail(
            f"--data must be a dataset name or a YAML mapping like '{{name: digits}}'; got {text!r}"
        )
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        fail(f"--data must be a dataset name or a mapping with a 'name' key; got {text!r}")
    return value


def model_dir(run: Path) -> Path:
    """The model directory of a run directory (``RUN/model``) or a model directory itself."""
    if (run / "model" / "config.json").is_file():
        return run / "model"
    if (run / "config.json").is_file():
        return run
    fail(f"{str(run)!r} is neither a run directory (with model/) nor a model directory")


def model_metric(folder: Path) -> str:
    """The metric a model directory was validated with (its ``train_config.json``), else
    cosine for a normalised model and euclidean otherwise."""
    import json

    from ..distances import METRICS
    from ..models import read_model_config

    card = read_model_config(folder)
    saved = folder / "train_config.json"
    if saved.is_file():
        distance = (
            json.loads(saved.read_text(encoding="utf-8")).get("validation", {}).get("distance")
        )
        if distance in METRICS:
            return str(distance)
    return "cosine" if card.get("normalize", True) else "euclidean"
