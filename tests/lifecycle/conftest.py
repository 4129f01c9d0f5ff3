"""The lifecycle's fixtures: a small province per test (its own units, users and API tokens,
so tests share one CA instance per backend in any order), an app in process, and an SMTP
sink that keeps what it receives."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import secrets
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from kyso import clock
from kyso.api import clients
from kyso.context import Context
from kyso.registry import organizations
from kyso.registry.access import SCOPE_ACTIONS, Principal, cli_principal
from kyso.registry.fields import cccd_prefix
from kyso.settings import Settings
from kyso.store.models import IdentityRole, Organization, OrgKind, Role, Sector, User
from kyso.web.app import create_app

ALL_SCOPES = sorted(set(SCOPE_ACTIONS) | {s.value for s in clients.Scope})
OFFICER_SCOPES = [
    "requests:read",
    "requests:write",
    "registry:read",
    "registry:write",
    "certificates:read",
    "reports:read",
]


def new_cccd(born: date, female: bool = False) -> str:
    return cccd_prefix(born, female) + f"{secrets.randbelow(10**6):06d}"


def individual_form(unit_name: str = "UBND huyện Ba Bể", **overrides: Any) -> dict[str, Any]:
    born = date(1978, 4, 12)
    form = {
        "full_name": "Hoàng Thị Mai",
        "date_of_birth": "12/04/1978",
        "id_number": new_cccd(born, female=True),
        "id_issue_date": "2021-07-01",
        "id_issue_place": "Cục Cảnh sát QLHC về TTXH",
        "email": f"mai.ht.{secrets.token_hex(3)}@babe.backan.gov.vn",
        "organization": unit_name,
        "province": "Bắc Kạn",
        "position": "Phó Chủ tịch UBND huyện",
        "mobile": "0912 345 678",
    }
    form.update(overrides)
    return form


@dataclass
class World:
    """One test's province: units, users (with principals and API tokens)."""

    ctx: Context
    backend: str
    tag: str
    units: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def unit(self, key: str) -> Organization:
        return self.units[key]

    def who(self, key: str) -> Principal:
        return self.principals[key]

    def headers(self, key: str) -> dict[str, str]:
        return self.tokens[key]


def _make_world(ctx: Context, backend: str) -> World:
    tag = secrets.token_hex(3)
    world = World(ctx, backend, tag)
    cli = cli_principal("cli:test")
    tree = [
        ("province", None, "UBND tỉnh Bắc Kạn", OrgKind.PROVINCE, Sector.GOVERNMENT),
        ("babe", "province", "UBND huyện Ba Bể", OrgKind.DISTRICT, Sector.GOVERNMENT),
        ("tnmt", "babe", "Phòng Tài nguyên và Môi trường", OrgKind.OTHER, Sector.GOVERNMENT),
        ("chuhuong", "babe", "UBND xã Chu Hương", OrgKind.COMMUNE, Sector.GOVERNMENT),
        ("nganson", "province", "UBND huyện Ngân Sơn", OrgKind.DISTRICT, Sector.GOVERNMENT),
        ("tnmt2", "nganson", "Phòng Tài nguyên và Môi trường", OrgKind.OTHER, Sector.GOVERNMENT),
        ("hospital", "province", "Bệnh viện Đa khoa tỉnh Bắc Kạn", OrgKind.HOSPITAL, Sector.HEALTH),
    ]
    with ctx.db.session() as session:
        for key, parent, name, kind, sector in tree:
            org = organizations.create(
                cli,
                session,
                organizations.OrgInput(
                    name=name,
                    kind=kind,
                    sector=sector,
                    parent=world.units[parent].public_id if parent else None,
                    province="Bắc Kạn",
                    address=f"Tổ 1, {name}",
                    email=f"{key}.{tag}@backan.gov.vn",
                ),
            )
            world.units[key] = org
        now = clock.now()
        people = [
            ("admin1", Role.PROVINCE_ADMIN, "province", "Nguyễn Văn Quản"),
            ("admin2", Role.PROVINCE_ADMIN, "province", "Trần Thị Duyệt"),
            ("officer", Role.UNIT_OFFICER, "babe", "Lý Văn Cán"),
            ("officer_ns", Role.UNIT_OFFICER, "nganson", "Hà Văn Sơn"),
            ("auditor", Role.AUDITOR, "province", "Đỗ Thị Kiểm"),
        ]
        for key, role, unit_key, full_name in people:
            user = User(
                public_id=secrets.token_hex(8),
                username=f"{key}-{tag}",
                full_name=full_name,
                email=f"{key}.{tag}@backan.gov.vn",
                password_hash="!",
                role=role,
                organization_id=world.units[unit_key].id,
                password_changed_at=now,
                created_at=now,
                active=True,
                failed_logins=0,
            )
            session.add(user)
            session.flush()
            world.users[key] = user
            world.principals[key] = Principal(
                actor=f"user:{user.username}",
                role=role,
                user_id=user.id,
                organization_id=user.organization_id,
                org_path=world.units[unit_key].path,
            )
            scopes = OFFICER_SCOPES if role is Role.UNIT_OFFICER else ALL_SCOPES
            token = clients.create(session, f"{key}-{tag}", scopes, "test", user_id=user.id)
            world.tokens[key] = {"authorization": f"Bearer {token}"}
    return world


@pytest.fixture
def world(instance: Instance) -> World:
    return _make_world(instance.ctx, instance.backend)


@pytest.fixture(scope="session")
def _apps() -> Iterator[dict[tuple[str, str], TestClient]]:
    made: dict[tuple[str, str], TestClient] = {}
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


def app_client(
    instance: Instance, apps: dict[tuple[str, str], TestClient], **settings: Any
) -> TestClient:
    # keyed by the database: a session fixture may be torn down and made anew (xdist)
    key = (instance.env["KYSO_DATABASE_URL"], repr(sorted(settings.items())))
    if key not in apps:
        base = Settings.from_env(instance.env)
        app = create_app(dataclasses.replace(base, **settings), scheduler=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        apps[key] = client
    return apps[key]


@pytest.fixture
def api(instance: Instance, _apps: dict[tuple[str, str], TestClient]) -> TestClient:
    """The web app in process, on the test's backend (one per backend and settings)."""
    return app_client(instance, _apps)


# -- OCSP, asked as a relying party would ---------------------------------------------------------
def ocsp_status(ctx: Context, pem: str) -> tuple[ocsp.OCSPCertStatus, x509.ReasonFlags | None]:
    """The CA's responder's answer for a certificate, parsed by pyca/cryptography."""
    leaf = x509.load_pem_x509_certificate(pem.encode())
    issuer = ctx.authority.identity(IdentityRole.ISSUING).certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    answer = ctx.responder.respond(request.public_bytes(serialization.Encoding.DER))
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == leaf.serial_number
    reason = (
        response.revocation_reason
        if response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        else None
    )
    return response.certificate_status, reason


def make_csr(cn: str = "ignored") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# -- a tiny SMTP server -------------------------------------------------------------------------
class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    server: _SmtpServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._reply("220 sink ESMTP")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            command = line.decode("ascii", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250-sink\r\n250 8BITMIME" if verb == "EHLO" else "250 sink")
            elif verb == "MAIL":
                if self.server.refuse:
                    self._reply("451 try again later")
                    continue
                sender, recipients = command[10:].strip("<> "), []
                self._reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command[8:].strip("<> "))
                self._reply("250 ok")
            elif verb == "DATA":
                self._reply("354 end with .")
                lines = []
                while True:
                    data = self.rfile.readline(1 << 20)
                    if data in (b".\r\n", b".\n", b""):
                        break
                    lines.append(data[1:] if data.startswith(b"..") else data)
                message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                self.server.received.append((sender, list(recipients), message))  # type: ignore[arg-type]
                self._reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 ok")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    received: list[tuple[str | None, list[str], EmailMessage]]
    refuse: bool = False


@dataclass
class SmtpSink:
    host: str
    port: int
    server: _SmtpServer

    @property
    def received(self) -> list[tuple[str | None, list[str], EmailMessage]]:
        return self.server.received

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, rcpt, m in self.received if address in rcpt]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SmtpSink("127.0.0.1", server.server_address[1], server)
    finally:
        server.shutdown()
        server.server_close()
