"""Shared fixtures: a CA built once per session on each backend.

``ctx`` runs a test on SQLite and on PostgreSQL (the server scripts/test-setup.sh starts);
``hsm_ctx`` is a CA whose keys live in SoftHSM2. ``server`` / ``hsm_server`` serve those CAs
over HTTP from a separate uvicorn process, as a relying party would reach them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import postgres as pg
from support import require_or_skip, softhsm

from kyso import clock
from kyso.context import Context
from kyso.pki import bootstrap
from kyso.settings import Settings

PASSPHRASE = "test-passphrase-not-secret"
HSM_PIN = "246810"
CENTRAL_TOKEN, CENTRAL_PIN = "kyso-hsm", "975310"
AGENT_TOKEN, AGENT_PIN = "usb-token-1", "112233"
RECONNECT_TOKEN, RECONNECT_PIN = "kyso-reconnect", "246810"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment that points kyso (in process or in a subprocess) at one instance."""
    env = {
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": database_url,
        "KYSO_KEYSTORE": "software",
        "KYSO_KEYSTORE_PASSPHRASE": PASSPHRASE,
        "KYSO_BASE_URL": "http://127.0.0.1:8000",
        # the suite verifies hundreds of files from one address; test_verify checks the limit
        "KYSO_VERIFY_PER_MINUTE": "60000",
        # one validation worker per application: the suite makes many (test_pdf_cost sizes
        # the pool itself)
        "KYSO_VERIFY_WORKERS": "1",
        # …and signs OCSP answers, stamps and logs in from one address too (the limits have
        # tests of their own: tests/web/test_ratelimit.py, tests/ui/test_auth.py)
        "KYSO_OCSP_SIGN_PER_MINUTE": "60000",
        "KYSO_TSA_PER_MINUTE": "60000",
        "KYSO_LOGIN_PER_MINUTE": "60000",
        "KYSO_LOGIN_FAILURES_PER_HOUR": "3600000",
    }
    env.update(extra)
    return env


def open_instance(env: dict[str, str], *, init: bool = True) -> Context:
    ctx = Context(Settings.from_env(env))
    ctx.db.migrate()
    if init:
        with ctx.db.session() as session:
            bootstrap.initialize(
                session,
                ctx.authority,
                ctx.keystore,
                names=bootstrap.CaNames.for_organization("UBND tỉnh Bắc Kạn", "Bắc Kạn"),
            )
    return ctx


@dataclass
class Instance:
    ctx: Context
    env: dict[str, str]
    backend: str


def _database_url(backend: str, home: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{home / 'kyso.db'}"
    base = pg.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = pg.fresh_database(base)
    request.addfinalizer(drop)
    return url


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Instance]:
    home = tmp_path_factory.mktemp(f"kyso-{request.param}")
    env = make_env(home, _database_url(request.param, home, request))
    ctx = open_instance(env)
    yield Instance(ctx, env, request.param)
    ctx.close()


@pytest.fixture(scope="session")
def ctx(instance: Instance) -> Context:
    return instance.ctx


@pytest.fixture(scope="session")
def sqlite_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """One SQLite instance for tests that need only one backend."""
    home = tmp_path_factory.mktemp("kyso-sqlite-only")
    env = make_env(home, f"sqlite:///{home / 'kyso.db'}")
    ctx = open_instance(env)
    yield Instance(ctx, env, "sqlite")
    ctx.close()


@pytest.fixture(scope="session")
def hsm_tokens(tmp_path_factory: pytest.TempPathFactory) -> softhsm.SoftHsmToken:
    """The CA's token and a subscriber's token, made before the PKCS#11 library loads."""
    require_or_skip(softhsm.available(), "SoftHSM2 (apt-get install softhsm2)")
    token = softhsm.make_token(tmp_path_factory.mktemp("softhsm"), label="kyso-ca", pin=HSM_PIN)
    token.add_token("subscriber-1", pin="135790")
    token.add_token(CENTRAL_TOKEN, pin=CENTRAL_PIN)  # the central signing HSM (kyso.remote)
    token.add_token(AGENT_TOKEN, pin=AGENT_PIN)  # a user's USB token, for the local agent
    token.add_token(RECONNECT_TOKEN, pin=RECONNECT_PIN)  # an HSM that drops its sessions
    return token


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def central_instance(
    request: pytest.FixtureRequest,
    hsm_tokens: softhsm.SoftHsmToken,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Instance]:
    """A CA (software keys) with a central signing HSM in SoftHSM2, on each backend."""
    home = tmp_path_factory.mktemp(f"kyso-central-{request.param}")
    env = make_env(
        home,
        _database_url(request.param, home, request),
        KYSO_HSM_MODULE=hsm_tokens.module,
        KYSO_HSM_TOKEN=CENTRAL_TOKEN,
        KYSO_HSM_PIN=CENTRAL_PIN,
        SOFTHSM2_CONF=str(hsm_tokens.conf_path),
    )
    ctx = open_instance(env)
    yield Instance(ctx, env, request.param)
    ctx.close()


@pytest.fixture(scope="session")
def hsm_instance(
    hsm_tokens: softhsm.SoftHsmToken, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Instance]:
    home = tmp_path_factory.mktemp("kyso-hsm")
    env = make_env(
        home,
        f"sqlite:///{home / 'kyso.db'}",
        KYSO_KEYSTORE="pkcs11",
        KYSO_PKCS11_MODULE=hsm_tokens.module,
        KYSO_PKCS11_TOKEN="kyso-ca",
        KYSO_PKCS11_PIN=HSM_PIN,
        SOFTHSM2_CONF=str(hsm_tokens.conf_path),
    )
    ctx = open_instance(env)
    yield Instance(ctx, env, "softhsm")
    ctx.close()


@dataclass
class Server:
    url: str
    instance: Instance


def _serve(instance: Instance, log_dir: Path, port: int | None = None) -> Iterator[Server]:
    port = port or _free_port()
    env = {**os.environ, **instance.env, "KYSO_BASE_URL": f"http://127.0.0.1:{port}"}
    log = (log_dir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "kyso.web.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # generous: CI machines are small and shared
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if process.poll() is not None:
                raise RuntimeError(f"server exited; see {log.name}")
        else:
            process.kill()
            raise RuntimeError("server did not start in 120 s")
    try:
        yield Server(url, instance)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def server(instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The web app over HTTP, on each backend."""
    yield from _serve(instance, tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="session")
def hsm_server(
    hsm_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serve(hsm_instance, tmp_path_factory.mktemp("hsm-server"))


@pytest.fixture(scope="session")
def sqlite_server(
    sqlite_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The web app over HTTP on the SQLite-only instance (the browser journeys)."""
    yield from _serve(sqlite_instance, tmp_path_factory.mktemp("sqlite-server"))


@pytest.fixture
def fake_clock() -> Iterator[clock.FakeClock]:
    """kyso's clock stopped at the present: ``fake_clock.advance(1)`` crosses a second (a
    revocation after a signature, a CRL after a change) without sleeping."""
    fake = clock.FakeClock(clock.precise())
    with clock.using(fake):
        yield fake
