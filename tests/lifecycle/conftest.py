"""The lifecycle's fixtures: a small province per test (its own units, users and API tokens,
so tests share one CA instance per backend in any order), an app in process, and an SMTP
sink that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from support.world import (  # noqa: F401 (re-exported to the lifecycle tests)
    ALL_SCOPES,
    OFFICER_SCOPES,
    World,
    app_client,
    individual_form,
    make_csr,
    make_world,
    new_cccd,
)

from kyso.context import Context
from kyso.store.models import IdentityRole


@pytest.fixture
def world(instance: Instance) -> World:
    return make_world(instance.ctx, instance.backend)


@pytest.fixture(scope="session")
def _apps() -> Iterator[dict[tuple[str, str], TestClient]]:
    made: dict[tuple[str, str], TestClient] = {}
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


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
