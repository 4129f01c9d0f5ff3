"""Pages: the province's subscribers (thuê bao, the people certificates are issued to).

List and search them, a person's page, add and edit, import and export the form-01 list as
the spreadsheets of :mod:`kyso.registry.spreadsheets`. Every rule, query and access check is
the registry's (:mod:`kyso.registry.people`, :mod:`kyso.registry.organizations`); a page
reads through them with the viewer's principal and only hides the buttons the viewer cannot
use. The units' pages are :mod:`kyso.web.ui.units`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from kyso.errors import Conflict
from kyso.registry import organizations, people, spreadsheets
from kyso.registry.access import Action, Principal
from kyso.registry.fields import FieldErrors
from kyso.store.models import Organization, Person
from kyso.web.ui import guard
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
        return {name: getattr(self, name) for name in PERSON_FIELDS}


PERSON_FIELDS = tuple(PersonForm.model_fields)  # as the form and the registry name them


class EditPersonForm(PersonForm, Versioned):
    """The edit form: the person's fields and the version they were read at."""


# -- people ------------------------------------------------------------------------------------
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
        units = organizations.by_ids(session, (p.organization_id for p in found.items))
        chosen = organizations.get(principal, session, unit) if unit else None
        choices = organizations.choices_in_view(principal, session)
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
    return download(data, fmt, "thue-bao")


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
        choices = organizations.choices_in_view(principal, session)
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
        return field_errors(request, exc)
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
            chosen = organizations.get(viewer.principal, session, unit, Action.PERSON_WRITE)
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
    if not ref(organization):
        errors["organization"] = _("Choose the unit.")
    if errors:
        errors = _other_problems(request, data) | errors
    else:
        try:
            with ctx.db.session() as session:
                person = people.create(viewer.principal, session, people.PersonInput(**data))
                public_id, name = person.public_id, person.full_name
        except FieldErrors as exc:
            errors = field_errors(request, exc)
        except Conflict as exc:
            errors = {"id_number": exc.message(guard.language(request))}
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
        choices = organizations.choices_in_view(viewer.principal, session)
    return import_page(request, "people", errors={}, units=choices, unit=unit or "")


@router.post("/people/import", include_in_schema=False)
async def people_import(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    file: Annotated[UploadFile | None, File()] = None,
    unit: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    principal = viewer.principal
    default_unit = ref(unit)

    def work(session: Session, data: bytes, filename: str | None) -> list[Any]:
        return spreadsheets.import_people(
            principal, session, data, filename=filename, default_unit=default_unit
        )

    def choices() -> list[tuple[str, str]]:
        with ctx.db.read() as session:
            return organizations.choices_in_view(principal, session)

    return await run_import(
        request, ctx, "people", file, work, "/people", units=choices, unit=default_unit or ""
    )


@router.get("/people/{public_id}", include_in_schema=False)
def person_show(request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    with ctx.db.read() as session:
        shown = people.detail(viewer.principal, session, public_id)
    return render(
        request,
        "people/show.html",
        {
            "person": shown.person,
            "unit": shown.unit,
            "trail": shown.trail,
            "certificates": shown.certificates,
            "devices": shown.devices,
            "may_write": shown.may_write,
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
        person, unit = people.get_with_unit(
            viewer.principal, session, public_id, Action.PERSON_WRITE
        )
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
    read_version = form.read_version
    data, errors = _person_input(request, values)
    if not ref(organization):
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
            errors = field_errors(request, exc)
        except Conflict as exc:
            status_code = 409
            errors, stale = refused_save(
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
        current, unit = people.get_with_unit(viewer.principal, session, public_id)
        saved: list[tuple[str, str]] = []
        if stale:
            stored = _person_values(current, unit)
            shown = {**stored, "organization": unit.name}
            saved = changed_meanwhile(_person_labels(request), values, stored, shown)
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
