"""/docs and /redoc come from kyso's own files, under the site's CSP (issue 9, item 9): the
API pages load nothing from a CDN and run no inline script."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Instance
from fastapi.testclient import TestClient

from kyso.settings import Settings
from kyso.web.app import create_app

REFERENCE = re.compile(r"""(?:src|href|spec-url|data-[a-z-]+)=["']([^"']+)["']""")
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


@pytest.fixture(scope="module")
def http(sqlite_instance: Instance) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(sqlite_instance.env), scheduler=False)
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_reference_only_kyso_and_run_no_inline_script(
    http: TestClient, page: str
) -> None:
    answer = http.get(page)
    assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
    html = answer.text
    assert "://" not in html, "the page names another host"
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    scripts = SCRIPT.findall(html)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assets = [ref for ref in REFERENCE.findall(html) if ref.startswith("/")]
    assert assets
    for asset in assets:
        got = http.get(asset)
        assert got.status_code == 200, asset
        assert got.content, asset


def test_swagger_ui_is_told_not_to_call_the_public_validator(http: TestClient) -> None:
    """Swagger UI asks validator.swagger.io about the spec unless validatorUrl is null."""
    page = http.get("/docs").text
    init = [src for src in re.findall(r'<script src="([^"]+)"', page) if "kyso" in src]
    assert init
    assert "validatorUrl: null" in http.get(init[-1]).text


def test_the_openapi_document_is_still_served(http: TestClient) -> None:
    assert http.get("/openapi.json").json()["info"]["title"] == "kyso"
