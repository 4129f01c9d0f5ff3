"""What the web tests share: the app in process with some settings changed, and its signing
threads held busy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from conftest import Instance
from fastapi import FastAPI

from kyso.settings import Settings
from kyso.web.app import create_app


@pytest.fixture
def app_with(instance: Instance) -> Iterator[Callable[..., FastAPI]]:
    """``app_with(KYSO_TSA_PER_MINUTE="3")``: the app on the test instance with those
    settings, without its background loop; closed after the test."""
    made: list[FastAPI] = []

    def make(**env: str) -> FastAPI:
        app = create_app(Settings.from_env({**instance.env, **env}), scheduler=False)
        made.append(app)
        return app

    yield make
    for app in made:
        app.state.signing_pool.close()
        app.state.context.close()


@asynccontextmanager
async def signing_threads_busy(app: FastAPI) -> AsyncIterator[None]:
    """Within the block, the app's signing pool has no room: one job holds its only place."""
    pool = app.state.signing_pool
    pool.capacity = 1
    release = threading.Event()
    hold = asyncio.create_task(pool.run(release.wait))
    try:
        while pool._in_flight < 1:
            await asyncio.sleep(0.01)
        yield
    finally:
        release.set()
        await hold
