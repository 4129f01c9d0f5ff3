"""Which keys kyso holds a principal may sign documents with — one rule for every entry point.

- A person (a browser session, or an API token acting as its user) signs with their own key
  (a valid certificate issued to their subscriber record) or with the seal of their own unit
  (an organization certificate of exactly that unit: a district does not apply a commune's
  seal, nor the province any unit's).
- A system token (an integration, no user) signs only with the keys named when the client
  was made (``kyso api-client create … --key KEY``); none otherwise.
- The server's operator (the CLI, who holds the key store) may use any subscriber key.
- The CA's own keys (root, issuing CA, OCSP responder, TSA, and any other identity kyso signs
  with) never sign a document, whoever asks: a document "signed by the root" would borrow
  the trust of every certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import Forbidden
from kyso.lifecycle.certificates import common_name
from kyso.pki.status import CA_PROFILES
from kyso.registry.access import Action, Principal, require
from kyso.remote import central
from kyso.store.models import (
    ApiClientKey,
    CaIdentity,
    Certificate,
    CertStatus,
    KeyDelegate,
    Organization,
    Profile,
    User,
)


@dataclass(frozen=True)
class UsableKey:
    key_id: str  # the key store's id (without the store's name)
    holder: str  # the certificate's holder, as people know them
    unit: str | None
    serial: str
    not_after: datetime
    personal: bool  # the principal's own key, not a seal
    certificate_der: bytes  # the valid certificate the key signs with


class KeyNotAllowed(Forbidden):
    code = "key_not_allowed"
    message_vi = "Bạn không được ký bằng khóa này."
    message_en = "You may not sign with this key."


def _whose(principal: Principal, session: Session) -> tuple[int | None, int | None]:
    """The principal's subscriber record and unit (a person's, read from their user)."""
    if principal.user_id is None:
        return None, None
    row = session.execute(
        select(User.person_id, User.organization_id).where(User.id == principal.user_id)
    ).first()
    return (row.person_id, row.organization_id) if row is not None else (None, None)


def _allowed(principal: Principal, session: Session, prefix: str) -> ColumnElement[bool]:
    if principal.user_id is not None:
        person_id, unit_id = _whose(principal, session)
        own = Certificate.person_id == person_id if person_id is not None else false()
        seal = (
            and_(
                Certificate.person_id.is_(None),
                Certificate.profile == Profile.ORGANIZATION,
                Certificate.organization_id == unit_id,
            )
            if unit_id is not None
            else false()
        )
        if prefix == central.PREFIX:
            # A central seal is applied by the clerks named for it, not by the whole unit.
            delegated = select(KeyDelegate.key_location).where(
                KeyDelegate.user_id == principal.user_id
            )
            seal = and_(seal, Certificate.key_location.in_(delegated))
        return or_(own, seal)
    if principal.client_id is not None:  # a system token: the keys it was given, no other
        bound = select(ApiClientKey.key_location).where(
            ApiClientKey.client_id == principal.client_id
        )
        return Certificate.key_location.in_(bound)
    if principal.scopes is None:  # the server's operator
        return true()
    return false()


def usable_keys(
    principal: Principal,
    session: Session,
    keystore: str,
    *,
    limit: int = 200,
    only: str | None = None,
) -> list[UsableKey]:
    """Keys in ``keystore`` whose certificate is valid now and that ``principal`` may sign
    with (the principal's own first, then seals, by holder)."""
    require(principal, Action.DOCUMENT_SIGN)
    prefix = f"{keystore}:"
    ca_keys = [
        prefix + key_id
        for key_id in session.scalars(
            select(CaIdentity.key_id).where(CaIdentity.keystore == keystore)
        )
    ]
    person_id, _unit = _whose(principal, session)
    rows = session.execute(
        select(Certificate, Organization.name)
        .outerjoin(Organization, Organization.id == Certificate.organization_id)
        .where(
            Certificate.key_location.startswith(prefix, autoescape=True),
            Certificate.status == CertStatus.GOOD,
            Certificate.not_after > clock.now(),
            Certificate.profile.not_in(CA_PROFILES),
            Certificate.key_location.not_in(ca_keys),
            _allowed(principal, session, prefix),
            Certificate.key_location == prefix + only if only is not None else true(),
        )
        .order_by(Certificate.id.desc())
        .limit(limit)
    ).all()
    keys: dict[str, UsableKey] = {}
    for cert, unit_name in rows:
        key_id = cert.key_location[len(prefix) :]
        keys.setdefault(
            key_id,
            UsableKey(
                key_id,
                common_name(cert.subject),
                unit_name,
                cert.serial,
                cert.not_after,
                person_id is not None and cert.person_id == person_id,
                cert.der,
            ),
        )
    return sorted(keys.values(), key=lambda k: (not k.personal, k.holder.casefold()))


def require_signer(principal: Principal) -> None:
    """Refuse at once a principal that may sign with no key at all (before an upload is
    read); which key is :func:`authorize`'s question."""
    require(principal, Action.DOCUMENT_SIGN)


def authorize(principal: Principal, session: Session, keystore: str, key_id: str) -> UsableKey:
    """The key, if ``principal`` may sign with it now; :class:`KeyNotAllowed` otherwise (the
    same refusal whether the key exists or not: nobody learns which keys kyso holds)."""
    found = usable_keys(principal, session, keystore, limit=1, only=key_id)
    if not found:
        raise KeyNotAllowed(key_id)
    return found[0]


def is_ca_key(session: Session, keystore: str, key_id: str) -> bool:
    return (
        session.execute(
            select(CaIdentity.id).where(
                CaIdentity.keystore == keystore, CaIdentity.key_id == key_id
            )
        ).first()
        is not None
    )
