"""``deepmetric bench``: run the benchmark scripts of bench/ with this Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from ._common import fail, set_threads, threads_option

# a script that needs a data path or runs for hours says so in a line of its own
BY_HAND = "# bench: by hand"


def scripts(folder: Path) -> list[Path]:
    """The benchmark scripts in ``folder`` that run unattended, sorted (``_*.py`` are helpers)."""
    return sorted(
        p
        for p in folder.glob("*.py")
        if not p.name.startswith("_") and BY_HAND not in p.read_text(encoding="utf-8")
    )


def bench(
    only: list[str] = typer.Option([], "--only", help="Run only these (e.g. losses, evaluation)."),  # noqa: B008
    folder: Path = typer.Option(Path("bench"), "--dir", help="The benchmark folder."),  # noqa: B008
    list_only: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
    threads: int | None = threads_option(),
) -> None:
    """Run each benchmark script in its own process and report which failed."""
    set_threads(threads)
    found = {p.stem: p for p in scripts(folder)} if folder.is_dir() else {}
    if not found:
        fail(f"no benchmark scripts in {str(folder)!r}; run from the repository root or pass --dir")
    unknown = [name for name in only if name not in found]
    if unknown:
        fail(f"unknown benchmark {unknown[0]!r}; known: {', '.join(found)}")
    if list_only:
        typer.echo("\n".join(found))
        return
    failed = []
    for name in only or list(found):
        typer.echo(f"== bench/{found[name].name}", err=True)
        code = subprocess.call([sys.executable, str(found[name])])
        if code:
            failed.append(f"{name} (exit {code})")
    if failed:
        fail(f"failed: {', '.join(failed)}")
