"""The signing page with a USB token: the page's session (with its CSRF token) prepares an
upload of the hour-long area, the agent signs, kyso keeps the result where the page's own
signatures go — or sends it back to the colleague who asked for the signature."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from fixtures.pdf import samples
from sqlalchemy import select
from support.world import World
from ui.conftest import Web

from kyso.signing import queue
from kyso.store.models import AuditEntry, SignatureRequest, SignatureState
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Page, TokenHolder, token_holder

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def holder(world: World, hsm_tokens) -> TokenHolder:  # type: ignore[no-untyped-def]
    return token_holder(world, hsm_tokens, full_name="Triệu Văn Páo")


def visitor(kyso: TestClient, world: World, holder: TokenHolder) -> Web:
    return Web(TestClient(kyso.app, raise_server_exceptions=False), world).login(holder.user)


def upload(web: Web) -> str:
    sent = web.post(
        "/sign", files={"file": ("cong-van-8.pdf", samples.official_document(), "application/pdf")}
    )
    assert sent.status_code == 303, sent.text
    return sent.headers["location"].rsplit("/", 1)[-1]


def sign_through_agent(web: Web, page: Page, holder: TokenHolder, upload_id: str) -> str:
    prepared = web.client.post(
        "/api/v1/agent/prepare",
        data={
            "upload": upload_id,
            "certificate": base64.b64encode(holder.der).decode(),
            "level": "B-T",
            "kind": "attachment",
            "place": "corner",
            "number": "8/CV-UBND",
        },
        headers={"x-csrf-token": web.csrf()},
    )
    assert prepared.status_code == 200, prepared.text
    body = prepared.json()
    assert body["summary"] == "cong-van-8.pdf"
    signed = page.sign(base64.b64decode(body["digest"]), body["serial"], body["summary"])
    assert signed.status_code == 200, signed.text
    done = web.client.post(
        "/api/v1/agent/finish",
        json={"id": body["id"], "signature": signed.json()["signature"]},
        headers={"x-csrf-token": web.csrf()},
    )
    assert done.status_code == 200, done.text
    return str(done.json()["next"])


def entry_of(world: World, serial: str) -> list[str]:
    with world.ctx.db.read() as session:
        rows = session.scalars(
            select(AuditEntry.details).where(
                AuditEntry.action == "document.signed", AuditEntry.target == serial
            )
        )
        return [json.loads(r)["entry"] for r in rows]


def test_the_signing_page_offers_the_usb_token_and_keeps_the_result(
    world: World, kyso: TestClient, page: Page, holder: TokenHolder
) -> None:
    web = visitor(kyso, world, holder)
    upload_id = upload(web)
    shown = web.get(f"/sign/{upload_id}")
    assert shown.status_code == 200
    assert 'id="agent-sign"' in shown.text and "/static/agent.js" in shown.text
    assert "Thiết bị ký số USB (bộ ký kyso)" in shown.text
    assert kyso.get("/static/agent.js").status_code == 200
    # only this page may reach the agent on the user's computer; other pages may not
    assert "connect-src 'self' http://127.0.0.1:*;" in shown.headers["content-security-policy"]
    for other in ("/", "/sign", "/verify", "/sign/requests"):
        policy = web.get(other).headers["content-security-policy"]
        assert "connect-src 'self';" in policy and "127.0.0.1" not in policy, other

    following = sign_through_agent(web, page, holder, upload_id)
    assert following == f"/sign/{upload_id}/done"
    done = web.get(following)
    assert done.status_code == 200 and "Triệu Văn Páo" in done.text
    signed = web.get(f"/sign/{upload_id}/signed.pdf")
    assert signed.headers["content-type"] == "application/pdf"
    report = verify(signed.content, trust_context(world.ctx), name="cong-van-8.pdf")
    assert report.to_dict()["indication"] == "TOTAL-PASSED", report.signatures[0].message_en
    assert entry_of(world, holder.serial)[-1] == "page"


def test_the_page_api_needs_the_pages_csrf_token(
    world: World, kyso: TestClient, holder: TokenHolder
) -> None:
    web = visitor(kyso, world, holder)
    upload_id = upload(web)
    data = {"upload": upload_id, "certificate": base64.b64encode(holder.der).decode()}
    assert web.client.post("/api/v1/agent/prepare", data=data).status_code == 403
    forged = web.client.post(
        "/api/v1/agent/prepare",
        data=data,
        headers={"x-csrf-token": web.csrf(), "origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    anonymous = TestClient(kyso.app, raise_server_exceptions=False)
    assert anonymous.post("/api/v1/agent/prepare", data=data).status_code == 401


def test_a_document_sent_for_signature_goes_back_signed_by_the_token(
    world: World, kyso: TestClient, page: Page, holder: TokenHolder
) -> None:
    with world.ctx.db.session() as session:
        asked = queue.ask(
            world.who("officer"),
            session,
            signer=holder.user.public_id,
            title="Công văn 8/CV-UBND",
            filename="cong-van-8.pdf",
            document=samples.official_document(),
        )
        public_id = asked.public_id
    web = visitor(kyso, world, holder)
    opened = web.post(f"/sign/requests/{public_id}/open")
    assert opened.status_code == 303
    upload_id = opened.headers["location"].rsplit("/", 1)[-1]
    following = sign_through_agent(web, page, holder, upload_id)
    assert following == f"/sign/requests/{public_id}"
    with world.ctx.db.read() as session:
        item = session.scalars(
            select(SignatureRequest).where(SignatureRequest.public_id == public_id)
        ).one()
        assert item.state is SignatureState.SIGNED
        assert item.signed_document is not None
        signed = bytes(item.signed_document)
    report = verify(signed, trust_context(world.ctx), name="cong-van-8.pdf")
    assert report.to_dict()["indication"] == "TOTAL-PASSED"
    assert entry_of(world, holder.serial)[-1] == "queue"
