"""JSON logs (``KYSO_LOG_FORMAT=json``): one object per line, each with the request's id,
and no password, PIN or bearer token in any of them.

The server runs as a process of its own and its standard error is read as a log shipper
would read it.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Instance
from fastapi.testclient import TestClient

from kyso.observability import logging as jsonlog
from kyso.settings import Settings
from kyso.web.app import create_app
from observability import serving

PASSWORD = "Mật-khẩu-bí-mật-7a1c9e"
PIN = "864209173"
TOKEN = "sk-test-4f2b9d0c1e8a7b6c5d4e3f2a1b0c9d8e"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    entries = []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)  # a line that is not JSON fails here
            assert isinstance(entry, dict)
            entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def json_server(sqlite_instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("json-logs") / "server.log"
    env = {**sqlite_instance.env, "KYSO_LOG_FORMAT": "json"}
    with serving.serving(env, log) as url:
        yield url, log


def test_every_line_is_json_and_carries_the_request_id(json_server: Any) -> None:
    url, log = json_server
    answer = httpx.get(f"{url}/ca/chain.pem", headers={"X-Request-ID": "phieu-2026-0042"})
    assert answer.headers["x-request-id"] == "phieu-2026-0042"
    # an id a client made up badly is replaced, not echoed into headers and logs
    odd = httpx.get(f"{url}/livez", headers={"X-Request-ID": "a b<script>" + "x" * 300})
    made = odd.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    entries = _lines(log)
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    access = [e for e in entries if e["logger"] == "kyso.access"]
    chain = [e for e in access if e.get("request_id") == "phieu-2026-0042"]
    assert chain and chain[0]["http"]["route"] == "/ca/chain.pem"
    assert chain[0]["http"]["status"] == 200
    assert any(e.get("request_id") == made for e in access)
    # uvicorn's own lines come through the same formatter
    assert any(e["logger"].startswith("uvicorn") for e in entries)


def test_passwords_pins_and_bearer_tokens_never_reach_the_log(json_server: Any) -> None:
    url, log = json_server
    with httpx.Client(base_url=url, headers={"Origin": url}) as browser:
        page = browser.get("/login")
        token = CSRF.search(page.text)
        assert token is not None
        failed = browser.post(
            "/login",
            data={"username": "chanh.vp", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert failed.status_code == 401  # no such user: the password was checked, and refused
    authorize = httpx.post(
        f"{url}/csc/v2/credentials/authorize",
        json={"credentialID": "khong-co", "numSignatures": 1, "PIN": PIN, "OTP": "123456"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert authorize.status_code in (400, 401)
    api = httpx.get(f"{url}/api/v1/certificates", headers={"Authorization": f"Bearer {TOKEN}"})
    assert api.status_code == 401
    text = log.read_text(encoding="utf-8")
    assert _lines(log)  # still JSON throughout
    for secret in (PASSWORD, PIN, TOKEN, json.dumps(PASSWORD)[1:-1]):
        assert secret not in text


def test_an_unexpected_error_is_logged_with_type_and_traceback_and_answered_without(
    instance: Instance,
) -> None:
    app = create_app(Settings.from_env(instance.env), scheduler=False)

    @app.get("/boom-for-the-test")
    def boom() -> None:
        raise RuntimeError("the cause, for the operator only")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(jsonlog.JsonFormatter())
    web = logging.getLogger("kyso.web")
    web.addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get("/boom-for-the-test", headers={"X-Request-ID": "loi-1"})
    finally:
        web.removeHandler(handler)
        app.state.signing_pool.close()
        app.state.context.close()
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal_error"
    assert "Traceback" not in answer.text and "the cause" not in answer.text
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    logged = [e for e in entries if e.get("exception") == "RuntimeError"]
    assert logged, entries
    assert logged[0]["request_id"] == "loi-1"
    assert logged[0]["level"] == "ERROR"
    assert "RuntimeError: the cause, for the operator only" in logged[0]["traceback"]


def test_text_logs_stay_as_they_were_and_a_wrong_format_is_refused() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    jsonlog.configure("text")
    assert root.handlers == before
    with pytest.raises(ValueError, match="KYSO_LOG_FORMAT"):
        jsonlog.configure("xml")
