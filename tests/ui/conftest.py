"""Fixtures for the page tests.

- ``web`` / ``web_for``: a visitor without a browser (Starlette's TestClient) with its own
  cookies, logged in by a session made directly (the login form itself is tested in
  test_auth.py); ``post`` adds the page's CSRF token as a browser would.
- ``browser``: Debian's chromium driven by Playwright (``executable_path``; nothing is
  downloaded), headless; ``shot`` saves a screenshot under test-artifacts/ for reviewers.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from support import require_or_skip
from support.world import World, app_client, make_world

from kyso.registry import sessions
from kyso.store.models import User

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Web:
    """One visitor's cookies against the app in process."""

    def __init__(self, client: TestClient, world: World | None = None) -> None:
        self.client = client
        self.world = world
        self.user: User | None = None
        self._csrf: tuple[str, str] | None = None  # (browser id, token)

    # -- logging in without the form ------------------------------------------------------------
    def login(self, key_or_user: str | User) -> Web:
        user = (
            self.world.users[key_or_user]
            if isinstance(key_or_user, str) and self.world is not None
            else key_or_user
        )
        assert isinstance(user, User)
        ctx = self.client.app.state.context  # type: ignore[attr-defined]
        with ctx.db.session() as session:
            token = sessions.start(session, user)
        # the key the server's own Set-Cookie uses, so that one replaces the other
        self.client.cookies.set("kyso_sid", token, domain="testserver.local", path="/")
        self.user = user
        self._csrf = None
        return self

    # -- requests ---------------------------------------------------------------------------------
    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", {"accept": "text/html"})
        return self.client.get(url, **kwargs)

    def csrf(self) -> str:
        """The token a page of ours would carry (every page has one in its forms); it stays
        the same for as long as the browser id does."""
        sid = self.client.cookies.get("kyso_sid")
        if self._csrf is not None and sid and self._csrf[0] == sid:
            return self._csrf[1]
        page = self.get("/about-ca" if self.user else "/login")
        found = CSRF.search(page.text)
        if found is None:  # the CA page may not exist yet: fall back to the login page
            page = self.get("/login", follow_redirects=True)
            found = CSRF.search(page.text)
        assert found, f"no CSRF token on the page: {page.status_code}"
        self._csrf = (self.client.cookies.get("kyso_sid") or "", found.group(1))
        return found.group(1)

    def post(
        self,
        url: str,
        data: dict[str, Any] | list[tuple[str, Any]] | None = None,
        files: Any = None,
        *,
        csrf: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """A form post as a browser sends it (with the CSRF token unless ``csrf=False``)."""
        fields: list[tuple[str, Any]] = (
            list(data.items()) if isinstance(data, dict) else list(data or [])
        )
        if csrf:
            fields.append(("csrf_token", self.csrf()))
        kwargs.setdefault("headers", {"accept": "text/html"})
        kwargs.setdefault("follow_redirects", False)
        return self.client.post(url, data=_as_dict(fields), files=files, **kwargs)


def _as_dict(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    """httpx wants repeated names as a list value."""
    out: dict[str, Any] = {}
    for name, value in fields:
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


@pytest.fixture(scope="session")
def _ui_apps() -> Iterator[dict[tuple[str, str], TestClient]]:
    made: dict[tuple[str, str], TestClient] = {}
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


@pytest.fixture
def world(instance: Instance) -> World:
    return make_world(instance.ctx, instance.backend)


@pytest.fixture
def web_for(
    instance: Instance, _ui_apps: dict[tuple[str, str], TestClient], world: World
) -> Callable[..., Web]:
    """``web_for("officer")``: a new visitor, logged in as one of the world's users (or
    anonymous with no key). Each call has its own cookies."""
    app = app_client(instance, _ui_apps).app

    def make(key: str | None = None) -> Web:
        visitor = Web(TestClient(app, raise_server_exceptions=False), world)
        return visitor.login(key) if key else visitor

    return make


@pytest.fixture
def web(web_for: Callable[..., Web]) -> Web:
    """An anonymous visitor."""
    return web_for()


# -- a real browser ----------------------------------------------------------------------------
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module: Playwright's sync API keeps an event loop running in
    the thread while it is open, which would break later tests calling ``asyncio.run``."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require_or_skip(path, "Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip(False, "Playwright (pip install playwright)")
        raise
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``shot(page, "02-approved")`` → test-artifacts/<test name>/02-approved.png"""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
