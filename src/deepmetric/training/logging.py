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
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

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
    """A tqdm bar over steps when ``enabled`` and stderr is a terminal; otherwise nothing.

    Example:
        >>> bar = Progress(total=3, enabled=False, desc="epoch 1")
        >>> bar.update({"loss": 1.0}); bar.close()
    """

    def __init__(self, *, total: int, enabled: bool, desc: str, initial: int = 0) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False)

    def update(self, values: Mapping[str, float]) -> None:
        """Advance one step and show ``values``."""
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["MetricLogger", "Progress", "read_jsonl"]
