"""Serving kyso's own CSS, scripts, fonts and images (nothing comes from a CDN)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class CachedStatic(StaticFiles):
    """Static files with a short cache and ``nosniff``: small enough to revalidate cheaply,
    safe against a browser guessing a script from an uploaded file's bytes."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", "public, max-age=3600")
        response.headers["x-content-type-options"] = "nosniff"
        return response
