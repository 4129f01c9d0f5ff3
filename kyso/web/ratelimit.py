"""Who the client is, and the budgets and threads of anonymous work that costs CPU.

The client address is ``scope["client"]``, as the ASGI server reports it. Behind a reverse
proxy, ``kyso serve --forwarded-allow-ips`` names the proxies whose ``X-Forwarded-For`` is
believed: uvicorn's ProxyHeadersMiddleware then puts the address the proxy saw into
``scope["client"]`` (the right-most address in the header that is not itself a trusted proxy)
and leaves it alone for any other peer. kyso never reads that header itself, so a header sent
from anywhere else changes nothing (tests/web/test_ratelimit.py).

The budgets themselves (:mod:`kyso.ratelimit`) live in the database, shared by every worker.
A budget is a count per client; :class:`SigningPool` bounds the work at any moment: OCSP
answers signed on the spot and time-stamps run on a few threads off the event loop, and
beyond a queue of a few per thread a request is refused at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from kyso.errors import TooManyRequests
from kyso.ratelimit import Limiter, Purpose

T = TypeVar("T")


def client_address(scope: Scope) -> str:
    """The client's address: the peer's, or the one a trusted proxy reported (see above)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def limiter(request: Request) -> Limiter | None:
    return getattr(request.app.state, "limiter", None)


def spend(request: Request, purpose: Purpose) -> None:
    """Spend one unit of this client's budget for ``purpose`` (blocking: a database write;
    from a worker thread, or through :func:`spend_async`)."""
    found = limiter(request)
    if found is not None:
        found.take(purpose, client_address(request.scope))


async def spend_async(request: Request, purpose: Purpose) -> None:
    """:func:`spend` off the event loop (the write may wait for SQLite's lock)."""
    if limiter(request) is not None:
        await run_in_threadpool(spend, request, purpose)


async def spend_verification(request: Request) -> None:
    """One anonymous validation from this client (signed-in users are not counted: they are
    known, and their work is their unit's)."""
    await spend_async(request, Purpose.VERIFICATION)


class Busy(TooManyRequests):
    """Every signing thread is busy and the queue is full: try again in a moment."""


class SigningPool:
    """A few threads for signatures made on request (cryptography releases the GIL while it
    signs, so one per core), and a short queue; past it :meth:`run` raises :class:`Busy`."""

    def __init__(self, threads: int | None = None, queue_per_thread: int = 8) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.capacity = self.threads * (1 + queue_per_thread)
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="kyso-sign")
        self._lock = threading.Lock()
        self._in_flight = 0

    async def run(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._in_flight >= self.capacity:
                raise Busy("all signing threads are busy", vi="mọi luồng ký đều đang bận")
            self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
