"""``/livez`` and ``/readyz``: ready means the database answers and the key store signs.

Not ready is a 503 whose JSON names the failed check, never a 500: shown with PostgreSQL
refusing connections (and ready again once it accepts them), a PKCS#11 module that is not
there, and a SoftHSM2 token whose files are removed under a running server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import Instance, make_env, open_instance
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql
from support import postgres as pg
from support import require_or_skip, softhsm

from kyso.observability.health import Health
from kyso.settings import Settings
from kyso.web.app import create_app
from observability import serving

LOCAL = ("127.0.0.1", 50000)


def _app(env: dict[str, str]) -> FastAPI:
    app = create_app(Settings.from_env(env), scheduler=False)
    app.state.ops.health.cache_seconds = 0  # every probe asks anew, for these tests
    return app


def _close(app: FastAPI) -> None:
    app.state.signing_pool.close()
    app.state.context.close()


def test_a_serving_instance_is_live_and_ready(instance: Instance) -> None:
    app = _app(instance.env)
    try:
        with TestClient(app, client=LOCAL) as client:
            assert client.get("/livez").json() == {"status": "live"}
            ready = client.get("/readyz")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "ready" and body["failed"] == []
            assert body["checks"]["database"]["ok"] and body["checks"]["keystore"]["ok"]
            assert client.get("/healthz").json() == {"status": "ok"}  # kept as it was
    finally:
        _close(app)


def test_readiness_is_cached_so_a_storm_of_probes_signs_once(instance: Instance) -> None:
    health = Health(instance.ctx, cache_seconds=60)
    first = health.readiness()
    assert first.ok
    assert all(health.readiness() is first for _ in range(50))


@pytest.fixture
def pg_instance(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    base = pg.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = pg.fresh_database(base)
    env = make_env(tmp_path / "home", url)
    open_instance(env).close()
    yield env, url
    drop()


def _connections(url: str, allowed: bool) -> None:
    """Let the database take connections or not; when not, end those it has."""
    name = url.rsplit("/", 1)[1]
    admin = pg.to_libpq(pg.with_database(url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


@pytest.mark.postgres
def test_not_ready_while_postgresql_refuses_connections_and_ready_again_after(
    pg_instance: tuple[dict[str, str], str],
) -> None:
    env, url = pg_instance
    app = _app(env)
    try:
        with TestClient(app, client=LOCAL) as client:
            assert client.get("/readyz").status_code == 200
            _connections(url, allowed=False)
            try:
                refused = client.get("/readyz")
                assert refused.status_code == 503
                body = refused.json()
                assert body["status"] == "not_ready"
                assert body["failed"] == ["database"]
                assert body["checks"]["keystore"]["ok"]
                assert body["checks"]["database"]["detail"] == "OperationalError"
                assert client.get("/livez").status_code == 200  # alive: do not restart it
            finally:
                _connections(url, allowed=True)
            assert client.get("/readyz").status_code == 200
    finally:
        _close(app)


@pytest.mark.softhsm
def test_not_ready_with_503_when_the_pkcs11_module_is_not_there(
    hsm_instance: Instance, tmp_path: Path
) -> None:
    env = {**hsm_instance.env, "KYSO_PKCS11_MODULE": str(tmp_path / "libmissing-hsm.so")}
    with serving.serving(env, tmp_path / "server.log") as url:
        answer = httpx.get(f"{url}/readyz", timeout=30)
        assert answer.status_code == 503
        assert answer.json()["failed"] == ["keystore"]
        assert answer.json()["checks"]["keystore"]["detail"] == "keystore_error"
        assert answer.json()["checks"]["database"]["ok"]
        assert "Traceback" not in answer.text
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
        # what needs the CA's keys is unavailable too, not broken
        chain = httpx.get(f"{url}/ca/chain.pem", timeout=10)
        assert chain.status_code == 503 and chain.json()["code"] == "keystore_error"


@pytest.mark.softhsm
def test_not_ready_with_503_when_the_token_is_not_in_the_hsm(
    hsm_instance: Instance, tmp_path: Path
) -> None:
    env = {**hsm_instance.env, "KYSO_PKCS11_TOKEN": "khong-co-token-nay"}
    with serving.serving(env, tmp_path / "server.log") as url:
        answer = httpx.get(f"{url}/readyz", timeout=30)
        assert answer.status_code == 503
        assert answer.json()["failed"] == ["keystore"]
        assert answer.json()["checks"]["keystore"]["detail"] == "not_found"


@pytest.mark.softhsm
def test_not_ready_when_the_token_disappears_under_a_running_server(
    hsm_instance: Instance, hsm_tokens: softhsm.SoftHsmToken, tmp_path: Path
) -> None:
    """A copy of the CA's token in a SoftHSM2 configuration of its own, removed while the
    server runs: its session's objects go, the probe's signature fails, 503."""
    copy = tmp_path / "softhsm"
    shutil.copytree(hsm_tokens.token_dir, copy / "tokens")
    conf = copy / "softhsm2.conf"
    conf.write_text(
        hsm_tokens.conf_path.read_text().replace(str(hsm_tokens.token_dir), str(copy / "tokens"))
    )
    env = {**hsm_instance.env, "SOFTHSM2_CONF": str(conf)}
    with serving.serving(env, tmp_path / "server.log") as url:
        assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
        shutil.rmtree(copy / "tokens")
        time.sleep(3.5)  # past the server's cached answer
        answer = httpx.get(f"{url}/readyz", timeout=30)
        assert answer.status_code == 503
        body = answer.json()
        assert body["failed"] == ["keystore"]
        assert body["checks"]["database"]["ok"]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'kyso_keystore_errors_total{code="' in metrics
