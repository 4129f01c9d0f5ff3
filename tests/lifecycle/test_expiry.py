"""Certificates expiring within 30/60/90 days, per unit, through the API."""

from __future__ import annotations

from datetime import timedelta

from kyso import clock
from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.store.models import Certificate, RequestType

from .conftest import World, individual_form


def _issued(world: World, unit: str, days_left: int) -> str:
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("admin1"),
            session,
            world.ctx.settings,
            NewRequest(
                RequestType.NEW_INDIVIDUAL, individual_form(), unit=world.unit(unit).public_id
            ),
        )
        workflow.submit(world.who("admin1"), session, world.ctx.settings, request.public_id)
        workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)
        cert = session.get(Certificate, request.certificate_id)
        cert.not_after = clock.now() + timedelta(days=days_left, hours=1)
        return cert.serial


def test_expiring_certificates_are_listed_per_unit_within_the_officers_view(
    world: World, api
) -> None:
    soon = _issued(world, "chuhuong", 10)
    later = _issued(world, "tnmt", 50)
    far = _issued(world, "babe", 200)
    elsewhere = _issued(world, "nganson", 5)

    body = api.get(
        "/api/v1/certificates/expiring", params={"days": 60}, headers=world.headers("officer")
    ).json()
    units = {u["unit"]: u for u in body["units"]}
    serials = {c["serial"] for u in body["units"] for c in u["certificates"]}
    assert {soon, later} <= serials and far not in serials and elsewhere not in serials
    chu = units[world.unit("chuhuong").public_id]
    assert (chu["within_30"], chu["within_60"]) == (1, 1)
    assert chu["certificates"][0]["days_left"] == 10
    assert chu["certificates"][0]["holder"] == "Hoàng Thị Mai"

    body = api.get(
        "/api/v1/certificates/expiring", params={"days": 30}, headers=world.headers("admin1")
    ).json()
    serials = {c["serial"] for u in body["units"] for c in u["certificates"]}
    assert {soon, elsewhere} <= serials and later not in serials
