"""kyso's verdict on signed files made by other tools agrees with their makers' own tests.

The files come from EU DSS's and pyHanko's public test resources; ``corpus/manifest.toml``
says, for each, where it comes from, its licence, the maker's test that asserts its verdict
and what kyso must say. The makers' trust anchors and validation times are used where their
tests use them. An entry marked ``xfail`` is a known kyso bug, named with the part of kyso
that owns it; the mark is strict, so the fix must remove it.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kyso.trust import TrustContext
from kyso.validation.report import Indication, ScopeKind, SignatureReport, SubIndication
from kyso.validation.verify import detect_kind, verify

CORPUS = Path(__file__).parent / "corpus"
_TOML = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))
MANIFEST: list[dict[str, Any]] = _TOML["file"]


def _entries() -> list[Any]:
    params = []
    for entry in MANIFEST:
        marks = [pytest.mark.interop]
        if "xfail" in entry:
            marks.append(pytest.mark.xfail(reason=entry["xfail"], strict=True))
        params.append(pytest.param(entry, id=entry["file"], marks=marks))
    return params


def _anchor(path: str) -> x509.Certificate:
    data = (CORPUS / path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _check_signature(sig: SignatureReport, expected: dict[str, Any]) -> None:
    """The expectations the manifest may set on one signature."""
    where = f"{sig.field_name or sig.format}: {sig.message_en}"
    if "indication" in expected:
        assert sig.indication is Indication(expected["indication"]), where
    for key in ("sub_indication", "kyso_sub_indication"):
        if key in expected:
            assert sig.sub_indication is SubIndication(expected[key]), where
    if "integrity" in expected:
        assert sig.integrity is expected["integrity"], where
    if "modifications_flagged" in expected:
        flagged = any(not m.allowed for m in sig.modifications)
        assert flagged is expected["modifications_flagged"], (where, sig.modifications)


def test_the_manifest_names_every_file_once() -> None:
    listed = {e["file"] for e in MANIFEST} | {e["detached"] for e in MANIFEST if "detached" in e}
    anchors = {a for e in MANIFEST for a in e.get("trust", [])}
    assert anchors == set(_TOML["anchors"])  # each with its source and licence
    present = {
        str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.parent != CORPUS
    }
    assert present == listed | anchors
    assert len(MANIFEST) == len({e["file"] for e in MANIFEST})
    for entry in MANIFEST:
        assert entry["licence"] in ("LGPL-2.1-only", "MIT")
        assert entry["asserted_by"] and entry["source"]["commit"]


@pytest.mark.parametrize("entry", _entries())
def test_kyso_gives_the_verdict_the_maker_asserts(entry: dict[str, Any]) -> None:
    data = (CORPUS / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], "the file was changed"
    if "kind" in entry:
        assert detect_kind(data) == entry["kind"]
    trust = TrustContext([_anchor(p) for p in entry.get("trust", [])])
    moment = datetime.fromisoformat(entry["moment"]) if "moment" in entry else None
    detached = (CORPUS / entry["detached"]).read_bytes() if "detached" in entry else None

    report = verify(
        data, trust, name=Path(entry["file"]).name, detached_data=detached, moment=moment
    )

    everyone = report.all_signatures()
    assert report.indication is Indication(entry["indication"]), [
        (s.indication.value, s.sub_indication, s.message_en) for s in everyone
    ]
    first = report.signatures[0]
    _check_signature(
        first, {k: v for k, v in entry.items() if k not in ("indication", "integrity")}
    )
    if entry.get("integrity") is True:
        assert all(s.integrity for s in everyone), [(s.format, s.message_en) for s in everyone]
    elif entry.get("integrity") is False:
        assert not first.integrity
    if "signatures" in entry:
        assert len(report.signatures) == entry["signatures"]
    if "counter_signatures" in entry:
        assert len(everyone) - len(report.signatures) == entry["counter_signatures"]
    if "scope" in entry:
        assert [s.kind for s in first.scope] == [ScopeKind(entry["scope"])], first.scope
    if "notes_contain" in entry:
        assert any(entry["notes_contain"] in n.text_en for n in first.notes), first.notes
    if "each" in entry:
        for sig, expected in zip(report.signatures, entry["each"], strict=True):
            _check_signature(sig, expected)
    # Every verdict reads as a sentence in both languages.
    assert report.message_vi and report.message_en
    assert all(s.message_vi and s.message_en for s in everyone)
