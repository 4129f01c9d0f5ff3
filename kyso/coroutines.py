"""Running one of pyHanko's coroutines to its end from synchronous code.

pyHanko signs, time-stamps and validates with ``async`` functions; kyso's services are
synchronous and are called both from plain threads (CLI, worker pools) and from ``async def``
routes, where an event loop already runs in the thread. Signing (:mod:`kyso.signing`) and
validation (:mod:`kyso.validation`) both use :func:`run_sync`, so it lives below them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run one of pyHanko's coroutines from synchronous code, even under a running loop
    (an ``async def`` route): then it runs on a private loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
