"""What a signing level needs from the running instance, said once for the CLI and the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kyso.signing.levels import Level

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

    from kyso.context import Context
    from kyso.validation.trust import TrustContext


def level_support(
    ctx: Context, level: Level, *, trust_from: Level = Level.B_LT
) -> tuple[TimeStamper | None, TrustContext | None]:
    """kyso's TSA for B-T and above; kyso's trust context (its CRL/OCSP evidence) from
    ``trust_from`` up (B-LT by default; PAdES takes it from B-T to reach its TSA's chain)."""
    from kyso.signing.timestamps import InProcessTimeStamper
    from kyso.validation.trust import trust_context

    order = list(Level)
    stamper = InProcessTimeStamper(ctx.tsa) if level.needs_timestamp else None
    trust = trust_context(ctx) if order.index(level) >= order.index(trust_from) else None
    return stamper, trust
