"""SCAL2 consent through the services: a request on the phone, approved with PIN + TOTP,
turned into one SAD bound to the user, the credential and the exact hashes."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from support.remote import central_signer
from support.world import make_world

from kyso.errors import Conflict
from kyso.remote import activation, approvals, factors
from kyso.remote.activation import InvalidSad, SadProblem
from kyso.remote.signer import sign_digests
from kyso.store.models import ApprovalPurpose, ApprovalState, Certificate

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


def _digests(*texts: str) -> list[bytes]:
    return [hashlib.sha256(t.encode()).digest() for t in texts]


def _ask(world, signer, digests):  # type: ignore[no-untyped-def]
    ctx = world.ctx
    with ctx.db.session() as session:
        user = session.merge(signer.user)
        approval = approvals.ask(
            ctx,
            signer.principal,
            session,
            approvals.Request(
                signer=user,
                key_id=signer.key_id,
                purpose=ApprovalPurpose.CSC,
                items=[
                    approvals.ItemSpec(title=f"Hash {i + 1}", digest=base64.b64encode(d).decode())
                    for i, d in enumerate(digests)
                ],
                requester_name="Hệ thống quản lý văn bản",
            ),
        )
        return approval.public_id


def _approve_and_collect(world, signer, public_id, offset=0):  # type: ignore[no-untyped-def]
    ctx = world.ctx
    approvals.approve(
        ctx, signer.principal, public_id, factors.PinAndCode(signer.pin, signer.code(offset))
    )
    found = approvals.collect_sad(ctx, signer.principal, public_id)
    assert found is not None
    return found[0]


def test_an_approved_request_signs_its_hashes_once_and_the_signature_verifies(world):
    ctx = world.ctx
    signer = central_signer(world)
    digests = _digests("quyết định 1", "quyết định 2")
    public_id = _ask(world, signer, digests)
    with ctx.db.read() as session:
        assert [a.public_id for a in approvals.pending(signer.principal, session)] == [public_id]
    sad = _approve_and_collect(world, signer, public_id)
    with ctx.db.read() as session:
        approval = approvals.get(signer.principal, session, public_id)
        binding = approvals.binding_of(approval)
        assert approval.state is ApprovalState.DONE
        cert = x509.load_der_x509_certificate(
            session.query(Certificate).filter_by(serial=signer.serial).one().der
        )
    signatures = sign_digests(ctx, signer.principal, sad, binding, digests, entry="api")
    for digest, signature in zip(digests, signatures, strict=True):
        cert.public_key().verify(  # type: ignore[union-attr]
            signature,
            digest,
            padding.PKCS1v15(),  # type: ignore[call-arg]
            __import__(
                "cryptography.hazmat.primitives.asymmetric.utils", fromlist=["Prehashed"]
            ).Prehashed(hashes.SHA256()),
        )
    with pytest.raises(InvalidSad) as replay:
        sign_digests(ctx, signer.principal, sad, binding, digests, entry="api")
    assert replay.value.problem is SadProblem.USED
    with pytest.raises(Conflict):  # the SAD is handed out once
        approvals.collect_sad(ctx, signer.principal, public_id)


@pytest.mark.parametrize("change", ["hash", "count", "credential", "user"])
def test_a_sad_used_for_anything_else_is_refused_and_burnt(world, change):
    ctx = world.ctx
    signer = central_signer(world)
    other = central_signer(world, full_name="Lê Thị Khác")
    digests = _digests("tờ trình", "phụ lục")
    sad = _approve_and_collect(world, signer, _ask(world, signer, digests))
    with ctx.db.read() as session:
        binding = approvals.binding_of(
            approvals.get(signer.principal, session, _last(session, signer))
        )
    wanted = binding
    signed = digests
    if change == "hash":
        signed = _digests("tờ trình", "phụ lục ĐÃ SỬA")
        wanted = activation.Binding(
            binding.key_location,
            binding.hash_algorithm,
            tuple(base64.b64encode(d).decode() for d in signed),
            binding.user_id,
        )
    elif change == "count":
        signed = digests[:1]
        wanted = activation.Binding(
            binding.key_location, binding.hash_algorithm, binding.hashes[:1], binding.user_id
        )
    elif change == "credential":
        wanted = activation.Binding(
            "hsm:" + other.key_id, binding.hash_algorithm, binding.hashes, binding.user_id
        )
    else:
        wanted = activation.Binding(
            binding.key_location, binding.hash_algorithm, binding.hashes, other.user.id
        )
    expected = {
        "hash": SadProblem.OTHER_HASHES,
        "count": SadProblem.OTHER_HASHES,
        "credential": SadProblem.OTHER_CREDENTIAL,
        "user": SadProblem.OTHER_SIGNER,
    }[change]
    with pytest.raises(InvalidSad) as refused:
        sign_digests(ctx, signer.principal, sad, wanted, signed, entry="api")
    assert refused.value.problem is expected
    with pytest.raises(InvalidSad) as again:  # burnt: not even the right use works now
        sign_digests(ctx, signer.principal, sad, binding, digests, entry="api")
    assert again.value.problem is SadProblem.USED


def _last(session, signer):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from kyso.store.models import SignApproval

    return session.scalars(
        select(SignApproval.public_id)
        .where(SignApproval.user_id == signer.user.id)
        .order_by(SignApproval.id.desc())
        .limit(1)
    ).one()


def test_an_expired_sad_and_an_expired_request_are_refused(world):
    from datetime import timedelta

    from kyso import clock

    ctx = world.ctx
    signer = central_signer(world)
    digests = _digests("hết hạn")
    public_id = _ask(world, signer, digests)
    later = clock.FakeClock(clock.now() + timedelta(seconds=ctx.settings.approval_seconds + 1))
    with clock.using(later), pytest.raises(Conflict):
        approvals.approve(
            ctx, signer.principal, public_id, factors.PinAndCode(signer.pin, signer.code())
        )
    public_id = _ask(world, signer, digests)
    sad = _approve_and_collect(world, signer, public_id, offset=1)
    with ctx.db.read() as session:
        binding = approvals.binding_of(approvals.get(signer.principal, session, public_id))
    later = clock.FakeClock(clock.now() + timedelta(seconds=ctx.settings.sad_seconds + 1))
    with clock.using(later), pytest.raises(InvalidSad) as expired:
        sign_digests(ctx, signer.principal, sad, binding, digests, entry="api")
    assert expired.value.problem is SadProblem.EXPIRED


def test_wrong_pins_are_counted_and_block_the_pin(world):
    ctx = world.ctx
    signer = central_signer(world)
    public_id = _ask(world, signer, _digests("PIN"))
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
        assert approvals.get(signer.principal, session, public_id).state is ApprovalState.WAITING


def test_another_user_cannot_see_or_approve_a_request(world):
    ctx = world.ctx
    signer = central_signer(world)
    other = central_signer(world, full_name="Người Khác")
    public_id = _ask(world, signer, _digests("riêng"))
    with pytest.raises(Exception) as refused:
        approvals.approve(
            ctx, other.principal, public_id, factors.PinAndCode(other.pin, other.code())
        )
    assert getattr(refused.value, "code", None) == "not_found"
