"""The webhook a system asked for: signed with HMAC-SHA256 under its own token's hash, sent
once per event (the same Idempotency-Key on every retry), retried after the receiver was
down, and never sent to a local address unless the setting allows it."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fixtures.pdf import samples
from sqlalchemy import select
from support.remote import central_signer
from support.world import World, app_client, make_world

from kyso import clock
from kyso.api import clients
from kyso.remote import approvals, factors, webhooks
from kyso.store.models import SignApproval

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def http(central_instance) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(central_instance, apps, webhook_allow_local=True)
    for client in apps.values():
        client.__exit__(None, None, None)


@pytest.fixture
def local_allowed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instance that signs after the approval may call back to 127.0.0.1 (this test's
    receiver); production refuses it."""
    settings = dataclasses.replace(world.ctx.settings, webhook_allow_local=True)
    monkeypatch.setattr(world.ctx, "settings", settings)


class Receiver:
    """A local HTTP server that records what it is sent, started when the test says so."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/kyso-hook"

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


def system_token(world: World, key_id: str, name: str) -> str:
    with world.ctx.db.session() as session:
        return clients.create(
            session, name, ["documents:sign"], "cli:test", keys=[key_id], keystore="hsm"
        )


def ask(http: TestClient, token: str, key_id: str, callback: str) -> str:
    response = http.post(
        "/api/v1/sign/pdf",
        headers={"authorization": f"Bearer {token}"},
        data={"key_id": f"hsm:{key_id}", "callback_url": callback},
        files={"file": ("cv.pdf", samples.official_document(), "application/pdf")},
    )
    assert response.status_code == 202, response.text
    public_id: str = response.json()["id"]
    return public_id


def row(world: World, public_id: str) -> SignApproval:
    with world.ctx.db.read() as session:
        return session.execute(
            select(SignApproval).where(SignApproval.public_id == public_id)
        ).scalar_one()


def test_the_outcome_reaches_the_system_signed_with_its_token_after_the_receiver_was_down(
    world: World, http: TestClient, receiver: Receiver, local_allowed: None
) -> None:
    signer = central_signer(world)
    token = system_token(world, signer.key_id, f"qlvb-hook-{signer.user.username}")
    public_id = ask(http, token, signer.key_id, receiver.url)

    # The receiver is down when the documents are signed: the first attempt fails, is kept.
    approvals.approve(
        world.ctx, signer.principal, public_id, factors.PinAndCode(signer.pin, signer.code())
    )
    first = row(world, public_id)
    assert first.state.value == "done"
    assert first.webhook_attempts == 1 and first.webhook_delivered_at is None
    assert first.webhook_error and receiver.received == []
    assert webhooks.retry_due(world.ctx) == 0  # not due yet: the backoff waits

    receiver.start()
    later = clock.FakeClock(clock.now() + timedelta(seconds=webhooks.FIRST_RETRY_SECONDS + 1))
    with clock.using(later):
        assert webhooks.retry_due(world.ctx) >= 1
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    expected = hmac.new(
        hashlib.sha256(token.encode()).hexdigest().encode(), body, hashlib.sha256
    ).hexdigest()
    assert headers["x-kyso-signature"] == f"sha256={expected}"
    assert headers["idempotency-key"] == f"{public_id}.done"
    sent = json.loads(body)
    assert sent["id"] == public_id and sent["status"] == "done"
    [document] = sent["documents"]
    assert document["position"] == 0
    assert document["download"].endswith(f"/api/v1/sign/approvals/{public_id}/documents/0")
    # The link works with the system's own token.
    path = document["download"].split("://", 1)[1].split("/", 1)[1]
    download = http.get(f"/{path}", headers={"authorization": f"Bearer {token}"})
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == document["signed_sha256"]

    delivered = row(world, public_id)
    assert delivered.webhook_delivered_at is not None and delivered.webhook_attempts == 2
    with clock.using(clock.FakeClock(clock.now() + timedelta(hours=3))):
        webhooks.retry_due(world.ctx)
    assert len(receiver.received) == 1  # delivered once, never again


def test_a_refused_and_an_expired_request_are_told_by_the_server_loop(
    world: World, http: TestClient, receiver: Receiver, local_allowed: None
) -> None:
    receiver.start()
    signer = central_signer(world)
    token = system_token(world, signer.key_id, f"qlvb-loop-{signer.user.username}")
    refused = ask(http, token, signer.key_id, receiver.url)
    expired = ask(http, token, signer.key_id, receiver.url)
    with world.ctx.db.session() as session:
        approvals.refuse(signer.principal, session, refused, "Chưa đúng thể thức")
    later = clock.now() + timedelta(seconds=world.ctx.settings.approval_seconds + 1)
    with clock.using(clock.FakeClock(later)):
        webhooks.retry_due(world.ctx)
    told = {json.loads(body)["id"]: json.loads(body)["status"] for _h, body in receiver.received}
    assert told.get(refused) == "refused"
    assert told.get(expired) == "expired"


def test_a_callback_to_a_local_address_is_refused_without_the_setting(
    world: World,
    central_instance: Any,
) -> None:
    signer = central_signer(world)
    token = system_token(world, signer.key_id, f"qlvb-ssrf-{signer.user.username}")
    apps: dict[tuple[str, str], TestClient] = {}
    strict = app_client(central_instance, apps)
    try:
        response = strict.post(
            "/api/v1/sign/pdf",
            headers={"authorization": f"Bearer {token}"},
            data={"key_id": f"hsm:{signer.key_id}", "callback_url": "http://127.0.0.1:1/h"},
            files={"file": ("cv.pdf", samples.official_document(), "application/pdf")},
        )
    finally:
        for client in apps.values():
            client.__exit__(None, None, None)
    assert response.status_code == 422
    assert "callback_refused" in response.text
    with world.ctx.db.read() as session:  # nothing waits on the phone
        assert approvals.pending(signer.principal, session) == []
