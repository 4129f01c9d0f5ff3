"""Rendering pages: one Jinja2 environment per language, the filters every page uses, and
the response headers every page carries.

Templates live in ``kyso/web/templates``; every visible string goes through ``_()`` /
``ngettext()`` so that ``tests/ui/test_catalog.py`` can prove each one is translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kyso import clock
from kyso.web.ui import i18n, labels

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Pages are only ever shown by kyso itself: no framing, no third-party scripts or styles.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'{extra}; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# Only the page that signs with a USB token may reach the user's own computer, where the
# local signing agent listens on 127.0.0.1 (kyso.agent; its port is the user's to choose).
AGENT_CSP = _CSP.format(extra=" http://127.0.0.1:*")
SECURITY_HEADERS = {
    "content-security-policy": _CSP.format(extra=""),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _localdt(value: datetime | None, with_time: bool = True) -> str:
    """Dates as officials write them (dd/mm/yyyy), in the province's time zone."""
    if value is None:
        return "—"
    local = clock.local(value)
    return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def _localdate(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return _localdt(value, with_time=False)
    return value.strftime("%d/%m/%Y")


def _number(value: int | float | None, lang: str = "vi") -> str:
    """1.234.567 in Vietnamese, 1,234,567 in English."""
    if value is None:
        return "—"
    text = (
        f"{value:,.0f}" if isinstance(value, int) or float(value).is_integer() else f"{value:,.1f}"
    )
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html", "xml", "svg")),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["localdt"] = _localdt
    env.filters["localdate"] = _localdate
    env.filters["number"] = lambda value: _number(value, lang)
    env.globals["lang"] = lang
    gettext = i18n.translations(lang).gettext
    env.globals["label"] = lambda kind, value: labels.label(kind, value, gettext)
    env.globals["options"] = lambda kind: labels.options(kind, gettext)
    return env


def gettext_for(lang: str) -> Any:
    """``_`` for Python code that builds page text (flash messages, field errors)."""
    return i18n.translations(lang).gettext


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    talks_to_agent: bool = False,
) -> HTMLResponse:
    """A page: the template with the request's page state (viewer, CSRF token, language,
    flash message) and the security headers (``talks_to_agent``: its script may call the
    local signing agent)."""
    from kyso.web.ui import guard  # guard imports this module for its error pages

    state = guard.page_state(request)
    body = environment(state.lang).get_template(template).render(page=state, **(context or {}))
    response = HTMLResponse(body, status_code=status_code)
    if talks_to_agent:
        response.headers["content-security-policy"] = AGENT_CSP
    guard.finish(request, response)
    return response
