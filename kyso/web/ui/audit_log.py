"""Pages: the audit log for administrators and auditors — searchable (who, what, on which
record, when), newest first, each entry in full, exported as CSV, and the result of the
hash-chain check held against the newest signed checkpoint
(:func:`kyso.audit.checkpoints.verify`): intact or broken at entry N, and anchored up to a
checkpoint or not matching it (entries removed, the log rewritten, a forged checkpoint)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from kyso import clock
from kyso.audit import checkpoints, search
from kyso.errors import InvalidInput, NotFound
from kyso.registry import spreadsheets
from kyso.registry.access import Action, Principal
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

PAGE_SIZE = 50
Auditor = Annotated[Any, guard.allowed(Action.AUDIT_READ)]
Text = Annotated[str, Query(max_length=200)]


@dataclass
class Filters:
    """The search form as typed (shown again as it was)."""

    actor: str = ""
    action: str = ""
    target: str = ""
    date_from: str = ""
    date_to: str = ""

    def any(self) -> bool:
        return any(vars(self).values())

    def typed(self) -> search.AuditFilter:
        """What the form asks the audit service for (after :func:`_check` found no error)."""
        return search.AuditFilter(
            actor=self.actor or None,
            action=self.action or None,
            target=self.target or None,
            since=_day(self.date_from),
            until=_day(self.date_to),
        )


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _check(filters: Filters, _: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in ("date_from", "date_to"):
        value = getattr(filters, name)
        if value and (_day(value) is None or not 2000 <= _day(value).year <= 2999):  # type: ignore[union-attr]
            errors[name] = _("Enter a date as dd/mm/yyyy.")
    start, end = _day(filters.date_from), _day(filters.date_to)
    if not errors and start and end and end < start:
        errors["date_to"] = _("The end date is before the start date.")
    if any("\x00" in v for v in vars(filters).values()):
        errors["actor"] = _("The search text contains a character that cannot be searched.")
    return errors


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None
    seconds: float
    at: datetime
    anchor: checkpoints.AnchoredCheck


def _verify(ctx: Any, principal: Principal) -> ChainResult:
    started = time.perf_counter()
    result = search.verify(principal, ctx)
    chain = result.chain
    return ChainResult(
        chain.ok,
        chain.entries,
        chain.first_bad_seq,
        chain.problem,
        time.perf_counter() - started,
        clock.now(),
        result,
    )


def _problem(problem: str | None, _: Any) -> str:
    """The check's finding in the reader's language."""
    known = {
        "link to the previous entry is broken": _(
            "the entry does not link to the one before it (an entry was inserted, removed or "
            "reordered)"
        ),
        "entry was changed after it was written": _("the entry was changed after it was written"),
        "the log's head record was removed": _("the record of the log's end was removed"),
        "entries at the end of the log were removed": _(
            "entries at the end of the log were removed"
        ),
    }
    if problem is None:
        return ""
    if problem.startswith("entry ") and problem.endswith(" is missing"):
        return _("an entry is missing")
    return known.get(problem, problem)


@router.get("/audit", include_in_schema=False)
def audit_list(
    request: Request,
    ctx: Ctx,
    viewer: Auditor,
    actor: Text = "",
    action: Text = "",
    target: Text = "",
    date_from: Text = "",
    date_to: Text = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    _ = guard.environment_gettext(request)
    filters = Filters(actor.strip(), action.strip(), target.strip(), date_from, date_to)
    errors = _check(filters, _)
    total, rows = 0, []
    with ctx.db.read() as session:
        actions = search.actions(viewer.principal, session)
        if not errors:
            found = search.search(
                viewer.principal, session, filters.typed(), offset=offset, limit=PAGE_SIZE
            )
            total, rows = found.total, found.rows
    export = request.url.query
    return render(
        request,
        "audit/list.html",
        {
            "filters": filters,
            "errors": errors,
            "action_options": [(a, a) for a in actions],
            "rows": rows,
            "total": total,
            "offset": offset,
            "limit": PAGE_SIZE,
            "export_query": "&".join(
                p for p in export.split("&") if p and not p.startswith("offset=")
            ),
        },
        status_code=422 if errors else 200,
    )


@router.get("/audit/export.csv", include_in_schema=False)
def audit_export(
    request: Request,
    ctx: Ctx,
    viewer: Auditor,
    actor: Text = "",
    action: Text = "",
    target: Text = "",
    date_from: Text = "",
    date_to: Text = "",
) -> Response:
    _ = guard.environment_gettext(request)
    filters = Filters(actor.strip(), action.strip(), target.strip(), date_from, date_to)
    errors = _check(filters, _)
    if errors:
        message = "; ".join(errors.values())
        raise InvalidInput(message, vi=message)
    with ctx.db.read() as session:
        rows = search.export(viewer.principal, session, filters.typed())
    header = [_("No."), _("Time"), _("Who"), _("Action"), _("Record"), _("Details"), _("Hash")]
    body = [
        [
            r.seq,
            clock.local(r.at).replace(tzinfo=None),
            r.actor,
            r.action,
            r.target,
            r.details,
            r.hash,
        ]
        for r in rows
    ]
    response = Response(
        spreadsheets.csv_table(header, body),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": content_disposition(
                f"nhat-ky-{clock.local(clock.now()):%Y%m%d-%H%M}.csv"
            )
        },
    )
    guard.finish(request, response)
    return response


@router.get("/audit/check", include_in_schema=False)
def audit_check(request: Request, ctx: Ctx, viewer: Auditor) -> Response:
    """Walk the whole chain now. On demand, not on every page: it reads every entry (about a
    second per 10,000 entries, measured on SQLite and PostgreSQL), and the log only grows."""
    _ = guard.environment_gettext(request)
    chain = _verify(ctx, viewer.principal)
    return render(
        request,
        "audit/check.html",
        {"chain": chain, "chain_problem": _problem(chain.problem, _)},
    )


@router.get("/audit/{seq}", include_in_schema=False)
def audit_entry(
    request: Request,
    ctx: Ctx,
    viewer: Auditor,
    seq: Annotated[str, Path(max_length=40)],
) -> Response:
    number = int(seq) if seq.isascii() and seq.isdigit() and len(seq) <= 18 else 0
    if number < 1:  # no entry has such a number
        raise NotFound(f"audit entry {seq}", vi=f"mục nhật ký {seq}")
    with ctx.db.read() as session:
        entry = search.entry(viewer.principal, session, number)
    try:
        details = json.loads(entry.details)
    except ValueError:
        details = entry.details
    pretty = (
        json.dumps(details, ensure_ascii=False, indent=2, sort_keys=True)
        if isinstance(details, dict | list)
        else str(details)
    )
    target_link = None
    if entry.target and entry.action.startswith("certificate."):
        target_link = f"/certificates/{entry.target}"
    return render(
        request,
        "audit/entry.html",
        {"entry": entry, "details": pretty, "target_link": target_link},
    )
