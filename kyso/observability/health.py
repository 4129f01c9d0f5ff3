"""Liveness and readiness: may a load balancer send this process work?

*Live* is the process answering at all (``/livez``): a supervisor restarts a process that
does not. *Ready* (``/readyz``) is what serving needs besides: the database answers a query
within a short time, and the key store opens and signs. The key store is tried for real: the
CA's OCSP responder key (the key kyso signs with most often) signs a fixed test digest and
the signature is checked against its certificate, so an HSM whose module is missing, whose
token is gone or whose session died shows here, as "not ready" (503), and not later as a
failed request.

A probe is cached for a few seconds: a storm of probes (every balancer, every scrape) costs
one database query and one HSM signature per period. A check runs on a thread of its own
and is given a deadline: an HSM or a database that hangs makes the process not ready in that
time rather than holding the probe; a check still hanging is not started again on top of
itself. The answer names what failed with an error code or exception type, never a message
that could carry an address or a secret.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes

from kyso.errors import KeyStoreError, KysoError
from kyso.observability import metrics

_PROBE_DIGEST = hashlib.sha256(b"kyso readiness probe").digest()


@dataclass(frozen=True)
class Check:
    name: str  # "database", "keystore"
    ok: bool
    detail: str  # "ok", or what failed: an error code or an exception type
    seconds: float


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ok else "not_ready",
            "failed": self.failed,
            "checks": {
                c.name: {"ok": c.ok, "detail": c.detail, "seconds": round(c.seconds, 4)}
                for c in self.checks
            },
        }


def _what_failed(exc: BaseException) -> str:
    if isinstance(exc, KysoError):
        return exc.code
    return type(exc).__name__


class _Probe:
    """One check on a daemon thread, with a deadline; never two of it at once."""

    def __init__(self, name: str, run: Callable[[], None]) -> None:
        self.name = name
        self._run = run
        self._future: Future[float] | None = None

    def _work(self, future: Future[float]) -> None:
        start = time.perf_counter()
        try:
            self._run()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(time.perf_counter() - start)

    def start(self) -> Future[float]:
        if self._future is None or self._future.done():
            future: Future[float] = Future()
            threading.Thread(
                target=self._work, args=(future,), daemon=True, name=f"kyso-ready-{self.name}"
            ).start()
            self._future = future
        return self._future

    def result(self, future: Future[float], remaining: float, limit: float) -> Check:
        try:
            seconds = future.result(timeout=max(0.0, remaining))
        except FutureTimeout:
            return Check(self.name, False, f"no answer within {limit:g} s", limit)
        except Exception as exc:
            return Check(self.name, False, _what_failed(exc), 0.0)
        return Check(self.name, True, "ok", seconds)


class Health:
    """The readiness checks of one process's context, cached for ``cache_seconds``."""

    def __init__(self, ctx: Any, *, cache_seconds: float = 3.0, timeout: float = 3.0) -> None:
        self._ctx = ctx
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._probes = (_Probe("database", self._database), _Probe("keystore", self._keystore))
        self._lock = threading.Lock()
        self._last: Readiness | None = None
        self._at = 0.0

    def _database(self) -> None:
        """One indexed read of kyso's own schema: the server answers, the schema is there."""
        with self._ctx.db.single() as conn:
            if not self._ctx.db.is_sqlite:  # the server gives up too (this transaction only)
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.timeout * 1000)}")
            conn.exec_driver_sql("SELECT 1 FROM alembic_version LIMIT 1").all()

    def _keystore(self) -> None:
        """A signature with the CA's OCSP responder key, checked against its certificate."""
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

        from kyso.store.models import IdentityRole

        identity = self._ctx.authority.identity(IdentityRole.OCSP)
        try:
            signature = identity.key.sign_digest(_PROBE_DIGEST, hashes.SHA256())
        except KysoError:
            raise
        except Exception as exc:  # a PKCS#11 error the store let through: an HSM error too
            metrics.keystore_error(type(exc).__name__)
            raise
        public = identity.certificate.public_key()
        prehashed = utils.Prehashed(hashes.SHA256())
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, _PROBE_DIGEST, padding.PKCS1v15(), prehashed)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, _PROBE_DIGEST, ec.ECDSA(prehashed))
        else:
            raise KeyStoreError(f"unexpected key type {type(public).__name__}")

    def readiness(self) -> Readiness:
        """The cached answer, or a new one (both checks at once, each within the deadline)."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._at < self.cache_seconds:
                return self._last
            started = [(probe, probe.start()) for probe in self._probes]
            deadline = time.monotonic() + self.timeout
            checks = tuple(
                probe.result(future, deadline - time.monotonic(), self.timeout)
                for probe, future in started
            )
            self._last, self._at = Readiness(checks), time.monotonic()
            return self._last
