"""Telling the signer's phone that a request waits: Web Push, best effort.

The phone's browser subscribes through its push service (RFC 8030) with kyso's VAPID public
key as ``applicationServerKey``; kyso then POSTs to the subscription's endpoint a message
encrypted for that browser (RFC 8291, ``aes128gcm`` of RFC 8188) and signed for the push
service with a VAPID JWT (RFC 8292: ES256 over ``aud`` = the endpoint's origin, ``exp``,
``sub`` = ``KYSO_VAPID_SUBJECT``).

The payload is small and says nothing about the documents: a title, how many documents wait,
the request's id. The phone opens /m to read the rest over its logged-in session. Push is
best effort: :func:`announce` never raises to its caller, a subscription the push service
says is gone (404, 410) is dropped, other failures are counted; the /m page polls anyway.

The VAPID key pair (P-256) is made on first use in ``KYSO_HOME/secrets/vapid.pem`` (0600);
two processes starting at once agree on one key (the file appears by an atomic link).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import InvalidInput, NotFound
from kyso.registry.access import Principal
from kyso.store.models import (
    ApprovalState,
    PushSubscription,
    SignApproval,
    SignApprovalItem,
)

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.settings import Settings

log = logging.getLogger("kyso.remote.push")

SEND_TIMEOUT_SECONDS = 5.0
GONE = frozenset({404, 410})  # RFC 8030 §7.3: the subscription expired or was removed


# -- the VAPID key -----------------------------------------------------------------------------
def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _load_or_make(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(draft, path)  # atomic; fails if another process made it first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        data = path.read_bytes()
    loaded = serialization.load_pem_private_key(data, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise RuntimeError(f"{path} is not a P-256 key; delete it to make a new one")
    return loaded


def vapid_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """kyso's VAPID signing key (made on first use)."""
    return _load_or_make(settings.vapid_key_file)


def application_server_key(settings: Settings) -> str:
    """The VAPID public key as the browser's ``PushManager.subscribe`` wants it: the
    uncompressed P-256 point, base64url without padding (RFC 8292 §3.2)."""
    point = (
        vapid_key(settings)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return _b64url(point)


# -- subscriptions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Subscription:
    """A browser's ``PushSubscription.toJSON()``: its endpoint and keys (RFC 8291 §3)."""

    endpoint: str
    p256dh: str  # the browser's ECDH public key, uncompressed P-256, base64url
    auth: str  # 16-byte authentication secret, base64url

    @classmethod
    def from_json(cls, value: Any) -> Subscription:
        try:
            keys = value["keys"]
            made = cls(str(value["endpoint"]), str(keys["p256dh"]), str(keys["auth"]))
            point, secret = _unb64url(made.p256dh), _unb64url(made.auth)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise InvalidInput(
                "not a push subscription", vi="không phải đăng ký nhận thông báo"
            ) from exc
        if len(point) != 65 or point[0] != 4 or len(secret) != 16 or len(made.endpoint) > 1000:
            raise InvalidInput("not a push subscription", vi="không phải đăng ký nhận thông báo")
        return made


def _check_endpoint(settings: Settings, endpoint: str) -> None:
    """Push services are public HTTPS servers; an endpoint on this machine or the local
    network would make kyso a way to POST inside it (SSRF), so it is refused unless
    ``KYSO_WEBHOOK_ALLOW_LOCAL`` allows local targets (tests, a single-machine demo)."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    local = host in {"localhost", ""} or host.endswith(".localhost")
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        local = local or not address.is_global
    if local and settings.webhook_allow_local and parts.scheme in {"http", "https"}:
        return
    if parts.scheme != "https" or local:
        raise InvalidInput(
            "a push endpoint is a public https URL",
            vi="địa chỉ nhận thông báo phải là URL https công khai",
        )


def subscribe(
    settings: Settings, principal: Principal, session: Session, value: Any
) -> PushSubscription:
    """Remember where the viewer's browser receives pushes. An endpoint belongs to one
    browser: if another user's account had it, the browser is now this user's."""
    if principal.user_id is None:
        raise InvalidInput("only a logged-in user subscribes", vi="cần đăng nhập")
    sub = Subscription.from_json(value)
    _check_endpoint(settings, sub.endpoint)
    row = session.execute(
        select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint)
    ).scalar_one_or_none()
    if row is not None and row.user_id == principal.user_id:
        row.p256dh, row.auth, row.failures = sub.p256dh, sub.auth, 0
        return row
    if row is not None:
        session.delete(row)
        session.flush()
    row = PushSubscription(
        user_id=principal.user_id,
        endpoint=sub.endpoint,
        p256dh=sub.p256dh,
        auth=sub.auth,
        created_at=clock.now(),
        failures=0,
    )
    session.add(row)
    session.flush()
    record(
        session,
        Event(principal.actor, "push.subscribed", urlsplit(sub.endpoint).netloc, {}),
    )
    return row


def unsubscribe(principal: Principal, session: Session, endpoint: str) -> None:
    """Forget one of the viewer's own subscriptions (another user's is not found)."""
    removed = session.execute(
        delete(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.user_id == principal.user_id
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotFound("push subscription", vi="đăng ký nhận thông báo")


def subscriptions_of(session: Session, user_id: int) -> list[PushSubscription]:
    return list(
        session.execute(
            select(PushSubscription)
            .where(PushSubscription.user_id == user_id)
            .order_by(PushSubscription.id)
        ).scalars()
    )


# -- sending -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    sent: int = 0
    removed: int = 0  # gone (404/410): dropped
    failed: int = 0


def waiting_documents(session: Session, user_id: int) -> int:
    """How many documents (or hashes) wait for this user's consent, in all their requests."""
    return int(
        session.scalar(
            select(func.count(SignApprovalItem.id))
            .join(SignApproval, SignApproval.id == SignApprovalItem.approval_id)
            .where(
                SignApproval.user_id == user_id,
                SignApproval.state == ApprovalState.WAITING,
                SignApproval.expires_at > clock.now(),
            )
        )
        or 0
    )


def payload(count: int, approval_public_id: str) -> dict[str, Any]:
    """What the phone's service worker shows: no title, number or hash of any document."""
    return {"title": f"Có {count} văn bản chờ ký", "count": count, "id": approval_public_id}


def announce(ctx: Context, approval_public_id: str) -> Report:
    """Push "N documents wait" to each of the signer's subscriptions. Never raises: push is
    best effort, and the phone polls /m anyway."""
    try:
        return _announce(ctx, approval_public_id)
    except Exception:
        log.exception("push for approval %s failed", approval_public_id)
        return Report()


def announce_in_background(ctx: Context, approval_public_id: str) -> None:
    """:func:`announce` without making the caller wait for the push services."""
    threading.Thread(
        target=announce, args=(ctx, approval_public_id), daemon=True, name="web-push"
    ).start()


def _announce(ctx: Context, approval_public_id: str) -> Report:
    from pywebpush import WebPushException, webpush

    with ctx.db.read() as session:
        approval = session.execute(
            select(SignApproval).where(SignApproval.public_id == approval_public_id)
        ).scalar_one_or_none()
        if approval is None or approval.state is not ApprovalState.WAITING:
            return Report()
        ttl = max(0, int((approval.expires_at - clock.now()) / timedelta(seconds=1)))
        if ttl == 0:
            return Report()
        targets = [
            (s.id, {"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}})
            for s in subscriptions_of(session, approval.user_id)
        ]
        body = json.dumps(payload(waiting_documents(session, approval.user_id), approval_public_id))
    if not targets:
        return Report()
    from py_vapid import Vapid02

    signer = Vapid02(vapid_key(ctx.settings))
    sent = failed = 0
    gone: list[int] = []
    worked: list[int] = []
    for sub_id, info in targets:
        try:
            webpush(
                info,
                data=body,
                vapid_private_key=signer,
                vapid_claims={"sub": ctx.settings.vapid_subject},
                content_encoding="aes128gcm",
                ttl=ttl,
                timeout=SEND_TIMEOUT_SECONDS,
                headers={"urgency": "high"},
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in GONE:
                gone.append(sub_id)
            else:
                failed += 1
                log.warning("push to subscription %s failed: %s", sub_id, status or exc)
        except Exception as exc:  # a push service that cannot be reached, a timeout
            failed += 1
            log.warning("push to subscription %s failed: %s", sub_id, type(exc).__name__)
        else:
            sent += 1
            worked.append(sub_id)
    with ctx.db.session() as session:
        if gone:
            session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
        for sub_id, _ in targets:
            row = session.get(PushSubscription, sub_id)
            if row is None:
                continue
            row.failures = 0 if sub_id in worked else row.failures + 1
    return Report(sent=sent, removed=len(gone), failed=failed)
