"""The province's tree of units: province → departments and districts → communes, schools,
clinics, hospitals, associations.

Each unit keeps its materialized ancestry in ``path`` ("/1/5/23/"), so "this unit and every
unit below it" — the view of a unit officer — is one indexed prefix query. Edits use
optimistic locking: the caller sends the ``version`` it read, and a unit changed by someone
else in the meantime is refused instead of silently overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, NotFound
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import Organization, OrgKind, Sector

KIND_LABELS: dict[OrgKind, str] = {
    OrgKind.PROVINCE: "Tỉnh",
    OrgKind.DEPARTMENT: "Sở, ban, ngành",
    OrgKind.DISTRICT: "Cấp huyện",
    OrgKind.COMMUNE: "Cấp xã",
    OrgKind.HOSPITAL: "Bệnh viện",
    OrgKind.HEALTH_CENTRE: "Trung tâm y tế",
    OrgKind.HEALTH_STATION: "Trạm y tế",
    OrgKind.SCHOOL: "Trường học",
    OrgKind.ASSOCIATION: "Hội, đoàn thể",
    OrgKind.OTHER: "Khác",
}

SECTOR_LABELS: dict[Sector, str] = {
    Sector.GOVERNMENT: "Chính quyền",
    Sector.HEALTH: "Y tế",
    Sector.EDUCATION: "Giáo dục",
    Sector.PARTY_FRONT: "Đảng, Mặt trận, đoàn thể",
    Sector.OTHER: "Khác",
}


@dataclass(frozen=True)
class OrgInput:
    """A unit as a form or a spreadsheet row gives it (``parent`` is the parent's public id)."""

    name: str
    kind: OrgKind
    sector: Sector
    parent: str | None = None
    code: str | None = None
    address: str | None = None
    province: str | None = None
    tax_code: str | None = None
    budget_code: str | None = None
    email: str | None = None
    phone: str | None = None


EDITABLE = frozenset(x.name for x in fields(OrgInput)) - {"parent"}


def clean(data: OrgInput) -> OrgInput:
    """Every field checked and normalized; all problems reported at once."""
    c = f.Collector()
    name = c.check(lambda: f.text("name", data.name, max_length=300, required=True))
    cleaned = OrgInput(
        name=name or "",
        kind=c.check(lambda: _enum_value("kind", OrgKind, data.kind)) or OrgKind.OTHER,
        sector=c.check(lambda: _enum_value("sector", Sector, data.sector)) or Sector.OTHER,
        parent=data.parent,
        code=c.check(lambda: f.agency_code("code", data.code)),
        address=c.check(lambda: f.text("address", data.address, max_length=500)),
        province=c.check(lambda: f.text("province", data.province, max_length=100)),
        tax_code=c.check(lambda: f.tax_code("tax_code", data.tax_code)),
        budget_code=c.check(lambda: f.budget_code("budget_code", data.budget_code)),
        email=c.check(lambda: f.email("email", data.email)),
        phone=c.check(lambda: f.phone("phone", data.phone)),
    )
    c.raise_if_any()
    return cleaned


def _enum_value(field: str, kind: type[OrgKind] | type[Sector], value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise f.FieldProblem(
            field, f"must be one of {allowed}", f"phải là một trong {allowed}"
        ) from None


def _not_found(public_id: str) -> NotFound:
    return NotFound(f"organization {public_id}", vi=f"đơn vị {public_id}")


def _load(session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise _not_found(public_id)
    return org


def get(
    principal: Principal, session: Session, public_id: str, action: Action = Action.ORG_READ
) -> Organization:
    """One unit the principal may see (a unit outside the view is Forbidden, not hidden) and
    may do ``action`` on (``PERSON_WRITE``: add its people; ``ORG_WRITE``: edit it, add units
    below it)."""
    org = _load(session, public_id)
    require(principal, Action.ORG_READ, org.path)
    if action is not Action.ORG_READ:
        require(principal, action, org.path)
    return org


def get_with_parent(
    principal: Principal, session: Session, public_id: str, action: Action = Action.ORG_READ
) -> tuple[Organization, Organization | None]:
    """A unit as :func:`get` checks it, with its parent (part of the unit, as its ancestry:
    an officer editing their own unit sees which unit it belongs to)."""
    org = get(principal, session, public_id, action)
    parent = session.get(Organization, org.parent_id) if org.parent_id is not None else None
    return org, parent


def by_code(principal: Principal, session: Session, code: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.code == code.strip().upper())
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"organization with code {code}", vi=f"đơn vị có mã {code}")
    require(principal, Action.ORG_READ, org.path)
    return org


def _code_conflict(code: str) -> Conflict:
    return Conflict(f"agency code {code} is already used", vi=f"mã định danh {code} đã được dùng")


def _require_parent(principal: Principal, parent: Organization | None) -> None:
    if parent is None:
        require(principal, Action.ORG_WRITE)
        if not principal.province_wide:
            raise Forbidden(
                "only the province may add a top-level unit",
                vi="chỉ cấp tỉnh được thêm đơn vị cấp cao nhất",
            )
    else:
        require(principal, Action.ORG_WRITE, parent.path)


def create(principal: Principal, session: Session, data: OrgInput) -> Organization:
    """Add a unit under ``data.parent`` (a new root needs a province-wide principal)."""
    parent = _load(session, data.parent) if data.parent is not None else None
    _require_parent(principal, parent)
    data = clean(data)
    if f.taken(session, Organization.code, data.code):
        assert data.code is not None
        raise _code_conflict(data.code)
    return create_many(principal, session, [(data, parent)])[0]


def create_many(
    principal: Principal,
    session: Session,
    rows: Sequence[tuple[OrgInput, Organization | int | None]],
) -> list[Organization]:
    """Insert already-cleaned units; a parent is a registered unit or the index of an earlier
    row (imports and the demo add whole subtrees). Access is checked per unit.

    Rows go in by depth, one batched INSERT per level of the tree (a row's id makes its path,
    so its parent must be in first); then one UPDATE sets every path and one append audits."""
    for index, (_, ref) in enumerate(rows):
        if isinstance(ref, int) and not 0 <= ref < index:
            raise ValueError(f"the parent of row {index} is not an earlier row")
    made: dict[int, Organization] = {}
    paths: list[dict[str, Any]] = []
    now = clock.now()
    pending = list(range(len(rows)))
    while pending:
        level = [i for i in pending if not isinstance(rows[i][1], int) or rows[i][1] in made]
        for index in level:
            data, ref = rows[index]
            parent = made[ref] if isinstance(ref, int) else ref
            _require_parent(principal, parent)
            made[index] = Organization(
                public_id=f.new_public_id(),
                code=data.code,
                name=data.name,
                parent_id=parent.id if parent else None,
                path="/",  # set below, once the row has its id
                kind=data.kind,
                sector=data.sector,
                address=data.address,
                province=data.province or (parent.province if parent else None),
                tax_code=data.tax_code,
                budget_code=data.budget_code,
                email=data.email,
                phone=data.phone,
                created_at=now,
                updated_at=now,
            )
        session.add_all([made[i] for i in level])
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(
                "an agency code is already used", vi="có mã định danh đã được dùng"
            ) from exc
        for index in level:
            org, ref = made[index], rows[index][1]
            parent = made[ref] if isinstance(ref, int) else ref
            path = f"{parent.path if parent else '/'}{org.id}/"
            # Set as already stored (the UPDATE below stores it): assigning the attribute
            # would bump the optimistic-lock version of a row nobody else has seen yet.
            set_committed_value(org, "path", path)
            paths.append({"row_id": org.id, "new_path": path})
        pending = [i for i in pending if i not in made]
    if paths:
        table = cast(Table, Organization.__table__)
        session.execute(
            sql_update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(path=bindparam("new_path")),
            paths,
        )
        record(
            session,
            *(
                Event(
                    principal.actor,
                    "organization.created",
                    org.public_id,
                    {
                        "name": org.name,
                        "code": org.code,
                        "parent": _parent_public_id(rows, made, i),
                    },
                )
                for i, org in sorted(made.items())
            ),
        )
    return [made[i] for i in range(len(rows))]


def _parent_public_id(
    rows: Sequence[tuple[OrgInput, Organization | int | None]],
    made: dict[int, Organization],
    index: int,
) -> str | None:
    ref = rows[index][1]
    parent = made[ref] if isinstance(ref, int) else ref
    return parent.public_id if parent else None


def stale(what: str) -> Conflict:
    return Conflict(
        f"{what} was changed by someone else; reload it and try again",
        vi=f"{what} đã được người khác sửa; hãy tải lại rồi thử lại",
    )


def update(
    principal: Principal,
    session: Session,
    public_id: str,
    version: int,
    changes: Mapping[str, Any],
) -> Organization:
    """Change some fields of a unit read at ``version`` (moving it is not supported)."""
    org = _load(session, public_id)
    require(principal, Action.ORG_WRITE, org.path)
    unknown = set(changes) - EDITABLE
    if unknown:
        names = ", ".join(sorted(unknown))
        raise f.invalid([f.FieldProblem(names, "cannot be changed", "không sửa được")])
    if org.version != version:
        raise stale(f"organization {org.name}")
    current = OrgInput(**{name: getattr(org, name) for name in EDITABLE})
    merged = clean(replace(current, **dict(changes)))
    if f.taken(session, Organization.code, merged.code, other_than=(Organization.id, org.id)):
        assert merged.code is not None
        raise _code_conflict(merged.code)
    changed = {
        name: getattr(merged, name)
        for name in sorted(EDITABLE)
        if getattr(merged, name) != getattr(org, name)
    }
    if not changed:
        return org
    for name, value in changed.items():
        setattr(org, name, value)
    org.updated_at = clock.now()
    try:
        session.flush()
    except StaleDataError as exc:  # changed between our read and our write
        raise stale(f"organization {org.name}") from exc
    except IntegrityError as exc:
        raise _code_conflict(merged.code or "") from exc
    record(
        session,
        Event(
            principal.actor,
            "organization.updated",
            org.public_id,
            {"changed": {k: str(v) if v is not None else None for k, v in changed.items()}},
        ),
    )
    return org


def search(
    principal: Principal,
    session: Session,
    *,
    q: str | None = None,
    sector: Sector | None = None,
    kind: OrgKind | None = None,
    under: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[Organization]:
    """Units in view, in tree order; ``q`` matches part of the name ignoring case and
    diacritics ("ba be" finds "UBND huyện Ba Bể"), alike on SQLite and PostgreSQL."""
    require(principal, Action.ORG_READ)
    query = select(Organization.id, Organization.name).where(visible(principal, Organization.path))
    if under is not None:
        root = get(principal, session, under)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if sector is not None:
        query = query.where(Organization.sector == sector)
    if kind is not None:
        query = query.where(Organization.kind == kind)
    rows = session.execute(query.order_by(Organization.path)).all()
    if q:
        needle = f.fold(q)
        rows = [r for r in rows if needle in f.fold(r.name)]
    ids = [r.id for r in rows[offset : offset + limit]]
    by_id = {
        o.id: o
        for o in session.execute(select(Organization).where(Organization.id.in_(ids))).scalars()
    }
    return f.Page([by_id[i] for i in ids], len(rows), offset, limit)


def subtree(principal: Principal, session: Session, public_id: str) -> list[Organization]:
    """A unit and every unit below it, parents before children."""
    root = get(principal, session, public_id)
    return list(
        session.execute(
            select(Organization)
            .where(Organization.path.startswith(root.path, autoescape=True))
            .order_by(Organization.path)
        ).scalars()
    )


def choices_in_view(principal: Principal, session: Session) -> list[tuple[str, str]]:
    """(public id, name indented by depth) of every unit in view, in tree order, for a
    <select> (one narrow query; the top of the view is not indented)."""
    require(principal, Action.ORG_READ)
    rows = session.execute(
        select(Organization.public_id, Organization.name, Organization.path)
        .where(visible(principal, Organization.path))
        .order_by(Organization.path)
    ).all()
    top = min((r.path.count("/") for r in rows), default=0)
    return [(r.public_id, "\u2003" * (r.path.count("/") - top) + r.name) for r in rows]


def trail(
    principal: Principal, session: Session, org: Organization
) -> list[tuple[Organization, bool]]:
    """Breadcrumbs of a unit read through :func:`get`: each ancestor, root first, and whether
    the principal may open it (an officer sees the names above their unit, not the units)."""
    return [(a, principal.covers(a.path)) for a in ancestors(session, org)]


def ancestors(session: Session, org: Organization) -> list[Organization]:
    """From the root down to the unit's parent (read from ``path``; no access check: a unit's
    ancestry is part of the unit)."""
    ids = [int(x) for x in org.path.strip("/").split("/")[:-1] if x]
    if not ids:
        return []
    rows = {
        o.id: o
        for o in session.execute(select(Organization).where(Organization.id.in_(ids))).scalars()
    }
    return [rows[i] for i in ids if i in rows]


def public_ids(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Row id → public id for a batch of references (parents, units of people)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(Organization.id, Organization.public_id).where(Organization.id.in_(wanted))
    )
    return {r.id: r.public_id for r in rows}


def by_ids(session: Session, ids: Iterable[int | None]) -> dict[int, Organization]:
    """Row id → unit for the units a batch of records names (people's, devices'), one query.
    No check of its own: the records were read through a checked service, and a record's unit
    is part of the record (as :func:`public_ids`)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {
        o.id: o
        for o in session.execute(select(Organization).where(Organization.id.in_(wanted))).scalars()
    }
