"""The CSC API (v1.0.4.0 and v2) in process, on SQLite and PostgreSQL: tokens, credentials,
SCAL2 authorization with PIN + OTP, signHash, and every refusal in the specification's
``{"error", "error_description"}`` form with its status, never a 500.

The helpers here are shared by the other CSC tests (over real HTTP)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from support.remote import CentralSigner, central_seal, central_signer
from support.world import World, app_client, make_world

from kyso import clock
from kyso.api import clients
from kyso.remote import approvals
from kyso.store.models import AuditEntry, CscAccessToken, SignApproval, User

pytestmark = pytest.mark.softhsm

SHA256 = "2.16.840.1.101.3.4.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
SHA256_RSA = "1.2.840.113549.1.1.11"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


# -- helpers (also used by tests/remote/test_csc_http.py) ------------------------------------
def api_token(world: World, signer: CentralSigner) -> dict[str, str]:
    """A kyso API token of the signer (accepted by the CSC API as a bearer token)."""
    with world.ctx.db.session() as session:
        token = clients.create(
            session,
            f"{signer.user.username}-csc-{secrets.token_hex(3)}",
            ["documents:sign"],
            "cli:test",
            user_id=signer.user.id,
        )
    return {"authorization": f"Bearer {token}"}


def system_client(world: World, name: str, keys: list[str] | None = None) -> str:
    """A system's API client (no user) with documents:sign, given ``keys`` of the central
    HSM (``kyso api-client create --key``); its kyso_ token."""
    with world.ctx.db.session() as session:
        return clients.create(
            session, name, ["documents:sign"], "cli:test", keys=keys, keystore="hsm"
        )


def digests(*texts: str) -> list[str]:
    return [base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() for t in texts]


def authorize_body(
    version: str, key_id: str, hashes_b64: list[str], pin: str | None, otp: str | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"credentialID": key_id, "numSignatures": len(hashes_b64)}
    if version == "v1":
        body["hash"] = hashes_b64
        if pin is not None:
            body.update(PIN=pin, OTP=otp)
    else:
        body.update(hashes=hashes_b64, hashAlgorithmOID=SHA256)
        if pin is not None:
            body["authData"] = [{"id": "PIN", "value": pin}, {"id": "OTP", "value": otp}]
    body.update(extra)
    return body


def sign_hash_body(
    version: str, key_id: str, sad: str, hashes_b64: list[str], sign_algo: str = RSA_ENCRYPTION
) -> dict[str, Any]:
    body: dict[str, Any] = {"credentialID": key_id, "SAD": sad, "signAlgo": sign_algo}
    if version == "v1":
        body.update(hash=hashes_b64, hashAlgo=SHA256)
    else:
        body.update(hashes=hashes_b64, hashAlgorithmOID=SHA256)
    return body


def certificate_of(world: World, signer: CentralSigner) -> x509.Certificate:
    from kyso.store.models import Certificate

    with world.ctx.db.read() as session:
        der = session.scalars(
            select(Certificate.der).where(Certificate.serial == signer.serial)
        ).one()
    return x509.load_der_x509_certificate(der)


def verify_signature(cert: x509.Certificate, signature: bytes, digest_b64: str) -> None:
    digest = base64.b64decode(digest_b64)
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def assert_csc_error(
    response: Any, status: int, error: str, description: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    if description is not None:
        assert body["error_description"] == description, body


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def http(central_instance) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(central_instance, apps)
    for client in apps.values():
        client.__exit__(None, None, None)


def _authorize_with_pin(
    http: TestClient,
    version: str,
    headers: dict[str, str],
    signer: CentralSigner,
    hashes_b64: list[str],
    offset: int = 0,
) -> str:
    response = http.post(
        f"/csc/{version}/credentials/authorize",
        headers=headers,
        json=authorize_body(version, signer.key_id, hashes_b64, signer.pin, signer.code(offset)),
    )
    assert response.status_code == 200, response.text
    assert response.json()["expiresIn"] > 0
    return str(response.json()["SAD"])


# -- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "specs"), [("v1", "1.0.4.0"), ("v2", "2.0.0.2")])
def test_info_names_the_specification_and_its_methods(
    http: TestClient, version: str, specs: str
) -> None:
    answer = http.post(f"/csc/{version}/info", json={"lang": "vi-VN"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["specs"] == specs
    assert "credentials/authorize" in body["methods"] and "signatures/signHash" in body["methods"]
    assert set(body["authType"]) == {"basic", "oauth2client"}
    if version == "v2":
        assert "signatures/signDoc" in body["methods"] and body["asynchronousOperationMode"]


def test_login_needs_password_and_totp_and_its_token_lists_only_the_signers_credentials(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    other = central_signer(world, full_name="Nông Thị Khác")
    with world.ctx.db.session() as session:
        session.execute(
            update(User)
            .where(User.id == signer.user.id)
            .values(password_hash=PasswordHasher().hash("mật-khẩu-dài-12345"))
        )
    auth = (signer.user.username, "mật-khẩu-dài-12345")
    no_code = http.post("/csc/v1/auth/login", auth=auth, json={})
    assert_csc_error(no_code, 401, "authentication_error")
    wrong = http.post("/csc/v1/auth/login", auth=(signer.user.username, "sai"), json={})
    assert_csc_error(wrong, 401, "authentication_error")
    login = http.post("/csc/v1/auth/login", auth=auth, json={"OTP": signer.code()})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    assert token.startswith("csc_") and login.json()["expires_in"] == 3600
    with world.ctx.db.read() as session:  # only its SHA-256 is kept
        stored = session.scalars(select(CscAccessToken.token_sha256)).all()
    assert hashlib.sha256(token.encode()).hexdigest() in stored and token not in stored
    headers = {"authorization": f"Bearer {token}"}
    for version in ("v1", "v2"):
        listed = http.post(f"/csc/{version}/credentials/list", headers=headers, json={})
        assert listed.status_code == 200, listed.text
        assert listed.json()["credentialIDs"] == [signer.key_id]
    # naming another user is refused (CSC: a user's token SHALL NOT list another's)
    assert_csc_error(
        http.post(
            "/csc/v1/credentials/list", headers=headers, json={"userID": other.user.username}
        ),
        400,
        "invalid_request",
        "Invalid parameter userID",
    )
    revoked = http.post("/csc/v1/auth/revoke", headers=headers, json={"token": token})
    assert revoked.status_code == 204
    assert_csc_error(
        http.post("/csc/v1/credentials/list", headers=headers, json={}), 401, "invalid_token"
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_credential_info_gives_key_certificate_chain_and_scal2(
    http: TestClient, world: World, version: str
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    answer = http.post(
        f"/csc/{version}/credentials/info",
        headers=headers,
        json={"credentialID": signer.key_id, "certificates": "chain", "certInfo": True},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["key"]["status"] == "enabled" and body["key"]["len"] == 2048
    assert RSA_ENCRYPTION in body["key"]["algo"] and SHA256_RSA in body["key"]["algo"]
    certs = [
        x509.load_der_x509_certificate(base64.b64decode(c)) for c in body["cert"]["certificates"]
    ]
    assert len(certs) == 3 and certs[0] == certificate_of(world, signer)  # signer's first
    assert certs[-1].subject == certs[-1].issuer  # …up to the root
    assert body["cert"]["status"] == "valid"
    assert body["cert"]["serialNumber"] == format(certs[0].serial_number, "X")
    assert body["cert"]["validTo"].endswith("Z") and "Hoàng Văn Thụ" in body["cert"]["subjectDN"]
    assert body["SCAL"] == "2" and body["multisign"] == world.ctx.settings.approval_batch_max
    if version == "v1":
        assert body["authMode"] == "explicit" and body["OTP"]["type"] == "offline"
    else:
        assert body["auth"]["mode"] == "explicit"
        assert [o["id"] for o in body["auth"]["objects"]] == ["PIN", "OTP"]
    single = http.post(
        f"/csc/{version}/credentials/info", headers=headers, json={"credentialID": signer.key_id}
    ).json()
    assert len(single["cert"]["certificates"]) == 1 and "issuerDN" not in single["cert"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_pin_and_otp_authorization_signs_exactly_its_hashes_once(
    http: TestClient, world: World, version: str
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    wanted = digests("Quyết định 1", "Quyết định 2")
    sad = _authorize_with_pin(http, version, headers, signer, wanted)
    signed = http.post(
        f"/csc/{version}/signatures/signHash",
        headers=headers,
        json=sign_hash_body(version, signer.key_id, sad, wanted),
    )
    assert signed.status_code == 200, signed.text
    signatures = [base64.b64decode(s) for s in signed.json()["signatures"]]
    cert = certificate_of(world, signer)
    for signature, digest in zip(signatures, wanted, strict=True):  # in the request's order
        verify_signature(cert, signature, digest)
    replay = http.post(
        f"/csc/{version}/signatures/signHash",
        headers=headers,
        json=sign_hash_body(version, signer.key_id, sad, wanted),
    )
    assert_csc_error(replay, 400, "invalid_request", "Invalid SAD")
    with world.ctx.db.read() as session:  # the signature is an audit entry
        entry = session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.action == "document.signed", AuditEntry.target == f"hsm:{signer.key_id}"
            )
            .order_by(AuditEntry.seq.desc())
        ).first()
    assert entry is not None and json.loads(entry.details)["entry"] == "csc"


@pytest.mark.parametrize("change", ["hash", "count", "credential"])
def test_a_sad_used_for_other_hashes_or_another_credential_is_refused(
    http: TestClient, world: World, change: str
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    wanted = digests("tờ trình", "phụ lục")
    sad = _authorize_with_pin(http, "v1", headers, signer, wanted)
    body = sign_hash_body("v1", signer.key_id, sad, wanted)
    if change == "hash":
        body["hash"] = digests("tờ trình", "phụ lục ĐÃ SỬA")
        expected = "Invalid SAD"
    elif change == "count":
        body["hash"] = wanted[:1]
        expected = "Invalid SAD"
    else:
        other = central_signer(world, full_name="Lê Thị Khác")
        body["credentialID"] = other.key_id  # another user's key: not even looked up
        expected = "Invalid parameter credentialID"
    assert_csc_error(
        http.post("/csc/v1/signatures/signHash", headers=headers, json=body),
        400,
        "invalid_request",
        expected,
    )
    if change != "credential":  # a SAD shown with other hashes is burnt
        again = http.post(
            "/csc/v1/signatures/signHash",
            headers=headers,
            json=sign_hash_body("v1", signer.key_id, sad, wanted),
        )
        assert_csc_error(again, 400, "invalid_request", "Invalid SAD")


def test_authorize_counts_must_match_and_another_users_credential_is_unknown(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    other = central_signer(world, full_name="Đinh Văn Khác")
    headers = api_token(world, signer)
    body = authorize_body("v2", signer.key_id, digests("a", "b"), signer.pin, signer.code())
    body["numSignatures"] = 3
    assert_csc_error(
        http.post("/csc/v2/credentials/authorize", headers=headers, json=body),
        400,
        "invalid_request",
        "Invalid parameter numSignatures",
    )
    for path in ("credentials/info", "credentials/authorize"):
        answer = http.post(
            f"/csc/v2/{path}",
            headers=headers,
            json=authorize_body("v2", other.key_id, digests("a"), signer.pin, signer.code()),
        )
        assert_csc_error(answer, 400, "invalid_request", "Invalid parameter credentialID")
    unknown = http.post(
        "/csc/v1/credentials/info", headers=headers, json={"credentialID": "no-such-key"}
    )
    assert_csc_error(unknown, 400, "invalid_request", "Invalid parameter credentialID")


def test_an_expired_sad_is_refused(http: TestClient, world: World) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    wanted = digests("hết hạn")
    sad = _authorize_with_pin(http, "v1", headers, signer, wanted)
    later = clock.FakeClock(clock.now() + timedelta(seconds=world.ctx.settings.sad_seconds + 1))
    with clock.using(later):
        answer = http.post(
            "/csc/v1/signatures/signHash",
            headers=headers,
            json=sign_hash_body("v1", signer.key_id, sad, wanted),
        )
    assert_csc_error(answer, 400, "invalid_request", "SAD expired")


def test_a_wrong_pin_is_refused_and_takes_the_request_off_the_phone(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    answer = http.post(
        "/csc/v1/credentials/authorize",
        headers=headers,
        json=authorize_body("v1", signer.key_id, digests("PIN"), "000000", signer.code()),
    )
    assert_csc_error(answer, 400, "invalid_pin")
    with world.ctx.db.read() as session:
        states = session.scalars(
            select(SignApproval.state).where(SignApproval.user_id == signer.user.id)
        ).all()
    assert [s.value for s in states] == ["refused"]


def test_a_key_of_the_other_type_is_refused_before_the_sad_is_spent(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world, rsa=False)
    headers = api_token(world, signer)
    wanted = digests("ECDSA")
    sad = _authorize_with_pin(http, "v2", headers, signer, wanted)
    wrong = http.post(
        "/csc/v2/signatures/signHash",
        headers=headers,
        json=sign_hash_body("v2", signer.key_id, sad, wanted, SHA256_RSA),
    )
    assert_csc_error(wrong, 400, "invalid_request", "Invalid parameter signAlgo")
    right = http.post(
        "/csc/v2/signatures/signHash",
        headers=headers,
        json=sign_hash_body("v2", signer.key_id, sad, wanted, ECDSA_SHA256),
    )
    assert right.status_code == 200, right.text
    verify_signature(
        certificate_of(world, signer), base64.b64decode(right.json()["signatures"][0]), wanted[0]
    )


@pytest.mark.parametrize(
    ("body", "status", "description"),
    [
        (b"{not json", 400, "Malformed JSON body"),
        (b"[1, 2]", 400, "The request body must be a JSON object"),
        (b'{"credentialID": 5}', 400, "Missing (or invalid type) string parameter credentialID"),
        (
            b'{"credentialID": "k", "numSignatures": "1", "hash": ["AA=="]}',
            400,
            "Missing (or invalid type) integer parameter numSignatures",
        ),
        (
            b'{"credentialID": "k", "numSignatures": 1, "hash": ["%%%"]}',
            400,
            "Invalid Base64 hash string parameter",
        ),
        (b'{"credentialID": "k", "numSignatures": 1, "hash": []}', 400, "Empty hash array"),
        (b'{"x": "' + b"a" * 300_000 + b'"}', 413, None),
        (b"[" * 50_000 + b"]" * 50_000, 400, "Malformed JSON body"),
    ],
)
def test_malformed_requests_get_the_specifications_errors(
    http: TestClient, world: World, body: bytes, status: int, description: str | None
) -> None:
    signer = central_signer(world)
    answer = http.post(
        "/csc/v1/credentials/authorize",
        headers={**api_token(world, signer), "content-type": "application/json"},
        content=body,
    )
    assert_csc_error(answer, status, "invalid_request", description)


def test_an_unreachable_hsm_is_503_temporarily_unavailable_not_a_server_error() -> None:
    from kyso.errors import KeyStoreError
    from kyso.remote import csc

    answer = csc.answer_for(KeyStoreError("signing failed: TokenNotPresent"))
    assert answer.status == 503
    assert answer.body is not None and answer.body["error"] == "temporarily_unavailable"
    assert "TokenNotPresent" not in answer.body["error_description"]  # no internals


def test_missing_unknown_and_expired_tokens_are_401_invalid_token(
    http: TestClient, world: World
) -> None:
    assert_csc_error(http.post("/csc/v2/credentials/list", json={}), 401, "invalid_token")
    bad = {"authorization": "Bearer csc_not-a-token"}
    assert_csc_error(
        http.post("/csc/v2/credentials/list", headers=bad, json={}), 401, "invalid_token"
    )
    client_name = f"erp-expired-{world.tag}"
    secret = system_client(world, client_name)
    token = http.post(
        "/csc/v1/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_name,
            "client_secret": secret,
        },
    ).json()["access_token"]
    with world.ctx.db.session() as session:
        session.execute(
            update(CscAccessToken)
            .where(CscAccessToken.token_sha256 == hashlib.sha256(token.encode()).hexdigest())
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )
    expired = http.post(
        "/csc/v1/credentials/list", headers={"authorization": f"Bearer {token}"}, json={}
    )
    assert_csc_error(expired, 401, "invalid_token", "The access token has expired")
    assert expired.headers["www-authenticate"].startswith("Bearer")


def test_a_system_gets_a_token_with_client_credentials_and_lists_a_users_credentials(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    not_given = central_signer(world, full_name="Trần Văn Chưa Giao")
    name = f"Hệ thống QLVB {world.tag}"
    secret = system_client(world, name, keys=[signer.key_id])
    refused = http.post(
        "/csc/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": name, "client_secret": "kyso_x"},
    )
    assert_csc_error(refused, 401, "invalid_client")
    granted = http.post(
        "/csc/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": name, "client_secret": secret},
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer"
    headers = {"authorization": f"Bearer {granted.json()['access_token']}"}
    listed = http.post(
        "/csc/v1/credentials/list", headers=headers, json={"userID": signer.user.username}
    )
    assert listed.status_code == 200 and listed.json()["credentialIDs"] == [signer.key_id]
    assert_csc_error(
        http.post("/csc/v1/credentials/list", headers=headers, json={}),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter userID",
    )
    # a key the system was not given: not listed, not described, never on the holder's phone
    user = {"userID": not_given.user.username}
    nothing = http.post("/csc/v1/credentials/list", headers=headers, json=user)
    assert nothing.status_code == 200 and nothing.json()["credentialIDs"] == []
    for path, body in (
        ("credentials/info", {"credentialID": not_given.key_id, **user}),
        (
            "credentials/authorize",
            authorize_body("v1", not_given.key_id, digests("x"), None, None, **user),
        ),
    ):
        assert_csc_error(
            http.post(f"/csc/v1/{path}", headers=headers, json=body),
            400,
            "invalid_request",
            "Invalid parameter credentialID",
        )
    with world.ctx.db.read() as session:
        assert approvals.pending(not_given.principal, session) == []


def test_a_delegate_sees_the_seal_delegated_to_them(http: TestClient, world: World) -> None:
    clerk = central_signer(world, full_name="Văn Thư Một")
    outsider = central_signer(world, full_name="Người Ngoài")
    seal_id, _serial = central_seal(world, "babe", [clerk.user])
    mine = http.post("/csc/v1/credentials/list", headers=api_token(world, clerk), json={})
    theirs = http.post("/csc/v1/credentials/list", headers=api_token(world, outsider), json={})
    assert set(mine.json()["credentialIDs"]) == {clerk.key_id, seal_id}
    assert theirs.json()["credentialIDs"] == [outsider.key_id]


def test_send_otp_says_the_otp_comes_from_the_authenticator_app(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    answer = http.post(
        "/csc/v1/credentials/sendOTP",
        headers=api_token(world, signer),
        json={"credentialID": signer.key_id},
    )
    assert_csc_error(answer, 400, "invalid_request")
    assert "authenticator app" in answer.json()["error_description"]


def test_timestamp_is_an_rfc3161_token_over_the_hash_with_the_nonce(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    digest = hashlib.sha256(b"van ban").digest()
    answer = http.post(
        "/csc/v1/signatures/timestamp",
        headers=api_token(world, signer),
        json={"hash": base64.b64encode(digest).decode(), "hashAlgo": SHA256, "nonce": "0a1b2c3d"},
    )
    assert answer.status_code == 200, answer.text
    token = cms.ContentInfo.load(base64.b64decode(answer.json()["timestamp"]))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["nonce"].native == 0x0A1B2C3D


def test_a_v1_authorize_waits_for_the_phone_no_longer_than_the_setting(
    central_instance, world: World
) -> None:  # type: ignore[no-untyped-def]
    apps: dict[tuple[str, str], TestClient] = {}
    quick = app_client(central_instance, apps, csc_wait_seconds=1)
    try:
        signer = central_signer(world)
        started = time.monotonic()
        answer = quick.post(
            "/csc/v1/credentials/authorize",
            headers=api_token(world, signer),
            json=authorize_body("v1", signer.key_id, digests("chờ"), None, None),
        )
        assert 1 <= time.monotonic() - started < 10
        assert_csc_error(answer, 400, "expired_request")
    finally:
        for client in apps.values():
            client.__exit__(None, None, None)
