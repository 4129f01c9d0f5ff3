"""Suspension, restore and revocation: the allowed moves, and the record each one leaves."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from kyso.context import Context
from kyso.errors import InvalidInput, InvalidTransition, NotFound
from kyso.pki import issuance, status
from kyso.pki.names import parse_subject
from kyso.store.models import (
    AuditEntry,
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    RevocationReason,
)

SUBJECT = "CN=Lò Văn Páo,OU=Phòng Nội vụ,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"


def issue(ctx: Context) -> str:
    spec = issuance.IssueSpec(
        issuance.Profile.INDIVIDUAL,
        parse_subject(SUBJECT),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with ctx.db.session() as session:
        return issuance.issue(session, ctx.authority, spec, "ra:issuer").serial


def state(ctx: Context, serial: str) -> Certificate:
    with ctx.db.read() as session:
        return session.execute(select(Certificate).where(Certificate.serial == serial)).scalar_one()


def events(ctx: Context, serial: str) -> list[CertificateEvent]:
    with ctx.db.read() as session:
        return list(
            session.execute(
                select(CertificateEvent)
                .join(Certificate)
                .where(Certificate.serial == serial)
                .order_by(CertificateEvent.id)
            ).scalars()
        )


def audit(ctx: Context, serial: str) -> list[AuditEntry]:
    with ctx.db.read() as session:
        return list(
            session.execute(
                select(AuditEntry).where(AuditEntry.target == serial).order_by(AuditEntry.seq)
            ).scalars()
        )


def suspend(
    ctx: Context, serial: str, actor: str = "ra:officer", note: str | None = None
) -> Certificate:
    with ctx.db.session() as session:
        return status.suspend(session, ctx.authority, serial, actor, note)


def restore(
    ctx: Context, serial: str, actor: str = "ra:officer", note: str | None = None
) -> Certificate:
    with ctx.db.session() as session:
        return status.restore(session, ctx.authority, serial, actor, note)


def revoke(
    ctx: Context,
    serial: str,
    reason: RevocationReason,
    actor: str = "ra:officer",
    note: str | None = None,
) -> Certificate:
    with ctx.db.session() as session:
        return status.revoke(session, ctx.authority, serial, reason, actor, note)


def test_good_suspended_good_revoked_with_a_full_history(ctx: Context) -> None:
    serial = issue(ctx)
    assert state(ctx, serial).status is CertStatus.GOOD

    suspend(ctx, serial, "ra:nguyen", "mất thiết bị, đang tìm")
    held = state(ctx, serial)
    assert held.status is CertStatus.SUSPENDED
    assert held.reason is RevocationReason.CERTIFICATE_HOLD
    assert held.revoked_at is not None

    restore(ctx, serial, "ra:tran", "đã tìm thấy thiết bị")
    back = state(ctx, serial)
    assert back.status is CertStatus.GOOD
    assert back.reason is None and back.revoked_at is None

    revoke(ctx, serial, RevocationReason.AFFILIATION_CHANGED, "ra:le", "chuyển công tác")
    gone = state(ctx, serial)
    assert gone.status is CertStatus.REVOKED
    assert gone.reason is RevocationReason.AFFILIATION_CHANGED
    assert gone.revoked_at is not None
    assert gone.status_changed_at == gone.revoked_at

    history = [(e.kind, e.reason, e.actor, e.note) for e in events(ctx, serial)]
    assert history == [
        (CertEventKind.ISSUED, None, "ra:issuer", None),
        (
            CertEventKind.SUSPENDED,
            RevocationReason.CERTIFICATE_HOLD,
            "ra:nguyen",
            "mất thiết bị, đang tìm",
        ),
        (CertEventKind.RESTORED, None, "ra:tran", "đã tìm thấy thiết bị"),
        (CertEventKind.REVOKED, RevocationReason.AFFILIATION_CHANGED, "ra:le", "chuyển công tác"),
    ]

    trail = [(a.action, a.actor, json.loads(a.details)) for a in audit(ctx, serial)]
    assert [(action, actor) for action, actor, _ in trail] == [
        ("certificate.issued", "ra:issuer"),
        ("certificate.suspended", "ra:nguyen"),
        ("certificate.restored", "ra:tran"),
        ("certificate.revoked", "ra:le"),
    ]
    assert trail[1][2] == {"reason": "certificate-hold", "note": "mất thiết bị, đang tìm"}
    assert trail[2][2] == {"reason": None, "note": "đã tìm thấy thiết bị"}
    assert trail[3][2] == {"reason": "affiliation-changed", "note": "chuyển công tác"}


def test_a_suspended_certificate_can_be_revoked(ctx: Context) -> None:
    serial = issue(ctx)
    suspend(ctx, serial)
    revoke(ctx, serial, RevocationReason.KEY_COMPROMISE)
    cert = state(ctx, serial)
    assert cert.status is CertStatus.REVOKED
    assert cert.reason is RevocationReason.KEY_COMPROMISE


@pytest.mark.parametrize("move", ["suspend", "restore", "revoke"])
def test_revocation_is_final(ctx: Context, move: str) -> None:
    serial = issue(ctx)
    revoke(ctx, serial, RevocationReason.CESSATION_OF_OPERATION)
    before = (len(events(ctx, serial)), len(audit(ctx, serial)))
    with pytest.raises(InvalidTransition):
        if move == "suspend":
            suspend(ctx, serial)
        elif move == "restore":
            restore(ctx, serial)
        else:
            revoke(ctx, serial, RevocationReason.KEY_COMPROMISE)
    cert = state(ctx, serial)
    assert cert.status is CertStatus.REVOKED
    assert cert.reason is RevocationReason.CESSATION_OF_OPERATION
    assert (len(events(ctx, serial)), len(audit(ctx, serial))) == before


def test_restoring_a_good_certificate_is_an_invalid_transition(ctx: Context) -> None:
    serial = issue(ctx)
    with pytest.raises(InvalidTransition):
        restore(ctx, serial)
    assert state(ctx, serial).status is CertStatus.GOOD
    assert [e.kind for e in events(ctx, serial)] == [CertEventKind.ISSUED]


def test_suspending_a_suspended_certificate_is_an_invalid_transition(ctx: Context) -> None:
    serial = issue(ctx)
    suspend(ctx, serial)
    with pytest.raises(InvalidTransition):
        suspend(ctx, serial)
    assert [e.kind for e in events(ctx, serial)] == [CertEventKind.ISSUED, CertEventKind.SUSPENDED]


@pytest.mark.parametrize(
    "reason", [RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL], ids=str
)
def test_hold_and_remove_from_crl_are_not_revocation_reasons(
    ctx: Context, reason: RevocationReason
) -> None:
    serial = issue(ctx)
    with pytest.raises(InvalidInput):
        revoke(ctx, serial, reason)
    assert state(ctx, serial).status is CertStatus.GOOD
    assert len(audit(ctx, serial)) == 1


@pytest.mark.parametrize("move", ["suspend", "restore", "revoke"])
@pytest.mark.parametrize("serial", ["1234abcd" * 4, "not-a-serial", "", "0x", "12" * 21])
def test_unknown_serial_is_not_found(ctx: Context, move: str, serial: str) -> None:
    with ctx.db.read() as session:
        before = session.execute(select(func.count()).select_from(CertificateEvent)).scalar_one()
    with pytest.raises(NotFound):
        if move == "suspend":
            suspend(ctx, serial)
        elif move == "restore":
            restore(ctx, serial)
        else:
            revoke(ctx, serial, RevocationReason.UNSPECIFIED)
    with ctx.db.read() as session:
        after = session.execute(select(func.count()).select_from(CertificateEvent)).scalar_one()
    assert after == before


def _colons(hex_serial: str) -> str:
    padded = hex_serial if len(hex_serial) % 2 == 0 else "0" + hex_serial
    return ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda s: "0x" + s, id="0x-prefix"),
        pytest.param(lambda s: "0X" + s.upper(), id="0X-upper"),
        pytest.param(str.upper, id="upper"),
        pytest.param(lambda s: _colons(s).upper(), id="colons-upper"),
        pytest.param(lambda s: _colons(s), id="colons"),
        pytest.param(lambda s: f"  00{s}\n", id="leading-zeros-and-spaces"),
    ],
)
def test_serial_is_accepted_in_the_forms_people_paste(ctx: Context, form: object) -> None:
    serial = issue(ctx)
    typed = form(serial)  # type: ignore[operator]
    assert typed != serial
    suspend(ctx, typed)
    assert state(ctx, serial).status is CertStatus.SUSPENDED
    restore(ctx, typed)
    assert state(ctx, serial).status is CertStatus.GOOD
    revoke(ctx, typed, RevocationReason.SUPERSEDED)
    assert state(ctx, serial).status is CertStatus.REVOKED
