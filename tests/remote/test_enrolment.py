"""Enrolling a phone, replacing it with a new one, and revoking a lost one, through the
services (kyso.remote.enrolment). A phone is added only after the password (and the OTP code)
is typed again; revoking is immediate, by the owner or an officer of the owner's unit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from support.authenticator import SoftAuthenticator
from support.remote import CentralSigner, central_signer
from support.world import World, make_world

from kyso import clock
from kyso.errors import NotFound
from kyso.registry import sessions, totp
from kyso.remote import approvals, enrolment, factors, webauthn
from kyso.remote.enrolment import Reauthentication
from kyso.store.models import (
    ApprovalState,
    AuditEntry,
    AuthenticatorKind,
    PushSubscription,
    User,
    WebSession,
)

from .test_webauthn import ask, options_for, state

pytestmark = pytest.mark.softhsm
PASSWORD = "Mật-khẩu-đủ-dài-2026"


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


def with_password(world: World, signer: CentralSigner) -> CentralSigner:
    with world.ctx.db.session() as session:
        user = session.get(User, signer.user.id)
        assert user is not None
        user.password_hash = PasswordHasher().hash(PASSWORD)
    # the detached copy too: approvals.ask merges it back into its session
    signer.user.password_hash = user.password_hash
    return signer


def a_phone(world: World) -> SoftAuthenticator:
    rp = webauthn.relying_party(world.ctx.settings)
    return SoftAuthenticator(origin=rp.origin, rp_id=rp.id)


def enrol(world: World, signer: CentralSigner, step: int, name: str) -> SoftAuthenticator:
    phone = a_phone(world)
    options = enrolment.begin_phone(
        world.ctx, signer.principal, Reauthentication(PASSWORD, signer.code(step))
    )
    enrolment.finish_phone(world.ctx, signer.principal, phone.create(options), name=name)
    return phone


def actions(world: World, username: str) -> list[str]:
    with world.ctx.db.read() as session:
        return list(
            session.execute(
                select(AuditEntry.action)
                .where(AuditEntry.target == username)
                .order_by(AuditEntry.seq)
            ).scalars()
        )


def test_a_phone_is_enrolled_only_after_the_password_and_code_are_typed_again(world):
    signer = with_password(world, central_signer(world))
    ctx = world.ctx

    with pytest.raises(enrolment.IdentityNotConfirmed):
        enrolment.begin_phone(
            ctx, signer.principal, Reauthentication("sai mật khẩu", signer.code())
        )
    with pytest.raises(enrolment.CodeNeeded):  # the user has TOTP: the password is not enough
        enrolment.begin_phone(ctx, signer.principal, Reauthentication(PASSWORD))
    with ctx.db.read() as session:
        assert session.get(User, signer.user.id).failed_logins == 1  # type: ignore[union-attr]

    phone = enrol(world, signer, 0, "iPhone của Thụ")

    with ctx.db.read() as session:
        mine = enrolment.mine(signer.principal, session)
        assert [(a.kind, a.name) for a in mine if a.kind is AuthenticatorKind.WEBAUTHN] == [
            (AuthenticatorKind.WEBAUTHN, "iPhone của Thụ")
        ]
        assert enrolment.status(ctx, signer.principal, session).phones == 1
    assert "authenticator.enrolment_started" in actions(world, signer.user.username)
    assert "authenticator.enrolled" in actions(world, signer.user.username)
    public_id = ask(world, signer)
    approvals.approve(
        ctx, signer.principal, public_id, phone.get(options_for(world, signer.principal, public_id))
    )
    assert state(world, signer.principal, public_id) is ApprovalState.APPROVED


def test_a_registration_challenge_is_used_once_by_its_own_user_within_five_minutes(
    world, fake_clock
):
    signer = with_password(world, central_signer(world))
    other = with_password(world, central_signer(world, full_name="Lê Thị Khác"))
    ctx = world.ctx
    again = Reauthentication(PASSWORD, signer.code())

    options = enrolment.begin_phone(ctx, signer.principal, again)
    answer = a_phone(world).create(options)
    with pytest.raises(webauthn.EnrolmentExpired):  # another user cannot finish it
        enrolment.finish_phone(ctx, other.principal, answer, name="Điện thoại lạ")
    enrolment.finish_phone(ctx, signer.principal, answer, name="Điện thoại 1")
    with pytest.raises(webauthn.EnrolmentExpired):  # nor can it be used twice
        enrolment.finish_phone(ctx, signer.principal, a_phone(world).create(options), name="Lần 2")

    late = enrolment.begin_phone(ctx, signer.principal, Reauthentication(PASSWORD, signer.code(1)))
    fake_clock.advance(timedelta(minutes=5, seconds=1).total_seconds())
    with pytest.raises(webauthn.EnrolmentExpired):
        enrolment.finish_phone(ctx, signer.principal, a_phone(world).create(late), name="Muộn")


def test_a_new_phone_is_enrolled_beside_the_old_one_which_is_then_revoked(world):
    signer = with_password(world, central_signer(world))
    ctx = world.ctx
    old = enrol(world, signer, 0, "Samsung của Thụ")
    new = enrol(world, signer, 1, "iPhone của Thụ")
    with ctx.db.session() as session:
        old_id = next(
            a.public_id
            for a in enrolment.mine(signer.principal, session)
            if a.name.startswith("Samsung")
        )
        revoked = enrolment.revoke(signer.principal, session, old_id, reason="đổi điện thoại")
        assert revoked.revoked_at is not None

    public_id = ask(world, signer)
    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(
            ctx,
            signer.principal,
            public_id,
            old.get(options_for(world, signer.principal, public_id)),
        )
    options = options_for(world, signer.principal, public_id)
    assert len(options["allowCredentials"]) == 1  # the revoked phone is no longer offered
    approvals.approve(ctx, signer.principal, public_id, new.get(options))
    assert state(world, signer.principal, public_id) is ApprovalState.APPROVED
    assert "authenticator.revoked" in actions(world, signer.user.username)


def test_an_officer_revokes_a_lost_phone_in_their_unit_and_the_owner_is_logged_out(world):
    signer = with_password(world, central_signer(world))  # a leader of Ba Bể
    ctx = world.ctx
    lost = enrol(world, signer, 0, "Điện thoại bị mất")
    stranger = central_signer(world, full_name="Người khác")
    with ctx.db.session() as session:
        sessions.start(session, session.get(User, signer.user.id))  # the lost phone's login
        session.add(
            PushSubscription(
                user_id=signer.user.id,
                endpoint=f"https://push.example.net/{signer.user.username}",
                p256dh="x",
                auth="y",
                created_at=clock.now(),
                failures=0,
            )
        )
        device = next(
            a for a in enrolment.mine(signer.principal, session) if a.name == "Điện thoại bị mất"
        )
    with ctx.db.session() as session:
        with pytest.raises(NotFound):  # Ngân Sơn's officer does not see Ba Bể's people
            enrolment.revoke(world.who("officer_ns"), session, device.public_id)
        with pytest.raises(NotFound):  # nor does another signer
            enrolment.revoke(stranger.principal, session, device.public_id)
    with ctx.db.session() as session:
        owner, listed = enrolment.of_user(world.who("officer"), session, signer.user.public_id)
        assert owner.id == signer.user.id
        assert device.public_id in [a.public_id for a in listed]
        enrolment.revoke(world.who("officer"), session, device.public_id, reason="báo mất")

    with ctx.db.read() as session:
        assert session.query(WebSession).filter_by(user_id=signer.user.id).count() == 0
        assert session.query(PushSubscription).filter_by(user_id=signer.user.id).count() == 0
    public_id = ask(world, signer)
    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(
            ctx,
            signer.principal,
            public_id,
            lost.get(options_for(world, signer.principal, public_id)),
        )


def test_a_blocked_signing_pin_is_unblocked_by_setting_a_new_one(world):
    signer = with_password(world, central_signer(world))
    ctx = world.ctx
    public_id = ask(world, signer)
    for _ in range(ctx.settings.signing_pin_tries):
        with pytest.raises(factors.WrongSigningPin):
            approvals.approve(
                ctx, signer.principal, public_id, factors.PinAndCode("000000", signer.code())
            )
    with pytest.raises(factors.SigningPinBlocked):
        approvals.approve(
            ctx, signer.principal, public_id, factors.PinAndCode(signer.pin, signer.code())
        )
    with ctx.db.read() as session:
        assert enrolment.status(ctx, signer.principal, session).pin_blocked

    setup = enrolment.set_pin(
        ctx, signer.principal, Reauthentication(PASSWORD, signer.code()), "135792"
    )
    assert setup.was_blocked and setup.totp_uri is None  # the user keeps their OTP app

    approvals.approve(
        ctx, signer.principal, public_id, factors.PinAndCode("135792", signer.code(1))
    )
    assert state(world, signer.principal, public_id) is ApprovalState.APPROVED
    assert "signing_pin.set" in actions(world, signer.user.username)


def test_a_signer_without_an_otp_app_gets_one_to_scan_when_enrolling_the_pin(world):
    signer = with_password(world, central_signer(world))
    ctx = world.ctx
    with ctx.db.session() as session:  # as if the signer had never had TOTP nor a PIN
        user = session.get(User, signer.user.id)
        assert user is not None
        user.totp_secret_sealed = None
        user.totp_secret = None
        user.signing_pin_hash = None

    setup = enrolment.set_pin(ctx, signer.principal, Reauthentication(PASSWORD), "246813")

    assert setup.totp_secret is not None
    assert setup.totp_uri == totp.provisioning_uri(setup.totp_secret, signer.user.username)
    assert setup.totp_uri.startswith("otpauth://totp/kyso:")
    with pytest.raises(Exception, match="PIN"):
        enrolment.set_pin(ctx, signer.principal, Reauthentication(PASSWORD), "12ab")


def test_the_default_name_says_which_phone_and_whose():
    user = User(full_name="Nguyễn Thị Lan", username="lan")
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    assert enrolment.default_name(user, iphone) == "iPhone của Lan"
    android = "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 Chrome/126 Mobile"
    assert enrolment.default_name(user, android) == "Samsung của Lan"
    assert enrolment.default_name(user, None) == "Điện thoại của Lan"
