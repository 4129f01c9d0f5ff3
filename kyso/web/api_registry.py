"""REST: the registry — units, subscribers, key devices, users.

Routes only translate: every rule and every access check lives in ``kyso.registry``. A lost
device is reported at ``POST /api/v1/devices/{id}/lost`` (kyso.web.api_requests), which also
revokes its certificates; the registry's part is ``devices.mark_lost``. Bodies carry opaque
public ids, never row ids. Edits send the ``version`` they read; a stale one is answered 409. A
rejected import is answered 422 with one entry per problem:
``{"code": "import_rejected", "message": …, "errors": [{"row", "column", "message"}]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.registry import devices, minutes, organizations, people, spreadsheets, totp, users
from kyso.registry.access import Principal
from kyso.store.models import (
    CertStatus,
    DeviceHandover,
    DeviceKind,
    DeviceStatus,
    KeyDevice,
    Organization,
    OrgKind,
    Person,
    Role,
    Sector,
    User,
)
from kyso.web.api_documents import read_upload
from kyso.web.deps import context, principal
from kyso.web.downloads import content_disposition
from kyso.web.errors import language

router = APIRouter(prefix="/api/v1", tags=["registry"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
T = TypeVar("T")


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000 (psycopg raises DataError: a 500, not a 422).
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


PublicId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
Search = Annotated[str | None, Query(max_length=200), AfterValidator(_no_nul)]
RefQuery = Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=500)]
Text = Annotated[str | None, Field(max_length=500), AfterValidator(_no_nul)]
Ref = Annotated[str | None, Field(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


def _page(page: Any, items: list[T]) -> dict[str, Any]:
    return {"items": items, "total": page.total, "offset": page.offset, "limit": page.limit}


def _download(data: bytes, fmt: spreadsheets.Format, stem: str) -> Response:
    return Response(
        data,
        media_type=fmt.media_type,
        headers={"content-disposition": content_disposition(f"{stem}.{fmt.value}")},
    )


async def _import(
    request: Request, ctx: Context, file: UploadFile, work: Callable[[Session, bytes], list[Any]]
) -> Response:
    content = await read_upload(file, ctx.settings.max_upload_bytes)

    def run() -> Response:
        try:
            with ctx.db.session() as session:
                made = work(session, content)
                ids = [row.public_id for row in made]
        except spreadsheets.ImportRejected as exc:
            return JSONResponse(exc.body(language(request)), status_code=422)
        return JSONResponse({"created": len(ids), "ids": ids}, status_code=201)

    return await run_in_threadpool(run)


# -- organizations ----------------------------------------------------------------------------
class OrganizationOut(BaseModel):
    id: str
    code: str | None
    name: str
    parent: str | None
    kind: OrgKind
    sector: Sector
    address: str | None
    province: str | None
    tax_code: str | None
    budget_code: str | None
    email: str | None
    phone: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class OrganizationIn(BaseModel):
    name: Annotated[str, Field(max_length=300), AfterValidator(_no_nul)]
    kind: OrgKind
    sector: Sector
    parent: Ref = None
    code: Text = None
    address: Text = None
    province: Text = None
    tax_code: Text = None
    budget_code: Text = None
    email: Text = None
    phone: Text = None


class OrganizationPatch(BaseModel):
    version: int = Field(ge=1, description="the version read; a stale one is refused (409)")
    name: Text = None
    kind: OrgKind | None = None
    sector: Sector | None = None
    code: Text = None
    address: Text = None
    province: Text = None
    tax_code: Text = None
    budget_code: Text = None
    email: Text = None
    phone: Text = None


def _orgs_out(session: Session, orgs: Iterable[Organization]) -> list[OrganizationOut]:
    orgs = list(orgs)
    parents = organizations.public_ids(session, (o.parent_id for o in orgs))
    return [
        OrganizationOut(
            id=o.public_id,
            code=o.code,
            name=o.name,
            parent=parents.get(o.parent_id) if o.parent_id else None,
            kind=o.kind,
            sector=o.sector,
            address=o.address,
            province=o.province,
            tax_code=o.tax_code,
            budget_code=o.budget_code,
            email=o.email,
            phone=o.phone,
            version=o.version,
            created_at=o.created_at,
            updated_at=o.updated_at,
        )
        for o in orgs
    ]


@router.get("/organizations", response_model=Page[OrganizationOut])
def list_organizations(
    ctx: Ctx,
    who: Who,
    q: Search = None,
    sector: Sector | None = None,
    kind: OrgKind | None = None,
    under: RefQuery = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    with ctx.db.read() as session:
        page = organizations.search(
            who, session, q=q, sector=sector, kind=kind, under=under, offset=offset, limit=limit
        )
        return _page(page, _orgs_out(session, page.items))


@router.get("/organizations/export", summary="XLSX or CSV with Vietnamese headers")
def export_organizations(
    ctx: Ctx,
    who: Who,
    fmt: Annotated[spreadsheets.Format, Query(alias="format")] = spreadsheets.Format.XLSX,
    under: RefQuery = None,
) -> Response:
    with ctx.db.read() as session:
        data = spreadsheets.export_organizations(who, session, fmt, under=under)
    return _download(data, fmt, "don-vi")


@router.post(
    "/organizations/import",
    status_code=201,
    summary="XLSX or CSV; all rows or none (422 lists each problem)",
)
async def import_organizations(
    request: Request, ctx: Ctx, who: Who, file: Annotated[UploadFile, File()]
) -> Response:
    return await _import(
        request,
        ctx,
        file,
        lambda session, data: spreadsheets.import_organizations(
            who, session, data, filename=file.filename
        ),
    )


@router.post("/organizations", status_code=201, response_model=OrganizationOut)
def create_organization(body: OrganizationIn, ctx: Ctx, who: Who) -> OrganizationOut:
    with ctx.db.session() as session:
        org = organizations.create(who, session, organizations.OrgInput(**body.model_dump()))
        return _orgs_out(session, [org])[0]


@router.get("/organizations/{public_id}", response_model=OrganizationOut)
def show_organization(public_id: PublicId, ctx: Ctx, who: Who) -> OrganizationOut:
    with ctx.db.read() as session:
        return _orgs_out(session, [organizations.get(who, session, public_id)])[0]


@router.get("/organizations/{public_id}/subtree", response_model=list[OrganizationOut])
def organization_subtree(public_id: PublicId, ctx: Ctx, who: Who) -> list[OrganizationOut]:
    with ctx.db.read() as session:
        return _orgs_out(session, organizations.subtree(who, session, public_id))


@router.patch("/organizations/{public_id}", response_model=OrganizationOut)
def update_organization(
    public_id: PublicId, body: OrganizationPatch, ctx: Ctx, who: Who
) -> OrganizationOut:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version")
    with ctx.db.session() as session:
        org = organizations.update(who, session, public_id, version, changes)
        return _orgs_out(session, [org])[0]


# -- people -----------------------------------------------------------------------------------
class PersonOut(BaseModel):
    id: str
    full_name: str
    date_of_birth: date | None
    id_number: str | None
    id_issue_date: date | None
    id_issue_place: str | None
    position: str | None
    organization: str
    organization_name: str
    email: str | None
    mobile: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class PersonIn(BaseModel):
    full_name: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
    organization: Annotated[str, Field(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    date_of_birth: date | None = None
    id_number: Text = None
    id_issue_date: date | None = None
    id_issue_place: Text = None
    position: Text = None
    email: Text = None
    mobile: Text = None


class PersonPatch(BaseModel):
    version: int = Field(ge=1)
    full_name: Text = None
    organization: Ref = None
    date_of_birth: date | None = None
    id_number: Text = None
    id_issue_date: date | None = None
    id_issue_place: Text = None
    position: Text = None
    email: Text = None
    mobile: Text = None


def _people_out(session: Session, persons: Iterable[Person]) -> list[PersonOut]:
    persons = list(persons)
    units = organizations.by_ids(session, (p.organization_id for p in persons))
    return [
        PersonOut(
            id=p.public_id,
            full_name=p.full_name,
            date_of_birth=p.date_of_birth,
            id_number=p.id_number,
            id_issue_date=p.id_issue_date,
            id_issue_place=p.id_issue_place,
            position=p.position,
            organization=units[p.organization_id].public_id,
            organization_name=units[p.organization_id].name,
            email=p.email,
            mobile=p.mobile,
            version=p.version,
            created_at=p.created_at,
            updated_at=p.updated_at,
        )
        for p in persons
    ]


@router.get("/people", response_model=Page[PersonOut])
def list_people(
    ctx: Ctx,
    who: Who,
    q: Search = None,
    under: RefQuery = None,
    position: Search = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    with ctx.db.read() as session:
        page = people.search(
            who, session, q=q, under=under, position=position, offset=offset, limit=limit
        )
        return _page(page, _people_out(session, page.items))


@router.get("/people/export", summary="The list of request form 01, XLSX or CSV")
def export_people(
    ctx: Ctx,
    who: Who,
    fmt: Annotated[spreadsheets.Format, Query(alias="format")] = spreadsheets.Format.XLSX,
    under: RefQuery = None,
) -> Response:
    with ctx.db.read() as session:
        data = spreadsheets.export_people(who, session, fmt, under=under)
    return _download(data, fmt, "thue-bao")


@router.post(
    "/people/import",
    status_code=201,
    summary="Form 01 list, XLSX or CSV; all rows or none (422 lists each problem)",
)
async def import_people(
    request: Request,
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File()],
    unit: RefQuery = None,
) -> Response:
    return await _import(
        request,
        ctx,
        file,
        lambda session, data: spreadsheets.import_people(
            who, session, data, filename=file.filename, default_unit=unit
        ),
    )


@router.post("/people", status_code=201, response_model=PersonOut)
def create_person(body: PersonIn, ctx: Ctx, who: Who) -> PersonOut:
    with ctx.db.session() as session:
        person = people.create(who, session, people.PersonInput(**body.model_dump()))
        return _people_out(session, [person])[0]


@router.get("/people/{public_id}", response_model=PersonOut)
def show_person(public_id: PublicId, ctx: Ctx, who: Who) -> PersonOut:
    with ctx.db.read() as session:
        return _people_out(session, [people.get(who, session, public_id)])[0]


@router.patch("/people/{public_id}", response_model=PersonOut)
def update_person(public_id: PublicId, body: PersonPatch, ctx: Ctx, who: Who) -> PersonOut:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version")
    with ctx.db.session() as session:
        person = people.update(who, session, public_id, version, changes)
        return _people_out(session, [person])[0]


@router.delete("/people/{public_id}", status_code=204)
def delete_person(
    public_id: PublicId, ctx: Ctx, who: Who, version: Annotated[int, Query(ge=1)]
) -> Response:
    with ctx.db.session() as session:
        people.delete(who, session, public_id, version)
    return Response(status_code=204)


# -- key devices ------------------------------------------------------------------------------
class DeviceOut(BaseModel):
    id: str
    serial: str
    model: str
    kind: DeviceKind
    status: DeviceStatus
    unit: str | None
    unit_name: str | None
    holder: str | None
    holder_name: str | None
    last_pin_change_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class DeviceIn(BaseModel):
    serial: Annotated[str, Field(max_length=100), AfterValidator(_no_nul)]
    model: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
    kind: DeviceKind = DeviceKind.USB_TOKEN
    unit: Ref = None


class HandoverIn(BaseModel):
    person: Annotated[str, Field(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    from_name: Text = None
    note: Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)] = None


class ReturnIn(BaseModel):
    received_by: Text = None
    note: Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)] = None


class StatusIn(BaseModel):
    status: DeviceStatus = Field(
        description="locked, issued (restore a locked device), "
        "in_stock (returned → stock) or destroyed"
    )
    note: Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)] = None


class PinChangeIn(BaseModel):
    at: AwareDatetime | None = Field(
        None, description="when the holder changed it (with a time zone); now if absent"
    )


class DeviceCertificate(BaseModel):
    serial: str
    subject: str
    status: CertStatus
    not_after: datetime


class DeviceDetail(DeviceOut):
    certificates: list[DeviceCertificate] = Field(description="keys kept on the device")


class HandoverOut(BaseModel):
    id: str
    device: str
    from_name: str
    to_person: str | None
    to_name: str
    at: datetime
    note: str | None
    minutes_url: str


class OverdueOut(BaseModel):
    device: DeviceOut
    holder: str | None
    holder_name: str | None
    holder_mobile: str | None
    holder_email: str | None
    since: datetime
    days: int


class OverdueList(BaseModel):
    days: int
    items: list[OverdueOut]


def _devices_out(session: Session, rows: Iterable[KeyDevice]) -> list[DeviceOut]:
    rows = list(rows)
    units = organizations.by_ids(session, (d.organization_id for d in rows))
    holders = people.by_ids(session, (d.holder_person_id for d in rows))
    out = []
    for d in rows:
        unit = units.get(d.organization_id) if d.organization_id else None
        holder = holders.get(d.holder_person_id) if d.holder_person_id else None
        out.append(
            DeviceOut(
                id=d.public_id,
                serial=d.serial,
                model=d.model,
                kind=d.kind,
                status=d.status,
                unit=unit.public_id if unit else None,
                unit_name=unit.name if unit else None,
                holder=holder.public_id if holder else None,
                holder_name=holder.full_name if holder else None,
                last_pin_change_at=d.last_pin_change_at,
                version=d.version,
                created_at=d.created_at,
                updated_at=d.updated_at,
            )
        )
    return out


def _handovers_out(
    session: Session, device: KeyDevice, rows: Iterable[DeviceHandover]
) -> list[HandoverOut]:
    rows = list(rows)
    persons = {
        key: p.public_id
        for key, p in people.by_ids(session, (r.to_person_id for r in rows)).items()
    }
    return [
        HandoverOut(
            id=r.public_id,
            device=device.public_id,
            from_name=r.from_name,
            to_person=persons.get(r.to_person_id) if r.to_person_id else None,
            to_name=r.to_name,
            at=r.at,
            note=r.note,
            minutes_url=f"/api/v1/devices/handovers/{r.public_id}/minutes.pdf",
        )
        for r in rows
    ]


@router.get("/devices", response_model=Page[DeviceOut])
def list_devices(
    ctx: Ctx,
    who: Who,
    status: DeviceStatus | None = None,
    under: RefQuery = None,
    holder: RefQuery = None,
    q: Search = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    with ctx.db.read() as session:
        page = devices.search(
            who, session, status=status, under=under, holder=holder, q=q, offset=offset, limit=limit
        )
        return _page(page, _devices_out(session, page.items))


@router.get(
    "/devices/pin-overdue",
    response_model=OverdueList,
    summary="Holders who have not changed their PIN within the policy",
)
def pin_overdue(
    ctx: Ctx, who: Who, days: Annotated[int | None, Query(ge=1, le=3650)] = None
) -> OverdueList:
    days = days or ctx.settings.pin_change_days
    with ctx.db.read() as session:
        found = devices.pin_overdue(who, session, days=days)
        outs = _devices_out(session, [item.device for item in found])
        return OverdueList(
            days=days,
            items=[
                OverdueOut(
                    device=out,
                    holder=item.holder.public_id if item.holder else None,
                    holder_name=item.holder.full_name if item.holder else None,
                    holder_mobile=item.holder.mobile if item.holder else None,
                    holder_email=item.holder.email if item.holder else None,
                    since=item.since,
                    days=item.days,
                )
                for item, out in zip(found, outs, strict=True)
            ],
        )


@router.get(
    "/devices/handovers/{handover_id}/minutes.pdf",
    summary="Printable hand-over minutes (biên bản bàn giao)",
)
def handover_minutes(handover_id: PublicId, ctx: Ctx, who: Who) -> Response:
    with ctx.db.read() as session:
        pdf = minutes.handover_pdf(who, session, handover_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": content_disposition(
                f"bien-ban-ban-giao-{handover_id}.pdf", "inline"
            )
        },
    )


@router.post("/devices", status_code=201, response_model=DeviceOut)
def create_device(body: DeviceIn, ctx: Ctx, who: Who) -> DeviceOut:
    with ctx.db.session() as session:
        device = devices.add(who, session, devices.DeviceInput(**body.model_dump()))
        return _devices_out(session, [device])[0]


@router.get("/devices/{public_id}", response_model=DeviceDetail)
def show_device(public_id: PublicId, ctx: Ctx, who: Who) -> DeviceDetail:
    with ctx.db.read() as session:
        device = devices.get(who, session, public_id)
        return DeviceDetail(
            **_devices_out(session, [device])[0].model_dump(),
            certificates=[
                DeviceCertificate(
                    serial=c.serial, subject=c.subject, status=c.status, not_after=c.not_after
                )
                for c in devices.certificates(session, device)
            ],
        )


@router.get("/devices/{public_id}/handovers", response_model=list[HandoverOut])
def device_handovers(public_id: PublicId, ctx: Ctx, who: Who) -> list[HandoverOut]:
    with ctx.db.read() as session:
        rows = devices.handovers(who, session, public_id)
        return _handovers_out(session, devices.get(who, session, public_id), rows)


@router.post("/devices/{public_id}/handover", status_code=201, response_model=HandoverOut)
def handover_device(public_id: PublicId, body: HandoverIn, ctx: Ctx, who: Who) -> HandoverOut:
    with ctx.db.session() as session:
        row = devices.handover(
            who, session, public_id, body.person, from_name=body.from_name, note=body.note
        )
        return _handovers_out(session, devices.get(who, session, public_id), [row])[0]


@router.post("/devices/{public_id}/return", status_code=201, response_model=HandoverOut)
def return_device(public_id: PublicId, body: ReturnIn, ctx: Ctx, who: Who) -> HandoverOut:
    with ctx.db.session() as session:
        row = devices.take_back(
            who, session, public_id, received_by=body.received_by, note=body.note
        )
        return _handovers_out(session, devices.get(who, session, public_id), [row])[0]


@router.post("/devices/{public_id}/status", response_model=DeviceOut)
def device_status(public_id: PublicId, body: StatusIn, ctx: Ctx, who: Who) -> DeviceOut:
    with ctx.db.session() as session:
        device = devices.set_status(who, session, public_id, body.status, note=body.note)
        return _devices_out(session, [device])[0]


@router.post("/devices/{public_id}/pin-change", response_model=DeviceOut)
def device_pin_change(public_id: PublicId, body: PinChangeIn, ctx: Ctx, who: Who) -> DeviceOut:
    with ctx.db.session() as session:
        device = devices.record_pin_change(who, session, public_id, at=body.at)
        return _devices_out(session, [device])[0]


# -- users ------------------------------------------------------------------------------------
class UserOut(BaseModel):
    id: str
    username: str
    full_name: str
    email: str | None
    role: Role
    unit: str | None
    active: bool
    totp_enrolled: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime


class UserIn(BaseModel):
    username: Annotated[str, Field(max_length=100), AfterValidator(_no_nul)]
    full_name: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
    password: Annotated[str, Field(max_length=256, description="at least 10 characters")]
    role: Role
    unit: Ref = None
    email: Text = None
    person: Ref = None


class TotpOut(BaseModel):
    secret: str
    uri: str


class NewUserOut(BaseModel):
    user: UserOut
    totp: TotpOut | None = Field(None, description="shown once: enrol it in an authenticator")


def _users_out(session: Session, rows: Iterable[User]) -> list[UserOut]:
    rows = list(rows)
    units = organizations.public_ids(session, (u.organization_id for u in rows))
    return [
        UserOut(
            id=u.public_id,
            username=u.username,
            full_name=u.full_name,
            email=u.email,
            role=u.role,
            unit=units.get(u.organization_id) if u.organization_id else None,
            active=u.active,
            totp_enrolled=totp.is_enrolled(u),
            locked_until=u.locked_until,
            last_login_at=u.last_login_at,
            created_at=u.created_at,
        )
        for u in rows
    ]


@router.get("/users", response_model=Page[UserOut], tags=["users"])
def list_users(
    ctx: Ctx,
    who: Who,
    q: Search = None,
    role: Role | None = None,
    active: bool | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    with ctx.db.read() as session:
        page = users.search(who, session, q=q, role=role, active=active, offset=offset, limit=limit)
        return _page(page, _users_out(session, page.items))


@router.post("/users", status_code=201, response_model=NewUserOut, tags=["users"])
def create_user(body: UserIn, ctx: Ctx, who: Who) -> NewUserOut:
    with ctx.db.session() as session:
        made = users.create(who, session, users.UserInput(**body.model_dump()))
        totp = TotpOut(secret=made.totp.secret, uri=made.totp.uri) if made.totp else None
        return NewUserOut(user=_users_out(session, [made.user])[0], totp=totp)


@router.post("/users/{public_id}/deactivate", response_model=UserOut, tags=["users"])
def deactivate_user(public_id: PublicId, ctx: Ctx, who: Who) -> UserOut:
    with ctx.db.session() as session:
        return _users_out(session, [users.deactivate(who, session, public_id)])[0]
