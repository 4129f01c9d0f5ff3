"""Every string of every page is translated into Vietnamese, and the catalogs are sound."""

from __future__ import annotations

import re
from pathlib import Path

from kyso.web.ui import i18n

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_every_page_string_has_a_vietnamese_translation() -> None:
    gaps = i18n.untranslated(ROOT)
    listing = "\n".join(f"{places[0]}: {msgid}" for msgid, places in sorted(gaps.items()))
    assert not gaps, f"untranslated (run scripts/i18n_missing.py --po):\n{listing}"


def test_the_extraction_finds_the_pages() -> None:
    used = i18n.used_messages(ROOT)
    assert len(used) > 100
    assert "Log in" in used and any("templates/base.html" in p for p in used["Log in"])


def test_translations_keep_their_placeholders_and_use_vietnamese_letters() -> None:
    catalog = i18n.catalog("vi")
    vietnamese = 0
    for message in catalog:
        if not message.id or not message.string:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        msgstr = message.string if isinstance(message.string, str) else message.string[0]
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(msgstr)), msgid
        if re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", msgstr, re.I):
            vietnamese += 1
    assert vietnamese > 0.8 * len(catalog)


def test_english_is_the_message_id_itself() -> None:
    assert i18n.translations("en").gettext("Log in") == "Log in"
    assert i18n.translations("vi").gettext("Log in") == "Đăng nhập"
