"""No page answers 500 to anything a browser can send: every page route of the web UI, as
every role and anonymously, with odd path values, odd query strings and empty or junk forms.

The routes are read from the application itself, so a page added later is covered too."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest
from starlette.routing import Route

from kyso.web.ui import AREAS

from .conftest import Web

# an id-shaped value that names nothing, a traversal, non-ASCII, a huge number
ODD_VALUES = ["A" * 22, "..%2F..%2Fetc", "%C3%A9%C2%B2", "99999999999999999999"]
ODD_QUERIES = [
    "?offset=-5&limit=100000&q=%27%22%3Cscript%3E&state=nope&type=nope&unit=nope&status=nope",
    "?expiring=7&page=%C2%B2&sector=%FF&kind=x&from=31/02/2026&to=abc&minutes=..",
]
JUNK_FORM = {
    "name": "'\"<b>x</b>",
    "email": "không phải thư",
    "id_number": "12",
    "date_of_birth": "32/13/2026",
    "reason": "",
    "key_id": "../x",
    "page": "²",
    "x": "NaN",
    "y": "1e999",
    "version": "-1",
    "request": ["a", "b"],
}


def _routes() -> list[tuple[str, str]]:
    found = []
    for route in (r for area in AREAS for r in area.router.routes):
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method in ("GET", "POST"):
                    found.append((method, route.path))
    return found


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


@pytest.mark.parametrize("who", [None, "officer", "admin1", "auditor"])
def test_no_page_answers_500(who: str | None, web_for: Callable[..., Web]) -> None:
    visitor = web_for(who)
    routes = _routes()
    assert len(routes) > 40  # the whole UI, not a handful
    failures = []
    statuses: Counter[int] = Counter()
    for method, path in routes:
        if path == "/logout" or (who and path.startswith("/login")):
            continue  # would end the session the rest of the walk needs
        values = ODD_VALUES if "{" in path else [""]
        for value in values:
            url = _fill(path, value)
            if method == "GET":
                for query in ODD_QUERIES:
                    answer = visitor.get(url + query)
                    statuses[answer.status_code] += 1
                    if answer.status_code >= 500:
                        failures.append(f"GET {url}{query}: {answer.status_code}")
            else:
                for form in ({}, JUNK_FORM):
                    answer = visitor.post(url, form)
                    statuses[answer.status_code] += 1
                    if answer.status_code >= 500:
                        failures.append(f"POST {url} {sorted(form)}: {answer.status_code}")
    assert not failures, "\n".join(failures)
    # The requests reached the pages: refusals of every kind, and pages actually shown.
    assert statuses[200] > 10 and statuses[404] > 10, statuses
    if who is not None:
        assert statuses[422] + statuses[409] + statuses[403] > 10, statuses
