"""List the page strings that have no Vietnamese translation yet.

    python scripts/i18n_missing.py            # every missing msgid, with where it is used
    python scripts/i18n_missing.py --po       # the same as .po entries, ready to translate

The web pages' text is extracted from kyso/web/ui/*.py and kyso/web/templates (babel.cfg) and
checked against every kyso/web/locale/vi/LC_MESSAGES/*.po file. tests/ui/test_catalog.py runs
the same check.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kyso.web.ui import i18n  # noqa: E402


def main() -> int:
    gaps = i18n.untranslated(ROOT)
    as_po = "--po" in sys.argv
    for msgid, places in sorted(gaps.items(), key=lambda item: item[1][0]):
        if as_po:
            escaped = msgid.replace("\\", "\\\\").replace('"', '\\"')
            print(f'#: {" ".join(places[:3])}\nmsgid "{escaped}"\nmsgstr ""\n')
        else:
            print(f"{places[0]}: {msgid}")
    if not as_po:
        print(f"{len(gaps)} missing", file=sys.stderr)
    return 1 if gaps else 0


if __name__ == "__main__":
    raise SystemExit(main())
