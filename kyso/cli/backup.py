"""``kyso backup`` and ``kyso restore``: the command line of :mod:`kyso.backup.archive`.

The passphrase comes from a file (``--passphrase-file``, first line) or is asked for with
the echo off; never from an argument, which any user would see in the process list."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from kyso.errors import InvalidInput

out = Console()
err = Console(stderr=True, soft_wrap=True)


class _Bar:
    """The backup's progress on standard error (rich draws nothing when it is not a
    terminal)."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, description: str, total: int | None = None) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


def _passphrase(path: Path | None, *, confirm: bool) -> bytes:
    from kyso.backup import archive

    if path is not None:
        return archive.read_passphrase_file(path)
    if not confirm:
        return str(typer.prompt("Backup passphrase", hide_input=True)).encode("utf-8")
    first = str(typer.prompt("Backup passphrase", hide_input=True))
    if typer.prompt("Again", hide_input=True) != first:
        raise InvalidInput("the passphrases differ", vi="hai lần nhập mật khẩu không khớp")
    return first.encode("utf-8")


def backup_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The archive to write.")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="A file whose first line is the passphrase (asked for if absent)."),
    ] = None,
) -> None:
    """One encrypted archive of everything the instance needs: the database, the key store
    files, the secrets, the audit checkpoints and a manifest."""
    from kyso.backup import archive
    from kyso.cli.main import context

    ctx = context()
    settings = ctx.settings
    ctx.close()
    passphrase = _passphrase(passphrase_file, confirm=True)
    archive.check_new_passphrase(passphrase)
    started = time.monotonic()
    with _Bar() as bar:
        made = archive.make(settings, output, passphrase, bar)
    seconds = time.monotonic() - started
    manifest = made.manifest
    out.print(
        f"backup written: {escape(str(made.path))} ({made.size:,} bytes, {seconds:.1f} s); "
        f"{manifest['database']['kind']} schema {manifest['schema_revision']}, "
        f"{manifest['certificates']} certificates, {len(manifest['members'])} files",
        highlight=False,
    )
    if not manifest["keystore"]["in_backup"]:
        err.print(
            f"[yellow]the CA keys stay in the HSM (token {manifest['keystore']['pkcs11_token']})"
            " and are not in the backup[/]"
        )
    elif not manifest["keystore"]["passphrase_in_backup"]:
        err.print(
            "[yellow]the key store's passphrase comes from KYSO_KEYSTORE_PASSPHRASE and is not "
            "in the backup: keep it with the backup's passphrase[/]"
        )


def restore_command(
    archive_file: Annotated[Path, typer.Argument(metavar="FILE", help="The backup archive.")],
    home: Annotated[
        Path, typer.Option("--home", help="The new instance's home (empty or absent).")
    ],
    database_url: Annotated[
        str | None,
        typer.Option(help="Restore the database here (PostgreSQL: an empty database)."),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="A file whose first line is the passphrase (asked for if absent)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Restore into a home or database that is not empty.")
    ] = False,
) -> None:
    """Restore a backup into a fresh home, migrate it to this kyso's schema and verify the
    audit chain against its checkpoints."""
    from kyso.backup import archive

    passphrase = _passphrase(passphrase_file, confirm=False)
    with _Bar() as bar:
        done = archive.restore(
            archive_file, home, passphrase, database_url=database_url, force=force, progress=bar
        )
    out.print(f"restored into {escape(str(done.home))}", highlight=False)
    out.print(f"database: {escape(done.database_url.split('@')[-1])}", highlight=False)
    schema = (
        done.schema_to
        if done.schema_from == done.schema_to
        else f"{done.schema_from} → {done.schema_to}"
    )
    out.print(f"schema: {schema}; CA keys checked: {done.keys_checked}")
    out.print(f"[green]audit chain intact[/]: {done.audit_entries} entries")
    out.print(escape(done.audit_message), highlight=False)
    if done.database_url.startswith("sqlite") and not done.database_url.endswith(
        str(done.home / "kyso.db")
    ):
        out.print(f"set KYSO_DATABASE_URL={escape(done.database_url)} for this instance")
    elif not done.database_url.startswith("sqlite"):
        out.print("set KYSO_DATABASE_URL to that database for this instance")
