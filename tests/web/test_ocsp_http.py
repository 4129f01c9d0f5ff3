"""The OCSP responder over HTTP, as `openssl ocsp` and a caching proxy see it.

RFC 6960 (POST, GET in Appendix A.1, nonce in §4.4.1) and RFC 5019 (pre-signed answers with
cache headers, §6). Status changes are made in process on the server's own database and must
show in the very next answer: the responder re-signs in the same transaction.
"""

from __future__ import annotations

import base64
import re
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy import event, select

from kyso.context import Context
from kyso.pki import issuance, status
from kyso.pki.lint import errors, lint_ocsp_response
from kyso.pki.names import parse_subject
from kyso.store.models import IdentityRole, OcspResponse, Profile, RevocationReason

from .conftest import signing_threads_busy

pytestmark = pytest.mark.interop

UNKNOWN_SERIAL = "0x1234567890abcdef1234567890abcdef"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (each new httpx client costs a TLS context)."""
    with httpx.Client(timeout=30) as client:
        yield client


@dataclass
class Files:
    issuing: Path
    chain: Path
    leaf: Path
    serial: str


def _issue(ctx: Context, tmp_path: Path, cn: str = "Trần Thị Bích Ngọc") -> Files:
    key = ec.generate_private_key(ec.SECP256R1())
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject(f"CN={cn},OU=Văn phòng,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN"),
        key.public_key(),
    )
    with ctx.db.session() as session:
        issued = issuance.issue(session, ctx.authority, spec, "test")
    issuing = tmp_path / "issuing.pem"
    issuing.write_text(ctx.authority.identity(IdentityRole.ISSUING).pem())
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(i.pem() for i in ctx.authority.chain()))
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem())
    return Files(issuing, chain, leaf, issued.serial)


def _openssl_ocsp(
    url: str, files: Files, *extra: str | Path, target: tuple[str | Path, ...] | None = None
) -> subprocess.CompletedProcess[str]:
    """Ask the responder at ``url`` through `openssl ocsp`; stdout and stderr together."""
    what = target if target is not None else ("-cert", files.leaf)
    return subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            files.issuing,
            *what,
            "-url",
            f"{url}/ocsp",
            "-CAfile",
            files.chain,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _revocation_time(text: str) -> datetime:
    match = re.search(r"Revocation Time: (.+ GMT)", text)
    assert match, text
    return datetime.strptime(match.group(1), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC)


def _revoke(ctx: Context, serial: str, reason: RevocationReason) -> None:
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, serial, reason, "test")


# -- POST, through openssl ------------------------------------------------------------------


def test_fresh_certificate_is_good_and_the_response_verifies(server, tmp_path: Path) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    result = _openssl_ocsp(server.url, files, "-respout", tmp_path / "good.der")
    out = _output(result)
    assert result.returncode == 0, out
    assert "Response verify OK" in out
    assert f"{files.leaf}: good" in out
    assert errors(lint_ocsp_response((tmp_path / "good.der").read_bytes())) == []


def test_revoked_certificate_is_reported_revoked_at_once(server, tmp_path: Path) -> None:
    ctx = server.instance.ctx
    files = _issue(ctx, tmp_path)
    assert f"{files.leaf}: good" in _output(_openssl_ocsp(server.url, files))

    before = datetime.now(UTC).replace(microsecond=0)
    _revoke(ctx, files.serial, RevocationReason.KEY_COMPROMISE)
    result = _openssl_ocsp(server.url, files, "-respout", tmp_path / "revoked.der")
    out = _output(result)
    assert result.returncode == 0, out
    assert "Response verify OK" in out
    assert f"{files.leaf}: revoked" in out
    assert "Reason: keyCompromise" in out
    revoked_at = _revocation_time(out)
    assert before - timedelta(seconds=1) <= revoked_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert errors(lint_ocsp_response((tmp_path / "revoked.der").read_bytes())) == []


def test_suspension_is_certificate_hold_and_restore_is_good_again(server, tmp_path: Path) -> None:
    ctx = server.instance.ctx
    files = _issue(ctx, tmp_path)
    with ctx.db.session() as session:
        status.suspend(session, ctx.authority, files.serial, "test")
    held = _output(_openssl_ocsp(server.url, files))
    assert f"{files.leaf}: revoked" in held
    assert "Reason: certificateHold" in held
    assert "Response verify OK" in held

    with ctx.db.session() as session:
        status.restore(session, ctx.authority, files.serial, "test")
    restored = _output(_openssl_ocsp(server.url, files))
    assert f"{files.leaf}: good" in restored
    assert "Response verify OK" in restored


def test_serial_never_issued_is_unknown(server, tmp_path: Path) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    for nonce in ((), ("-no_nonce",)):
        result = _openssl_ocsp(
            server.url,
            files,
            *nonce,
            "-respout",
            tmp_path / "unknown.der",
            target=("-serial", UNKNOWN_SERIAL),
        )
        out = _output(result)
        assert result.returncode == 0, out
        assert f"{UNKNOWN_SERIAL}: unknown" in out
        assert "Response verify OK" in out
        assert errors(lint_ocsp_response((tmp_path / "unknown.der").read_bytes())) == []


def test_nonce_is_echoed(server, tmp_path: Path) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    result = _openssl_ocsp(server.url, files, "-respout", tmp_path / "nonce.der")
    out = _output(result)
    assert result.returncode == 0, out
    assert "WARNING: no nonce" not in out
    assert "Response verify OK" in out
    response = asn1_ocsp.OCSPResponse.load((tmp_path / "nonce.der").read_bytes())
    assert response.nonce_value is not None
    assert errors(lint_ocsp_response((tmp_path / "nonce.der").read_bytes())) == []

    # openssl compares the echoed nonce with the one it sent ("Nonce Verify error" if not).
    chosen = _output(_openssl_ocsp(server.url, files, "-nonce", "-resp_text"))
    assert "WARNING: no nonce" not in chosen
    assert "Nonce Verify error" not in chosen
    assert "Nonce" in chosen  # printed among the response extensions
    assert "Response verify OK" in chosen


def test_request_without_nonce_gets_an_answer_without_nonce(server, tmp_path: Path) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    result = _openssl_ocsp(server.url, files, "-no_nonce", "-respout", tmp_path / "plain.der")
    out = _output(result)
    assert result.returncode == 0, out
    assert "WARNING: no nonce" not in out
    assert "Response verify OK" in out
    assert f"{files.leaf}: good" in out
    response = asn1_ocsp.OCSPResponse.load((tmp_path / "plain.der").read_bytes())
    assert response.nonce_value is None


@pytest.mark.softhsm
def test_responder_with_keys_in_softhsm(hsm_server, tmp_path: Path) -> None:
    ctx = hsm_server.instance.ctx
    files = _issue(ctx, tmp_path)
    good = _output(_openssl_ocsp(hsm_server.url, files))
    assert f"{files.leaf}: good" in good
    assert "Response verify OK" in good
    assert "WARNING: no nonce" not in good

    _revoke(ctx, files.serial, RevocationReason.SUPERSEDED)
    revoked = _output(_openssl_ocsp(hsm_server.url, files, "-no_nonce"))
    assert f"{files.leaf}: revoked" in revoked
    assert "Reason: superseded" in revoked
    assert "Response verify OK" in revoked


# -- GET (RFC 6960 Appendix A.1) and RFC 5019 caching -----------------------------------------


def _request_der(
    files: Files, tmp_path: Path, *asked: str | Path, nonce: bool = False, name: str = "req"
) -> bytes:
    """A request as `openssl ocsp -reqout` writes it: about the leaf unless ``asked`` says
    otherwise (``"-serial", n``), without a nonce unless ``nonce`` (openssl picks one)."""
    out = tmp_path / f"{name}.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            files.issuing,
            *(asked or ("-cert", files.leaf)),
            *(() if nonce else ("-no_nonce",)),
            "-reqout",
            out,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out.read_bytes()


def _get(http: httpx.Client, url: str, request_der: bytes) -> httpx.Response:
    encoded = quote(base64.b64encode(request_der).decode(), safe="")
    return http.get(f"{url}/ocsp/{encoded}")


def _check_rfc5019_headers(response: httpx.Response) -> None:
    cache_control = response.headers["cache-control"]
    max_age = re.search(r"max-age=(\d+)", cache_control)
    assert max_age and int(max_age.group(1)) > 0, cache_control
    assert "public" in cache_control
    last_modified = parsedate_to_datetime(response.headers["last-modified"])
    expires = parsedate_to_datetime(response.headers["expires"])
    assert last_modified <= datetime.now(UTC) < expires
    assert response.headers["etag"].strip('"')


def _stored(ctx: Context, serial: str) -> bytes:
    """The pre-signed answer kept in the database for one certificate."""
    with ctx.db.read() as session:
        return session.execute(
            select(OcspResponse.der).where(OcspResponse.serial == serial)
        ).scalar_one()


def _single(der: bytes) -> asn1_ocsp.SingleResponse:
    response = asn1_ocsp.OCSPResponse.load(der)
    assert response["response_status"].native == "successful"
    return response.basic_ocsp_response["tbs_response_data"]["responses"][0]


def test_get_answer_is_presigned_cacheable_and_changes_on_revocation(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    ctx = server.instance.ctx
    files = _issue(ctx, tmp_path)
    request_der = _request_der(files, tmp_path)

    first = _get(http, server.url, request_der)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/ocsp-response"
    _check_rfc5019_headers(first)
    assert _single(first.content)["cert_status"].name == "good"
    (tmp_path / "resp.der").write_bytes(first.content)
    parsed = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-respin",
            tmp_path / "resp.der",
            "-issuer",
            files.issuing,
            "-cert",
            files.leaf,
            "-CAfile",
            files.chain,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Response verify OK" in _output(parsed), _output(parsed)
    assert f"{files.leaf}: good" in _output(parsed)

    assert first.content == _stored(ctx, files.serial)  # served from storage, not signed now
    second = _get(http, server.url, request_der)
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]

    _revoke(ctx, files.serial, RevocationReason.CESSATION_OF_OPERATION)
    third = _get(http, server.url, request_der)
    assert third.content != first.content
    assert third.content == _stored(ctx, files.serial)  # re-signed by the revocation itself
    assert third.headers["etag"] != first.headers["etag"]
    _check_rfc5019_headers(third)
    single = _single(third.content)
    assert single["cert_status"].name == "revoked"
    assert single["cert_status"].chosen["revocation_reason"].native == "cessation_of_operation"


def test_post_without_nonce_is_the_same_presigned_answer_as_get(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    request_der = _request_der(files, tmp_path)
    by_get = _get(http, server.url, request_der)
    by_post = http.post(
        f"{server.url}/ocsp",
        content=request_der,
        headers={"content-type": "application/ocsp-request"},
        timeout=30,
    )
    assert by_post.status_code == 200
    assert by_post.content == by_get.content


# -- requests the responder cannot answer ---------------------------------------------------


def _status_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return str(asn1_ocsp.OCSPResponse.load(response.content)["response_status"].native)


def test_malformed_requests_get_malformed_request(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    whole = _request_der(files, tmp_path)
    bodies = {
        "garbage": b"this is not DER at all",
        "empty": b"",
        "truncated": whole[: len(whole) // 2],
        "trailing bytes": whole + b"\x00",
        "wrong type": b"\x30\x03\x02\x01\x05",
    }
    for label, body in bodies.items():
        response = http.post(
            f"{server.url}/ocsp",
            content=body,
            headers={"content-type": "application/ocsp-request"},
            timeout=30,
        )
        assert _status_of(response) == "malformed_request", label
    for encoded in ("not-base64!!", quote(base64.b64encode(whole[:20]).decode(), safe="")):
        response = http.get(f"{server.url}/ocsp/{encoded}")
        assert _status_of(response) == "malformed_request", encoded


def _foreign_issuer(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Một CA lạ")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "foreign.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_issuer_the_ca_does_not_know_is_unauthorized(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    foreign = _foreign_issuer(tmp_path)
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            foreign,
            "-serial",
            UNKNOWN_SERIAL,
            "-reqout",
            tmp_path / "foreign.der",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    request_der = (tmp_path / "foreign.der").read_bytes()
    posted = http.post(f"{server.url}/ocsp", content=request_der)
    assert _status_of(posted) == "unauthorized"
    assert _status_of(_get(http, server.url, request_der)) == "unauthorized"


# -- the cost of answers signed on the spot (issue 9, item 5) -----------------------------------


@pytest.fixture
def limited_app(app_with: Callable[..., FastAPI]) -> FastAPI:
    """The app in process with a budget of two on-the-spot OCSP signatures per client."""
    return app_with(KYSO_OCSP_SIGN_PER_MINUTE="6")


async def _post_ocsp(app: FastAPI, client: str, bodies: list[bytes]) -> list[str]:
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kyso.test") as http:
        return [_status_of(await http.post("/ocsp", content=body)) for body in bodies]


@pytest.mark.anyio
async def test_answers_signed_on_the_spot_have_a_budget_per_client_presigned_ones_none(
    server, limited_app: FastAPI, tmp_path: Path
) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    nonces = [_request_der(files, tmp_path, nonce=True, name=f"n{i}") for i in range(3)]
    presigned = _request_der(files, tmp_path)
    client = f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"
    # RFC 6960 §2.3: tryLater, unsigned, once the client's budget is spent …
    assert await _post_ocsp(limited_app, client, nonces) == ["successful"] * 2 + ["try_later"]
    # … while the pre-signed answer costs nothing and is never refused.
    assert await _post_ocsp(limited_app, client, [presigned] * 10) == ["successful"] * 10
    # Another client has its own budget.
    assert await _post_ocsp(limited_app, f"{client}-b", nonces[:1]) == ["successful"]


@pytest.mark.anyio
async def test_answers_signed_on_the_spot_are_signed_off_the_event_loop(
    server, limited_app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    responder = limited_app.state.context.responder
    signed_on: list[int] = []
    sign = responder._sign  # where the responder's key signs, whoever asked

    def watched(*args: object) -> object:
        signed_on.append(threading.get_ident())
        return sign(*args)

    monkeypatch.setattr(responder, "_sign", watched)
    statuses = await _post_ocsp(
        limited_app,
        f"198.51.100.{uuid.uuid4().int % 250}",
        [_request_der(files, tmp_path, nonce=True, name="n")],
    )
    assert statuses == ["successful"]
    assert signed_on and threading.get_ident() not in signed_on


@pytest.mark.anyio
async def test_with_every_signing_thread_busy_the_answer_is_try_later_at_once(
    server, limited_app: FastAPI, tmp_path: Path
) -> None:
    files = _issue(server.instance.ctx, tmp_path)
    request = _request_der(files, tmp_path, nonce=True, name="n")
    async with signing_threads_busy(limited_app):
        statuses = await _post_ocsp(limited_app, f"203.0.113.{uuid.uuid4().int % 250}", [request])
    assert statuses == ["try_later"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["nonce", "serial never issued"])
async def test_an_answer_signed_on_the_spot_reads_the_request_and_the_store_once(
    server, limited_app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The request read on the event loop is what the signing thread signs: it is parsed
    once, stored answers are looked up once, and the certificates table is read only for the
    certificate itself (a serial never issued: is it ours now? its status for the answer)."""
    files = _issue(server.instance.ctx, tmp_path)
    if kind == "nonce":
        body, certificate_reads = _request_der(files, tmp_path, nonce=True, name="n"), 1
    else:
        body, certificate_reads = _request_der(files, tmp_path, "-serial", UNKNOWN_SERIAL), 2
    parsed: list[bytes] = []
    parse = x509_ocsp.load_der_ocsp_request

    def counted(der: bytes) -> x509_ocsp.OCSPRequest:
        parsed.append(der)
        return parse(der)

    monkeypatch.setattr(x509_ocsp, "load_der_ocsp_request", counted)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    db = limited_app.state.context.db
    engines = list({id(e): e for e in (db.engine, db.read_engine)}.values())
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        client = f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"
        assert await _post_ocsp(limited_app, client, [body]) == ["successful"]
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    assert len(parsed) == 1
    assert sum("ocsp_responses" in s for s in statements) == (kind != "nonce")
    assert sum("FROM certificates" in s for s in statements) == certificate_reads, statements
