"""CMS / CAdES signatures (``.p7s`` detached or attached) into the shared report.

The judgement shared by every non-PDF format lives here too: XAdES and S/MIME validators
describe what they found in a :class:`Findings` and call :func:`judge`, so a revoked
certificate or an untrusted time-stamp reads the same whatever the file was.

How a signature is judged (a simplified ETSI EN 319 102-1 process):

1. Integrity: the content digest against message-digest (HASH_FAILURE), then the signature
   value against the signer's key (SIG_CRYPTO_FAILURE); both TOTAL-FAILED.
2. Time-stamps: each signature time-stamp is checked (token signature, imprint over the
   signature value, TSA chain to kyso's anchors with revocation). The earliest trusted one
   is the proof of existence (POE) of the signature. One that does not match the signature
   is TOTAL-FAILED/HASH_FAILURE; one from an untrusted TSA is reported (timestamp_trusted
   False) and not used, and without a trusted one the result is INDETERMINATE/
   NO_CERTIFICATE_CHAIN_FOUND with the signer's chain trusted — as the PAdES validator
   reports it, and as kyso.validation.messages words it.
3. The signer's certificate: a path to a trust anchor at validation time with hard-fail
   revocation (kyso's own OCSP/CRL for certificates it issued, plus evidence embedded in the
   signature). Revoked or expired *after* the POE is fine (re-checked at the POE); revoked
   before it is TOTAL-FAILED/REVOKED; revoked with no POE is INDETERMINATE/REVOKED_NO_POE;
   suspended (certificateHold) without a POE before it is INDETERMINATE/TRY_LATER, since a
   suspension may be lifted; no path is INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND.
4. Algorithms: SHA-1 or MD5 anywhere in the signature is INDETERMINATE/
   CRYPTO_CONSTRAINTS_FAILURE (Circular 15/2025/TT-BKHCN requires SHA-256 or stronger), after
   integrity has been checked so a clerk still learns whether the content changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from asn1crypto import cms, core
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.general import (
    CMSExtractionError,
    CMSStructuralError,
    find_cms_attribute_iter,
    match_issuer_serial,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import (
    get_signing_cert_attr,
    validate_sig_integrity,
    validate_tst_signed_data,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext, find_valid_path
from pyhanko_certvalidator.errors import (
    DisallowedAlgorithmError,
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from kyso import clock
from kyso.errors import InvalidInput
from kyso.signing.cades import run_sync
from kyso.validation import messages
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    RevocationEvidence,
    RevocationStatus,
    SignatureReport,
    SubIndication,
    ValidationReport,
)
from kyso.validation.trust import TrustContext

__all__ = [
    "SIGNER_KEY_USAGE",
    "Findings",
    "TimestampCheck",
    "certificate_info",
    "check_timestamp",
    "judge",
    "summarize",
    "validate_cms",
    "weak_hash",
]

log = logging.getLogger(__name__)

#: A signer's certificate must allow signing: nonRepudiation (contentCommitment) or
#: digitalSignature (S/MIME and foreign certificates often carry only the latter).
SIGNER_KEY_USAGE = KeyUsageConstraints(key_usage={"non_repudiation", "digital_signature"})

#: Hashes below Circular 15/2025/TT-BKHCN's floor (SHA-256), by asn1crypto / XML-DSig name.
_WEAK_HASHES = {"md2", "md5", "sha1", "sha224"}

_CHUNK = 1024 * 1024


def weak_hash(name: str) -> bool:
    """Whether a hash (``sha1``, ``sha-1``, ``sha1_rsa``...) is below SHA-256."""
    lowered = name.lower().replace("-", "")
    return any(lowered == w or lowered.startswith(w + "_") for w in _WEAK_HASHES)


# -- shared data -------------------------------------------------------------------------


def certificate_info(cert: asn1_x509.Certificate) -> CertificateInfo:
    """Subject and issuer as RFC 4514 strings (UTF-8 kept), like the rest of kyso."""
    tbs = cert["tbs_certificate"]
    try:
        parsed = cx509.load_der_x509_certificate(cert.dump())
        subject, issuer = parsed.subject.rfc4514_string(), parsed.issuer.rfc4514_string()
    except ValueError:
        subject, issuer = cert.subject.human_friendly, cert.issuer.human_friendly
    return CertificateInfo(
        subject=subject,
        issuer=issuer,
        serial=format(cert.serial_number, "x"),
        not_before=tbs["validity"]["not_before"].native,
        not_after=tbs["validity"]["not_after"].native,
    )


@dataclass
class TimestampCheck:
    """One signature time-stamp as checked: its time, and whether it can be relied on."""

    time: datetime | None
    intact: bool
    trusted: bool
    tsa: CertificateInfo | None = None
    problem: str | None = None


@dataclass
class Findings:
    """What a format-specific reader found in one signature, before any judgement."""

    format: str
    signer: asn1_x509.Certificate | None
    other_certs: list[asn1_x509.Certificate] = field(default_factory=list)
    intact: bool = False  # the signed content's digest matched
    valid: bool = False  # the signature value verified with the signer's key
    format_problem: str | None = None
    weak_algorithm: str | None = None
    signed_data_missing: bool = False
    claimed_signing_time: datetime | None = None
    timestamps: list[TimestampCheck] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)  # embedded in the signature (LTV)
    ocsps: list[bytes] = field(default_factory=list)
    field_name: str | None = None


# -- certificate and revocation ----------------------------------------------------------


@dataclass
class _CertificateCheck:
    chain: list[CertificateInfo]
    trusted_chain: bool
    revocation: RevocationEvidence
    indication: Indication
    sub_indication: SubIndication | None


def _der(value: core.Asn1Value | bytes) -> bytes:
    return value.dump() if isinstance(value, core.Asn1Value) else bytes(value)


def _ocsp_entry(cert: asn1_x509.Certificate, der: bytes) -> RevocationEvidence | None:
    """The status an OCSP response gives for ``cert``, or None if it is not about it."""
    try:
        response = asn1_ocsp.OCSPResponse.load(der)
        if response["response_status"].native != "successful":
            return None
        data = response.basic_ocsp_response["tbs_response_data"]
        for single in data["responses"]:
            cert_id = single["cert_id"]
            if cert_id["serial_number"].native != cert.serial_number:
                continue
            hash_name = cert_id["hash_algorithm"]["algorithm"].native
            name_hash = hashlib.new(hash_name, cert.issuer.dump()).digest()
            if cert_id["issuer_name_hash"].native != name_hash:
                continue
            status = single["cert_status"]
            checked = single["this_update"].native or data["produced_at"].native
            if status.name == "good":
                return RevocationEvidence(RevocationStatus.GOOD, "", checked)
            if status.name == "revoked":
                reason = status.chosen["revocation_reason"].native
                return RevocationEvidence(
                    RevocationStatus.SUSPENDED
                    if reason == "certificate_hold"
                    else RevocationStatus.REVOKED,
                    "",
                    checked,
                    status.chosen["revocation_time"].native,
                    reason,
                )
            return RevocationEvidence(RevocationStatus.UNKNOWN, "", checked)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None


def _crl_entry(cert: asn1_x509.Certificate, der: bytes) -> RevocationEvidence | None:
    """The status a (full) CRL gives for ``cert``, or None if the CRL is not its issuer's."""
    try:
        crl = asn1_crl.CertificateList.load(der)
        tbs = crl["tbs_cert_list"]
        if tbs["issuer"] != cert.issuer or crl.delta_crl_indicator_value is not None:
            return None
        checked = tbs["this_update"].native
        for entry in tbs["revoked_certificates"] or []:
            if entry["user_certificate"].native == cert.serial_number:
                reason = entry.crl_reason_value.native if entry.crl_reason_value else None
                return RevocationEvidence(
                    RevocationStatus.SUSPENDED
                    if reason == "certificate_hold"
                    else RevocationStatus.REVOKED,
                    "",
                    checked,
                    entry["revocation_date"].native,
                    reason,
                )
        return RevocationEvidence(RevocationStatus.GOOD, "", checked)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _evidence(
    cert: asn1_x509.Certificate,
    embedded: tuple[list[bytes], list[bytes]],
    known: tuple[list[bytes], list[bytes]],
    *,
    revoked: bool,
) -> RevocationEvidence:
    """The evidence behind the verdict: embedded (LTV) data first, then kyso's own; OCSP
    before CRL; the first one whose status agrees with the path validation's outcome."""
    embedded_ders = set(embedded[0]) | set(embedded[1])
    candidates: list[tuple[RevocationEvidence | None, str]] = []
    for der in [*embedded[1], *known[1]]:
        kind = "ocsp-embedded" if der in embedded_ders else "kyso-ca"
        candidates.append((_ocsp_entry(cert, der), kind))
    for der in [*embedded[0], *known[0]]:
        kind = "crl-embedded" if der in embedded_ders else "kyso-ca"
        candidates.append((_crl_entry(cert, der), kind))
    found = [(e, source) for e, source in candidates if e is not None]
    for evidence, source in found:
        is_revoked = evidence.status in (RevocationStatus.REVOKED, RevocationStatus.SUSPENDED)
        if is_revoked == revoked:
            evidence.source = source
            return evidence
    if found:
        evidence, source = found[0]
        evidence.source = source
        return evidence
    return RevocationEvidence(RevocationStatus.NOT_CHECKED, "none")


def _context(
    trust: TrustContext,
    *,
    moment: datetime | None,
    for_certs: list[asn1_x509.Certificate],
    crls: list[bytes],
    ocsps: list[bytes],
) -> ValidationContext:
    certs = [cx509.load_der_x509_certificate(c.dump()) for c in for_certs]
    return trust.validation_context(
        moment=moment, for_certs=certs, extra_crls=crls, extra_ocsps=ocsps
    )


async def _find_path(
    cert: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    context: ValidationContext,
    key_usage: KeyUsageConstraints,
) -> tuple[ValidationPath | None, Exception | None]:
    context.certificate_registry.register_multiple(others)
    try:
        paths = context.path_builder.async_build_paths_lazy(cert)
        path = await find_valid_path(cert, paths, validation_context=context)
        if path.pkix_len > 0:
            key_usage.validate(cert)
        return path, None
    except (ValidationError, PathBuildingError) as exc:
        return None, exc
    except ValueError as exc:  # malformed extensions and the like deep in certvalidator
        log.warning("path validation failed on malformed data", exc_info=exc)
        return None, exc


def _chain_of(
    cert: asn1_x509.Certificate,
    path: ValidationPath | None,
    others: list[asn1_x509.Certificate],
) -> list[CertificateInfo]:
    """Signer first, up to the root: the validated path, else what the signature carries."""
    if path is not None:
        return [certificate_info(c) for c in reversed(list(path.iter_certs(include_root=True)))]
    chain = [cert]
    current = cert
    pool = list(others)
    while current.issuer != current.subject:
        issuer = next((c for c in pool if c.subject == current.issuer), None)
        if issuer is None:
            break
        pool.remove(issuer)
        chain.append(issuer)
        current = issuer
    return [certificate_info(c) for c in chain]


async def _check_certificate(
    cert: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    trust: TrustContext,
    *,
    poe: datetime | None,
    crls: list[bytes],
    ocsps: list[bytes],
    key_usage: KeyUsageConstraints = SIGNER_KEY_USAGE,
) -> _CertificateCheck:
    chain_certs = [cert, *others]
    context = _context(trust, moment=None, for_certs=chain_certs, crls=crls, ocsps=ocsps)
    known = ([_der(c) for c in context.crls], [_der(o) for o in context.ocsps])
    embedded = (crls, ocsps)

    def result(
        path: ValidationPath | None,
        indication: Indication,
        sub: SubIndication | None,
        *,
        revoked: bool = False,
        anchored: bool | None = None,
        error: Exception | None = None,
    ) -> _CertificateCheck:
        if path is None and isinstance(error, PathValidationError):
            path = error.original_path
        trusted = anchored if anchored is not None else path is not None
        evidence = (
            _evidence(cert, embedded, known, revoked=revoked)
            if trusted
            else RevocationEvidence(RevocationStatus.NOT_CHECKED, "none")
        )
        return _CertificateCheck(_chain_of(cert, path, others), trusted, evidence, indication, sub)

    path, error = await _find_path(cert, others, context, key_usage)
    if path is not None:
        return result(path, Indication.TOTAL_PASSED, None)

    if isinstance(error, RevokedError) and not error.is_side_validation:
        revoked_at = error.revocation_dt
        on_hold = error.reason.native == "certificate_hold"
        if poe is not None and poe < revoked_at:
            # Signed (proven by a trusted time-stamp) before the revocation or suspension:
            # the signature stands if the rest of the path was sound at that moment.
            at_poe = _context(trust, moment=poe, for_certs=chain_certs, crls=crls, ocsps=ocsps)
            again, error2 = await _find_path(cert, others, at_poe, key_usage)
            if again is not None:
                return result(again, Indication.TOTAL_PASSED, None, revoked=True)
            return _map_error(error2, poe, result)
        if not error.is_ee_cert:
            return result(
                None,
                Indication.INDETERMINATE,
                SubIndication.REVOKED_CA_NO_POE,
                revoked=True,
                error=error,
            )
        if on_hold:
            return result(
                None, Indication.INDETERMINATE, SubIndication.TRY_LATER, revoked=True, error=error
            )
        if poe is not None:
            return result(
                None, Indication.TOTAL_FAILED, SubIndication.REVOKED, revoked=True, error=error
            )
        return result(
            None, Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, revoked=True, error=error
        )

    if isinstance(error, ExpiredError) and poe is not None and poe <= error.expired_dt:
        again, error2 = await _find_path(
            cert,
            others,
            _context(trust, moment=poe, for_certs=chain_certs, crls=crls, ocsps=ocsps),
            key_usage,
        )
        if again is not None:
            return result(again, Indication.TOTAL_PASSED, None)
        return _map_error(error2, poe, result)
    return _map_error(error, poe, result)


def _map_error(
    error: Exception | None,
    poe: datetime | None,
    result: Callable[..., _CertificateCheck],
) -> _CertificateCheck:
    """The verdict for a path validation failure (after any re-check at the POE)."""
    indeterminate = Indication.INDETERMINATE
    if isinstance(error, RevokedError):
        sub = SubIndication.REVOKED if poe is not None else SubIndication.REVOKED_NO_POE
        indication = Indication.TOTAL_FAILED if poe is not None else indeterminate
        return result(None, indication, sub, revoked=True, error=error)
    if isinstance(error, ExpiredError):
        if poe is not None and poe > error.expired_dt:
            return result(None, Indication.TOTAL_FAILED, SubIndication.EXPIRED, error=error)
        return result(None, indeterminate, SubIndication.OUT_OF_BOUNDS_NO_POE, error=error)
    if isinstance(error, NotYetValidError):
        return result(None, Indication.TOTAL_FAILED, SubIndication.NOT_YET_VALID, error=error)
    if isinstance(error, InsufficientRevinfoError):
        return result(None, indeterminate, SubIndication.TRY_LATER, error=error)
    if isinstance(error, DisallowedAlgorithmError):
        return result(None, indeterminate, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, error=error)
    if isinstance(error, PathBuildingError) or (
        isinstance(error, InvalidCertificateError) and "self-signed" in str(error)
    ):
        return result(None, indeterminate, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, anchored=False)
    if isinstance(error, PathValidationError | InvalidCertificateError):
        return result(
            None,
            indeterminate,
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            anchored=isinstance(error, PathValidationError),
            error=error,
        )
    return result(None, indeterminate, SubIndication.CHAIN_CONSTRAINTS_FAILURE, anchored=False)


# -- time-stamps --------------------------------------------------------------------------


async def _check_timestamp(
    token: cms.ContentInfo,
    expected_imprint: Callable[[str], bytes],
    trust: TrustContext,
    crls: list[bytes],
    ocsps: list[bytes],
) -> TimestampCheck:
    try:
        signed_data = token["content"]
        tst_info = signed_data["encap_content_info"]["content"].parsed
        gen_time = tst_info["gen_time"].native
        certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
        signer_info = signed_data["signer_infos"][0]
        sid = signer_info["sid"]
        tsa_cert = next(
            (
                c
                for c in certs
                if (sid.name == "issuer_and_serial_number" and match_issuer_serial(sid.chosen, c))
                or (sid.name == "subject_key_identifier" and c.key_identifier == sid.chosen.native)
            ),
            None,
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return TimestampCheck(None, False, False, problem="the time-stamp token is damaged")
    if tsa_cert is None:  # cannot be checked, not shown to be broken either
        return TimestampCheck(gen_time, True, False, problem="the TSA certificate is missing")
    context = _context(trust, moment=None, for_certs=certs, crls=crls, ocsps=ocsps)
    try:
        status = await validate_tst_signed_data(signed_data, context, expected_imprint)
    except (SignatureValidationError, CMSExtractionError, CMSStructuralError, ValueError) as exc:
        return TimestampCheck(gen_time, False, False, certificate_info(tsa_cert), str(exc))
    intact = bool(status["intact"] and status["valid"])
    trusted = intact and status["trust_problem_indic"] is None and status["validation_path"]
    problem = None
    if not intact:
        problem = "the time-stamp does not match this signature"
    elif not trusted:
        indic = status["trust_problem_indic"]
        problem = f"the TSA is not trusted ({getattr(indic, 'name', indic)})"
    return TimestampCheck(gen_time, intact, bool(trusted), certificate_info(tsa_cert), problem)


def check_timestamp(
    token: cms.ContentInfo | bytes,
    expected_imprint: Callable[[str], bytes],
    trust: TrustContext,
    *,
    crls: Iterable[bytes] = (),
    ocsps: Iterable[bytes] = (),
) -> TimestampCheck:
    """Check an RFC 3161 token whose imprint should be ``expected_imprint(hash_name)``."""
    if isinstance(token, bytes):
        try:
            token = cms.ContentInfo.load(token)
            token["content"]
        except (ValueError, TypeError, KeyError):
            return TimestampCheck(None, False, False, problem="the time-stamp token is damaged")
    return run_sync(_check_timestamp(token, expected_imprint, trust, list(crls), list(ocsps)))


# -- judgement ----------------------------------------------------------------------------


async def _judge(findings: Findings, trust: TrustContext) -> SignatureReport:
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=certificate_info(findings.signer) if findings.signer is not None else None,
        format=findings.format,
        field_name=findings.field_name,
        claimed_signing_time=findings.claimed_signing_time,
        integrity=findings.intact and findings.valid,
    )
    trusted_times = sorted(t.time for t in findings.timestamps if t.trusted and t.time)
    shown = next((t for t in findings.timestamps if t.trusted), None) or next(
        iter(findings.timestamps), None
    )
    if shown is not None:
        report.timestamp_time = shown.time
        report.timestamp_trusted = shown.trusted
    poe = trusted_times[0] if trusted_times else None

    verdicts: list[tuple[Indication, SubIndication | None]] = []
    if findings.signed_data_missing:
        verdicts.append((Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND))
    elif findings.format_problem is not None:
        verdicts.append((Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE))
    elif findings.signer is None:
        verdicts.append((Indication.INDETERMINATE, SubIndication.NO_SIGNING_CERTIFICATE_FOUND))
    elif not findings.intact:
        verdicts.append((Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE))
    elif not findings.valid:
        verdicts.append((Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE))

    if findings.signer is not None:
        check = await _check_certificate(
            findings.signer,
            findings.other_certs,
            trust,
            poe=poe,
            crls=findings.crls,
            ocsps=findings.ocsps,
        )
        report.chain = check.chain
        report.trusted_chain = check.trusted_chain
        report.revocation = check.revocation
        if check.indication is not Indication.TOTAL_PASSED:
            verdicts.append((check.indication, check.sub_indication))
    if findings.weak_algorithm is not None:
        verdicts.append((Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE))

    if any(not t.intact for t in findings.timestamps):
        # A time-stamp that does not match the signature value: something was altered.
        verdicts.append((Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE))
    elif findings.timestamps and poe is None:
        # Only untrusted time-stamps: the claimed level (B-T and up) is not met. Reported as
        # the PAdES validator does: INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND with a trusted
        # signer chain, which kyso.validation.messages words as an untrusted TSA.
        verdicts.append((Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND))

    order = [Indication.TOTAL_FAILED, Indication.INDETERMINATE]
    for wanted in order:
        chosen = next((v for v in verdicts if v[0] is wanted), None)
        if chosen is not None:
            report.indication, report.sub_indication = chosen
            break
    if (
        report.indication is Indication.TOTAL_PASSED
        and report.revocation is not None
        and report.revocation.status in (RevocationStatus.REVOKED, RevocationStatus.SUSPENDED)
    ):
        # Revoked or suspended after the time-stamp: good at the signing time (the date
        # stays in revoked_at and in the sentence), as the PAdES validator reports it.
        report.revocation.status = RevocationStatus.GOOD
    report.message_vi, report.message_en = messages.explain(report)
    return report


def judge(findings: Findings, trust: TrustContext) -> SignatureReport:
    """The report for one signature from what its reader found."""
    return run_sync(_judge(findings, trust))


# -- the whole report --------------------------------------------------------------------


def summarize(report: ValidationReport) -> ValidationReport:
    """Fill the report-level sentence (kyso.validation.messages) and return the report."""
    report.message_vi, report.message_en = messages.summarize(report)
    return report


# -- reading CMS --------------------------------------------------------------------------

_PEM = re.compile(rb"-----BEGIN (PKCS7|CMS|PKCS #7 SIGNED DATA)-----(.+?)-----END \1-----", re.S)


def _load_signed_data(signature: bytes) -> cms.SignedData:
    if not isinstance(signature, bytes | bytearray | memoryview) or not signature:
        raise InvalidInput("the signature is empty", vi="chữ ký rỗng")
    data = bytes(signature)
    if b"-----BEGIN" in data[:64]:
        match = _PEM.search(data)
        if match is None:
            raise InvalidInput("unreadable PEM signature", vi="không đọc được chữ ký dạng PEM")
        try:
            data = base64.b64decode(match.group(2), validate=False)
        except binascii.Error as exc:
            raise InvalidInput("unreadable PEM signature", vi="không đọc được chữ ký PEM") from exc
    try:
        content_info = cms.ContentInfo.load(data, strict=True)
        content_type = content_info["content_type"].native
        if content_type != "signed_data":
            raise InvalidInput(
                f"a CMS {content_type} object, not a signature (SignedData)",
                vi=f"đối tượng CMS loại {content_type}, không phải chữ ký (SignedData)",
            )
        signed_data = content_info["content"]
        # asn1crypto parses lazily: parse every part but the (possibly huge) content now, so
        # damage shows up here as InvalidInput rather than deep inside validation. (Not via
        # ``.native``, which makes asn1crypto re-encode whole structures on every dump.)
        for name in ("digest_algorithms", "certificates", "crls", "signer_infos"):
            part = signed_data[name]
            if not isinstance(part, core.Void):
                part._parse_children(recurse=True)
        signed_data["encap_content_info"]["content_type"].dotted  # noqa: B018
        infos = signed_data["signer_infos"]
    except InvalidInput:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        raise InvalidInput(
            "not a CMS/PKCS#7 signature, or a damaged or truncated one",
            vi="không phải chữ ký CMS/PKCS#7, hoặc tệp chữ ký bị hỏng hay bị cắt cụt",
        ) from exc
    if len(infos) == 0:
        raise InvalidInput("the CMS signature has no signer", vi="chữ ký CMS không có người ký")
    return signed_data


class _Content:
    """Digests of the signed content, computed once per algorithm, streaming file objects."""

    def __init__(self, data: bytes | IO[bytes] | None) -> None:
        self.data = data
        self._digests: dict[str, bytes] = {}

    def digest(self, algorithm: str) -> bytes:
        if algorithm not in self._digests:
            h = _hash(algorithm)
            if isinstance(self.data, bytes | bytearray | memoryview):
                h.update(self.data)
            elif self.data is not None:
                self.data.seek(0)
                while chunk := self.data.read(_CHUNK):
                    h.update(chunk)
            self._digests[algorithm] = h.finalize()
        return self._digests[algorithm]


def _hash(algorithm: str) -> hashes.Hash:
    return hashes.Hash(get_pyca_cryptography_hash(algorithm))


def _signer_cert(
    signer_info: cms.SignerInfo, certs: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate | None:
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number" and match_issuer_serial(sid.chosen, cert):
            return cert
        if sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return cert
    return None


def _embedded_revocation(signed_data: cms.SignedData) -> tuple[list[bytes], list[bytes]]:
    crls: list[bytes] = []
    ocsps: list[bytes] = []
    for choice in signed_data["crls"] or []:
        if choice.name == "crl":
            crls.append(choice.chosen.dump())
        elif choice.chosen["other_rev_info_format"].native == "ocsp_response":
            ocsps.append(choice.chosen["other_rev_info"].dump())
    return crls, ocsps


def _attr_values(attrs: cms.CMSAttributes, name: str) -> list[object]:
    if isinstance(attrs, core.Void):
        return []
    return list(find_cms_attribute_iter(attrs, name))


async def _signer_findings(
    signed_data: cms.SignedData,
    signer_info: cms.SignerInfo,
    content: _Content,
    certs: list[asn1_x509.Certificate],
    trust: TrustContext,
    index: int,
    count: int,
) -> Findings:
    crls, ocsps = _embedded_revocation(signed_data)
    signed_attrs = signer_info["signed_attrs"]
    unsigned_attrs = signer_info["unsigned_attrs"]
    digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    mechanism = signer_info["signature_algorithm"]["algorithm"].native
    signer = _signer_cert(signer_info, certs)

    cades = (
        not isinstance(signed_attrs, core.Void) and get_signing_cert_attr(signed_attrs) is not None
    )
    tokens = _attr_values(unsigned_attrs, "signature_time_stamp_token")
    if not cades:
        name = "CMS"
    elif tokens and (crls or ocsps):
        name = "CAdES-B-LT"
    elif tokens:
        name = "CAdES-B-T"
    else:
        name = "CAdES-B-B"
    findings = Findings(
        format=name,
        signer=signer,
        other_certs=[c for c in certs if c is not signer],
        crls=crls,
        ocsps=ocsps,
        field_name=f"signer {index + 1}" if count > 1 else None,
    )
    weak = [a for a in (digest_algorithm, mechanism) if weak_hash(a)]
    if weak:
        findings.weak_algorithm = weak[0]
    if not isinstance(signed_attrs, core.Void):
        times = _attr_values(signed_attrs, "signing_time")
        if times:
            findings.claimed_signing_time = times[0].native  # type: ignore[attr-defined]

    if content.data is None:
        findings.signed_data_missing = True
        return findings
    if signer is None:
        return findings
    try:
        actual = content.digest(digest_algorithm)
        findings.intact, findings.valid = validate_sig_integrity(
            signer_info,
            signer,
            expected_content_type=signed_data["encap_content_info"]["content_type"].native,
            actual_digest=actual,
        )
    except SignatureValidationError as exc:
        if exc.ades_subindication is AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND:
            findings.signer = None  # signing-certificate-v2 names another certificate
        else:
            findings.format_problem = exc.failure_message
        return findings
    except (CMSStructuralError, ValueError, NotImplementedError) as exc:
        findings.format_problem = str(exc)
        return findings

    for token in tokens:

        def imprint(hash_name: str, si: cms.SignerInfo = signer_info) -> bytes:
            h = _hash(hash_name)
            h.update(si["signature"].native)
            return h.finalize()

        findings.timestamps.append(
            await _check_timestamp(token, imprint, trust, crls, ocsps)  # type: ignore[arg-type]
        )
    return findings


def _content_for(signed_data: cms.SignedData, data: bytes | IO[bytes] | None) -> _Content:
    encapsulated = signed_data["encap_content_info"]["content"]
    if not isinstance(encapsulated, core.Void):
        # Attached content wins: it is what was signed. (A separate data argument is
        # ignored rather than compared, so a caller cannot make an attached signature fail.)
        return _Content(bytes(encapsulated))
    return _Content(data)


def validate_cms(
    signature: bytes,
    data: bytes | IO[bytes] | None,
    trust: TrustContext,
    *,
    name: str = "signature.p7s",
) -> ValidationReport:
    """Validate a CMS/CAdES signature (DER or PEM). A detached signature needs ``data``
    (bytes or a binary file object, read in chunks); an attached one carries its content.
    Not a CMS signature at all → ``InvalidInput``."""
    signed_data = _load_signed_data(signature)
    content = _content_for(signed_data, data)
    certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]

    async def run() -> list[SignatureReport]:
        infos = list(signed_data["signer_infos"])
        reports = []
        for index, signer_info in enumerate(infos):
            findings = await _signer_findings(
                signed_data, signer_info, content, certs, trust, index, len(infos)
            )
            reports.append(await _judge(findings, trust))
        return reports

    report = ValidationReport(
        document=name,
        document_kind="cms",
        signatures=run_sync(run()),
        validated_at=clock.now(),
    )
    return summarize(report)
