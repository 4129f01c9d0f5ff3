"""Deferred signing end to end: kyso prepares, the token signs through the agent, kyso checks
and embeds — on SQLite and PostgreSQL, with the agent as a subprocess and SoftHSM2 as the
USB token."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fixtures.pdf import pki, samples
from sqlalchemy import select

from kyso import clock
from kyso.store.models import AuditEntry
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Page, TokenHolder, token_holder

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def holder(world, hsm_tokens) -> TokenHolder:  # type: ignore[no-untyped-def]
    return token_holder(world, hsm_tokens)


@pytest.fixture(scope="module")
def colleague(world, hsm_tokens) -> TokenHolder:  # type: ignore[no-untyped-def]
    return token_holder(world, hsm_tokens, full_name="Lương Thị Hoa")


def prepare(
    kyso: TestClient, who: TokenHolder, *, der: bytes | None = None, level: str = "B-T",
    document: bytes | None = None, **form: str,
) -> Any:  # fmt: skip
    return kyso.post(
        "/api/v1/agent/prepare",
        headers=who.headers,
        data={"certificate": base64.b64encode(der or who.der).decode(), "level": level, **form},
        files={
            "file": (
                "quyet-dinh-15.pdf",
                document or samples.official_document(),
                "application/pdf",
            )
        },
    )


def finish(kyso: TestClient, who: TokenHolder, prepared_id: str, signature: bytes) -> Any:
    return kyso.post(
        "/api/v1/agent/finish",
        headers=who.headers,
        json={"id": prepared_id, "signature": base64.b64encode(signature).decode()},
    )


def token_sign(page: Page, prepared: dict[str, Any], serial: str | None = None) -> bytes:
    assert prepared["hash"] == "sha256"
    answer = page.sign(
        base64.b64decode(prepared["digest"]), serial or prepared["serial"], prepared["summary"]
    )
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()["signature"])


def audit_entries(world, serial: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with world.ctx.db.read() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "document.signed", AuditEntry.target == serial
                )
            )
        )


def test_a_pdf_signed_with_the_usb_token_verifies_in_kyso_and_pdfsig(
    world, kyso: TestClient, page: Page, holder: TokenHolder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    original = samples.official_document()
    prepared = prepare(
        kyso, holder, document=original, kind="attachment", place="corner", number="15/QĐ-UBND"
    )
    assert prepared.status_code == 200, prepared.text
    body = prepared.json()
    assert body["serial"] == holder.serial and body["summary"] == "quyet-dinh-15.pdf"
    assert len(base64.b64decode(body["digest"])) == 32

    signature = token_sign(page, body)
    done = finish(kyso, holder, body["id"], signature)
    assert done.status_code == 200, done.text
    assert done.headers["content-type"] == "application/pdf"
    signed = done.content
    assert signed.startswith(original)  # an incremental update: the original bytes unchanged

    report = verify(signed, trust_context(world.ctx), name="quyet-dinh-15.pdf")
    assert report.to_dict()["indication"] == "TOTAL-PASSED", report.signatures[0].message_en
    first = report.signatures[0]
    assert first.format == "PAdES-B-T" and first.timestamp_trusted is True
    assert first.signer is not None and "Nông Văn Dền" in first.signer.subject
    if pki.have_poppler():
        path = tmp_path / "signed.pdf"
        path.write_bytes(signed)
        nss = pki.nss_db(tmp_path / "nss", pki.root_pem(world.ctx))
        results = [r for r in pki.pdfsig(path, nss) if not r.field.startswith("Timestamp")]
        assert [r.signature for r in results] == ["Signature is Valid."]

    entries = audit_entries(world, holder.serial)
    assert len(entries) == 1
    details = json.loads(entries[0].details)
    assert details["entry"] == "api" and details["kind"] == "pdf" and details["level"] == "B-T"
    assert details["key"].startswith("token:usb-token-1:")
    assert details["sha256"] == hashlib.sha256(original).hexdigest()
    assert details["signed_sha256"] == hashlib.sha256(signed).hexdigest()
    assert entries[0].actor == f"api:{holder.user.username}"  # the token, named as its user

    # the prepared signature is single use
    again = finish(kyso, holder, body["id"], signature)
    assert again.status_code == 410
    assert again.json()["code"] == "prepared_signature_gone"


def test_a_certificate_of_another_user_is_refused_at_prepare(
    kyso: TestClient, holder: TokenHolder, colleague: TokenHolder
) -> None:
    refused = prepare(kyso, holder, der=colleague.der)
    assert refused.status_code == 403
    assert refused.json()["code"] == "token_certificate_not_yours"
    # nor any certificate kyso did not issue to a person: the CA's own
    ca = kyso.get("/ca/chain.pem")
    if ca.status_code == 200:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        root = x509.load_pem_x509_certificates(ca.content)[-1].public_bytes(Encoding.DER)
        assert prepare(kyso, holder, der=root).status_code == 403


def test_a_signature_by_another_users_key_is_refused_by_finish(
    world, kyso: TestClient, page: Page, holder: TokenHolder, colleague: TokenHolder
) -> None:  # type: ignore[no-untyped-def]
    """The page asks the agent to sign with the colleague's key on the same token: the
    signature is real, but not by the certificate the document was prepared for."""
    body = prepare(kyso, holder).json()
    signature = token_sign(page, body, serial=colleague.serial)
    refused = finish(kyso, holder, body["id"], signature)
    assert refused.status_code == 422
    assert refused.json()["code"] == "token_signature_invalid"
    assert audit_entries(world, colleague.serial) == []
    # and the colleague cannot finish what the holder prepared (it is not theirs to see)
    body = prepare(kyso, holder).json()
    assert finish(kyso, colleague, body["id"], token_sign(page, body)).status_code == 410


def test_a_signature_that_does_not_verify_is_refused_and_spends_the_preparation(
    world, kyso: TestClient, page: Page, holder: TokenHolder
) -> None:  # type: ignore[no-untyped-def]
    before = len(audit_entries(world, holder.serial))
    body = prepare(kyso, holder).json()
    good = token_sign(page, body)
    broken = bytes([good[0] ^ 1]) + good[1:]
    refused = finish(kyso, holder, body["id"], broken)
    assert refused.status_code == 422
    assert refused.json()["code"] == "token_signature_invalid"
    assert "không được ký" in refused.json()["message"]
    # single use: even the good signature now finds nothing to finish
    assert finish(kyso, holder, body["id"], good).status_code == 410
    assert len(audit_entries(world, holder.serial)) == before


def test_a_prepared_signature_expires_after_ten_minutes(
    kyso: TestClient, page: Page, holder: TokenHolder, fake_clock: clock.FakeClock
) -> None:
    body = prepare(kyso, holder, level="B-B").json()
    signature = token_sign(page, body)
    fake_clock.advance(601)
    late = finish(kyso, holder, body["id"], signature)
    assert late.status_code == 410
    assert late.json()["code"] == "prepared_signature_gone"


def test_an_unknown_id_and_a_b_lt_request_are_refused_cleanly(
    kyso: TestClient, holder: TokenHolder
) -> None:
    unknown = finish(kyso, holder, secrets.token_urlsafe(16), b"\x00" * 256)
    assert unknown.status_code == 410
    assert finish(kyso, holder, "../../etc", b"\x00").status_code == 410
    assert prepare(kyso, holder, level="B-LT").status_code == 422


def test_a_system_token_cannot_sign_with_a_persons_token(
    world, kyso: TestClient, holder: TokenHolder
) -> None:  # type: ignore[no-untyped-def]
    from kyso.api import clients

    with world.ctx.db.session() as session:
        token = clients.create(session, f"dms-{secrets.token_hex(3)}", ["documents:sign"], "test")
    system = TokenHolder(
        holder.user,
        holder.principal,
        holder.serial,
        holder.der,
        {"authorization": f"Bearer {token}"},
    )
    refused = prepare(kyso, system)
    assert refused.status_code == 403


def test_an_ecdsa_key_on_the_token_signs_too(
    world, kyso: TestClient, page: Page, hsm_tokens
) -> None:  # type: ignore[no-untyped-def]
    """CKM_ECDSA: the agent DER-encodes (r, s) as CMS wants (RFC 5753 §7.2)."""
    from kyso.keys.base import KeyAlgorithm

    holder = token_holder(world, hsm_tokens, full_name="Ma Thị Thu", algorithm=KeyAlgorithm.EC_P256)
    body = prepare(kyso, holder, level="B-B").json()
    done = finish(kyso, holder, body["id"], token_sign(page, body))
    assert done.status_code == 200, done.text
    report = verify(done.content, trust_context(world.ctx), name="quyet-dinh-15.pdf")
    assert report.to_dict()["indication"] == "TOTAL-PASSED", report.signatures[0].message_en


def test_one_user_keeps_at_most_ten_prepared_signatures(
    world, kyso: TestClient, holder: TokenHolder
) -> None:  # type: ignore[no-untyped-def]
    from kyso.signing import deferred

    ids = [prepare(kyso, holder, level="B-B").json()["id"] for _ in range(12)]
    area = world.ctx.settings.home / "uploads" / "agent" / str(holder.user.id)
    kept = {p.name for p in area.iterdir()}
    assert len(kept) == deferred.MAX_PREPARED_PER_USER
    assert ids[0] not in kept and ids[-1] in kept
    assert all((area / i / "state.json").stat().st_mode & 0o777 == 0o600 for i in kept)
