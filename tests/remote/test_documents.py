"""Signing documents with a central key: the API answers 202 and the request waits on the
signer's phone; once approved (PIN + TOTP through the service, standing in for the phone)
kyso signs exactly the documents listed, and only those still unchanged."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fixtures.pdf import pki, samples
from sqlalchemy import func, select, update
from support.remote import CentralSigner, central_signer
from support.world import World, app_client, make_world

from kyso import clock
from kyso.api import clients
from kyso.remote import approvals, documents, factors
from kyso.signing import queue
from kyso.store.models import (
    ApprovalState,
    AuditEntry,
    SignApproval,
    SignApprovalItem,
    SignatureRequest,
    SignatureState,
)
from kyso.trust import trust_context
from kyso.validation.verify import verify

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def http(central_instance) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(central_instance, apps)
    for client in apps.values():
        client.__exit__(None, None, None)


def token_for(world: World, signer: CentralSigner) -> dict[str, str]:
    with world.ctx.db.session() as session:
        token = clients.create(
            session,
            f"{signer.user.username}-api",
            ["documents:sign"],
            "cli:test",
            user_id=signer.user.id,
        )
    return {"authorization": f"Bearer {token}"}


def approve(world: World, signer: CentralSigner, public_id: str, offset: int = 0) -> None:
    approvals.approve(
        world.ctx,
        signer.principal,
        public_id,
        factors.PinAndCode(signer.pin, signer.code(offset)),
    )


def ask_pdf(
    http: TestClient, headers: dict[str, str], key: str, content: bytes = b"", **extra: Any
) -> dict[str, Any]:
    response = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": key, "level": "B-T", "document_title": "Quyết định 15/QĐ-UBND", **extra},
        files={
            "file": ("quyet-dinh.pdf", content or samples.official_document(), "application/pdf")
        },
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_count(world: World) -> int:
    with world.ctx.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "document.signed")
            )
            or 0
        )


def test_the_api_waits_for_the_phone_then_hands_out_a_pdf_that_verifies(
    world: World, http: TestClient, tmp_path: Path
) -> None:
    signer = central_signer(world)
    headers = token_for(world, signer)
    original = samples.official_document()
    asked = ask_pdf(http, headers, f"hsm:{signer.key_id}", original)
    assert asked["status"] == "waiting"
    assert asked["status_url"].endswith(f"/api/v1/sign/approvals/{asked['id']}")
    status_path = f"/api/v1/sign/approvals/{asked['id']}"

    waiting = http.get(status_path, headers=headers).json()
    assert waiting["status"] == "waiting" and 0 < waiting["seconds_left"] <= 300
    assert waiting["documents"][0]["title"] == "Quyết định 15/QĐ-UBND"
    assert waiting["documents"][0]["sha256"] == hashlib.sha256(original).hexdigest()
    assert waiting["documents"][0]["download"] is None
    with world.ctx.db.read() as session:  # the phone lists it
        listed = approvals.pending(signer.principal, session)
        assert [a.public_id for a in listed] == [asked["id"]]

    approve(world, signer, asked["id"])

    done = http.get(status_path, headers=headers).json()
    assert done["status"] == "done"
    download = http.get(done["documents"][0]["download"].split("testserver")[-1], headers=headers)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    signed = download.content
    assert hashlib.sha256(signed).hexdigest() == done["documents"][0]["signed_sha256"]

    report = verify(signed, trust_context(world.ctx), name="quyet-dinh.pdf")
    assert report.to_dict()["indication"] == "TOTAL-PASSED", report.signatures[0].message_en
    if pki.have_poppler():
        path = tmp_path / "signed.pdf"
        path.write_bytes(signed)
        nss = pki.nss_db(tmp_path / "nss", pki.root_pem(world.ctx))
        results = [r for r in pki.pdfsig(path, nss) if not r.field.startswith("Timestamp")]
        assert [r.signature for r in results] == ["Signature is Valid."]

    # Another user learns nothing of it, not even that it exists.
    other = http.get(status_path, headers=world.headers("officer"))
    assert other.status_code == 404
    assert (
        http.get(f"{status_path}/documents/0", headers=world.headers("officer")).status_code == 404
    )


def test_a_refused_request_says_so_with_the_reason_and_signs_nothing(
    world: World, http: TestClient
) -> None:
    signer = central_signer(world)
    headers = token_for(world, signer)
    before = signed_count(world)
    asked = ask_pdf(http, headers, signer.key_id, store="hsm")
    with world.ctx.db.session() as session:
        approvals.refuse(signer.principal, session, asked["id"], "Sai số văn bản")
    body = http.get(f"/api/v1/sign/approvals/{asked['id']}", headers=headers).json()
    assert body["status"] == "refused" and body["reason"] == "Sai số văn bản"
    assert body["documents"][0]["download"] is None
    assert signed_count(world) == before


def test_an_expired_request_cannot_be_approved_and_signs_nothing(
    world: World, http: TestClient
) -> None:
    signer = central_signer(world)
    headers = token_for(world, signer)
    before = signed_count(world)
    asked = ask_pdf(http, headers, f"hsm:{signer.key_id}")
    later = clock.FakeClock(
        clock.now() + timedelta(seconds=world.ctx.settings.approval_seconds + 1)
    )
    with clock.using(later):
        body = http.get(f"/api/v1/sign/approvals/{asked['id']}", headers=headers).json()
        assert body["status"] == "expired" and body["seconds_left"] == 0
        with pytest.raises(Exception) as late:
            approve(world, signer, asked["id"])
        assert getattr(late.value, "code", "") == "conflict"
    assert signed_count(world) == before


def test_a_document_changed_after_the_consent_is_not_signed_under_it(world: World) -> None:
    ctx = world.ctx
    signer = central_signer(world)
    approval = documents.request_signatures(
        ctx,
        signer.principal,
        signer.key_id,
        [documents.DocumentToSign("Tờ trình", samples.official_document(), filename="to.pdf")],
        "kyso",
    )
    before = signed_count(world)
    other = samples.official_document().replace(b"%%EOF", b"%%EOF\n%tampered", 1)
    with ctx.db.session() as session:  # someone with database access swaps the document
        session.execute(
            update(SignApprovalItem)
            .where(SignApprovalItem.approval_id == approval.id)
            .values(document=other)
        )
    approve(world, signer, approval.public_id)
    with ctx.db.read() as session:
        found = documents.status(signer.principal, session, approval.public_id)
    assert found.state is ApprovalState.FAILED
    assert found.error is not None and found.error["code"] == "document_changed"
    assert "thay đổi" in found.error["vi"]
    assert not any(i.signed for i in found.items)
    assert signed_count(world) == before


def test_one_approval_signs_three_queued_documents_and_returns_each_to_its_sender(
    world: World,
) -> None:
    ctx = world.ctx
    signer = central_signer(world)
    sender = world.who("officer")
    sent = []
    with ctx.db.session() as session:
        for n in range(3):
            made = queue.ask(
                sender,
                session,
                signer=signer.user.public_id,
                title=f"Công văn số {n + 1}",
                filename=f"cv-{n + 1}.pdf",
                document=samples.official_document(),
            )
            sent.append(made.public_id)
    with ctx.db.read() as session:
        batch = documents.from_queue(signer.principal, session, sent, documents.Level.B_B)
    approval = documents.request_signatures(
        ctx, signer.principal, signer.key_id, batch, "kyso – văn bản chờ ký"
    )
    with ctx.db.read() as session:
        listed = approvals.pending(signer.principal, session)[0]
        assert [i.title for i in listed.items] == [
            "Công văn số 1",
            "Công văn số 2",
            "Công văn số 3",
        ]
    approve(world, signer, approval.public_id)
    with ctx.db.read() as session:
        found = documents.status(signer.principal, session, approval.public_id)
        assert found.state is ApprovalState.DONE
        rows = session.scalars(
            select(SignatureRequest).where(SignatureRequest.public_id.in_(sent))
        ).all()
        assert {r.state for r in rows} == {SignatureState.SIGNED}
        for r in rows:
            signed = queue.get(sender, session, r.public_id, with_documents=True).signed_document
            assert signed is not None
            assert verify(signed, trust_context(ctx), name="cv.pdf").passed


def test_a_system_token_asks_for_a_users_central_key_and_the_phone_shows_the_system(
    world: World, http: TestClient, central_instance: Any
) -> None:
    from support.cli import kyso

    signer = central_signer(world)
    made = kyso(  # the operator binds the system to the leader's central key
        central_instance.env,
        "api-client",
        "create",
        f"qlvb-{signer.user.username}",
        "--scope",
        "documents:sign",
        "--key",
        f"hsm:{signer.key_id}",
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    headers = {"authorization": f"Bearer {token}"}
    asked = ask_pdf(http, headers, f"hsm:{signer.key_id}")
    with world.ctx.db.read() as session:
        listed = approvals.pending(signer.principal, session)
        assert [a.requester_name for a in listed] == [f"qlvb-{signer.user.username}"]
    approve(world, signer, asked["id"])
    body = http.get(f"/api/v1/sign/approvals/{asked['id']}", headers=headers).json()
    assert body["status"] == "done"

    # A key the system was not given is refused, whoever holds it.
    someone = central_signer(world, full_name="Phạm Thị Khác")
    refused = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": f"hsm:{someone.key_id}"},
        files={"file": ("a.pdf", samples.official_document(), "application/pdf")},
    )
    assert refused.status_code == 403


def test_xml_and_cms_wait_for_the_phone_too(world: World, http: TestClient) -> None:
    signer = central_signer(world)
    headers = token_for(world, signer)
    xml = b"<?xml version='1.0' encoding='UTF-8'?><vanban><so>15</so></vanban>"
    ids = []
    for path, name, content in (("xml", "vb.xml", xml), ("cms", "vb.txt", b"van ban")):
        response = http.post(
            f"/api/v1/sign/{path}",
            headers=headers,
            data={"key_id": f"hsm:{signer.key_id}"},
            files={"file": (name, content, "application/octet-stream")},
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for n, public_id in enumerate(ids):
        approve(world, signer, public_id, offset=n)
    xml_signed = http.get(f"/api/v1/sign/approvals/{ids[0]}/documents/0", headers=headers)
    assert xml_signed.status_code == 200 and b"SignatureValue" in xml_signed.content
    assert verify(xml_signed.content, trust_context(world.ctx), name="vb.xml").passed
    p7s = http.get(f"/api/v1/sign/approvals/{ids[1]}/documents/0", headers=headers)
    assert p7s.status_code == 200
    assert p7s.headers["content-type"] == "application/pkcs7-signature"
    report = verify(
        p7s.content, trust_context(world.ctx), name="vb.txt.p7s", detached_data=b"van ban"
    )
    assert report.passed


def test_signing_options_survive_their_json_form() -> None:
    from fixtures.pdf import images

    from kyso.signing.placement import Placement
    from kyso.signing.stamps import Appearance, StampKind

    look = Appearance(
        kind=StampKind.ISSUING,
        placement=Placement.at(1, (10.0, 20.0, 180.0, 120.0)),
        number="15/QĐ-UBND",
        date=clock.now().date(),
        seal_image=images.seal_png(),
    )
    document = documents.DocumentToSign(
        "x", b"%PDF", level=documents.Level.B_T, appearance=look, entry="page"
    )
    back = documents.read_options(documents.options_json(document))
    assert back.level is documents.Level.B_T and back.entry == "page"
    assert back.appearance == look
    assert base64.b64encode(back.appearance.seal_image or b"") == base64.b64encode(
        images.seal_png()
    )


def test_only_a_system_client_gives_a_callback_and_never_to_a_local_address(
    world: World,
) -> None:
    from kyso.errors import InvalidInput
    from kyso.remote import webhooks

    signer = central_signer(world)
    doc = documents.DocumentToSign("a", samples.official_document())
    with pytest.raises(InvalidInput):  # a person on a page has no webhook
        documents.request_signatures(
            world.ctx, signer.principal, signer.key_id, [doc], "kyso", "https://example.org/h"
        )
    for url in (
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "file:///etc/passwd",
        "ftp://example.org/",
    ):
        with pytest.raises(webhooks.CallbackRefused):
            webhooks.check_url(world.ctx.settings, url)


def _approval_row(world: World, public_id: str) -> SignApproval:
    with world.ctx.db.read() as session:
        return session.execute(
            select(SignApproval).where(SignApproval.public_id == public_id)
        ).scalar_one()


def test_an_approval_whose_signing_process_stopped_is_closed_as_failed(world: World) -> None:
    """The consent was committed, then the process died before signing: after ten minutes
    the server's sweep closes it, so the page and the system stop waiting; a fresh one is
    left alone."""
    ctx = world.ctx
    signer = central_signer(world)

    def approved(minutes_ago: int) -> str:
        approval = documents.request_signatures(
            ctx,
            signer.principal,
            signer.key_id,
            [documents.DocumentToSign("Tờ trình", samples.official_document(), filename="t.pdf")],
            "kyso",
        )
        with ctx.db.session() as session:  # what approvals.approve commits before signing
            session.execute(
                update(SignApproval)
                .where(SignApproval.id == approval.id)
                .values(
                    state=ApprovalState.APPROVED,
                    decided_at=clock.now() - timedelta(minutes=minutes_ago),
                )
            )
        return approval.public_id

    stuck, busy = approved(11), approved(1)
    assert documents.fail_interrupted(ctx) >= 1
    with ctx.db.read() as session:
        found = documents.status(signer.principal, session, stuck)
        assert found.state is ApprovalState.FAILED
        assert found.error is not None and found.error["code"] == "signing_interrupted"
        assert "gián đoạn" in found.error["vi"]
        assert documents.status(signer.principal, session, busy).state is ApprovalState.APPROVED
        audited = session.scalars(select(AuditEntry.action).where(AuditEntry.target == stuck)).all()
    assert audited.count("signature.approval_failed") == 1
    documents.fail_interrupted(ctx)  # a second sweep finds it closed already
    with ctx.db.read() as session:
        again = session.scalars(select(AuditEntry.action).where(AuditEntry.target == stuck)).all()
    assert again.count("signature.approval_failed") == 1
