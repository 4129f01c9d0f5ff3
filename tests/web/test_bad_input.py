"""Bad input never gets a 500: every refusal is a 4xx with a JSON ``{code, message}`` body,
and a refused request leaves nothing behind."""

from __future__ import annotations

import base64
import json
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from kyso.api import clients
from kyso.context import Context
from kyso.store.models import Certificate, IdentityRole

MAX_UPLOAD = 10 * 1024 * 1024  # KYSO_MAX_UPLOAD_BYTES default
API = "/api/v1/certificates"


def _headers(ctx: Context) -> dict[str, str]:
    scopes = [s.value for s in clients.Scope]
    with ctx.db.session() as session:
        token = clients.create(session, f"bad-input-{secrets.token_hex(6)}", scopes, "test")
    return {"authorization": f"Bearer {token}"}


def _count(ctx: Context) -> int:
    with ctx.db.read() as session:
        return int(session.execute(select(func.count()).select_from(Certificate)).scalar_one())


def _refused(
    response: httpx.Response, status: int, code: str | None = None, label: str = ""
) -> None:
    assert response.status_code == status, (label, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), label
    body = response.json()
    assert set(body) == {"code", "message"}, (label, body)
    assert isinstance(body["message"], str) and body["message"].strip(), (label, body)
    if code is not None:
        assert body["code"] == code, (label, body)


def _csr_pem(key: object = None, cn: str = "Lê Văn Tám") -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, algorithm)  # type: ignore[arg-type]
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


def _tampered_csr() -> str:
    """A CSR whose signature no longer matches: one bit flipped in the signature."""
    der = bytearray(
        x509.load_pem_x509_csr(
            _csr_pem(rsa.generate_private_key(65537, 2048)).encode()
        ).public_bytes(serialization.Encoding.DER)
    )
    der[-10] ^= 0x01
    return _pem(bytes(der))


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (each new httpx client costs a TLS context)."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def api(server) -> Iterator[tuple[str, dict[str, str], Context]]:
    """The API's base URL and a token with every scope; fails if a refusal created anything."""
    ctx = server.instance.ctx
    headers = _headers(ctx)
    before = _count(ctx)
    yield server.url, headers, ctx
    assert _count(ctx) == before, "a refused request left a certificate behind"


# -- POST /api/v1/certificates ----------------------------------------------------------------


def test_issue_body_that_is_not_the_right_json_is_422(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    csr = _csr_pem()
    raw = {
        "truncated JSON": "{",
        "not JSON": "garbage",
        "empty": "",
        "null": "null",
        "array": "[]",
        "string": '"individual"',
        "number": "42",
    }
    for label, text in raw.items():
        response = http.post(
            f"{url}{API}",
            content=text.encode(),
            headers={**headers, "content-type": "application/json"},
        )
        _refused(response, 422, "invalid_input", label)
    bodies: dict[str, object] = {
        "no fields": {},
        "no csr": {"profile": "individual"},
        "no profile": {"csr": csr},
        "profile a number": {"profile": 5, "csr": csr},
        "profile null": {"profile": None, "csr": csr},
        "profile a list": {"profile": ["individual"], "csr": csr},
        "csr a number": {"profile": "individual", "csr": 123},
        "csr an object": {"profile": "individual", "csr": {"pem": csr}},
        "csr too long": {"profile": "individual", "csr": csr + "A" * 64 * 1024},
        "subject a number": {"profile": "individual", "csr": csr, "subject": 5},
        "subject a list": {"profile": "individual", "csr": csr, "subject": ["CN=A"]},
        "subject too long": {"profile": "individual", "csr": csr, "subject": "CN=" + "a" * 1000},
        "emails a string": {"profile": "individual", "csr": csr, "emails": "a@backan.gov.vn"},
        "emails numbers": {"profile": "individual", "csr": csr, "emails": [1, 2]},
        "emails null item": {"profile": "individual", "csr": csr, "emails": [None]},
        "eleven emails": {
            "profile": "individual",
            "csr": csr,
            "emails": [f"u{i}@backan.gov.vn" for i in range(11)],
        },
        "days text": {"profile": "individual", "csr": csr, "days": "abc"},
        "days fraction": {"profile": "individual", "csr": csr, "days": 1.5},
        "days zero": {"profile": "individual", "csr": csr, "days": 0},
        "days too many": {"profile": "individual", "csr": csr, "days": 3651},
        "days huge": {"profile": "individual", "csr": csr, "days": 10**30},
    }
    for label, body in bodies.items():
        response = http.post(f"{url}{API}", json=body, headers=headers)
        _refused(response, 422, "invalid_input", label)


def test_issue_body_in_another_format_is_refused(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    form = http.post(
        f"{url}{API}", data={"profile": "individual", "csr": _csr_pem()}, headers=headers
    )
    _refused(form, 422, "invalid_input", "form")
    deep = http.post(
        f"{url}{API}",
        content=b"[" * 100_000,
        headers={**headers, "content-type": "application/json"},
    )
    assert 400 <= deep.status_code < 500, deep.text
    _refused(deep, deep.status_code)


def test_unknown_or_non_subscriber_profile_is_422(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    for profile in ("nonexistent", "INDIVIDUAL", "", "root-ca", "sub-ca", "tsa", "ocsp"):
        response = http.post(
            f"{url}{API}", json={"profile": profile, "csr": _csr_pem()}, headers=headers
        )
        _refused(response, 422, "invalid_input", profile)


def test_malformed_csr_is_422_malformed_csr(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    good = _csr_pem()
    certificate = _pem(
        x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER),
        "CERTIFICATE",
    )
    csrs = {
        "garbage": "this is not a certificate request",
        "empty": "",
        "blank": " \n\t ",
        "truncated PEM": good[: len(good) // 2],
        "PEM armour around garbage": _pem(b"\x30\x82\x01\x00garbage"),
        "bare base64": "".join(good.splitlines()[1:-1]),
        "wrong PEM label": certificate,
        "bad signature": _tampered_csr(),
        "NUL inside": good.replace("\n", "\x00", 1),
    }
    for label, csr in csrs.items():
        response = http.post(
            f"{url}{API}", json={"profile": "individual", "csr": csr}, headers=headers
        )
        _refused(response, 422, "malformed_csr", label)


def test_weak_key_in_csr_is_422_weak_key(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    keys = {
        "RSA-1024": rsa.generate_private_key(65537, 1024),
        "RSA exponent 3": rsa.generate_private_key(3, 2048),
        "EC P-521": ec.generate_private_key(ec.SECP521R1()),
        "EC secp256k1": ec.generate_private_key(ec.SECP256K1()),
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
    }
    for label, key in keys.items():
        response = http.post(
            f"{url}{API}", json={"profile": "individual", "csr": _csr_pem(key)}, headers=headers
        )
        _refused(response, 422, "weak_key", label)


def test_bad_subject_or_email_is_422(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    subjects = [
        "garbage",
        "CN=",
        "O=UBND tỉnh Bắc Kạn",
        "CN=A,C=Vietnam",
        "CN=A,C=vn",
        "CN=" + "a" * 65,
        "CN=A,DC=vn",
        "CN=A,1.2.840.113549.1.9.1=a@b.vn",
        "CN=a\x00b",
        "   ",
    ]
    for subject in subjects:
        body = {"profile": "organization", "csr": _csr_pem(), "subject": subject}
        response = http.post(f"{url}{API}", json=body, headers=headers)
        _refused(response, 422, "invalid_input", subject)
    emails = [
        "@",
        "a@",
        "a@b@c.vn",
        "@backan.gov.vn",
        "a@backan.gov.vn\x00",
        "a@-..",
        "a b@c.vn",
        "lan@bắckạn.vn",
        "lan@localhost",
        "",
        "a@b_c.vn",
        "x" * 65 + "@backan.gov.vn",
    ]
    for email in emails:
        body = {"profile": "individual", "csr": _csr_pem(), "emails": [email]}
        response = http.post(f"{url}{API}", json=body, headers=headers)
        _refused(response, 422, "invalid_input", repr(email))


def test_overlong_street_is_422_not_lint_failed(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    response = http.post(
        f"{url}{API}",
        json={"profile": "organization", "csr": _csr_pem(), "subject": "CN=A,STREET=" + "x" * 200},
        headers=headers,
    )
    _refused(response, 422, "invalid_input")


# -- one certificate: unknown serials, transitions ----------------------------------------------


def test_unknown_serial_is_404(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    for serial in ("abcdef0123456789abcdef0123456789", "not-hex", "0", "f" * 41, "%00", "%FF"):
        for method, suffix in (
            ("GET", ""),
            ("GET", "/pem"),
            ("POST", "/suspend"),
            ("POST", "/restore"),
            ("POST", "/revoke"),
        ):
            response = http.request(
                method,
                f"{url}{API}/{serial}{suffix}",
                json={} if method == "POST" else None,
                headers=headers,
            )
            _refused(response, 404, "not_found", f"{method} {serial}{suffix}")


def _issue(http: httpx.Client, url: str, headers: dict[str, str], csr: str) -> str:
    response = http.post(f"{url}{API}", json={"profile": "individual", "csr": csr}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["serial"])


def test_status_changes_that_are_not_allowed(server, http: httpx.Client) -> None:
    url, ctx = server.url, server.instance.ctx
    headers = _headers(ctx)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = _issue(http, url, headers, _csr_pem(key))
    one = f"{url}{API}/{serial}"
    before = _count(ctx)

    _refused(
        http.post(f"{one}/restore", json={}, headers=headers),
        409,
        "invalid_transition",
        "restore a good certificate",
    )
    bad_bodies: dict[str, object] = {
        "hold is not a revocation": {"reason": "certificate-hold"},
        "removeFromCRL is not a revocation": {"reason": "remove-from-crl"},
        "unknown reason": {"reason": "bogus"},
        "reason null": {"reason": None},
        "reason a number": {"reason": 1},
        "note too long": {"note": "x" * 2001},
        "note a list": {"note": ["x"]},
        "note with NUL": {"note": "a\x00b"},
    }
    for label, body in bad_bodies.items():
        _refused(
            http.post(f"{one}/revoke", json=body, headers=headers), 422, "invalid_input", label
        )
    for label, text in {"no body": "", "null": "null", "array": "[]", "not JSON": "{"}.items():
        _refused(
            http.post(
                f"{one}/revoke",
                content=text.encode(),
                headers={**headers, "content-type": "application/json"},
            ),
            422,
            "invalid_input",
            label,
        )
    _refused(
        http.post(f"{one}/suspend", json={"note": "a\x00b"}, headers=headers),
        422,
        "invalid_input",
        "suspend note with NUL",
    )
    assert http.get(one, headers=headers).json()["status"] == "good"

    assert http.post(f"{one}/suspend", json={}, headers=headers).status_code == 200
    _refused(
        http.post(f"{one}/suspend", json={}, headers=headers),
        409,
        "invalid_transition",
        "suspend twice",
    )
    revoked = http.post(f"{one}/revoke", json={"reason": "key-compromise"}, headers=headers)
    assert revoked.status_code == 200, revoked.text
    for action in ("revoke", "suspend", "restore"):
        _refused(
            http.post(f"{one}/{action}", json={}, headers=headers),
            409,
            "invalid_transition",
            f"{action} after revocation",
        )
    shown = http.get(one, headers=headers).json()
    assert (shown["status"], shown["reason"]) == ("revoked", "key-compromise")

    # The key was revoked as compromised: a new request for it is refused.
    again = http.post(
        f"{url}{API}", json={"profile": "individual", "csr": _csr_pem(key)}, headers=headers
    )
    _refused(again, 422, "compromised_key", "compromised key")
    assert _count(ctx) == before


# -- list ---------------------------------------------------------------------------------------


def test_bad_list_parameters_are_422(api, http: httpx.Client) -> None:
    url, headers, _ctx = api
    for params in (
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "abc"},
        {"offset": "-1"},
        {"offset": str(10**22)},
        {"status": "bogus"},
        {"profile": "bogus"},
        {"q": "x" * 201},
        {"q": "\x00"},
        {"q": "Bắc\x00Kạn"},
    ):
        response = http.get(f"{url}{API}", params=params, headers=headers)
        _refused(response, 422, "invalid_input", str(params))


# -- size limits ----------------------------------------------------------------------------------


def _chunks(total: int) -> Iterator[bytes]:
    """A body sent chunked, with no Content-Length for the server to check up front."""
    piece = b"x" * (1 << 20)
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


@pytest.mark.parametrize("path", [API, "/ocsp", "/tsa", f"{API}/abcdef/revoke"])
def test_body_over_the_upload_limit_is_413(api, http: httpx.Client, path: str) -> None:
    url, headers, _ctx = api
    honest = http.post(
        f"{url}{path}",
        content=b"x" * (MAX_UPLOAD + 1),
        headers={**headers, "content-type": "application/json"},
    )
    _refused(honest, 413, "too_large", "with Content-Length")
    chunked = http.post(
        f"{url}{path}",
        content=_chunks(MAX_UPLOAD + 1),
        headers={**headers, "content-type": "application/json"},
    )
    _refused(chunked, 413, "too_large", "chunked")


def test_content_length_over_the_limit_is_refused_before_the_body_is_read(api) -> None:
    url, headers, _ctx = api
    parts = urlsplit(url)
    request = (
        f"POST {API} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: {headers['authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_UPLOAD * 4}\r\nConnection: close\r\n\r\n{{}}"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(request)  # two bytes of the forty mebibytes announced, then wait
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    answer = json.loads(body)
    assert answer["code"] == "too_large" and answer["message"]


# -- public PKI paths ---------------------------------------------------------------------------


def test_pki_paths_that_name_nothing_are_404_json(server, http: httpx.Client) -> None:
    url, ctx = server.url, server.instance.ctx
    ocsp_id = ctx.authority.identity(IdentityRole.OCSP).id
    tsa_id = ctx.authority.identity(IdentityRole.TSA).id
    for path in (
        "/crl/abc.crl",
        "/crl/999.crl",
        "/crl/abc-delta.crl",
        "/crl/999-delta.crl",
        "/crl/-1.crl",
        "/crl/0.crl",
        "/crl/99999999999999999999.crl",
        f"/crl/{tsa_id}.crl",
        "/ca/999.crt",
        "/ca/0.crt",
        "/ca/-1.crt",
        "/ca/99999999999999999999.crt",
        f"/ca/{ocsp_id}.crt",
        "/nowhere",
    ):
        _refused(http.get(f"{url}{path}"), 404, "not_found", path)
    _refused(http.get(f"{url}/ca/abc.crt"), 422, "invalid_input", "/ca/abc.crt")
    _refused(http.get(f"{url}/tsa"), 405, "method_not_allowed", "GET /tsa")
    issuing = ctx.authority.identity(IdentityRole.ISSUING).id
    assert http.get(f"{url}/crl/{issuing}.crl").status_code == 200
    assert http.get(f"{url}/ca/{issuing}.crt").status_code == 200
