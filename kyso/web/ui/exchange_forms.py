"""What the pages of documents between agencies share: the exchange pages
(:mod:`kyso.web.ui.exchange`, ``/exchange``) and the register of issued documents
(:mod:`kyso.web.ui.register`, ``/exchange/register``, ``/exchange/issue`` …).

Both read a clerk's form (dates, chosen files, recipients), offer the unit seals and units
the clerk may use, show the service's refusals beside the form fields, and serve files. This
module has no routes of its own; its helpers are public so that the pages share one copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, cast

from fastapi import Request, UploadFile
from fastapi.responses import Response
from starlette.datastructures import UploadFile as StarletteUpload

from kyso.context import Context
from kyso.errors import KysoError
from kyso.exchange import service
from kyso.registry.access import Action, Principal
from kyso.registry.fields import FieldErrors
from kyso.signing import keyuse
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.sign import key_label

# The ways a clerk writes a day: as the date input sends it, and as officials type it.
DAY_FORMATS = ("%d/%m/%Y", "%Y-%m-%d")


# -- the service's answer --------------------------------------------------------------------------
def form_errors(
    request: Request,
    exc: KysoError,
    where: Mapping[str, str] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The service's refusal, in the viewer's language, by the form field it names, else
    above the form (``"form"``).

    ``where`` maps an error's code to the field it belongs beside (a refusal that names no
    field); ``renamed`` maps the names a :class:`FieldErrors` uses (the service's attributes)
    to the form's own names for those fields, where they differ."""
    lang = guard.language(request)
    if isinstance(exc, FieldErrors):
        fields = renamed or {}
        return {fields.get(p.field, p.field): p.vi if lang == "vi" else p.en for p in exc.problems}
    return {(where or {}).get(exc.code, "form"): exc.message(lang)}


def passes_through(exc: KysoError) -> bool:
    """Whether a refusal is a page of its own (not allowed, not found, our own failure)
    rather than a message beside the form: the page raises it again."""
    return exc.http_status in (401, 403, 404) or exc.http_status >= 500


# -- reading the form ------------------------------------------------------------------------------
def parse_day(text: str) -> date | None:
    """The day written as dd/mm/yyyy or yyyy-mm-dd (spaces around ignored); None if neither."""
    for pattern in DAY_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    return None


async def chosen_files(request: Request, name: str) -> list[UploadFile]:
    """The files chosen in the file input ``name``. Read from the form itself: a browser
    sends an empty part (no file name) for an input left empty, which FastAPI's list of
    files refuses as a whole."""
    sent = (await request.form()).getlist(name)
    # Starlette's class (FastAPI's UploadFile only adds its validation to it)
    return [cast(UploadFile, f) for f in sent if isinstance(f, StarletteUpload) and f.filename]


def recipient_codes(ticked: Iterable[str], typed: str) -> list[str]:
    """The recipients' identifier codes: those ticked, then those typed (separated by commas,
    semicolons or lines), each once, in that order."""
    seen: dict[str, None] = {}
    for code in (*ticked, *typed.replace(";", ",").replace("\n", ",").split(",")):
        if code.strip():
            seen.setdefault(code.strip(), None)
    return list(seen)


# -- what the clerk may choose ---------------------------------------------------------------------
def seal_keys(ctx: Context, principal: Principal, _: Any) -> list[tuple[str, str]]:
    """(key id, label) of the unit seals kyso holds that the clerk may sign with (none for a
    clerk who may not sign); ``_`` is the page's gettext, for the labels."""
    if not principal.can(Action.DOCUMENT_SIGN):
        return []
    with ctx.db.read() as session:
        keys = keyuse.usable_keys(principal, session, ctx.keystore.name)
    return [(k.key_id, key_label(k, _)) for k in keys if not k.personal]


def sending_units(principal: Principal, ctx: Context) -> list[tuple[str, str]]:
    """(public id, "name (code)") of the units in view that have an identifier code to send
    with."""
    with ctx.db.read() as session:
        return [(o.public_id, f"{o.name} ({o.code})") for o in service.senders(principal, session)]


def receiving_units(principal: Principal, ctx: Context, sender: str) -> list[tuple[str, str]]:
    """(identifier code, "name (code)") of every unit of this installation that can receive,
    but the sending unit (its public id ``sender``)."""
    with ctx.db.read() as session:
        found = service.directory(principal, session)
    return [(o.code or "", f"{o.name} ({o.code})") for o in found if o.public_id != sender]


# -- files -----------------------------------------------------------------------------------------
def file_response(request: Request, data: bytes, media_type: str, name: str) -> Response:
    """``data`` as a download named ``name``, with the headers of every page (security
    headers, the browser id) and never cached."""
    response = Response(
        data, media_type=media_type, headers={"content-disposition": content_disposition(name)}
    )
    guard.finish(request, response)
    response.headers["cache-control"] = "no-store"
    return response
