"""The RFC 3161 time-stamp authority over HTTP (RFC 3161 §3.4), checked by `openssl ts`."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kyso.pki.tsa import TimeStampResp
from kyso.store.models import IdentityRole

from .conftest import signing_threads_busy

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


# -- the cost of a time-stamp (issue 9, item 5) --------------------------------------------------


@pytest.fixture
def limited_app(app_with: Callable[..., FastAPI]) -> FastAPI:
    """The app in process with a budget of one time-stamp at once per client."""
    return app_with(KYSO_TSA_PER_MINUTE="3")


async def _stamp(app: FastAPI, client: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kyso.test") as http:
        return await http.post("/tsa", content=body, headers={"content-type": QUERY})


def _refusal(reply: httpx.Response) -> str:
    assert reply.headers["content-type"] == "application/timestamp-reply"
    status = TimeStampResp.load(reply.content)["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"system_failure"}
    return str(status["status_string"].native)


@pytest.mark.anyio
async def test_time_stamps_have_a_budget_per_client_then_429_with_an_rfc_3161_rejection(
    limited_app: FastAPI, tmp_path: Path
) -> None:
    query = _query(tmp_path).read_bytes()
    client = f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"
    first = await _stamp(limited_app, client, query)
    assert first.status_code == 200
    assert TimeStampResp.load(first.content)["status"]["status"].native == "granted"
    refused = await _stamp(limited_app, client, query)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert "too many requests" in _refusal(refused)
    other = await _stamp(limited_app, f"{client}-b", query)
    assert other.status_code == 200


@pytest.mark.anyio
async def test_time_stamps_are_signed_off_the_event_loop_and_refused_when_all_threads_are_busy(
    limited_app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = _query(tmp_path).read_bytes()
    tsa = limited_app.state.context.tsa
    signed_on: list[int] = []
    respond = tsa.respond

    def watched(request_der: bytes) -> bytes:
        signed_on.append(threading.get_ident())
        return respond(request_der)

    monkeypatch.setattr(tsa, "respond", watched)
    reply = await _stamp(limited_app, f"198.51.100.{uuid.uuid4().int % 250}", query)
    assert reply.status_code == 200
    assert signed_on and threading.get_ident() not in signed_on

    async with signing_threads_busy(limited_app):
        busy = await _stamp(limited_app, f"203.0.113.{uuid.uuid4().int % 250}", query)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in _refusal(busy)
