"""The pages' languages: Vietnamese first, English by a switch.

Message ids are the English text; the Vietnamese catalog lives as ``.po`` files under
``kyso/web/locale/vi/LC_MESSAGES`` (one file per area of the application, so translators and
developers of one area never edit the same file). They are read and compiled in memory when
the application starts: no compiled ``.mo`` build output is kept in the repository.
"""

from __future__ import annotations

import gettext
import io
from collections import defaultdict
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("vi", "en")
DEFAULT = "vi"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def catalog(lang: str) -> Catalog:
    """Every area's messages for one language, merged (a later file never hides an earlier
    translation with an empty one)."""
    merged = Catalog(locale=lang, domain="messages")
    for po in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as handle:
            part = read_po(handle, locale=lang)
        for message in part:
            if not message.id:
                continue
            existing = merged.get(message.id, message.context)
            if existing is not None and existing.string:
                continue
            merged.add(message.id, message.string, context=message.context)
    return merged


@cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang not in LANGUAGES or lang == "en":
        return gettext.NullTranslations()  # the message ids are the English text
    buffer = io.BytesIO()
    write_mo(buffer, catalog(lang))
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick(cookie: str | None, accept_language: str | None) -> str:
    """The reader's language: their switch first, else Vietnamese (the province's language)
    unless the browser asks for English first."""
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    if accept_language and accept_language.lower().startswith("en"):
        return "en"
    return DEFAULT


def used_messages(root: Path) -> dict[str, list[str]]:
    """Every page string in the source tree at ``root`` (as babel.cfg maps it), with where it
    is used."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (root / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[str, list[str]] = defaultdict(list)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(root), method_map, options_map, keywords=keywords
    ):
        # a plural pair is one catalog entry, keyed by its singular
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found[msgid].append(f"{filename}:{lineno}")
    return found


def untranslated(root: Path, lang: str = "vi") -> dict[str, list[str]]:
    """The page strings without a translation in ``lang``'s catalog."""
    merged = catalog(lang)
    return {
        msgid: places
        for msgid, places in used_messages(root).items()
        if (entry := merged.get(msgid)) is None or not _translated(entry.string)
    }


def _translated(string: str | tuple[str, ...] | list[str] | None) -> bool:
    if isinstance(string, tuple):
        return all(string)
    return bool(string)
