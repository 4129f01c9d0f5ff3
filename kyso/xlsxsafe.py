"""Open untrusted XLSX workbooks without letting them exhaust the server.

An XLSX file is a zip archive of XML parts. Every workbook kyso reads from outside — the
units and people imports (:mod:`kyso.registry.spreadsheets`) and the bulk request lists
(:mod:`kyso.lifecycle.bulk.sheet`), from the pages, the API or the command line — is opened
by :func:`open_workbook`, which holds it to one policy before openpyxl parses any of it:

- the file: at most :data:`MAX_BYTES`;
- the archive: a readable zip, at most :data:`MAX_MEMBERS` parts, with ``xl/workbook.xml``;
- expansion: all parts together at most :data:`MAX_UNCOMPRESSED`, and no part over 1 MiB
  expanding more than :data:`MAX_RATIO` times its compressed size (a zip bomb).

The sizes checked are those the archive declares. That is enough: Python's ``zipfile`` never
returns more of a part than its declared size and checks the part's CRC at the end, so a
part that lies about its size is read only up to the lie and then refused as damaged.

openpyxl then parses the XML through defusedxml (entity declarations refused: no "billion
laughs", no external entities), in read-only mode, and leaves out external links and macros,
which a list never needs. Anything it cannot read, on opening or while the caller reads the
rows, is one "cannot be read" refusal. Each refusal is a :class:`~kyso.errors.TooLarge`
(a limit) or an :class:`~kyso.errors.InvalidInput` (not a workbook), in Vietnamese and
English; none is a 500.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kyso.errors import InvalidInput, KysoError, TooLarge

#: The media type of an XLSX workbook (ECMA-376), for downloads and upload forms.
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook

__all__ = ["MAX_BYTES", "MAX_MEMBERS", "MAX_RATIO", "MAX_UNCOMPRESSED", "check", "open_workbook"]

_MiB = 1024 * 1024
# Form 01 lists of 20,000 people, or 5,000 rows with a CSR each, are a few MB; the web's
# upload limit (KYSO_MAX_UPLOAD_BYTES) may be set higher for PDFs, this one holds anyway.
MAX_BYTES = 16 * _MiB
MAX_MEMBERS = 2_000  # Excel writes about a dozen parts, a few more per sheet or picture
MAX_UNCOMPRESSED = 64 * _MiB  # all parts together
MAX_RATIO = 100  # expanded / compressed, for any part over 1 MiB (worksheet XML: 5–20)
_RATIO_FROM = _MiB
WORKBOOK_PART = "xl/workbook.xml"


class NoSafeParser(KysoError):
    """The deployment lacks defusedxml (or turned it off): openpyxl would parse the XML with
    entity expansion, so no workbook is read at all."""

    code = "xlsx_unavailable"
    http_status = 503
    message_vi = "Máy chủ chưa đọc được sổ tính Excel một cách an toàn."
    message_en = "This server cannot read Excel workbooks safely."


def _mib(size: int) -> int:
    return size // _MiB


def _shown(name: str) -> str:
    """A part's name as the archive spells it, fit to quote in a message."""
    printable = "".join(c if c.isprintable() else "?" for c in name)
    return printable if len(printable) <= 80 else printable[:77] + "…"


def check(data: bytes) -> None:
    """Refuse ``data`` unless it is a zip archive within the policy holding a workbook part.
    Reads the archive's directory only; nothing is decompressed."""
    if not data:
        raise InvalidInput("the file is empty", vi="tệp trống")
    if len(data) > MAX_BYTES:
        raise TooLarge(
            f"the workbook is over {_mib(MAX_BYTES)} MiB",
            vi=f"sổ tính quá {_mib(MAX_BYTES)} MiB",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise InvalidInput(
            "the file is not an Excel workbook (XLSX, a .xlsx file from Excel 2007 or later): "
            "it is not a zip archive, or a damaged one",
            vi="tệp không phải sổ tính Excel (XLSX, tệp .xlsx từ Excel 2007 trở lên): không "
            "phải tệp nén zip, hoặc tệp nén bị hỏng",
        ) from exc
    if len(members) > MAX_MEMBERS:
        raise TooLarge(
            f"the workbook has more than {MAX_MEMBERS} parts",
            vi=f"sổ tính có hơn {MAX_MEMBERS} thành phần",
        )
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > _RATIO_FROM and (
            member.compress_size == 0 or member.file_size > MAX_RATIO * member.compress_size
        ):
            ratio = member.file_size // max(member.compress_size, 1)
            name = _shown(member.filename)
            raise TooLarge(
                f"part {name} expands {ratio} times its compressed size (a zip bomb?)",
                vi=f"thành phần {name} giải nén ra gấp {ratio} lần kích thước nén (tệp nén "
                "độc hại?)",
            )
    if total > MAX_UNCOMPRESSED:
        raise TooLarge(
            f"the workbook expands to more than {_mib(MAX_UNCOMPRESSED)} MiB",
            vi=f"sổ tính giải nén ra hơn {_mib(MAX_UNCOMPRESSED)} MiB",
        )
    if WORKBOOK_PART not in {m.filename for m in members}:
        raise InvalidInput(
            f"the archive is not an Excel workbook (.xlsx): it has no {WORKBOOK_PART}",
            vi=f"tệp nén không phải sổ tính Excel (.xlsx): không có {WORKBOOK_PART}",
        )


def _unreadable(exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"the Excel workbook cannot be read ({type(exc).__name__})",
        vi=f"không đọc được sổ tính Excel ({type(exc).__name__})",
    )


@contextmanager
def open_workbook(data: bytes) -> Iterator[Workbook]:
    """The workbook in ``data``, read-only, once :func:`check` passed; closed on leaving.

    An error openpyxl raises while the caller reads rows (parts are parsed lazily) becomes
    the same "cannot be read" refusal; kyso's own errors pass through."""
    check(data)
    import openpyxl  # parsing begins only after the checks

    if not openpyxl.DEFUSEDXML:  # defusedxml missing, or OPENPYXL_DEFUSEDXML=False
        raise NoSafeParser(
            "install defusedxml and leave OPENPYXL_DEFUSEDXML unset",
            vi="cần cài defusedxml và không đặt OPENPYXL_DEFUSEDXML",
        )
    try:
        book = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_vba=False, keep_links=False
        )
    # openpyxl raises whatever its parsers raise on a damaged part (KeyError, ValueError,
    # lxml, defusedxml and zipfile errors, InvalidFileException): all mean "cannot be read".
    except Exception as exc:
        raise _unreadable(exc) from exc
    try:
        yield book
    except KysoError:
        raise
    except Exception as exc:  # as above, from a part parsed while the rows are read
        raise _unreadable(exc) from exc
    finally:
        book.close()
