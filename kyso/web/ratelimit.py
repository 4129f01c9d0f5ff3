"""A per-client budget for anonymous work that costs CPU (public verification).

A token bucket per client address, in the memory of one process: enough to keep one
visitor from keeping the server's cores busy; not a defence against a botnet (that belongs
to the reverse proxy). Buckets of clients not seen for ten minutes are forgotten.
"""

from __future__ import annotations

import threading
import time

from starlette.requests import Request

from kyso.errors import TooManyRequests

_FORGET_AFTER = 600.0


class RateLimit:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, per_minute // 3))
        self._buckets: dict[str, tuple[float, float]] = {}  # client → (tokens, last seen)
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> None:
        """Spend one unit of ``client``'s budget, or refuse with 429."""
        if self.rate <= 0:
            return  # switched off
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, seen = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                raise TooManyRequests()
            self._buckets[client] = (tokens - 1, now)
            if len(self._buckets) > 10_000:
                self._buckets = {
                    k: v for k, v in self._buckets.items() if now - v[1] < _FORGET_AFTER
                }


def spend_verification(request: Request) -> None:
    """One anonymous validation from this client (signed-in users are not counted: they are
    known, and their work is their unit's)."""
    limit: RateLimit | None = getattr(request.app.state, "verify_limit", None)
    if limit is not None:
        limit.take(request.client.host if request.client else "unknown")
