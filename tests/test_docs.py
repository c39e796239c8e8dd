"""The API reference builds from the docstrings (``make docs``), as CI checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_docs_builds_the_api_reference(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed-dev", "docs", f"API_OUT={tmp_path}",
         f"BIN={bin_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    assert {"index.html", "deepmetric/losses.html", "deepmetric/training.html"} <= pages
    losses = (tmp_path / "deepmetric" / "losses.html").read_text()
    assert "TripletMarginLoss" in losses and "Paper" in losses  # the docstrings, not just names
