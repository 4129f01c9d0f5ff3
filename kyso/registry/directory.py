"""The organization tree as people browse it: units with what they hold (sub-units, people,
valid certificates), their ancestry in search results and their first sub-units to expand,
the tops of a viewer's view, and one unit with its members.

Every function takes the viewer's :class:`~kyso.registry.access.Principal` and reads only
what :mod:`kyso.registry.organizations` lets it read: a unit officer browses their own unit
and the units below it, the province sees all. A page of units costs a few grouped queries,
never one per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kyso.errors import KysoError
from kyso.registry import organizations
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import Certificate, CertStatus, Organization, OrgKind, Person, Sector

EXPANDED = 30  # sub-units listed inside a row's "expand" before a "see all" link
_AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")  # the state agency code


@dataclass
class UnitRow:
    """A unit in a list, with what one grouped query per page can tell about it."""

    org: Organization
    children: int = 0
    people: int = 0
    certificates: int | None = None  # None: the viewer does not read certificates
    trail: list[Organization] = field(default_factory=list)  # ancestors, for search results
    sub: list[Organization] = field(default_factory=list)  # the first sub-units, to expand


class Branch(NamedTuple):
    """A top of the view with a page of its sub-units and how many it has."""

    root: UnitRow
    rows: list[UnitRow]
    total: int


@dataclass(frozen=True)
class Found:
    rows: list[UnitRow]
    total: int


@dataclass
class UnitDetail:
    """One unit's page: the unit, its ancestry, a page of sub-units and a page of members."""

    org: Organization
    row: UnitRow
    trail: list[tuple[Organization, bool]]  # ancestors and whether the viewer may open each
    children: list[UnitRow]
    children_total: int
    members: list[Person]  # empty when the viewer does not read people
    members_total: int
    subtree_people: int | None  # people of the unit and every unit below (None: not shown)
    may_write: bool  # edit the unit, add units below it
    may_add_person: bool


def _counts(session: Session, column: Any, ids: list[int], *where: Any) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(column, func.count()).where(column.in_(ids), *where).group_by(column)
    )
    return {key: n for key, n in rows}


def _rows(
    principal: Principal,
    session: Session,
    orgs: list[Organization],
    *,
    trail: bool = False,
    expand: bool = False,
    expanded: int = EXPANDED,
) -> list[UnitRow]:
    """Rows for units already read through a check: a few grouped counts and, when asked,
    each unit's ancestry (search results) or its first sub-units (the tree)."""
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
        ancestors = organizations.by_ids(session, wanted)
    subs: dict[int, list[Organization]] = {}
    expandable = [i for i in ids if children.get(i)]
    if expand and expandable:
        found = session.execute(
            select(Organization)
            .where(Organization.parent_id.in_(expandable))
            .order_by(Organization.parent_id, Organization.name)
        ).scalars()
        for sub in found:
            listed = subs.setdefault(sub.parent_id or 0, [])
            if len(listed) < expanded:
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
    session: Session, parent: Organization, offset: int, limit: int
) -> tuple[list[Organization], int]:
    """The direct sub-units of a unit the viewer was allowed to read (its subtree is in view)."""
    query = select(Organization).where(Organization.parent_id == parent.id)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    found = session.execute(query.order_by(Organization.name).offset(offset).limit(limit))
    return list(found.scalars()), total


def roots(principal: Principal, session: Session) -> list[Organization]:
    """The tops of the viewer's view: the province's root units, or an officer's own unit."""
    require(principal, Action.ORG_READ)
    query = select(Organization).where(visible(principal, Organization.path))
    if principal.province_wide:
        query = query.where(Organization.parent_id.is_(None))
    else:
        query = query.where(Organization.path == principal.org_path)
    return list(session.execute(query.order_by(Organization.name)).scalars())


def browse(
    principal: Principal,
    session: Session,
    *,
    offset: int = 0,
    limit: int = 100,
    expanded: int = EXPANDED,
) -> list[Branch]:
    """The tree from the tops of the view: a single top with a page of its sub-units
    (``offset``, ``limit``), several tops each with their first ``expanded`` sub-units."""
    tops = roots(principal, session)
    single = len(tops) == 1
    branches = []
    for root in tops:
        kids, count = _children(
            session, root, offset if single else 0, limit if single else expanded
        )
        branches.append(
            Branch(
                _rows(principal, session, [root])[0],
                _rows(principal, session, kids, expand=True, expanded=expanded),
                count,
            )
        )
    return branches


def _by_code(principal: Principal, session: Session, q: str) -> Organization | None:
    code = q.strip().upper()
    if not _AGENCY_CODE.fullmatch(code):
        return None
    try:
        return organizations.by_code(principal, session, code)
    except KysoError:  # none, or outside the view: the search finds nothing by code
        return None


def search(
    principal: Principal,
    session: Session,
    *,
    q: str | None = None,
    kind: OrgKind | None = None,
    sector: Sector | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Found:
    """Units in view whose name holds ``q`` (:func:`organizations.search`), each with its
    ancestry; ``q`` that is a unit's agency code also finds that unit, first."""
    found = organizations.search(
        principal, session, q=q or None, kind=kind, sector=sector, offset=offset, limit=limit
    )
    items, total = list(found.items), found.total
    by_code = _by_code(principal, session, q) if q else None
    if (
        by_code is not None
        and offset == 0
        and by_code.id not in {o.id for o in items}
        and kind in (None, by_code.kind)
        and sector in (None, by_code.sector)
    ):
        items.insert(0, by_code)
        total += 1
    return Found(_rows(principal, session, items, trail=True), total)


def unit(
    principal: Principal,
    session: Session,
    public_id: str,
    *,
    offset: int = 0,
    limit: int = 50,
    sub: int = 0,
    sub_limit: int = 100,
) -> UnitDetail:
    """One unit in view with a page of its sub-units (``sub``, ``sub_limit``) and, for a
    viewer who reads people, a page of its members (``offset``, ``limit``)."""
    org = organizations.get(principal, session, public_id)
    kids, kid_total = _children(session, org, sub, sub_limit)
    members: list[Person] = []
    member_total = 0
    subtree_people = None
    if principal.can(Action.PERSON_READ):
        require(principal, Action.PERSON_READ, org.path)
        query = select(Person).where(Person.organization_id == org.id)
        member_total = session.execute(
            select(func.count()).select_from(query.subquery())
        ).scalar_one()
        members = list(
            session.execute(
                query.order_by(Person.full_name, Person.id).offset(offset).limit(limit)
            ).scalars()
        )
        if kid_total:
            subtree_people = session.execute(
                select(func.count(Person.id))
                .join(Organization, Person.organization_id == Organization.id)
                .where(Organization.path.startswith(org.path, autoescape=True))
            ).scalar_one()
    return UnitDetail(
        org=org,
        row=_rows(principal, session, [org])[0],
        trail=organizations.trail(principal, session, org),
        children=_rows(principal, session, kids, expand=True),
        children_total=kid_total,
        members=members,
        members_total=member_total,
        subtree_people=subtree_people,
        may_write=principal.can(Action.ORG_WRITE) and principal.covers(org.path),
        may_add_person=principal.can(Action.PERSON_WRITE) and principal.covers(org.path),
    )
