"""Signed webhooks of the exchange: a system subscribed to a unit is told of every status of
that unit's messages (arrived, received, refused, recalled, delivered…).

Same scheme as :mod:`kyso.remote.webhooks` (which documents it): a JSON body signed with
HMAC-SHA256 under the hex SHA-256 of the client's own token (``X-Kyso-Signature``), an
``Idempotency-Key`` (``<message id>.<status>``) the same on every retry, URLs checked
against local addresses (SSRF), retries with backoff kept in the database so a restart loses
nothing, at most one process sending each attempt. An event is queued in the same
transaction as the status it reports (:func:`enqueue`), so none is lost either.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Forbidden, NotFound
from kyso.registry.access import Action, Principal, require
from kyso.store.models import (
    ApiClient,
    ExchangeEvent,
    ExchangeMessage,
    ExchangeSubscription,
    Organization,
)

if TYPE_CHECKING:
    from kyso.context import Context

log = logging.getLogger("kyso.exchange")
MAX_ATTEMPTS = 8
FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600


def subscribe(ctx: Context, principal: Principal, unit: str, url: str) -> str:
    """A system (an API client) asks to be told of a unit's messages at ``url``."""
    from kyso.remote.webhooks import check_url

    if principal.client_id is None:
        raise Forbidden(
            "webhooks are for systems calling with an API token",
            vi="webhook dành cho hệ thống gọi bằng mã API",
        )
    with ctx.db.session() as session:
        org = session.execute(
            select(Organization).where(Organization.public_id == unit)
        ).scalar_one_or_none()
        if org is None:
            raise NotFound(f"unit {unit}", vi=f"đơn vị {unit}")
        require(principal, Action.DOCUMENT_EXCHANGE, org.path)
        check_url(ctx.settings, url)
        row = ExchangeSubscription(
            public_id=secrets.token_urlsafe(16),
            client_id=principal.client_id,
            organization_id=org.id,
            url=url,
            created_at=clock.now(),
        )
        session.add(row)
        record(session, Event(principal.actor, "exchange.subscribed", unit, {"url": url[:200]}))
        session.flush()
        return row.public_id


def unsubscribe(ctx: Context, principal: Principal, public_id: str) -> None:
    with ctx.db.session() as session:
        row = session.execute(
            select(ExchangeSubscription).where(
                ExchangeSubscription.public_id == public_id,
                ExchangeSubscription.client_id == principal.client_id,
                ExchangeSubscription.revoked_at.is_(None),
            )
        ).scalar_one_or_none()
        if row is None or principal.client_id is None:
            raise NotFound(f"subscription {public_id}", vi=f"đăng ký {public_id}")
        row.revoked_at = clock.now()


def enqueue(session: Session, message: ExchangeMessage, code: str, text: str) -> None:
    """Queue the event "``message`` now has status ``code``" for each system subscribed to
    its unit (in the caller's transaction)."""
    subscribers = list(
        session.scalars(
            select(ExchangeSubscription.id).where(
                ExchangeSubscription.organization_id == message.organization_id,
                ExchangeSubscription.revoked_at.is_(None),
            )
        )
    )
    if not subscribers:
        return
    unit = session.get(Organization, message.organization_id)
    body = {
        "event": "exchange.status",
        "message": message.public_id,
        "direction": message.direction.value,
        "unit": unit.public_id if unit else None,
        "peer": {"organ_id": message.peer_organ_id, "name": message.peer_name},
        "document_id": message.document_id,
        "code": message.code,
        "subject": message.subject,
        "state": message.state.value,
        "status": code,
        "description": text or None,
        "at": clock.now().isoformat(),
    }
    key = f"{message.public_id}.{code}"
    for subscription_id in subscribers:
        try:
            with session.begin_nested():
                session.add(
                    ExchangeEvent(
                        subscription_id=subscription_id,
                        event_key=key,
                        payload=json.dumps(body, ensure_ascii=False),
                        attempts=0,
                        next_attempt_at=clock.now(),
                        created_at=clock.now(),
                    )
                )
        except IntegrityError:
            continue  # queued before (the same status said twice)


def _claim(ctx: Context, event_id: int) -> tuple[str, bytes, dict[str, str]] | None:
    from kyso.remote.webhooks import SIGNATURE_HEADER, sign_body

    now = clock.now()
    with ctx.db.session() as session:
        event = session.get(ExchangeEvent, event_id)
        if event is None or event.delivered_at is not None or event.attempts >= MAX_ATTEMPTS:
            return None
        seen = event.attempts
        wait = min(LONGEST_WAIT_SECONDS, FIRST_RETRY_SECONDS * 2**seen)
        claimed = session.execute(
            update(ExchangeEvent)
            .where(ExchangeEvent.id == event_id, ExchangeEvent.attempts == seen)
            .values(attempts=seen + 1, next_attempt_at=now + timedelta(seconds=wait))
            .execution_options(synchronize_session=False)
        )
        if not getattr(claimed, "rowcount", 0):
            return None
        found = session.execute(
            select(ExchangeSubscription.url, ApiClient.token_sha256)
            .join(ApiClient, ApiClient.id == ExchangeSubscription.client_id)
            .where(
                ExchangeSubscription.id == event.subscription_id,
                ExchangeSubscription.revoked_at.is_(None),
                ApiClient.revoked_at.is_(None),
            )
        ).first()
        if found is None:  # unsubscribed or the client revoked: never sent
            event.attempts = MAX_ATTEMPTS
            event.last_error = "the subscription or its client was revoked"
            return None
        body = event.payload.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(found.token_sha256, body),
            "Idempotency-Key": event.event_key,
            "X-Kyso-Event": event.event_key,
            "User-Agent": "kyso-webhook/1",
        }
        return found.url, body, headers


def attempt(ctx: Context, event_id: int) -> bool | None:
    """One attempt if due: True delivered, False failed (retried later), None nothing due.
    Never raises: a webhook never breaks the exchange that triggered it."""
    from kyso.remote.webhooks import post_once

    try:
        claimed = _claim(ctx, event_id)
        if claimed is None:
            return None
        url, body, headers = claimed
        problem = post_once(ctx.settings, url, body, headers)
        values: dict[str, Any] = (
            {"delivered_at": clock.now(), "next_attempt_at": None, "last_error": None}
            if problem is None
            else {"last_error": problem[:500]}
        )
        with ctx.db.session() as session:
            session.execute(
                update(ExchangeEvent)
                .where(ExchangeEvent.id == event_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if problem is not None:
            log.warning("exchange webhook %s not delivered: %s", event_id, problem)
        return problem is None
    except Exception:
        log.exception("exchange webhook %s failed", event_id)
        return False


def deliver_due(ctx: Context, limit: int = 100) -> int:
    """Send the events that are due (right after a status, and from the server's loop)."""
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(ExchangeEvent.id)
                .where(
                    ExchangeEvent.delivered_at.is_(None),
                    ExchangeEvent.attempts < MAX_ATTEMPTS,
                    ExchangeEvent.next_attempt_at <= clock.now(),
                )
                .order_by(ExchangeEvent.id)
                .limit(limit)
            )
        )
    return sum(1 for event_id in due if attempt(ctx, event_id))
