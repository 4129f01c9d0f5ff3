"""Plain-word names for the stored codes (sector, role, status …), in the page's language.

Templates call ``label("sector", org.sector)``; the names are marked with ``N_`` so the
catalog test finds them, and translated when a page is drawn."""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:
    return message


LABELS: dict[str, dict[str, str]] = {
    "sector": {
        "government": N_("Government"),
        "health": N_("Health"),
        "education": N_("Education"),
        "party_front": N_("Party, Front and unions"),
        "other": N_("Other"),
    },
    "org_kind": {
        "province": N_("Province"),
        "department": N_("Department"),
        "district": N_("District"),
        "commune": N_("Commune"),
        "hospital": N_("Hospital"),
        "health_centre": N_("Health centre"),
        "health_station": N_("Health station"),
        "school": N_("School"),
        "association": N_("Association"),
        "other": N_("Other"),
    },
    "role": {
        "province_admin": N_("Province administrator"),
        "unit_officer": N_("Unit certificate officer"),
        "signer": N_("Signer"),
        "auditor": N_("Auditor"),
    },
    "profile": {
        "organization": N_("Organization"),
        "individual": N_("Individual"),
        "device": N_("Device or service"),
        "tsa": N_("Time-stamping"),
        "ocsp": N_("OCSP responder"),
        "sub-ca": N_("Issuing CA"),
        "root-ca": N_("Root CA"),
        "audit": N_("Audit log signing"),
    },
    "cert_status": {
        "good": N_("Valid"),
        "suspended": N_("Suspended"),
        "revoked": N_("Revoked"),
        "expired": N_("Expired"),
    },
    "reason": {
        "unspecified": N_("Unspecified"),
        "key-compromise": N_("Key compromised"),
        "ca-compromise": N_("CA compromised"),
        "affiliation-changed": N_("Affiliation changed"),
        "superseded": N_("Superseded"),
        "cessation-of-operation": N_("Ceased operation"),
        "certificate-hold": N_("On hold"),
        "remove-from-crl": N_("Removed from the CRL"),
        "privilege-withdrawn": N_("Privilege withdrawn"),
        "aa-compromise": N_("Attribute authority compromised"),
    },
    "request_type": {
        "new_individual": N_("New individual certificate (form 01)"),
        "new_organization": N_("New organization certificate (form 02)"),
        "device_service": N_("Device or service certificate (form 03)"),
        "renewal_change": N_("Renewal or change of information (form 04)"),
        "revocation": N_("Revocation (form 05)"),
        "device_unlock": N_("Unlocking a key device (form 06)"),
    },
    "request_state": {
        "draft": N_("Draft"),
        "submitted": N_("Awaiting approval"),
        "approved": N_("Approved"),
        "rejected": N_("Rejected"),
        "issued": N_("Issued"),
        "handed_over": N_("Handed over"),
        "cancelled": N_("Cancelled"),
    },
    "signature_state": {
        "waiting": N_("Waiting for the signature"),
        "signed": N_("Signed"),
        "declined": N_("Declined"),
    },
    "device_kind": {"usb_token": N_("USB token"), "hsm_slot": N_("HSM slot")},
    "device_status": {
        "in_stock": N_("In stock"),
        "issued": N_("Handed out"),
        "locked": N_("Locked"),
        "lost": N_("Lost"),
        "returned": N_("Returned"),
        "destroyed": N_("Destroyed"),
    },
}


def options(kind: str, gettext: Any) -> list[tuple[str, str]]:
    """(value, translated name) pairs for a <select>."""
    return [(value, gettext(name)) for value, name in LABELS[kind].items()]


def label(kind: str, value: Any, gettext: Any) -> str:
    if value is None:
        return "—"
    key = getattr(value, "value", value)
    name = LABELS.get(kind, {}).get(str(key))
    return gettext(name) if name else str(key)
