"""Pages: the certificates of the viewer's units — a filtered list (exported as XLSX or CSV),
one certificate in plain words with its history and downloads, and suspend / restore /
revoke for the province.

Pages only translate: every query and every rule is :mod:`kyso.lifecycle.certificates` (the
same service the REST API and the CLI call), which refuses what the viewer may not see or
change, including the CA's own certificates.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, KysoError, NotFound
from kyso.lifecycle import certificates
from kyso.lifecycle.certificates import common_name, shown_status
from kyso.registry import organizations, spreadsheets
from kyso.registry.access import Action, Principal
from kyso.remote import central, delegates
from kyso.store.models import (
    Certificate,
    IdentityRole,
    KeyDevice,
    Profile,
    RevocationReason,
    Sector,
)
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard, labels
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

PAGE_SIZE = 50
EXPIRING_DAYS = ("30", "60", "90")
SHOWN_STATUSES = certificates.SHOWN_STATUSES
EXPORT_LIMIT = 100_000  # a whole province is ~10,000; a bound keeps one export from any runaway

# The reasons a person chooses from: those that fit a subscriber's certificate, in the order
# they are usually needed (RFC 5280 §5.3.1; certificateHold is "suspend", not a revocation).
REVOKE_REASONS = (
    RevocationReason.KEY_COMPROMISE,
    RevocationReason.AFFILIATION_CHANGED,
    RevocationReason.SUPERSEDED,
    RevocationReason.CESSATION_OF_OPERATION,
    RevocationReason.PRIVILEGE_WITHDRAWN,
    RevocationReason.UNSPECIFIED,
)

EVENT_NAMES = {
    "issued": N_("Issued"),
    "suspended": N_("Suspended"),
    "restored": N_("Restored"),
    "revoked": N_("Revoked"),
}

Text = Annotated[str, Query(max_length=200)]
Note = Annotated[str, Form(max_length=2000)]


# -- the list ----------------------------------------------------------------------------------
@dataclass
class Filters:
    unit: str = ""
    sector: str = ""
    status: str = ""
    profile: str = ""
    expiring: str = ""
    q: str = ""

    def any(self) -> bool:
        return any(vars(self).values())


def _check(filters: Filters, _: Any) -> dict[str, str]:
    """Values a browser can only send by editing the address: refused next to the field."""
    errors: dict[str, str] = {}
    if filters.sector and filters.sector not in {s.value for s in Sector}:
        errors["sector"] = _("Choose a sector from the list.")
    if filters.status and filters.status not in SHOWN_STATUSES:
        errors["status"] = _("Choose a status from the list.")
    if filters.profile and filters.profile not in {p.value for p in Profile}:
        errors["profile"] = _("Choose a kind of certificate from the list.")
    if filters.expiring and filters.expiring not in EXPIRING_DAYS:
        errors["expiring"] = _("Choose 30, 60 or 90 days.")
    if "\x00" in filters.q:
        errors["q"] = _("The search text contains a character that cannot be searched.")
    if "\x00" in filters.unit:
        errors["unit"] = _("Choose a unit from the list.")
    return errors


def _filters(unit: str, sector: str, status: str, profile: str, expiring: str, q: str) -> Filters:
    return Filters(
        unit.strip(), sector.strip(), status.strip(), profile.strip(), expiring.strip(), q
    )


def _typed(filters: Filters) -> certificates.CertificateFilter:
    """The form's text, once :func:`_check` passed it, as the service's typed filter."""
    return certificates.CertificateFilter(
        unit=filters.unit or None,
        sector=Sector(filters.sector) if filters.sector else None,
        status=filters.status or None,
        profile=Profile(filters.profile) if filters.profile else None,
        expiring=int(filters.expiring) if filters.expiring else None,
        text=filters.q or None,
    )


@router.get("/certificates", include_in_schema=False)
def certificate_list(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    unit: Text = "",
    sector: Text = "",
    status: Text = "",
    profile: Text = "",
    expiring: Text = "",
    q: Text = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    _ = guard.environment_gettext(request)
    principal = viewer.principal
    filters = _filters(unit, sector, status, profile, expiring, q)
    errors = _check(filters, _)
    total, rows = 0, []
    with ctx.db.read() as session:
        units = organizations.choices_in_view(principal, session)
        if not errors:
            found = certificates.search(
                principal, session, _typed(filters), offset=offset, limit=PAGE_SIZE
            )
            total, rows = found.total, found.rows
    export_query = str(request.url.query)
    export_query = re.sub(r"(^|&)offset=[^&]*", "", export_query).lstrip("&")
    return render(
        request,
        "certificates/list.html",
        {
            "filters": filters,
            "errors": errors,
            "units": units,
            "rows": rows,
            "total": total,
            "offset": offset,
            "limit": PAGE_SIZE,
            "statuses": [(s, labels.label("cert_status", s, _)) for s in SHOWN_STATUSES],
            "export_query": export_query,
        },
        status_code=422 if errors else 200,
    )


# -- export ------------------------------------------------------------------------------------
def _export_rows(
    ctx: Context, principal: Principal, filters: Filters, _: Any
) -> tuple[list[str], list[list[Any]]]:
    with ctx.db.read() as session:
        rows = certificates.search(
            principal, session, _typed(filters), limit=EXPORT_LIMIT, count=False
        ).rows
    header = [
        _("Serial number"),
        _("Certificate holder"),
        _("Subject"),
        _("Unit"),
        _("Sector"),
        _("Kind"),
        _("Status"),
        _("Valid from"),
        _("Valid until"),
        _("Days left"),
        _("Revoked or suspended at"),
        _("Reason"),
    ]
    names: dict[tuple[str, str | None], str] = {}

    def name(kind: str, value: str | None) -> str:  # one lookup per distinct value
        if value is None:
            return ""
        key = (kind, value)
        if key not in names:
            names[key] = labels.label(kind, value, _)
        return names[key]

    def local(moment: datetime | None) -> datetime | None:
        return clock.local(moment).replace(tzinfo=None) if moment is not None else None

    body = [
        [
            r.serial,
            r.holder,
            r.subject,
            r.unit_name or "",
            name("sector", r.sector),
            name("profile", r.profile),
            name("cert_status", r.status),
            local(r.not_before),
            local(r.not_after),
            max(r.days_left, 0) if r.status == "good" else None,
            local(r.revoked_at),
            name("reason", r.reason),
        ]
        for r in rows
    ]
    return header, body


def _export_filters(
    request: Request, unit: str, sector: str, status: str, profile: str, expiring: str, q: str
) -> Filters:
    _ = guard.environment_gettext(request)
    filters = _filters(unit, sector, status, profile, expiring, q)
    errors = _check(filters, _)
    if errors:
        raise InvalidInput("; ".join(errors.values()), vi="; ".join(errors.values()))
    return filters


def _filename(kind: str) -> str:
    return f"chung-thu-so-{clock.local(clock.now()):%Y%m%d-%H%M}.{kind}"


@router.get("/certificates/export.xlsx", include_in_schema=False)
def export_xlsx(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    unit: Text = "",
    sector: Text = "",
    status: Text = "",
    profile: Text = "",
    expiring: Text = "",
    q: Text = "",
) -> Response:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    _ = guard.environment_gettext(request)
    filters = _export_filters(request, unit, sector, status, profile, expiring, q)
    header, body = _export_rows(ctx, viewer.principal, filters, _)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(_("Certificates"))
    widths = (34, 28, 60, 34, 18, 18, 14, 17, 17, 10, 17, 22)
    for index, width in enumerate(widths):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    titles = []
    for title in header:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        titles.append(cell)
    sheet.append(titles)
    for values in body:
        cells: list[Any] = []
        for value in values:
            if isinstance(value, str) and value.startswith("="):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # a name starting with "=" stays text, never a formula
                cells.append(cell)
            elif isinstance(value, datetime):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "DD/MM/YYYY HH:MM"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return _download(
        request,
        out.getvalue(),
        spreadsheets.Format.XLSX.media_type,
        _filename("xlsx"),
    )


@router.get("/certificates/export.csv", include_in_schema=False)
def export_csv(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    unit: Text = "",
    sector: Text = "",
    status: Text = "",
    profile: Text = "",
    expiring: Text = "",
    q: Text = "",
) -> Response:
    _ = guard.environment_gettext(request)
    filters = _export_filters(request, unit, sector, status, profile, expiring, q)
    header, body = _export_rows(ctx, viewer.principal, filters, _)
    return _download(
        request, spreadsheets.csv_table(header, body), "text/csv; charset=utf-8", _filename("csv")
    )


def _download(request: Request, content: bytes, media_type: str, filename: str) -> Response:
    response = Response(
        content,
        media_type=media_type,
        headers={"content-disposition": content_disposition(filename)},
    )
    guard.finish(request, response)
    return response


# -- one certificate ---------------------------------------------------------------------------
def _find(ctx: Context, serial: str, principal: Principal, action: Action) -> Certificate:
    """The certificate, if the viewer may do ``action`` on it (the service's check)."""
    with ctx.db.read() as session:
        return certificates.get(principal, session, serial, action)


def _uses(cert: x509.Certificate, _: Any) -> list[str]:
    """What the certificate may be used for, in plain words, from its key usage and
    extended key usage (RFC 5280 §4.2.1.3, §4.2.1.12)."""
    uses: list[str] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    try:
        eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = set()
    if ku is not None and ku.key_cert_sign:
        uses.append(_("Issuing other certificates (a certificate authority)"))
    if ku is not None and ku.crl_sign:
        uses.append(_("Signing lists of revoked certificates"))
    if ku is not None and ku.digital_signature and not (ku.key_cert_sign or eku):
        uses.append(_("Digital signatures"))
    if ku is not None and ku.content_commitment:
        uses.append(
            _("Signing documents: the holder cannot later deny having signed (non-repudiation)")
        )
    if ExtendedKeyUsageOID.EMAIL_PROTECTION in eku:
        uses.append(_("Signing and encrypting e-mail"))
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku:
        uses.append(_("Logging in to systems that accept digital certificates"))
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        uses.append(_("Identifying a server or service (HTTPS)"))
    if ExtendedKeyUsageOID.TIME_STAMPING in eku:
        uses.append(_("Time-stamping documents"))
    if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
        uses.append(_("Answering certificate status queries (OCSP)"))
    if ku is not None and (ku.key_encipherment or ku.key_agreement):
        uses.append(_("Receiving encrypted documents"))
    return uses


def _key_place(location: str, device: KeyDevice | None, _: Any) -> str:
    """Where the private key lives, by kind only: never a key id, label or PIN."""
    if central.is_central(location):
        return _("In the central signing HSM")
    if location.startswith("token:") or (device is not None and location == "csr"):
        return _("On a USB token held by the subscriber")
    if location.startswith("pkcs11:"):
        return _("In the CA's hardware security module (HSM), for signing on the server")
    if location.startswith("software:"):
        return _("On the kyso server, for signing on the server")
    if location == "pkcs12":
        return _("Given to the subscriber as a protected PKCS#12 file")
    if location == "csr":
        return _("With the subscriber: the key was made on their own device and never left it")
    return _("Not recorded")


def _detail(
    request: Request,
    ctx: Context,
    viewer: Any,
    serial: str,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    _ = guard.environment_gettext(request)
    with ctx.db.read() as session:
        found = certificates.detail(viewer.principal, session, serial)
    row, org, person, device = found.cert, found.organization, found.person, found.device
    events, names, request_id = found.events, found.actor_names, found.request_id
    cert = x509.load_der_x509_certificate(row.der)
    now = clock.now()
    issuer_cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    shown = shown_status(row.status, row.not_after, now)
    context = {
        "cert": row,
        "serial_colons": colons(int(row.serial, 16).to_bytes((len(row.serial) + 1) // 2, "big")),
        "holder": person.full_name if person else common_name(row.subject),
        "person": person,
        "position": person.position if person else None,
        "org": org,
        "device": device,
        "status": shown,
        "days_left": (row.not_after - now).days,
        "uses": _uses(cert, _),
        "key_place": _key_place(row.key_location, device, _),
        "issuer": str(issuer_cn[0].value) if issuer_cn else cert.issuer.rfc4514_string(),
        "issuer_id": row.issuer_id,
        "sha256": colons(hashlib.sha256(row.der).digest()),
        "sha1": colons(hashlib.sha1(row.der, usedforsecurity=False).digest()),
        "key_text": key_text(cert),
        "ca_own": found.ca_own,
        "emails": _emails(cert),
        "events": [
            {
                "at": e.at,
                "kind": _(EVENT_NAMES.get(e.kind.value, e.kind.value)),
                "kind_value": e.kind.value,
                "reason": e.reason.value if e.reason else None,
                "actor": names.get(e.actor, e.actor),
                "note": e.note,
            }
            for e in events
        ],
        "request_id": request_id,
        "reasons": [("", _("— choose a reason —"))]
        + [(r.value, labels.label("reason", r, _)) for r in REVOKE_REASONS],
        "errors": errors or {},
        "form": form or {},
        "seal": _seal_view(ctx, viewer.principal, row) if delegates.is_central_seal(row) else None,
    }
    return render(request, "certificates/detail.html", context, status_code=status_code)


def _seal_view(ctx: Context, principal: Principal, row: Certificate) -> delegates.SealView:
    with ctx.db.read() as session:
        return delegates.view(principal, session, row.serial)


def colons(data: bytes) -> str:
    """Bytes as certificate viewers show them: 3A:F0:…"""
    return ":".join(f"{b:02X}" for b in data)


def key_text(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bit"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__


def _emails(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.RFC822Name))


@router.get("/certificates/{serial}", include_in_schema=False)
def certificate_page(request: Request, ctx: Ctx, viewer: SignedIn, serial: str) -> Response:
    return _detail(request, ctx, viewer, serial)


# -- downloads (what GET /api/v1/certificates/{serial}/pem serves, for a logged-in browser) ---
def _pem_chain(ctx: Context, row: Certificate) -> bytes:
    """The certificate, then the CA that issued it, then the root (each once: a CA's own
    certificate is not repeated)."""
    chain = [row.der]
    issuer = ctx.authority.identity_by_id(row.issuer_id)
    root = ctx.authority.identity(IdentityRole.ROOT)
    for der in (issuer.der, root.der):
        if der not in chain:
            chain.append(der)
    return b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in chain)


@router.get("/certificates/{serial}/certificate.pem", include_in_schema=False)
def download_pem(request: Request, ctx: Ctx, viewer: SignedIn, serial: str) -> Response:
    row = _find(ctx, serial, viewer.principal, Action.CERT_READ)
    pem = x509.load_der_x509_certificate(row.der).public_bytes(Encoding.PEM)
    return _download(request, pem, "application/x-pem-file", f"{row.serial}.pem")


@router.get("/certificates/{serial}/certificate.cer", include_in_schema=False)
def download_der(request: Request, ctx: Ctx, viewer: SignedIn, serial: str) -> Response:
    row = _find(ctx, serial, viewer.principal, Action.CERT_READ)
    return _download(request, row.der, "application/pkix-cert", f"{row.serial}.cer")


@router.get("/certificates/{serial}/chain.pem", include_in_schema=False)
def download_chain(request: Request, ctx: Ctx, viewer: SignedIn, serial: str) -> Response:
    row = _find(ctx, serial, viewer.principal, Action.CERT_READ)
    return _download(
        request,
        _pem_chain(ctx, row),
        "application/pem-certificate-chain",
        f"{row.serial}-chain.pem",
    )


# -- suspend / restore / revoke ----------------------------------------------------------------
def _change(
    request: Request,
    ctx: Context,
    viewer: Any,
    serial: str,
    action: str,
    *,
    reason: RevocationReason | None = None,
    note: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    _ = guard.environment_gettext(request)
    who = viewer.principal
    row = _find(ctx, serial, who, Action.CERT_REVOKE)
    try:
        with ctx.db.session() as session:
            if action == "suspend":
                certificates.suspend(who, session, ctx.authority, row.serial, note)
            elif action == "restore":
                certificates.restore(who, session, ctx.authority, row.serial, note)
            else:
                assert reason is not None
                certificates.revoke(who, session, ctx.authority, row.serial, reason, note)
    except NotFound:
        raise
    except KysoError as exc:
        return _detail(
            request,
            ctx,
            viewer,
            row.serial,
            errors={"form": exc.message(guard.language(request))},
            form=form,
            status_code=exc.http_status,
        )
    done = {
        "suspend": _("The certificate is suspended. It can be restored later."),
        "restore": _("The certificate is valid again."),
        "revoke": _("The certificate is revoked."),
    }[action]
    return guard.redirect(request, f"/certificates/{row.serial}", done)


def _clean_note(note: str) -> str | None:
    return note.strip() or None


@router.post("/certificates/{serial}/suspend", include_in_schema=False)
def suspend(
    request: Request, ctx: Ctx, viewer: SignedIn, serial: str, hold_note: Note = ""
) -> Response:
    _ = guard.environment_gettext(request)
    if "\x00" in hold_note:
        _find(ctx, serial, viewer.principal, Action.CERT_REVOKE)
        return _detail(
            request,
            ctx,
            viewer,
            serial,
            errors={"hold_note": _("The note contains a character that cannot be stored.")},
            status_code=422,
        )
    return _change(request, ctx, viewer, serial, "suspend", note=_clean_note(hold_note))


@router.post("/certificates/{serial}/restore", include_in_schema=False)
def restore(request: Request, ctx: Ctx, viewer: SignedIn, serial: str) -> Response:
    return _change(request, ctx, viewer, serial, "restore")


@router.post("/certificates/{serial}/revoke", include_in_schema=False)
def revoke(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    serial: str,
    reason: Annotated[str, Form(max_length=100)] = "",
    note: Note = "",
) -> Response:
    _ = guard.environment_gettext(request)
    # Who may revoke is checked before the form is: an officer learns nothing from a 422.
    _find(ctx, serial, viewer.principal, Action.CERT_REVOKE)
    errors: dict[str, str] = {}
    chosen = next((r for r in REVOKE_REASONS if r.value == reason), None)
    if not reason:
        errors["reason"] = _("Choose why the certificate is revoked.")
    elif chosen is None:
        errors["reason"] = _("Choose one of the reasons in the list.")
    if "\x00" in note:
        errors["note"] = _("The note contains a character that cannot be stored.")
    form = {"reason": reason, "note": note.replace("\x00", "")}
    if errors:
        return _detail(request, ctx, viewer, serial, errors=errors, form=form, status_code=422)
    return _change(
        request, ctx, viewer, serial, "revoke", reason=chosen, note=_clean_note(note), form=form
    )


# -- the users of a central seal -----------------------------------------------------------
Username = Annotated[str, Form(max_length=100)]


def _delegates_changed(
    request: Request, ctx: Context, viewer: Any, serial: str, change: Any, done: str
) -> Response:
    """Grant or revoke through the service; a refusal is shown next to the seal's list."""
    try:
        with ctx.db.session() as session:
            change(session)
    except KysoError as exc:
        if exc.http_status in (401, 403) or (
            exc.http_status == 404 and not isinstance(exc, delegates.NotADelegate)
        ):
            raise
        return _detail(
            request,
            ctx,
            viewer,
            serial,
            errors={"username": exc.message(guard.language(request))},
            status_code=exc.http_status,
        )
    return guard.redirect(request, f"/certificates/{serial}", done)


@router.post("/certificates/{serial}/delegates", include_in_schema=False)
def grant_delegate(
    request: Request, ctx: Ctx, viewer: SignedIn, serial: str, username: Username = ""
) -> Response:
    _ = guard.environment_gettext(request)
    if not username.strip():
        with ctx.db.read() as session:  # the right first: nobody learns more from a 422
            delegates.candidates(viewer.principal, session, serial)
        return _detail(
            request,
            ctx,
            viewer,
            serial,
            errors={"username": _("Choose a user of the unit.")},
            status_code=422,
        )
    return _delegates_changed(
        request,
        ctx,
        viewer,
        serial,
        lambda session: delegates.grant(viewer.principal, session, serial, username),
        _("The user may now apply the seal (each time approved on their phone)."),
    )


@router.post("/certificates/{serial}/delegates/{username}/revoke", include_in_schema=False)
def revoke_delegate(
    request: Request, ctx: Ctx, viewer: SignedIn, serial: str, username: str
) -> Response:
    _ = guard.environment_gettext(request)
    return _delegates_changed(
        request,
        ctx,
        viewer,
        serial,
        lambda session: delegates.revoke(viewer.principal, session, serial, username),
        _("The user may no longer apply the seal."),
    )
