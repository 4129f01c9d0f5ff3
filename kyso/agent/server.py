"""The agent's HTTP server on 127.0.0.1 (the threat model is in :mod:`kyso.agent`).

Endpoints (JSON):

- ``GET /v1/status``: the agent's name and version, whether the calling page is paired.
- ``POST /v1/pair``: ``{}`` starts a pairing (the code appears in the agent's terminal);
  ``{"pairing", "code"}`` ends it and answers ``{"client", "secret"}``.
- ``GET /v1/certificates`` (MAC'd): the certificates on the token.
- ``POST /v1/sign`` (MAC'd) ``{"digest" (base64), "hash", "serial", "summary"}``: the agent shows
  the summary, asks the PIN itself and answers ``{"signature"}`` (base64; PKCS#1 v1.5 or DER
  ECDSA). A body that carries a PIN is refused.

Each signature is one line in ``signatures.log`` in the config directory (time, serial,
digest, summary).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from kyso.agent import VERSION
from kyso.agent.errors import (
    HostRefused,
    OriginRefused,
    PinNotAccepted,
)
from kyso.agent.pairing import HEADER_CLIENT, HEADER_MAC, HEADER_NONCE, HEADER_TIME, Pairings
from kyso.agent.pin import PinSource
from kyso.agent.token import HASHES, Tokens
from kyso.errors import InvalidInput, KysoError, NotFound, TooLarge

MAX_BODY = 64 * 1024
_ALLOWED_HEADERS = ", ".join(["content-type", HEADER_CLIENT, HEADER_TIME, HEADER_NONCE, HEADER_MAC])
_SIGN_FIELDS = frozenset({"digest", "hash", "serial", "summary"})


class UnsupportedMedia(InvalidInput):
    code = "agent_json_only"
    http_status = 415
    message_vi = "Bộ ký chỉ nhận dữ liệu JSON."
    message_en = "The agent takes JSON only."


@dataclass
class AgentConfig:
    origin: str  # the one kyso origin allowed, e.g. "https://kyso.example"
    module: str  # the PKCS#11 module of the token
    config_dir: Path
    token: str | None = None  # the token's label; None: any token the module shows
    port: int = 8765
    pin: PinSource = field(default_factory=PinSource)


def check_origin(origin: str) -> str:
    """An origin as browsers send it: scheme, host and optional port, nothing else."""
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        raise InvalidInput(
            f"{origin!r} is not an origin like https://kyso.example",
            vi=f"{origin!r} không phải một địa chỉ gốc như https://kyso.example",
        )
    return origin


def printable(text: str, limit: int = 200) -> str:
    """A page's text made safe to print in a terminal: no control characters (no escape
    sequences that could repaint the prompt), at most ``limit`` characters."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, config: AgentConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.pairings = Pairings(config.config_dir)
        self.tokens = Tokens(config.module, config.token)
        self.sign_lock = threading.Lock()  # one PIN prompt at a time
        self.log_lock = threading.Lock()
        super().__init__(("127.0.0.1", config.port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def log_signature(self, serial: str, hash_name: str, digest: bytes, summary: str) -> None:
        line = "\t".join(
            [
                datetime.now(UTC).isoformat(timespec="seconds"),
                serial,
                f"{hash_name}:{digest.hex()}",
                summary,
            ]
        )
        path = self.config.config_dir / "signatures.log"
        with self.log_lock:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    protocol_version = "HTTP/1.1"
    server_version = f"kyso-agent/{VERSION}"
    sys_version = ""

    # -- plumbing ------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not logged: signatures are, in signatures.log

    def _origin_ok(self) -> bool:
        return self.headers.get("origin") == self.server.config.origin

    def _send(self, status: int, body: dict[str, Any] | None, *, cors: bool) -> None:
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        self.send_response(status)
        if cors:
            self.send_header("Access-Control-Allow-Origin", self.server.config.origin)
        self.send_header("Vary", "Origin")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: KysoError) -> None:
        body = {"code": exc.code, "message": exc.message("vi"), "message_en": exc.message("en")}
        self._send(exc.http_status, body, cors=self._origin_ok())

    def _gate(self) -> None:
        """DNS rebinding and foreign pages are refused before anything else is read."""
        allowed = {f"127.0.0.1:{self.server.port}", f"localhost:{self.server.port}"}
        if self.headers.get("host") not in allowed:
            raise HostRefused()
        if not self._origin_ok():
            raise OriginRefused()

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError as exc:
            raise InvalidInput("bad Content-Length") from exc
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise TooLarge(f"over {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _json(self, body: bytes) -> dict[str, Any]:
        media = (self.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            raise UnsupportedMedia()
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise InvalidInput("the body is not JSON", vi="nội dung không phải JSON") from exc
        if not isinstance(data, dict):
            raise InvalidInput(
                "the body must be a JSON object", vi="nội dung phải là đối tượng JSON"
            )
        return data

    def _verify(self, body: bytes) -> str:
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = urlsplit(self.path).path
        return self.server.pairings.verify(
            headers, self.command, path, self.server.config.origin, body
        )

    def _run(self, method: str) -> None:
        try:
            self._gate()
            body = self._body()
            path = urlsplit(self.path).path
            route = {
                ("GET", "/v1/status"): self._status,
                ("POST", "/v1/pair"): self._pair,
                ("GET", "/v1/certificates"): self._certificates,
                ("POST", "/v1/sign"): self._sign,
            }.get((method, path))
            if route is None:
                raise NotFound(path[:100])
            status, answer = route(body)
            self._send(status, answer, cors=True)
        except KysoError as exc:
            self._error(exc)
        except Exception:  # one line, never a traceback to the page
            self.server.say("lỗi nội bộ của bộ ký (internal error)")
            self._error(KysoError("internal error", vi="lỗi nội bộ"))

    def do_GET(self) -> None:
        self._run("GET")

    def do_POST(self) -> None:
        self._run("POST")

    def do_OPTIONS(self) -> None:
        """The CORS preflight (Fetch §3.2.2), with Private Network Access's header."""
        try:
            self._gate()
        except KysoError as exc:
            self._error(exc)
            return
        method = self.headers.get("access-control-request-method", "")
        if method not in ("GET", "POST"):
            self._error(InvalidInput("method not allowed"))
            return
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", self.server.config.origin)
        self.send_header("Access-Control-Allow-Methods", "GET, POST")
        self.send_header("Access-Control-Allow-Headers", _ALLOWED_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        if self.headers.get("access-control-request-private-network") == "true":
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Vary", "Origin")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- endpoints -----------------------------------------------------------------------------
    def _status(self, body: bytes) -> tuple[int, dict[str, Any]]:
        client = self.headers.get(HEADER_CLIENT)
        return 200, {
            "agent": "kyso-agent",
            "version": VERSION,
            "paired": self.server.pairings.known(client, self.server.config.origin),
            "token": self.server.config.token,
        }

    def _pair(self, body: bytes) -> tuple[int, dict[str, Any]]:
        data = self._json(body)
        origin = self.server.config.origin
        if not data.get("pairing"):
            pairing, code = self.server.pairings.begin(origin)
            self.server.say(
                f"\nMột trang kyso ({origin}) xin ghép nối với bộ ký.\n"
                f"Mã ghép nối (pairing code): {code}\n"
                "Chỉ nhập mã này vào trang kyso bạn đang mở; mã có hiệu lực 2 phút."
            )
            return 200, {"pairing": pairing, "expires_in": 120}
        asked, typed = data.get("pairing"), data.get("code")
        if not isinstance(asked, str) or not isinstance(typed, str):
            raise InvalidInput("pairing and code are text", vi="mã ghép nối phải là chữ")
        client, secret = self.server.pairings.complete(asked, typed, origin)
        self.server.say(f"Đã ghép nối trang {origin} (paired).")
        return 200, {"client": client, "secret": secret.hex()}

    def _certificates(self, body: bytes) -> tuple[int, dict[str, Any]]:
        self._verify(body)
        certificates = [
            {
                "token": c.token,
                "label": c.label,
                "subject": c.subject,
                "serial": c.serial,
                "not_after": c.not_after.isoformat(),
                "der": base64.b64encode(c.der).decode(),
            }
            for c in self.server.tokens.certificates()
        ]
        return 200, {"certificates": certificates}

    def _sign(self, body: bytes) -> tuple[int, dict[str, Any]]:
        self._verify(body)
        data = self._json(body)
        if any("pin" in str(key).lower() or "password" in str(key).lower() for key in data):
            raise PinNotAccepted()
        unknown = set(data) - _SIGN_FIELDS
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:100]}")
        hash_name = data.get("hash")
        if hash_name not in HASHES:
            raise InvalidInput("hash is sha256, sha384 or sha512")
        try:
            digest = base64.b64decode(str(data.get("digest") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("digest is base64") from exc
        if len(digest) != HASHES[hash_name].digest_size:
            raise InvalidInput(f"a {hash_name} digest is {HASHES[hash_name].digest_size} bytes")
        summary = printable(str(data.get("summary") or "")) or "(không có tiêu đề)"
        cert = self.server.tokens.find(str(data.get("serial") or ""))
        with self.server.sign_lock:
            prompt = (
                f"\nkyso ({self.server.config.origin}) xin ký tài liệu: {summary}\n"
                f"Chứng thư: {printable(cert.subject)} (số sê-ri {cert.serial})\n"
                f"Mã băm {hash_name}: {digest.hex()}"
            )
            self.server.say(prompt)
            pin = self.server.config.pin.ask(prompt)
            try:
                signature = self.server.tokens.sign(cert, pin, digest, hash_name)
            except KysoError as exc:
                self.server.say(f"Không ký: {exc.message('vi')}")
                raise
            finally:
                del pin
        self.server.log_signature(cert.serial, hash_name, digest, summary)
        self.server.say(f"Đã ký: {summary}")
        return 200, {
            "signature": base64.b64encode(signature).decode(),
            "serial": cert.serial,
            "hash": hash_name,
        }


def serve(config: AgentConfig, out: TextIO | None = None) -> None:
    """Run the agent until interrupted."""
    check_origin(config.origin)
    server = AgentServer(config, out)
    server.say(
        f"kyso agent {VERSION}: http://127.0.0.1:{server.port} for {config.origin} "
        f"(token {config.token or 'any'})"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
