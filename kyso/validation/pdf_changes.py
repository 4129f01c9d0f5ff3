"""What changed in a PDF after a signature, each revision compared once, and named.

pyHanko's difference analysis (``StandardDiffPolicy.review_file``) compares the signed revision
with every later revision, for every signature: n signatures in n revisions make n(n-1)/2
comparisons, each of which walks the whole older revision (its reverse cross-reference cache)
and every form field. Profiled on 40 incremental signatures: 780 comparisons, three quarters
of the validation time; 100 signatures took minutes. :class:`RevisionByRevision` compares
each revision once, with the one before it (the same rules: pyHanko's default policy), and
keeps the answer for every signature signed before it. A change is allowed after a signature
only if each step that made it is allowed; every object a later revision writes is examined
in exactly one step, against the revision it replaced. Each parsed revision is released once
its step is done.

pyHanko then says how much changed (nothing, validation data, form filling, annotations) or
refuses a change; it does not say *what*, and it lets through what kyso must not call
unchanged (Mainka et al., "Shadow Attacks", NDSS 2021): a pre-existing form field filled with
another value, or an unsigned signature field whose appearance paints over signed text. This
module names what changed — "the content of page 1", "the form field «SoTien»", "an annotation
(/Stamp) added on page 1" — and decides with kyso's rule: after a signature only signatures,
document time-stamps and validation data may be added (EN 319 142-1 §5.4, PAdES-B-LT/LTA);
every other change is reported as not allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffPolicy,
    DiffResult,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm

from kyso.validation.report import Modification

__all__ = ["Change", "Changes", "RevisionByRevision"]

# Naming walks at most this many pages and fields of a revision (a hostile file may have more;
# the rest is named by object number).
_MAX_PAGES = 2000
_MAX_FIELDS = 2000
_MAX_NAMES = 8  # signature names listed in one line


@dataclass(frozen=True)
class Change:
    """One thing that changed after a signature, in both languages."""

    allowed: bool
    vi: str
    en: str

    def modification(self) -> Modification:
        return Modification(self.allowed, f"{self.vi} — {self.en}")


# -- each revision once ---------------------------------------------------------------------


def _mdp_key(spec: FieldMDPSpec | None) -> tuple | None:
    if spec is None:
        return None
    return (spec.action, tuple(spec.fields or ()))


class RevisionByRevision(DiffPolicy):
    """pyHanko's default rules, each revision compared once with the revision before it.

    One instance serves one document: the steps are kept (per field lock and DocMDP level,
    which change what a step allows) for every signature of that document."""

    def __init__(self, policy: DiffPolicy = DEFAULT_DIFF_POLICY) -> None:
        self._policy = policy
        self._steps: dict[tuple, DiffResult | SuspiciousModification] = {}
        self.comparisons = 0  # revisions compared so far (a linear count, see the tests)

    def apply(
        self,
        old: HistoricalResolver,
        new: HistoricalResolver,
        field_mdp_spec: FieldMDPSpec | None = None,
        doc_mdp: MDPPerm | None = None,
    ) -> DiffResult:
        return self._policy.apply(old, new, field_mdp_spec, doc_mdp)

    def review_file(
        self,
        reader: PdfFileReader,
        base_revision: int | HistoricalResolver,
        field_mdp_spec: FieldMDPSpec | None = None,
        doc_mdp: MDPPerm | None = None,
    ) -> DiffResult | SuspiciousModification:
        base = base_revision if isinstance(base_revision, int) else base_revision.revision
        level = ModificationLevel.NONE
        fields: set[str] = set()
        for revision in range(base + 1, reader.xrefs.total_revisions):
            step = self._step(reader, revision, field_mdp_spec, doc_mdp)
            if isinstance(step, SuspiciousModification):
                return step
            level = max(level, step.modification_level)
            fields |= step.changed_form_fields
        return DiffResult(level, fields)

    def _step(
        self,
        reader: PdfFileReader,
        revision: int,
        field_mdp_spec: FieldMDPSpec | None,
        doc_mdp: MDPPerm | None,
    ) -> DiffResult | SuspiciousModification:
        key = (revision, _mdp_key(field_mdp_spec), doc_mdp)
        known = self._steps.get(key)
        if known is not None:
            return known
        result: DiffResult | SuspiciousModification
        try:
            self.comparisons += 1
            result = self._policy.apply(
                old=reader.get_historical_resolver(revision - 1),
                new=reader.get_historical_resolver(revision),
                field_mdp_spec=field_mdp_spec,
                doc_mdp=doc_mdp,
            )
        except SuspiciousModification as exc:
            result = exc
        except MemoryError:
            raise
        except Exception as exc:
            # A revision pyHanko cannot read (a stream whose /Length is wrong, a broken object):
            # nothing shows its changes are allowed, so they are not; the signature's own bytes
            # are still checked.
            result = SuspiciousModification(
                f"revision {revision + 1} could not be compared with the one before it: {exc}"
            )
        finally:
            # The older revision's resolver holds a parsed copy of that revision and its
            # reverse cross-references; nothing compares with it again.
            cache = getattr(reader, "_historical_resolver_cache", None)
            if isinstance(cache, dict):
                cache.pop(revision - 1, None)
        self._steps[key] = result
        return result


# -- naming ---------------------------------------------------------------------------------


def _key(ref: generic.Reference | generic.IndirectObject) -> tuple[int, int]:
    return (ref.idnum, ref.generation)


def _refs(value: generic.PdfObject) -> Iterator[tuple[int, int]]:
    if isinstance(value, generic.IndirectObject):
        yield _key(value)
    elif isinstance(value, generic.ArrayObject):
        for item in value:
            if isinstance(item, generic.IndirectObject):
                yield _key(item)


def _get(container: generic.DictionaryObject, name: str):
    try:
        return container[name]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass
class _Field:
    name: str
    signature: bool
    signed: bool
    visible: bool  # a widget with an appearance on a non-empty area, not hidden
    kind: str | None = None  # the signature dictionary's /Type (/Sig, /DocTimeStamp)
    objects: set[tuple[int, int]] = field(default_factory=set)
    ref: tuple[int, int] | None = None  # the field dictionary (None: a direct object)
    introduced: int | None = None  # revision that created the field dictionary
    signed_in: int | None = None  # revision that wrote its signature value


def _appearance_objects(widget: generic.DictionaryObject) -> Iterator[tuple[int, int]]:
    ap = widget.raw_get("/AP") if "/AP" in widget else None
    if ap is None:
        return
    if isinstance(ap, generic.IndirectObject):
        yield _key(ap)
    ap = _get(widget, "/AP")
    if not isinstance(ap, generic.DictionaryObject):
        return
    for state in ("/N", "/D", "/R"):
        if state not in ap:
            continue
        value = ap.raw_get(state)
        if isinstance(value, generic.IndirectObject):
            yield _key(value)
        sub = _get(ap, state)
        if isinstance(sub, generic.DictionaryObject) and not isinstance(sub, generic.StreamObject):
            for name in list(sub.keys())[:16]:
                item = sub.raw_get(name)
                if isinstance(item, generic.IndirectObject):
                    yield _key(item)


def _visible(widget: generic.DictionaryObject) -> bool:
    flags = _get(widget, "/F")
    if isinstance(flags, int) and flags & 0b10:  # Hidden (ISO 32000-1 §12.5.3)
        return False
    rect = _get(widget, "/Rect")
    try:
        x1, y1, x2, y2 = (float(v) for v in rect)
    except (TypeError, ValueError):
        return False
    ap = _get(widget, "/AP")
    return abs(x2 - x1) > 0.5 and abs(y2 - y1) > 0.5 and isinstance(ap, generic.DictionaryObject)


def _fields(handler) -> dict[str, _Field]:
    """Terminal form fields by fully qualified name (ISO 32000-1 §12.7.3.2), with the objects
    that make them (field, widgets, appearance streams)."""
    found: dict[str, _Field] = {}
    try:
        top = handler.root["/AcroForm"]["/Fields"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return found
    stack: list[tuple[generic.PdfObject, str, str | None]] = [
        (item, "", None) for item in reversed(list(top))
    ]
    seen: set[tuple[int, int]] = set()
    while stack and len(found) < _MAX_FIELDS:
        raw, parent, inherited = stack.pop()
        if isinstance(raw, generic.IndirectObject):
            if _key(raw) in seen:
                continue
            seen.add(_key(raw))
        node = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(node, generic.DictionaryObject):
            continue
        partial = _get(node, "/T")
        name = f"{parent}.{partial}" if parent and partial else str(partial or parent)
        kind = _get(node, "/FT") or inherited
        kids = _get(node, "/Kids")
        field_kids = [
            k for k in (kids or []) if isinstance(k.get_object(), generic.DictionaryObject)
        ]
        if field_kids and any("/T" in k.get_object() for k in field_kids):
            for kid in reversed(field_kids):
                stack.append((kid, name, kind))
            continue
        value = _get(node, "/V")
        entry = found.setdefault(
            name,
            _Field(
                name,
                kind == "/Sig",
                isinstance(value, generic.DictionaryObject),
                False,
                _get(value, "/Type") if isinstance(value, generic.DictionaryObject) else None,
            ),
        )
        if isinstance(raw, generic.IndirectObject):
            entry.objects.add(_key(raw))
            entry.ref = _key(raw)
            entry.introduced = _introduced(handler, raw)
        if "/V" in node and isinstance(node.raw_get("/V"), generic.IndirectObject):
            entry.signed_in = _introduced(handler, node.raw_get("/V"))
        widgets = [node] + [k.get_object() for k in field_kids]
        for kid in field_kids:
            if isinstance(kid, generic.IndirectObject):
                entry.objects.add(_key(kid))
        for widget in widgets:
            entry.objects.update(_appearance_objects(widget))
            entry.visible = entry.visible or _visible(widget)
    return found


def _introduced(handler, ref: generic.IndirectObject) -> int | None:
    """The revision in which the object was first written (its introducing revision)."""
    xrefs = getattr(handler, "xrefs", None)
    if xrefs is None:
        return None
    try:
        return int(xrefs.get_introducing_revision(ref.reference))
    except (KeyError, AttributeError):
        return None


def _pages(handler) -> Iterator[tuple[int, generic.IndirectObject, generic.DictionaryObject]]:
    """(1-based number, reference, page) for the first pages of the page tree."""
    try:
        root = handler.root.raw_get("/Pages")
    except (KeyError, TypeError, AttributeError):
        return
    stack = [root]
    seen: set[tuple[int, int]] = set()
    number = 0
    while stack and number < _MAX_PAGES:
        ref = stack.pop()
        if not isinstance(ref, generic.IndirectObject) or _key(ref) in seen:
            continue
        seen.add(_key(ref))
        node = ref.get_object()
        if not isinstance(node, generic.DictionaryObject):
            continue
        kids = _get(node, "/Kids")
        if kids is not None and _get(node, "/Type") != "/Page":
            stack.extend(reversed(list(kids)))
            continue
        number += 1
        yield number, ref, node


def _page_roles(handler) -> dict[tuple[int, int], tuple[str, str]]:
    """Each object a page uses, named by what it is on which page."""
    roles: dict[tuple[int, int], tuple[str, str]] = {}

    def name(ref_key, vi: str, en: str) -> None:
        roles.setdefault(ref_key, (vi, en))

    for number, ref, page in _pages(handler):
        name(
            _key(ref),
            f"trang {number}",
            f"page {number} itself (its content, resources or annotations)",
        )
        if "/Contents" in page:
            contents = page.raw_get("/Contents")
            for item in _refs(contents):
                name(item, f"nội dung trang {number}", f"the content of page {number}")
            if isinstance(contents, generic.IndirectObject):
                inner = contents.get_object()
                if isinstance(inner, generic.ArrayObject):
                    for item in _refs(inner):
                        name(item, f"nội dung trang {number}", f"the content of page {number}")
        resources = page.raw_get("/Resources") if "/Resources" in page else None
        if isinstance(resources, generic.IndirectObject):
            name(
                _key(resources),
                f"tài nguyên (phông chữ, hình) của trang {number}",
                f"the resources (fonts, drawings) of page {number}",
            )
        resolved = _get(page, "/Resources")
        if isinstance(resolved, generic.DictionaryObject):
            for kind, vi_kind, en_kind in (
                ("/XObject", "hình hoặc khối vẽ", "the drawing (XObject"),
                ("/Font", "phông chữ", "the font ("),
            ):
                if kind not in resolved:
                    continue
                group_raw = resolved.raw_get(kind)
                if isinstance(group_raw, generic.IndirectObject):
                    name(
                        _key(group_raw),
                        f"tài nguyên {kind} của trang {number}",
                        f"the {kind} resources of page {number}",
                    )
                group = _get(resolved, kind)
                if not isinstance(group, generic.DictionaryObject):
                    continue
                for label in list(group.keys())[:64]:
                    item = group.raw_get(label)
                    if isinstance(item, generic.IndirectObject):
                        name(
                            _key(item),
                            f"{vi_kind} {label} trên trang {number}",
                            f"{en_kind} {label}) used by page {number}",
                        )
        if "/Annots" in page:
            annots_raw = page.raw_get("/Annots")
            if isinstance(annots_raw, generic.IndirectObject):
                name(
                    _key(annots_raw),
                    f"danh sách chú thích của trang {number}",
                    f"the annotation list of page {number}",
                )
            annots = _get(page, "/Annots")
            for item in list(annots or [])[:256]:
                if not isinstance(item, generic.IndirectObject):
                    continue
                annotation = item.get_object()
                subtype = (
                    _get(annotation, "/Subtype")
                    if isinstance(annotation, generic.DictionaryObject)
                    else None
                )
                if subtype == "/Widget":
                    continue  # named by its form field
                name(
                    _key(item),
                    f"chú thích ({subtype}) trên trang {number}",
                    f"an annotation ({subtype}) on page {number}",
                )
                for appearance in _appearance_objects(annotation):
                    name(
                        appearance,
                        f"hình hiển thị của chú thích ({subtype}) trên trang {number}",
                        f"the appearance of an annotation ({subtype}) on page {number}",
                    )
    return roles


def _annotations(handler) -> dict[tuple[int, int], tuple[int, str]]:
    """Non-widget annotations: object → (page number, subtype)."""
    found: dict[tuple[int, int], tuple[int, str]] = {}
    for number, _ref, page in _pages(handler):
        for item in list(_get(page, "/Annots") or [])[:256]:
            if not isinstance(item, generic.IndirectObject):
                continue
            annotation = item.get_object()
            if not isinstance(annotation, generic.DictionaryObject):
                continue
            subtype = str(_get(annotation, "/Subtype"))
            if subtype != "/Widget":
                found[_key(item)] = (number, subtype)
    return found


def _names(names: list[str]) -> str:
    shown = ", ".join(f"«{n}»" for n in names[:_MAX_NAMES])
    return shown + (f" (+{len(names) - _MAX_NAMES})" if len(names) > _MAX_NAMES else "")


class Changes:
    """What changed after each signature of one document (its final revision read once)."""

    def __init__(self, reader: PdfFileReader) -> None:
        self._reader = reader
        self._final: dict[str, _Field] | None = None
        self._written: list[list[tuple[tuple[int, int], int]]] | None = None

    @property
    def final_fields(self) -> dict[str, _Field]:
        if self._final is None:
            self._final = _fields(self._reader)
        return self._final

    def _overwritten(self, base: int) -> set[tuple[int, int]]:
        """Objects that existed in revision ``base`` and a later revision writes again (or
        frees)."""
        xrefs = self._reader.xrefs
        if self._written is None:
            self._written = []
            for revision in range(xrefs.total_revisions):
                refs = set(xrefs.explicit_refs_in_revision(revision))
                refs |= set(xrefs.refs_freed_in_revision(revision))
                entries = []
                for ref in refs:
                    try:
                        entries.append((_key(ref), xrefs.get_introducing_revision(ref)))
                    except KeyError:
                        continue
                self._written.append(entries)
        return {
            key
            for revision in range(base + 1, len(self._written))
            for key, introduced in self._written[revision]
            if introduced <= base
        }

    def after(self, base: int, diff: DiffResult | SuspiciousModification | None) -> list[Change]:
        """What revisions after ``base`` changed, each allowed or not (the module's rule)."""
        reader = self._reader
        if base >= reader.xrefs.total_revisions - 1:
            return []
        overwritten = self._overwritten(base)
        before = reader.get_historical_resolver(base)
        changes: list[Change] = []
        signatures: list[str] = []
        stamps: list[str] = []
        existing: dict[str, _Field] = {}
        for name, entry in self.final_fields.items():
            if entry.introduced is not None and entry.introduced <= base:
                existing[name] = entry
                change = _existing_field(before, entry, overwritten, base)
                if change is not None:
                    changes.append(change)
            elif not entry.signature:
                changes.append(
                    Change(
                        False,
                        f"trường biểu mẫu «{name}» được thêm vào sau khi ký",
                        f"the form field «{name}» was added after signing",
                    )
                )
            elif not entry.signed and entry.visible:
                changes.append(
                    Change(
                        False,
                        f"trường chữ ký trống «{name}» có hình hiển thị được thêm vào sau khi "
                        "ký (hình đó có thể che nội dung đã ký)",
                        f"an empty signature field «{name}» with a visible appearance was "
                        "added after signing (it can cover signed content)",
                    )
                )
            if entry.signature and entry.signed and (entry.signed_in or 0) > base:
                (stamps if entry.kind == "/DocTimeStamp" else signatures).append(name)
        refused = isinstance(diff, SuspiciousModification) or (
            isinstance(diff, DiffResult)
            and diff.modification_level >= ModificationLevel.ANNOTATIONS
        )
        if refused:
            changes += _refused_changes(reader, before, existing, overwritten, diff)
        return changes + _allowed_additions(signatures, stamps, diff)


def _existing_field(
    before: HistoricalResolver, entry: _Field, overwritten: set, base: int
) -> Change | None:
    """A field of the signed revision: filling an empty signature field is signing; any other
    write to its objects (value, widget, appearance) changes what the page shows."""
    if not (entry.objects & overwritten):
        return None
    was_signature, was_signed = entry.signature, False
    if entry.ref is not None:
        try:
            old = before.get_object(generic.Reference(*entry.ref, pdf=before))
            kind = _get(old, "/FT")
            was_signature = kind == "/Sig" if kind is not None else entry.signature
            was_signed = isinstance(_get(old, "/V"), generic.DictionaryObject)
        except Exception:  # noqa: S110 - judged by what it is now
            pass
    name = entry.name
    if was_signature and not was_signed and entry.signature and (entry.signed_in or 0) > base:
        return None  # an empty signature field was signed: listed with the signatures
    if was_signature and was_signed:
        return Change(
            False,
            f"trường chữ ký «{name}» bị thay đổi sau khi đã ký",
            f"the signature field «{name}» was changed after it was signed",
        )
    return Change(
        False,
        f"trường biểu mẫu «{name}» (giá trị hoặc hình hiển thị) bị thay đổi sau khi ký",
        f"the form field «{name}» (its value or appearance) was changed after signing",
    )


def _refused_changes(reader, before, old_fields, overwritten, diff) -> list[Change]:
    """Name what pyHanko refused: objects of the signed revision written again, annotations
    added on pages."""
    changes: list[Change] = []
    old_annotations = _annotations(before)
    for ref_key, (page, subtype) in _annotations(reader).items():
        if ref_key not in old_annotations:
            changes.append(
                Change(
                    False,
                    f"chú thích ({subtype}) được thêm vào trang {page} sau khi ký",
                    f"an annotation ({subtype}) was added on page {page} after signing",
                )
            )
    explained = set().union(*(f.objects for f in old_fields.values())) if old_fields else set()
    unexplained = overwritten - explained
    roles = _page_roles(before) if unexplained else {}
    catalog = _catalog(reader)
    named = [roles[k] for k in sorted(unexplained) if k in roles]
    for vi, en in named:
        changes.append(
            Change(False, f"{vi} bị thay đổi sau khi ký", f"{en} was changed after signing")
        )
    anonymous = sorted(k for k in unexplained if k not in roles and k != catalog)
    if anonymous and not named:
        objects = ", ".join(f"{n} {g}" for n, g in anonymous[:_MAX_NAMES])
        changes.append(
            Change(
                False,
                f"các đối tượng đã ký ({objects}) bị ghi lại sau khi ký",
                f"signed objects ({objects}) were written again after signing",
            )
        )
    if not changes:
        detail = str(diff).splitlines()[0][:200] if diff is not None else ""
        changes.append(
            Change(
                False,
                f"nội dung tài liệu bị thay đổi ({detail})",
                f"the document's content was changed ({detail})",
            )
        )
    return changes


def _allowed_additions(
    signatures: list[str], stamps: list[str], diff: DiffResult | SuspiciousModification | None
) -> list[Change]:
    changes = []
    if signatures:
        changes.append(
            Change(
                True,
                f"thêm chữ ký sau đó: {_names(signatures)}",
                f"signatures added later: {_names(signatures)}",
            )
        )
    lta = isinstance(diff, DiffResult) and diff.modification_level is ModificationLevel.LTA_UPDATES
    if stamps or lta:
        listed = f" {_names(stamps)}" if stamps else ""
        changes.append(
            Change(
                True,
                f"thêm dữ liệu kiểm tra dài hạn (DSS) hoặc dấu thời gian tài liệu{listed}",
                f"validation data (DSS) or a document time-stamp added{listed}",
            )
        )
    return changes


def _catalog(reader: PdfFileReader) -> tuple[int, int] | None:
    try:
        return _key(reader.trailer.raw_get("/Root"))
    except (KeyError, AttributeError):
        return None
