"""One validation report for every format (ETSI EN 319 102-1 indications).

PAdES, CAdES, XAdES and S/MIME validators all fill this model; the CLI prints it, the API
returns it as JSON, the web page and the PDF report render it. Each signature ends with a
sentence a records clerk can act on, in Vietnamese and in English.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class Indication(enum.StrEnum):
    TOTAL_PASSED = "TOTAL-PASSED"
    TOTAL_FAILED = "TOTAL-FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(enum.StrEnum):
    """EN 319 102-1 §5.1.3 sub-indications kyso reports."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    TRY_LATER = "TRY_LATER"
    REVOCATION_OUT_OF_BOUNDS_NO_POE = "REVOCATION_OUT_OF_BOUNDS_NO_POE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    POLICY_PROCESSING_ERROR = "POLICY_PROCESSING_ERROR"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"


class RevocationStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    SUSPENDED = "suspended"  # revoked with certificateHold
    UNKNOWN = "unknown"
    NOT_CHECKED = "not-checked"


@dataclass
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CertificateInfo | None:
        if not data:
            return None
        return cls(
            subject=data["subject"],
            issuer=data["issuer"],
            serial=data["serial"],
            not_before=datetime.fromisoformat(data["not_before"]),
            not_after=datetime.fromisoformat(data["not_after"]),
        )


@dataclass
class RevocationEvidence:
    status: RevocationStatus
    source: str  # "ocsp-embedded", "crl-embedded", "ocsp-fetched", "crl-fetched", "kyso-ca", "none"
    checked_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None


@dataclass
class Modification:
    """What changed in a PDF after a signature (pyHanko's difference analysis)."""

    allowed: bool
    description: str


class ScopeKind(enum.StrEnum):
    """What part of the input a signature covers (after EU DSS's signature scopes)."""

    FULL = "full"  # the whole document as received
    PARTIAL = "partial"  # part of it: an element, an earlier revision, some bytes
    DETACHED = "detached"  # data outside the signed file (a detached .p7s and its original)
    SIGNATURE = "signature"  # another signature's value (a countersignature, RFC 5652 §11.4)
    NOTHING = "nothing"  # the signature covers none of what was received


@dataclass
class SignatureScope:
    """One thing a signature covers, said so that a reader knows what is vouched for."""

    kind: ScopeKind
    description_vi: str
    description_en: str

    def description(self, lang: str = "vi") -> str:
        return self.description_vi if lang == "vi" else self.description_en


@dataclass
class Note:
    """Something found in a signature that does not change its verdict but that a reader
    should know (an attribute that could not be read, one kyso does not interpret)."""

    text_vi: str
    text_en: str

    def text(self, lang: str = "vi") -> str:
        return self.text_vi if lang == "vi" else self.text_en


@dataclass
class SignatureReport:
    indication: Indication
    sub_indication: SubIndication | None
    signer: CertificateInfo | None
    format: str  # "PAdES-B-B", "CAdES-B-T", "XAdES-B-B", "S/MIME", …
    field_name: str | None = None
    claimed_signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    timestamp_trusted: bool | None = None
    integrity: bool = False
    chain: list[CertificateInfo] = field(default_factory=list)
    trusted_chain: bool = False
    revocation: RevocationEvidence | None = None
    modifications: list[Modification] = field(default_factory=list)
    # What the signature covers; a signature whose scope is not the whole document is never
    # TOTAL-PASSED for the document (the reader would believe more is signed than is).
    scope: list[SignatureScope] = field(default_factory=list)
    # Signatures over this signature (CMS countersignatures, RFC 5652 §11.4), each judged.
    counter_signatures: list[SignatureReport] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    message_vi: str = ""
    message_en: str = ""

    def message(self, lang: str = "vi") -> str:
        return self.message_vi if lang == "vi" else self.message_en

    @classmethod
    def from_dict(cls, s: dict[str, Any]) -> SignatureReport:
        rev = s.get("revocation")
        return cls(
            indication=Indication(s["indication"]),
            sub_indication=SubIndication(s["sub_indication"]) if s.get("sub_indication") else None,
            signer=CertificateInfo.from_dict(s.get("signer")),
            format=s["format"],
            field_name=s.get("field_name"),
            claimed_signing_time=_dt(s.get("claimed_signing_time")),
            timestamp_time=_dt(s.get("timestamp_time")),
            timestamp_trusted=s.get("timestamp_trusted"),
            integrity=bool(s.get("integrity")),
            chain=[c for c in (CertificateInfo.from_dict(c) for c in s.get("chain") or []) if c],
            trusted_chain=bool(s.get("trusted_chain")),
            revocation=RevocationEvidence(
                status=RevocationStatus(rev["status"]),
                source=rev["source"],
                checked_at=_dt(rev.get("checked_at")),
                revoked_at=_dt(rev.get("revoked_at")),
                reason=rev.get("reason"),
            )
            if rev
            else None,
            modifications=[
                Modification(bool(m["allowed"]), m["description"])
                for m in s.get("modifications") or []
            ],
            scope=[
                SignatureScope(ScopeKind(x["kind"]), x["description_vi"], x["description_en"])
                for x in s.get("scope") or []
            ],
            counter_signatures=[cls.from_dict(c) for c in s.get("counter_signatures") or []],
            notes=[Note(n["text_vi"], n["text_en"]) for n in s.get("notes") or []],
            message_vi=s.get("message_vi", ""),
            message_en=s.get("message_en", ""),
        )


@dataclass
class ValidationReport:
    """The whole answer for one input: the worst indication of its signatures."""

    document: str
    document_kind: str  # "pdf", "cms", "xml", "email"
    signatures: list[SignatureReport]
    validated_at: datetime
    message_vi: str = ""
    message_en: str = ""

    @property
    def indication(self) -> Indication:
        """The worst verdict of all signatures, countersignatures included: as EU DSS does,
        a countersignature is a signature of its own, and one that fails means not every
        signature on the document is valid."""
        if not self.signatures:
            return Indication.TOTAL_FAILED
        order = [Indication.TOTAL_FAILED, Indication.INDETERMINATE, Indication.TOTAL_PASSED]
        return min((s.indication for s in self.all_signatures()), key=order.index)

    def all_signatures(self) -> list[SignatureReport]:
        """Every signature, each followed by its countersignatures (depth first)."""
        found: list[SignatureReport] = []

        def walk(sigs: list[SignatureReport]) -> None:
            for sig in sigs:
                found.append(sig)
                walk(sig.counter_signatures)

        walk(self.signatures)
        return found

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["indication"] = self.indication.value
        return _jsonable(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The report back from :meth:`to_dict` (pages keep reports as JSON for an hour)."""
        validated_at = _dt(data["validated_at"])
        assert validated_at is not None
        return cls(
            document=data["document"],
            document_kind=data["document_kind"],
            signatures=[SignatureReport.from_dict(s) for s in data["signatures"]],
            validated_at=validated_at,
            message_vi=data.get("message_vi", ""),
            message_en=data.get("message_en", ""),
        )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value
