"""Pages: the province's units (the organization tree).

Browse the tree, search, add and edit units, import and export them as the spreadsheets of
:mod:`kyso.registry.spreadsheets`. Every rule, query and access check is the registry's
(:mod:`kyso.registry.organizations`, :mod:`kyso.registry.directory`); a page reads through
them with the viewer's principal and only hides the buttons the viewer cannot use. Form
fields carry the services' field names, so a :class:`~kyso.registry.fields.FieldErrors`
problem lands next to its field. The subscribers' pages are :mod:`kyso.web.ui.people`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from kyso.errors import Conflict
from kyso.registry import directory, organizations, spreadsheets
from kyso.registry.access import Action
from kyso.registry.fields import FieldErrors
from kyso.store.models import Organization, OrgKind, Sector
from kyso.web.ui import guard, labels
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.registry_forms import (
    PAGE,
    Offset,
    PublicId,
    RefQuery,
    SearchQuery,
    Short,
    Versioned,
    changed_meanwhile,
    download,
    field_errors,
    import_page,
    ref,
    refused_save,
    run_import,
)
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

CHILDREN_PAGE = 100
EXPANDED = directory.EXPANDED  # sub-units listed inside a row's "expand"


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
        return {name: getattr(self, name) for name in ORG_FIELDS}


ORG_FIELDS = tuple(UnitForm.model_fields)  # a unit's fields, as the form and the registry name them


class NewUnitForm(UnitForm):
    parent: Annotated[str, Field(max_length=100)] = ""


class EditUnitForm(UnitForm, Versioned):
    """The edit form: the unit's fields and the version they were read at."""


def _enum(kind: type[OrgKind] | type[Sector], value: str | None) -> Any:
    try:
        return kind(value) if value else None
    except ValueError:
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
            found = directory.search(
                principal,
                session,
                q=q or None,
                kind=kind_value,
                sector=sector_value,
                offset=offset,
                limit=PAGE,
            )
            context["results"] = found.rows
            context["total"] = found.total
        else:
            context["trees"] = directory.browse(
                principal, session, offset=offset, limit=CHILDREN_PAGE, expanded=EXPANDED
            )
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
    return download(data, fmt, "don-vi")


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
            parent_org = organizations.get(viewer.principal, session, parent, Action.ORG_WRITE)
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
    parent_id = ref(parent)
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
        errors = field_errors(request, exc)
    except Conflict as exc:
        errors = {"code": exc.message(guard.language(request))}
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
    return import_page(request, "units", errors={})


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

    return await run_import(request, ctx, "units", file, work, "/units")


@router.get("/units/{public_id}", include_in_schema=False)
def unit_show(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: PublicId,
    offset: Offset = 0,
    sub: Offset = 0,
) -> Response:
    with ctx.db.read() as session:
        shown = directory.unit(
            viewer.principal,
            session,
            public_id,
            offset=offset,
            limit=PAGE,
            sub=sub,
            sub_limit=CHILDREN_PAGE,
        )
    return render(
        request,
        "units/show.html",
        {
            "org": shown.org,
            "row": shown.row,
            "trail": shown.trail,
            "children": shown.children,
            "children_total": shown.children_total,
            "sub": sub,
            "children_limit": CHILDREN_PAGE,
            "members": shown.members,
            "members_total": shown.members_total,
            "subtree_people": shown.subtree_people,
            "offset": offset,
            "limit": PAGE,
            "may_write": shown.may_write,
            "may_add_person": shown.may_add_person,
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
        org, parent = organizations.get_with_parent(
            viewer.principal, session, public_id, Action.ORG_WRITE
        )
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
    read_version = form.read_version
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
        errors = field_errors(request, exc)
    except Conflict as exc:
        status_code = 409
        errors, stale = refused_save(
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
        current, parent = organizations.get_with_parent(viewer.principal, session, public_id)
        saved = (
            changed_meanwhile(
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
