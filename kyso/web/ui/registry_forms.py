"""What the units and subscribers pages share: the version an edit form was read at, the
registry's refusals shown next to the form fields they name, a save refused because someone
else saved first, references taken from a form, and the spreadsheet import page and
downloads (:mod:`kyso.registry.spreadsheets`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import Conflict, KysoError, NotFound
from kyso.registry import organizations, spreadsheets
from kyso.registry.fields import FieldErrors
from kyso.web.api_documents import read_upload
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.templating import render

PAGE = 50

PublicId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
RefQuery = Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")]
SearchQuery = Annotated[str, Query(max_length=200)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Short = Annotated[str, Field(max_length=2000)]

_REF = re.compile(r"[A-Za-z0-9_-]{1,40}")


class Versioned(BaseModel):
    """The version an edit form's record was read at, sent back with the form (optimistic
    locking: the registry refuses the save if the record has changed since)."""

    version: Annotated[str, Field(max_length=20)] = ""

    @property
    def read_version(self) -> int:
        """The version as a number; 0 (no record has it: the save is refused as changed by
        someone else) when the form's value is not one."""
        text = self.version
        return int(text) if text.isascii() and text.isdigit() else 0


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def field_errors(request: Request, exc: FieldErrors) -> dict[str, str]:
    """The services' problems by field name, in the page's language."""
    lang = guard.language(request)
    errors: dict[str, str] = {}
    for problem in exc.problems:
        message = _sentence(problem.vi if lang == "vi" else problem.en)
        for name in problem.field.split(", "):
            errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors


def _is_stale(exc: Conflict) -> bool:
    return "changed by someone else" in (exc.detail or "")


def refused_save(
    request: Request, exc: Conflict, *, stale_message: str, field: str
) -> tuple[dict[str, str], bool]:
    """(errors, stale) for a save the registry refused: someone else saved the record first
    (the form's top), or a value another record holds (next to ``field``)."""
    if _is_stale(exc):
        return {"form": stale_message}, True
    return {field: exc.message(guard.language(request))}, False


def changed_meanwhile(
    labels: dict[str, str],
    typed: dict[str, str],
    stored: dict[str, str],
    shown: dict[str, str],
) -> list[tuple[str, str]]:
    """What the other person saved, field by field, where it differs from what was typed
    (compared by stored value, shown by name)."""
    return [
        (label, shown.get(key) or "—")
        for key, label in labels.items()
        if (typed.get(key) or "").strip() != (stored.get(key) or "").strip()
    ]


def ref(value: str | None) -> str | None:
    """A public id from a form, or None: anything else is refused before a query sees it."""
    value = (value or "").strip()
    if not value:
        return None
    if not _REF.fullmatch(value):
        raise NotFound(f"reference {value[:40]!r}", vi=f"mã tham chiếu {value[:40]!r}")
    return value


def download(data: bytes, fmt: spreadsheets.Format, stem: str) -> Response:
    return Response(
        data,
        media_type=fmt.media_type,
        headers={
            "content-disposition": content_disposition(f"{stem}.{fmt.value}"),
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


def import_page(
    request: Request,
    area: str,
    *,
    errors: dict[str, str],
    rejected: spreadsheets.ImportRejected | None = None,
    units: list[tuple[str, str]] | None = None,
    unit: str = "",
    status_code: int = 200,
) -> Response:
    """The import form of ``area`` ("units" or "people"), with the sheet's columns and, after
    a refused file, each problem by row and column."""
    columns = spreadsheets.ORG_COLUMNS if area == "units" else spreadsheets.PERSON_COLUMNS
    lang = guard.language(request)
    return render(
        request,
        f"{area}/import.html",
        {
            "errors": errors,
            "columns": [c for c in columns if c.field],
            "sheet": spreadsheets.ORG_SHEET if area == "units" else spreadsheets.PERSON_SHEET,
            "rejected": rejected,
            "problems": [
                (e.row, e.column or "", e.vi if lang == "vi" else e.en)
                for e in (rejected.errors[: spreadsheets.MAX_REPORTED] if rejected else [])
            ],
            "kinds": list(organizations.KIND_LABELS.values()),
            "sectors": list(organizations.SECTOR_LABELS.values()),
            "units": units or [],
            "unit": unit,
        },
        status_code=status_code,
    )


async def run_import(
    request: Request,
    ctx: Context,
    area: str,
    file: UploadFile | None,
    work: Callable[[Session, bytes, str | None], list[Any]],
    done: str,
    *,
    units: Callable[[], list[tuple[str, str]]] | None = None,
    unit: str = "",
) -> Response:
    """Read the upload (413 past the limit), run the all-or-nothing import in a worker
    thread, and answer with the per-row table (nothing written) or a redirect."""
    _ = guard.environment_gettext(request)
    if file is None or not file.filename:
        choices = await run_in_threadpool(units) if units else None
        return import_page(
            request,
            area,
            errors={"file": _("Choose an .xlsx or .csv file.")},
            units=choices,
            unit=unit,
            status_code=422,
        )
    data = await read_upload(file, ctx.settings.max_upload_bytes)

    def run() -> int | spreadsheets.ImportRejected | KysoError:
        try:
            with ctx.db.session() as session:
                return len(work(session, data, file.filename))
        except spreadsheets.ImportRejected as exc:
            return exc
        except FieldErrors as exc:  # not expected from an import; shown as a whole
            return exc
        except KysoError as exc:
            if exc.http_status in (403, 404):
                raise
            return exc

    outcome = await run_in_threadpool(run)
    if isinstance(outcome, int):
        message = (
            _("Units created: %(n)s.") if area == "units" else _("Subscribers created: %(n)s.")
        )
        return guard.redirect(request, done, message % {"n": outcome})
    choices = await run_in_threadpool(units) if units else None
    lang = guard.language(request)
    if isinstance(outcome, spreadsheets.ImportRejected):
        return import_page(
            request,
            area,
            errors={"form": outcome.message_vi if lang == "vi" else outcome.message_en},
            rejected=outcome,
            units=choices,
            unit=unit,
            status_code=422,
        )
    return import_page(
        request,
        area,
        errors={"file": outcome.message(lang)},
        units=choices,
        unit=unit,
        status_code=outcome.http_status if outcome.http_status != 400 else 422,
    )
