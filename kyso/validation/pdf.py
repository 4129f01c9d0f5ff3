"""PDF (PAdES) validation into kyso's report model (ETSI EN 319 102-1 indications).

For each signature and document time-stamp, in signing order: who signed; the claimed signing
time and the time-stamped time; integrity of the signed bytes; the chain to kyso's trust
anchors; the revocation status at the signing time with the evidence it came from (the
document's DSS, kyso's own CA, or none); what changed in the document after the signature
(pyHanko's difference analysis: signatures, form filling and validation data are allowed,
anything else is not); the ETSI indication and sub-indication; and a sentence in Vietnamese
and English (:mod:`kyso.validation.messages`).

Scope: each signature says what it covers (the whole file, or revision r of R: bytes 0–N of
M, with what came after). Bytes after the end of the last revision (after its ``%%EOF``) belong
to no revision: readers that repair files may still show them, so no signature of such a file
is "not changed after signing" (Mladenov et al., "1 Trillion Dollar Refund", CCS 2019).

Reading: strict first, as pyHanko's strict reader; a file it refuses but its lenient reader
accepts (a ``startxref`` a few bytes off, hybrid cross-references) is read leniently, as PDF
readers and poppler do, and the report notes it. A signature pyHanko raises on is INDETERMINATE
with the reason: nothing proved it invalid.

Cost: the caller may bound the signatures and revisions of a file (:class:`PdfLimits`, counted
before anything is verified); each revision is compared once with the one before it
(:mod:`kyso.validation.pdf_changes`), and the reports keep no reference to the parsed file.

Time: the best signature time is the time-stamp's when one is present and trusted; a
certificate revoked or expired after that time still passes (checked again "in the past" at
that time). Without a time-stamp nothing proves when the document was signed (the claimed
time is the signer's word): revoked before the claimed time is TOTAL-FAILED/REVOKED, revoked
after it is INDETERMINATE/REVOKED_NO_POE, suspended (certificateHold) is
INDETERMINATE/TRY_LATER.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
    collect_embedded_signatures,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from kyso import clock
from kyso.errors import KysoError
from kyso.formats.pdf import InvalidPdf, check_pdf_bytes
from kyso.trust import TrustContext
from kyso.validation import messages
from kyso.validation.cms import path_failure
from kyso.validation.pdf_changes import Changes, RevisionByRevision
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    Modification,
    Note,
    RevocationEvidence,
    RevocationStatus,
    ScopeKind,
    SignatureReport,
    SignatureScope,
    SubIndication,
    ValidationReport,
)

if TYPE_CHECKING:
    from kyso.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "PdfLimits",
    "TooComplexPdf",
    "async_validate_pdf",
    "validate_pdf",
    "validation_context",
]


@dataclass(frozen=True)
class PdfLimits:
    """How much of a PDF one validation looks at (None: no bound). Anonymous validation is
    bounded (``KYSO_VERIFY_MAX_SIGNATURES``, ``KYSO_VERIFY_MAX_REVISIONS``); the CLI is not."""

    signatures: int | None = None
    revisions: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PdfLimits:
        """The public limits (0: no bound)."""
        return cls(settings.verify_max_signatures or None, settings.verify_max_revisions or None)


class TooComplexPdf(InvalidPdf):
    code = "pdf_too_complex"
    message_vi = "Tệp PDF có nhiều chữ ký hoặc phiên bản hơn mức kiểm tra được tại đây."
    message_en = "The PDF has more signatures or revisions than can be validated here."


# PAdES baseline signers use nonRepudiation and/or digitalSignature.
_KEY_USAGE = KeyUsageConstraints(
    key_usage={"non_repudiation", "digital_signature"}, match_all_key_usages=False
)


def validation_context(
    trust: TrustContext,
    *,
    certs: list[x509.Certificate],
    moment: datetime | None = None,
    extra_crls: list[bytes] | None = None,
    extra_ocsps: list[bytes] | None = None,
    extra_certs: list[asn1_x509.Certificate] | None = None,
) -> ValidationContext:
    """kyso's validation context (its anchors and CA evidence) plus a document's evidence."""
    context = trust.validation_context(
        moment=moment, for_certs=certs, extra_crls=list(extra_crls or []), extra_ocsps=extra_ocsps
    )
    for cert in extra_certs or []:
        context.certificate_registry.register(cert)
    return context


# -- reading --------------------------------------------------------------------------------


_HYBRID = Note(
    "tệp dùng tham chiếu chéo kiểu lai (bảng và luồng /XRefStm); kyso đọc như các trình đọc "
    "PDF hiện nay",
    "the file has hybrid cross-references (a table and an /XRefStm stream); kyso reads them as "
    "current PDF readers do",
)
_REPAIRED = Note(
    "dữ liệu tham chiếu chéo của tệp không chuẩn (ví dụ vị trí startxref lệch); kyso đọc tệp "
    "theo cách các trình đọc PDF tự sửa",
    "the file's cross-reference data is irregular (e.g. a startxref a few bytes off); kyso "
    "reads it as PDF readers repair it",
)


def _open(data: bytes, strict: bool) -> PdfFileReader:
    reader = PdfFileReader(io.BytesIO(data), strict=strict)
    if reader.encrypted:
        # Signed PDFs are often "encrypted" with an empty user password (permissions only).
        result = reader.decrypt("")
        if getattr(result, "status", None) is not None and result.status.name == "FAILED":
            raise InvalidPdf(
                "the PDF is protected by a password",
                vi="tệp PDF được bảo vệ bằng mật khẩu",
            )
    _ = reader.root["/Pages"]
    return reader


def _reader(data: bytes) -> tuple[PdfFileReader, Note | None]:
    """The reader, and a note when the file had to be read leniently."""
    check_pdf_bytes(data)
    try:
        reader = _open(data, strict=True)
        if not reader.xrefs.hybrid_xrefs_present:
            return reader, None
        # pyHanko's strict validation refuses hybrid cross-references outright; poppler and
        # Acrobat read them (Word writes them), and the signature covers them as they are.
        return _open(data, strict=False), _HYBRID
    except KysoError:
        raise
    except MemoryError:  # the caller's memory budget ran out: not a verdict
        raise
    except Exception:  # noqa: S110 - tried again leniently below
        pass
    try:
        return _open(data, strict=False), _REPAIRED
    except KysoError:
        raise
    except MemoryError:  # the caller's memory budget ran out: not a verdict
        raise
    except Exception as exc:
        raise InvalidPdf("the PDF cannot be read", vi="không đọc được tệp PDF") from exc


_EOF = re.compile(rb"%%EOF(\r\n|\r|\n)?")
_BLANK = frozenset(b" \t\r\n\f\x00")


@dataclass
class _Document:
    """What every signature of one file shares: its size, revisions, the end of its last
    revision, how it was read, and one analysis of its changes."""

    size: int
    revisions: int
    end: int  # just after the last revision's %%EOF (and its end of line)
    blank_tail: bool
    lenient: Note | None
    changes: Changes
    policy: RevisionByRevision

    @classmethod
    def of(cls, reader: PdfFileReader, data: bytes, lenient: Note | None) -> _Document:
        xrefs = reader.xrefs
        end = 0
        for revision in range(xrefs.total_revisions):
            start = xrefs.get_xref_container_info(revision).end_location
            found = _EOF.search(data, start)
            if found is not None:
                end = max(end, found.end())
        if end == 0:  # no marker after any cross-reference section (a repaired file)
            end = len(data)
        return cls(
            size=len(data),
            revisions=xrefs.total_revisions,
            end=end,
            blank_tail=all(b in _BLANK for b in data[end:]),
            lenient=lenient,
            changes=Changes(reader),
            policy=RevisionByRevision(),
        )

    def tail(self) -> list[Modification]:
        """Bytes after the last revision that are not blank: no signature covers them."""
        count = self.size - self.end
        if count <= 0 or self.blank_tail:
            return []
        return [
            Modification(
                False,
                f"{count} byte sau điểm kết thúc của phiên bản cuối (byte {self.end}–{self.size})"
                " không được chữ ký nào bao phủ và không thuộc phiên bản nào; trình đọc PDF tự "
                f"sửa tệp có thể hiển thị chúng — {count} bytes after the end of the last "
                f"revision (bytes {self.end}–{self.size}) are not covered by any signature and "
                "belong to no revision; a PDF reader that repairs files may show them",
            )
        ]


class _Dss:
    """The document security store: evidence embedded for long-term validation."""

    def __init__(self, reader: PdfFileReader) -> None:
        self.ocsps: list[bytes] = []
        self.crls: list[bytes] = []
        self.certs: list[asn1_x509.Certificate] = []
        try:
            dss = DocumentSecurityStore.read_dss(reader)
            ocsps = [ref.get_object().data for ref in dss.ocsps]
            crls = [ref.get_object().data for ref in dss.crls]
            certs = list(dss.load_certs())
        except NoDSSFoundError:
            return
        except MemoryError:
            raise
        except Exception:  # a broken DSS is ignored: validation goes on without it
            log.warning("unreadable DSS", exc_info=True)
            return
        self.ocsps, self.crls, self.certs = ocsps, crls, certs

    def ocsp_for(self, cert: asn1_x509.Certificate) -> asn1_ocsp.OCSPResponse | None:
        serial = cert.serial_number
        for der in self.ocsps:
            try:
                response = asn1_ocsp.OCSPResponse.load(der)
                basic = response["response_bytes"]["response"].parsed
                for single in basic["tbs_response_data"]["responses"]:
                    if single["cert_id"]["serial_number"].native == serial:
                        return response
            except Exception:  # noqa: S112 - unreadable evidence is no evidence
                continue
        return None

    def crl_for(self, cert: asn1_x509.Certificate) -> asn1_crl.CertificateList | None:
        for der in self.crls:
            try:
                crl = asn1_crl.CertificateList.load(der)
                if crl["tbs_cert_list"]["issuer"] == cert.issuer and not crl.delta_crl_indicator:
                    return crl
            except Exception:  # noqa: S112
                continue
        return None


# -- report pieces --------------------------------------------------------------------------


def _plain(text: object) -> str | None:
    """A plain ``str``: pyHanko's strings remember the object they were read from, and through
    it the whole parsed document, which a report must not keep alive."""
    return None if text is None else str(text)


def _crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def _ours(cert: asn1_x509.Certificate) -> list[x509.Certificate]:
    """The certificate for kyso's own revocation evidence; none when ``cryptography`` refuses
    its encoding (such a certificate is not kyso's, and pyHanko reads it leniently)."""
    try:
        return [_crypto(cert)]
    except ValueError:
        return []


_NAME_KEYS = {
    "common_name": "CN",
    "organizational_unit_name": "OU",
    "organization_name": "O",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "country_name": "C",
    "email_address": "E",
    "serial_number": "SERIALNUMBER",
}


def _rfc4514(name) -> str:
    parts = []
    for rdn in reversed(list(name.chosen)):
        for attribute in rdn:
            key = attribute["type"].native
            value = attribute["value"].native
            parts.append(f"{_NAME_KEYS.get(key, attribute['type'].dotted)}={value}")
    return ",".join(parts)


def _info(cert: asn1_x509.Certificate) -> CertificateInfo:
    try:
        c = _crypto(cert)
    except ValueError:  # an encoding cryptography refuses: read it as pyHanko does
        validity = cert["tbs_certificate"]["validity"]
        return CertificateInfo(
            subject=_rfc4514(cert.subject),
            issuer=_rfc4514(cert.issuer),
            serial=format(cert.serial_number, "x"),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
        )
    return CertificateInfo(
        subject=c.subject.rfc4514_string(),
        issuer=c.issuer.rfc4514_string(),
        serial=format(c.serial_number, "x"),
        not_before=c.not_valid_before_utc,
        not_after=c.not_valid_after_utc,
    )


def _chain(status, signer: asn1_x509.Certificate, embedded: list) -> list[CertificateInfo]:
    path = getattr(status, "validation_path", None) if status is not None else None
    if path is not None:
        certs = list(path.iter_certs(include_root=True))
        return [_info(c) for c in reversed(certs)]
    return [_info(signer)] + [_info(c) for c in embedded if c.subject == signer.issuer]


def _modifications(emb: EmbeddedPdfSignature, status, doc: _Document) -> list[Modification]:
    coverage = getattr(status, "coverage", None)
    if coverage is None:
        return doc.tail()
    if coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        uncovered = Modification(
            False,
            "Chữ ký không bao phủ trọn phiên bản tài liệu của nó — "
            "the signature does not cover its whole revision",
        )
        return [uncovered, *doc.tail()]
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return []
    diff = status.diff_result
    if diff is None:
        unknown = Modification(
            False,
            "Không phân tích được các thay đổi sau khi ký — "
            "the changes after signing could not be analysed",
        )
        return [unknown, *doc.tail()]
    found = [c.modification() for c in doc.changes.after(emb.signed_revision, diff)]
    return found + doc.tail()


def _modifications_ok(status, modifications: list[Modification]) -> bool:
    if getattr(status, "docmdp_ok", None) is False:
        return False
    return all(m.allowed for m in modifications)


def _range_in_file(emb: EmbeddedPdfSignature, size: int) -> bool:
    """Whether the /ByteRange names two ranges of this file, in order (a range past the end of
    the file or overlapping the first makes "intact" meaningless: EU DSS reports such a
    signature not intact)."""
    try:
        start1, length1, start2, length2 = (int(x) for x in emb.byte_range)
    except (TypeError, ValueError, KeyError):
        return False
    return (
        start1 == 0
        and length1 >= 0
        and length2 >= 0
        and start2 >= start1 + length1
        and start2 + length2 <= size
    )


def _scope(emb: EmbeddedPdfSignature, status, doc: _Document) -> list[SignatureScope]:
    """What the signature covers, in bytes and revisions (after EU DSS's "Partial PDF")."""
    size = doc.size
    coverage = getattr(status, "coverage", None)
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return [
            SignatureScope(
                ScopeKind.FULL,
                f"toàn bộ tệp (byte 0–{size}, trừ giá trị chữ ký)",
                f"the whole file (bytes 0–{size}, apart from the signature value)",
            )
        ]
    try:
        ranges = [int(x) for x in emb.byte_range]
        end = ranges[-2] + ranges[-1] if len(ranges) >= 2 else 0
    except (TypeError, ValueError, KeyError):
        end = 0
    number, total = emb.signed_revision + 1, doc.revisions
    vi = f"phiên bản {number} trên {total}: byte 0–{end} trên {size}"
    en = f"revision {number} of {total}: bytes 0–{end} of {size}"
    if coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        vi += ", không trọn phiên bản đó"
        en += ", not the whole of that revision"
    later = total - number
    if later:
        vi += f"; sau đó có {later} phiên bản khác (xem các thay đổi sau khi ký)"
        en += f"; {later} later revision{'s' if later > 1 else ''} (see the changes after signing)"
    tail = size - doc.end
    if tail > 0 and doc.blank_tail:
        vi += f"; {tail} byte sau đó để trống"
        en += f"; the {tail} bytes after it are blank"
    elif tail > 0:
        vi += f"; {tail} byte cuối tệp không thuộc phiên bản nào"
        en += f"; the last {tail} bytes of the file belong to no revision"
    return [SignatureScope(ScopeKind.PARTIAL, vi, en)]


def _revocation(
    status, signer: asn1_x509.Certificate, dss: _Dss, trust: TrustContext, checked: datetime
) -> RevocationEvidence:
    if status is None or (status.validation_path is None and status.revocation_details is None):
        return RevocationEvidence(RevocationStatus.NOT_CHECKED, "none")
    details = status.revocation_details
    ours = trust.ctx is not None and trust.is_ours(_crypto(signer))
    embedded_ocsp = dss.ocsp_for(signer)
    embedded_crl = None if embedded_ocsp is not None else dss.crl_for(signer)
    if embedded_ocsp is not None:
        source = "ocsp-embedded"
        basic = embedded_ocsp["response_bytes"]["response"].parsed
        embedded_at = basic["tbs_response_data"]["produced_at"].native
    elif embedded_crl is not None:
        source = "crl-embedded"
        embedded_at = embedded_crl["tbs_cert_list"]["this_update"].native
    else:
        source, embedded_at = ("kyso-ca" if ours else "none"), None
    if details is not None:
        reason = details.revocation_reason.native
        revoked = (
            RevocationStatus.SUSPENDED
            if reason == "certificate_hold"
            else (RevocationStatus.REVOKED)
        )
        return RevocationEvidence(
            revoked,
            "kyso-ca" if ours else source,
            checked_at=checked,
            revoked_at=details.revocation_date,
            reason=reason,
        )
    if status.trusted:
        return RevocationEvidence(RevocationStatus.GOOD, source, checked_at=embedded_at or checked)
    return RevocationEvidence(RevocationStatus.UNKNOWN, source, checked_at=checked)


_INDETERMINATE_MAP = {
    AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND: SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    AdESIndeterminate.OUT_OF_BOUNDS_NO_POE: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.EXPIRED: SubIndication.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.NOT_YET_VALID: SubIndication.NOT_YET_VALID,
    AdESIndeterminate.REVOKED_NO_POE: SubIndication.REVOKED_NO_POE,
    AdESIndeterminate.REVOKED_CA_NO_POE: SubIndication.REVOKED_CA_NO_POE,
    AdESIndeterminate.TRY_LATER: SubIndication.TRY_LATER,
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE: (
        SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE
    ),
    AdESIndeterminate.SIG_CONSTRAINTS_FAILURE: SubIndication.SIG_CONSTRAINTS_FAILURE,
    AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE: SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    # pyHanko's catch-all for certvalidator errors it does not classify, missing revocation
    # data among them: not a constraint of the chain (kyso.validation.cms.path_failure says
    # which it was).
    AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE: (
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE
    ),
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE: SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND: SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    AdESIndeterminate.SIGNED_DATA_NOT_FOUND: SubIndication.SIGNED_DATA_NOT_FOUND,
    AdESIndeterminate.POLICY_PROCESSING_ERROR: SubIndication.POLICY_PROCESSING_ERROR,
    AdESIndeterminate.TIMESTAMP_ORDER_FAILURE: SubIndication.TIMESTAMP_ORDER_FAILURE,
}


def _trust_outcome(status) -> tuple[Indication, SubIndication | None]:
    problem = status.trust_problem_indic
    if problem is None and status.validation_path is not None:
        return Indication.TOTAL_PASSED, None
    if problem is None:
        return Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    if isinstance(problem, AdESFailure):
        return Indication.TOTAL_FAILED, SubIndication(problem.name)
    return Indication.INDETERMINATE, _INDETERMINATE_MAP.get(
        problem, SubIndication.CHAIN_CONSTRAINTS_FAILURE
    )


# -- one signature --------------------------------------------------------------------------


def _level(emb: EmbeddedPdfSignature, status, dss: _Dss, doc_ts_revisions: list[int]) -> str:
    if status is None or status.timestamp_validity is None:
        return "PAdES-B-B"
    signer = emb.signer_cert
    has_revinfo = dss.ocsp_for(signer) is not None or dss.crl_for(signer) is not None
    if not has_revinfo:
        return "PAdES-B-T"
    if any(rev > emb.signed_revision for rev in doc_ts_revisions):
        return "PAdES-B-LTA"
    return "PAdES-B-LT"


async def _signature(
    emb: EmbeddedPdfSignature,
    trust: TrustContext,
    dss: _Dss,
    moment: datetime | None,
    doc_ts_revisions: list[int],
    doc: _Document,
) -> SignatureReport:
    now = moment or clock.precise()
    try:
        signer = emb.signer_cert
    except Exception as exc:
        return _unprocessable(emb, "PAdES", exc, SubIndication.NO_SIGNING_CERTIFICATE_FOUND)
    embedded_certs = list(emb.other_embedded_certs)

    def context(at: datetime | None) -> ValidationContext:
        return validation_context(
            trust,
            certs=_ours(signer),
            moment=at,
            extra_crls=dss.crls,
            extra_ocsps=dss.ocsps,
            extra_certs=dss.certs,
        )

    try:
        vc = context(moment)
        status = await async_validate_pdf_signature(
            emb, vc, diff_policy=doc.policy, key_usage_settings=_KEY_USAGE
        )
    except MemoryError:  # the caller's memory budget ran out: not a verdict
        raise
    except Exception as exc:
        log.info("signature %s cannot be validated", emb.field_name, exc_info=True)
        return _unprocessable(emb, "PAdES", exc, signer=signer)

    ts = status.timestamp_validity
    ts_ok = ts is not None and ts.intact and ts.valid and ts.trusted
    ts_time = ts.timestamp if ts is not None else None
    claimed = status.signer_reported_dt
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=_info(signer),
        format=_level(emb, status, dss, doc_ts_revisions),
        field_name=_plain(emb.field_name),
        claimed_signing_time=claimed,
        timestamp_time=ts_time,
        timestamp_trusted=None if ts is None else ts_ok,
        integrity=bool(status.intact and status.valid) and _range_in_file(emb, doc.size),
        chain=_chain(status, signer, embedded_certs),
        trusted_chain=status.validation_path is not None,
        revocation=_revocation(status, signer, dss, trust, now),
        modifications=_modifications(emb, status, doc),
        scope=_scope(emb, status, doc),
        notes=[doc.lenient] if doc.lenient else [],
    )
    others = embedded_certs + dss.certs
    indication, sub = await _judge(emb, status, report, ts_ok, context, now, others)
    report.indication, report.sub_indication = indication, sub
    if (
        indication is Indication.TOTAL_PASSED
        and report.revocation
        and (report.revocation.status in (RevocationStatus.REVOKED, RevocationStatus.SUSPENDED))
    ):
        # Revoked after the time-stamp: good at the signing time, revoked later.
        report.revocation = replace(report.revocation, status=RevocationStatus.GOOD)
    report.message_vi, report.message_en = messages.explain(report)
    return report


async def _judge(
    emb, status, report: SignatureReport, ts_ok: bool, context, now: datetime, others: list
):
    # The byte range is checked before the bytes it names (EN 319 102-1 §5.2.2 format
    # checking before §5.2.7 cryptographic verification; EU DSS does the same).
    if status.coverage not in (
        SignatureCoverageLevel.ENTIRE_FILE,
        SignatureCoverageLevel.ENTIRE_REVISION,
    ):
        return Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE
    if not status.intact:
        return Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE
    if not status.valid:
        return Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE
    if not _modifications_ok(status, report.modifications):
        if not any(not m.allowed for m in report.modifications):
            report.modifications.append(
                Modification(
                    False,
                    "Thay đổi vượt quá quyền DocMDP của chữ ký chứng nhận — "
                    "changes beyond the certification signature's DocMDP",
                )
            )
        return Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid):
        return Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE
    indication, sub = _trust_outcome(status)
    if sub in (
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    ):
        # pyHanko's catch-alls for certvalidator's errors; kyso's mapping names the cause
        # (no revocation data is TRY_LATER, a self-signed stranger has no chain at all).
        try:
            found = await path_failure(emb.signer_cert, others, context(None))
        except Exception:
            log.info("path failure of %s not classified", emb.field_name, exc_info=True)
        else:
            if found[0] is not Indication.TOTAL_PASSED:
                indication, sub = found
    if indication is Indication.TOTAL_PASSED:
        if ts is not None and not ts_ok:
            return Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND
        return indication, sub
    if sub is SubIndication.NO_CERTIFICATE_CHAIN_FOUND or report.signer is None:
        return indication, sub
    # Revocation and validity depend on when the document was signed.
    signer = report.signer
    best = ts.timestamp if ts_ok else None
    reference = best or report.claimed_signing_time
    revocation = report.revocation
    if revocation is not None and revocation.revoked_at is not None:
        revoked_at = revocation.revoked_at
        if best is not None and best < revoked_at:
            return await _in_the_past(emb, best, context, (indication, sub))
        if revocation.status is RevocationStatus.SUSPENDED:
            return Indication.INDETERMINATE, SubIndication.TRY_LATER
        # Both times have whole seconds: the same second proves neither order.
        if reference is not None and reference > revoked_at:
            return Indication.TOTAL_FAILED, SubIndication.REVOKED
        return Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE
    outside = not signer.not_before <= now <= signer.not_after
    if outside or sub in (SubIndication.OUT_OF_BOUNDS_NO_POE, SubIndication.NOT_YET_VALID):
        # The validity period decides before any (possibly stale) revocation evidence does.
        if best is not None and signer.not_before <= best <= signer.not_after:
            return await _in_the_past(emb, best, context, (indication, sub))
        if reference is not None and reference > signer.not_after:
            return Indication.TOTAL_FAILED, SubIndication.EXPIRED
        if reference is not None and reference < signer.not_before:
            return Indication.TOTAL_FAILED, SubIndication.NOT_YET_VALID
        if now > signer.not_after:
            return Indication.INDETERMINATE, SubIndication.OUT_OF_BOUNDS_NO_POE
        if now < signer.not_before:
            return Indication.INDETERMINATE, SubIndication.NOT_YET_VALID
    return indication, sub


async def _in_the_past(emb, at: datetime, context, otherwise):
    """Validate again at the time-stamped time (EN 319 102-1 past signature validation)."""
    try:
        past = await async_validate_pdf_signature(
            emb, context(at), skip_diff=True, key_usage_settings=_KEY_USAGE
        )
    except Exception:
        return otherwise
    if past.trusted:
        return Indication.TOTAL_PASSED, None
    return otherwise


async def _doc_timestamp(
    emb: EmbeddedPdfSignature,
    trust: TrustContext,
    dss: _Dss,
    moment: datetime | None,
    doc: _Document,
) -> SignatureReport:
    now = moment or clock.precise()
    try:
        signer = emb.signer_cert
    except Exception as exc:
        return _unprocessable(
            emb, "PAdES document time-stamp", exc, SubIndication.NO_SIGNING_CERTIFICATE_FOUND
        )
    try:
        vc = validation_context(
            trust,
            certs=_ours(signer),
            moment=moment,
            extra_crls=dss.crls,
            extra_ocsps=dss.ocsps,
            extra_certs=dss.certs,
        )
        status = await async_validate_pdf_timestamp(emb, vc, diff_policy=doc.policy)
    except MemoryError:  # the caller's memory budget ran out: not a verdict
        raise
    except Exception as exc:
        log.info("document time-stamp %s cannot be validated", emb.field_name, exc_info=True)
        return _unprocessable(emb, "PAdES document time-stamp", exc, signer=signer)
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=_info(signer),
        format="PAdES document time-stamp",
        field_name=_plain(emb.field_name),
        timestamp_time=status.timestamp,
        timestamp_trusted=status.trusted,
        integrity=bool(status.intact and status.valid) and _range_in_file(emb, doc.size),
        chain=_chain(status, signer, []),
        trusted_chain=status.validation_path is not None,
        revocation=_revocation(status, signer, dss, trust, now),
        modifications=_modifications(emb, status, doc),
        scope=_scope(emb, status, doc),
        notes=[doc.lenient] if doc.lenient else [],
    )
    result: tuple[Indication, SubIndication | None]
    if not status.intact:
        result = (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    elif not status.valid:
        result = (Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE)
    elif not _modifications_ok(status, report.modifications):
        result = (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    else:
        result = _trust_outcome(status)
    report.indication, report.sub_indication = result
    report.message_vi, report.message_en = messages.explain(report)
    return report


def _reason(exc: BaseException) -> str:
    """The library's own words for why it stopped (English, one line, bounded)."""
    if isinstance(exc, SignatureValidationError):
        text = exc.failure_message
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(str(text).split())[:300]


def _unprocessable(
    emb: EmbeddedPdfSignature,
    fmt: str,
    exc: BaseException,
    sub: SubIndication = SubIndication.FORMAT_FAILURE,
    signer=None,
) -> SignatureReport:
    """pyHanko raised while validating: nothing proved the signature invalid, so it is
    INDETERMINATE (EN 319 102-1 §5.1.3: FORMAT_FAILURE when the signature cannot be
    processed), with the library's reason in the sentence."""
    indeterminate = getattr(exc, "ades_subindication", None)
    if isinstance(indeterminate, AdESIndeterminate):
        sub = _INDETERMINATE_MAP.get(indeterminate, sub)
    info = None
    try:
        info = _info(signer if signer is not None else emb.signer_cert)
    except Exception:
        info = None
    report = SignatureReport(
        indication=Indication.INDETERMINATE,
        sub_indication=sub,
        signer=info,
        format=fmt,
        field_name=_plain(getattr(emb, "field_name", None)),
    )
    report.message_vi, report.message_en = messages.unprocessable(report, _reason(exc))
    return report


# -- the document ---------------------------------------------------------------------------


def _once_per_signer(trust: TrustContext) -> TrustContext:
    """``trust`` whose own revocation evidence (kyso's CRLs and an OCSP answer) is made once per
    signer for this document, not once per signature (a fifth of the time of a file with 100
    signatures by one signer)."""
    made: dict[tuple[bytes, ...], tuple[list[bytes], list[bytes]]] = {}
    own = trust.own_revocation_data

    def once(certs: list[x509.Certificate]) -> tuple[list[bytes], list[bytes]]:
        key = tuple(cert.fingerprint(hashes.SHA256()) for cert in certs)
        if key not in made:
            made[key] = own(certs)
        crls, ocsps = made[key]
        return list(crls), list(ocsps)

    copied = copy.copy(trust)
    copied.own_revocation_data = once  # type: ignore[method-assign]
    return copied


def _count(reader: PdfFileReader, limits: PdfLimits | None) -> None:
    """Refuse a file over the limits before any signature is verified (the count reads the
    cross-reference sections and the form fields, nothing else)."""
    if limits is None:
        return
    revisions = reader.xrefs.total_revisions
    if limits.revisions is not None and revisions > limits.revisions:
        raise TooComplexPdf(
            f"{revisions} revisions; at most {limits.revisions}",
            vi=f"{revisions} phiên bản; tối đa {limits.revisions}",
        )
    if limits.signatures is None:
        return
    for count, _field in enumerate(enumerate_sig_fields(reader, filled_status=True), start=1):
        if count > limits.signatures:
            raise TooComplexPdf(
                f"more than {limits.signatures} signatures",
                vi=f"hơn {limits.signatures} chữ ký",
            )


async def async_validate_pdf(
    data: bytes,
    trust: TrustContext,
    *,
    name: str = "document.pdf",
    moment: datetime | None = None,
    limits: PdfLimits | None = None,
) -> ValidationReport:
    """:func:`validate_pdf` for callers already in an event loop."""
    data = bytes(data)
    trust = _once_per_signer(trust)
    reader, lenient = _reader(data)
    try:
        _count(reader, limits)
        # not reader.embedded_signatures: the reader would keep them all until the end
        embedded = collect_embedded_signatures(reader)
        doc = _Document.of(reader, data, lenient)
    except KysoError:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise InvalidPdf(
            "the PDF's signatures cannot be read", vi="không đọc được các chữ ký trong tệp PDF"
        ) from exc
    dss = _Dss(reader)
    doc_ts_revisions = [e.signed_revision for e in embedded if e.sig_object_type == "/DocTimeStamp"]
    reports = []
    # Each signature is dropped once judged: its parsed CMS and byte-range digests go with it.
    embedded.reverse()
    while embedded:
        emb = embedded.pop()
        stamp = emb.sig_object_type == "/DocTimeStamp"
        try:
            if stamp:
                reports.append(await _doc_timestamp(emb, trust, dss, moment, doc))
            else:
                reports.append(await _signature(emb, trust, dss, moment, doc_ts_revisions, doc))
        except KysoError:
            raise
        except MemoryError:  # the caller's memory budget ran out: not a verdict
            raise
        except Exception as exc:  # a report for every signature, never a crash
            log.warning("signature %s: validation failed", emb.field_name, exc_info=True)
            fmt = "PAdES document time-stamp" if stamp else "PAdES"
            reports.append(_unprocessable(emb, fmt, exc))
        del emb
    report = ValidationReport(
        document=name,
        document_kind="pdf",
        signatures=reports,
        validated_at=moment or clock.now(),
    )
    report.message_vi, report.message_en = messages.summarize(report)
    return report


def validate_pdf(
    data: bytes,
    trust: TrustContext,
    *,
    name: str = "document.pdf",
    moment: datetime | None = None,
    limits: PdfLimits | None = None,
) -> ValidationReport:
    """Validate every signature and document time-stamp in ``data`` against ``trust``.

    ``moment`` validates as of another time (default: now); ``limits`` bounds the signatures
    and revisions looked at (``TooComplexPdf`` above them). Raises ``InvalidPdf`` for input
    that is not a readable PDF (not a PDF, truncated, too large, password-protected); a PDF
    without signatures gives a report with none (its indication is TOTAL-FAILED)."""
    return asyncio.run(async_validate_pdf(data, trust, name=name, moment=moment, limits=limits))
