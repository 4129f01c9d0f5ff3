"""The local agent (``kyso agent``) run as the user runs it: a subprocess on 127.0.0.1 with
SoftHSM2 standing in for the USB token, its PIN given by a ``--pin-command`` program that reads
a file (so a test can make it answer a wrong PIN); and a stand-in for the page's ``agent.js``
that pairs, MACs its requests and talks to kyso."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AGENT_PIN, AGENT_TOKEN, Instance
from fastapi.testclient import TestClient
from sqlalchemy import update
from support import softhsm
from support.world import World, app_client, make_world, new_cccd

from kyso import clock
from kyso.agent.pairing import mac
from kyso.api import clients
from kyso.keys.base import KeyAlgorithm
from kyso.keys.pkcs11 import Pkcs11KeyStore
from kyso.pki import issuance
from kyso.registry.access import Principal
from kyso.store.models import Certificate, Person, Profile, Role, User

ORIGIN = "https://kyso.example"
PIN_PROGRAM = "import sys, pathlib\nsys.stdout.write(pathlib.Path(sys.argv[1]).read_text())\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Agent:
    """A running ``kyso agent``; its terminal output is collected line by line."""

    def __init__(self, process: subprocess.Popen[str], port: int, config_dir: Path, pin_file: Path):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config_dir = config_dir
        self.pin_file = pin_file
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, seconds: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the agent exited: {self.seen[-5:]}") from None
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} in {self.seen[-10:]}")

    def signature_log(self) -> list[str]:
        path = self.config_dir / "signatures.log"
        return path.read_text().splitlines() if path.exists() else []


@contextmanager
def running_agent(
    hsm_tokens: softhsm.SoftHsmToken, home: Path, origin: str = ORIGIN
) -> Iterator[Agent]:
    """``kyso agent`` for ``origin`` on a free port, its PIN read from ``home/pin``."""
    program = home / "pin.py"
    program.write_text(PIN_PROGRAM)
    pin_file = home / "pin"
    pin_file.write_text(AGENT_PIN + "\n")
    port = _free_port()
    env = {**os.environ, "SOFTHSM2_CONF": str(hsm_tokens.conf_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "kyso.cli.main", "agent",
            "--origin", origin,
            "--module", hsm_tokens.module,
            "--token", AGENT_TOKEN,
            "--port", str(port),
            "--pin-command", f"{sys.executable} {program} {pin_file}",
            "--config-dir", str(home / "config"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    started = Agent(process, port, home / "config", pin_file)
    try:
        started.wait_for(r"kyso agent .*127\.0\.0\.1:\d+")
        yield started
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def agent(
    hsm_tokens: softhsm.SoftHsmToken, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agent]:
    with running_agent(hsm_tokens, tmp_path_factory.mktemp("agent")) as started:
        yield started


@dataclass
class Page:
    """What ``agent.js`` does on kyso's page, in Python: pairs, then MACs every request."""

    agent: Agent
    origin: str = ORIGIN
    client: str | None = None
    secret: bytes | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def headers(self, method: str, path: str, body: bytes = b"", **extra: str) -> dict[str, str]:
        headers = {"origin": self.origin, **extra}
        if self.client and self.secret:
            when, nonce = str(int(time.time())), secrets.token_urlsafe(16)
            headers.update(
                {
                    "x-kyso-client": self.client,
                    "x-kyso-time": when,
                    "x-kyso-nonce": nonce,
                    "x-kyso-mac": mac(self.secret, method, path, self.origin, when, nonce, body),
                }
            )
        return headers

    def get(self, path: str) -> httpx.Response:
        return self.http.get(self.agent.url + path, headers=self.headers("GET", path))

    def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        body = json.dumps(data).encode()
        headers = self.headers("POST", path, body, **{"content-type": "application/json"})
        return self.http.post(self.agent.url + path, content=body, headers=headers)

    def pair(self) -> Page:
        started = self.post("/v1/pair", {})
        assert started.status_code == 200, started.text
        code = self.agent.wait_for(r"pairing code\): (\d{6})").group(1)
        done = self.post("/v1/pair", {"pairing": started.json()["pairing"], "code": code})
        assert done.status_code == 200, done.text
        self.client, self.secret = done.json()["client"], bytes.fromhex(done.json()["secret"])
        return self

    def sign(
        self, digest: bytes, serial: str, summary: str = "Quyết định 15/QĐ-UBND"
    ) -> httpx.Response:
        return self.post(
            "/v1/sign",
            {
                "digest": base64.b64encode(digest).decode(),
                "hash": "sha256",
                "serial": serial,
                "summary": summary,
            },
        )


@pytest.fixture(scope="module")
def page(agent: Agent) -> Iterator[Page]:
    made = Page(agent).pair()
    yield made
    made.http.close()


@dataclass
class TokenHolder:
    """A leader whose key and certificate are on the USB token."""

    user: User
    principal: Principal
    serial: str
    der: bytes
    headers: dict[str, str]


def token_holder(
    world: World,
    hsm_tokens: softhsm.SoftHsmToken,
    full_name: str = "Nông Văn Dền",
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
) -> TokenHolder:
    """A person, their user, and an individual certificate whose key was made in the USB token
    (and written beside it, as a CA's registration desk does)."""
    ctx = world.ctx
    org = world.unit("babe")
    tag = secrets.token_hex(3)
    now = clock.now()
    hsm_tokens.lib()  # the token visible to this process
    store = Pkcs11KeyStore(hsm_tokens.module, AGENT_TOKEN, AGENT_PIN)
    try:
        with ctx.db.session() as session:
            person = Person(
                public_id=secrets.token_hex(8),
                full_name=full_name,
                date_of_birth=date(1972, 3, 8),
                id_number=new_cccd(date(1972, 3, 8)),
                organization_id=org.id,
                position="Chủ tịch",
                email=f"token.{tag}@backan.gov.vn",
                created_at=now,
                updated_at=now,
            )
            session.add(person)
            session.flush()
            user = User(
                public_id=secrets.token_hex(8),
                username=f"token-{tag}",
                full_name=full_name,
                email=person.email,
                password_hash="!",
                role=Role.SIGNER,
                organization_id=org.id,
                person_id=person.id,
                password_changed_at=now,
                created_at=now,
                active=True,
                failed_logins=0,
            )
            session.add(user)
            session.flush()
            issued = issuance.issue_on_token(
                session,
                ctx.authority,
                store,
                profile=Profile.INDIVIDUAL,
                subject=f"CN={full_name} {tag},O={org.name},C=VN",
                algorithm=algorithm,
                actor="cli:test",
            )
            session.execute(
                update(Certificate)
                .where(Certificate.id == issued.row.id)
                .values(person_id=person.id, organization_id=org.id)
            )
            token = clients.create(
                session, f"token-{tag}", ["documents:sign"], "test", user_id=user.id
            )
            principal = Principal(
                actor=f"user:{user.username}",
                role=Role.SIGNER,
                user_id=user.id,
                organization_id=org.id,
                org_path=org.path,
            )
            return TokenHolder(
                user,
                principal,
                issued.row.serial,
                issued.row.der,
                {"authorization": f"Bearer {token}"},
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    return make_world(instance.ctx, instance.backend)


@pytest.fixture(scope="module")
def _apps() -> Iterator[dict[tuple[str, str], TestClient]]:
    made: dict[tuple[str, str], TestClient] = {}
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def kyso(instance: Instance, _apps: dict[tuple[str, str], TestClient]) -> TestClient:
    return app_client(instance, _apps)
