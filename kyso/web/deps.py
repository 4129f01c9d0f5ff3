"""Dependencies the routes ask for (FastAPI ``Depends``), instead of imported globals."""

from __future__ import annotations

from fastapi import Request

from kyso.api.clients import authenticate_principal
from kyso.context import Context
from kyso.registry.access import Principal


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


def principal(request: Request) -> Principal:
    """Who is calling: a bearer token's principal (the web session adds cookies later)."""
    ctx = context(request)
    with ctx.db.single() as conn:  # one statement, before every API call: no transaction
        return authenticate_principal(conn, request.headers.get("authorization"))
