"""Characters a name must never hold: controls, and the invisible "format" characters
(Unicode category Cf) — bidirectional embeddings, overrides and isolates (U+202A–U+202E,
U+2066–U+2069, Trojan Source, CVE-2021-42574), the direction marks, zero-width characters.

None is needed to write Vietnamese, and each can make one name look like another on a page,
in a PDF stamp or in a certificate viewer ("Nguyễn Văn A" shown, something else stored), so
names, units and certificate subjects refuse them wherever they come from.
"""

from __future__ import annotations

import unicodedata


def hidden_character(value: str) -> str | None:
    """The first control or invisible format character of ``value`` as ``U+XXXX``, or None."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf"):
            return f"U+{ord(char):04X}"
    return None
