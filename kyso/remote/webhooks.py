"""Telling a system that asked for signatures how its approval ended (a webhook).

A system that calls ``/api/v1/sign/*`` with a central key may give a ``callback_url``. When
the approval ends (done, failed, refused, expired) kyso POSTs to it::

    {"id": "...", "status": "done", "documents": [{"position": 0, "sha256": "…",
     "signed_sha256": "…", "download": "https://kyso…/api/v1/sign/approvals/…/documents/0"}]}

``sha256`` is the hex SHA-256 of the document the system sent (what the signer approved);
``download`` is there once the document is signed (the system fetches it with its token).

**Authenticity.** The body is signed with HMAC-SHA256 (RFC 2104) in the header
``X-Kyso-Signature: sha256=<hex>``. The key is the hex SHA-256 of the client's own bearer
token, as ASCII (what kyso keeps of the token; the client computes it from the token it
holds): no second secret to hand out or rotate, and a new token means a new key. Someone who
read kyso's database could forge a webhook, not call the API. ``Idempotency-Key`` (also
``X-Kyso-Event``) is ``<approval id>.<status>``, the same on every retry: the receiver
handles an event once.

**Delivery.** The first attempt is made when the approval ends (done/failed) or at the
server loop's next turn (refused, expired: ``kyso.web.app``); a failure (no answer in 5 s,
a status other than 2xx) is retried with exponential backoff (30 s doubling, at most 1 h,
8 attempts). The attempts and the next try are kept on the approval row, so a restart loses
nothing; a conditional UPDATE claims each attempt, so two processes do not both send it.
Redirects are not followed.

**SSRF.** Only ``http``/``https`` URLs; a host that resolves to a loopback, link-local
(cloud metadata, 169.254.0.0/16), multicast, unspecified or reserved address is refused,
when the request is made and again before each attempt (``KYSO_WEBHOOK_ALLOW_LOCAL=1`` allows
loopback and link-local for tests and single-machine demos). Private (RFC 1918) addresses
are allowed: provincial systems talk over the government's private network. A host that
changes its DNS answer between the check and the connection is not caught (documented
limit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import InvalidInput
from kyso.remote import approvals
from kyso.settings import Settings
from kyso.store.models import ApiClient, SignApproval, SignApprovalItem

if TYPE_CHECKING:
    from kyso.context import Context

log = logging.getLogger("kyso.remote.webhooks")

MAX_ATTEMPTS = 8
FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600
TIMEOUT_SECONDS = 5.0
SIGNATURE_HEADER = "X-Kyso-Signature"


class CallbackRefused(InvalidInput):
    code = "callback_refused"
    message_vi = "Địa chỉ callback_url không được chấp nhận."
    message_en = "The callback_url is not accepted."


def check_url(settings: Settings, url: str) -> str:
    """``url`` if kyso may POST to it, :class:`CallbackRefused` saying why otherwise."""
    if len(url) > 1000:
        raise CallbackRefused("longer than 1000 characters", vi="dài quá 1000 ký tự")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("only http(s) URLs", vi="chỉ nhận địa chỉ http(s)")
    if parts.username or parts.password:
        raise CallbackRefused("no user or password in the URL", vi="không ghi tài khoản trong URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise CallbackRefused(
            f"{parts.hostname} cannot be resolved", vi=f"không phân giải được {parts.hostname}"
        ) from exc
    for *_rest, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        local = address.is_loopback or address.is_link_local
        if (local and not settings.webhook_allow_local) or (
            address.is_multicast or address.is_unspecified or address.is_reserved
        ):
            raise CallbackRefused(
                f"{parts.hostname} is a local address ({address})",
                vi=f"{parts.hostname} là địa chỉ nội bộ ({address})",
            )
    return url


def sign_body(key: str, body: bytes) -> str:
    """The ``X-Kyso-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(key.encode("ascii"), body, hashlib.sha256).hexdigest()


def client_key(token: str) -> str:
    """The HMAC key a client derives from its own token (the hex SHA-256 kyso keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _wait(attempts: int) -> timedelta:
    return timedelta(
        seconds=min(LONGEST_WAIT_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1))
    )


def _pending(now: Any) -> Any:
    return (
        SignApproval.callback_url.is_not(None),
        SignApproval.state.in_(approvals.FINAL),
        SignApproval.webhook_delivered_at.is_(None),
        SignApproval.webhook_attempts < MAX_ATTEMPTS,
        or_(SignApproval.webhook_next_at.is_(None), SignApproval.webhook_next_at <= now),
    )


def payload(settings: Settings, session: Session, approval: SignApproval) -> dict[str, Any]:
    rows = session.execute(
        select(
            SignApprovalItem.position,
            SignApprovalItem.digest,
            SignApprovalItem.signed,
        )
        .where(SignApprovalItem.approval_id == approval.id)
        .order_by(SignApprovalItem.position)
    ).all()
    base = f"{settings.base_url}/api/v1/sign/approvals/{approval.public_id}/documents"
    return {
        "id": approval.public_id,
        "status": approval.state.value,
        "documents": [
            {
                "position": r.position,
                "sha256": base64.b64decode(r.digest).hex(),
                "signed_sha256": hashlib.sha256(r.signed).hexdigest() if r.signed else None,
                "download": f"{base}/{r.position}" if r.signed is not None else None,
            }
            for r in rows
        ],
    }


def _claim(ctx: Context, public_id: str) -> tuple[str, bytes, dict[str, str]] | None:
    """Take the next attempt of this approval's webhook (None: not due, or another process
    took it): the URL, the body and the headers."""
    now = clock.now()
    with ctx.db.session() as session:
        approval = session.execute(
            select(SignApproval).where(SignApproval.public_id == public_id, *_pending(now))
        ).scalar_one_or_none()
        if approval is None or approval.callback_url is None:
            return None
        seen = approval.webhook_attempts
        claimed = session.execute(
            update(SignApproval)
            .where(
                SignApproval.id == approval.id,
                SignApproval.webhook_attempts == seen,
                SignApproval.webhook_delivered_at.is_(None),
            )
            .values(webhook_attempts=seen + 1, webhook_next_at=now + _wait(seen + 1))
            .execution_options(synchronize_session=False)
        )
        if not getattr(claimed, "rowcount", 0):
            return None
        key = (
            session.scalar(select(ApiClient.token_sha256).where(ApiClient.id == approval.client_id))
            if approval.client_id is not None
            else None
        )
        if key is None:  # only API clients give callbacks; nothing to sign the body with
            approval.webhook_attempts = MAX_ATTEMPTS
            approval.webhook_next_at = None
            approval.webhook_error = "no API client to sign the webhook for"
            return None
        body = json.dumps(payload(ctx.settings, session, approval)).encode()
        event = f"{approval.public_id}.{approval.state.value}"
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(key, body),
            "Idempotency-Key": event,
            "X-Kyso-Event": event,
            "User-Agent": "kyso-webhook/1",
        }
        return approval.callback_url, body, headers


def post_once(settings: Settings, url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """POST once; None when the receiver took it (2xx), else why not (the URL is checked
    again first: its DNS answer may have changed). Also used by kyso.exchange.webhooks."""
    import requests

    try:
        check_url(settings, url)
        answer = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except InvalidInput as exc:
        return exc.message("en")
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= answer.status_code < 300:
        return None
    return f"HTTP {answer.status_code}"


def attempt(ctx: Context, public_id: str) -> bool | None:
    """One attempt if one is due: True delivered, False failed (retried later), None when
    nothing was due. Never raises."""
    try:
        claimed = _claim(ctx, public_id)
        if claimed is None:
            return None
        url, body, headers = claimed
        problem = post_once(ctx.settings, url, body, headers)
        with ctx.db.session() as session:
            values: dict[str, Any] = (
                {
                    "webhook_delivered_at": clock.now(),
                    "webhook_next_at": None,
                    "webhook_error": None,
                }
                if problem is None
                else {"webhook_error": problem}
            )
            session.execute(
                update(SignApproval)
                .where(SignApproval.public_id == public_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if problem is not None:
            log.warning("webhook for approval %s not delivered: %s", public_id, problem)
        return problem is None
    except Exception:  # a webhook never breaks the signing that triggered it
        log.exception("webhook for approval %s failed", public_id)
        return False


def deliver_now(ctx: Context, public_id: str) -> None:
    """The first attempt, right after an approval ends (no-op without a callback URL)."""
    attempt(ctx, public_id)


def retry_due(ctx: Context, limit: int = 100) -> int:
    """Send the webhooks that are due (first attempts of refused and expired approvals,
    retries of failed ones); run by the server's background loop. Returns how many were
    delivered."""
    now = clock.now()
    with ctx.db.session() as session:
        approvals.expire_overdue(session)
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(SignApproval.public_id)
                .where(*_pending(now))
                .order_by(SignApproval.id)
                .limit(limit)
            )
        )
    return sum(1 for public_id in due if attempt(ctx, public_id))
