"""A lost token: one action revokes everything on it (keyCompromise, visible in OCSP) and
opens the re-issue drafts, in one transaction."""

from __future__ import annotations

import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import func, select

from kyso.errors import Conflict
from kyso.lifecycle import lost, workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.registry import devices
from kyso.registry.access import cli_principal
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    CertStatus,
    CompromisedKey,
    DeviceStatus,
    KeyDevice,
    RequestState,
    RequestType,
    RevocationReason,
)

from .conftest import World, individual_form, make_csr, ocsp_status


def _token_with_certificates(world: World, count: int) -> tuple[KeyDevice, list[str]]:
    with world.ctx.db.session() as session:
        device = devices.add(
            cli_principal("t"),
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(4)}",
                model="ePass2003",
                unit=world.unit("babe").public_id,
            ),
        )
    pems = []
    for n in range(count):
        with world.ctx.db.session() as session:
            request = workflow.create(
                world.who("officer"),
                session,
                world.ctx.settings,
                NewRequest(
                    RequestType.NEW_INDIVIDUAL,
                    individual_form(full_name=f"Ma Văn Tín {n}"),
                    csr=make_csr(),
                    device=device.public_id,
                ),
            )
            workflow.submit(world.who("officer"), session, world.ctx.settings, request.public_id)
            workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)
            workflow.hand_over(
                world.who("officer"), session, world.ctx.authority, request.public_id
            )
            cert = session.get(Certificate, request.certificate_id)
            pems.append(
                x509.load_der_x509_certificate(cert.der).public_bytes(Encoding.PEM).decode()
            )
    return device, pems


def test_reporting_a_token_lost_revokes_all_its_certificates_and_opens_reissue_drafts(
    world: World, api
) -> None:
    device, pems = _token_with_certificates(world, 2)
    assert [ocsp_status(world.ctx, p)[0] for p in pems] == [ocsp.OCSPCertStatus.GOOD] * 2

    response = api.post(
        f"/api/v1/devices/{device.public_id}/lost",
        headers=world.headers("officer"),
        json={"note": "mất trên xe khách"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert len(report["revoked"]) == 2 and len(report["drafts"]) == 2
    for pem in pems:
        assert ocsp_status(world.ctx, pem) == (
            ocsp.OCSPCertStatus.REVOKED,
            x509.ReasonFlags.key_compromise,
        )
    with world.ctx.db.read() as session:
        assert session.get(KeyDevice, device.id).status is DeviceStatus.LOST
        certs = list(
            session.execute(select(Certificate).where(Certificate.device_id == device.id)).scalars()
        )
        assert {(c.status, c.reason) for c in certs} == {
            (CertStatus.REVOKED, RevocationReason.KEY_COMPROMISE)
        }
        barred = session.scalar(
            select(func.count())
            .select_from(CompromisedKey)
            .where(CompromisedKey.spki_sha256.in_([c.spki_sha256 for c in certs]))
        )
        assert barred == 2
        drafts = list(
            session.execute(
                select(CertificateRequest).where(CertificateRequest.public_id.in_(report["drafts"]))
            ).scalars()
        )
    assert {d.state for d in drafts} == {RequestState.DRAFT}
    assert {d.type for d in drafts} == {RequestType.NEW_INDIVIDUAL}
    assert {workflow.envelope(d).fields["old_certificate"] for d in drafts} == {
        c.serial for c in certs
    }
    assert {d.person_id for d in drafts} == {c.person_id for c in certs}

    # the officer names a new token and submits the draft as it is
    with world.ctx.db.session() as session:
        new = devices.add(
            cli_principal("t"),
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(4)}",
                model="ePass2003",
                unit=world.unit("babe").public_id,
            ),
        )
        workflow.edit(
            world.who("officer"),
            session,
            drafts[0].public_id,
            workflow.DraftChanges(device=new.public_id),
        )
        workflow.submit(world.who("officer"), session, world.ctx.settings, drafts[0].public_id)

    again = api.post(f"/api/v1/devices/{device.public_id}/lost", headers=world.headers("officer"))
    assert again.status_code == 409


def test_a_lost_report_that_fails_leaves_the_device_and_its_certificates_as_they_were(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    device, pems = _token_with_certificates(world, 2)

    def broken(*args: object, **kwargs: object) -> None:
        raise Conflict("injected")

    monkeypatch.setattr(lost, "_reissue_draft", broken)
    with pytest.raises(Conflict), world.ctx.db.session() as session:
        lost.report_lost(world.who("officer"), session, world.ctx.authority, device.public_id)
    with world.ctx.db.read() as session:
        assert session.get(KeyDevice, device.id).status is DeviceStatus.ISSUED
    assert [ocsp_status(world.ctx, p)[0] for p in pems] == [ocsp.OCSPCertStatus.GOOD] * 2
