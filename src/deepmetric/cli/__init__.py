"""The ``deepmetric`` command: one module per subcommand, each a thin client of the library."""

from __future__ import annotations

import typer
import typer.core

from . import (
    apps,
    bench,
    demo,
    embed,
    evaluate,
    explain,
    index,
    search,
    serve,
    train,
    tune,
    verify,
)
from ._common import brief_warnings

# typer's help shows a type beside every option, "<bool>" for an on/off flag too, which reads
# as if the flag took a value: flags show no type
_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = lambda self, ctx: (  # type: ignore[method-assign]
    None if self.is_flag else _option_type(self, ctx)
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Deep metric learning toolkit.")
app.command("demo")(demo.demo)
app.command("train")(train.train)
app.command("tune")(tune.tune)
app.command("evaluate")(evaluate.evaluate)
app.command("embed")(embed.embed)
app.command("bench")(bench.bench)
app.add_typer(index.app, name="index")
app.command("search")(search.search)
app.command("serve")(serve.serve)
app.command("explain")(explain.explain)
app.command("verify")(verify.verify)
app.command("classify")(apps.classify)
app.command("cluster")(apps.cluster)
app.command("anomaly")(apps.anomaly)


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"deepmetric {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Deep metric learning: train, evaluate and search embeddings."""


def main() -> None:
    """Console-script entry point."""
    brief_warnings()
    app()
