"""Packages between kyso installations over HTTP (another province, a ministry).

The sending installation POSTs the signed package to the peer's
``/exchange/v1/messages`` (``application/xml``); the peer judges it exactly as a package
from one of its own units (:func:`kyso.exchange.service.receive`) and answers at once with
the status on arrival: 01, or 02 with the reason. A peer that cannot be reached, or answers
5xx, is :class:`Unreachable`: the message stays queued and is tried again later, and since
the peer stores a package once, a retry after a lost answer does no harm."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx

from kyso.errors import KysoError
from kyso.exchange.status import StatusCode

if TYPE_CHECKING:
    from kyso.exchange.service import Outcome

PATH = "/exchange/v1/messages"
STATUS_PATH = "/exchange/v1/statuses"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One client for the process (thread-safe, keeping connections alive): making an
    ``httpx.Client`` loads the CA bundle into a new SSL context, tens of milliseconds that
    would otherwise be paid by every delivery."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT)
        return _client


class Unreachable(KysoError):
    code = "exchange_unreachable"
    http_status = 503
    message_vi = "Không kết nối được hệ thống nhận; văn bản sẽ được gửi lại."
    message_en = "The receiving system cannot be reached; the document will be sent again."


def post_package(url: str, data: bytes) -> Outcome:
    """Deliver ``data`` to the peer at ``url``; its :class:`~kyso.exchange.service.Outcome`."""
    from kyso.exchange.service import Outcome  # service imports this module

    try:
        answer = _http().post(url + PATH, content=data, headers={"content-type": "application/xml"})
    except httpx.HTTPError as exc:
        raise Unreachable(f"{url}: {type(exc).__name__}") from exc
    if answer.status_code >= 500 or answer.status_code in (408, 429):
        raise Unreachable(f"{url}: HTTP {answer.status_code}")
    try:
        body = answer.json()
    except ValueError:
        raise Unreachable(f"{url}: not a kyso answer (HTTP {answer.status_code})") from None
    if answer.status_code >= 400:  # the peer will never take it: as good as refused
        message = body.get("message") if isinstance(body, dict) else None
        return Outcome(StatusCode.REFUSED, str(message or f"HTTP {answer.status_code}")[:2000])
    try:
        code = StatusCode(str(body["status"]))
    except (KeyError, TypeError, ValueError):
        raise Unreachable(f"{url}: an answer without a status") from None
    return Outcome(code, str(body.get("description") or "")[:2000])


def post_status(url: str, data: bytes) -> None:
    """Deliver a signed status message to the sender's installation (:class:`Unreachable`
    while it cannot take it; a 4xx is final and raised as such)."""
    try:
        answer = _http().post(
            url + STATUS_PATH, content=data, headers={"content-type": "application/xml"}
        )
    except httpx.HTTPError as exc:
        raise Unreachable(f"{url}: {type(exc).__name__}") from exc
    if answer.status_code >= 500 or answer.status_code in (408, 429):
        raise Unreachable(f"{url}: HTTP {answer.status_code}")
    if answer.status_code >= 400:
        raise Unreachable(f"{url}: refused the status (HTTP {answer.status_code})")
