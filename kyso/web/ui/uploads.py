"""The pages' hour-long upload area: PDFs on their way to being signed, signed results and
validation reports, each under ``<home>/uploads/`` for its owner only (0700 folders), and the
PDFium previews a signer clicks on.

A PDF is checked (not broken, not encrypted) before it is kept; one user keeps at most
:data:`MAX_UPLOADS_PER_USER`; everything older than :data:`KEEP_SECONDS` is swept.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, NotFound
from kyso.formats.pdf import InvalidPdf
from kyso.registry.sessions import Viewer
from kyso.web.downloads import content_disposition

#: How long an uploaded PDF, a signed result or a validation report is kept.
KEEP_SECONDS = 3600
#: Uploads one user may have at once; older ones are dropped first.
MAX_UPLOADS_PER_USER = 20
#: Page previews: enough to read a document and place a stamp, small enough for a phone.
PREVIEW_DPI = 96
MAX_PREVIEW_PIXELS = 2000
MAX_PREVIEW_PAGES = 200
MAX_IMAGE_BYTES = 2 * 1024 * 1024
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{22,40}")  # an upload's or a report's id (fullmatch)


# -- the temporary area -------------------------------------------------------------------------
def area(ctx: Context, *parts: str) -> Path:
    path = ctx.settings.home / "uploads"
    for part in parts:
        path = path / part
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def expired(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > KEEP_SECONDS
    except FileNotFoundError:
        return False


def sweep(ctx: Context) -> None:
    """Delete what is older than an hour: uploads, signed files, reports."""
    now = time.time()
    for user in area(ctx, "sign").iterdir():
        for folder in user.iterdir() if user.is_dir() else ():
            if expired(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
    for report in area(ctx, "reports").iterdir():
        if expired(report, now):
            report.unlink(missing_ok=True)


def user_area(ctx: Context, viewer: Viewer) -> Path:
    return area(ctx, "sign", viewer.user.public_id)


@dataclass
class SignUpload:
    """One PDF on its way to being signed (``meta.json`` beside it says what it is)."""

    id: str
    folder: Path
    meta: dict[str, Any]

    @property
    def original(self) -> Path:
        return self.folder / "original.pdf"

    @property
    def signed(self) -> Path:
        return self.folder / "signed.pdf"

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "document.pdf")

    @property
    def pages(self) -> list[dict[str, Any]]:
        return list(self.meta.get("pages") or [])

    @property
    def signed_name(self) -> str:
        stem = self.name[:-4] if self.name.lower().endswith(".pdf") else self.name
        return f"{stem}-da-ky.pdf"

    def save_meta(self) -> None:
        (self.folder / "meta.json").write_text(json.dumps(self.meta, ensure_ascii=False))


def load_upload(ctx: Context, viewer: Viewer, upload_id: str) -> SignUpload:
    """The viewer's own upload, or NotFound (another user's id is unknown here)."""
    if not UPLOAD_ID.fullmatch(upload_id):
        raise NotFound(f"upload {upload_id}", vi=f"tệp tải lên {upload_id}")
    folder = user_area(ctx, viewer) / upload_id
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise NotFound(
            "this upload (files are kept for an hour)",
            vi="tệp tải lên này (tệp chỉ được giữ trong một giờ)",
        ) from exc
    if expired(folder, time.time()):
        shutil.rmtree(folder, ignore_errors=True)
        raise NotFound(
            "this upload (files are kept for an hour)",
            vi="tệp tải lên này (tệp chỉ được giữ trong một giờ)",
        )
    return SignUpload(upload_id, folder, meta)


def clean_name(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?')[:150].strip()
    return base or "document.pdf"


def attachment(filename: str) -> str:
    return content_disposition(filename)


# -- PDFium: page geometry and previews ----------------------------------------------------------
# PDFium is not thread-safe (pypdfium2's documentation): one document at a time.
_PDFIUM = threading.Lock()


def _pdfium_error() -> InvalidPdf:
    return InvalidPdf("the pages cannot be drawn", vi="không hiển thị được các trang")


def page_geometry(data: bytes) -> list[dict[str, Any]]:
    """Each page's visible box (PDF points) and rotation: what ``sign.js`` needs to turn a
    click on the preview into PDF coordinates."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
            try:
                pages = []
                for index in range(len(document)):
                    page = document[index]
                    box = [round(float(v), 2) for v in page.get_cropbox()]
                    pages.append({"box": box, "rotation": int(page.get_rotation()) % 360})
                    page.close()
                return pages
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise _pdfium_error() from exc


def render_page(path: Path, index: int) -> bytes:
    import io

    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(path)
            try:
                page = document[index]
                # 96 dpi, but never more than MAX_PREVIEW_PIXELS on the longer side: a page
                # box of 14,400 points would otherwise cost gigabytes of memory.
                width, height = page.get_size()
                scale = min(PREVIEW_DPI / 72, MAX_PREVIEW_PIXELS / max(width, height, 1))
                image = page.render(scale=scale).to_pil()
                page.close()
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise _pdfium_error() from exc
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def store_upload(ctx: Context, viewer: Viewer, name: str, data: bytes) -> SignUpload:
    """Check ``data`` is a PDF kyso can sign (not broken, not encrypted), then keep it."""
    from kyso.signing.pades import open_pdf

    open_pdf(data)
    pages = page_geometry(data)
    if not pages:
        raise InvalidInput("the PDF has no page", vi="tệp PDF không có trang nào")
    area = user_area(ctx, viewer)
    mine = sorted((p for p in area.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in mine[: max(0, len(mine) - MAX_UPLOADS_PER_USER + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    upload_id = secrets.token_urlsafe(16)
    folder = area / upload_id
    folder.mkdir(mode=0o700)
    upload = SignUpload(
        upload_id,
        folder,
        {"name": clean_name(name), "pages": pages, "uploaded": clock.now().isoformat()},
    )
    upload.original.write_bytes(data)
    upload.save_meta()
    return upload
