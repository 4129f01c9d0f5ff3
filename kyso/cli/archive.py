"""``kyso archive check`` and ``kyso archive export``: the command line of
:mod:`kyso.archive.service` (the archivist's and the operator's tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

archive_app = typer.Typer(help="The electronic archive.", no_args_is_help=True)
out = Console()


@archive_app.command("check")
def check_command() -> None:
    """Re-read every archived file and compare it with its SHA-256; exit 1 if any file
    changed or is missing."""
    from kyso.archive import service
    from kyso.cli.main import context

    ctx = context()
    with Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task("Kiểm tra kho lưu trữ", total=None)
        found = service.check(
            ctx, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    out.print(
        f"{found.checked} tệp, {found.bytes / 1e6:,.1f} MB; "
        f"thiếu {len(found.missing)}, bị thay đổi {len(found.changed)}"
    )
    for public_id in found.missing:
        out.print(f"  thiếu: {public_id}")
    for public_id in found.changed:
        out.print(f"  bị thay đổi: {public_id}")
    if not found.intact:
        raise typer.Exit(1)


@archive_app.command("export")
def export_command(
    record: Annotated[list[str], typer.Argument(help="archive record ids")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the ZIP to write")],
    title: Annotated[str, typer.Option(help="the record file's title")] = "Hồ sơ",
) -> None:
    """Write a record file (hồ sơ) as a ZIP with manifest.json and SHA256SUMS
    (``sha256sum -c SHA256SUMS`` checks it without kyso)."""
    from kyso.archive import service
    from kyso.cli.main import actor, context
    from kyso.registry.access import cli_principal

    ctx = context()
    data = service.export(ctx, cli_principal(actor()), record, title)
    output.write_bytes(data)
    out.print(f"{output}: {len(record)} tệp, {len(data) / 1e6:,.2f} MB")
