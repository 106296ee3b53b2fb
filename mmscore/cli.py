"""The `mmscore` command line: parses options, calls library functions, renders with rich."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import mmscore

# TensorFlow start-up chatter (CUDA probes, oneDNN notes) is noise for a command-line user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="Label pairs of posts (text + image) as Implies, Contradictory or NoEntailment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"mmscore {mmscore.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mmscore: batch multimodal entailment from the command line."""


@app.command()
def doctor() -> None:
    """Check the installation: load both encoders offline and test them on real inputs."""
    from mmscore.doctor import run_doctor

    with console.status("loading encoders and running checks..."):
        report = run_doctor()
    table = Table(title="mmscore doctor", show_header=False)
    for name, value in report.versions.items():
        table.add_row("version", name, value)
    table.add_row("devices", "", ", ".join(report.devices))
    for name, seconds in report.load_seconds.items():
        table.add_row("load", name, f"{seconds:.2f} s")
    for name, value in report.cosines.items():
        table.add_row("cosine", name, f"{value:.3f}")
    for photo, top in report.photos.items():
        table.add_row("photo", photo, ", ".join(f"{label} {p:.2f}" for label, p in top))
    for check, ok in report.checks.items():
        table.add_row("check", check, "[green]pass[/]" if ok else "[red]FAIL[/]")
    console.print(table)
    if not report.passed:
        raise fail("some checks failed", code=1)
    console.print("[green]all checks passed[/]")
