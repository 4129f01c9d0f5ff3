"""The RFC 3161 time-stamp authority over HTTP (RFC 3161 §3.4), checked by `openssl ts`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kyso.pki.tsa import TimeStampResp
from kyso.store.models import IdentityRole

pytestmark = pytest.mark.interop

QUERY = "application/timestamp-query"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (each new httpx client costs a TLS context)."""
    with httpx.Client(timeout=30) as client:
        yield client


def _query(tmp_path: Path, data: bytes = "Công văn số 12/UBND-VP".encode()) -> Path:
    document = tmp_path / "document.txt"
    document.write_bytes(data)
    query = tmp_path / "q.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", document, "-sha256", "-cert", "-out", query],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return query


def _post(http: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return http.post(f"{url}/tsa", content=body, headers={"content-type": QUERY})


def _verify(server, tmp_path: Path, query: Path, reply: bytes) -> subprocess.CompletedProcess[str]:
    ctx = server.instance.ctx
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(i.pem() for i in ctx.authority.chain()))
    tsa = tmp_path / "tsa.pem"
    tsa.write_text(ctx.authority.identity(IdentityRole.TSA).pem())
    response = tmp_path / "r.tsr"
    response.write_bytes(reply)
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            response,
            "-queryfile",
            query,
            "-CAfile",
            chain,
            "-untrusted",
            tsa,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_time_stamp_over_http_verifies_with_openssl(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    query = _query(tmp_path)
    reply = _post(http, server.url, query.read_bytes())
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/timestamp-reply"
    assert TimeStampResp.load(reply.content)["status"]["status"].native == "granted"
    result = _verify(server, tmp_path, query, reply.content)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout


def test_time_stamp_for_another_document_does_not_verify(
    server, http: httpx.Client, tmp_path: Path
) -> None:
    """The check above can fail: a reply for one query is refused against another."""
    first = tmp_path / "first"
    first.mkdir()
    reply = _post(http, server.url, _query(first, b"first document").read_bytes())
    assert reply.status_code == 200
    other = _query(tmp_path, b"second document")
    result = _verify(server, tmp_path, other, reply.content)
    assert result.returncode != 0
    assert "Verification: OK" not in result.stdout


@pytest.mark.parametrize(
    "body",
    [b"garbage, not a TimeStampReq", b"", b"\x30\x03\x02\x01\x01"],
    ids=["garbage", "empty", "wrong-structure"],
)
def test_bad_query_gets_a_rejection_not_an_error(server, http: httpx.Client, body: bytes) -> None:
    reply = _post(http, server.url, body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/timestamp-reply"
    status = TimeStampResp.load(reply.content)["status"]
    assert status["status"].native == "rejection"
    assert "bad_data_format" in status["fail_info"].native
    assert status["status_string"].native


def test_oversized_query_is_413_json(server, http: httpx.Client) -> None:
    reply = _post(http, server.url, b"\x30" * (16 * 1024 + 1))
    assert reply.status_code == 413
    body = reply.json()
    assert body["code"] == "too_large"
    assert body["message"]
