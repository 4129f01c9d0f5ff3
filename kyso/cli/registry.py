"""`kyso org|person|user|device …`: the registry from the command line.

Whoever runs the CLI on the server acts province-wide (``cli_principal``). Units are named by
agency code (000.00.00.H06) or public id; people by public id or identity number (CCCD);
devices by serial or public id. Imports print every problem, one line each, and exit 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kyso.errors import InvalidInput, NotFound
from kyso.registry import devices, organizations, people, spreadsheets, users
from kyso.registry.access import Principal, cli_principal
from kyso.store.models import (
    DeviceKind,
    DeviceStatus,
    KeyDevice,
    Organization,
    OrgKind,
    Person,
    Role,
    Sector,
)

org_app = typer.Typer(help="Units (đơn vị): list, import, export.", no_args_is_help=True)
person_app = typer.Typer(help="Subscribers (thuê bao): list, import, export.", no_args_is_help=True)
user_app = typer.Typer(help="Users and roles.", no_args_is_help=True)
device_app = typer.Typer(help="Key storage devices (USB tokens).", no_args_is_help=True)

out = Console()
err = Console(stderr=True, soft_wrap=True)

JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
UNDER = Annotated[
    str | None, typer.Option("--under", help="Only this unit's subtree (code or id).")
]


def _who() -> Principal:
    from kyso.cli.main import actor

    return cli_principal(actor())


def _lang() -> str:
    from kyso.cli.main import _lang as lang

    return lang()


def _emit(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


def _unit(session: Session, who: Principal, ref: str | None) -> str | None:
    """A unit's public id from its agency code or public id."""
    if ref is None:
        return None
    org = session.execute(
        select(Organization).where(
            or_(Organization.public_id == ref, Organization.code == ref.strip().upper())
        )
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"unit {ref}", vi=f"đơn vị {ref}")
    return organizations.get(who, session, org.public_id).public_id


def _person(session: Session, ref: str) -> str:
    found = session.execute(
        select(Person.public_id).where(or_(Person.public_id == ref, Person.id_number == ref))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"person {ref}", vi=f"thuê bao {ref}")
    return found


def _device(session: Session, ref: str) -> str:
    found = session.execute(
        select(KeyDevice.public_id).where(
            or_(KeyDevice.public_id == ref, KeyDevice.serial == ref.strip())
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"device {ref}", vi=f"thiết bị {ref}")
    return found


def _user(session: Session, username: str) -> str:
    user = users.by_username(session, username)
    if user is None:
        raise NotFound(f"user {username}", vi=f"người dùng {username}")
    return user.public_id


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}", vi=f"không đọc được {path}") from exc


def _format_of(path: Path) -> spreadsheets.Format:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in {f.value for f in spreadsheets.Format}:
        raise InvalidInput(
            "the file must end in .xlsx or .csv", vi="tệp phải có đuôi .xlsx hoặc .csv"
        )
    return spreadsheets.Format(suffix)


def _report_rejected(exc: spreadsheets.ImportRejected) -> None:
    lang = _lang()
    err.print(
        f"[red]{'lỗi' if lang == 'vi' else 'error'}[/] {escape('[' + exc.code + ']')}: "
        + escape(exc.message_vi if lang == "vi" else exc.message_en),
        highlight=False,
    )
    for problem in exc.errors:
        err.print("  " + escape(problem.text(lang)), highlight=False)
    raise typer.Exit(1)


def _import(path: Path, run: Any, as_json: bool) -> None:
    from kyso.cli.main import context

    data = _read(path)
    ctx = context()
    try:
        with ctx.db.session() as session:
            made = run(session, data)
            ids = [row.public_id for row in made]
    except spreadsheets.ImportRejected as exc:
        if as_json:
            _emit(exc.body(_lang()))
            raise typer.Exit(1) from exc
        _report_rejected(exc)
    if as_json:
        _emit({"created": len(ids), "ids": ids})
    else:
        out.print(f"imported {len(ids)} rows from {path}")


def _export(path: Path, run: Any) -> None:
    from kyso.cli.main import context

    fmt = _format_of(path)
    ctx = context()
    with ctx.db.read() as session:
        data = run(session, fmt)
    path.write_bytes(data)
    err.print(f"wrote {path}")


# -- kyso org ---------------------------------------------------------------------------------
@org_app.command("list")
def org_list(
    q: Annotated[str | None, typer.Option(help="Part of the name (accents optional).")] = None,
    under: UNDER = None,
    kind: Annotated[OrgKind | None, typer.Option()] = None,
    sector: Annotated[Sector | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: JSON = False,
) -> None:
    """Units in tree order."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.read() as session:
        page = organizations.search(
            who,
            session,
            q=q,
            kind=kind,
            sector=sector,
            under=_unit(session, who, under),
            limit=limit,
        )
        parents = organizations.public_ids(session, (o.parent_id for o in page.items))
        depth = {o.id: o.path.count("/") - 2 for o in page.items}
        rows: list[dict[str, Any]] = [
            {
                "id": o.public_id,
                "code": o.code,
                "name": o.name,
                "kind": o.kind.value,
                "sector": o.sector.value,
                "parent": parents.get(o.parent_id) if o.parent_id else None,
                "depth": depth[o.id],
            }
            for o in page.items
        ]
    if as_json:
        _emit({"items": rows, "total": page.total})
        return
    table = Table(caption=f"{len(rows)} / {page.total}")
    for column in ("code", "name", "kind", "sector", "id"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["code"] or "", "  " * r["depth"] + r["name"], r["kind"], r["sector"], r["id"]
        )
    out.print(table)


@org_app.command("import")
def org_import(file: Path, as_json: JSON = False) -> None:
    """Create the units of an XLSX/CSV file (all rows or none)."""
    who = _who()
    _import(
        file, lambda s, d: spreadsheets.import_organizations(who, s, d, filename=file.name), as_json
    )


@org_app.command("export")
def org_export(file: Path, under: UNDER = None) -> None:
    """Write the units to FILE (.xlsx or .csv), ready to import again."""
    who = _who()
    _export(
        file,
        lambda s, fmt: spreadsheets.export_organizations(who, s, fmt, under=_unit(s, who, under)),
    )


# -- kyso person ------------------------------------------------------------------------------
@person_app.command("list")
def person_list(
    q: Annotated[str | None, typer.Option(help="Name, CCCD or e-mail.")] = None,
    under: UNDER = None,
    position: Annotated[str | None, typer.Option(help="Part of the position.")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: JSON = False,
) -> None:
    """Subscribers, by unit."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.read() as session:
        page = people.search(
            who, session, q=q, position=position, under=_unit(session, who, under), limit=limit
        )
        units = {
            o.id: o
            for o in session.execute(
                select(Organization).where(
                    Organization.id.in_({p.organization_id for p in page.items})
                )
            ).scalars()
        }
        rows: list[dict[str, Any]] = [
            {
                "id": p.public_id,
                "full_name": p.full_name,
                "id_number": p.id_number,
                "position": p.position,
                "unit": units[p.organization_id].name,
                "email": p.email,
                "mobile": p.mobile,
            }
            for p in page.items
        ]
    if as_json:
        _emit({"items": rows, "total": page.total})
        return
    table = Table(caption=f"{len(rows)} / {page.total}")
    for column in ("full name", "CCCD", "position", "unit", "id"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["full_name"], r["id_number"] or "", r["position"] or "", r["unit"], r["id"])
    out.print(table)


@person_app.command("import")
def person_import(
    file: Path,
    unit: Annotated[
        str | None, typer.Option(help="Unit for rows whose unit cell is empty.")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Create the subscribers of a form-01 list (XLSX/CSV; all rows or none)."""
    who = _who()
    _import(
        file,
        lambda s, d: spreadsheets.import_people(
            who, s, d, filename=file.name, default_unit=_unit(s, who, unit)
        ),
        as_json,
    )


@person_app.command("export")
def person_export(file: Path, under: UNDER = None) -> None:
    """Write the subscribers to FILE (.xlsx or .csv) with the columns of form 01."""
    who = _who()
    _export(
        file, lambda s, fmt: spreadsheets.export_people(who, s, fmt, under=_unit(s, who, under))
    )


# -- kyso user --------------------------------------------------------------------------------
@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[Role, typer.Option(help="province_admin, unit_officer, signer, auditor")],
    full_name: Annotated[str, typer.Option("--full-name")],
    unit: Annotated[str | None, typer.Option(help="The user's unit (code or id).")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    person: Annotated[str | None, typer.Option(help="Subscriber record (id or CCCD).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Create a user; prints the TOTP secret once for roles that need a second factor."""
    from kyso.cli.main import context

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    who = _who()
    ctx = context()
    with ctx.db.session() as session:
        made = users.create(
            who,
            session,
            users.UserInput(
                username=username,
                full_name=full_name,
                password=password,
                role=role,
                unit=_unit(session, who, unit),
                email=email,
                person=_person(session, person) if person else None,
            ),
        )
        result: dict[str, Any] = {
            "id": made.user.public_id,
            "username": made.user.username,
            "role": made.user.role.value,
        }
    if made.totp:
        result["totp_secret"] = made.totp.secret
        result["totp_uri"] = made.totp.uri
    if as_json:
        _emit(result)
        return
    out.print(f"created user [bold]{escape(result['username'])}[/] ({result['role']})")
    if made.totp:
        out.print(f"TOTP secret (shown once): {made.totp.secret}")
        out.print(escape(made.totp.uri))


@user_app.command("list")
def user_list(as_json: JSON = False) -> None:
    """Users and their roles."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.read() as session:
        page = users.search(who, session, limit=10_000)
        rows: list[dict[str, Any]] = [
            {
                "id": u.public_id,
                "username": u.username,
                "full_name": u.full_name,
                "role": u.role.value,
                "active": u.active,
            }
            for u in page.items
        ]
    if as_json:
        _emit(rows)
        return
    table = Table()
    for column in ("username", "full name", "role", "active"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["username"], r["full_name"], r["role"], "yes" if r["active"] else "no")
    out.print(table)


@user_app.command("deactivate")
def user_deactivate(username: str) -> None:
    """The user can no longer log in; their API tokens stop working."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.session() as session:
        users.deactivate(who, session, _user(session, username))
    out.print(f"deactivated {username}")


@user_app.command("reset-totp")
def user_reset_totp(username: str, as_json: JSON = False) -> None:
    """Give a user a new TOTP secret (a lost phone, or a key store whose data key was lost
    with a backup): the old codes stop working at once; the new secret is shown once."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.session() as session:
        enrolment = users.enrol_totp(who, session, _user(session, username))
    if as_json:
        _emit({"username": username, "totp_secret": enrolment.secret, "totp_uri": enrolment.uri})
        return
    out.print(f"TOTP secret for {escape(username)} (shown once): {enrolment.secret}")
    out.print(escape(enrolment.uri))


# -- kyso device ------------------------------------------------------------------------------
@device_app.command("list")
def device_list(
    status: Annotated[DeviceStatus | None, typer.Option()] = None,
    under: UNDER = None,
    limit: Annotated[int, typer.Option()] = 200,
    as_json: JSON = False,
) -> None:
    """Devices, by serial."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.read() as session:
        page = devices.search(
            who, session, status=status, under=_unit(session, who, under), limit=limit
        )
        holders = {
            p.id: p.full_name
            for p in session.execute(
                select(Person).where(
                    Person.id.in_({d.holder_person_id for d in page.items if d.holder_person_id})
                )
            ).scalars()
        }
        rows: list[dict[str, Any]] = [
            {
                "id": d.public_id,
                "serial": d.serial,
                "model": d.model,
                "kind": d.kind.value,
                "status": d.status.value,
                "holder": holders.get(d.holder_person_id or 0),
                "last_pin_change_at": d.last_pin_change_at,
            }
            for d in page.items
        ]
    if as_json:
        _emit({"items": rows, "total": page.total})
        return
    table = Table(caption=f"{len(rows)} / {page.total}")
    for column in ("serial", "model", "status", "holder"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["serial"], r["model"], r["status"], r["holder"] or "")
    out.print(table)


@device_app.command("add")
def device_add(
    serial: str,
    model: Annotated[str, typer.Option()],
    kind: Annotated[DeviceKind, typer.Option()] = DeviceKind.USB_TOKEN,
    unit: Annotated[str | None, typer.Option(help="Unit keeping it in stock (code or id).")] = None,
    as_json: JSON = False,
) -> None:
    """Add a device to the stock."""
    from kyso.cli.main import context

    who = _who()
    ctx = context()
    with ctx.db.session() as session:
        device = devices.add(
            who,
            session,
            devices.DeviceInput(
                serial=serial, model=model, kind=kind, unit=_unit(session, who, unit)
            ),
        )
        result = {"id": device.public_id, "serial": device.serial, "status": device.status.value}
    if as_json:
        _emit(result)
    else:
        out.print(f"added {result['serial']} ({result['status']})")


@device_app.command("handover")
def device_handover(
    device: Annotated[str, typer.Argument(help="Serial or id.")],
    to: Annotated[str, typer.Option("--to", help="The receiver: id or CCCD number.")],
    from_name: Annotated[str | None, typer.Option("--from", help="Who hands it over.")] = None,
    note: Annotated[str | None, typer.Option()] = None,
    minutes_pdf: Annotated[
        Path | None, typer.Option("--minutes", help="Also write the minutes (PDF) here.")
    ] = None,
    as_json: JSON = False,
) -> None:
    """Hand a device to a person and record the minutes (biên bản bàn giao)."""
    from kyso.cli.main import context
    from kyso.registry import minutes

    who = _who()
    ctx = context()
    with ctx.db.session() as session:
        row = devices.handover(
            who,
            session,
            _device(session, device),
            _person(session, to),
            from_name=from_name,
            note=note,
        )
        result = {"handover": row.public_id, "to": row.to_name, "at": row.at.isoformat()}
    if minutes_pdf is not None:
        with ctx.db.read() as session:
            minutes_pdf.write_bytes(minutes.handover_pdf(who, session, result["handover"]))
        result["minutes"] = str(minutes_pdf)
    if as_json:
        _emit(result)
    else:
        out.print(f"handed over to {escape(result['to'])} (minutes {result['handover']})")
        if minutes_pdf is not None:
            err.print(f"wrote {minutes_pdf}")


def print_demo(data: Any) -> None:
    """What `kyso init --demo` loaded, and the demo users' one-time credentials (printed as
    plain lines: a table would cut them at the terminal's width)."""
    out.print(
        f"demo: {data.organizations} units, {data.people} subscribers, {data.devices} key devices, "
        f"{data.certificates} certificates"
    )
    out.print(f"demo users (also in {data.credentials_file}, mode 0600):")
    for u in data.users:
        out.print(f"  {u.username} ({u.role.value}, {escape(u.unit)})", highlight=False)
        out.print(f"    password: {escape(u.password)}", highlight=False, soft_wrap=True)
        if u.totp_secret:
            out.print(f"    TOTP secret: {u.totp_secret}", highlight=False, soft_wrap=True)
        if getattr(u, "signing_pin", None):
            out.print(
                f"    signing PIN (central HSM, demo only): {u.signing_pin}",
                highlight=False,
                soft_wrap=True,
            )
