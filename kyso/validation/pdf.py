"""PDF (PAdES) validation into kyso's report model (ETSI EN 319 102-1 indications).

For each signature and document time-stamp, in signing order: who signed; the claimed signing
time and the time-stamped time; integrity of the signed bytes; the chain to kyso's trust
anchors; the revocation status at the signing time with the evidence it came from (the
document's DSS, kyso's own CA, or none); what changed in the document after the signature
(pyHanko's difference analysis: signatures, form filling and validation data are allowed,
anything else is not); the ETSI indication and sub-indication; and a sentence in Vietnamese
and English (:mod:`kyso.validation.messages`).

Time: the best signature time is the time-stamp's when one is present and trusted; a
certificate revoked or expired after that time still passes (checked again "in the past" at
that time). Without a time-stamp nothing proves when the document was signed (the claimed
time is the signer's word): revoked before the claimed time is TOTAL-FAILED/REVOKED, revoked
after it is INDETERMINATE/REVOKED_NO_POE, suspended (certificateHold) is
INDETERMINATE/TRY_LATER.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import replace
from datetime import datetime

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, DiffResult, ModificationLevel
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from kyso import clock
from kyso.errors import KysoError
from kyso.formats.pdf import InvalidPdf, check_pdf_bytes
from kyso.trust import TrustContext
from kyso.validation import messages
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    Modification,
    RevocationEvidence,
    RevocationStatus,
    SignatureReport,
    SubIndication,
    ValidationReport,
)

log = logging.getLogger(__name__)

__all__ = ["async_validate_pdf", "validate_pdf", "validation_context"]

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


def _reader(data: bytes) -> PdfFileReader:
    check_pdf_bytes(data)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
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
    except KysoError:
        raise
    except Exception as exc:
        raise InvalidPdf("the PDF cannot be read", vi="không đọc được tệp PDF") from exc


class _Dss:
    """The document security store: evidence embedded for long-term validation."""

    def __init__(self, reader: PdfFileReader) -> None:
        self.ocsps: list[bytes] = []
        self.crls: list[bytes] = []
        self.certs: list[asn1_x509.Certificate] = []
        try:
            dss = DocumentSecurityStore.read_dss(reader)
        except NoDSSFoundError:
            return
        except Exception:  # a broken DSS is ignored: validation goes on without it
            log.warning("unreadable DSS", exc_info=True)
            return
        for ref in dss.ocsps:
            self.ocsps.append(ref.get_object().data)
        for ref in dss.crls:
            self.crls.append(ref.get_object().data)
        self.certs = list(dss.load_certs())

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


def _crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def _info(cert: asn1_x509.Certificate) -> CertificateInfo:
    c = _crypto(cert)
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


def _modifications(status) -> list[Modification]:
    coverage = getattr(status, "coverage", None)
    if coverage is None or coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return []
    if coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        return [
            Modification(
                False,
                "Chữ ký không bao phủ trọn phiên bản tài liệu của nó — "
                "the signature does not cover its whole revision",
            )
        ]
    diff = status.diff_result
    if diff is None:
        return [
            Modification(
                False,
                "Không phân tích được các thay đổi sau khi ký — "
                "the changes after signing could not be analysed",
            )
        ]
    if not isinstance(diff, DiffResult):
        return [Modification(False, f"Thay đổi không được phép — not allowed: {diff}")]
    level = diff.modification_level
    fields = ", ".join(sorted(diff.changed_form_fields))
    if level == ModificationLevel.NONE:
        return []
    if level == ModificationLevel.LTA_UPDATES:
        return [
            Modification(
                True,
                "Thêm dữ liệu kiểm tra dài hạn (DSS) hoặc dấu thời gian tài "
                "liệu — validation data (DSS) or a document time-stamp added",
            )
        ]
    if level == ModificationLevel.FORM_FILLING:
        return [
            Modification(
                True,
                "Thêm chữ ký hoặc điền trường biểu mẫu"
                f"{' (' + fields + ')' if fields else ''} — signatures added "
                "or form fields filled",
            )
        ]
    if level == ModificationLevel.ANNOTATIONS:
        return [Modification(True, "Thêm hoặc sửa chú thích — annotations added or changed")]
    return [
        Modification(False, "Nội dung tài liệu bị thay đổi — the document's content was changed")
    ]


def _modifications_ok(status) -> bool:
    docmdp_ok = getattr(status, "docmdp_ok", None)
    if docmdp_ok is False:
        return False
    return all(m.allowed for m in _modifications(status))


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
) -> SignatureReport:
    now = moment or clock.precise()
    try:
        signer = emb.signer_cert
    except Exception:
        return _unreadable(emb, "PAdES")
    embedded_certs = list(emb.other_embedded_certs)

    def context(at: datetime | None) -> ValidationContext:
        return validation_context(
            trust,
            certs=[_crypto(signer)],
            moment=at,
            extra_crls=dss.crls,
            extra_ocsps=dss.ocsps,
            extra_certs=dss.certs,
        )

    try:
        vc = context(moment)
        status = await async_validate_pdf_signature(
            emb, vc, diff_policy=DEFAULT_DIFF_POLICY, key_usage_settings=_KEY_USAGE
        )
    except Exception:
        log.info("signature %s cannot be validated", emb.field_name, exc_info=True)
        return _unreadable(emb, "PAdES", signer)

    ts = status.timestamp_validity
    ts_ok = ts is not None and ts.intact and ts.valid and ts.trusted
    ts_time = ts.timestamp if ts is not None else None
    claimed = status.signer_reported_dt
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=_info(signer),
        format=_level(emb, status, dss, doc_ts_revisions),
        field_name=emb.field_name,
        claimed_signing_time=claimed,
        timestamp_time=ts_time,
        timestamp_trusted=None if ts is None else ts_ok,
        integrity=bool(status.intact and status.valid),
        chain=_chain(status, signer, embedded_certs),
        trusted_chain=status.validation_path is not None,
        revocation=_revocation(status, signer, dss, trust, now),
        modifications=_modifications(status),
    )
    indication, sub = await _judge(emb, status, report, ts_ok, context, now)
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


async def _judge(emb, status, report: SignatureReport, ts_ok: bool, context, now: datetime):
    if not status.intact:
        return Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE
    if not status.valid:
        return Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE
    if status.coverage not in (
        SignatureCoverageLevel.ENTIRE_FILE,
        SignatureCoverageLevel.ENTIRE_REVISION,
    ):
        return Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE
    if not _modifications_ok(status):
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
    emb: EmbeddedPdfSignature, trust: TrustContext, dss: _Dss, moment: datetime | None
) -> SignatureReport:
    now = moment or clock.precise()
    try:
        signer = emb.signer_cert
        vc = validation_context(
            trust,
            certs=[_crypto(signer)],
            moment=moment,
            extra_crls=dss.crls,
            extra_ocsps=dss.ocsps,
            extra_certs=dss.certs,
        )
        status = await async_validate_pdf_timestamp(emb, vc, diff_policy=DEFAULT_DIFF_POLICY)
    except Exception:
        log.info("document time-stamp %s cannot be validated", emb.field_name, exc_info=True)
        return _unreadable(emb, "PAdES document time-stamp")
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=_info(signer),
        format="PAdES document time-stamp",
        field_name=emb.field_name,
        timestamp_time=status.timestamp,
        timestamp_trusted=status.trusted,
        integrity=bool(status.intact and status.valid),
        chain=_chain(status, signer, []),
        trusted_chain=status.validation_path is not None,
        revocation=_revocation(status, signer, dss, trust, now),
        modifications=_modifications(status),
    )
    result: tuple[Indication, SubIndication | None]
    if not status.intact:
        result = (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    elif not status.valid:
        result = (Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE)
    elif not _modifications_ok(status):
        result = (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    else:
        result = _trust_outcome(status)
    report.indication, report.sub_indication = result
    report.message_vi, report.message_en = messages.explain(report)
    return report


def _unreadable(emb: EmbeddedPdfSignature, fmt: str, signer=None) -> SignatureReport:
    info = None
    try:
        info = _info(signer if signer is not None else emb.signer_cert)
    except Exception:
        info = None
    report = SignatureReport(
        indication=Indication.TOTAL_FAILED,
        sub_indication=SubIndication.FORMAT_FAILURE,
        signer=info,
        format=fmt,
        field_name=getattr(emb, "field_name", None),
    )
    report.message_vi, report.message_en = messages.explain(report)
    return report


# -- the document ---------------------------------------------------------------------------


async def async_validate_pdf(
    data: bytes,
    trust: TrustContext,
    *,
    name: str = "document.pdf",
    moment: datetime | None = None,
) -> ValidationReport:
    """:func:`validate_pdf` for callers already in an event loop."""
    reader = _reader(bytes(data))
    try:
        embedded = list(reader.embedded_signatures)
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise InvalidPdf(
            "the PDF's signatures cannot be read", vi="không đọc được các chữ ký trong tệp PDF"
        ) from exc
    dss = _Dss(reader)
    doc_ts_revisions = [e.signed_revision for e in embedded if e.sig_object_type == "/DocTimeStamp"]
    reports = []
    for emb in embedded:
        if emb.sig_object_type == "/DocTimeStamp":
            reports.append(await _doc_timestamp(emb, trust, dss, moment))
        else:
            reports.append(await _signature(emb, trust, dss, moment, doc_ts_revisions))
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
) -> ValidationReport:
    """Validate every signature and document time-stamp in ``data`` against ``trust``.

    ``moment`` validates as of another time (default: now). Raises ``InvalidPdf`` for input
    that is not a readable PDF (not a PDF, truncated, too large, password-protected); a PDF
    without signatures gives a report with none (its indication is TOTAL-FAILED)."""
    return asyncio.run(async_validate_pdf(data, trust, name=name, moment=moment))
