"""/docs and /redoc in a real browser, under the site's CSP, fetching nothing from elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Server

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("path", "title"),
    [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")],
    ids=["swagger-ui", "redoc"],
)
def test_the_api_pages_render_under_the_csp_from_kyso_alone(
    browser: Any, sqlite_server: Server, path: str, title: str
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    sent: list[str] = []

    def network(route: Any) -> None:
        """What passed the CSP and would leave the machine: recorded, and not sent."""
        if route.request.url.startswith(sqlite_server.url):
            route.continue_()
        else:
            sent.append(route.request.url)
            route.abort()

    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.route("**/*", network)
    try:
        page.goto(sqlite_server.url + path)
        page.wait_for_selector(title, timeout=60_000)
        assert "kyso" in page.inner_text(title)
        page.wait_for_timeout(500)  # late images (ReDoc's logo)
    finally:
        page.close()
    assert sent == []
    # ReDoc's bundle names its maker's logo on a CDN: the CSP refuses it, and only that.
    refused = [e for e in errors if "Content Security Policy" in e]
    assert all("cdn.redoc.ly" in e for e in refused), refused
