"""Budgets per client address, shared by every process, keyed on the address a trusted proxy
reports and on nothing a client can write (issue 9, item 5)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Instance
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kyso import clock, ratelimit
from kyso.ratelimit import Budget, Limiter, Purpose, RateLimited
from kyso.store.db import Database

KYSO = Path(__file__).resolve().parents[2] / "kyso"


def _client() -> str:
    """A client address no other test spends from (the database lives for the session)."""
    return f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:8]}"


def _limiter(db: Database, interval: float = 3600.0, burst: int = 3) -> Limiter:
    return Limiter(db, {Purpose.VERIFICATION: Budget(interval, burst)})


def _takes(limiter: Limiter, client: str, times: int) -> list[bool]:
    allowed = []
    for _ in range(times):
        try:
            limiter.take(Purpose.VERIFICATION, client)
            allowed.append(True)
        except RateLimited:
            allowed.append(False)
    return allowed


def test_two_database_objects_on_one_database_share_one_budget(
    instance: Instance, fake_clock: clock.FakeClock
) -> None:
    client = _client()
    first = _limiter(instance.ctx.db, interval=60.0, burst=3)
    other_db = Database(instance.ctx.settings.database_url)  # another worker's engines
    try:
        second = _limiter(other_db, interval=60.0, burst=3)
        assert _takes(first, client, 2) == [True, True]
        assert _takes(second, client, 2) == [True, False]
        with pytest.raises(RateLimited) as refused:
            first.take(Purpose.VERIFICATION, client)
        assert 1 <= refused.value.retry_after <= 60
        assert "thử lại sau" in refused.value.message("vi")
        fake_clock.advance(60)  # one interval later, exactly one more fits, for either
        assert _takes(second, client, 1) == [True]
        assert _takes(first, client, 1) == [False]
    finally:
        other_db.dispose()


def test_another_process_spends_the_same_budget(instance: Instance) -> None:
    client = _client()
    script = (
        "import sys\n"
        "from kyso.ratelimit import Budget, Limiter, Purpose, RateLimited\n"
        "from kyso.store.db import Database\n"
        "db = Database(sys.argv[1])\n"
        "limiter = Limiter(db, {Purpose.VERIFICATION: Budget(3600.0, 3)})\n"
        "for _ in range(2):\n"
        "    limiter.take(Purpose.VERIFICATION, sys.argv[2])\n"
        "db.dispose()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, instance.ctx.settings.database_url, client],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _takes(_limiter(instance.ctx.db), client, 2) == [True, False]


def test_concurrent_takers_never_exceed_the_budget(instance: Instance) -> None:
    client = _client()
    burst = 25
    db = Database(instance.ctx.settings.database_url)
    limiter = _limiter(db, burst=burst)
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        mine = _takes(limiter, client, 10)
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        db.dispose()
    assert len(allowed) == 80
    assert allowed.count(True) == burst


def test_full_buckets_are_swept_and_a_switched_off_budget_never_refuses(
    instance: Instance, fake_clock: clock.FakeClock
) -> None:
    client = _client()
    limiter = _limiter(instance.ctx.db, interval=10.0, burst=2)
    limiter.take(Purpose.VERIFICATION, client)
    key = ratelimit.bucket_key(Purpose.VERIFICATION, client)
    with instance.ctx.db.read() as session:
        assert ratelimit.marked(session, key, now=clock.timestamp())
    fake_clock.advance(11)  # full again: the row says nothing any more
    with instance.ctx.db.session() as session:
        assert ratelimit.sweep(session) >= 1
    with instance.ctx.db.read() as session:
        assert not ratelimit.marked(session, key, now=clock.timestamp())
    off = Limiter(instance.ctx.db, {Purpose.VERIFICATION: Budget.per_minute(0)})
    assert _takes(off, client, 50) == [True] * 50


# -- the client address ------------------------------------------------------------------------
@pytest.fixture
def tsa_app(app_with: Callable[..., FastAPI]) -> object:
    """The app with a TSA budget of three, as ``kyso serve`` runs it: behind uvicorn's
    ProxyHeadersMiddleware trusting only 10.0.0.1 (``--forwarded-allow-ips 10.0.0.1``)."""
    app = app_with(KYSO_TSA_PER_MINUTE="9")
    return ProxyHeadersMiddleware(app, trusted_hosts="10.0.0.1")  # type: ignore[arg-type]


async def _stamps(app: object, peer: str, forwarded: list[str]) -> list[int]:
    statuses = []
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://kyso.test") as client:
        for value in forwarded:
            answer = await client.post(
                "/tsa",
                content=b"not a request",  # refused by the TSA, but counted first
                headers={"content-type": "application/timestamp-query", "x-forwarded-for": value},
            )
            statuses.append(answer.status_code)
    return statuses


@pytest.mark.anyio
async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    tsa_app: object,
) -> None:
    peer = f"203.0.113.{uuid.uuid4().int % 250}"
    spoofed = [f"192.0.2.{i}" for i in range(5)]  # a new "client" every time
    assert await _stamps(tsa_app, peer, spoofed) == [200, 200, 200, 429, 429]


@pytest.mark.anyio
async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    tsa_app: object,
) -> None:
    clients = [f"192.0.2.{uuid.uuid4().int % 250}", f"198.51.100.{uuid.uuid4().int % 250}"]
    first = await _stamps(tsa_app, "10.0.0.1", [clients[0]] * 4)
    assert first == [200, 200, 200, 429]
    # A client cannot pass itself off through the proxy either: uvicorn takes the right-most
    # address the trusted proxy added, not what the client wrote before it.
    spoofing = await _stamps(tsa_app, "10.0.0.1", [f"{clients[0]}, {clients[1]}"] * 3)
    assert spoofing == [200, 200, 200]


async def _login_cookie(app: object, peer: str, proto: str) -> str:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://kyso.test") as client:
        page = await client.get(
            "/login", headers={"accept": "text/html", "x-forwarded-proto": proto}
        )
    return page.headers["set-cookie"]


@pytest.mark.anyio
async def test_only_a_trusted_proxy_says_the_page_came_over_https(tsa_app: object) -> None:
    assert "secure" not in (await _login_cookie(tsa_app, "203.0.113.9", "https")).lower()
    assert "secure" in (await _login_cookie(tsa_app, "10.0.0.1", "https")).lower()


def test_kyso_never_reads_forwarded_headers_itself() -> None:
    """Only uvicorn, and only for --forwarded-allow-ips, may read X-Forwarded-*."""
    readers = [
        f"{path.relative_to(KYSO.parent)}:{number}"
        for path in KYSO.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"""["'](x-forwarded-[a-z]+|x-real-ip|forwarded)["']""", line, re.IGNORECASE)
    ]
    assert readers == []


def test_serve_trusts_forwarded_headers_only_from_the_named_proxies(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from kyso.cli.main import app as cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    for name, value in instance.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["serve", "--forwarded-allow-ips", "10.0.0.1"])
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.0.0.1"


def test_one_take_costs_little(instance: Instance) -> None:
    """A take is one statement in a transaction; print its cost (the report quotes it)."""
    limiter = Limiter(instance.ctx.db, {Purpose.VERIFICATION: Budget(0.0001, 10**9)})
    client = _client()
    limiter.take(Purpose.VERIFICATION, client)
    rounds = 300
    start = time.perf_counter()
    for _ in range(rounds):
        limiter.take(Purpose.VERIFICATION, client)
    each = (time.perf_counter() - start) / rounds
    print(f"\n{instance.backend}: {each * 1e6:.0f} µs per take")
    assert each < 0.05
