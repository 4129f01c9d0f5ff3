"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served from kyso's own files.

FastAPI's pages load Swagger UI and ReDoc from a CDN and start them with an inline script;
kyso's pages load nothing from elsewhere and run under the site's CSP (``script-src 'self'``).
The two builds come from the ``fastapi-offline`` package (its ``static`` folder: the
swagger-ui-dist and redoc standalone files, Apache-2.0 and MIT), mounted at
``/static/api-docs``; Swagger UI is started by ``static/kyso-api-docs.js``, which also keeps
it from sending the specification to the public validator (``validatorUrl: null``). ReDoc's
bundle shows its maker's logo from their CDN: the CSP refuses that image, and nothing else.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from kyso.web.assets import CachedStatic
from kyso.web.ui.templating import SECURITY_HEADERS

ASSETS = Path(str(files("fastapi_offline") / "static"))

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kyso API</title>
<link rel="stylesheet" href="/static/api-docs/swagger-ui.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
<script src="/static/api-docs/swagger-ui-bundle.js"></script>
<script src="/static/kyso-api-docs.js"></script>
</body>
</html>
"""

_REDOC = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kyso API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/static/api-docs/redoc.standalone.js"></script>
</body>
</html>
"""


def _page(html: str, workers: bool = False) -> HTMLResponse:
    headers = dict(SECURITY_HEADERS)
    if workers:
        # ReDoc runs its search index in a worker made from its own code (a blob: URL, which
        # only a script already running on the page can make); scripts stay 'self' only.
        headers["content-security-policy"] += "; worker-src blob:"
    return HTMLResponse(html, headers=headers)


def install(app: FastAPI) -> None:
    """Mount the builds and add the two pages (before the ``/static`` mount)."""
    app.mount("/static/api-docs", CachedStatic(directory=ASSETS), name="api-docs")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _page(_SWAGGER)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _page(_REDOC, workers=True)
