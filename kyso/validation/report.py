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
    message_vi: str = ""
    message_en: str = ""

    def message(self, lang: str = "vi") -> str:
        return self.message_vi if lang == "vi" else self.message_en


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
        if not self.signatures:
            return Indication.TOTAL_FAILED
        order = [Indication.TOTAL_FAILED, Indication.INDETERMINATE, Indication.TOTAL_PASSED]
        return min((s.indication for s in self.signatures), key=order.index)

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["indication"] = self.indication.value
        return _jsonable(data)


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
