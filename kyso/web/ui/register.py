"""Pages: the records clerk's register of issued documents (sổ văn bản đi), issuing a
leader-signed draft, the province's catalogue of document types, and the plan's 90 % figure.

- ``/exchange/register``: the register of the units in view for a year, exported as XLSX
  and CSV; each entry's page downloads the issued PDF and sends it to other agencies.
- ``/exchange/issue``: the clerk issues a draft the leader signed (the next number, the
  unit's seal over the left third of the leader's signature).
- ``/exchange/catalogue``: how each type of document goes out; the province changes it.
- ``/reports/electronic``: per unit and level, the documents issued in a period and how many
  went out electronically, against the plan's 90 % target, as a table, a chart and exports.

Every rule is :mod:`kyso.exchange.register`'s: these pages read the form, call the service
and show its answer (its errors beside the fields, with the values kept).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, KysoError, NotFound
from kyso.exchange import register, service
from kyso.registry import organizations, spreadsheets
from kyso.registry.access import Action, Principal
from kyso.registry.sessions import Viewer
from kyso.signing.keyuse import KeyNotAllowed
from kyso.store.models import Delivery, RegisteredDocument
from kyso.web.api_documents import read_upload
from kyso.web.ui import guard
from kyso.web.ui.exchange_forms import (
    chosen_files,
    file_response,
    form_errors,
    parse_day,
    passes_through,
    receiving_units,
    recipient_codes,
    seal_keys,
    sending_units,
)
from kyso.web.ui.guard import Ctx
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render
from kyso.web.ui.uploads import MAX_IMAGE_BYTES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Clerk = Annotated[Viewer, guard.allowed(Action.DOCUMENT_EXCHANGE)]
Reader = Annotated[Viewer, guard.allowed(Action.REPORT_READ)]

# Form limits a little above the service's own (notation 60, subject 500 characters), so
# that a value just too long comes back beside its field in the service's words.
Short = Annotated[str, Form(max_length=40)]
Text = Annotated[str, Form(max_length=200)]
Long = Annotated[str, Form(max_length=2000)]
Pick = Annotated[str, Query(max_length=20)]

# How a type goes out (the catalogue's Delivery), and the colour of its badge.
DELIVERY_LABELS = {
    Delivery.ELECTRONIC: (N_("Electronic"), "good"),
    Delivery.PARALLEL: (N_("Electronic and paper"), "submitted"),
    Delivery.PAPER: (N_("Paper only"), "declined"),
}
# The levels the plan counts (kyso.exchange.register.Level), in the report's order.
LEVEL_LABELS = {
    register.Level.PROVINCE: N_("Province"),
    register.Level.DISTRICT: N_("District"),
    register.Level.COMMUNE: N_("Commune"),
}
TARGET_TEXT = f"{register.TARGET * 100:.0f} %"  # "90 %"
PAGE_LIMIT = 500  # register entries on the page, newest first
EXPORT_LIMIT = 20_000  # register entries in one export (a district issues a few thousand a year)


def _deliveries(_: Any) -> dict[str, tuple[str, str]]:
    return {d.value: (_(name), tone) for d, (name, tone) in DELIVERY_LABELS.items()}


def _today() -> date:
    return clock.local(clock.now()).date()


def _stamp() -> str:
    return f"{clock.local(clock.now()):%Y%m%d-%H%M}"


# -- the register --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One row of the register as the pages and exports show it."""

    public_id: str
    code: str  # "12/QĐ-UBND"
    issued_on: date
    type_name: str
    subject: str
    signer: str
    unit: str  # its name
    unit_id: str  # its public id
    delivery: Delivery
    sent_at: datetime | None
    created_at: datetime


def _entries(session: Session, rows: Sequence[RegisteredDocument]) -> list[Entry]:
    """The rows :func:`register.entries` or :func:`register.get` gave, with the names of
    their type and unit."""
    types = {t.id: t.name for t in register.catalogue(session)}
    units = organizations.by_ids(session, (r.organization_id for r in rows))
    return [
        Entry(
            public_id=r.public_id,
            code=f"{r.number}/{r.notation}",
            issued_on=r.issued_on,
            type_name=types.get(r.type_id, ""),
            subject=r.subject,
            signer=r.signer_name or "",
            unit=units[r.organization_id].name if r.organization_id in units else "",
            unit_id=units[r.organization_id].public_id if r.organization_id in units else "",
            delivery=r.delivery,
            sent_at=r.sent_at,
            created_at=r.created_at,
        )
        for r in rows
    ]


def _year(text: str, _: Any) -> tuple[int | None, str | None]:
    """The year asked for: this year when none is, every year for "all", else an error."""
    text = text.strip()
    if not text:
        return _today().year, None
    if text == "all":
        return None, None
    if text.isascii() and text.isdigit() and 1900 <= int(text) <= 2200:
        return int(text), None
    return None, _("Choose a year from the list.")


def _listing(ctx: Context, principal: Principal, year: int | None, limit: int) -> list[Entry]:
    with ctx.db.read() as session:
        rows = register.entries(principal, session, year=year, limit=limit)
        return _entries(session, rows)


@router.get("/exchange/register")
def register_page(request: Request, ctx: Ctx, viewer: Clerk, year: Pick = "") -> Response:
    _ = guard.environment_gettext(request)
    chosen, problem = _year(year, _)
    this_year = _today().year
    years = sorted({*range(this_year - 9, this_year + 2), *([chosen] if chosen else [])})
    entries = [] if problem else _listing(ctx, viewer.principal, chosen, PAGE_LIMIT)
    return render(
        request,
        "register/list.html",
        {
            "entries": entries,
            "page_limit": PAGE_LIMIT,
            "year": "all" if chosen is None and not problem else str(chosen or year[:20]),
            "years": [("all", _("All years"))] + [(str(y), str(y)) for y in reversed(years)],
            "errors": {"year": problem} if problem else {},
            "deliveries": _deliveries(_),
            "export_query": f"year={'all' if chosen is None else chosen}",
        },
        status_code=422 if problem else 200,
    )


@dataclass(frozen=True)
class Sheet:
    """One table of an export: the sheet's name, its headings, its rows, column widths."""

    title: str
    header: list[str]
    rows: list[list[Any]]
    widths: Sequence[int]


def _register_sheet(request: Request, ctx: Context, viewer: Viewer, year: str) -> tuple[Sheet, str]:
    """The register of ``year`` as one table, and the export's file name (no extension)."""
    _ = guard.environment_gettext(request)
    chosen, problem = _year(year, _)
    if problem:
        raise InvalidInput(problem, vi=problem)
    entries = _listing(ctx, viewer.principal, chosen, EXPORT_LIMIT)
    deliveries = _deliveries(_)
    header = [
        _("Number and notation"),
        _("Issued on"),
        _("Kind of document"),
        _("Summary"),
        _("Signed by"),
        _("Issuing unit"),
        _("How it goes out"),
        _("Sent electronically on"),
    ]
    body = [
        [
            e.code,
            e.issued_on,
            e.type_name,
            e.subject,
            e.signer,
            e.unit,
            deliveries[e.delivery.value][0],
            clock.local(e.sent_at).replace(tzinfo=None) if e.sent_at else None,
        ]
        for e in entries
    ]
    name = f"so-van-ban-di-{'tat-ca' if chosen is None else chosen}-{_stamp()}"
    return Sheet(_("Outgoing register"), header, body, (16, 14, 18, 60, 24, 30, 18, 18)), name


@router.get("/exchange/register.xlsx")
def register_xlsx(request: Request, ctx: Ctx, viewer: Clerk, year: Pick = "") -> Response:
    sheet, name = _register_sheet(request, ctx, viewer, year)
    return file_response(
        request, _xlsx([sheet]), spreadsheets.Format.XLSX.media_type, f"{name}.xlsx"
    )


@router.get("/exchange/register.csv")
def register_csv(request: Request, ctx: Ctx, viewer: Clerk, year: Pick = "") -> Response:
    sheet, name = _register_sheet(request, ctx, viewer, year)
    return file_response(request, _csv(sheet), spreadsheets.Format.CSV.media_type, f"{name}.csv")


def _cell(sheet: Any, value: Any) -> Any:
    """One cell as officials read it: dates dd/mm/yyyy, shares as percentages, and text that
    stays text (a subject starting with "=" is never a formula)."""
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "DD/MM/YYYY HH:MM"
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "DD/MM/YYYY"
        return cell
    if isinstance(value, Percent):
        cell = WriteOnlyCell(sheet, value=value.value)
        cell.number_format = "0.0%"
        return cell
    return value


@dataclass(frozen=True)
class Percent:
    """A share (0–1) that a spreadsheet shows as a percentage; None: nothing was issued."""

    value: float | None

    def __str__(self) -> str:
        # Vietnamese writes the decimal comma: 66,7
        return "" if self.value is None else f"{self.value * 100:.1f}".replace(".", ",")


def _xlsx(sheets: Sequence[Sheet]) -> bytes:
    """A workbook of one sheet per table, headings in bold, the first row frozen."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for table in sheets:
        sheet = book.create_sheet(table.title[:31])  # Excel's limit on a sheet's name
        for index, width in enumerate(table.widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "A2"
        titles = []
        for text in table.header:
            cell = WriteOnlyCell(sheet, value=text)
            cell.font = bold
            titles.append(cell)
        sheet.append(titles)
        for values in table.rows:
            sheet.append([_cell(sheet, v) for v in values])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _csv(table: Sheet) -> bytes:
    """CSV as :func:`spreadsheets.csv_table` writes it (UTF-8 with a BOM, formula-safe),
    with days as dd/mm/yyyy and shares with the decimal comma too."""

    def shown(value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.strftime("%d/%m/%Y")
        return str(value) if isinstance(value, Percent) else value

    return spreadsheets.csv_table(table.header, [[shown(v) for v in r] for r in table.rows])


# -- issuing -------------------------------------------------------------------------------------
@dataclass
class IssueForm:
    """What the issue form said, kept as typed so the page can show it again."""

    unit: str = ""
    type: str = ""
    notation: str = ""
    subject: str = ""
    signer_name: str = ""
    issued_on: str = ""
    key_id: str = ""


def _types(ctx: Context, _: Any) -> list[tuple[str, str]]:
    """(abbreviation, "Quyết định (QĐ) · Điện tử") of every type in the catalogue."""
    deliveries = _deliveries(_)
    with ctx.db.read() as session:
        found = register.catalogue(session)
    return [
        (t.abbreviation, f"{t.name} ({t.abbreviation}) · {deliveries[t.delivery.value][0]}")
        for t in found
    ]


def _issue_page(
    request: Request, ctx: Context, viewer: Viewer, form: IssueForm, errors: dict[str, str],
    status_code: int = 200,
) -> Response:  # fmt: skip
    _ = guard.environment_gettext(request)
    senders = sending_units(viewer.principal, ctx)
    if not form.unit and senders:
        form.unit = senders[0][0]
    keys = seal_keys(ctx, viewer.principal, _)
    if not form.key_id and keys:
        form.key_id = keys[0][0]
    return render(
        request,
        "register/issue.html",
        {
            "form": form,
            "errors": errors,
            "senders": senders,
            "types": [("", _("Choose the kind of document")), *_types(ctx, _)],
            "keys": keys,
            "max_mb": ctx.settings.max_upload_bytes // (1024 * 1024),
            "seal_mb": MAX_IMAGE_BYTES // (1024 * 1024),
        },
        status_code=status_code,
    )


@router.get("/exchange/issue")
def issue_page(request: Request, ctx: Ctx, viewer: Clerk) -> Response:
    return _issue_page(request, ctx, viewer, IssueForm(issued_on=_today().strftime("%d/%m/%Y")), {})


@router.post("/exchange/issue")
async def issue(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    unit: Short = "",
    kind: Annotated[str, Form(alias="type", max_length=20)] = "",
    notation: Annotated[str, Form(max_length=100)] = "",
    subject: Long = "",
    signer_name: Text = "",
    issued_on: Short = "",
    key_id: Text = "",
) -> Response:
    """The issue form: ``document`` (the draft the leader signed) and ``seal_image`` (the
    unit's seal, PNG) are its file inputs, read by :func:`chosen_files`."""
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    form = IssueForm(
        unit=unit.strip(),
        type=kind.strip(),
        notation=notation,
        subject=subject,
        signer_name=signer_name,
        issued_on=issued_on,
        key_id=key_id.strip(),
    )
    errors: dict[str, str] = {}
    status = 422
    if not form.unit:
        errors["unit"] = _("Choose the issuing unit.")
    if not form.type:
        errors["type"] = _("Choose the kind of document.")
    day = parse_day(issued_on) if issued_on.strip() else _today()
    if day is None:
        errors["issued_on"] = _("Write the date as dd/mm/yyyy.")
    if not form.key_id:
        errors["key_id"] = _("Choose the unit's seal key: the seal goes over the signature.")
    files: dict[str, bytes] = {}
    missing = {
        "document": _("Attach the draft the leader signed (PDF)."),
        "seal_image": _("Attach the image of the unit's seal (PNG)."),
    }
    limits = {"document": ctx.settings.max_upload_bytes, "seal_image": MAX_IMAGE_BYTES}
    for name, limit in limits.items():
        chosen = (await chosen_files(request, name))[:1]
        if not chosen:
            errors[name] = missing[name]
            continue
        try:
            files[name] = await read_upload(chosen[0], limit)
        except KysoError as exc:  # over the upload limit
            errors[name] = exc.message(lang)
            status = exc.http_status if exc.http_status in (413, 422) else 422
    if errors:
        return await run_in_threadpool(_issue_page, request, ctx, viewer, form, errors, status)
    what = register.Issue(
        unit=form.unit,
        type=form.type,
        notation=notation,
        subject=subject,
        document=files["document"],
        seal_image=files["seal_image"],
        key_id=form.key_id,
        signer_name=signer_name,
        issued_on=day,
    )
    try:
        row = await run_in_threadpool(register.issue, ctx, viewer.principal, what)
    except KeyNotAllowed as exc:  # the key chosen on the form: said beside it
        errors = {"key_id": exc.message(lang)}
        return await run_in_threadpool(_issue_page, request, ctx, viewer, form, errors, 422)
    except KysoError as exc:
        if passes_through(exc):
            raise
        status = exc.http_status if exc.http_status in (409, 413, 422) else 422
        errors = form_errors(request, exc)
        return await run_in_threadpool(_issue_page, request, ctx, viewer, form, errors, status)
    return guard.redirect(
        request,
        f"/exchange/register/{row.public_id}",
        _("The document is issued as number %(code)s.") % {"code": f"{row.number}/{row.notation}"},
    )


# -- one entry of the register -------------------------------------------------------------------
def _entry(ctx: Context, principal: Principal, public_id: str) -> Entry:
    with ctx.db.read() as session:
        row = register.get(principal, session, public_id[:40])
        return _entries(session, [row])[0]


@dataclass
class SendValues:
    """The send form as typed."""

    recipients: list[str] = field(default_factory=list)
    other_codes: str = ""
    key_id: str = ""

    def organ_ids(self) -> list[str]:
        """The ticked codes, then those typed (comma, semicolon or line separated), once."""
        return recipient_codes(self.recipients, self.other_codes)


def _detail(
    request: Request, ctx: Context, viewer: Viewer, public_id: str,
    values: SendValues | None = None, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    _ = guard.environment_gettext(request)
    entry = _entry(ctx, viewer.principal, public_id)
    electronic = entry.delivery is not Delivery.PAPER
    keys = seal_keys(ctx, viewer.principal, _) if electronic else []
    values = values or SendValues()
    if not values.key_id and keys:
        values.key_id = keys[0][0]
    senders = dict(sending_units(viewer.principal, ctx)) if electronic else {}
    sender = entry.unit_id
    with ctx.db.read() as session:
        published_at = register.get(viewer.principal, session, public_id[:40]).published_at
    return render(
        request,
        "register/detail.html",
        {
            "entry": entry,
            "electronic": electronic,
            "can_send": sender in senders,
            "directory": receiving_units(viewer.principal, ctx, sender) if electronic else [],
            "keys": keys,
            "values": values,
            "errors": errors or {},
            "deliveries": _deliveries(_),
            "published_at": published_at,
        },
        status_code=status_code,
    )


@router.post("/exchange/register/{public_id}/publish")
async def publish(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    """Put the document in the public e-gazette (/cong-bao)."""
    _ = guard.environment_gettext(request)
    back = f"/exchange/register/{public_id[:40]}"
    try:
        await run_in_threadpool(register.publish, ctx, viewer.principal, public_id[:40])
    except KysoError as exc:
        if passes_through(exc):
            raise
        return guard.redirect(request, back, exc.message(guard.language(request)), "error")
    return guard.redirect(request, back, _("Published in the e-gazette."))


@router.post("/exchange/register/{public_id}/unpublish")
async def unpublish(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    _ = guard.environment_gettext(request)
    await run_in_threadpool(register.unpublish, ctx, viewer.principal, public_id[:40])
    return guard.redirect(
        request, f"/exchange/register/{public_id[:40]}", _("Withdrawn from the e-gazette.")
    )


@router.get("/exchange/register/{public_id}")
def entry_page(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    return _detail(request, ctx, viewer, public_id[:40])


@router.get("/exchange/register/{public_id}/document.pdf")
def document(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    """The issued PDF: the leader's signature with the unit's seal over it."""
    with ctx.db.read() as session:
        row = register.get(viewer.principal, session, public_id[:40])
        data = bytes(row.document or b"")
        name = f"{row.number}-{row.notation}.pdf"
    if not data:
        raise NotFound("the issued document", vi="văn bản đã phát hành")
    return file_response(request, data, "application/pdf", name)


@router.post("/exchange/register/{public_id}/send")
async def send(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    public_id: str,
    recipients: Annotated[list[str] | None, Form()] = None,
    other_codes: Long = "",
    key_id: Text = "",
) -> Response:
    _ = guard.environment_gettext(request)
    public_id = public_id[:40]
    values = SendValues(
        recipients=[r[:60] for r in recipients or []][:200],
        other_codes=other_codes,
        key_id=key_id.strip(),
    )
    errors: dict[str, str] = {}
    if not values.organ_ids():
        errors["recipients"] = _("Choose at least one recipient.")
    if not values.key_id:
        errors["key_id"] = _("Choose the unit's seal key to sign the package with.")
    if errors:
        return await run_in_threadpool(
            _detail, request, ctx, viewer, public_id, values, errors, 422
        )
    try:
        sent = await run_in_threadpool(
            register.send, ctx, viewer.principal, public_id, values.organ_ids(), values.key_id
        )
    except KysoError as exc:
        if passes_through(exc):
            raise
        errors = form_errors(request, exc, {service.NoRoute.code: "recipients"})
        status = exc.http_status if exc.http_status in (409, 413, 422) else 422
        return await run_in_threadpool(
            _detail, request, ctx, viewer, public_id, values, errors, status
        )
    return guard.redirect(
        request, f"/exchange/{sent[0]}", _("The document is signed with the unit's seal and sent.")
    )


# -- the catalogue -------------------------------------------------------------------------------
def _catalogue_page(
    request: Request, ctx: Context, viewer: Viewer, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    _ = guard.environment_gettext(request)
    with ctx.db.read() as session:
        types = register.catalogue(session)
    return render(
        request,
        "register/catalogue.html",
        {
            "types": types,
            "can_change": viewer.principal.province_wide and viewer.principal.can(Action.ORG_WRITE),
            "deliveries": _deliveries(_),
            "choices": [(d.value, _(name)) for d, (name, _tone) in DELIVERY_LABELS.items()],
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/exchange/catalogue")
def catalogue_page(request: Request, ctx: Ctx, viewer: Clerk) -> Response:
    return _catalogue_page(request, ctx, viewer)


@router.post("/exchange/catalogue")
def catalogue(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    kind: Annotated[str, Form(alias="type", max_length=20)] = "",
    delivery: Short = "",
) -> Response:
    """One row of the catalogue: ``type`` (its abbreviation) goes out as ``delivery``."""
    _ = guard.environment_gettext(request)
    chosen = next((d for d in Delivery if d.value == delivery.strip()), None)
    if chosen is None:
        errors = {"form": _("Choose how this kind of document goes out.")}
        return _catalogue_page(request, ctx, viewer, errors, 422)
    try:
        with ctx.db.session() as session:
            found = register.set_delivery(viewer.principal, session, kind, chosen)
            name = found.name
    except KysoError as exc:
        if passes_through(exc):
            raise
        message = form_errors(request, exc).get("type") or exc.message(guard.language(request))
        return _catalogue_page(request, ctx, viewer, {"form": message}, 422)
    return guard.redirect(
        request,
        "/exchange/catalogue",
        _("Saved: %(name)s goes out as “%(delivery)s”.")
        % {"name": name, "delivery": _(DELIVERY_LABELS[chosen][0])},
    )


# -- the 90 % figure -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Total:
    """Issued and electronic documents summed over a level (or every unit)."""

    key: str
    name: str
    issued: int
    electronic: int

    @property
    def share(self) -> float | None:
        return self.electronic / self.issued if self.issued else None

    @property
    def meets_target(self) -> bool | None:
        return None if self.share is None else self.share >= register.TARGET


@dataclass
class Period:
    """The report's period as typed, and as dates once both read."""

    start_text: str
    end_text: str
    start: date | None = None
    end: date | None = None


def _period(start: str, end: str, _: Any) -> tuple[Period, dict[str, str]]:
    """The period asked for; this calendar year when none is."""
    year = _today().year
    period = Period(
        start.strip() or f"01/01/{year}",
        end.strip() or f"31/12/{year}",
    )
    errors: dict[str, str] = {}
    period.start = parse_day(period.start_text)
    period.end = parse_day(period.end_text)
    if period.start is None:
        errors["from"] = _("Write the date as dd/mm/yyyy.")
    if period.end is None:
        errors["to"] = _("Write the date as dd/mm/yyyy.")
    return period, errors


def _shares(
    ctx: Context, principal: Principal, period: Period, _: Any
) -> tuple[list[register.Share], list[Total], Total]:
    assert period.start is not None and period.end is not None
    with ctx.db.read() as session:
        shares = register.electronic_share(principal, session, period.start, period.end)
    summed = register.by_level(shares)
    levels = [
        Total(level, _(name), *summed.get(level, (0, 0))) for level, name in LEVEL_LABELS.items()
    ]
    overall = Total(
        "all", _("Total"), sum(s.issued for s in shares), sum(s.electronic for s in shares)
    )
    return shares, levels, overall


@router.get("/reports/electronic")
def electronic(
    request: Request,
    ctx: Ctx,
    viewer: Reader,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    _ = guard.environment_gettext(request)
    period, errors = _period(start, end, _)
    shares: list[register.Share] = []
    levels: list[Total] = []
    overall = None
    if not errors:
        try:
            shares, levels, overall = _shares(ctx, viewer.principal, period, _)
        except KysoError as exc:
            if passes_through(exc):
                raise
            errors = {"to": exc.message(guard.language(request))}
    query = urlencode({"from": period.start_text, "to": period.end_text})
    return render(
        request,
        "register/electronic.html",
        {
            "period": period,
            "shares": shares,
            "levels": levels,
            "overall": overall,
            "level_names": {key: _(name) for key, name in LEVEL_LABELS.items()},
            "target": register.TARGET,
            "target_text": TARGET_TEXT,
            "errors": errors,
            "export_query": query if not errors else "",
        },
        status_code=422 if errors else 200,
    )


def _report_sheets(
    request: Request, ctx: Context, viewer: Viewer, start: str, end: str
) -> tuple[Sheet, Sheet, str]:
    """The units' table and the levels' totals, and the export's file name (no extension)."""
    _ = guard.environment_gettext(request)
    period, errors = _period(start, end, _)
    if errors:
        problem = "; ".join(errors.values())
        raise InvalidInput(problem, vi=problem)
    shares, levels, overall = _shares(ctx, viewer.principal, period, _)
    names = {key: _(name) for key, name in LEVEL_LABELS.items()}
    yes, no = _("Yes"), _("No")

    def mark(meets: bool | None) -> str:
        return "" if meets is None else yes if meets else no

    share_heading = _("Electronic share (%)")
    target_heading = _("Meets the %(target)s target") % {"target": TARGET_TEXT}
    units = Sheet(
        _("Units"),
        [
            _("Unit"),
            _("Level"),
            _("Documents issued"),
            _("Sent electronically"),
            share_heading,
            target_heading,
        ],
        [
            [
                s.name,
                names.get(s.level, s.level),
                s.issued,
                s.electronic,
                Percent(s.share),
                mark(s.meets_target),
            ]
            for s in shares
        ],
        (40, 10, 12, 18, 16, 16),
    )
    by_level = Sheet(
        _("Levels"),
        [
            _("Level"),
            _("Documents issued"),
            _("Sent electronically"),
            share_heading,
            target_heading,
        ],
        [
            [t.name, t.issued, t.electronic, Percent(t.share), mark(t.meets_target)]
            for t in [*levels, overall]
        ],
        (14, 12, 18, 16, 16),
    )
    assert period.start is not None and period.end is not None
    name = f"ty-le-van-ban-dien-tu-{period.start:%Y%m%d}-{period.end:%Y%m%d}"
    return units, by_level, name


@router.get("/reports/electronic.xlsx")
def electronic_xlsx(
    request: Request,
    ctx: Ctx,
    viewer: Reader,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    units, by_level, name = _report_sheets(request, ctx, viewer, start, end)
    book = _xlsx([units, by_level])
    return file_response(request, book, spreadsheets.Format.XLSX.media_type, f"{name}.xlsx")


@router.get("/reports/electronic.csv")
def electronic_csv(
    request: Request,
    ctx: Ctx,
    viewer: Reader,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    """The units' table (the levels' totals are in the XLSX's second sheet)."""
    units, _by_level, name = _report_sheets(request, ctx, viewer, start, end)
    return file_response(request, _csv(units), spreadsheets.Format.CSV.media_type, f"{name}.csv")
