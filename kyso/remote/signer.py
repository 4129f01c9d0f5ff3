"""The only way a central key signs: spend a SAD, then sign exactly the hashes it allows.

Everything that signs with a key in the central HSM (CSC ``signatures/signHash`` and
``signDoc``, kyso's pages and API after a phone approval) comes through :func:`sign_digests`,
so no entry point can sign with a central key without the signer's consent.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes

from kyso.audit.log import Event, record
from kyso.observability import metrics
from kyso.registry.access import Principal
from kyso.remote import activation
from kyso.remote.central import key_id_of

if TYPE_CHECKING:
    from kyso.context import Context

# Digest algorithms by OID (CSC gives ``hashAlgo`` as a dotted OID) and by name.
HASH_OIDS: dict[str, hashes.HashAlgorithm] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256(),
    "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
    "2.16.840.1.101.3.4.2.3": hashes.SHA512(),
}
OID_OF = {h.name: oid for oid, h in HASH_OIDS.items()}


def sign_digests(
    ctx: Context,
    principal: Principal,
    sad: str,
    binding: activation.Binding,
    digests: Sequence[bytes],
    *,
    entry: str,
    documents: Sequence[str] = (),
) -> list[bytes]:
    """Spend ``sad`` on ``binding`` and sign each digest with the central key.

    ``binding.hashes`` are what the signer consented to (base64); ``digests`` are what the
    key signs. For CSC signHash they are the same; for documents kyso signs, the consent is
    over the documents' SHA-256 and the digests are the CMS signed attributes' hashes,
    computed by kyso from those very documents."""
    used = activation.consume(ctx.db, sad, binding)
    hash_algorithm = HASH_OIDS[binding.hash_algorithm]
    key = ctx.central.get(key_id_of(binding.key_location))
    signatures = [key.sign_digest(d, hash_algorithm) for d in digests]
    with ctx.db.session() as session:
        record(
            session,
            Event(
                principal.actor,
                "document.signed",
                binding.key_location,
                {
                    "key": binding.key_location,
                    "entry": entry,
                    "activation": used.id,
                    "approval": used.approval_id,
                    "client": principal.client_id,
                    "count": len(signatures),
                    "documents": list(documents)[:50],
                    "hashes": [base64.b64encode(d).decode() for d in digests][:100],
                },
            ),
        )
    metrics.signature_made("digest", entry, len(signatures))
    return signatures
