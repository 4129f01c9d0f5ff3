"""Consent with the phone's fingerprint or face (W3C WebAuthn §7.2), checked by
``kyso.remote.webauthn.verify_approval`` through ``approvals.approve``. The phone is a
software authenticator (tests/support/authenticator.py) producing real authenticatorData,
clientDataJSON and ECDSA signatures: only an assertion by this signer's enrolled, unrevoked
phone, with the user verified, over this very request's challenge, with a growing counter,
approves it."""

from __future__ import annotations

import base64
import hashlib

import pytest
from support.authenticator import SoftAuthenticator
from support.remote import CentralSigner, central_signer
from support.world import World, make_world

from kyso.errors import Conflict
from kyso.registry.access import Principal
from kyso.remote import approvals, enrolment, webauthn
from kyso.store.models import ApprovalPurpose, ApprovalState, Authenticator, User

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


def enrol_phone(world: World, user: User) -> SoftAuthenticator:
    """A phone enrolled straight through the relying party (the password step is
    test_enrolment's subject)."""
    ctx = world.ctx
    rp = webauthn.relying_party(ctx.settings)
    phone = SoftAuthenticator(origin=rp.origin, rp_id=rp.id)
    with ctx.db.session() as session:
        user = session.merge(user)
        options = webauthn.registration_options(ctx.settings, session, user)
        webauthn.register(ctx.settings, session, user, phone.create(options), name="iPhone của Thụ")
    return phone


def ask(world: World, signer: CentralSigner, *titles: str) -> str:
    ctx = world.ctx
    with ctx.db.session() as session:
        approval = approvals.ask(
            ctx,
            signer.principal,
            session,
            approvals.Request(
                signer=session.merge(signer.user),
                key_id=signer.key_id,
                purpose=ApprovalPurpose.CSC,
                items=[
                    approvals.ItemSpec(
                        title=t,
                        number=f"{i + 1}/QĐ-UBND",
                        digest=base64.b64encode(hashlib.sha256(t.encode()).digest()).decode(),
                    )
                    for i, t in enumerate(titles or ("Quyết định phê duyệt",))
                ],
                requester_name="Hệ thống quản lý văn bản",
            ),
        )
        return approval.public_id


def options_for(world: World, principal: Principal, public_id: str) -> dict:  # type: ignore[type-arg]
    ctx = world.ctx
    with ctx.db.read() as session:
        approval = approvals.get(principal, session, public_id)
        return webauthn.approval_options(ctx.settings, session, approval)


def state(world: World, principal: Principal, public_id: str) -> ApprovalState:
    with world.ctx.db.read() as session:
        return approvals.get(principal, session, public_id).state


def device_of(world: World, phone: SoftAuthenticator) -> Authenticator:
    with world.ctx.db.read() as session:
        return session.query(Authenticator).filter_by(credential_id=phone.credential_id).one()


def test_a_fingerprint_over_the_requests_own_challenge_approves_it_and_a_sad_follows(world):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    public_id = ask(world, signer, "Quyết định 15/QĐ-UBND", "Tờ trình 3/TTr-UBND")
    options = options_for(world, signer.principal, public_id)
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [
        base64.urlsafe_b64encode(phone.credential_id).decode().rstrip("=")
    ]

    approved = approvals.approve(world.ctx, signer.principal, public_id, phone.get(options))

    assert approved.state is ApprovalState.APPROVED
    device = device_of(world, phone)
    assert approved.authenticator_id == device.id
    assert device.sign_count == 1 and device.last_used_at is not None
    sad = approvals.collect_sad(world.ctx, signer.principal, public_id)
    assert sad is not None and sad[0].startswith("sad_")
    assert state(world, signer.principal, public_id) is ApprovalState.DONE


def test_an_assertion_over_another_requests_challenge_is_refused(world):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    first = ask(world, signer, "Công văn 1")
    second = ask(world, signer, "Công văn 2 (khác)")
    over_first = phone.get(options_for(world, signer.principal, first))

    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(world.ctx, signer.principal, second, over_first)

    assert state(world, signer.principal, second) is ApprovalState.WAITING
    assert device_of(world, phone).sign_count == 0  # the refused answer changed nothing
    approvals.approve(world.ctx, signer.principal, first, over_first)  # still good for its own
    assert state(world, signer.principal, first) is ApprovalState.APPROVED


def test_a_revoked_phone_approves_nothing(world):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    public_id = ask(world, signer)
    with world.ctx.db.session() as session:
        enrolment.revoke(
            signer.principal, session, device_of(world, phone).public_id, reason="mất điện thoại"
        )

    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(
            world.ctx,
            signer.principal,
            public_id,
            phone.get(options_for(world, signer.principal, public_id)),
        )
    assert state(world, signer.principal, public_id) is ApprovalState.WAITING


def test_another_users_phone_cannot_approve_for_this_signer(world):
    signer = central_signer(world)
    enrol_phone(world, signer.user)
    other = central_signer(world, full_name="Lê Thị Khác")
    others_phone = enrol_phone(world, other.user)
    public_id = ask(world, signer)

    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(
            world.ctx,
            signer.principal,
            public_id,
            others_phone.get(options_for(world, signer.principal, public_id)),
        )
    assert state(world, signer.principal, public_id) is ApprovalState.WAITING


def test_a_replayed_signature_counter_is_refused(world):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    first, second = ask(world, signer, "Văn bản A"), ask(world, signer, "Văn bản B")
    approvals.approve(
        world.ctx, signer.principal, first, phone.get(options_for(world, signer.principal, first))
    )

    # a cloned authenticator (or a replay) answers with a counter that did not grow
    stale = phone.get(options_for(world, signer.principal, second), count=phone.sign_count)
    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(world.ctx, signer.principal, second, stale)
    assert state(world, signer.principal, second) is ApprovalState.WAITING
    with pytest.raises(Conflict):  # the same answer again for the request it approved
        approvals.approve(
            world.ctx,
            signer.principal,
            first,
            phone.get(options_for(world, signer.principal, first)),
        )


def test_an_assertion_without_user_verification_is_refused(world):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    public_id = ask(world, signer)

    touched_only = phone.get(options_for(world, signer.principal, public_id), uv=False)
    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(world.ctx, signer.principal, public_id, touched_only)
    assert state(world, signer.principal, public_id) is ApprovalState.WAITING


@pytest.mark.parametrize(
    "forgery",
    ["another origin", "another rp id", "a changed signature", "not json"],
)
def test_an_answer_made_for_another_site_or_tampered_with_is_refused(world, forgery):
    signer = central_signer(world)
    phone = enrol_phone(world, signer.user)
    public_id = ask(world, signer)
    options = options_for(world, signer.principal, public_id)
    proof: object
    if forgery == "another origin":
        proof = phone.get(options, origin="https://kyso.example.com")
    elif forgery == "another rp id":
        proof = phone.get(options, rp_id="kyso.example.com")
    elif forgery == "a changed signature":
        proof = phone.get(options)
        sig = bytearray(base64.urlsafe_b64decode(proof["response"]["signature"] + "=="))  # type: ignore[index]
        sig[-1] ^= 1
        proof["response"]["signature"] = base64.urlsafe_b64encode(bytes(sig)).decode()  # type: ignore[index]
    else:
        proof = "not an assertion"
    with pytest.raises(webauthn.WebAuthnRefused):
        approvals.approve(world.ctx, signer.principal, public_id, proof)
    assert state(world, signer.principal, public_id) is ApprovalState.WAITING
