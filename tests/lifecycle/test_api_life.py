"""A certificate's whole life through the REST API, with the CA's OCSP responder asked at
every step: request → approve → issue → hand over → change of information → revoke."""

from __future__ import annotations

import secrets

from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy import select

from kyso.registry import devices
from kyso.registry.access import cli_principal
from kyso.store.models import (
    AuditEntry,
    DeviceHandover,
    DeviceStatus,
    KeyDevice,
    Notification,
    Person,
)

from .conftest import World, individual_form, make_csr, ocsp_status

GOOD, REVOKED = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED


def _device(world: World) -> KeyDevice:
    with world.ctx.db.session() as session:
        return devices.add(
            cli_principal("cli:test"),
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(5).upper()}",
                model="Bkav CA Token",
                unit=world.unit("babe").public_id,
            ),
        )


def test_a_certificate_lives_through_the_api_with_ocsp_answering_at_each_step(
    world: World, api
) -> None:
    ctx = world.ctx
    officer, admin = world.headers("officer"), world.headers("admin1")
    token = _device(world)
    form = individual_form("Phòng Tài nguyên và Môi trường")

    # 1. the unit officer drafts form 01 (the key is made on the token; a CSR from it)
    created = api.post(
        "/api/v1/requests",
        headers=officer,
        json={
            "type": "new_individual",
            "form": form,
            "subject_unit": world.unit("tnmt").public_id,
            "csr": make_csr(),
            "device": token.public_id,
        },
    )
    assert created.status_code == 201, created.text
    request = created.json()
    rid = request["id"]
    assert request["state"] == "draft" and request["key_source"] == "csr"
    assert request["subscriber"] == "Hoàng Thị Mai"

    # 2. submitted: the province's administrators are told
    submitted = api.post(f"/api/v1/requests/{rid}/submit", headers=officer)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["state"] == "submitted"
    with ctx.db.read() as session:
        told = set(
            session.execute(
                select(Notification.to_address).where(
                    Notification.kind == "request.submitted", Notification.body.contains(rid)
                )
            ).scalars()
        )
    assert {world.users["admin1"].email, world.users["admin2"].email} <= told

    # 3. approved → issued in the same step (a CSR needs no token PIN)
    approved = api.post(f"/api/v1/requests/{rid}/approve", headers=admin, json={"note": "đủ hồ sơ"})
    assert approved.status_code == 200, approved.text
    detail = approved.json()
    assert detail["state"] == "issued"
    assert [a["user"] for a in detail["approvals"]] == [world.users["admin1"].username]
    first_pem, first_serial = detail["certificate_pem"], detail["certificate"]
    cert = x509.load_pem_x509_certificate(first_pem.encode())
    assert cert.subject.rfc4514_string({x509.NameOID.USER_ID: "UID"}) == (
        f"UID=CCCD:{form['id_number']},CN=Hoàng Thị Mai,OU=Phòng Tài nguyên và Môi trường,"
        "O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"
    )
    assert ocsp_status(ctx, first_pem) == (GOOD, None)
    assert [(e["from_state"], e["to_state"]) for e in detail["events"]] == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "approved"),
        ("approved", "issued"),
    ]
    assert all(e["actor"].startswith("api:") and e["at"] for e in detail["events"])

    # 4. handed over with the token: minutes recorded, the person holds the device
    handed = api.post(
        f"/api/v1/requests/{rid}/handover", headers=officer, json={"note": "bàn giao tại Sở TTTT"}
    )
    assert handed.status_code == 200, handed.text
    assert handed.json()["state"] == "handed_over"
    with ctx.db.read() as session:
        person = session.execute(
            select(Person).where(Person.id_number == form["id_number"])
        ).scalar_one()
        device = session.get(KeyDevice, token.id)
        minutes = (
            session.execute(select(DeviceHandover).where(DeviceHandover.device_id == token.id))
            .scalars()
            .all()
        )
    assert device is not None and device.status is DeviceStatus.ISSUED
    assert device.holder_person_id == person.id
    assert [m.to_person_id for m in minutes] == [person.id]
    assert ocsp_status(ctx, first_pem) == (GOOD, None)

    # 5. change of information (form 04): a new certificate; the old one stays good until the
    #    new one is handed over
    changed_info = {**form, "position": "Chủ tịch UBND huyện", "organization": "UBND huyện Ba Bể"}
    change = api.post(
        "/api/v1/requests",
        headers=officer,
        json={
            "type": "renewal_change",
            "submit": True,
            "subject_unit": world.unit("babe").public_id,
            "csr": make_csr(),
            "form": {
                "kind": "change",
                "certificate_serial": first_serial,
                "reason": "được bầu Chủ tịch",
                "individual": changed_info,
            },
        },
    )
    assert change.status_code == 201, change.text
    cid = change.json()["id"]
    assert change.json()["state"] == "submitted"
    assert change.json()["target_certificate"] == first_serial
    # the change moves the person from the department to the district: seen and confirmed
    moves = api.get(f"/api/v1/requests/{cid}/subscriber-changes", headers=admin).json()
    assert moves["changes"][0]["field"] == "organization"
    unconfirmed = api.post(f"/api/v1/requests/{cid}/approve", headers=admin)
    assert unconfirmed.status_code == 409
    issued = api.post(
        f"/api/v1/requests/{cid}/approve", headers=admin, json={"confirm_subscriber_changes": True}
    ).json()
    assert issued["state"] == "issued"
    second_pem = issued["certificate_pem"]
    second = x509.load_pem_x509_certificate(second_pem.encode())
    assert second.subject.rfc4514_string({x509.NameOID.USER_ID: "UID"}) == (
        f"UID=CCCD:{form['id_number']},CN=Hoàng Thị Mai,OU=UBND huyện Ba Bể,"
        "O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN"
    )
    assert ocsp_status(ctx, second_pem) == (GOOD, None)
    assert ocsp_status(ctx, first_pem) == (GOOD, None)

    handed = api.post(f"/api/v1/requests/{cid}/handover", headers=officer)
    assert handed.status_code == 200, handed.text
    assert ocsp_status(ctx, first_pem) == (REVOKED, x509.ReasonFlags.superseded)
    assert ocsp_status(ctx, second_pem) == (GOOD, None)
    with ctx.db.read() as session:
        person = session.get(Person, person.id)
    assert person is not None and person.position == "Chủ tịch UBND huyện"

    # 6. revocation (form 05): on approval, revoked with the reason given
    revocation = api.post(
        "/api/v1/requests",
        headers=officer,
        json={
            "type": "revocation",
            "submit": True,
            "form": {
                "certificate_serial": issued["certificate"],
                "reason": "affiliation-changed",
                "explanation": "nghỉ hưu từ 01/07",
            },
        },
    )
    assert revocation.status_code == 201, revocation.text
    done = api.post(f"/api/v1/requests/{revocation.json()['id']}/approve", headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "issued"
    assert ocsp_status(ctx, second_pem) == (REVOKED, x509.ReasonFlags.affiliation_changed)

    # a revocation has nothing to hand over
    refused = api.post(f"/api/v1/requests/{revocation.json()['id']}/handover", headers=officer)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"

    # every step is in the audit log, under the person who took it
    with ctx.db.read() as session:
        actions = list(
            session.execute(
                select(AuditEntry.action, AuditEntry.actor)
                .where(AuditEntry.target == rid)
                .order_by(AuditEntry.seq)
            ).all()
        )
    assert [a for a, _ in actions] == [
        "request.draft",
        "request.submitted",
        "request.approved",
        "request.issued",
        "request.handed_over",
    ]
    assert actions[2][1] == f"api:admin1-{world.tag}"

    # the list shows them, filtered
    listed = api.get(
        "/api/v1/requests", headers=officer, params={"state": "handed_over", "q": form["id_number"]}
    )
    assert listed.status_code == 200
    assert {r["id"] for r in listed.json()["items"]} == {rid, cid}
