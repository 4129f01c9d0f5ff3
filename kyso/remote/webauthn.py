"""The phone's fingerprint or face as the signer's consent: W3C Web Authentication Level 2.

kyso is the relying party (RP). Its id is the host of ``KYSO_BASE_URL`` and the only origin
it accepts is that URL's (§7.1 step 9, §7.2 step 13: a page on another site cannot ask the
phone for kyso's credential, and an answer made for another site is refused). User
verification is REQUIRED (§5.8.6): the authenticator must have checked the fingerprint, face
or the phone's screen lock, not merely that someone touched it, so the UV flag must be set
in every answer. Attestation is "none" (§5.4.7): kyso trusts the phone because the user
enrolled it after typing their password again, not because of its maker's certificate.

- **Enrolment** (:func:`registration_options`, :func:`register`): the registration challenge
  is kept server-side (only its SHA-256, table ``webauthn_challenges``), bound to the user,
  used once, five minutes at most. The phone's answer names it in its clientDataJSON.
- **Approval** (:func:`approval_options`, :func:`verify_approval`): the assertion's challenge
  is the approval's own ``challenge`` column, fresh per request, so one gesture consents to
  exactly that request and the hashes it lists, and to nothing else. The signature counter
  (§6.1.1) must grow; it is advanced by a conditional UPDATE, so an assertion replayed to
  two processes at once is honoured by at most one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import webauthn as lib
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session
from webauthn.helpers import (
    base64url_to_bytes,
    options_to_json_dict,
    parse_client_data_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from kyso import clock
from kyso.errors import Conflict, KysoError
from kyso.registry.fields import new_public_id
from kyso.store.models import (
    Authenticator,
    AuthenticatorKind,
    SignApproval,
    User,
    WebAuthnChallenge,
)

if TYPE_CHECKING:
    from kyso.settings import Settings

log = logging.getLogger("kyso.remote.webauthn")

RP_NAME = "kyso – Ký số"
CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = 120_000  # how long the browser waits for the finger (a hint, §5.4 timeout)


class WebAuthnRefused(KysoError):
    """The phone's answer does not prove this user's consent (the reason is logged, not
    shown: an attacker learns nothing from the message)."""

    code = "webauthn_refused"
    http_status = 401
    message_vi = (
        "Xác nhận bằng vân tay/khuôn mặt không hợp lệ cho yêu cầu này; "
        "hãy thử lại hoặc dùng mã PIN + mã OTP."
    )
    message_en = (
        "The fingerprint/face confirmation is not valid for this request; "
        "try again or use the PIN + OTP code."
    )


class EnrolmentExpired(KysoError):
    code = "webauthn_enrolment_expired"
    http_status = 409
    message_vi = "Phiên đăng ký điện thoại đã hết hạn hoặc đã dùng; hãy bắt đầu lại."
    message_en = "The phone enrolment has expired or was already used; start again."


@dataclass(frozen=True)
class RelyingParty:
    id: str  # a host name (§5.1.2 rp.id: an IP address is not a valid RP id)
    origin: str  # scheme://host[:port], as clientDataJSON.origin carries it


def relying_party(settings: Settings) -> RelyingParty:
    parts = urlsplit(settings.base_url)
    return RelyingParty(id=parts.hostname or "localhost", origin=f"{parts.scheme}://{parts.netloc}")


def _refused(why: str, user: User) -> WebAuthnRefused:
    log.warning("WebAuthn answer of %s refused: %s", user.username, why)
    return WebAuthnRefused()


def _sha256(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _descriptor(device: Authenticator) -> PublicKeyCredentialDescriptor:
    assert device.credential_id is not None
    return PublicKeyCredentialDescriptor(
        id=device.credential_id,
        transports=[AuthenticatorTransport.INTERNAL, AuthenticatorTransport.HYBRID],
    )


def credentials_of(session: Session, user_id: int) -> list[Authenticator]:
    """The user's enrolled phones (WebAuthn, not revoked)."""
    return list(
        session.execute(
            select(Authenticator)
            .where(
                Authenticator.user_id == user_id,
                Authenticator.kind == AuthenticatorKind.WEBAUTHN,
                Authenticator.revoked_at.is_(None),
            )
            .order_by(Authenticator.id)
        ).scalars()
    )


# -- enrolment ---------------------------------------------------------------------------------
def registration_options(settings: Settings, session: Session, user: User) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptions`` (§5.4) as JSON for ``navigator.credentials.create``,
    with a fresh challenge remembered for this user. The user handle is the user's random
    public id (§14.6.1: no personal data in it); phones already enrolled are excluded, so the
    same phone is not enrolled twice."""
    rp = relying_party(settings)
    challenge = secrets.token_bytes(32)
    now = clock.now()
    session.add(
        WebAuthnChallenge(
            challenge_sha256=_sha256(challenge),
            user_id=user.id,
            created_at=now,
            expires_at=now + CHALLENGE_LIFETIME,
        )
    )
    session.flush()
    options = lib.generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=user.public_id.encode(),
        user_name=user.username,
        user_display_name=user.full_name or user.username,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=AuthenticatorAttachment.PLATFORM,
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(d) for d in credentials_of(session, user.id)],
    )
    return options_to_json_dict(options)


def _challenge_in(credential: dict[str, Any]) -> bytes | None:
    try:
        raw = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return parse_client_data_json(raw).challenge
    except (KeyError, TypeError, ValueError, WebAuthnException):
        return None


def _spend_challenge(session: Session, user: User, challenge: bytes) -> bool:
    """Mark the user's registration challenge used; False if it is unknown, another user's,
    spent or expired (one UPDATE decides between two racing answers)."""
    now = clock.now()
    result = session.execute(
        update(WebAuthnChallenge)
        .where(
            WebAuthnChallenge.challenge_sha256 == _sha256(challenge),
            WebAuthnChallenge.user_id == user.id,
            WebAuthnChallenge.used_at.is_(None),
            WebAuthnChallenge.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def register(
    settings: Settings, session: Session, user: User, credential: Any, *, name: str
) -> Authenticator:
    """Check the phone's answer to :func:`registration_options` (§7.1) and keep its
    credential: id, COSE public key and signature counter."""
    if not isinstance(credential, dict):
        raise _refused("the registration answer is not a JSON object", user)
    challenge = _challenge_in(credential)
    if challenge is None:
        raise _refused("no challenge in the registration answer", user)
    if not _spend_challenge(session, user, challenge):
        raise EnrolmentExpired()
    rp = relying_party(settings)
    try:
        verified = lib.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise _refused(f"registration: {exc}", user) from exc
    taken = session.execute(
        select(Authenticator.id).where(Authenticator.credential_id == verified.credential_id)
    ).first()
    if taken is not None:
        raise Conflict("this phone is already enrolled", vi="điện thoại này đã được đăng ký")
    device = Authenticator(
        public_id=new_public_id(),
        user_id=user.id,
        kind=AuthenticatorKind.WEBAUTHN,
        name=name[:100],
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        created_at=clock.now(),
    )
    session.add(device)
    session.flush()
    return device


def sweep(session: Session) -> int:
    """Forget registration challenges past their time (used or not)."""
    from sqlalchemy import delete

    result = session.execute(
        delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= clock.now())
    )
    return cast(CursorResult[Any], result).rowcount or 0


# -- approval ----------------------------------------------------------------------------------
def approval_options(
    settings: Settings, session: Session, approval: SignApproval
) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptions`` (§5.5) for ``navigator.credentials.get``: the
    approval's own challenge, the signer's enrolled phones, user verification required."""
    options = lib.generate_authentication_options(
        rp_id=relying_party(settings).id,
        challenge=approval.challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(d) for d in credentials_of(session, approval.user_id)],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json_dict(options)


def verify_approval(
    ctx: Any, session: Session, user: User, approval: SignApproval, proof: Any
) -> Authenticator:
    """The user's authenticator whose assertion (§7.2) over ``approval.challenge`` is valid,
    with its counter advanced; raises :class:`WebAuthnRefused` otherwise.

    Refused: an assertion over another challenge (another request, or its hashes changed),
    from a phone that is revoked or enrolled by someone else, without the UV flag, from
    another origin or RP id, with a signature that does not verify, or whose counter did not
    grow (a cloned authenticator or a replay, §6.1.1)."""
    if not isinstance(proof, dict):
        raise _refused("the assertion is not a JSON object", user)
    try:
        raw_id = base64url_to_bytes(str(proof.get("rawId") or proof.get("id") or ""))
    except ValueError as exc:
        raise _refused("the credential id is not base64url", user) from exc
    device = session.execute(
        select(Authenticator).where(
            Authenticator.credential_id == raw_id,
            Authenticator.kind == AuthenticatorKind.WEBAUTHN,
        )
    ).scalar_one_or_none()
    if device is None or device.user_id != user.id:
        raise _refused("the credential is not one of this user's phones", user)
    if device.revoked_at is not None:
        raise _refused(f"the phone {device.public_id} is revoked", user)
    assert device.public_key is not None
    rp = relying_party(ctx.settings)
    try:
        verified = lib.verify_authentication_response(
            credential=proof,
            expected_challenge=approval.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=device.public_key,
            credential_current_sign_count=device.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise _refused(f"assertion: {exc}", user) from exc
    if not verified.user_verified:  # the library checked it; kept explicit: SCAL2 needs it
        raise _refused("the phone did not verify the user", user)
    now = clock.now()
    advanced = session.execute(
        update(Authenticator)
        .where(
            Authenticator.id == device.id,
            Authenticator.sign_count == device.sign_count,
            Authenticator.revoked_at.is_(None),
        )
        .values(sign_count=verified.new_sign_count, last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], advanced).rowcount != 1:
        raise _refused("the counter moved under us (a replay in another process)", user)
    session.refresh(device)
    return device
