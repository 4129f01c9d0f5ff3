"""`kyso seal delegates list|grant|revoke …`: who may apply a unit's central seal.

Whoever runs the CLI on the server acts province-wide (``cli_principal``); the rules (a
central seal, a user of its unit who may sign, the audit entry) are
:mod:`kyso.remote.delegates`'s, as for the pages and the API.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kyso import clock
from kyso.registry.access import Principal, cli_principal
from kyso.remote import delegates

if TYPE_CHECKING:
    from kyso.context import Context

seal_app = typer.Typer(help="Unit seals whose keys are in the central HSM.", no_args_is_help=True)
delegates_app = typer.Typer(
    help="The users (records clerks) allowed to apply a central seal.", no_args_is_help=True
)
seal_app.add_typer(delegates_app, name="delegates")

out = Console()

SERIAL = Annotated[str, typer.Argument(help="The seal's certificate serial (hex).")]
USERNAME = Annotated[str, typer.Argument(help="A user of the seal's unit.")]
JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _who() -> Principal:
    from kyso.cli.main import actor

    return cli_principal(actor())


def _context() -> Context:
    from kyso.cli.main import context

    return context()


@delegates_app.command("list")
def list_command(serial: SERIAL, as_json: JSON = False) -> None:
    """The users who may apply the seal."""
    ctx = _context()
    try:
        with ctx.db.read() as session:
            found = delegates.list_delegates(_who(), session, serial)
    finally:
        ctx.close()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "serial": found.serial,
                    "unit": {"id": found.unit_id, "name": found.unit_name},
                    "delegates": [
                        {
                            "username": d.username,
                            "full_name": d.full_name,
                            "granted_by": d.granted_by,
                            "granted_at": d.granted_at.isoformat(),
                            "usable": d.usable,
                        }
                        for d in found.delegates
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    table = Table(title=f"{found.unit_name}: {found.serial}")
    for column in ("username", "full name", "granted by", "granted at", "usable"):
        table.add_column(column)
    for d in found.delegates:
        table.add_row(
            d.username,
            escape(d.full_name),
            d.granted_by,
            f"{clock.local(d.granted_at):%d/%m/%Y %H:%M}",
            "yes" if d.usable else "no",
        )
    out.print(table)
    if not found.delegates:
        out.print("no user may apply this seal yet / chưa ai được dùng con dấu này")


@delegates_app.command("grant")
def grant_command(serial: SERIAL, username: USERNAME) -> None:
    """Allow a user of the seal's unit to apply the seal."""
    ctx = _context()
    try:
        with ctx.db.session() as session:
            made = delegates.grant(_who(), session, serial, username)
    finally:
        ctx.close()
    out.print(f"{made.username} may apply seal {serial}", highlight=False)


@delegates_app.command("revoke")
def revoke_command(serial: SERIAL, username: USERNAME) -> None:
    """Take the seal from a user."""
    ctx = _context()
    try:
        with ctx.db.session() as session:
            delegates.revoke(_who(), session, serial, username)
    finally:
        ctx.close()
    out.print(f"{username} may no longer apply seal {serial}", highlight=False)
