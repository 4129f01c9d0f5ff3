"""The tree of units: materialized paths, subtree queries, search, optimistic locking."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kyso.audit.log import verify
from kyso.errors import Conflict, Forbidden, InvalidInput
from kyso.registry import organizations as orgs
from kyso.registry.access import cli_principal
from kyso.store.models import AuditEntry, Organization, OrgKind, Sector
from registry.conftest import new_code

ADMIN = cli_principal("cli:test")


def _make(registry, name, parent=None, kind=OrgKind.DEPARTMENT, **extra):
    with registry.ctx.db.session() as session:
        return orgs.create(
            ADMIN,
            session,
            orgs.OrgInput(
                name=name,
                kind=kind,
                sector=Sector.GOVERNMENT,
                parent=parent.public_id if parent else None,
                **extra,
            ),
        )


def test_paths_are_materialized_ancestry_and_subtree_is_a_prefix_query(registry, uniq) -> None:
    token = uniq()
    root = _make(registry, f"Tỉnh Thử {token}", kind=OrgKind.PROVINCE, code=new_code())
    child = _make(registry, f"Huyện Thử {token}", root, kind=OrgKind.DISTRICT)
    leaf = _make(registry, f"Xã Thử {token}", child, kind=OrgKind.COMMUNE)
    other = _make(registry, f"Sở Thử {token}", root)

    assert root.path == f"/{root.id}/"
    assert child.path == f"/{root.id}/{child.id}/"
    assert leaf.path == f"/{root.id}/{child.id}/{leaf.id}/"
    assert root.version == child.version == 1  # setting the path is not an edit
    with registry.ctx.db.read() as session:
        stored = session.get(Organization, leaf.id)
        assert stored is not None and stored.path == leaf.path
        assert stored.parent_id == child.id
        whole = orgs.subtree(ADMIN, session, root.public_id)
        assert {o.id for o in whole} == {root.id, child.id, leaf.id, other.id}
        assert whole[0].id == root.id
        below_child = orgs.subtree(ADMIN, session, child.public_id)
        assert [o.id for o in below_child] == [child.id, leaf.id]
        assert [o.id for o in orgs.ancestors(session, leaf)] == [root.id, child.id]
        page = orgs.search(ADMIN, session, under=child.public_id)
        assert page.total == 2
        assert {o.public_id for o in page.items} == {child.public_id, leaf.public_id}


def test_subtree_puts_parents_before_children(registry) -> None:
    ba_be = registry.unit("UBND huyện Ba Bể")
    with registry.ctx.db.read() as session:
        tree = orgs.subtree(ADMIN, session, ba_be.public_id)
    assert tree[0].id == ba_be.id
    seen = {ba_be.id}
    for org in tree[1:]:
        assert org.parent_id in seen
        seen.add(org.id)
    names = {o.name for o in tree}
    assert "Trạm Y tế xã Khang Ninh" in names
    assert "UBND xã Bằng Lãng" not in names  # Chợ Đồn


def test_search_ignores_case_and_diacritics_and_pages(registry) -> None:
    with registry.ctx.db.read() as session:
        for q in ("ba be", "BA BỂ", "huyện ba bể"):
            names = [o.name for o in orgs.search(ADMIN, session, q=q, limit=500).items]
            assert "UBND huyện Ba Bể" in names, q
            assert all("ba be" in orgs.f.fold(n) for n in names)
        schools = orgs.search(ADMIN, session, kind=OrgKind.SCHOOL, limit=500)
        assert schools.total >= 100
        first = orgs.search(ADMIN, session, kind=OrgKind.SCHOOL, offset=0, limit=30)
        second = orgs.search(ADMIN, session, kind=OrgKind.SCHOOL, offset=30, limit=30)
        assert first.total == second.total == schools.total
        assert len(first.items) == len(second.items) == 30
        assert not {o.id for o in first.items} & {o.id for o in second.items}
        health = orgs.search(ADMIN, session, sector=Sector.HEALTH, limit=500).items
        assert health and all(o.sector is Sector.HEALTH for o in health)


def test_stale_version_is_refused_as_changed_by_someone_else(registry, uniq) -> None:
    org = _make(registry, f"Sở Khóa lạc quan {uniq()}", registry.unit("UBND tỉnh Bắc Kạn"))
    read_version = org.version
    with registry.ctx.db.session() as session:  # someone else saves first
        saved = orgs.update(
            ADMIN, session, org.public_id, read_version, {"address": "Số 1 đường Trường Chinh"}
        )
        assert saved.version == read_version + 1
    with pytest.raises(Conflict) as caught, registry.ctx.db.session() as session:
        orgs.update(ADMIN, session, org.public_id, read_version, {"address": "Số 2"})
    assert "changed by someone else" in caught.value.message("en")
    assert "người khác sửa" in caught.value.message("vi")
    with registry.ctx.db.read() as session:
        assert orgs.get(ADMIN, session, org.public_id).address == "Số 1 đường Trường Chinh"


def test_update_checks_fields_and_records_the_change(registry, uniq) -> None:
    org = _make(registry, f"Sở Sửa {uniq()}", registry.unit("UBND tỉnh Bắc Kạn"))
    with pytest.raises(InvalidInput) as caught, registry.ctx.db.session() as session:
        orgs.update(
            ADMIN,
            session,
            org.public_id,
            org.version,
            {"email": "not-an-email", "tax_code": "123", "code": "G22"},
        )
    message = caught.value.message("en")
    assert "email" in message and "tax_code" in message and "code" in message
    with registry.ctx.db.session() as session:
        orgs.update(
            ADMIN,
            session,
            org.public_id,
            org.version,
            {"email": "VanPhong@BACKAN.gov.vn", "tax_code": "4700123456-001"},
        )
    with registry.ctx.db.read() as session:
        stored = orgs.get(ADMIN, session, org.public_id)
        assert stored.email == "VanPhong@backan.gov.vn"
        entry = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.target == org.public_id)
                .order_by(AuditEntry.seq.desc())
            )
            .scalars()
            .first()
        )
        assert entry is not None and entry.action == "organization.updated"
        assert verify(session).ok


def test_duplicate_agency_code_is_a_conflict(registry, uniq) -> None:
    code = new_code()
    parent = registry.unit("UBND tỉnh Bắc Kạn")
    _make(registry, f"Sở A {uniq()}", parent, code=code)
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        orgs.create(
            ADMIN,
            session,
            orgs.OrgInput(
                name=f"Sở B {uniq()}",
                kind=OrgKind.DEPARTMENT,
                sector=Sector.GOVERNMENT,
                parent=parent.public_id,
                code=code.lower(),
            ),
        )


def test_only_the_province_adds_a_top_level_unit(registry, uniq) -> None:
    officer = registry.principal("babe")
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        orgs.create(
            officer,
            session,
            orgs.OrgInput(
                name=f"Tỉnh lạ {uniq()}", kind=OrgKind.PROVINCE, sector=Sector.GOVERNMENT
            ),
        )
