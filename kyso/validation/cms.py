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
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.general import (
    CMSExtractionError,
    CMSStructuralError,
    MultivaluedAttributeError,
    NonexistentAttributeError,
    check_ess_certid,
    find_unique_cms_attribute,
    match_issuer_serial,
)
from pyhanko.sign.validation.errors import (
    CMSAlgorithmProtectionError,
    SignatureValidationError,
)
from pyhanko.sign.validation.generic_cms import (
    get_signing_cert_attr,
    validate_algorithm_protection,
    validate_tst_signed_data,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.utils import extract_message_digest
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
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator, SignatureValidationContext
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from kyso import clock
from kyso.coroutines import run_sync
from kyso.errors import InvalidInput
from kyso.trust import TrustContext
from kyso.validation import messages
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    Note,
    RevocationEvidence,
    RevocationStatus,
    ScopeKind,
    SignatureReport,
    SignatureScope,
    SubIndication,
    ValidationReport,
)

__all__ = [
    "SIGNER_KEY_USAGE",
    "Findings",
    "TimestampCheck",
    "certificate_info",
    "check_timestamp",
    "judge",
    "path_failure",
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
    notes: list[Note] = field(default_factory=list)  # said in the report, verdict unchanged
    scope: list[SignatureScope] = field(default_factory=list)  # what the signature covers


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
    # These only let kyso's own CA answer for certificates it issued; one that cryptography
    # refuses (asn1crypto is more lenient) cannot be one of those, and certvalidator still
    # sees it through the signature's certificate set.
    certs = []
    for cert in for_certs:
        try:
            certs.append(cx509.load_der_x509_certificate(cert.dump()))
        except ValueError:
            continue
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
    moment: datetime | None = None,
) -> _CertificateCheck:
    chain_certs = [cert, *others]
    context = _context(trust, moment=moment, for_certs=chain_certs, crls=crls, ocsps=ocsps)
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
    """The verdict for a path validation failure (after any re-check at the POE).

    This is kyso's one reading of pyhanko-certvalidator's outcomes as EN 319 102-1
    sub-indications (§5.2.6 X.509 certificate validation); the sentence for each is in
    kyso.validation.messages. A problem with the revocation data itself (none found, too
    old, or signed by a responder whose own certificate is revoked or expired: certvalidator's
    "side validation") is TRY_LATER — the status could not be checked — never a chain fault.
    """
    indeterminate = Indication.INDETERMINATE
    if isinstance(error, RevokedError | ExpiredError) and error.is_side_validation:
        return result(None, indeterminate, SubIndication.TRY_LATER, error=error)
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
        # Policies, name constraints, path length, basicConstraints, key usage: the X.509
        # validation constraints (EN 319 102-1 §5.2.6.4).
        return result(
            None,
            indeterminate,
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            anchored=isinstance(error, PathValidationError),
            error=error,
        )
    # Anything else (a certificate certvalidator could not process) is no known constraint.
    return result(
        None, indeterminate, SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, anchored=False
    )


async def path_failure(
    cert: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    context: ValidationContext,
    key_usage: KeyUsageConstraints = SIGNER_KEY_USAGE,
) -> tuple[Indication, SubIndication | None]:
    """Why ``cert`` does not validate in ``context``, read by kyso's one mapping of
    certvalidator's errors (:func:`_map_error`). For validators whose library reports only a
    general failure: pyHanko gives CERTIFICATE_CHAIN_GENERAL_FAILURE for missing revocation
    data, which is TRY_LATER (EN 319 102-1 §5.2.6), not a fault of the chain."""
    path, error = await _find_path(cert, others, context, key_usage)
    if path is not None:
        return Indication.TOTAL_PASSED, None

    def verdict(
        _path: ValidationPath | None, indication: Indication, sub: SubIndication | None, **_: object
    ) -> _CertificateCheck:
        none = RevocationEvidence(RevocationStatus.NOT_CHECKED, "none")
        return _CertificateCheck([], False, none, indication, sub)

    check = _map_error(error, None, verdict)
    return check.indication, check.sub_indication


# -- time-stamps --------------------------------------------------------------------------


_NOT_THIS_SIGNATURE = "the time-stamp does not match this signature"


async def _check_timestamp(
    token: cms.ContentInfo,
    expected_imprint: Callable[[str], bytes],
    trust: TrustContext,
    crls: list[bytes],
    ocsps: list[bytes],
    moment: datetime | None = None,
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
        imprint = tst_info["message_imprint"]
        matches = imprint["hashed_message"].native == expected_imprint(
            imprint["hash_algorithm"]["algorithm"].native
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return TimestampCheck(None, False, False, problem="the time-stamp token is damaged")
    if not matches:
        return TimestampCheck(gen_time, False, False, problem=_NOT_THIS_SIGNATURE)
    if tsa_cert is None:  # cannot be checked, not shown to be broken either
        return TimestampCheck(gen_time, True, False, problem="the TSA certificate is missing")
    context = _context(trust, moment=moment, for_certs=certs, crls=crls, ocsps=ocsps)
    try:
        status = await validate_tst_signed_data(signed_data, context, expected_imprint)
    except SignatureValidationError as exc:
        if exc.ades_subindication is AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND:
            # Its signing-certificate attribute names another certificate (EU DSS's
            # cms-wrong-sign-cert-ref.p7m): the TSA is not identified, so the time-stamp
            # proves nothing, but nothing shows it altered either.
            unknown = "the TSA's certificate cannot be identified"
            return TimestampCheck(gen_time, True, False, certificate_info(tsa_cert), unknown)
        return TimestampCheck(gen_time, False, False, certificate_info(tsa_cert), str(exc))
    except (CMSExtractionError, CMSStructuralError, ValueError) as exc:
        return TimestampCheck(gen_time, False, False, certificate_info(tsa_cert), str(exc))
    intact = bool(status["intact"] and status["valid"])
    trusted = intact and status["trust_problem_indic"] is None and status["validation_path"]
    problem: str | None = None
    if not intact:
        problem = _NOT_THIS_SIGNATURE
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
    moment: datetime | None = None,
) -> TimestampCheck:
    """Check an RFC 3161 token whose imprint should be ``expected_imprint(hash_name)``,
    as of ``moment`` (default: now)."""
    if isinstance(token, bytes):
        try:
            token = cms.ContentInfo.load(token)
            token["content"]
        except (ValueError, TypeError, KeyError):
            return TimestampCheck(None, False, False, problem="the time-stamp token is damaged")
    return run_sync(
        _check_timestamp(token, expected_imprint, trust, list(crls), list(ocsps), moment)
    )


# -- judgement ----------------------------------------------------------------------------


async def _judge(
    findings: Findings, trust: TrustContext, moment: datetime | None = None
) -> SignatureReport:
    report = SignatureReport(
        indication=Indication.TOTAL_PASSED,
        sub_indication=None,
        signer=certificate_info(findings.signer) if findings.signer is not None else None,
        format=findings.format,
        field_name=findings.field_name,
        claimed_signing_time=findings.claimed_signing_time,
        integrity=findings.intact and findings.valid,
        notes=list(findings.notes),
        scope=list(findings.scope),
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
            moment=moment,
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


def judge(
    findings: Findings, trust: TrustContext, *, moment: datetime | None = None
) -> SignatureReport:
    """The report for one signature from what its reader found, as of ``moment`` (default:
    now; a past moment validates files whose certificates have since expired)."""
    return run_sync(_judge(findings, trust, moment))


# -- the whole report --------------------------------------------------------------------


def summarize(report: ValidationReport) -> ValidationReport:
    """Fill the report-level sentence (kyso.validation.messages) and return the report."""
    report.message_vi, report.message_en = messages.summarize(report)
    return report


# -- reading CMS --------------------------------------------------------------------------

_PEM = re.compile(rb"-----BEGIN (PKCS7|CMS|PKCS #7 SIGNED DATA)-----(.+?)-----END \1-----", re.S)

#: Signatures (signers and countersignatures together) in one CMS above which it is refused:
#: each costs a path validation, and no real document carries so many.
MAX_SIGNATURES = 64
#: Countersignatures of countersignatures are followed this deep.
MAX_COUNTER_DEPTH = 4

_DAMAGED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


def _unarmor(signature: bytes) -> bytes:
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
    return data


def _first_element(data: bytes) -> bytes:
    """The first BER/DER element of ``data``. NUL bytes after it (the fixed-size buffers of
    some card middleware; EU DSS's test files carry such padding) are dropped; anything else
    after it is not part of a signature and makes the input damaged."""
    _, _, _, header, contents, trailer = asn1_parser.parse(data)
    end = len(header) + len(contents) + len(trailer)
    if data[end:].strip(b"\x00"):
        raise ValueError(f"{len(data) - end} bytes after the CMS structure")
    return data[:end]


def _load_signed_data(signature: bytes) -> cms.SignedData:
    data = _unarmor(signature)
    try:
        content_info = cms.ContentInfo.load(_first_element(data), strict=True)
        content_type = content_info["content_type"].native
        if content_type != "signed_data":
            raise InvalidInput(
                f"a CMS {content_type} object, not a signature (SignedData)",
                vi=f"đối tượng CMS loại {content_type}, không phải chữ ký (SignedData)",
            )
        signed_data = content_info["content"]
        # asn1crypto parses lazily: parse the structure now, so damage shows up here as
        # InvalidInput rather than deep inside validation. (Not via ``.native``, which makes
        # asn1crypto re-encode whole structures on every dump.) The content may be huge and
        # is left alone; so are the signers' attributes, whose values are read one by one
        # later: one that asn1crypto cannot parse strictly does not make the signature
        # unreadable (the signature is over the attributes' bytes as received).
        for name in ("digest_algorithms", "certificates", "crls"):
            part = signed_data[name]
            if not isinstance(part, core.Void):
                part._parse_children(recurse=True)
        signed_data["encap_content_info"]["content_type"].dotted  # noqa: B018
        infos = signed_data["signer_infos"]
        for info in infos:
            _parse_signer_info(info)
    except InvalidInput:
        raise
    except _DAMAGED as exc:
        raise InvalidInput(
            "not a CMS/PKCS#7 signature, or a damaged or truncated one",
            vi="không phải chữ ký CMS/PKCS#7, hoặc tệp chữ ký bị hỏng hay bị cắt cụt",
        ) from exc
    if len(infos) == 0:
        raise InvalidInput("the CMS signature has no signer", vi="chữ ký CMS không có người ký")
    return signed_data


def _parse_signer_info(info: cms.SignerInfo) -> None:
    """Parse a SignerInfo's own fields (not its attributes' values)."""
    info["sid"].chosen  # noqa: B018
    info["digest_algorithm"]._parse_children(recurse=True)
    info["signature_algorithm"]._parse_children(recurse=True)
    info["signature"].native  # noqa: B018
    for name in ("signed_attrs", "unsigned_attrs"):
        attrs = info[name]
        if not isinstance(attrs, core.Void):
            attrs._parse_children()  # the SET OF and each attribute's header


def _econtent(signed_data: cms.SignedData) -> bytes | None:
    """The encapsulated content's bytes, or None when the signature is detached. An
    eContent whose type names a structure (e.g. signedData) that its bytes do not parse as
    is still just the bytes that were signed."""
    eci = signed_data["encap_content_info"]
    try:
        content = eci["content"]
    except _DAMAGED:
        rest = eci.contents
        _, _, _, header, _, trailer = asn1_parser.parse(rest)  # eContentType
        rest = rest[len(header) + len(eci["content_type"].contents) + len(trailer) :]
        if not rest:
            return None
        _, _, _, _, explicit, _ = asn1_parser.parse(rest)  # [0] EXPLICIT OCTET STRING
        return bytes(core.OctetString.load(explicit))
    if isinstance(content, core.Void):
        return None
    if isinstance(content, core.ParsableOctetString | core.OctetString):
        return bytes(content)
    return bytes(content.contents or b"")


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

    def size(self) -> int | None:
        if isinstance(self.data, bytes | bytearray | memoryview):
            return len(self.data)
        if self.data is None:
            return None
        self.data.seek(0, 2)
        return self.data.tell()


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
            continue
        kind = choice.chosen["other_rev_info_format"].dotted
        value = choice.chosen["other_rev_info"]
        if kind == "1.3.6.1.5.5.7.16.2":  # id-ri-ocsp-response (RFC 5940): an OCSPResponse
            ocsps.append(value.dump())
        elif kind == "1.3.6.1.5.5.7.48.1.1":  # id-pkix-ocsp-basic (EN 319 122-1): the basic
            # response alone, as EU DSS writes it; certvalidator reads whole OCSPResponses.
            try:
                basic = asn1_ocsp.BasicOCSPResponse.load(value.dump())
                response = asn1_ocsp.OCSPResponse(
                    {
                        "response_status": "successful",
                        "response_bytes": {
                            "response_type": "basic_ocsp_response",
                            "response": basic,
                        },
                    }
                )
                ocsps.append(response.dump())
            except _DAMAGED:
                continue
    return crls, ocsps


def _attr_values(attrs: cms.CMSAttributes, name: str) -> list[object]:
    """The values of every readable attribute called ``name`` (unreadable ones are noted
    by :func:`_attribute_notes`)."""
    if isinstance(attrs, core.Void):
        return []
    found: list[object] = []
    for attr in attrs:
        try:
            if attr["type"].native != name:
                continue
            values = attr["values"]
            values._parse_children(recurse=True)
            found.extend(values)
        except _DAMAGED:
            continue
    return found


#: Signed attributes kyso reads but does not act on; their presence is said.
_NOT_CHECKED = {
    "signature_policy_identifier": (
        "chính sách chữ ký (signature policy) được nêu trong chữ ký nhưng kyso không kiểm tra "
        "chữ ký theo chính sách đó",
        "the signature names a signature policy; kyso does not validate against it",
    ),
}


def _attribute_notes(attrs: cms.CMSAttributes, *, signed: bool) -> list[Note]:
    """Attributes a reader should know about: ones that cannot be read strictly, ones kyso
    does not interpret. Read from a copy so the signed bytes are never touched."""
    if isinstance(attrs, core.Void):
        return []
    kind_vi, kind_en = ("được ký", "signed") if signed else ("không ký", "unsigned")
    effect_vi, effect_en = (
        (
            "chữ ký vẫn được kiểm tra trên các thuộc tính đúng như đã nhận, nhưng nội dung "
            "thuộc tính này không được dùng",
            "the signature was verified over the attributes exactly as received, but this "
            "attribute's content was not used",
        )
        if signed
        else ("thuộc tính này bị bỏ qua", "it was ignored")
    )
    notes: list[Note] = []
    try:
        copy = cms.CMSAttributes.load(attrs.untag().dump())
        items = list(copy)
    except _DAMAGED:
        return [
            Note(
                f"Không đọc được các thuộc tính {kind_vi} của chữ ký; {effect_vi}.",
                f"The {kind_en} attributes of the signature could not be read; {effect_en}.",
            )
        ]
    for attr in items:
        try:
            oid = attr["type"].dotted
            name = attr["type"].native
        except _DAMAGED:
            notes.append(
                Note(
                    f"Một thuộc tính {kind_vi} không đọc được; {effect_vi}.",
                    f"An {kind_en} attribute could not be read; {effect_en}.",
                )
            )
            continue
        try:
            attr["values"]._parse_children(recurse=True)
        except _DAMAGED:
            label = f"{name} ({oid})" if name != oid else oid
            notes.append(
                Note(
                    f"Thuộc tính {kind_vi} {label} không đọc được theo chuẩn ASN.1; {effect_vi}.",
                    f"The {kind_en} attribute {label} could not be read as its ASN.1 "
                    f"definition says; {effect_en}.",
                )
            )
            continue
        if name == oid:
            notes.append(
                Note(
                    f"Chữ ký có thuộc tính {kind_vi} kyso không diễn giải (OID {oid}).",
                    f"The signature carries an {kind_en} attribute kyso does not interpret "
                    f"(OID {oid}).",
                )
            )
        elif signed and name in _NOT_CHECKED:
            vi, en = _NOT_CHECKED[name]
            notes.append(Note(vi[0].upper() + vi[1:] + ".", en[0].upper() + en[1:] + "."))
    return notes


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _signed_attrs_encodings(attrs: cms.CMSAttributes) -> list[bytes]:
    """What a signature over signed attributes may be over: the attributes as received,
    re-tagged as a SET OF (RFC 5652 §5.4); then, if it differs, their DER encoding (the SET
    sorted, definite lengths), which is what the standard says is signed and what a signer
    that sends them in another order signed (EU DSS's DSS-667 files)."""
    contents = attrs.contents or b""
    received = b"\x31" + _der_length(len(contents)) + contents
    elements = []
    rest = contents
    while rest:
        _, _, _, header, body, trailer = asn1_parser.parse(rest)
        size = len(header) + len(body) + len(trailer)
        element = rest[:size]
        if trailer:  # indefinite length (BER): DER has a definite one
            element = header[:-1] + _der_length(len(body)) + body
        elements.append(element)
        rest = rest[size:]
    longest = max(map(len, elements), default=0)
    elements.sort(key=lambda e: e.ljust(longest, b"\x00"))  # X.690 §11.6
    sorted_contents = b"".join(elements)
    der = b"\x31" + _der_length(len(sorted_contents)) + sorted_contents
    return [received] if der == received else [received, der]


def _integrity(
    signer_info: cms.SignerInfo,
    cert: asn1_x509.Certificate,
    actual_digest: bytes,
    expected_content_type: str | None,
) -> tuple[bool, bool, bool]:
    """(intact, valid, valid only over the DER re-encoding) for one SignerInfo.

    As pyHanko's ``validate_sig_integrity`` (algorithm protection, signing-certificate
    reference, content type, message digest), except that the signature is checked over
    the signed attributes' own bytes, never over asn1crypto's re-encoding of them, and that
    a countersignature (``expected_content_type`` None) carries no content type (RFC 5652
    §11.4)."""
    signed_attrs = signer_info["signed_attrs"]
    md_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    algorithm = signer_info["signature_algorithm"]
    embedded: bytes | None = None
    if isinstance(signed_attrs, core.Void):
        candidates, prehashed = [actual_digest], True
    else:
        candidates, prehashed = _signed_attrs_encodings(signed_attrs), False
        try:
            validate_algorithm_protection(
                signed_attrs,
                claimed_digest_algorithm_obj=signer_info["digest_algorithm"],
                claimed_signature_algorithm_obj=algorithm,
                claimed_mac_algorithm_obj=None,
            )
        except CMSStructuralError as exc:
            raise SignatureValidationError(
                exc.failure_message, ades_subindication=AdESFailure.FORMAT_FAILURE
            ) from exc
        except CMSAlgorithmProtectionError as exc:
            raise SignatureValidationError(
                exc.failure_message, ades_subindication=AdESIndeterminate.GENERIC
            ) from exc
        reference = get_signing_cert_attr(signed_attrs)
        if reference is not None and not check_ess_certid(cert, reference["certs"][0]):
            raise SignatureValidationError(
                "the signing-certificate attribute names another certificate",
                ades_subindication=AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND,
            )
        if expected_content_type is not None:
            try:
                content_type = find_unique_cms_attribute(signed_attrs, "content_type").native
            except (NonexistentAttributeError, MultivaluedAttributeError) as exc:
                raise SignatureValidationError(
                    "no content-type attribute, or more than one",
                    ades_subindication=AdESFailure.FORMAT_FAILURE,
                ) from exc
            if content_type != expected_content_type:
                raise SignatureValidationError(
                    f"the content-type attribute says {content_type}, the content is "
                    f"{expected_content_type}",
                    ades_subindication=AdESFailure.FORMAT_FAILURE,
                )
        embedded = extract_message_digest(signer_info)
    verified_by: int | None = None
    for index, signed in enumerate(candidates):
        try:
            DefaultSignatureValidator().validate_signature(
                signer_info["signature"].native,
                signed,
                cert.public_key,
                algorithm,
                context=SignatureValidationContext(
                    contextual_md_algorithm=md_algorithm, prehashed=prehashed
                ),
            )
        except InvalidSignature:
            continue
        verified_by = index
        break
    valid = verified_by is not None
    intact = actual_digest == embedded if embedded is not None else valid
    return intact, valid, verified_by == 1


@dataclass
class _Signer:
    """One SignerInfo to judge: a signer of the content, or a countersigner of a signature."""

    info: cms.SignerInfo
    label: str | None
    path: str  # "1", "1.2": the signature's place, for countersignatures' scope
    content: _Content | None  # what a signer of the content signed (None: not given)
    attached: bool = False  # the content was inside the CMS
    countersigned: bytes | None = None  # the signature value a countersignature covers
    depth: int = 0


async def _signer_findings(
    signed_data: cms.SignedData,
    signer: _Signer,
    certs: list[asn1_x509.Certificate],
    revocation: tuple[list[bytes], list[bytes]],
    trust: TrustContext,
    moment: datetime | None,
) -> Findings:
    """What one signer (or countersigner) of ``signed_data`` shows; ``certs`` and
    ``revocation`` (CRLs, OCSP responses) are the CMS's own, read once for all its signers."""
    signer_info = signer.info
    crls, ocsps = revocation
    signed_attrs = signer_info["signed_attrs"]
    unsigned_attrs = signer_info["unsigned_attrs"]
    digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    mechanism = signer_info["signature_algorithm"]["algorithm"].native
    cert = _signer_cert(signer_info, certs)
    counter = signer.countersigned is not None

    try:
        cades = (
            not isinstance(signed_attrs, core.Void)
            and get_signing_cert_attr(signed_attrs) is not None
        )
    except _DAMAGED:
        cades = False  # an unreadable signing-certificate attribute is noted, not used
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
        format=f"{name} countersignature" if counter else name,
        signer=cert,
        other_certs=[c for c in certs if c is not cert],
        crls=crls,
        ocsps=ocsps,
        field_name=signer.label,
        scope=_scope(signer),
        notes=[
            *_attribute_notes(signed_attrs, signed=True),
            *_attribute_notes(unsigned_attrs, signed=False),
        ],
    )
    weak = [a for a in (digest_algorithm, mechanism) if weak_hash(a)]
    if weak:
        findings.weak_algorithm = weak[0]
    for value in _attr_values(signed_attrs, "signing_time"):
        try:
            findings.claimed_signing_time = value.native  # type: ignore[attr-defined]
        except _DAMAGED:
            continue
        break

    if not counter and (signer.content is None or signer.content.data is None):
        findings.signed_data_missing = True
        return findings
    if cert is None:
        return findings
    try:
        if signer.countersigned is not None:
            h = _hash(digest_algorithm)
            h.update(signer.countersigned)
            actual, content_type = h.finalize(), None
        else:
            assert signer.content is not None
            actual = signer.content.digest(digest_algorithm)
            content_type = signed_data["encap_content_info"]["content_type"].native
        findings.intact, findings.valid, reencoded = _integrity(
            signer_info, cert, actual, content_type
        )
        if reencoded:
            findings.notes.append(
                Note(
                    "Các thuộc tính được ký được gửi không theo thứ tự DER; chữ ký khớp với "
                    "mã hóa DER của chúng (RFC 5652 §5.4).",
                    "The signed attributes were sent out of DER order; the signature matches "
                    "their DER encoding (RFC 5652 §5.4).",
                )
            )
    except SignatureValidationError as exc:
        if exc.ades_subindication is AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND:
            findings.signer = None  # signing-certificate-v2 names another certificate
        else:
            findings.format_problem = exc.failure_message
        return findings
    except (CMSStructuralError, NotImplementedError, *_DAMAGED) as exc:
        findings.format_problem = str(exc)
        return findings

    for token in tokens:

        def imprint(hash_name: str, si: cms.SignerInfo = signer_info) -> bytes:
            h = _hash(hash_name)
            h.update(si["signature"].native)
            return h.finalize()

        findings.timestamps.append(
            await _check_timestamp(token, imprint, trust, crls, ocsps, moment)  # type: ignore[arg-type]
        )
    return findings


def _countersigners(signer: _Signer, notes: list[Note]) -> list[_Signer]:
    """The countersignatures of ``signer`` (RFC 5652 §11.4 unsigned attribute; CAdES uses
    the same), each over ``signer``'s signature value."""
    found = _attr_values(signer.info["unsigned_attrs"], "counter_signature")
    if found and signer.depth >= MAX_COUNTER_DEPTH:
        notes.append(
            Note(
                f"Có chữ ký xác nhận lồng sâu hơn {MAX_COUNTER_DEPTH} cấp; chúng không được "
                "kiểm tra.",
                f"Countersignatures nested deeper than {MAX_COUNTER_DEPTH} levels were not "
                "checked.",
            )
        )
        return []
    value = signer.info["signature"].native
    counters = []
    for index, info in enumerate(found, start=1):
        assert isinstance(info, cms.SignerInfo)
        try:
            _parse_signer_info(info)
        except _DAMAGED:
            notes.append(
                Note(
                    "Một chữ ký xác nhận (countersignature) bị hỏng, không đọc được.",
                    "A countersignature is damaged and could not be read.",
                )
            )
            continue
        path = f"{signer.path}.{index}"
        counters.append(
            _Signer(
                info,
                f"countersignature {path}",
                path,
                None,
                countersigned=value,
                depth=signer.depth + 1,
            )
        )
    return counters


def _count_signatures(infos: Iterable[cms.SignerInfo], depth: int = 0) -> int:
    total = 0
    for info in infos:
        total += 1
        if depth < MAX_COUNTER_DEPTH:
            nested = [
                i
                for i in _attr_values(info["unsigned_attrs"], "counter_signature")
                if isinstance(i, cms.SignerInfo)
            ]
            total += _count_signatures(nested, depth + 1)
    return total


def _scope(signer: _Signer) -> list[SignatureScope]:
    if signer.countersigned is not None:
        parent = signer.path.rsplit(".", 1)[0]
        return [
            SignatureScope(
                ScopeKind.SIGNATURE,
                f"giá trị của chữ ký {parent} (chữ ký xác nhận, RFC 5652 §11.4)",
                f"the signature value of signature {parent} (a countersignature, RFC 5652 §11.4)",
            )
        ]
    content = signer.content
    size = content.size() if content is not None else None
    if content is None or size is None:
        return [
            SignatureScope(
                ScopeKind.NOTHING,
                "dữ liệu đã ký không có trong chữ ký và không được cung cấp",
                "the signed data is not in the signature and was not given",
            )
        ]
    if signer.attached:
        return [
            SignatureScope(
                ScopeKind.FULL,
                f"toàn bộ nội dung đính kèm trong chữ ký ({size} byte)",
                f"all of the content carried inside the signature ({size} bytes)",
            )
        ]
    sha256 = content.digest("sha256").hex()
    return [
        SignatureScope(
            ScopeKind.DETACHED,
            f"tệp dữ liệu gửi kèm, tách rời chữ ký ({size} byte, SHA-256 {sha256})",
            f"the separate data file given with the signature ({size} bytes, SHA-256 {sha256})",
        )
    ]


def validate_cms(
    signature: bytes,
    data: bytes | IO[bytes] | None,
    trust: TrustContext,
    *,
    name: str = "signature.p7s",
    moment: datetime | None = None,
) -> ValidationReport:
    """Validate a CMS/CAdES signature (DER or PEM). A detached signature needs ``data``
    (bytes or a binary file object, read in chunks); an attached one carries its content.
    Each countersignature is judged on its own and reported under the signature it signs.
    ``moment`` validates as of another time (default: now). Not a CMS signature at all →
    ``InvalidInput``."""
    signed_data = _load_signed_data(signature)
    infos = list(signed_data["signer_infos"])
    if _count_signatures(infos) > MAX_SIGNATURES:
        raise InvalidInput(
            f"more than {MAX_SIGNATURES} signatures and countersignatures in one CMS",
            vi=f"quá {MAX_SIGNATURES} chữ ký và chữ ký xác nhận trong một tệp CMS",
        )
    try:
        encapsulated = _econtent(signed_data)
    except _DAMAGED as exc:
        raise InvalidInput(
            "the signed content inside the CMS is damaged",
            vi="nội dung đã ký bên trong tệp CMS bị hỏng",
        ) from exc
    # Attached content wins: it is what was signed. (A separate data argument is ignored
    # rather than compared, so a caller cannot make an attached signature fail.)
    attached = encapsulated is not None
    content = _Content(encapsulated if attached else data)
    certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    revocation = _embedded_revocation(signed_data)

    async def judged(signer: _Signer) -> SignatureReport:
        findings = await _signer_findings(signed_data, signer, certs, revocation, trust, moment)
        counters = _countersigners(signer, findings.notes)
        report = await _judge(findings, trust, moment)
        report.counter_signatures = [await judged(c) for c in counters]
        return report

    async def run() -> list[SignatureReport]:
        return [
            await judged(
                _Signer(info, f"signer {i}" if len(infos) > 1 else None, str(i), content, attached)
            )
            for i, info in enumerate(infos, start=1)
        ]

    report = ValidationReport(
        document=name,
        document_kind="cms",
        signatures=run_sync(run()),
        validated_at=moment or clock.now(),
    )
    return summarize(report)
