"""A CCCD from another district: the requesting officer learns nothing of its holder, and
approval never moves a person between units or overwrites their record unless the
province's approver saw those very changes and confirmed them.

Before: the request was linked at once to the other district's person (their record's id in
the API, their name on the page), and approval silently moved the person into the
requester's unit and replaced their e-mail and mobile with the form's.
"""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest, SubscriberChangesUnconfirmed
from kyso.registry import people
from kyso.registry.access import cli_principal
from kyso.store.models import (
    CertificateRequest,
    Person,
    RequestEvent,
    RequestState,
    RequestType,
)

from .conftest import World, individual_form, make_csr, new_cccd

CLI = cli_principal("cli:test")


def _other_districts_person(world: World) -> Person:
    """A subscriber of Ngân Sơn, with their own contact data."""
    with world.ctx.db.session() as session:
        return people.create(
            CLI,
            session,
            people.PersonInput(
                full_name="Ma Thị Kín",
                organization=world.unit("nganson").public_id,
                date_of_birth=date(1980, 5, 6),
                id_number=new_cccd(date(1980, 5, 6), female=True),
                email="kin.mt@nganson.backan.gov.vn",
                mobile="0987 000 111",
                position="Kế toán",
            ),
        )


def _request_with(world: World, person: Person) -> str:
    """The Ba Bể officer's request for a person with that CCCD (another name, other data)."""
    form = individual_form(
        full_name="Ma Thị Kín",
        id_number=person.id_number,
        date_of_birth="06/05/1980",
        email="kin.mt@babe.backan.gov.vn",
        mobile="0912 999 888",
    )
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, form, csr=make_csr()),
        )
        rid = request.public_id
    with world.ctx.db.session() as session:
        workflow.submit(world.who("officer"), session, world.ctx.settings, rid)
    return rid


def _person(world: World, person: Person) -> Person:
    with world.ctx.db.read() as session:
        found = session.get(Person, person.id)
        assert found is not None
        return found


def test_the_officer_learns_nothing_of_another_districts_person(
    world: World, api: TestClient
) -> None:
    person = _other_districts_person(world)
    rid = _request_with(world, person)
    with world.ctx.db.read() as session:
        view = workflow.get(world.who("officer"), session, rid)
        assert view.person is None
        assert (
            session.execute(
                select(CertificateRequest.person_id).where(CertificateRequest.public_id == rid)
            ).scalar_one()
            is None
        )
    reply = api.get(f"/api/v1/requests/{rid}", headers=world.headers("officer"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["person"] is None
    assert person.public_id not in reply.text
    assert "nganson" not in reply.text and "0987" not in reply.text
    # the approver, and only they, may see whose record it is
    refused = api.get(
        f"/api/v1/requests/{rid}/subscriber-changes", headers=world.headers("officer")
    )
    assert refused.status_code == 403


def test_approval_never_moves_or_overwrites_a_person_without_confirmation(
    world: World, api: TestClient
) -> None:
    person = _other_districts_person(world)
    rid = _request_with(world, person)
    shown = api.get(f"/api/v1/requests/{rid}/subscriber-changes", headers=world.headers("admin1"))
    assert shown.status_code == 200, shown.text
    changes = {c["field"]: (c["old"], c["new"]) for c in shown.json()["changes"]}
    assert changes["organization"] == ("UBND huyện Ngân Sơn", "UBND huyện Ba Bể")
    assert changes["email"] == ("kin.mt@nganson.backan.gov.vn", "kin.mt@babe.backan.gov.vn")
    assert "mobile" in changes

    with pytest.raises(SubscriberChangesUnconfirmed) as refused, world.ctx.db.session() as s:
        workflow.approve(world.who("admin1"), s, world.ctx.authority, rid)
    assert "Ngân Sơn" in refused.value.message("vi")
    again = api.post(f"/api/v1/requests/{rid}/approve", json={}, headers=world.headers("admin1"))
    assert again.status_code == 409 and again.json()["code"] == "subscriber_changes_unconfirmed"
    unchanged = _person(world, person)
    assert unchanged.organization_id == world.unit("nganson").id
    assert unchanged.email == "kin.mt@nganson.backan.gov.vn"

    done = api.post(
        f"/api/v1/requests/{rid}/approve",
        json={"confirm_subscriber_changes": True},
        headers=world.headers("admin1"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == RequestState.ISSUED.value
    moved = _person(world, person)
    assert moved.organization_id == world.unit("babe").id
    assert moved.email == "kin.mt@babe.backan.gov.vn"
    with world.ctx.db.read() as session:
        notes = session.execute(
            select(RequestEvent.note)
            .join(CertificateRequest, CertificateRequest.id == RequestEvent.request_id)
            .where(CertificateRequest.public_id == rid)
        ).scalars()
        assert any("xác nhận thay đổi hồ sơ thuê bao" in (n or "") for n in notes)


def test_every_approver_confirms_the_changes_as_they_are_then(world: World) -> None:
    """Two approvals needed: the first confirms; the record then changes (someone edited the
    person meanwhile); the second approver must see and confirm again."""
    person = _other_districts_person(world)
    rid = _request_with(world, person)
    with world.ctx.db.session() as session:
        request = session.execute(
            select(CertificateRequest).where(CertificateRequest.public_id == rid)
        ).scalar_one()
        request.required_approvals = 2
    with world.ctx.db.session() as session:
        workflow.approve(
            world.who("admin1"), session, world.ctx.authority, rid, confirm_subscriber_changes=True
        )
    with world.ctx.db.session() as session:
        current = session.get(Person, person.id)
        assert current is not None
        people.update(CLI, session, current.public_id, current.version, {"position": "Thủ quỹ"})
    with pytest.raises(SubscriberChangesUnconfirmed), world.ctx.db.session() as session:
        workflow.approve(world.who("admin2"), session, world.ctx.authority, rid)
    with world.ctx.db.session() as session:
        workflow.approve(
            world.who("admin2"), session, world.ctx.authority, rid, confirm_subscriber_changes=True
        )
    assert _person(world, person).organization_id == world.unit("babe").id


def test_a_person_of_the_requesters_own_unit_is_linked_as_before(world: World) -> None:
    with world.ctx.db.session() as session:
        own = people.create(
            CLI,
            session,
            people.PersonInput(
                full_name="Hoàng Thị Mai",
                organization=world.unit("babe").public_id,
                id_number=new_cccd(date(1978, 4, 12), female=True),
            ),
        )
    form = individual_form(id_number=own.id_number)
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, form, csr=make_csr()),
        )
        assert request.person_id == own.id
