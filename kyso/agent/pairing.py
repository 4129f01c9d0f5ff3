"""Pairing a browser page with the agent, and checking that each request comes from it.

Pairing: the page asks for a code; the agent shows a six-digit code in its own terminal
(never in the answer); the user types it into the page, which sends it back and receives a
client id and a 256-bit secret. The agent keeps the secret in ``pairings.json`` in its config
directory (0600); the page keeps it in its ``localStorage`` (readable by kyso's origin only).

Every later request carries, in headers, the client id, the time (Unix seconds), a random
nonce and ``HMAC-SHA256(secret, "kyso-agent-v1" LF method LF path LF origin LF time LF nonce
LF hex(SHA-256(body)))`` in hex (RFC 2104). The time must be within :data:`SKEW_SECONDS`
and a nonce is accepted once while its time is acceptable, so a captured request cannot be
replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kyso.agent.errors import NotPaired, Replayed, WrongPairingCode
from kyso.errors import TooManyRequests

#: How far a request's time may be from the agent's clock (the page and the agent run on
#: the same computer, so this is about slow networks inside it, not clock drift).
SKEW_SECONDS = 120
#: A pairing code lives this long and allows this many tries.
CODE_SECONDS = 120
CODE_TRIES = 3
#: At most this many pairing codes a minute (each one shows in the agent's terminal).
CODES_PER_MINUTE = 6
HEADER_CLIENT = "x-kyso-client"
HEADER_TIME = "x-kyso-time"
HEADER_NONCE = "x-kyso-nonce"
HEADER_MAC = "x-kyso-mac"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CLIENT = re.compile(r"[0-9a-f]{16}")


def mac(
    secret: bytes, method: str, path: str, origin: str, when: str, nonce: str, body: bytes
) -> str:
    """The request's MAC, as the page computes it with Web Crypto (``agent.js``)."""
    message = "\n".join(
        [
            "kyso-agent-v1",
            method.upper(),
            path,
            origin,
            when,
            nonce,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


@dataclass
class _Pending:
    id: str
    code: str
    origin: str
    expires: float
    tries: int = 0


class Pairings:
    """The paired pages (by client id) and the one pairing under way."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / "pairings.json"
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self._codes: list[float] = []
        self._nonces: dict[str, float] = {}
        config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(config_dir, 0o700)

    # -- the paired clients, on disk --------------------------------------------------------
    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        clients = data.get("clients", {}) if isinstance(data, dict) else {}
        return clients if isinstance(clients, dict) else {}

    def _save(self, clients: dict[str, dict[str, str]]) -> None:
        temporary = self.path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"clients": clients}, handle, indent=1)
        os.replace(temporary, self.path)

    def known(self, client: str | None, origin: str) -> bool:
        if not client or not _CLIENT.fullmatch(client):
            return False
        entry = self._load().get(client)
        return entry is not None and entry.get("origin") == origin

    # -- pairing ----------------------------------------------------------------------------
    def begin(self, origin: str) -> tuple[str, str]:
        """A new pairing (replacing one under way): its id and the code to show."""
        now = time.monotonic()
        with self._lock:
            self._codes = [t for t in self._codes if now - t < 60]
            if len(self._codes) >= CODES_PER_MINUTE:
                raise TooManyRequests("pairing codes", vi="xin mã ghép nối")
            self._codes.append(now)
            code = f"{secrets.randbelow(10**6):06d}"
            self._pending = _Pending(secrets.token_hex(8), code, origin, now + CODE_SECONDS)
            return self._pending.id, code

    def complete(self, pairing: str, code: str, origin: str) -> tuple[str, bytes]:
        """Check the typed code; on success a new client id and its secret."""
        with self._lock:
            pending = self._pending
            if (
                pending is None
                or not hmac.compare_digest(pending.id.encode(), pairing.encode("utf-8", "replace"))
                or pending.origin != origin
                or time.monotonic() > pending.expires
            ):
                self._pending = None
                raise WrongPairingCode()
            if not hmac.compare_digest(
                pending.code.encode(), code.strip().encode("utf-8", "replace")
            ):
                pending.tries += 1
                if pending.tries >= CODE_TRIES:
                    self._pending = None
                raise WrongPairingCode()
            self._pending = None
            client, secret = secrets.token_hex(8), secrets.token_bytes(32)
            clients = self._load()
            clients[client] = {
                "origin": origin,
                "secret": secret.hex(),
                "paired": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._save(clients)
            return client, secret

    # -- every request ----------------------------------------------------------------------
    def verify(
        self, headers: dict[str, str], method: str, path: str, origin: str, body: bytes
    ) -> str:
        """The client id, if the request is MAC'd by a page paired for ``origin`` and is not
        a replay; :class:`NotPaired` or :class:`Replayed` otherwise."""
        client = headers.get(HEADER_CLIENT, "")
        when = headers.get(HEADER_TIME, "")
        nonce = headers.get(HEADER_NONCE, "")
        sent = headers.get(HEADER_MAC, "")
        entry = self._load().get(client) if _CLIENT.fullmatch(client) else None
        if entry is None or entry.get("origin") != origin:
            raise NotPaired()
        if not when.isascii() or not when.isdigit() or not _NONCE.fullmatch(nonce):
            raise NotPaired("time or nonce missing", vi="thiếu thời điểm hoặc số dùng một lần")
        expected = mac(bytes.fromhex(entry["secret"]), method, path, origin, when, nonce, body)
        if not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
            raise NotPaired()
        now = time.time()
        if abs(now - int(when)) > SKEW_SECONDS:
            raise Replayed("too old", vi="quá cũ")
        with self._lock:
            self._nonces = {n: t for n, t in self._nonces.items() if t > now}
            if nonce in self._nonces:
                raise Replayed()
            self._nonces[nonce] = now + 2 * SKEW_SECONDS
        return client
