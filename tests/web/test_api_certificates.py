"""REST /api/v1/certificates as another system calls it: bearer tokens limited to scopes."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from kyso.api import clients
from kyso.context import Context
from kyso.store.models import IdentityRole

pytestmark = pytest.mark.interop

API = "/api/v1/certificates"
SUBJECT = "CN=Nguyễn Thị Hằng,OU=Phòng Tài nguyên và Môi trường,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (each new httpx client costs a TLS context)."""
    with httpx.Client(timeout=30) as client:
        yield client


def _token(ctx: Context, *scopes: str) -> dict[str, str]:
    with ctx.db.session() as session:
        token = clients.create(session, f"test-{secrets.token_hex(6)}", list(scopes), "test")
    return {"authorization": f"Bearer {token}"}


def _csr(cn: str = "ignored by the RA") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _issue(
    http: httpx.Client, url: str, headers: dict[str, str], subject: str = SUBJECT, **extra: object
) -> dict:
    body = {"profile": "individual", "csr": _csr(), "subject": subject, **extra}
    response = http.post(f"{url}{API}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _ocsp_status(http: httpx.Client, server, pem: str) -> ocsp.OCSPCertStatus:
    """Ask the server's responder, parsed by pyca/cryptography (not kyso's asn1crypto code)."""
    leaf = x509.load_pem_x509_certificate(pem.encode())
    issuer = server.instance.ctx.authority.identity(IdentityRole.ISSUING).certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    reply = http.post(
        f"{server.url}/ocsp",
        content=request.public_bytes(serialization.Encoding.DER),
        headers={"content-type": "application/ocsp-request"},
    )
    response = ocsp.load_der_ocsp_response(reply.content)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == leaf.serial_number
    return response.certificate_status


def test_issue_from_csr_returns_a_certificate_openssl_accepts(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    headers = _token(server.instance.ctx, "certificates:issue")
    issued = _issue(http, server.url, headers, emails=["hang.nt@babe.backan.gov.vn"])
    assert int(issued["serial"], 16) > 0
    assert issued["status"] == "good"
    assert issued["profile"] == "individual"
    assert issued["subject"] == SUBJECT

    (tmp_path / "chain.pem").write_text(issued["chain_pem"])
    (tmp_path / "leaf.pem").write_text(issued["certificate_pem"])
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", tmp_path / "chain.pem", tmp_path / "leaf.pem"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    subject = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            tmp_path / "leaf.pem",
            "-noout",
            "-subject",
            "-nameopt",
            "utf8,sep_comma_plus,dn_rev",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "CN=Nguyễn Thị Hằng" in subject
    assert "O=UBND huyện Ba Bể" in subject

    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert format(cert.serial_number, "x") == issued["serial"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["hang.nt@babe.backan.gov.vn"]


def test_subject_defaults_to_the_csr_subject(server, http: httpx.Client) -> None:
    headers = _token(server.instance.ctx, "certificates:issue")
    body = {"profile": "organization", "csr": _csr("Sở Nội vụ tỉnh Bắc Kạn")}
    response = http.post(f"{server.url}{API}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["subject"] == "CN=Sở Nội vụ tỉnh Bắc Kạn"


def test_list_pages_filters_and_searches(server, http: httpx.Client) -> None:
    headers = _token(server.instance.ctx, *(s.value for s in clients.Scope))
    tag = f"Tổ {secrets.token_hex(4)}"
    serials = [
        _issue(
            http, server.url, headers, subject=f"CN=Người {i},OU={tag},O=UBND tỉnh Bắc Kạn,C=VN"
        )["serial"]
        for i in range(3)
    ]
    url = f"{server.url}{API}"

    page = http.get(url, params={"q": tag, "limit": 2}, headers=headers).json()
    assert page["total"] == 3
    assert page["limit"] == 2 and page["offset"] == 0
    assert [c["serial"] for c in page["items"]] == serials[::-1][:2]  # newest first
    rest = http.get(url, params={"q": tag, "limit": 2, "offset": 2}, headers=headers).json()
    assert [c["serial"] for c in rest["items"]] == [serials[0]]

    suspended = http.post(f"{url}/{serials[1]}/suspend", json={}, headers=headers)
    assert suspended.status_code == 200, suspended.text
    held = http.get(url, params={"q": tag, "status": "suspended"}, headers=headers).json()
    assert held["total"] == 1
    assert held["items"][0]["serial"] == serials[1]
    assert held["items"][0]["reason"] == "certificate-hold"
    good = http.get(url, params={"q": tag, "status": "good"}, headers=headers).json()
    assert {c["serial"] for c in good["items"]} == {serials[0], serials[2]}

    nobody = http.get(url, params={"q": "Không có ai tên này"}, headers=headers)
    assert nobody.json()["total"] == 0
    wildcard = http.get(url, params={"q": "%"}, headers=headers).json()
    assert all("%" in c["subject"] for c in wildcard["items"])  # LIKE wildcards are escaped


def test_show_and_pem(server, http: httpx.Client) -> None:
    headers = _token(server.instance.ctx, "certificates:issue", "certificates:read")
    issued = _issue(http, server.url, headers)
    url = f"{server.url}{API}/{issued['serial']}"
    shown = http.get(url, headers=headers)
    assert shown.status_code == 200
    assert shown.json()["subject"] == SUBJECT
    assert shown.json()["not_after"] == issued["not_after"]
    # The serial as people copy it from certificate viewers: upper case with colons.
    serial = issued["serial"].upper()
    colons = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    by_colons = http.get(f"{server.url}{API}/{colons}", headers=headers)
    assert by_colons.json()["serial"] == issued["serial"]
    pem = http.get(f"{url}/pem", headers=headers)
    assert pem.status_code == 200
    assert pem.text == issued["certificate_pem"]


def test_suspend_restore_revoke_change_the_ocsp_answer(server, http: httpx.Client) -> None:
    headers = _token(
        server.instance.ctx, "certificates:issue", "certificates:revoke", "certificates:read"
    )
    issued = _issue(http, server.url, headers)
    pem = issued["certificate_pem"]
    url = f"{server.url}{API}/{issued['serial']}"
    assert _ocsp_status(http, server, pem) is ocsp.OCSPCertStatus.GOOD

    held = http.post(f"{url}/suspend", json={"note": "nghỉ phép"}, headers=headers)
    assert held.status_code == 200, held.text
    assert held.json()["status"] == "suspended"
    assert _ocsp_status(http, server, pem) is ocsp.OCSPCertStatus.REVOKED

    restored = http.post(f"{url}/restore", json={}, headers=headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["status"] == "good"
    assert restored.json()["reason"] is None
    assert _ocsp_status(http, server, pem) is ocsp.OCSPCertStatus.GOOD

    revoked = http.post(f"{url}/revoke", json={"reason": "affiliation-changed"}, headers=headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["reason"] == "affiliation-changed"
    assert revoked.json()["revoked_at"]
    assert _ocsp_status(http, server, pem) is ocsp.OCSPCertStatus.REVOKED
    assert http.get(url, headers=headers).json()["status"] == "revoked"


def test_without_a_token_the_api_answers_401(server, http: httpx.Client) -> None:
    url = f"{server.url}{API}"
    for headers in (
        {},
        {"authorization": "Bearer kyso_not-a-real-token"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer"},
    ):
        for response in (
            http.get(url, headers=headers),
            http.post(url, json={"profile": "individual", "csr": _csr()}, headers=headers),
            http.post(f"{url}/abcdef/revoke", json={}, headers=headers),
        ):
            assert response.status_code == 401, (headers, response.text)
            assert response.json()["code"] == "unauthenticated"
            assert response.json()["message"]


def test_token_without_the_scope_is_403(server, http: httpx.Client) -> None:
    ctx = server.instance.ctx
    issuer = _token(ctx, "certificates:issue")
    reader = _token(ctx, "certificates:read")
    issued = _issue(http, server.url, issuer)
    url = f"{server.url}{API}"
    refused = [
        http.post(url, json={"profile": "individual", "csr": _csr()}, headers=reader),
        http.post(f"{url}/{issued['serial']}/revoke", json={}, headers=reader),
        http.post(f"{url}/{issued['serial']}/suspend", json={}, headers=issuer),
        http.get(url, headers=issuer),
    ]
    for response in refused:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        assert response.json()["message"]
    assert http.get(f"{url}/{issued['serial']}", headers=reader).json()["status"] == "good"


def test_openapi_lists_the_certificate_paths(server, http: httpx.Client) -> None:
    response = http.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in {
        API: {"get", "post"},
        f"{API}/{{serial}}": {"get"},
        f"{API}/{{serial}}/pem": {"get"},
        f"{API}/{{serial}}/suspend": {"post"},
        f"{API}/{{serial}}/restore": {"post"},
        f"{API}/{{serial}}/revoke": {"post"},
    }.items():
        assert path in paths
        assert methods <= set(paths[path])
