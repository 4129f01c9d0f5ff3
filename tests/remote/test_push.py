"""Web Push to the signer's phone, against a push service of our own on 127.0.0.1 that does
what a real one must: it checks the VAPID JWT (RFC 8292: ES256 over ``aud`` = its own
origin, verified with the key kyso serves as applicationServerKey), and the test then
decrypts the message (RFC 8291 aes128gcm, with http_ece) with the subscribing browser's
private key. Nothing is mocked: kyso encrypts and signs for real."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from support.remote import central_signer
from support.world import make_world

from kyso.errors import InvalidInput
from kyso.remote import approvals, push
from kyso.store.models import ApprovalPurpose, PushSubscription

pytestmark = pytest.mark.softhsm


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakePushService:
    """POST /<name>-…: 201 and the message kept; /gone-… answers 410, /broken-… 500."""

    def __init__(self) -> None:
        self.received: dict[str, dict[str, Any]] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                name = self.path.strip("/")
                service.received[name] = {"headers": dict(self.headers.items()), "body": body}
                status = {"gone": 410, "broken": 500}.get(name.split("-")[0], 201)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture
def service() -> Iterator[FakePushService]:
    found = FakePushService()
    yield found
    found.close()


@pytest.fixture
def ctx(world, tmp_path):  # type: ignore[no-untyped-def]
    """The instance's database, with local push endpoints allowed and a VAPID key of its
    own (made on first use)."""
    settings = dataclasses.replace(world.ctx.settings, webhook_allow_local=True, home=tmp_path)
    return SimpleNamespace(db=world.ctx.db, settings=settings)


@dataclasses.dataclass
class Browser:
    """A subscribing browser: its ECDH key and auth secret (RFC 8291 §3)."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        return cls(ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16))

    def subscription(self, endpoint: str) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}}

    def read(self, body: bytes) -> dict[str, Any]:
        return json.loads(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


def check_vapid(authorization: str, served_key: str, origin: str, subject: str) -> None:
    """RFC 8292 §2-3: ``vapid t=<JWT>, k=<key>``; the JWT is ES256 by that key, and its
    ``aud`` is the push service's origin."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == served_key
    header_b64, claims_b64, signature_b64 = fields["t"].split(".")
    assert json.loads(unb64url(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    claims = json.loads(unb64url(claims_b64))
    assert claims["aud"] == origin
    assert claims["sub"] == subject
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    raw = unb64url(signature_b64)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(served_key))
    public.verify(  # raises InvalidSignature
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{header_b64}.{claims_b64}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )


def ask(world, signer, title: str) -> str:  # type: ignore[no-untyped-def]
    with world.ctx.db.session() as session:
        return approvals.ask(
            world.ctx,
            signer.principal,
            session,
            approvals.Request(
                signer=session.merge(signer.user),
                key_id=signer.key_id,
                purpose=ApprovalPurpose.CSC,
                items=[
                    approvals.ItemSpec(
                        title=title,
                        digest=base64.b64encode(hashlib.sha256(title.encode()).digest()).decode(),
                    )
                ],
            ),
        ).public_id


def test_a_waiting_request_reaches_each_phone_encrypted_and_signed_with_vapid(world, ctx, service):
    signer = central_signer(world)
    phone, gone, broken = Browser.new(), Browser.new(), Browser.new()
    with ctx.db.session() as session:
        for browser, name in ((phone, "phone"), (gone, "gone"), (broken, "broken")):
            push.subscribe(
                ctx.settings,
                signer.principal,
                session,
                browser.subscription(f"{service.origin}/{name}-{signer.user.username}"),
            )
    public_id = ask(world, signer, "Quyết định mật số 7")

    report = push.announce(ctx, public_id)

    assert report == push.Report(sent=1, removed=1, failed=1)
    message = service.received[f"phone-{signer.user.username}"]
    headers = {k.lower(): v for k, v in message["headers"].items()}
    check_vapid(
        headers["authorization"],
        push.application_server_key(ctx.settings),
        service.origin,
        ctx.settings.vapid_subject,
    )
    assert headers["content-encoding"] == "aes128gcm"
    assert 0 < int(headers["ttl"]) <= ctx.settings.approval_seconds
    assert phone.read(message["body"]) == {
        "title": "Có 1 văn bản chờ ký",
        "count": 1,
        "id": public_id,
    }
    assert b"Quy" not in message["body"]  # the title never travels, not even encrypted
    with ctx.db.read() as session:
        left = {
            s.endpoint.rsplit("/", 1)[1].split("-")[0]: s.failures
            for s in push.subscriptions_of(session, signer.user.id)
        }
    assert left == {"phone": 0, "broken": 1}  # the gone one is dropped, failures counted


def test_push_is_best_effort_and_never_raises(world, ctx):
    signer = central_signer(world)
    with ctx.db.session() as session:
        push.subscribe(
            ctx.settings,
            signer.principal,
            session,
            Browser.new().subscription("http://127.0.0.1:9/unreachable"),  # discard port
        )
    public_id = ask(world, signer, "Văn bản")
    assert push.announce(ctx, public_id) == push.Report(failed=1)
    assert push.announce(ctx, "no-such-request") == push.Report()


def test_the_vapid_key_is_made_once_and_kept_private(ctx):
    first = push.application_server_key(ctx.settings)
    assert push.application_server_key(ctx.settings) == first
    assert len(unb64url(first)) == 65
    mode = stat.S_IMODE(os.stat(ctx.settings.vapid_key_file).st_mode)
    assert mode == 0o600


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/x",
        "https://10.0.0.5/x",
        "https://localhost/x",
        "ftp://push.example/x",
    ],
)
def test_a_push_endpoint_must_be_a_public_https_url(world, endpoint):
    signer = central_signer(world)
    with world.ctx.db.session() as session, pytest.raises(InvalidInput):
        push.subscribe(
            world.ctx.settings, signer.principal, session, Browser.new().subscription(endpoint)
        )


def test_a_subscription_belongs_to_the_user_who_made_it(world):
    signer = central_signer(world)
    other = central_signer(world, full_name="Lê Thị Khác")
    endpoint = f"https://fcm.googleapis.com/fcm/send/{secrets.token_hex(8)}"
    with world.ctx.db.session() as session:
        push.subscribe(
            world.ctx.settings, signer.principal, session, Browser.new().subscription(endpoint)
        )
    with world.ctx.db.session() as session, pytest.raises(Exception, match="push subscription"):
        push.unsubscribe(other.principal, session, endpoint)
    with world.ctx.db.session() as session:
        push.unsubscribe(signer.principal, session, endpoint)
        assert session.query(PushSubscription).filter_by(endpoint=endpoint).count() == 0
