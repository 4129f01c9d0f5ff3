"""`kyso request …`: certificate requests from the server's command line.

Whoever runs the CLI acts province-wide. An approval is a named person's act, so ``approve``
and ``reject`` take ``--as USERNAME`` (a province administrator's account) and are recorded
under that user (``cli:<os user> as <username>``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kyso import clock
from kyso.errors import InvalidInput, NotFound
from kyso.lifecycle import bulk, notify, workflow
from kyso.lifecycle.forms import TYPE_LABELS, KeySource
from kyso.registry.access import Principal, cli_principal
from kyso.store.models import JobState, Organization, RequestState, RequestType, User

request_app = typer.Typer(
    help="Certificate requests (forms 01–06): list, show, approve, reject, bulk import.",
    no_args_is_help=True,
)


def _main() -> Any:
    from kyso.cli import main

    return main


def _principal() -> Principal:
    return cli_principal(_main().actor())


def _as_user(ctx: Any, username: str) -> Principal:
    from kyso.registry import users

    with ctx.db.read() as session:
        user: User | None = users.by_username(session, username)
        if user is None or not user.active:
            raise NotFound(f"user {username}", vi=f"người dùng {username}")
        principal = users.principal_for_user(session, user)
    return Principal(
        actor=f"{_main().actor()} as {user.username}",
        role=principal.role,
        user_id=principal.user_id,
        organization_id=principal.organization_id,
        org_path=principal.org_path,
    )


def _unit_ref(ctx: Any, ref: str | None) -> str | None:
    """A unit by public id or agency code."""
    if ref is None:
        return None
    from sqlalchemy import select

    with ctx.db.read() as session:
        found = session.execute(
            select(Organization.public_id).where(
                (Organization.public_id == ref) | (Organization.code == ref.strip().upper())
            )
        ).scalar()
    if found is None:
        raise NotFound(f"organization {ref}", vi=f"đơn vị {ref}")
    return str(found)


def _row(view: workflow.RequestView) -> dict[str, Any]:
    r = view.request
    return {
        "id": r.public_id,
        "type": r.type.value,
        "state": r.state.value,
        "unit": view.unit.name,
        "subscriber": view.subscriber,
        "certificate": view.certificate.serial if view.certificate else None,
        "batch": view.batch,
        "created_at": r.created_at.isoformat(),
        "submitted_at": r.submitted_at.isoformat() if r.submitted_at else None,
        "issued_at": r.issued_at.isoformat() if r.issued_at else None,
    }


@request_app.command("list")
def list_command(
    state: Annotated[RequestState | None, typer.Option(help="draft, submitted, …")] = None,
    request_type: Annotated[RequestType | None, typer.Option("--type")] = None,
    unit: Annotated[str | None, typer.Option(help="A unit (public id or code) and below.")] = None,
    batch: Annotated[str | None, typer.Option(help="A bulk job's id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Requests, newest first."""
    main = _main()
    ctx = main.context()
    with ctx.db.read() as session:
        page = workflow.search(
            _principal(),
            session,
            state=state,
            type=request_type,
            unit=_unit_ref(ctx, unit),
            batch=batch,
            limit=limit,
        )
        rows = [_row(v) for v in page.items]
    if as_json:
        main._emit({"total": page.total, "items": rows})
        return
    table = Table(title=f"{len(rows)} / {page.total}")
    for column in ("id", "type", "state", "unit", "subscriber", "certificate"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["id"], r["type"], r["state"], r["unit"], r["subscriber"] or "", r["certificate"] or ""
        )
    main.out.print(table)


@request_app.command("show")
def show_command(request_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One request with its form and history."""
    main = _main()
    ctx = main.context()
    with ctx.db.read() as session:
        view = workflow.get(_principal(), session, request_id)
        data = _row(view)
        data["form"] = view.envelope.fields
        data["approvals"] = [{"user": u, "at": at.isoformat()} for u, at in view.approvals]
        data["history"] = [
            {
                "at": e.at.isoformat(),
                "by": e.actor,
                "from": e.from_state.value if e.from_state else None,
                "to": e.to_state.value,
                "note": e.note,
            }
            for e in view.events
        ]
    if as_json:
        main._emit(data)
        return
    main.out.print(f"[bold]{data['id']}[/] {TYPE_LABELS[RequestType(data['type'])]}")
    main.out.print(
        f"  trạng thái: {workflow.STATE_LABELS[RequestState(data['state'])]}"
        f" · đơn vị: {data['unit']}"
    )
    for key, value in data["form"].items():
        main.out.print(f"  {key}: {value}")
    for item in data["history"]:
        main.out.print(
            f"  {item['at']}  {item['from'] or '—'} → {item['to']}  {item['by']}"
            f"  {item['note'] or ''}"
        )


@request_app.command("approve")
def approve_command(
    request_id: str,
    as_user: Annotated[str, typer.Option("--as", help="The approving administrator.")],
    note: Annotated[str | None, typer.Option()] = None,
    batch: Annotated[bool, typer.Option("--batch", help="REQUEST_ID is a bulk job.")] = False,
    confirm_subscriber_changes: Annotated[
        bool,
        typer.Option(
            "--confirm-subscriber-changes",
            help="Accept the changes to an existing subscriber's record the refusal listed.",
        ),
    ] = False,
) -> None:
    """Approve a request (the last approval needed carries it out) or a whole batch."""
    main = _main()
    ctx = main.context()
    who = _as_user(ctx, as_user)
    if batch:
        with ctx.db.session() as session:
            decision = bulk.approve(who, session, request_id, note=note)
        main.out.print(f"lô {request_id}: {decision.approvals}/{decision.required} phê duyệt")
        if decision.runnable:
            _run_with_progress(main, ctx, who, request_id)
        return
    with ctx.db.session() as session:
        request = workflow.approve(
            who,
            session,
            ctx.authority,
            request_id,
            note=note,
            confirm_subscriber_changes=confirm_subscriber_changes,
        )
        state = request.state
    main.out.print(f"{request_id}: {workflow.STATE_LABELS[state]}")


@request_app.command("reject")
def reject_command(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why (sent to the requester).")],
    as_user: Annotated[str, typer.Option("--as", help="The deciding administrator.")],
) -> None:
    """Refuse a request, with the reason."""
    main = _main()
    ctx = main.context()
    who = _as_user(ctx, as_user)
    with ctx.db.session() as session:
        workflow.reject(who, session, request_id, reason)
    main.out.print(f"{request_id}: {workflow.STATE_LABELS[RequestState.REJECTED]}")


def _run_with_progress(main: Any, ctx: Any, who: Principal, job_id: str) -> None:
    from rich.progress import Progress

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["job"] = bulk.run(who, ctx.authority, job_id)
        except Exception as exc:  # shown below, in this thread
            result["error"] = exc

    thread = threading.Thread(target=work, name=f"batch-{job_id}")
    thread.start()
    with Progress(console=main.err, transient=True) as progress:
        task = progress.add_task("cấp chứng thư", total=None)
        while thread.is_alive():
            with ctx.db.read() as session:
                view = bulk.get(who, session, ctx.settings, job_id)
            progress.update(task, total=view.total or None, completed=view.done)
            time.sleep(0.2)
    thread.join()
    if "error" in result:
        raise result["error"]
    view = result["job"]
    if view.state is JobState.DONE:
        main.out.print(f"lô {job_id}: đã cấp {view.done} chứng thư")
        return
    for error in view.errors:
        main.err.print(f"dòng {error['row']}: {error['message']}")
    raise typer.Exit(1)


@request_app.command("bulk")
def bulk_command(
    file: Annotated[Path, typer.Argument(help="XLSX with the columns of form 01.")],
    unit: Annotated[str, typer.Option(help="The requesting unit (public id or code).")],
    key_source: Annotated[
        KeySource,
        typer.Option(help="server (EC P-256 in kyso's key store) or token (awaiting tokens)"),
    ] = KeySource.SERVER,
    approve_as: Annotated[
        str | None,
        typer.Option("--approve-as", help="Approve (and issue) at once as this administrator."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import a unit's list; every row is checked first (errors by row and column)."""
    main = _main()
    ctx = main.context()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}", vi=f"không đọc được {file}") from exc
    if len(data) > ctx.settings.max_upload_bytes:
        from kyso.errors import TooLarge

        raise TooLarge(f"{file} is over {ctx.settings.max_upload_bytes} bytes")
    try:
        with ctx.db.session() as session:
            job = bulk.upload(
                _principal(),
                session,
                ctx.settings,
                data,
                unit=_unit_ref(ctx, unit),
                key_source=key_source,
            )
            job_id, total = job.public_id, job.total
    except bulk.BulkRejected as exc:
        if as_json:
            main._emit({"code": exc.code, "errors": [e.to_json() for e in exc.errors]})
        else:
            table = Table(title=exc.message("vi"))
            for column in ("dòng", "cột", "tiêu đề", "lỗi"):
                table.add_column(column)
            for e in exc.errors:
                table.add_row(str(e.row or ""), e.column or "", e.header or "", e.message)
            main.err.print(table)
        raise typer.Exit(1) from None
    if as_json and approve_as is None:
        main._emit({"job": job_id, "requests": total})
    else:
        main.out.print(f"lô {job_id}: {total} yêu cầu đã gửi")
    if approve_as is not None:
        who = _as_user(ctx, approve_as)
        with ctx.db.session() as session:
            decision = bulk.approve(who, session, job_id)
        if decision.runnable:
            _run_with_progress(main, ctx, who, job_id)
        elif decision.approved:
            main.out.print("đã duyệt; các yêu cầu chờ thiết bị (token) để tạo khóa")
        else:
            main.out.print(f"{decision.approvals}/{decision.required} phê duyệt; cần thêm")


@request_app.command("mail")
def mail_command(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200) -> None:
    """Send the waiting e-mail notifications (run it from a timer)."""
    main = _main()
    ctx = main.context()
    report = notify.send_pending(ctx.db, ctx.settings, limit=limit)
    main.out.print(f"đã gửi {report.sent}, lỗi {report.failed}, còn chờ {report.pending}")


@request_app.command("remind")
def remind_command(
    expiring_days: Annotated[int, typer.Option(min=1, max=366)] = 30,
    pin_days: Annotated[
        int, typer.Option(min=1, max=3650, help="PIN unchanged for this long.")
    ] = 90,
) -> None:
    """Queue reminders: certificates about to expire, PINs never or long not changed."""
    main = _main()
    ctx = main.context()
    with ctx.db.session() as session:
        expiring = notify.remind_expiring(session, within_days=expiring_days)
        pins = notify.remind_pin_overdue(
            _principal(), session, days=pin_days or ctx.settings.pin_change_days
        )
    main.out.print(
        f"nhắc hết hạn: {expiring}, nhắc đổi PIN: {pins} "
        f"({clock.local(clock.now()):%d/%m/%Y %H:%M})"
    )
