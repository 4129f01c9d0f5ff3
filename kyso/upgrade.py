"""What an instance made by an older kyso needs before it serves.

Run when the server starts and by ``kyso init --exist-ok``; each step does nothing when it
was done already, so running it on every start costs two indexed reads.

* TOTP secrets an older kyso kept in clear are sealed with the key store's data key
  (:func:`kyso.registry.totp.seal_clear_secrets`), and the clear column emptied.
* A CA made before the audit-signing certificate existed gets one from its issuing CA
  (:func:`kyso.pki.bootstrap.ensure_audit_signer`), so checkpoints of the audit log are
  signed by it and never by a CA key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kyso.audit.log import Event, record
from kyso.pki import bootstrap
from kyso.registry import totp

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.pki.authority import Identity


@dataclass(frozen=True)
class Upgrade:
    sealed_totp_secrets: int
    audit_signer: Identity | None

    @property
    def changed(self) -> bool:
        return bool(self.sealed_totp_secrets) or self.audit_signer is not None


def bring_up_to_date(ctx: Context, actor: str) -> Upgrade:
    with ctx.db.session() as session:
        sealed = totp.seal_clear_secrets(session)
        if sealed:
            record(session, Event(actor, "user.totp_secrets_sealed", None, {"count": sealed}))
    signer = None
    if ctx.authority.is_initialized():
        with ctx.db.session() as session:
            signer = bootstrap.ensure_audit_signer(
                session, ctx.authority, ctx.keystore, actor=actor
            )
    return Upgrade(sealed, signer)
