"""The home page: what waits for me, and the province's figures at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kyso.registry.access import Action
from kyso.reports import dashboard
from kyso.signing import queue
from kyso.store.models import Sector
from kyso.web.ui import charts, guard, labels
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

STATUS_COLOURS = {
    "good": "#146c2e",
    "suspended": "#8a5a00",
    "revoked": "#b3261e",
    "expired": "#5f5a66",
}


@router.get("/", include_in_schema=False)
def home(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    _ = guard.environment_gettext(request)
    principal = viewer.principal
    board = None
    if principal.can(Action.CERT_READ):
        with ctx.db.read() as session:
            board = dashboard.dashboard(principal, session, pin_days=ctx.settings.pin_change_days)
    context: dict[str, object] = {"board": board, "to_sign": None}
    if principal.can(Action.DOCUMENT_SIGN):
        with ctx.db.read() as session:
            context["to_sign"] = queue.waiting_count(principal, session)
    if board is not None:
        sectors = [s for s in Sector if any(board.issued[s])] or [Sector.GOVERNMENT]
        names = [labels.label("sector", s, _) for s in sectors]
        context["sectors"] = list(zip(sectors, names, strict=True))
        context["issued_chart"] = charts.stacked_columns(
            _("Certificates issued per month, by sector"),
            [m[5:] + "/" + m[2:4] for m in board.months],
            [(name, board.issued[s]) for s, name in zip(sectors, names, strict=True)],
        )
        context["issued_legend"] = charts.legend(names)
        context["status_chart"] = charts.horizontal_bars(
            _("Certificates by status"),
            [
                (labels.label("cert_status", key, _), value, STATUS_COLOURS[key])
                for key, value in board.statuses.items()
            ],
        )
    return render(request, "home.html", context)
