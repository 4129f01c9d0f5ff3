"""Signers whose keys are in the central HSM, with the PIN + TOTP fallback enrolled, for the
remote-signing tests (tests/remote) and the pages that use central keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.keys.base import KeyAlgorithm
from kyso.pki import issuance
from kyso.registry import totp
from kyso.registry.access import Principal
from kyso.remote import factors
from kyso.store.models import Certificate, KeyDelegate, Person, Profile, Role, User
from support.world import World, new_cccd

PIN = "482915"


@dataclass
class CentralSigner:
    user: User
    principal: Principal
    key_id: str  # in the central store (certificate key_location "hsm:<key_id>")
    serial: str
    totp_secret: str
    pin: str = PIN

    def code(self, offset_steps: int = 0) -> str:
        """The TOTP code now (or ``offset_steps`` periods later: a code is accepted once)."""
        return totp.code_at(self.totp_secret, clock.timestamp() + 30 * offset_steps)


def central_signer(
    world: World, unit: str = "babe", *, full_name: str = "Hoàng Văn Thụ", rsa: bool = True
) -> CentralSigner:
    """A leader of ``unit`` with a person record, a user, an individual certificate whose key
    was made in the central HSM, and the PIN + TOTP authenticator enrolled."""
    ctx = world.ctx
    org = world.unit(unit)
    tag = secrets.token_hex(3)
    now = clock.now()
    with ctx.db.session() as session:
        person = Person(
            public_id=secrets.token_hex(8),
            full_name=full_name,
            date_of_birth=date(1975, 5, 19),
            id_number=new_cccd(date(1975, 5, 19)),
            organization_id=org.id,
            position="Chủ tịch",
            email=f"leader.{tag}@backan.gov.vn",
            created_at=now,
            updated_at=now,
        )
        session.add(person)
        session.flush()
        user = User(
            public_id=secrets.token_hex(8),
            username=f"leader-{tag}",
            full_name=full_name,
            email=person.email,
            password_hash="!",
            role=Role.SIGNER,
            organization_id=org.id,
            person_id=person.id,
            password_changed_at=now,
            created_at=now,
            active=True,
            failed_logins=0,
        )
        session.add(user)
        session.flush()
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.INDIVIDUAL,
            subject=f"CN={full_name},O={org.name},C=VN",
            algorithm=KeyAlgorithm.RSA_2048 if rsa else KeyAlgorithm.EC_P256,
            actor="cli:test",
            store=ctx.central,
        )
        _link(session, issued.row.id, person_id=person.id, organization_id=org.id)
        enrolment = factors.enrol_pin_and_code(
            session, user, PIN, name="Điện thoại", actor="cli:test"
        )
        assert enrolment.totp_secret is not None
        principal = Principal(
            actor=f"user:{user.username}",
            role=Role.SIGNER,
            user_id=user.id,
            organization_id=org.id,
            org_path=org.path,
        )
        key_id = issued.row.key_location.split(":", 1)[1]
        return CentralSigner(user, principal, key_id, issued.row.serial, enrolment.totp_secret)


def central_seal(world: World, unit: str, delegates: list[User]) -> tuple[str, str]:
    """A unit's seal (organization certificate) with its key in the central HSM, usable by
    ``delegates``; (key id, serial)."""
    ctx = world.ctx
    org = world.unit(unit)
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.ORGANIZATION,
            subject=f"CN={org.name},O={org.name},C=VN",
            algorithm=KeyAlgorithm.RSA_2048,
            actor="cli:test",
            store=ctx.central,
        )
        _link(session, issued.row.id, organization_id=org.id)
        for user in delegates:
            session.add(
                KeyDelegate(
                    key_location=issued.row.key_location,
                    user_id=user.id,
                    granted_by="cli:test",
                    granted_at=clock.now(),
                )
            )
        return issued.row.key_location.split(":", 1)[1], issued.row.serial


def _link(session: Session, certificate_id: int, **values: int) -> None:
    session.execute(update(Certificate).where(Certificate.id == certificate_id).values(**values))
