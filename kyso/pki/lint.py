"""Pre-issuance lint of certificates, CRLs and OCSP responses with pkilint.

A thin typed wrapper around pkilint's Python API. The validator trees are the ones
pkilint's own command-line linters build (``lint_pkix_cert lint``, ``lint_crl -t crl -p pkix
lint``, ``lint_ocsp_response lint``); they are built once per process on first use and then
shared. pkilint validators keep no state between documents, so sharing them between
threads is safe; each call decodes its own document.

Findings of severity DEBUG are dropped, as the pkilint command line does by default.
A DER blob that does not even decode yields one FATAL finding (``kyso.lint.decoding_failed``)
instead of an exception, so ``errors(...)`` fails closed.

pkilint's RFC 5280 CRL profile has no rules of its own for delta CRLs (its CRL/ARL type
switch only matters to the CA/B Forum profile). ``lint_crl(der, delta=...)`` adds two checks
in the ``kyso.`` namespace using pkilint's validator classes: a delta CRL must carry a
critical deltaCRLIndicator (RFC 5280 section 5.2.4), a complete CRL must not carry one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pkilint import loader, pkix, validation
from pkilint.document import PDUNode
from pkilint.pkix import certificate, crl, extension, name, ocsp
from pkilint.validation import ValidationFindingSeverity as _Sev
from pyasn1_alt_modules import rfc5280

__all__ = [
    "Finding",
    "errors",
    "lint_certificate",
    "lint_crl",
    "lint_ocsp_response",
]

_REPORTED = frozenset({_Sev.FATAL, _Sev.ERROR, _Sev.WARNING, _Sev.NOTICE, _Sev.INFO})
_FAILING = frozenset({"FATAL", "ERROR"})

DECODING_FAILED = "kyso.lint.decoding_failed"
DELTA_INDICATOR_MISSING = "kyso.crl_delta_indicator_missing"
DELTA_INDICATOR_NOT_CRITICAL = "kyso.crl_delta_indicator_not_critical"
DELTA_INDICATOR_IN_FULL_CRL = "kyso.crl_delta_indicator_in_complete_crl"


@dataclass(frozen=True)
class Finding:
    """One pkilint finding."""

    severity: str  # "FATAL", "ERROR", "WARNING", "NOTICE", "INFO"
    code: str  # pkilint's finding code, e.g. "pkix.authority_key_identifier_missing"
    node_path: str  # e.g. "certificate.tbsCertificate.extensions.2"
    message: str | None

    def __str__(self) -> str:
        msg = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} @ {self.node_path}{msg}"


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that must stop issuance: severity ERROR or FATAL."""
    return [f for f in findings if f.severity in _FAILING]


# --- validator trees, built once per process ------------------------------------------


def describe(findings: Iterable[Finding]) -> str:
    """One line for an error message: each finding's code, place and pkilint's words."""
    return "; ".join(
        f"{f.code} at {f.node_path}" + (f": {f.message}" if f.message else "") for f in findings
    )


@functools.cache
def _certificate_validator() -> validation.ValidatorContainer:
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


class _DeltaIndicatorAbsenceValidator(validation.Validator):
    """A complete CRL must not carry deltaCRLIndicator."""

    FINDING = validation.ValidationFinding(_Sev.ERROR, DELTA_INDICATOR_IN_FULL_CRL)

    def __init__(self) -> None:
        super().__init__(validations=[self.FINDING], pdu_class=rfc5280.CertificateList)

    def validate(self, node: PDUNode) -> None:
        if node.document.get_extension_by_oid(rfc5280.id_ce_deltaCRLIndicator) is not None:
            raise validation.ValidationFindingEncountered(
                self.FINDING, "deltaCRLIndicator present but a complete CRL was expected"
            )


def _delta_validators(delta: bool) -> list[validation.Validator]:
    if not delta:
        return [_DeltaIndicatorAbsenceValidator()]
    return [
        extension.ExtensionPresenceValidator(
            extension_oid=rfc5280.id_ce_deltaCRLIndicator,
            validation=validation.ValidationFinding(_Sev.ERROR, DELTA_INDICATOR_MISSING),
            pdu_class=rfc5280.CertificateList,
        ),
        extension.ExtensionCriticalityValidator(
            type_oid=rfc5280.id_ce_deltaCRLIndicator,
            is_critical=True,
            validation=validation.ValidationFinding(_Sev.ERROR, DELTA_INDICATOR_NOT_CRITICAL),
        ),
    ]


@functools.cache
def _crl_validator(delta: bool) -> validation.ValidatorContainer:
    # PKIX profile, CRL type "CRL": pkilint's CLI uses the type only for the BR profile.
    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
            *_delta_validators(delta),
        ],
    )


@functools.cache
def _ocsp_validator() -> validation.ValidatorContainer:
    return ocsp.create_pkix_ocsp_response_validator_container(
        [
            ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )


# --- running -------------------------------------------------------------------------


def _run(
    load: Callable[..., Any], validator: validation.ValidatorContainer, der: bytes, kind: str
) -> list[Finding]:
    try:
        doc = load(bytes(der), kind, kind)
    except ValueError as e:  # not DER, or does not match the ASN.1 schema
        return [Finding("FATAL", DECODING_FAILED, kind, str(e))]

    return [
        Finding(
            severity=fd.finding.severity.name,
            code=fd.finding.code,
            node_path=result.node.path,
            message=fd.message,
        )
        for result in validator.validate(doc.root)
        for fd in result.finding_descriptions
        if fd.finding.severity in _REPORTED
    ]


def lint_certificate(der: bytes) -> list[Finding]:
    """RFC 5280 lint of one DER certificate, as ``lint_pkix_cert lint``."""
    return _run(loader.load_der_certificate, _certificate_validator(), der, "certificate")


def lint_crl(der: bytes, *, delta: bool = False) -> list[Finding]:
    """RFC 5280 lint of one DER CRL, as ``lint_crl -t crl -p pkix lint``.

    ``delta=True`` lints a delta CRL: it must then carry a critical deltaCRLIndicator;
    with ``delta=False`` the presence of one is an error.
    """
    return _run(loader.load_der_crl, _crl_validator(delta), der, "crl")


def lint_ocsp_response(der: bytes) -> list[Finding]:
    """RFC 6960 lint of one DER OCSP response, as ``lint_ocsp_response lint``."""
    return _run(loader.load_der_ocsp_response, _ocsp_validator(), der, "ocsp_response")
