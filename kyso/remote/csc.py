"""The Cloud Signature Consortium API over kyso's central keys (CSC API v1.0.4.0 and v2.0.0).

This module is the service: it reads a request's parsed JSON, applies the rules and returns
the answer's JSON; :mod:`kyso.web.csc_api` only moves bytes. A credential (``credentialID``)
is a key in the central HSM (:mod:`kyso.remote.central`) with a valid certificate; a person
sees their own keys and the unit seals delegated to them (:mod:`kyso.signing.keyuse`), a
system names the person it acts for (``userID``, a user name).

SCAL2 (CSC v1 §8.1.2 / v2 §8.1.2, CEN EN 419 241-1 §7.5): ``credentials/authorize`` lists
the exact hashes (``numSignatures`` of them, at most ``KYSO_APPROVAL_BATCH_MAX``) and returns
a single-use SAD bound to the person (and the system that asked), the credential, the hash
algorithm and exactly those hashes (:mod:`kyso.remote.activation`). Consent is given either
with the signing PIN and the TOTP code of the person's authenticator app in the request
(``PIN`` + ``OTP``; v2 ``authData``), checked at once, or on the person's phone
(:mod:`kyso.remote.approvals`), for which v1 waits (``KYSO_CSC_WAIT_SECONDS``) and v2 either
waits (``operationMode`` "S") or answers at once with a ``requestID`` to poll with
``credentials/authorizeCheck`` ("A").

Errors follow the specification's form (v1 §10.1, v2 §10.1): ``{"error",
"error_description"}`` with its HTTP status; :func:`answer_for` maps kyso's errors to them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kyso.errors import Conflict, Forbidden, InvalidInput, KysoError, NotFound, TooManyRequests
from kyso.registry import users
from kyso.remote import activation, approvals, factors
from kyso.remote.activation import InvalidSad, SadProblem
from kyso.remote.central import PREFIX, STORE_NAME
from kyso.remote.csc_tokens import Caller, InvalidClient, InvalidToken, LoginFailed, TokenProblem
from kyso.remote.signer import HASH_OIDS
from kyso.signing import keyuse
from kyso.signing.levels import Level
from kyso.store.models import ApprovalPurpose, ApprovalState, User

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.signing.identity import SignerIdentity

log = logging.getLogger("kyso.remote")

V1, V2 = "v1", "v2"
SPECS = {V1: "1.0.4.0", V2: "2.0.0.2"}
SHA256_OID = "2.16.840.1.101.3.4.2.1"
_DIGEST_OIDS = {32: SHA256_OID, 48: "2.16.840.1.101.3.4.2.2", 64: "2.16.840.1.101.3.4.2.3"}
_SIZES = {oid: h.digest_size for oid, h in HASH_OIDS.items()}

# Signature algorithms (RFC 8017 A.2.4, RFC 5758 §3.2) and the hash each implies, by key type.
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SIGN_ALGOS: dict[str, tuple[str, str | None]] = {
    RSA_ENCRYPTION: ("rsa", None),  # PKCS#1 v1.5 over hashAlgo's digest
    "1.2.840.113549.1.1.11": ("rsa", "2.16.840.1.101.3.4.2.1"),  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": ("rsa", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.113549.1.1.13": ("rsa", "2.16.840.1.101.3.4.2.3"),
    EC_PUBLIC_KEY: ("ec", None),
    "1.2.840.10045.4.3.2": ("ec", "2.16.840.1.101.3.4.2.1"),  # ecdsa-with-SHA256
    "1.2.840.10045.4.3.3": ("ec", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.10045.4.3.4": ("ec", "2.16.840.1.101.3.4.2.3"),
}
CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34"}
CONFORMANCE = {
    "ades-b-b": Level.B_B,
    "ades-b": Level.B_B,
    "ades-b-t": Level.B_T,
    "ades-t": Level.B_T,
    "ades-b-lt": Level.B_LT,
    "ades-lt": Level.B_LT,
    "ades-b-lta": Level.B_LTA,
    "ades-lta": Level.B_LTA,
}
_POLL_SECONDS = 0.5
METHODS = {
    V1: [
        "auth/login",
        "auth/revoke",
        "oauth2/token",
        "credentials/list",
        "credentials/info",
        "credentials/authorize",
        "credentials/sendOTP",
        "signatures/signHash",
        "signatures/timestamp",
    ],
    V2: [
        "auth/login",
        "auth/revoke",
        "oauth2/token",
        "credentials/list",
        "credentials/info",
        "credentials/authorize",
        "credentials/authorizeCheck",
        "credentials/sendOTP",
        "signatures/signHash",
        "signatures/signDoc",
        "signatures/timestamp",
    ],
}


class CscError(KysoError):
    """An error in the CSC API's own words: ``error`` code, ``error_description``, status."""

    code = "csc_error"

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.http_status = status


def invalid(description: str) -> CscError:
    return CscError("invalid_request", description)


def missing(kind: str, name: str) -> CscError:
    return invalid(f"Missing (or invalid type) {kind} parameter {name}")


@dataclass(frozen=True)
class Answer:
    """A CSC answer: HTTP status and JSON body (None: no content)."""

    status: int
    body: dict[str, Any] | None


def answer_for(exc: KysoError) -> Answer:
    """The CSC error for a kyso error (v1/v2 §10.1); never a 500 for the caller's mistake."""
    if isinstance(exc, CscError):
        return _error(exc.error, exc.description, exc.http_status)
    if isinstance(exc, InvalidToken):
        text = {
            TokenProblem.MISSING: "The request is missing an access token",
            TokenProblem.INVALID: "The access token is not valid",
            TokenProblem.EXPIRED: "The access token has expired",
        }[exc.problem]
        return _error("invalid_token", text, 401)
    if isinstance(exc, InvalidSad):
        return _error(
            "invalid_request", "SAD expired" if exc.problem is SadProblem.EXPIRED else "Invalid SAD"
        )
    if isinstance(exc, keyuse.KeyNotAllowed):
        return _error("invalid_request", "Invalid parameter credentialID")
    if isinstance(exc, factors.WrongSigningPin):
        return _error("invalid_pin", "The PIN or the OTP is not valid")
    if isinstance(exc, factors.SigningPinBlocked):
        return _error("invalid_request", "The signing PIN is locked after too many wrong tries")
    if isinstance(exc, factors.NoAuthenticator):
        return _error("invalid_request", "The signer has not enrolled a phone to approve")
    if isinstance(exc, LoginFailed):
        return _error("authentication_error", exc.message("en"), 401)
    if isinstance(exc, InvalidClient):
        return _error("invalid_client", "Client authentication failed", 401)
    if isinstance(exc, TooManyRequests):
        return _error("too_many_requests", exc.message("en"), 429)
    if isinstance(exc, Forbidden):
        return _error("access_denied", exc.message("en"), 403)
    if isinstance(exc, InvalidInput | NotFound | Conflict) or exc.http_status < 500:
        return _error("invalid_request", exc.message("en"))
    if exc.http_status == 503:  # the HSM is unreachable for now (RFC 6749 §4.1.2.1's word)
        log.warning("CSC request: the key store is unavailable: %s", exc.message("en"))
        return _error(
            "temporarily_unavailable", "The signing HSM is unavailable; try again shortly", 503
        )
    return _error("server_error", exc.message("en"), 500)


def _error(error: str, description: str, status: int = 400) -> Answer:
    return Answer(status, {"error": error, "error_description": description})


# -- reading parameters ----------------------------------------------------------------------
def _str(body: Mapping[str, Any], name: str, *, required: bool = True, limit: int = 1000) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise missing("string", name)
    return value


def _int(body: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise missing("integer", name)
    return value


def _bool(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise missing("boolean", name)
    return value


def _hash_name(version: str) -> str:
    return "hash" if version == V1 else "hashes"


def _hash_oid_name(version: str) -> str:
    return "hashAlgo" if version == V1 else "hashAlgorithmOID"


def _hashes(body: Mapping[str, Any], version: str, limit: int) -> list[str]:
    """The base64 hashes of a request (v1 ``hash``, v2 ``hashes``), each one decoded once."""
    name = _hash_name(version)
    value = body.get(name)
    if not isinstance(value, list):
        raise missing("array", name)
    if not value:
        raise invalid("Empty hash array")
    if len(value) > limit:
        raise invalid(f"Invalid parameter {name}: at most {limit} hashes in one request")
    for item in value:
        if not isinstance(item, str) or len(item) > 200:
            raise invalid(f"Invalid Base64 {name} string parameter")
        try:
            base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"Invalid Base64 {name} string parameter") from None
    return list(value)


def _hash_oid(body: Mapping[str, Any], version: str, hashes: Sequence[str]) -> str:
    """The hashes' algorithm: named (v2 ``hashAlgorithmOID``; v1 has none in authorize, so
    it is read from the hashes' length) and matching every hash's length."""
    name = _hash_oid_name(version)
    given = body.get(name)
    lengths = {len(base64.b64decode(h)) for h in hashes}
    if given is None and version == V1 and len(lengths) == 1:
        given = _DIGEST_OIDS.get(next(iter(lengths)))
    if given is None:
        raise missing("string", name)
    if not isinstance(given, str):
        raise missing("string", name)
    if given not in HASH_OIDS:
        raise invalid(f"Invalid parameter {name}")
    if lengths != {_SIZES[given]}:
        raise invalid(f"Invalid parameter {_hash_name(version)}")
    return given


# -- who signs, with which credential ------------------------------------------------------------
def _signer(session: Any, caller: Caller, body: Mapping[str, Any]) -> User:
    """The person whose key signs: the caller, or for a system the person it names
    (``userID``, their user name), whose phone then approves. A person may not name
    someone else (CSC v1 §11.4: "SHALL NOT be allowed … a different user")."""
    from kyso.signing.keyuse import require_signer

    require_signer(caller.principal)
    named = body.get("userID")
    if named is not None and not isinstance(named, str):
        raise missing("string", "userID")
    if caller.user is not None:
        if named is not None and named.strip().lower() != caller.user.username:
            raise invalid("Invalid parameter userID")
        user = session.get(User, caller.user.id)
    else:
        if not named:
            raise missing("string", "userID")
        user = users.by_username(session, named.strip().lower())
    if user is None or not user.active:
        raise invalid("Invalid parameter userID")
    return user  # type: ignore[no-any-return]


def _credential(session: Any, caller: Caller, signer: User, credential_id: str) -> keyuse.UsableKey:
    """The central key ``credential_id`` if ``signer`` may use it now and, for a system, if
    the system was given it (``kyso api-client create --key``, as for ``/api/v1/sign``);
    otherwise the same refusal whether it exists or not."""
    key = keyuse.authorize(
        approvals.signer_principal(session, signer), session, STORE_NAME, credential_id
    )
    if caller.is_system:
        keyuse.authorize(caller.principal, session, STORE_NAME, credential_id)
    return key


def _key_type(key: keyuse.UsableKey) -> str:
    public = x509.load_der_x509_certificate(key.certificate_der).public_key()
    return "rsa" if isinstance(public, rsa.RSAPublicKey) else "ec"


# -- info, credentials/list, credentials/info ---------------------------------------------------
def info(ctx: Context, version: str) -> dict[str, Any]:
    """``info`` (v1 §11.1, v2 §11.1): who this service is and what it offers."""
    base = ctx.settings.base_url
    answer: dict[str, Any] = {
        "specs": SPECS[version],
        "name": "kyso",
        "logo": f"{base}/static/favicon.svg",
        "region": "VN",
        "lang": "vi-VN",
        "description": "kyso: chữ ký số tập trung (HSM), xác nhận trên điện thoại",
        "authType": ["basic", "oauth2client"],
        "oauth2": base,
        "methods": METHODS[version],
    }
    if version == V2:
        answer.update(
            {
                "asynchronousOperationMode": True,
                "validationInfo": False,
                "signAlgorithms": {"algos": sorted(SIGN_ALGOS)},
                "signature_formats": {
                    "formats": ["C", "X", "P"],
                    "envelope_properties": [
                        ["Detached", "Enveloping"],
                        ["Enveloped"],
                        ["Revision"],
                    ],
                },
                "conformance_levels": ["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"],
            }
        )
    return answer


def list_credentials(ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]) -> dict:
    """``credentials/list``: the central keys the person may use (their own, then seals
    delegated to them); a system lists those of the person it names."""
    limit = _int(body, "maxResults", required=False)
    if limit is not None and not 1 <= limit <= 1000:
        raise invalid("Invalid parameter maxResults")
    with_info = _bool(body, "credentialInfo") if version == V2 else False
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        keys = keyuse.usable_keys(
            approvals.signer_principal(session, signer), session, STORE_NAME, limit=limit or 200
        )
        if caller.is_system:  # only the keys the system was given
            given = {k.key_id for k in keyuse.usable_keys(caller.principal, session, STORE_NAME)}
            keys = [k for k in keys if k.key_id in given]
        answer: dict[str, Any] = {"credentialIDs": [k.key_id for k in keys]}
        if with_info:
            answer["credentialInfos"] = [
                {"credentialID": k.key_id, **_describe(ctx, k, version, body)} for k in keys
            ]
    if version == V2:
        answer["onlyValid"] = True
    return answer


def credential_info(ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]) -> dict:
    """``credentials/info`` (v1 §11.5, v2 §11.5): the key, its certificate (none, single
    or the chain, the signer's first), explicit authorization with PIN + OTP, SCAL 2."""
    credential_id = _str(body, "credentialID", limit=200)
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        try:
            key = _credential(session, caller, signer, credential_id)
        except keyuse.KeyNotAllowed:
            raise invalid("Invalid parameter credentialID") from None
    return _describe(ctx, key, version, body)


def _describe(
    ctx: Context, key: keyuse.UsableKey, version: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    which = body.get("certificates", "single")
    if which not in ("none", "single", "chain"):
        raise invalid("Invalid parameter certificates")
    cert_info = _bool(body, "certInfo")
    cert = x509.load_der_x509_certificate(key.certificate_der)
    public = cert.public_key()
    key_part: dict[str, Any] = {"status": "enabled"}
    if isinstance(public, rsa.RSAPublicKey):
        key_part["algo"] = [o for o, (kind, _h) in SIGN_ALGOS.items() if kind == "rsa"]
        key_part["len"] = public.key_size
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key_part["algo"] = [o for o, (kind, _h) in SIGN_ALGOS.items() if kind == "ec"]
        key_part["len"] = public.curve.key_size
        key_part["curve"] = CURVE_OIDS.get(public.curve.name, public.curve.name)
    cert_part: dict[str, Any] = {"status": "valid"}
    if which != "none":
        ders = [key.certificate_der]
        if which == "chain":
            from cryptography.hazmat.primitives.serialization import Encoding

            ders += [i.certificate.public_bytes(Encoding.DER) for i in ctx.authority.chain()]
        cert_part["certificates"] = [base64.b64encode(d).decode() for d in ders]
    if cert_info:
        cert_part.update(
            {
                "issuerDN": cert.issuer.rfc4514_string(),
                "serialNumber": format(cert.serial_number, "X"),
                "subjectDN": cert.subject.rfc4514_string(),
                "validFrom": cert.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
                "validTo": cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
            }
        )
    pin_text = "Mã PIN ký (6–12 chữ số) / signing PIN"
    otp_text = "Mã 6 chữ số trong ứng dụng xác thực / code from the authenticator app"
    answer: dict[str, Any] = {
        "description": f"{key.holder}" + (f" — {key.unit}" if key.unit else ""),
        "key": key_part,
        "cert": cert_part,
        "SCAL": "2",
        "multisign": ctx.settings.approval_batch_max,
        "lang": "vi-VN",
    }
    if version == V1:
        answer["authMode"] = "explicit"
        # Both or neither: without them the request waits for the approval on the phone.
        answer["PIN"] = {
            "presence": "optional",
            "format": "N",
            "label": "PIN",
            "description": pin_text,
        }
        answer["OTP"] = {
            "presence": "optional",
            "type": "offline",
            "format": "N",
            "label": "OTP",
            "description": otp_text,
            "ID": "kyso-totp",
            "provider": "kyso",
        }
    else:
        answer["auth"] = {
            "mode": "explicit",
            "expression": "PIN AND OTP",
            "objects": [
                {
                    "type": "Password",
                    "id": "PIN",
                    "format": "N",
                    "label": "PIN",
                    "description": pin_text,
                },
                {
                    "type": "Password",
                    "id": "OTP",
                    "format": "N",
                    "generator": "totp",
                    "label": "OTP",
                    "description": otp_text,
                },
            ],
        }
    return answer


# -- credentials/authorize ------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizeRequest:
    signer_id: int
    key_id: str
    hashes: tuple[str, ...]
    hash_oid: str
    pin: str | None
    otp: str | None
    description: str | None
    asynchronous: bool


def _read_authorize(
    ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]
) -> AuthorizeRequest:
    credential_id = _str(body, "credentialID", limit=200)
    count = _int(body, "numSignatures")
    hashes = _hashes(body, version, ctx.settings.approval_batch_max)
    if count != len(hashes) or count is None or count < 1:
        raise invalid("Invalid parameter numSignatures")
    hash_oid = _hash_oid(body, version, hashes)
    pin, otp = _factors(body, version)
    description = _str(body, "description", required=False, limit=500)
    mode = body.get("operationMode", "S") if version == V2 else "S"
    if mode not in ("A", "S"):
        raise invalid("Invalid parameter operationMode")
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        try:
            key = _credential(session, caller, signer, credential_id)
        except keyuse.KeyNotAllowed:
            raise invalid("Invalid parameter credentialID") from None
        signer_id = signer.id
    return AuthorizeRequest(
        signer_id, key.key_id, tuple(hashes), hash_oid, pin, otp, description, mode == "A"
    )


def _factors(body: Mapping[str, Any], version: str) -> tuple[str | None, str | None]:
    """The PIN and the OTP (v1 ``PIN``/``OTP``; v2 ``authData`` items ``PIN`` and ``OTP``):
    both, or neither (then the phone approves)."""
    if version == V1:
        pin = _str(body, "PIN", required=False, limit=100)
        otp = _str(body, "OTP", required=False, limit=100)
    else:
        data = body.get("authData")
        found: dict[str, str] = {}
        if data is not None:
            if not isinstance(data, list):
                raise missing("array", "authData")
            for item in data:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    raise invalid("Invalid parameter authData")
                value = item.get("value")
                if not isinstance(value, str) or len(value) > 100:
                    raise invalid(f"Invalid parameter authData: {item['id']}")
                found[item["id"]] = value
        pin, otp = found.get("PIN"), found.get("OTP")
    if (pin is None) != (otp is None):
        raise missing("string", "OTP" if otp is None else "PIN")
    return pin, otp


def _ask(ctx: Context, caller: Caller, request: AuthorizeRequest) -> str:
    count = len(request.hashes)
    title = (request.description or "Chữ ký qua CSC API")[:250]
    with ctx.db.session() as session:
        signer = session.get(User, request.signer_id)
        assert signer is not None
        approval = approvals.ask(
            ctx,
            caller.principal,
            session,
            approvals.Request(
                signer=signer,
                key_id=request.key_id,
                purpose=ApprovalPurpose.CSC,
                items=[
                    approvals.ItemSpec(title=f"{title} ({i + 1}/{count})", digest=digest)
                    for i, digest in enumerate(request.hashes)
                ],
                hash_algorithm=request.hash_oid,
                requester_name=caller.client_name or "CSC API",
                description=request.description,
            ),
        )
        return approval.public_id


def _consent_with_pin(
    ctx: Context, caller: Caller, request: AuthorizeRequest, public_id: str
) -> Answer:
    assert request.pin is not None and request.otp is not None
    with ctx.db.read() as session:
        signer = session.get(User, request.signer_id)
        assert signer is not None
        principal = approvals.signer_principal(session, signer)
    try:
        approvals.approve(ctx, principal, public_id, factors.PinAndCode(request.pin, request.otp))
    except KysoError:
        # The request leaves the phone: nobody but this client could collect its SAD.
        try:
            with ctx.db.session() as session:
                approvals.refuse(principal, session, public_id, "PIN/OTP sai qua CSC API")
        except KysoError:  # already decided elsewhere: the first error is the answer
            log.warning("could not take approval %s off the phone", public_id)
        raise
    found = approvals.collect_sad(ctx, caller.principal, public_id)
    assert found is not None
    return _sad(found)


def _sad(found: tuple[str, int]) -> Answer:
    sad, seconds = found
    return Answer(200, {"SAD": sad, "expiresIn": seconds})


def _announce(ctx: Context, public_id: str) -> None:
    """Web Push to the signer's phone when :mod:`kyso.remote.push` is installed; without it
    the phone's page finds the request by polling, so nothing is lost, only later."""
    try:
        from kyso.remote import push  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    try:  # in the background when it can: the push services may be slow to answer
        later = getattr(push, "announce_in_background", None)
        (later or push.announce)(ctx, public_id)
    except Exception:  # a push service's failure never loses the request
        log.exception("announcing approval %s to the phone failed", public_id)


def start_authorize(
    ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]
) -> tuple[Answer | None, str]:
    """The first, blocking part of ``credentials/authorize``: the request checked and put
    on the phone; with PIN + OTP, consent checked at once and the SAD issued. Returns the
    answer when there is one now, and the approval's id."""
    request = _read_authorize(ctx, caller, version, body)
    public_id = _ask(ctx, caller, request)
    if request.pin is not None:
        return _consent_with_pin(ctx, caller, request, public_id), public_id
    _announce(ctx, public_id)
    if request.asynchronous:
        return Answer(
            202, {"requestID": public_id, "expiresIn": ctx.settings.approval_seconds}
        ), public_id
    return None, public_id


def check(ctx: Context, caller: Caller, public_id: str) -> Answer | None:
    """Where a phone approval stands: None while it waits; the SAD once approved (handed
    out once); the CSC error when it was refused or expired."""
    with ctx.db.session() as session:
        try:
            approval = approvals.get(caller.principal, session, public_id)
        except NotFound:
            raise invalid("Invalid parameter requestID") from None
        if approval.purpose is not ApprovalPurpose.CSC:
            raise invalid("Invalid parameter requestID")
        state = approval.state
        if state is ApprovalState.WAITING:
            return None
        if state is ApprovalState.REFUSED:
            raise CscError("access_denied", "The signer refused the request on the phone")
        if state is ApprovalState.EXPIRED:
            raise CscError("expired_request", "The signer did not approve in time")
        if approval.sad_issued:
            raise invalid("The SAD of this request was already returned")
        return _sad(approvals.claim_sad(ctx, session, approval))


async def authorize(ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]) -> Answer:
    """``credentials/authorize``: with PIN + OTP the SAD at once; otherwise the request on
    the phone, then (v1, v2 "S") the SAD when the signer approves, waiting at most
    ``KYSO_CSC_WAIT_SECONDS`` (polling the database, so any kyso process may record the
    approval), or (v2 "A") a ``requestID`` for ``credentials/authorizeCheck``."""
    now, public_id = await asyncio.to_thread(start_authorize, ctx, caller, version, body)
    if now is not None:
        return now
    deadline = time.monotonic() + ctx.settings.csc_wait_seconds
    while True:
        found = await asyncio.to_thread(check, ctx, caller, public_id)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise CscError("expired_request", "The signer did not approve in time")
        await asyncio.sleep(_POLL_SECONDS)


def authorize_check(ctx: Context, caller: Caller, body: Mapping[str, Any]) -> Answer:
    """v2 ``credentials/authorizeCheck``: 202 and ``"pending"`` while the phone waits."""
    public_id = _str(body, "requestID", limit=100)
    found = check(ctx, caller, public_id)
    if found is None:
        return Answer(202, {"requestID": public_id, "status": "pending"})
    return found


def send_otp(ctx: Context, caller: Caller, body: Mapping[str, Any]) -> Answer:
    """``credentials/sendOTP`` is for online OTPs (v1 §11.7: the service sends them). kyso's
    OTP is offline — the TOTP code of the person's authenticator app — so there is nothing
    to send: the credential is checked, then the request is refused saying so."""
    credential_id = _str(body, "credentialID", limit=200)
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        try:
            _credential(session, caller, signer, credential_id)
        except keyuse.KeyNotAllowed:
            raise invalid("Invalid parameter credentialID") from None
    raise invalid("The OTP is offline (TOTP): read it from the authenticator app; nothing is sent")


# -- signatures/signHash ----------------------------------------------------------------------
def _hash_for(sign_algo: str, key_type: str, hash_oid: str | None, version: str) -> str:
    """The hash a signature algorithm uses with this key (refused if the key is of another
    type: an RSA key does not make ECDSA signatures)."""
    found = SIGN_ALGOS.get(sign_algo)
    if found is None or found[0] != key_type:
        raise invalid("Invalid parameter signAlgo")
    implied = found[1]
    if hash_oid is not None and hash_oid not in HASH_OIDS:
        raise invalid(f"Invalid parameter {_hash_oid_name(version)}")
    if implied is not None and hash_oid is not None and implied != hash_oid:
        raise invalid(f"Invalid parameter {_hash_oid_name(version)}")
    chosen = implied or hash_oid
    if chosen is None:
        raise missing("string", _hash_oid_name(version))
    return chosen


def sign_hash(ctx: Context, caller: Caller, version: str, body: Mapping[str, Any]) -> dict:
    """``signatures/signHash``: the SAD spent on exactly its hashes, each signed by the
    central key (PKCS#1 v1.5 or ECDSA); the signatures in the request's order."""
    from kyso.remote.signer import sign_digests

    credential_id = _str(body, "credentialID", limit=200)
    sad = _str(body, "SAD", limit=200)
    hashes = _hashes(body, version, ctx.settings.approval_batch_max)
    sign_algo = _str(body, "signAlgo", limit=100)
    if body.get("signAlgoParams") is not None:
        raise invalid("Invalid parameter signAlgoParams")  # RSASSA-PSS is not offered
    hash_oid = _str(body, _hash_oid_name(version), required=False, limit=100)
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        try:
            key = _credential(session, caller, signer, credential_id)
        except keyuse.KeyNotAllowed:
            raise invalid("Invalid parameter credentialID") from None
        signer_id = signer.id
    chosen = _hash_for(sign_algo, _key_type(key), hash_oid, version)
    digests = [base64.b64decode(h) for h in hashes]
    if any(len(d) != _SIZES[chosen] for d in digests):
        raise invalid(f"Invalid parameter {_hash_name(version)}")
    binding = activation.Binding(
        key_location=PREFIX + key.key_id,
        hash_algorithm=chosen,
        hashes=tuple(hashes),
        user_id=signer_id,
        client_id=caller.principal.client_id,
    )
    signatures = sign_digests(ctx, caller.principal, sad, binding, digests, entry="csc")
    return {"signatures": [base64.b64encode(s).decode() for s in signatures]}


# -- signatures/timestamp -----------------------------------------------------------------------
def timestamp(ctx: Context, version: str, body: Mapping[str, Any]) -> dict:
    """``signatures/timestamp`` (v1 §11.10): an RFC 3161 token from kyso's own TSA over the
    given hash, with the client's nonce (hex) when it sends one."""
    value = _str(body, "hash", limit=200)
    oid = _str(body, _hash_oid_name(version), limit=100)
    if oid not in HASH_OIDS:
        raise invalid(f"Invalid parameter {_hash_oid_name(version)}")
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Invalid Base64 hash string parameter") from None
    if len(digest) != _SIZES[oid]:
        raise invalid("Invalid parameter hash")
    nonce_text = _str(body, "nonce", required=False, limit=64)
    nonce = None
    if nonce_text is not None:
        try:
            nonce = int(nonce_text, 16)
        except ValueError:
            raise invalid("Invalid parameter nonce") from None
    token = ctx.tsa.stamp(digest, HASH_OIDS[oid].name, nonce=nonce)
    return {"timestamp": base64.b64encode(token).decode()}


# -- signatures/signDoc (v2) -------------------------------------------------------------------
@dataclass(frozen=True)
class _Document:
    content: bytes
    form: str  # P, C, X
    level: Level
    enveloping: bool


def _read_documents(body: Mapping[str, Any], key_type: str, limit: int) -> list[_Document]:
    if body.get("documentDigests") is not None:
        raise invalid("Invalid parameter documentDigests: send the documents themselves")
    items = body.get("documents")
    if not isinstance(items, list):
        raise missing("array", "documents")
    if not items:
        raise invalid("Empty documents array")
    if len(items) > limit:
        raise invalid(f"Invalid parameter documents: at most {limit} in one request")
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid("Invalid parameter documents")
        text = item.get("document")
        if not isinstance(text, str) or not text:
            raise missing("string", "document")
        try:
            content = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("Invalid Base64 document string parameter") from None
        form = item.get("signature_format")
        if form not in ("P", "C", "X"):
            raise invalid("Invalid parameter signature_format")
        level_text = item.get("conformance_level", "Ades-B-B")
        level = CONFORMANCE.get(level_text.lower()) if isinstance(level_text, str) else None
        if level is None or (level is Level.B_LTA and form == "X"):
            raise invalid("Invalid parameter conformance_level")
        sign_algo = item.get("signAlgo")
        if sign_algo is not None:
            if not isinstance(sign_algo, str):
                raise missing("string", "signAlgo")
            _hash_for(sign_algo, key_type, SHA256_OID, V2)
        envelope = item.get("signed_envelope_property")
        if envelope is not None and not isinstance(envelope, str):
            raise missing("string", "signed_envelope_property")
        found.append(_Document(content, form, level, envelope == "Enveloping"))
    return found


def _precheck(document: _Document) -> None:
    """A document that cannot be signed is refused before the SAD is spent."""
    if document.form == "P":
        from kyso.signing.pades import open_pdf

        open_pdf(document.content)
    elif document.form == "X":
        from kyso import xmlsafe

        xmlsafe.parse(document.content)


def _make(ctx: Context, identity: SignerIdentity, document: _Document) -> bytes:
    from kyso.signing.service import level_support

    if document.form == "P":
        from kyso.signing.pades import sign_pdf

        stamper, trust = level_support(ctx, document.level, trust_from=Level.B_T)
        return sign_pdf(
            document.content, identity, level=document.level, timestamper=stamper, trust=trust
        )
    stamper, trust = level_support(ctx, document.level)
    if document.form == "X":
        from kyso.signing.xades import sign_xml

        return sign_xml(
            document.content, identity, level=document.level, timestamper=stamper, trust=trust
        )
    from kyso.signing.cades import sign_cms

    return sign_cms(
        document.content,
        identity,
        level=document.level,
        timestamper=stamper,
        trust=trust,
        detached=not document.enveloping,
    )


def sign_doc(ctx: Context, caller: Caller, body: Mapping[str, Any]) -> dict:
    """v2 ``signatures/signDoc``: kyso makes the signature (PAdES ``P``, CAdES ``C``,
    XAdES ``X``) with the central key. The consent was given over the documents' SHA-256
    (``credentials/authorize`` with those hashes and SHA-256): the SAD is spent on exactly
    the SHA-256 of the documents sent here, once, before anything is signed; each signature
    is an audit entry."""
    from kyso.signing.identity import from_key
    from kyso.signing.service import audit_signature

    credential_id = _str(body, "credentialID", limit=200)
    sad = _str(body, "SAD", limit=200)
    with ctx.db.read() as session:
        signer = _signer(session, caller, body)
        try:
            key = _credential(session, caller, signer, credential_id)
        except keyuse.KeyNotAllowed:
            raise invalid("Invalid parameter credentialID") from None
        signer_id = signer.id
    documents = _read_documents(body, _key_type(key), ctx.settings.approval_batch_max)
    for document in documents:
        _precheck(document)
    hashes = tuple(base64.b64encode(hashlib.sha256(d.content).digest()).decode() for d in documents)
    binding = activation.Binding(
        key_location=PREFIX + key.key_id,
        hash_algorithm=SHA256_OID,
        hashes=hashes,
        user_id=signer_id,
        client_id=caller.principal.client_id,
    )
    activation.consume(ctx.db, sad, binding)  # single use, before anything is signed
    identity = from_key(ctx, key.key_id, key.certificate_der, store=ctx.central)
    enveloped: list[str] = []
    detached: list[str] = []
    kinds = {"P": "pdf", "X": "xml", "C": "cms"}
    for document in documents:
        signed = _make(ctx, identity, document)
        audit_signature(
            ctx,
            caller.principal,
            key=PREFIX + key.key_id,
            serial=key.serial,
            kind=kinds[document.form],
            entry="csc",
            content=document.content,
            signed=signed,
            level=document.level,
        )
        (detached if document.form == "C" else enveloped).append(base64.b64encode(signed).decode())
    answer: dict[str, Any] = {}
    if enveloped:
        answer["DocumentWithSignature"] = enveloped
    if detached:
        answer["SignatureObject"] = detached
    return answer
