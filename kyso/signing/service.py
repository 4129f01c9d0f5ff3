"""Signing a document with a key kyso holds, the same way from every entry point.

The pages, the REST API, the signature queue and the CLI call :func:`sign_with_key`: it asks
:mod:`kyso.signing.keyuse` whether the principal may use the key, makes the signature, and
writes one audit entry naming who signed, with which key and certificate, what (the document's
SHA-256 before and after), which kind and number, and through which entry point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from kyso.audit.log import Event, record
from kyso.observability import metrics
from kyso.registry.access import Principal
from kyso.signing.levels import Level

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

    from kyso.context import Context
    from kyso.signing.identity import SignerIdentity
    from kyso.trust import TrustContext

# Where a signature was asked for, as the audit log names it.
ENTRY_POINTS = frozenset({"api", "page", "queue", "cli", "exchange"})


def level_support(
    ctx: Context, level: Level, *, trust_from: Level = Level.B_LT
) -> tuple[TimeStamper | None, TrustContext | None]:
    """kyso's TSA for B-T and above; kyso's trust context (its CRL/OCSP evidence) from
    ``trust_from`` up (B-LT by default; PAdES takes it from B-T to reach its TSA's chain)."""
    from kyso.signing.timestamps import InProcessTimeStamper
    from kyso.trust import trust_context

    order = list(Level)
    stamper = InProcessTimeStamper(ctx.tsa) if level.needs_timestamp else None
    trust = trust_context(ctx) if order.index(level) >= order.index(trust_from) else None
    return stamper, trust


def sign_with_key(
    ctx: Context,
    principal: Principal,
    key_id: str,
    content: bytes,
    make: Callable[[bytes, SignerIdentity], bytes],
    *,
    kind: str,
    entry: str,
    name: str | None = None,
    number: str | None = None,
    level: Level | None = None,
) -> bytes:
    """Sign ``content`` with ``make`` and the key ``key_id``, if ``principal`` may use it.

    Runs in the caller's thread (callers on an event loop call it through a thread pool)."""
    from kyso.signing.identity import from_key
    from kyso.signing.keyuse import authorize

    assert entry in ENTRY_POINTS
    with ctx.db.read() as session:
        key = authorize(principal, session, ctx.keystore.name, key_id)
    signed = make(content, from_key(ctx, key.key_id, key.certificate_der))
    audit_signature(
        ctx,
        principal,
        key=f"{ctx.keystore.name}:{key.key_id}",
        serial=key.serial,
        kind=kind,
        entry=entry,
        content=content,
        signed=signed,
        name=name,
        number=number,
        level=level,
    )
    return signed


def audit_signature(
    ctx: Context,
    principal: Principal,
    *,
    key: str,
    serial: str,
    kind: str,
    entry: str,
    content: bytes,
    signed: bytes,
    name: str | None = None,
    number: str | None = None,
    level: Level | None = None,
) -> None:
    """One audit entry for one signature (also for keys outside kyso: a PKCS#12 on the CLI)."""
    with ctx.db.session() as session:
        record(
            session,
            Event(
                principal.actor,
                "document.signed",
                serial,
                {
                    "key": key,
                    "kind": kind,
                    "entry": entry,
                    "document": (name or "")[:200] or None,
                    "number": number,
                    "level": level.value if level is not None else None,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "signed_sha256": hashlib.sha256(signed).hexdigest(),
                },
            ),
        )
    metrics.signature_made(kind, entry)
