"""Dependencies the routes ask for (FastAPI ``Depends``), instead of imported globals."""

from __future__ import annotations

from fastapi import Request

from kyso.api.clients import Caller, authenticate
from kyso.context import Context


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


def caller(request: Request) -> Caller:
    ctx = context(request)
    with ctx.db.read() as session:
        return authenticate(session, request.headers.get("authorization"))
