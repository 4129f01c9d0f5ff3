"""The local agent on its own: who it answers (one origin, 127.0.0.1, paired pages with a MAC,
no replays) and how it signs (the PIN asked by the agent, never taken from the page)."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest
from conftest import AGENT_PIN

from kyso.agent.pairing import mac

from .conftest import ORIGIN, Agent, Page, TokenHolder, token_holder

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def holder(world, hsm_tokens) -> TokenHolder:  # type: ignore[no-untyped-def]
    return token_holder(world, hsm_tokens)


def test_pairing_needs_the_code_shown_in_the_agents_own_terminal(agent: Agent) -> None:
    page = Page(agent)
    assert page.get("/v1/status").json()["paired"] is False
    started = page.post("/v1/pair", {})
    assert started.status_code == 200
    assert "code" not in started.json()  # the code is shown by the agent, never sent back
    shown = agent.wait_for(r"pairing code\): (\d{6})").group(1)
    wrong = f"{(int(shown) + 1) % 10**6:06d}"
    refused = page.post("/v1/pair", {"pairing": started.json()["pairing"], "code": wrong})
    assert refused.status_code == 401
    assert refused.json()["code"] == "agent_wrong_pairing_code"
    done = page.post("/v1/pair", {"pairing": started.json()["pairing"], "code": shown})
    assert done.status_code == 200
    page.client, page.secret = done.json()["client"], bytes.fromhex(done.json()["secret"])
    assert page.get("/v1/status").json()["paired"] is True
    stored = agent.config_dir / "pairings.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())["clients"][page.client]["origin"] == ORIGIN
    # the code is spent: typing it again pairs nothing
    again = page.post("/v1/pair", {"pairing": started.json()["pairing"], "code": shown})
    assert again.status_code == 401


def test_three_wrong_codes_end_the_pairing(agent: Agent) -> None:
    page = Page(agent)
    started = page.post("/v1/pair", {}).json()
    shown = agent.wait_for(r"pairing code\): (\d{6})").group(1)
    for wrong in ("000000", "999999", "123456"):
        if wrong != shown:
            page.post("/v1/pair", {"pairing": started["pairing"], "code": wrong})
    late = page.post("/v1/pair", {"pairing": started["pairing"], "code": shown})
    assert late.status_code == 401


def test_another_origin_is_refused_without_cors_headers(agent: Agent, page: Page) -> None:
    evil = Page(agent, origin="https://evil.example", client=page.client, secret=page.secret)
    answer = evil.get("/v1/certificates")
    assert answer.status_code == 403
    assert answer.json()["code"] == "agent_origin_refused"
    assert "access-control-allow-origin" not in answer.headers
    # a lookalike is not the origin either (exact match, no wildcard, no suffix)
    for origin in ("https://kyso.example.evil.example", "http://kyso.example", "null"):
        assert Page(agent, origin=origin).get("/v1/status").status_code == 403
    # no Origin at all (a program, not a page) is refused too
    assert httpx.get(f"{agent.url}/v1/status").status_code == 403
    preflight = httpx.options(
        f"{agent.url}/v1/sign",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


def test_the_preflight_from_kyso_allows_the_private_network_call(agent: Agent) -> None:
    preflight = httpx.options(
        f"{agent.url}/v1/sign",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-kyso-mac",
            "access-control-request-private-network": "true",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-private-network"] == "true"
    assert "x-kyso-mac" in preflight.headers["access-control-allow-headers"]


def test_a_rebound_host_name_is_refused(agent: Agent, page: Page) -> None:
    """DNS rebinding: a hostile name resolving to 127.0.0.1 arrives with its own Host."""
    headers = page.headers("GET", "/v1/certificates", host=f"kyso-rebind.example:{agent.port}")
    answer = httpx.get(f"{agent.url}/v1/certificates", headers=headers)
    assert answer.status_code == 403
    assert answer.json()["code"] == "agent_host_refused"


def test_a_request_without_a_valid_mac_is_401(agent: Agent, page: Page) -> None:
    assert Page(agent).get("/v1/certificates").status_code == 401  # never paired
    forged = Page(agent, client=page.client, secret=b"\x00" * 32)
    answer = forged.get("/v1/certificates")
    assert answer.status_code == 401
    assert answer.json()["code"] == "agent_not_paired"
    # a MAC over another body does not carry over
    body = json.dumps({"digest": "", "hash": "sha256", "serial": "1", "summary": "x"}).encode()
    headers = page.headers("POST", "/v1/sign", b"{}", **{"content-type": "application/json"})
    answer = httpx.post(f"{agent.url}/v1/sign", content=body, headers=headers)
    assert answer.status_code == 401


def test_a_replayed_request_is_refused(agent: Agent, page: Page) -> None:
    headers = page.headers("GET", "/v1/certificates")
    first = httpx.get(f"{agent.url}/v1/certificates", headers=headers)
    assert first.status_code == 200
    replay = httpx.get(f"{agent.url}/v1/certificates", headers=headers)
    assert replay.status_code == 401
    assert replay.json()["code"] == "agent_replayed"
    # an old request, freshly MAC'd with an old time, is refused too
    assert page.client is not None and page.secret is not None
    when, nonce = str(int(time.time()) - 600), "an-old-nonce-1234567"
    old = {
        "origin": ORIGIN,
        "x-kyso-client": page.client,
        "x-kyso-time": when,
        "x-kyso-nonce": nonce,
        "x-kyso-mac": mac(page.secret, "GET", "/v1/certificates", ORIGIN, when, nonce, b""),
    }
    assert httpx.get(f"{agent.url}/v1/certificates", headers=old).status_code == 401


def test_the_certificates_on_the_token_are_listed(page: Page, holder: TokenHolder) -> None:
    listed = page.get("/v1/certificates").json()["certificates"]
    mine = [c for c in listed if c["serial"] == holder.serial]
    assert len(mine) == 1
    assert mine[0]["token"] == "usb-token-1"
    assert "Nông Văn Dền" in mine[0]["subject"]
    import base64

    assert base64.b64decode(mine[0]["der"]) == holder.der


def test_the_pin_is_never_taken_from_the_request_body(
    agent: Agent, page: Page, holder: TokenHolder
) -> None:
    before = agent.signature_log()
    digest = hashlib.sha256(b"x").digest()
    import base64

    for field in ("pin", "PIN", "user_pin", "password"):
        answer = page.post(
            "/v1/sign",
            {
                "digest": base64.b64encode(digest).decode(),
                "hash": "sha256",
                "serial": holder.serial,
                "summary": "x",
                field: AGENT_PIN,
            },
        )
        assert answer.status_code == 422
        assert answer.json()["code"] == "agent_pin_not_accepted"
    assert agent.signature_log() == before


def test_a_wrong_pin_signs_nothing_and_says_so(
    agent: Agent, page: Page, holder: TokenHolder
) -> None:
    before = agent.signature_log()
    agent.pin_file.write_text("000000\n")
    try:
        answer = page.sign(hashlib.sha256(b"van ban").digest(), holder.serial)
    finally:
        agent.pin_file.write_text(AGENT_PIN + "\n")
    assert answer.status_code == 403
    assert answer.json()["code"] == "agent_wrong_pin"
    assert "PIN" in answer.json()["message"] and "chưa ký" in answer.json()["message"]
    assert "signature" not in answer.json()
    assert agent.signature_log() == before
    # a cancelled prompt (the PIN program prints nothing) signs nothing either
    agent.pin_file.write_text("")
    try:
        cancelled = page.sign(hashlib.sha256(b"van ban").digest(), holder.serial)
    finally:
        agent.pin_file.write_text(AGENT_PIN + "\n")
    assert cancelled.json()["code"] == "agent_cancelled"
    assert agent.signature_log() == before


def test_a_signature_is_made_with_the_pin_the_agent_asked_and_logged(
    agent: Agent, page: Page, holder: TokenHolder
) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    digest = hashlib.sha256(b"Quyet dinh 15").digest()
    answer = page.sign(digest, holder.serial, summary="Quyết định 15/QĐ-UBND\x1b[2J")
    assert answer.status_code == 200, answer.text
    signature = base64.b64decode(answer.json()["signature"])
    key = x509.load_der_x509_certificate(holder.der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    last = agent.signature_log()[-1].split("\t")
    assert last[1] == holder.serial
    assert last[2] == f"sha256:{digest.hex()}"
    assert last[3] == "Quyết định 15/QĐ-UBND [2J"  # no escape sequence reaches the terminal
    assert (agent.config_dir / "signatures.log").stat().st_mode & 0o777 == 0o600
