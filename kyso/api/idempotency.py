"""``Idempotency-Key`` for the API calls that create something (sending, issuing): a system
whose connection broke after the request left sends it again with the same key and gets the
first answer, not a second document.

The key is the client's (unique per API client); the request's SHA-256 (method, path and
body) is kept with it, and the same key with another request is refused (422). A request
still running under that key answers 409. Answers are kept for a day (the server's loop
forgets older ones).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from kyso import clock
from kyso.errors import Conflict, InvalidInput
from kyso.store.models import IdempotentRequest

if TYPE_CHECKING:
    from kyso.context import Context

KEEP = timedelta(days=1)
KEY_MAX = 200


class KeyReused(InvalidInput):
    code = "idempotency_key_reused"
    message_vi = "Idempotency-Key này đã dùng cho một yêu cầu khác."
    message_en = "This Idempotency-Key was used for another request."


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


def run(
    ctx: Context, client_id: int | None, key: str | None, request: str, work: Callable[[], Answer]
) -> Answer:
    """``work()`` once per (client, key); the kept answer when the key comes again. Without a
    key (or a client), just ``work()``."""
    if not key or client_id is None:
        return work()
    key = key.strip()
    if not key or len(key) > KEY_MAX:
        raise InvalidInput(
            f"Idempotency-Key: 1 to {KEY_MAX} characters", vi=f"Idempotency-Key: 1–{KEY_MAX} ký tự"
        )
    try:
        with ctx.db.session() as session:
            session.add(
                IdempotentRequest(
                    client_id=client_id, key=key, request_sha256=request, created_at=clock.now()
                )
            )
    except IntegrityError:
        with ctx.db.read() as session:
            kept = session.execute(
                select(IdempotentRequest).where(
                    IdempotentRequest.client_id == client_id, IdempotentRequest.key == key
                )
            ).scalar_one()
            if kept.request_sha256 != request:
                raise KeyReused(key) from None
            if kept.status is None:
                raise Conflict(
                    "a request with this Idempotency-Key is still running",
                    vi="yêu cầu với Idempotency-Key này đang được xử lý",
                ) from None
            return Answer(kept.status, json.loads(kept.response or "{}"))
    try:
        answer = work()
    except BaseException:
        with ctx.db.session() as session:  # failed: the key may be used again
            session.execute(
                delete(IdempotentRequest).where(
                    IdempotentRequest.client_id == client_id, IdempotentRequest.key == key
                )
            )
        raise
    with ctx.db.session() as session:
        row = session.execute(
            select(IdempotentRequest).where(
                IdempotentRequest.client_id == client_id, IdempotentRequest.key == key
            )
        ).scalar_one()
        row.status = answer.status
        row.response = json.dumps(answer.body, ensure_ascii=False)
    return answer


def forget_old(ctx: Context) -> int:
    with ctx.db.session() as session:
        result = session.execute(
            delete(IdempotentRequest).where(IdempotentRequest.created_at < clock.now() - KEEP)
        )
        return int(getattr(result, "rowcount", 0) or 0)
