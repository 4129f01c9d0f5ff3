"""Pages: the e-gazette (công báo điện tử) in public, no login — the documents units issued
and published, with the verdict of kyso's validation when each was published and the PDF
itself, which anyone may check again on /verify."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from kyso.exchange import register
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, MaybeSignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])


@router.get("/cong-bao")
def listing(
    request: Request,
    ctx: Ctx,
    viewer: MaybeSignedIn,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    with ctx.db.read() as session:
        found = register.gazette(session, text=q)
    return render(request, "gazette/list.html", {"documents": found, "q": q})


@router.get("/cong-bao/{public_id}")
def entry(request: Request, ctx: Ctx, viewer: MaybeSignedIn, public_id: str) -> Response:
    with ctx.db.read() as session:
        found = register.gazette_entry(session, public_id[:40])
    return render(request, "gazette/entry.html", {"doc": found})


@router.get("/cong-bao/{public_id}/document.pdf")
def document(ctx: Ctx, viewer: MaybeSignedIn, public_id: str) -> Response:
    with ctx.db.read() as session:
        found = register.gazette_entry(session, public_id[:40])
        data = register.gazette_document(session, public_id[:40])
    return Response(
        data,
        media_type="application/pdf",
        headers={"content-disposition": content_disposition(f"{found.code}.pdf", "inline")},
    )
