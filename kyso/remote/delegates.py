"""Who may apply a unit's central seal: its delegates, the unit's records clerks (văn thư).

A seal whose key is in the central HSM (an organization certificate of one unit, key location
``hsm:…``) is not applied by everyone of its unit: :mod:`kyso.signing.keyuse` lets only the
users listed here put a consent request for it on their phone, so each stamp of the seal is
a named clerk's approved act. With a USB token the same control is physical (the token is
handed to the clerk with hand-over minutes, form 07 of Decree 68/2024/NĐ-CP); granting is
its counterpart and takes the same right, ``cert.handover`` on the seal's unit:

- a unit officer of that unit or of a unit above it, or the province administrator, grants
  and revokes; an auditor, a signer or another district's officer never does;
- a delegate is an active user of exactly the seal's unit whose role may sign (a commune's
  clerk does not apply the district's seal: keyuse's "the seal of one's own unit");
- every grant and revocation is an audit entry (``seal.delegate_granted`` /
  ``seal.delegate_revoked``); a renewed seal keeps its clerks (:func:`carry_over`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, NotFound
from kyso.lifecycle import certificates
from kyso.registry.access import PERMISSIONS, Action, Principal, require
from kyso.remote import central
from kyso.store.models import (
    Certificate,
    CertStatus,
    KeyDelegate,
    Organization,
    Profile,
    User,
)

GRANTED = "seal.delegate_granted"
REVOKED = "seal.delegate_revoked"


class NotACentralSeal(Conflict):
    code = "not_a_central_seal"
    message_vi = (
        "Chứng thư này không phải con dấu (chứng thư cơ quan, tổ chức) có khóa trong HSM ký "
        "tập trung, nên không có danh sách người được dùng."
    )
    message_en = (
        "This certificate is not a seal (an organization certificate) whose key is in the "
        "central signing HSM, so it has no list of users."
    )


class SealNotValid(Conflict):
    code = "seal_not_valid"
    message_vi = "Con dấu đã bị thu hồi hoặc hết hạn: không cho thêm người dùng."
    message_en = "The seal is revoked or expired: nobody can be allowed to use it."


class NotAUnitClerk(InvalidInput):
    code = "not_a_unit_clerk"
    message_vi = (
        "Chỉ tài khoản đang hoạt động của chính đơn vị sở hữu con dấu, có quyền ký, mới được "
        "giao dùng con dấu."
    )
    message_en = (
        "Only an active user of the seal's own unit, whose role may sign, can be allowed to "
        "use the seal."
    )


class AlreadyDelegate(Conflict):
    code = "already_delegate"
    message_vi = "Người này đã được dùng con dấu."
    message_en = "This user may already use the seal."


class NotADelegate(NotFound):
    code = "not_a_delegate"
    message_vi = "Người này không có trong danh sách được dùng con dấu."
    message_en = "This user is not among the seal's users."


@dataclass(frozen=True)
class Delegate:
    username: str
    full_name: str
    granted_by: str
    granted_at: datetime
    usable: bool  # still an active user of the seal's unit (else keyuse refuses them)


@dataclass(frozen=True)
class Clerk:
    """A user who could be granted the seal (the page's choice list)."""

    username: str
    full_name: str


@dataclass(frozen=True)
class SealDelegates:
    serial: str
    unit_id: str  # the unit's public id
    unit_name: str
    delegates: list[Delegate]


def is_central_seal(cert: Certificate) -> bool:
    """A unit's seal (organization certificate, no person) whose key is in the central HSM."""
    return (
        cert.profile is Profile.ORGANIZATION
        and cert.person_id is None
        and cert.organization_id is not None
        and central.is_central(cert.key_location)
    )


def _seal(
    principal: Principal, session: Session, serial: str, action: Action
) -> tuple[Certificate, Organization]:
    """The central seal by serial, if ``principal`` may do ``action`` on its unit."""
    cert = certificates.get(principal, session, serial, action)
    if not is_central_seal(cert):
        raise NotACentralSeal(cert.serial)
    unit = session.get(Organization, cert.organization_id)
    if unit is None:  # a seal always has its unit; fail closed if the row is gone
        raise NotACentralSeal(cert.serial)
    require(principal, action, unit.path)
    return cert, unit


def _may_manage(
    principal: Principal, session: Session, serial: str
) -> tuple[Certificate, Organization]:
    if principal.user_id is None and principal.client_id is not None:
        raise Forbidden(
            "a seal's users are chosen by a named person, not by a system token",
            vi="người dùng con dấu do một người cụ thể giao, không do mã truy cập hệ thống",
        )
    return _seal(principal, session, serial, Action.CERT_HANDOVER)


def list_delegates(principal: Principal, session: Session, serial: str) -> SealDelegates:
    """The seal's users, for anyone who may read the certificate."""
    cert, unit = _seal(principal, session, serial, Action.CERT_READ)
    rows = session.execute(
        select(KeyDelegate, User)
        .join(User, User.id == KeyDelegate.user_id)
        .where(KeyDelegate.key_location == cert.key_location)
        .order_by(KeyDelegate.granted_at, User.username)
    ).all()
    return SealDelegates(
        cert.serial,
        unit.public_id,
        unit.name,
        [
            Delegate(
                user.username,
                user.full_name,
                grant.granted_by,
                grant.granted_at,
                user.active and user.organization_id == unit.id,
            )
            for grant, user in rows
        ],
    )


def _clerks(session: Session, unit: Organization) -> list[User]:
    signing_roles = [
        role for role, actions in PERMISSIONS.items() if Action.DOCUMENT_SIGN in actions
    ]
    return list(
        session.execute(
            select(User)
            .where(
                User.organization_id == unit.id,
                User.active.is_(True),
                User.role.in_(signing_roles),
            )
            .order_by(User.full_name, User.username)
        ).scalars()
    )


def candidates(principal: Principal, session: Session, serial: str) -> list[Clerk]:
    """The users who may still be granted the seal, for one who may grant it."""
    cert, unit = _may_manage(principal, session, serial)
    taken = set(
        session.execute(
            select(KeyDelegate.user_id).where(KeyDelegate.key_location == cert.key_location)
        ).scalars()
    )
    return [Clerk(u.username, u.full_name) for u in _clerks(session, unit) if u.id not in taken]


@dataclass(frozen=True)
class SealView:
    """What a certificate page shows of a central seal: its users and, for one who may
    change them, the unit's users who could still be granted it."""

    listed: SealDelegates
    may_manage: bool
    clerks: list[Clerk]


def view(principal: Principal, session: Session, serial: str) -> SealView:
    listed = list_delegates(principal, session, serial)
    try:
        clerks = candidates(principal, session, serial)
    except Forbidden:
        return SealView(listed, False, [])
    return SealView(listed, True, clerks)


def _user(session: Session, username: str) -> User:
    name = (username or "").strip().lower()
    user = (
        session.execute(select(User).where(User.username == name)).scalar_one_or_none()
        if 0 < len(name) <= 100
        else None
    )
    if user is None:
        raise NotFound(f"user {username[:100]!r}", vi=f"tài khoản {username[:100]!r}")
    return user


def grant(principal: Principal, session: Session, serial: str, username: str) -> Delegate:
    """Allow ``username`` (an active clerk of the seal's unit) to apply the seal."""
    cert, unit = _may_manage(principal, session, serial)
    if cert.status is CertStatus.REVOKED or cert.not_after <= clock.now():
        raise SealNotValid(cert.serial)
    user = _user(session, username)
    if not (
        user.active
        and user.organization_id == unit.id
        and Action.DOCUMENT_SIGN in PERMISSIONS[user.role]
    ):
        raise NotAUnitClerk(f"{user.username}, {unit.name}", vi=f"{user.username}, {unit.name}")
    if session.get(KeyDelegate, (cert.key_location, user.id)) is not None:
        raise AlreadyDelegate(user.username)
    now = clock.now()
    session.add(
        KeyDelegate(
            key_location=cert.key_location,
            user_id=user.id,
            granted_by=principal.actor,
            granted_at=now,
        )
    )
    session.flush()
    record(
        session,
        Event(
            principal.actor,
            GRANTED,
            cert.serial,
            {"user": user.username, "unit": unit.public_id, "key": cert.key_location},
        ),
    )
    return Delegate(user.username, user.full_name, principal.actor, now, True)


def revoke(principal: Principal, session: Session, serial: str, username: str) -> None:
    """Take the seal from ``username``: their next consent request for it is refused."""
    cert, unit = _may_manage(principal, session, serial)
    user = _user(session, username)
    removed = session.execute(
        delete(KeyDelegate).where(
            KeyDelegate.key_location == cert.key_location, KeyDelegate.user_id == user.id
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotADelegate(user.username)
    record(
        session,
        Event(
            principal.actor,
            REVOKED,
            cert.serial,
            {"user": user.username, "unit": unit.public_id, "key": cert.key_location},
        ),
    )


def carry_over(session: Session, old: Certificate, new: Certificate, *, actor: str) -> int:
    """A renewed central seal (a new key in the HSM) is applied by the clerks of the one it
    replaces, those still active users of its unit; each one an audit entry."""
    if new.organization_id is None:
        return 0
    rows = (
        session.execute(
            select(User)
            .join(KeyDelegate, KeyDelegate.user_id == User.id)
            .where(
                KeyDelegate.key_location == old.key_location,
                User.active.is_(True),
                User.organization_id == new.organization_id,
            )
            .order_by(User.username)
        )
        .scalars()
        .all()
    )
    now = clock.now()
    count = 0
    for user in rows:
        if session.get(KeyDelegate, (new.key_location, user.id)) is not None:
            continue
        session.add(
            KeyDelegate(
                key_location=new.key_location, user_id=user.id, granted_by=actor, granted_at=now
            )
        )
        record(
            session,
            Event(
                actor,
                GRANTED,
                new.serial,
                {"user": user.username, "key": new.key_location, "renewal_of": old.serial},
            ),
        )
        count += 1
    session.flush()
    return count
