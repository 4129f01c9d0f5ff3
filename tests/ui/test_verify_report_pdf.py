"""The verification report's PDF is rendered once per language and kept beside the report's
JSON, for the same hour (issue 9, item 5: anonymous work that costs CPU is not repeated)."""

from __future__ import annotations

import os
import re

import pytest
from conftest import Instance

from kyso.validation import render
from kyso.web.ui import uploads

from .conftest import Web
from .test_verify import check, signed_pdf  # noqa: F401 - the fixture

TOKEN = re.compile(r"/verify/report/([A-Za-z0-9_-]+)$")


def test_the_report_pdf_is_rendered_once_per_language_and_dies_with_the_report(
    instance: Instance,
    web: Web,
    signed_pdf: tuple[bytes, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = check(web, signed_pdf[0])
    token = TOKEN.search(url)
    assert token
    rendered: list[str] = []
    real = render.to_pdf

    def counted(report: object, lang: str = "vi") -> bytes:
        rendered.append(lang)
        return real(report, lang)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "to_pdf", counted)
    first, again = web.get(url + ".pdf"), web.get(url + ".pdf")
    assert first.status_code == again.status_code == 200
    assert first.content == again.content and first.content.startswith(b"%PDF-")
    assert rendered == ["vi"]
    web.get("/lang/en?next=/")
    english = web.get(url + ".pdf")
    assert english.status_code == 200 and english.content != first.content
    web.get(url + ".pdf")
    assert rendered == ["vi", "en"]

    # The PDFs share the report's hour: when the JSON is over an hour old, all are gone.
    folder = instance.ctx.settings.home / "uploads" / "reports"
    report = folder / f"{token.group(1)}.json"
    kept = sorted(p.name for p in folder.glob(f"{token.group(1)}.*.pdf"))
    assert kept == [f"{token.group(1)}.en.pdf", f"{token.group(1)}.vi.pdf"]
    old = report.stat().st_mtime - uploads.KEEP_SECONDS - 1
    for path in folder.glob(f"{token.group(1)}.*"):
        os.utime(path, (old, old))
    assert web.get(url + ".pdf").status_code == 404
    uploads.sweep(instance.ctx)
    assert list(folder.glob(f"{token.group(1)}.*")) == []
