"""Training records: one JSON object per line (``metrics.jsonl``), TensorBoard when installed,
and a progress bar that stays silent off a terminal.

Every record carries ``kind`` (``"step"`` or ``"epoch"``), ``step`` and ``epoch``, plus float
metrics. The JSONL file is appended to and flushed after each record, so a resumed run continues
the same file (records after the resumed step are repeated once, with the same values in a
deterministic run).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

from .state import State

logger = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities become None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricLogger:
    """Appends records to ``<folder>/metrics.jsonl`` and, optionally, TensorBoard.

    Args:
        folder: where ``metrics.jsonl`` (and the TensorBoard ``events`` files) go; ``None``
            keeps nothing (a logger that only discards, for runs without an output folder).
        tensorboard: ``"auto"`` writes TensorBoard events when the ``tensorboard`` package is
            installed; ``True`` requires it; ``False`` never writes them.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with MetricLogger(folder, tensorboard=False) as log:
        ...     log.write("step", {"loss": 0.5}, step=1, epoch=0)
        >>> (Path(folder) / "metrics.jsonl").read_text()
        '{"kind": "step", "step": 1, "epoch": 0, "loss": 0.5}\\n'
    """

    def __init__(
        self, folder: str | Path | None, *, tensorboard: bool | Literal["auto"] = "auto"
    ) -> None:
        self.path = None if folder is None else Path(folder) / "metrics.jsonl"
        self._file = None
        self._writer: Any = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        has_tb = importlib.util.find_spec("tensorboard") is not None
        if tensorboard is True and not has_tb:
            raise ImportError(
                "tensorboard=True needs the tensorboard package; pip install tensorboard"
            )
        if tensorboard is not False and has_tb:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.path.parent / "tensorboard"))
        elif tensorboard == "auto":
            logger.debug("tensorboard is not installed; logging to %s only", self.path)

    def write(self, kind: str, values: Mapping[str, Any], *, step: int, epoch: int) -> None:
        """Append one record; numeric values also go to TensorBoard as ``<kind>/<name>``."""
        if self._file is None:
            return
        record = {"kind": kind, "step": step, "epoch": epoch}
        record.update({key: _clean(value) for key, value in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(f"{kind}/{key}", value, global_step=step)

    def close(self) -> None:
        """Close the file and the TensorBoard writer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class Progress:
    """What a training shows while it runs, on stderr (or ``stream``): epoch, step, loss, the
    last validation score and the time left. A live bar on a terminal; on anything else (a log
    file, CI) one line at the end of each epoch.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> progress = Progress(epochs=2, select="map_at_r", stream=out)
        >>> from deepmetric.training.state import State
        >>> progress.update(State(epoch=1, step=10, steps_per_epoch=10, loss=0.5, epoch_end=True,
        ...                       metrics={"val_map_at_r": 0.25}))
        >>> out.getvalue().split("  ")[:4]
        ['epoch 1/2', 'step 10/20', 'loss 0.5', 'val map_at_r 0.2500']
    """

    def __init__(self, *, epochs: int, select: str, stream: TextIO | None = None) -> None:
        self.epochs, self.select = epochs, select
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.start: float | None = None
        self.first = 0  # the step the timing starts from (a resumed run starts midway)
        self._bar: Any = None
        self._task: Any = None

    def line(self, state: State) -> str:
        """``epoch e/E  step s/S  loss l  val <select> v  elapsed  ETA t``."""
        now = time.perf_counter()
        self.start = now if self.start is None else self.start
        total = state.steps_per_epoch * self.epochs
        done = max(state.step - self.first, 1)
        elapsed = now - self.start
        eta = elapsed / done * max(total - state.step, 0)
        epoch = state.epoch if state.epoch_end else state.epoch + 1
        score = state.metrics.get(f"val_{self.select}")
        shown = "" if score is None else f"  val {self.select} {score:.4f}"
        return (
            f"epoch {epoch}/{self.epochs}  step {state.step}/{total}  loss {state.loss:.4g}"
            f"{shown}  {_clock(elapsed)}  ETA {_clock(eta)}"
        )

    def update(self, state: State) -> None:
        """Show ``state`` (called after every step and at every epoch's end)."""
        if self.start is None:
            self.start, self.first = time.perf_counter(), state.step - 1
        if not self.live:  # a log: one line per epoch, nothing formatted in between
            if state.epoch_end:
                self.stream.write(self.line(state) + "\n")
                self.stream.flush()
            return
        text = self.line(state)
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            console = Console(file=self.stream)
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), console=console)
            self._bar.start()
            self._task = self._bar.add_task(text, total=state.steps_per_epoch * self.epochs)
        self._bar.update(self._task, completed=state.step, description=text)

    __call__ = update  # a callback of the loop

    def close(self) -> None:
        """Stop the live bar (its last line stays on the screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


__all__ = ["MetricLogger", "Progress", "read_jsonl"]
