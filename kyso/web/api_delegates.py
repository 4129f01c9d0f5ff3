"""REST: the users allowed to apply a central seal (/api/v1/certificates/{serial}/delegates).

Routes only translate; :mod:`kyso.remote.delegates` decides: reading needs ``cert.read`` on
the seal's unit (token scope ``certificates:read``), granting and revoking ``cert.handover``
on it (``requests:write``, the right that hands a seal token over), by a named person."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from kyso.context import Context
from kyso.registry.access import Principal
from kyso.remote import delegates
from kyso.web.deps import context, principal

router = APIRouter(prefix="/api/v1/certificates", tags=["certificates"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Serial = Annotated[str, PathParam(max_length=120)]
Username = Annotated[str, PathParam(max_length=100)]


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100, description="a user of the seal's unit")


class DelegateOut(BaseModel):
    username: str
    full_name: str
    granted_by: str
    granted_at: datetime
    usable: bool = Field(description="still an active user of the seal's unit")


class UnitOut(BaseModel):
    id: str
    name: str


class DelegatesOut(BaseModel):
    serial: str
    unit: UnitOut
    delegates: list[DelegateOut]


def _out(d: delegates.Delegate) -> DelegateOut:
    return DelegateOut(
        username=d.username,
        full_name=d.full_name,
        granted_by=d.granted_by,
        granted_at=d.granted_at,
        usable=d.usable,
    )


@router.get("/{serial}/delegates", response_model=DelegatesOut)
def list_delegates(serial: Serial, ctx: Ctx, who: Who) -> DelegatesOut:
    """The users who may apply this central seal (each signature still approved on their
    phone)."""
    with ctx.db.read() as session:
        found = delegates.list_delegates(who, session, serial)
    return DelegatesOut(
        serial=found.serial,
        unit=UnitOut(id=found.unit_id, name=found.unit_name),
        delegates=[_out(d) for d in found.delegates],
    )


@router.post("/{serial}/delegates", status_code=201, response_model=DelegateOut)
def grant(serial: Serial, body: GrantBody, ctx: Ctx, who: Who) -> DelegateOut:
    """Allow a user of the seal's unit (its records clerk) to apply the seal."""
    with ctx.db.session() as session:
        return _out(delegates.grant(who, session, serial, body.username))


@router.delete("/{serial}/delegates/{username}", status_code=204)
def revoke(serial: Serial, username: Username, ctx: Ctx, who: Who) -> Response:
    """Take the seal from a user: their next consent request for it is refused."""
    with ctx.db.session() as session:
        delegates.revoke(who, session, serial, username)
    return Response(status_code=204)
