"""Signed webhooks of the exchange: the document management system of Ngân Sơn subscribes
to its unit; when a document arrives it is told, at first the receiver fails and kyso tries
again with the same Idempotency-Key; the body is signed with the client's token; once the
clerk receives the document, that status follows; unsubscribed, nothing more is queued."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from support.world import World, app_client, make_world
from ui.test_sign import server_key

from kyso import clock
from kyso.api import clients
from kyso.context import Context
from kyso.exchange import service, webhooks
from kyso.store.models import (
    ExchangeDirection,
    ExchangeEvent,
    ExchangeMessage,
    Organization,
)

from .test_exchange import outgoing


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key, code in (("babe", "000.31"), ("nganson", "000.32")):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=f"{code}.{found.tag}.H03")
            )
    return found


class Receiver:
    """A system's HTTP endpoint: fails the first ``failures`` posts, records every one."""

    def __init__(self, failures: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        received, receiver = self.received, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = receiver.failures > 0
                receiver.failures -= 1
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/qlvb-hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=1)
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_a_subscribed_system_is_told_signed_retried_and_once(
    instance: Instance, world: World, receiver: Receiver
) -> None:
    local = Context(dataclasses.replace(instance.ctx.settings, webhook_allow_local=True))
    apps: dict[tuple[str, str], TestClient] = {}
    http = app_client(instance, apps, webhook_allow_local=True)
    try:
        with instance.ctx.db.session() as session:
            token = clients.create(
                session, f"qlvb-ns-{world.tag}", ["documents:exchange"], "cli:test"
            )
        auth = {"authorization": f"Bearer {token}"}
        nganson = world.unit("nganson").public_id
        assert (
            http.post(
                "/api/v1/exchange/subscriptions", json={"unit": nganson, "url": receiver.url}
            ).status_code
            == 401
        )
        made = http.post(
            "/api/v1/exchange/subscriptions",
            headers=auth,
            json={"unit": nganson, "url": receiver.url},
        )
        assert made.status_code == 201, made.text
        refused = app_client(instance, apps).post(  # loopback refused without the setting
            "/api/v1/exchange/subscriptions",
            headers=auth,
            json={"unit": nganson, "url": receiver.url},
        )
        assert refused.status_code == 422

        seals = {"babe": server_key(instance, world.unit("babe"))[0]}
        (sent,) = service.send(instance.ctx, world.who("officer"), outgoing(world, seals))
        with instance.ctx.db.read() as session:
            digest = session.scalar(
                select(ExchangeMessage.package_sha256).where(ExchangeMessage.public_id == sent)
            )
            arrived = str(
                session.scalar(
                    select(ExchangeMessage.public_id).where(
                        ExchangeMessage.package_sha256 == digest,
                        ExchangeMessage.direction == ExchangeDirection.IN,
                    )
                )
            )

        assert webhooks.deliver_due(local) == 0  # the receiver fails the first time
        with local.db.session() as session:  # its retry is due now rather than in 30 s
            session.execute(update(ExchangeEvent).values(next_attempt_at=clock.now()))
        assert webhooks.deliver_due(local) == 1
        (first_headers, first), (headers, body) = receiver.received
        assert first == body and first_headers["idempotency-key"] == headers["idempotency-key"]
        assert headers["idempotency-key"] == f"{arrived}.01"
        key = hashlib.sha256(token.encode()).hexdigest()
        expected = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-kyso-signature"], expected)
        event = json.loads(body)
        assert (event["message"], event["status"], event["state"], event["unit"]) == (
            arrived,
            "01",
            "arrived",
            nganson,
        )

        seal_ns = server_key(instance, world.unit("nganson"))[0]
        service.accept(instance.ctx, world.who("officer_ns"), arrived, key_id=seal_ns)
        assert webhooks.deliver_due(local) == 1
        received = json.loads(receiver.received[-1][1])
        assert (received["status"], received["state"]) == ("03", "received")

        gone = http.delete(f"/api/v1/exchange/subscriptions/{made.json()['id']}", headers=auth)
        assert gone.status_code == 204
        with instance.ctx.db.read() as session:
            before = session.scalar(select(func.count()).select_from(ExchangeEvent))
        service.send(instance.ctx, world.who("officer"), outgoing(world, seals))
        with instance.ctx.db.read() as session:
            assert session.scalar(select(func.count()).select_from(ExchangeEvent)) == before
    finally:
        local.close()
        for client in apps.values():
            client.__exit__(None, None, None)
