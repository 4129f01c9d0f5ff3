"""Pages: the province's units (the organization tree) and its subscribers (people).

Browse the tree, search, add and edit units and people, import and export them as the
spreadsheets of :mod:`kyso.registry.spreadsheets`. Every rule and access check is the
registry's (:mod:`kyso.registry.organizations`, :mod:`kyso.registry.people`); a page reads
through the same services with the viewer's principal and only hides the buttons the viewer
cannot use. Form fields carry the services' field names, so a
:class:`~kyso.registry.fields.FieldErrors` problem lands next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from kyso.errors import Conflict, KysoError, NotFound
from kyso.registry import devices, organizations, people, spreadsheets
from kyso.registry.access import Action, Principal, require, visible
from kyso.registry.fields import FieldErrors
from kyso.store.models import (
    Certificate,
    CertStatus,
    Organization,
    OrgKind,
    Person,
    Sector,
)
from kyso.web.api_documents import read_upload
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard, labels
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

PAGE = 50
CHILDREN_PAGE = 100
EXPANDED = 30  # sub-units listed inside a row's "expand" before a "see all" link

PublicId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
RefQuery = Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")]
SearchQuery = Annotated[str, Query(max_length=200)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Text = Annotated[str, Form(max_length=2000)]
Short = Annotated[str, Field(max_length=2000)]


class UnitForm(BaseModel):
    """The unit form's fields as typed (the registry checks them; a page keeps them to show
    the form again)."""

    name: Short = ""
    code: Short = ""
    kind: Short = ""
    sector: Short = ""
    address: Short = ""
    province: Short = ""
    tax_code: Short = ""
    budget_code: Short = ""
    email: Short = ""
    phone: Short = ""

    def values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in UnitForm.model_fields}


class NewUnitForm(UnitForm):
    parent: Annotated[str, Field(max_length=100)] = ""


class EditUnitForm(UnitForm):
    version: Annotated[str, Field(max_length=20)] = ""


class PersonForm(BaseModel):
    full_name: Short = ""
    organization: Annotated[str, Field(max_length=100)] = ""
    position: Short = ""
    date_of_birth: Annotated[str, Field(max_length=40)] = ""
    id_number: Short = ""
    id_issue_date: Annotated[str, Field(max_length=40)] = ""
    id_issue_place: Short = ""
    email: Short = ""
    mobile: Short = ""

    def values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in PersonForm.model_fields}


class EditPersonForm(PersonForm):
    version: Annotated[str, Field(max_length=20)] = ""


_REF = re.compile(r"[A-Za-z0-9_-]{1,40}")
_AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")

ORG_FIELDS = (
    "name",
    "code",
    "kind",
    "sector",
    "address",
    "province",
    "tax_code",
    "budget_code",
    "email",
    "phone",
)
PERSON_FIELDS = (
    "full_name",
    "organization",
    "position",
    "date_of_birth",
    "id_number",
    "id_issue_date",
    "id_issue_place",
    "email",
    "mobile",
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- shared helpers ----------------------------------------------------------------------------
def _lang(request: Request) -> str:
    return guard.language(request)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _field_errors(request: Request, exc: FieldErrors) -> dict[str, str]:
    """The services' problems by field name, in the page's language."""
    lang = _lang(request)
    errors: dict[str, str] = {}
    for problem in exc.problems:
        message = _sentence(problem.vi if lang == "vi" else problem.en)
        for name in problem.field.split(", "):
            errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors


def _is_stale(exc: Conflict) -> bool:
    return "changed by someone else" in (exc.detail or "")


def _refused_save(
    request: Request, exc: Conflict, *, stale_message: str, field: str
) -> tuple[dict[str, str], bool]:
    """(errors, stale) for a save the registry refused: someone else saved the record first
    (the form's top), or a value another record holds (next to ``field``)."""
    if _is_stale(exc):
        return {"form": stale_message}, True
    return {field: exc.message(_lang(request))}, False


def _changed_meanwhile(
    labels: dict[str, str],
    typed: dict[str, str],
    stored: dict[str, str],
    shown: dict[str, str],
) -> list[tuple[str, str]]:
    """What the other person saved, field by field, where it differs from what was typed
    (compared by stored value, shown by name)."""
    return [
        (label, shown.get(key) or "—")
        for key, label in labels.items()
        if (typed.get(key) or "").strip() != (stored.get(key) or "").strip()
    ]


def _ref(value: str | None) -> str | None:
    """A public id from a form, or None: anything else is refused before a query sees it."""
    value = (value or "").strip()
    if not value:
        return None
    if not _REF.fullmatch(value):
        raise NotFound(f"reference {value[:40]!r}", vi=f"mã tham chiếu {value[:40]!r}")
    return value


def _enum(kind: type[OrgKind] | type[Sector], value: str | None) -> Any:
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def _download(data: bytes, fmt: spreadsheets.Format, stem: str) -> Response:
    media = XLSX if fmt is spreadsheets.Format.XLSX else "text/csv; charset=utf-8"
    return Response(
        data,
        media_type=media,
        headers={
            "content-disposition": content_disposition(f"{stem}.{fmt.value}"),
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


@dataclass
class UnitRow:
    """A unit in a list, with what one grouped query per page can tell about it."""

    org: Organization
    children: int = 0
    people: int = 0
    certificates: int | None = None
    trail: list[Organization] = field(default_factory=list)  # ancestors, for search results
    sub: list[Organization] = field(default_factory=list)  # the first sub-units, to expand


def _counts(session: Session, column: Any, ids: list[int], *where: Any) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(column, func.count()).where(column.in_(ids), *where).group_by(column)
    )
    return {key: n for key, n in rows}


def _unit_rows(
    principal: Principal,
    session: Session,
    orgs: list[Organization],
    *,
    trail: bool = False,
    expand: bool = False,
) -> list[UnitRow]:
    """Rows for a page of units: a few grouped counts and, when asked, each unit's ancestry
    (search results) or its first sub-units (the tree) — never one query per row."""
    ids = [o.id for o in orgs]
    children = _counts(session, Organization.parent_id, ids)
    persons = _counts(session, Person.organization_id, ids)
    certs = (
        _counts(
            session,
            Certificate.organization_id,
            ids,
            Certificate.status == CertStatus.GOOD,
        )
        if principal.can(Action.CERT_READ)
        else None
    )
    ancestors: dict[int, Organization] = {}
    if trail:
        wanted = {int(x) for o in orgs for x in o.path.strip("/").split("/")[:-1] if x}
        if wanted:
            ancestors = {
                a.id: a
                for a in session.execute(
                    select(Organization).where(Organization.id.in_(wanted))
                ).scalars()
            }
    subs: dict[int, list[Organization]] = {}
    expandable = [i for i in ids if children.get(i)]
    if expand and expandable:
        rows = session.execute(
            select(Organization)
            .where(Organization.parent_id.in_(expandable))
            .order_by(Organization.parent_id, Organization.name)
        ).scalars()
        for sub in rows:
            listed = subs.setdefault(sub.parent_id or 0, [])
            if len(listed) < EXPANDED:
                listed.append(sub)
    return [
        UnitRow(
            org=o,
            children=children.get(o.id, 0),
            people=persons.get(o.id, 0),
            certificates=certs.get(o.id, 0) if certs is not None else None,
            trail=[
                ancestors[int(x)]
                for x in o.path.strip("/").split("/")[:-1]
                if x and int(x) in ancestors
            ],
            sub=subs.get(o.id, []),
        )
        for o in orgs
    ]


def _children(
    principal: Principal, session: Session, parent: Organization, offset: int, limit: int
) -> tuple[list[Organization], int]:
    """The direct sub-units of a unit the viewer was allowed to read (its subtree is in view)."""
    query = select(Organization).where(Organization.parent_id == parent.id)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Organization.name).offset(offset).limit(limit))
    return list(rows.scalars()), total


def _roots(principal: Principal, session: Session) -> list[Organization]:
    """The tops of the viewer's view: the province's root units, or an officer's own unit."""
    require(principal, Action.ORG_READ)
    query = select(Organization).where(visible(principal, Organization.path))
    if principal.province_wide:
        query = query.where(Organization.parent_id.is_(None))
    else:
        query = query.where(Organization.path == principal.org_path)
    return list(session.execute(query.order_by(Organization.name)).scalars())


def _unit_choices(principal: Principal, session: Session) -> list[tuple[str, str]]:
    """Every unit in view for a <select>, in tree order, indented by depth (one narrow query)."""
    require(principal, Action.ORG_READ)
    rows = session.execute(
        select(Organization.public_id, Organization.name, Organization.path)
        .where(visible(principal, Organization.path))
        .order_by(Organization.path)
    ).all()
    if not rows:
        return []
    top = min(r.path.count("/") for r in rows)
    return [(r.public_id, "\u2003" * (r.path.count("/") - top) + r.name) for r in rows]


def _trail(principal: Principal, session: Session, org: Organization) -> list[tuple[Any, bool]]:
    """Breadcrumbs: each ancestor and whether the viewer may open it."""
    return [(a, principal.covers(a.path)) for a in organizations.ancestors(session, org)]


def _find_unit_by_code(principal: Principal, session: Session, q: str) -> Organization | None:
    code = q.strip().upper()
    if not _AGENCY_CODE.fullmatch(code):
        return None
    try:
        return organizations.by_code(principal, session, code)
    except KysoError:
        return None


# -- units: browse and search ------------------------------------------------------------------
@router.get("/units", include_in_schema=False)
def unit_index(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    q: SearchQuery = "",
    kind: Annotated[str, Query(max_length=40)] = "",
    sector: Annotated[str, Query(max_length=40)] = "",
    offset: Offset = 0,
) -> Response:
    principal = viewer.principal
    q = q.replace("\x00", "").strip()
    kind_value, sector_value = _enum(OrgKind, kind), _enum(Sector, sector)
    searching = bool(q or kind_value or sector_value)
    context: dict[str, Any] = {
        "q": q,
        "kind": kind_value.value if kind_value else "",
        "sector": sector_value.value if sector_value else "",
        "searching": searching,
        "offset": offset,
        "limit": PAGE,
    }
    with ctx.db.read() as session:
        if searching:
            found = organizations.search(
                principal,
                session,
                q=q or None,
                kind=kind_value,
                sector=sector_value,
                offset=offset,
                limit=PAGE,
            )
            items = list(found.items)
            total = found.total
            by_code = _find_unit_by_code(principal, session, q) if q else None
            if (
                by_code is not None
                and offset == 0
                and by_code.id not in {o.id for o in items}
                and kind_value in (None, by_code.kind)
                and sector_value in (None, by_code.sector)
            ):
                items.insert(0, by_code)
                total += 1
            context["results"] = _unit_rows(principal, session, items, trail=True)
            context["total"] = total
        else:
            roots = _roots(principal, session)
            trees = []
            for root in roots:
                kids, count = _children(
                    principal,
                    session,
                    root,
                    offset if len(roots) == 1 else 0,
                    CHILDREN_PAGE if len(roots) == 1 else EXPANDED,
                )
                trees.append(
                    (
                        _unit_rows(principal, session, [root])[0],
                        _unit_rows(principal, session, kids, expand=True),
                        count,
                    )
                )
            context["trees"] = trees
            context["limit"] = CHILDREN_PAGE
    return render(request, "units/index.html", context)


@router.get("/units/export.{fmt}", include_in_schema=False)
def unit_export(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    fmt: Annotated[spreadsheets.Format, Path()],
    under: RefQuery = None,
) -> Response:
    with ctx.db.read() as session:
        data = spreadsheets.export_organizations(
            viewer.principal, session, fmt, under=under or None
        )
    return _download(data, fmt, "don-vi")


# -- units: add and edit -----------------------------------------------------------------------
def _org_values(org: Organization | None) -> dict[str, str]:
    if org is None:
        return {name: "" for name in ORG_FIELDS}
    return {
        name: (getattr(org, name).value if name in ("kind", "sector") else getattr(org, name)) or ""
        for name in ORG_FIELDS
    }


def _unit_form(
    request: Request,
    *,
    org: Organization | None,
    parent: Organization | None,
    values: Mapping[str, str],
    errors: dict[str, str],
    version: int | None = None,
    saved: list[tuple[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "units/form.html",
        {
            "org": org,
            "parent": parent,
            "values": values,
            "errors": errors,
            "version": version,
            "saved": saved or [],
        },
        status_code=status_code,
    )


@router.get("/units/new", include_in_schema=False)
def unit_new(
    request: Request,
    ctx: Ctx,
    viewer: Annotated[Any, guard.allowed(Action.ORG_WRITE)],
    parent: RefQuery = None,
) -> Response:
    values = _org_values(None)
    parent_org = None
    if parent:
        with ctx.db.read() as session:
            parent_org = organizations.get(viewer.principal, session, parent)
            require(viewer.principal, Action.ORG_WRITE, parent_org.path)
            values.update(
                kind="",
                sector=parent_org.sector.value,
                province=parent_org.province or "",
            )
    return _unit_form(request, org=None, parent=parent_org, values=values, errors={})


@router.post("/units/new", include_in_schema=False)
def unit_create(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    form: Annotated[NewUnitForm, Form()],
) -> Response:
    _ = guard.environment_gettext(request)
    values = form.values()
    parent = form.parent
    parent_id = _ref(parent)
    errors: dict[str, str] = {}
    status_code = 422
    try:
        with ctx.db.session() as session:
            org = organizations.create(
                viewer.principal,
                session,
                organizations.OrgInput(
                    parent=parent_id,
                    **values,  # type: ignore[arg-type]  # the service checks kind and sector
                ),
            )
            public_id, org_name = org.public_id, org.name
    except FieldErrors as exc:
        errors = _field_errors(request, exc)
    except Conflict as exc:
        errors = {"code": exc.message(_lang(request))}
        status_code = 409
    if errors:
        parent_org = None
        if parent_id is not None:
            with ctx.db.read() as session:
                parent_org = organizations.get(viewer.principal, session, parent_id)
        return _unit_form(
            request,
            org=None,
            parent=parent_org,
            values=values,
            errors=errors,
            status_code=status_code,
        )
    return guard.redirect(
        request, f"/units/{public_id}", _("Unit “%(name)s” added.") % {"name": org_name}
    )


@router.get("/units/import", include_in_schema=False)
def unit_import_page(
    request: Request, viewer: Annotated[Any, guard.allowed(Action.ORG_WRITE)]
) -> Response:
    return _import_page(request, "units", errors={})


@router.post("/units/import", include_in_schema=False)
async def unit_import(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    principal = viewer.principal

    def work(session: Session, data: bytes, filename: str | None) -> list[Any]:
        return spreadsheets.import_organizations(principal, session, data, filename=filename)

    return await _import(request, ctx, "units", file, work, "/units")


@router.get("/units/{public_id}", include_in_schema=False)
def unit_show(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: PublicId,
    offset: Offset = 0,
    sub: Offset = 0,
) -> Response:
    principal = viewer.principal
    with ctx.db.read() as session:
        org = organizations.get(principal, session, public_id)
        row = _unit_rows(principal, session, [org])[0]
        kids, kid_total = _children(principal, session, org, sub, CHILDREN_PAGE)
        kid_rows = _unit_rows(principal, session, kids, expand=True)
        trail = _trail(principal, session, org)
        members: list[Person] = []
        member_total = 0
        if principal.can(Action.PERSON_READ):
            require(principal, Action.PERSON_READ, org.path)
            query = select(Person).where(Person.organization_id == org.id)
            member_total = session.execute(
                select(func.count()).select_from(query.subquery())
            ).scalar_one()
            members = list(
                session.execute(
                    query.order_by(Person.full_name, Person.id).offset(offset).limit(PAGE)
                ).scalars()
            )
        subtree_people = None
        if principal.can(Action.PERSON_READ) and kid_total:
            subtree_people = session.execute(
                select(func.count(Person.id))
                .join(Organization, Person.organization_id == Organization.id)
                .where(Organization.path.startswith(org.path, autoescape=True))
            ).scalar_one()
    return render(
        request,
        "units/show.html",
        {
            "org": org,
            "row": row,
            "trail": trail,
            "children": kid_rows,
            "children_total": kid_total,
            "sub": sub,
            "children_limit": CHILDREN_PAGE,
            "members": members,
            "members_total": member_total,
            "subtree_people": subtree_people,
            "offset": offset,
            "limit": PAGE,
            "may_write": principal.can(Action.ORG_WRITE) and principal.covers(org.path),
            "may_add_person": principal.can(Action.PERSON_WRITE) and principal.covers(org.path),
        },
    )


@router.get("/units/{public_id}/edit", include_in_schema=False)
def unit_edit_page(
    request: Request,
    ctx: Ctx,
    viewer: Annotated[Any, guard.allowed(Action.ORG_WRITE)],
    public_id: PublicId,
) -> Response:
    with ctx.db.read() as session:
        org = organizations.get(viewer.principal, session, public_id)
        require(viewer.principal, Action.ORG_WRITE, org.path)
        parent = session.get(Organization, org.parent_id) if org.parent_id else None
    return _unit_form(
        request,
        org=org,
        parent=parent,
        values=_org_values(org),
        errors={},
        version=org.version,
    )


def _labelled_org_values(request: Request, org: Organization) -> dict[str, str]:
    _ = guard.environment_gettext(request)
    values = _org_values(org)
    values["kind"] = labels.label("org_kind", org.kind, _)
    values["sector"] = labels.label("sector", org.sector, _)
    return values


def _org_labels(request: Request) -> dict[str, str]:
    _ = guard.environment_gettext(request)
    return {
        "name": _("Name"),
        "code": _("Agency code"),
        "kind": _("Kind of unit"),
        "sector": _("Sector"),
        "address": _("Address"),
        "province": _("Province or city"),
        "tax_code": _("Tax code"),
        "budget_code": _("Budget relationship code"),
        "email": _("Official e-mail"),
        "phone": _("Telephone"),
    }


@router.post("/units/{public_id}/edit", include_in_schema=False)
def unit_update(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: PublicId,
    form: Annotated[EditUnitForm, Form()],
) -> Response:
    _ = guard.environment_gettext(request)
    values = form.values()
    version = form.version
    read_version = int(version) if version.isascii() and version.isdigit() else 0
    errors: dict[str, str] = {}
    status_code = 422
    stale = False
    try:
        with ctx.db.session() as session:
            org = organizations.update(
                viewer.principal,
                session,
                public_id,
                read_version,
                {k: (v if v.strip() else None) for k, v in values.items()},
            )
            org_name = org.name
    except FieldErrors as exc:
        errors = _field_errors(request, exc)
    except Conflict as exc:
        status_code = 409
        errors, stale = _refused_save(
            request,
            exc,
            field="code",
            stale_message=_(
                "Someone else saved this unit while you were editing it. Their values are "
                "listed below; check them, then send the form again to keep yours."
            ),
        )
    if not errors:
        return guard.redirect(
            request, f"/units/{public_id}", _("Unit “%(name)s” saved.") % {"name": org_name}
        )
    with ctx.db.read() as session:
        current = organizations.get(viewer.principal, session, public_id)
        parent = session.get(Organization, current.parent_id) if current.parent_id else None
        saved = (
            _changed_meanwhile(
                _org_labels(request),
                values,
                _org_values(current),
                _labelled_org_values(request, current),
            )
            if stale
            else []
        )
        return _unit_form(
            request,
            org=current,
            parent=parent,
            values=values,
            errors=errors,
            # a stale form is sent again at the version now stored (the user saw the changes)
            version=current.version if stale else read_version,
            saved=saved,
            status_code=status_code,
        )


# -- imports (units and people) ----------------------------------------------------------------
def _import_page(
    request: Request,
    area: str,
    *,
    errors: dict[str, str],
    rejected: spreadsheets.ImportRejected | None = None,
    units: list[tuple[str, str]] | None = None,
    unit: str = "",
    status_code: int = 200,
) -> Response:
    columns = spreadsheets.ORG_COLUMNS if area == "units" else spreadsheets.PERSON_COLUMNS
    lang = _lang(request)
    return render(
        request,
        f"{area}/import.html",
        {
            "errors": errors,
            "columns": [c for c in columns if c.field],
            "sheet": spreadsheets.ORG_SHEET if area == "units" else spreadsheets.PERSON_SHEET,
            "rejected": rejected,
            "problems": [
                (e.row, e.column or "", e.vi if lang == "vi" else e.en)
                for e in (rejected.errors[: spreadsheets.MAX_REPORTED] if rejected else [])
            ],
            "kinds": list(organizations.KIND_LABELS.values()),
            "sectors": list(organizations.SECTOR_LABELS.values()),
            "units": units or [],
            "unit": unit,
        },
        status_code=status_code,
    )


async def _import(
    request: Request,
    ctx: Any,
    area: str,
    file: UploadFile | None,
    work: Callable[[Session, bytes, str | None], list[Any]],
    done: str,
    *,
    units: Callable[[], list[tuple[str, str]]] | None = None,
    unit: str = "",
) -> Response:
    """Read the upload (413 past the limit), run the all-or-nothing import in a worker
    thread, and answer with the per-row table (nothing written) or a redirect."""
    _ = guard.environment_gettext(request)
    if file is None or not file.filename:
        choices = await run_in_threadpool(units) if units else None
        return _import_page(
            request,
            area,
            errors={"file": _("Choose an .xlsx or .csv file.")},
            units=choices,
            unit=unit,
            status_code=422,
        )
    data = await read_upload(file, ctx.settings.max_upload_bytes)

    def run() -> int | spreadsheets.ImportRejected | KysoError:
        try:
            with ctx.db.session() as session:
                return len(work(session, data, file.filename))
        except spreadsheets.ImportRejected as exc:
            return exc
        except FieldErrors as exc:  # not expected from an import; shown as a whole
            return exc
        except KysoError as exc:
            if exc.http_status in (403, 404):
                raise
            return exc

    outcome = await run_in_threadpool(run)
    if isinstance(outcome, int):
        message = (
            _("Units created: %(n)s.") if area == "units" else _("Subscribers created: %(n)s.")
        )
        return guard.redirect(request, done, message % {"n": outcome})
    choices = await run_in_threadpool(units) if units else None
    if isinstance(outcome, spreadsheets.ImportRejected):
        return _import_page(
            request,
            area,
            errors={"form": outcome.message_vi if _lang(request) == "vi" else outcome.message_en},
            rejected=outcome,
            units=choices,
            unit=unit,
            status_code=422,
        )
    return _import_page(
        request,
        area,
        errors={"file": outcome.message(_lang(request))},
        units=choices,
        unit=unit,
        status_code=outcome.http_status if outcome.http_status != 400 else 422,
    )


# -- people ------------------------------------------------------------------------------------
def _units_of(session: Session, ids: Iterable[int]) -> dict[int, Organization]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {
        o.id: o
        for o in session.execute(select(Organization).where(Organization.id.in_(wanted))).scalars()
    }


@router.get("/people", include_in_schema=False)
def people_index(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    q: SearchQuery = "",
    unit: RefQuery = None,
    offset: Offset = 0,
) -> Response:
    principal = viewer.principal
    q = q.replace("\x00", "").strip()
    with ctx.db.read() as session:
        found = people.search(
            principal, session, q=q or None, under=unit or None, offset=offset, limit=PAGE
        )
        units = _units_of(session, (p.organization_id for p in found.items))
        chosen = organizations.get(principal, session, unit) if unit else None
        choices = _unit_choices(principal, session)
    return render(
        request,
        "people/index.html",
        {
            "q": q,
            "unit": unit or "",
            "chosen": chosen,
            "choices": choices,
            "rows": [(p, units[p.organization_id]) for p in found.items],
            "total": found.total,
            "offset": offset,
            "limit": PAGE,
        },
    )


@router.get("/people/export.{fmt}", include_in_schema=False)
def people_export(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    fmt: Annotated[spreadsheets.Format, Path()],
    unit: RefQuery = None,
) -> Response:
    with ctx.db.read() as session:
        data = spreadsheets.export_people(viewer.principal, session, fmt, under=unit or None)
    return _download(data, fmt, "thue-bao")


def _person_values(person: Person | None, unit: Organization | None) -> dict[str, str]:
    if person is None:
        values = {name: "" for name in PERSON_FIELDS}
    else:
        values = {
            name: (
                getattr(person, name).isoformat()
                if isinstance(getattr(person, name), date)
                else getattr(person, name) or ""
            )
            for name in PERSON_FIELDS
            if name != "organization"
        }
    values["organization"] = unit.public_id if unit else ""
    return values


def _person_form(
    request: Request,
    ctx: Any,
    principal: Principal,
    *,
    person: Person | None,
    values: Mapping[str, str],
    errors: dict[str, str],
    version: int | None = None,
    saved: list[tuple[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    with ctx.db.read() as session:
        choices = _unit_choices(principal, session)
    return render(
        request,
        "people/form.html",
        {
            "person": person,
            "values": values,
            "errors": errors,
            "version": version,
            "choices": choices,
            "saved": saved or [],
        },
        status_code=status_code,
    )


def _parse_date(value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(text)


def _person_input(
    request: Request, values: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values as the service takes them, and the dates that are not dates."""
    _ = guard.environment_gettext(request)
    data: dict[str, Any] = {k: (v if v.strip() else None) for k, v in values.items()}
    errors: dict[str, str] = {}
    for name in ("date_of_birth", "id_issue_date"):
        try:
            data[name] = _parse_date(values.get(name, ""))
        except ValueError:
            data[name] = None
            errors[name] = _("Not a date such as 25/06/1985.")
    return data, errors


def _other_problems(request: Request, data: Mapping[str, Any]) -> dict[str, str]:
    """The service's field checks on what else was typed (shown with a bad date at once)."""
    try:
        people.clean(people.PersonInput(**{**data, "full_name": data.get("full_name") or ""}))
    except FieldErrors as exc:
        return _field_errors(request, exc)
    return {}


def _person_labels(request: Request) -> dict[str, str]:
    _ = guard.environment_gettext(request)
    return {
        "full_name": _("Full name"),
        "organization": _("Unit"),
        "position": _("Position"),
        "date_of_birth": _("Date of birth"),
        "id_number": _("Citizen identity number (CCCD)"),
        "id_issue_date": _("Date of issue"),
        "id_issue_place": _("Place of issue"),
        "email": _("Official e-mail"),
        "mobile": _("Mobile number"),
    }


@router.get("/people/new", include_in_schema=False)
def person_new(
    request: Request,
    ctx: Ctx,
    viewer: Annotated[Any, guard.allowed(Action.PERSON_WRITE)],
    unit: RefQuery = None,
) -> Response:
    chosen = None
    if unit:
        with ctx.db.read() as session:
            chosen = organizations.get(viewer.principal, session, unit)
            require(viewer.principal, Action.PERSON_WRITE, chosen.path)
    return _person_form(
        request,
        ctx,
        viewer.principal,
        person=None,
        values=_person_values(None, chosen),
        errors={},
    )


@router.post("/people/new", include_in_schema=False)
def person_create(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    form: Annotated[PersonForm, Form()],
) -> Response:
    _ = guard.environment_gettext(request)
    values = form.values()
    organization = form.organization
    data, errors = _person_input(request, values)
    status_code = 422
    if not _ref(organization):
        errors["organization"] = _("Choose the unit.")
    if errors:
        errors = _other_problems(request, data) | errors
    else:
        try:
            with ctx.db.session() as session:
                person = people.create(viewer.principal, session, people.PersonInput(**data))
                public_id, name = person.public_id, person.full_name
        except FieldErrors as exc:
            errors = _field_errors(request, exc)
        except Conflict as exc:
            errors = {"id_number": exc.message(_lang(request))}
            status_code = 409
    if errors:
        return _person_form(
            request,
            ctx,
            viewer.principal,
            person=None,
            values=values,
            errors=errors,
            status_code=status_code,
        )
    return guard.redirect(
        request, f"/people/{public_id}", _("Subscriber “%(name)s” added.") % {"name": name}
    )


@router.get("/people/import", include_in_schema=False)
def people_import_page(
    request: Request,
    ctx: Ctx,
    viewer: Annotated[Any, guard.allowed(Action.PERSON_WRITE)],
    unit: RefQuery = None,
) -> Response:
    with ctx.db.read() as session:
        choices = _unit_choices(viewer.principal, session)
    return _import_page(request, "people", errors={}, units=choices, unit=unit or "")


@router.post("/people/import", include_in_schema=False)
async def people_import(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    file: Annotated[UploadFile | None, File()] = None,
    unit: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    principal = viewer.principal
    default_unit = _ref(unit)

    def work(session: Session, data: bytes, filename: str | None) -> list[Any]:
        return spreadsheets.import_people(
            principal, session, data, filename=filename, default_unit=default_unit
        )

    def choices() -> list[tuple[str, str]]:
        with ctx.db.read() as session:
            return _unit_choices(principal, session)

    return await _import(
        request, ctx, "people", file, work, "/people", units=choices, unit=default_unit or ""
    )


@router.get("/people/{public_id}", include_in_schema=False)
def person_show(request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    principal = viewer.principal
    with ctx.db.read() as session:
        person = people.get(principal, session, public_id)
        unit = session.get(Organization, person.organization_id)
        assert unit is not None
        certificates: list[Certificate] | None = None
        if principal.can(Action.CERT_READ):
            # the person is in view (people.get checked it), and so are their certificates
            certificates = list(
                session.execute(
                    select(Certificate)
                    .where(Certificate.person_id == person.id)
                    .order_by(Certificate.id.desc())
                    .limit(20)
                ).scalars()
            )
        held = (
            devices.search(principal, session, holder=person.public_id, limit=20).items
            if principal.can(Action.DEVICE_READ)
            else None
        )
        trail = _trail(principal, session, unit)
    return render(
        request,
        "people/show.html",
        {
            "person": person,
            "unit": unit,
            "trail": trail,
            "certificates": certificates,
            "devices": held,
            "may_write": principal.can(Action.PERSON_WRITE) and principal.covers(unit.path),
        },
    )


@router.get("/people/{public_id}/edit", include_in_schema=False)
def person_edit_page(
    request: Request,
    ctx: Ctx,
    viewer: Annotated[Any, guard.allowed(Action.PERSON_WRITE)],
    public_id: PublicId,
) -> Response:
    with ctx.db.read() as session:
        person = people.get(viewer.principal, session, public_id)
        unit = session.get(Organization, person.organization_id)
        assert unit is not None
        require(viewer.principal, Action.PERSON_WRITE, unit.path)
    return _person_form(
        request,
        ctx,
        viewer.principal,
        person=person,
        values=_person_values(person, unit),
        errors={},
        version=person.version,
    )


@router.post("/people/{public_id}/edit", include_in_schema=False)
def person_update(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: PublicId,
    form: Annotated[EditPersonForm, Form()],
) -> Response:
    _ = guard.environment_gettext(request)
    values = form.values()
    organization = form.organization
    version = form.version
    read_version = int(version) if version.isascii() and version.isdigit() else 0
    data, errors = _person_input(request, values)
    if not _ref(organization):
        errors["organization"] = _("Choose the unit.")
    status_code = 422
    stale = False
    if errors:
        errors = _other_problems(request, data) | errors
    else:
        try:
            with ctx.db.session() as session:
                person = people.update(viewer.principal, session, public_id, read_version, data)
                name = person.full_name
        except FieldErrors as exc:
            errors = _field_errors(request, exc)
        except Conflict as exc:
            status_code = 409
            errors, stale = _refused_save(
                request,
                exc,
                field="id_number",
                stale_message=_(
                    "Someone else saved this subscriber while you were editing. Their "
                    "values are listed below; check them, then send the form again to "
                    "keep yours."
                ),
            )
    if not errors:
        return guard.redirect(
            request, f"/people/{public_id}", _("Subscriber “%(name)s” saved.") % {"name": name}
        )
    with ctx.db.read() as session:
        current = people.get(viewer.principal, session, public_id)
        unit = session.get(Organization, current.organization_id)
        saved: list[tuple[str, str]] = []
        if stale:
            stored = _person_values(current, unit)
            shown = {**stored, "organization": unit.name if unit else ""}
            saved = _changed_meanwhile(_person_labels(request), values, stored, shown)
        current_version = current.version
    return _person_form(
        request,
        ctx,
        viewer.principal,
        person=current,
        values=values,
        errors=errors,
        version=current_version if stale else read_version,
        saved=saved,
        status_code=status_code,
    )
