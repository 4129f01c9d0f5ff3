"""The ``Content-Disposition`` of every file kyso sends (RFC 6266).

File names are Vietnamese ("Quyết định số 15.pdf"), and an HTTP header is Latin-1: a name
written into ``filename="…"`` as it is cannot be sent at all (the server fails with a 500).
RFC 6266 §4.3 gives the name twice: ``filename*=UTF-8''…`` (RFC 8187 percent-encoding),
which every current browser reads, and before it an ASCII ``filename="…"`` for the rest,
here the name without its diacritics ("Quyet dinh so 15.pdf"). The name is reduced to its
last path part, without control or bidirectional characters, quotes or backslashes.
"""

from __future__ import annotations

import unicodedata
from typing import Literal
from urllib.parse import quote

MAX_NAME = 150
_FALLBACK = "download"
# Characters no file name keeps: path separators, quotes, and those Windows refuses.
_REFUSED = set('"\\/<>|:*?')


def _visible(ch: str) -> bool:
    # Cc: controls (CR, LF …); Cf: format characters, among them the bidi overrides that
    # make "gpj.exe" look like "exe.jpg" (U+202A–U+202E, U+2066–U+2069).
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def clean_name(name: str | None) -> str:
    """The name as it may be shown and saved: last path part, nothing invisible, at most
    :data:`MAX_NAME` characters, never empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in unicodedata.normalize("NFC", base) if _visible(ch))
    kept = "".join("_" if ch in _REFUSED else ch for ch in kept).strip(" .")
    return kept[:MAX_NAME] or _FALLBACK


def ascii_name(name: str) -> str:
    """The name in ASCII: Vietnamese letters without their marks (đ → d), anything else
    outside ASCII as ``_``."""
    folded = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    letters = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return "".join(ch if 32 <= ord(ch) < 127 and ch not in _REFUSED else "_" for ch in letters)


def content_disposition(
    name: str | None, disposition: Literal["attachment", "inline"] = "attachment"
) -> str:
    """``attachment; filename="Quyet dinh.pdf"; filename*=UTF-8''Quy%E1%BA%BFt%20…``"""
    shown = clean_name(name)
    fallback = ascii_name(shown)
    if shown == fallback:
        return f'{disposition}; filename="{fallback}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(shown, safe='')}"
