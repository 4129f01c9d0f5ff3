"""RFC 3161 time-stamp authority, with the RFC 5816 ESSCertIDv2 signing-certificate attribute.

``TimeStampAuthority.respond`` takes a DER ``TimeStampReq`` (the body of an
``application/timestamp-query`` POST) and always returns a DER ``TimeStampResp``: a request it
cannot honour gets status ``rejection`` with a PKIFailureInfo bit and a statusString, never an
exception. ``TimeStampAuthority.stamp`` is the in-process entry point for kyso's own signing
code (PAdES B-T and the like) and returns the bare TimeStampToken (a CMS ``ContentInfo``).

The token is built with asn1crypto and signed only through the :class:`SigningKey` protocol,
so the TSA key may live in an HSM. Layout (RFC 3161 section 2.4.2, RFC 5652, RFC 5816):

* SignedData version 3 (eContentType is id-ct-TSTInfo, not id-data), one digest algorithm;
* certificates: the TSA certificate and the configured chain, only when the request asked;
* one SignerInfo, version 1, sid issuerAndSerialNumber; signed attributes contentType,
  messageDigest and signingCertificateV2 (ESSCertIDv2 over SHA-256 of the TSA certificate,
  hashAlgorithm left at its default, issuerSerial present); the signature covers the DER of
  the attributes as a SET OF (tag 0x31), not the ``[0] IMPLICIT`` form stored in SignerInfo;
* signature algorithm ``rsassa_pkcs1v15`` (parameters NULL) for RSA keys, ``shaNNN_ecdsa``
  for EC keys, with the key's ``algorithm.default_hash()``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence

from asn1crypto import algos, cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from kyso import clock
from kyso.errors import InvalidInput, KysoError, WeakHashError
from kyso.keys.base import SigningKey

__all__ = [
    "ACCEPTED_HASHES",
    "MAX_REQUEST_BYTES",
    "TimeStampAuthority",
    "TimeStampResp",
    "TsaUnavailable",
]

log = logging.getLogger(__name__)

#: Message-imprint hashes accepted, by asn1crypto name, with their digest lengths.
ACCEPTED_HASHES: dict[str, int] = {
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sha3_256": 32,
    "sha3_384": 48,
    "sha3_512": 64,
}

#: A TimeStampReq is ~100 bytes; anything far larger is not a request we will parse.
MAX_REQUEST_BYTES = 64 * 1024

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


class TsaUnavailable(KysoError):
    """The TSA cannot issue tokens now (certificate outside its validity, key store down)."""

    code = "tsa_unavailable"
    http_status = 503
    message_vi = "Dịch vụ cấp dấu thời gian tạm thời không cấp được dấu."
    message_en = "The time-stamping service cannot issue time-stamps right now."


class TimeStampResp(tsp.TimeStampResp):
    """RFC 3161 TimeStampResp with timeStampToken OPTIONAL, as the RFC has it.

    asn1crypto 1.5 declares the token mandatory, so it can neither build nor parse a
    rejection (status only); use this class to read responses.
    """

    _fields = [  # noqa: RUF012 - asn1crypto's class-level schema
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class _Rejected(Exception):
    """A request refused: carries the PKIFailureInfo bit and the statusString."""

    def __init__(self, failure: str, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


def _asn1_hash_name(hash_algorithm: hashes.HashAlgorithm) -> str:
    return hash_algorithm.name.replace("-", "_")


class TimeStampAuthority:
    """Issues RFC 3161 time-stamp tokens signed by ``key`` under ``certificate_der``.

    ``chain_der`` is the issuing chain (without the root, usually) sent alongside the TSA
    certificate when a request sets certReq. ``policy_oid`` is the TSA policy written into
    every TSTInfo; a request whose reqPolicy names another policy is refused.
    """

    def __init__(
        self,
        key: SigningKey,
        certificate_der: bytes,
        chain_der: Sequence[bytes] = (),
        *,
        policy_oid: str,
        accuracy_seconds: int = 1,
    ) -> None:
        if not _OID.match(policy_oid):
            raise InvalidInput(f"TSA policy {policy_oid!r} is not an OID")
        if accuracy_seconds < 1:
            raise InvalidInput("TSA accuracy must be at least one second")
        try:
            cert = cx509.load_der_x509_certificate(certificate_der)
            self._certificate = x509.Certificate.load(certificate_der, strict=True)
            chain = [x509.Certificate.load(der, strict=True) for der in chain_der]
        except ValueError as exc:
            raise InvalidInput("TSA certificate or chain is not DER X.509") from exc
        _check_certificate(cert, key)

        self._key = key
        self._policy = policy_oid
        self._accuracy = accuracy_seconds
        self._not_before = cert.not_valid_before_utc
        self._not_after = cert.not_valid_after_utc
        # The constant parts are kept as DER and re-loaded per token: asn1crypto re-encodes
        # a constructed ("mutated") tree on every dump of every ancestor, which made a
        # stamp cost ~30 ms; loaded values dump their cached bytes.
        self._certificates_der = cms.CertificateSet(
            [
                cms.CertificateChoices(name="certificate", value=c)
                for c in [self._certificate, *chain]
            ]
        ).dump()

        self._hash = key.algorithm.default_hash()
        hash_name = _asn1_hash_name(self._hash)
        if hash_name not in ACCEPTED_HASHES:
            raise WeakHashError(self._hash.name)
        # RFC 5754: SHA-2 AlgorithmIdentifiers are generated with absent parameters.
        self._digest_algorithm_der = algos.DigestAlgorithm(
            {"algorithm": hash_name, "parameters": None}
        ).dump()
        if key.algorithm.is_rsa:
            signature_algorithm = algos.SignedDigestAlgorithm(
                {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()}
            )
        else:
            signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})
        self._signature_algorithm_der = signature_algorithm.dump()

        tbs = self._certificate["tbs_certificate"]
        self._sid_der = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value=cms.IssuerAndSerialNumber(
                {"issuer": tbs["issuer"], "serial_number": tbs["serial_number"]}
            ),
        ).dump()
        cert_hash = hashes.Hash(hashes.SHA256())
        cert_hash.update(certificate_der)
        self._signing_certificate_der = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                # hashAlgorithm DEFAULT id-sha256 (RFC 5816): left out.
                                "cert_hash": cert_hash.finalize(),
                                "issuer_serial": {
                                    "issuer": [
                                        x509.GeneralName(name="directory_name", value=tbs["issuer"])
                                    ],
                                    "serial_number": tbs["serial_number"],
                                },
                            }
                        ]
                    }
                ],
            }
        ).dump()
        self._tsa_name_der = x509.GeneralName(name="directory_name", value=tbs["subject"]).dump()

    @property
    def policy_oid(self) -> str:
        return self._policy

    # -- public entry points -------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp; never raises for bad input.

        Refusals: badDataFormat (not a DER TimeStampReq, wrong version), badAlg (hash not
        accepted, digest length wrong), unacceptedPolicy (reqPolicy not ours),
        unacceptedExtension (any request extension), systemFailure (the TSA cannot sign now).
        """
        try:
            request = _parse_request(request_der)
            imprint = request["message_imprint"]
            _check_imprint(imprint["hash_algorithm"], imprint["hashed_message"].native)
            req_policy = request["req_policy"]
            if req_policy.native is not None and req_policy.dotted != self._policy:
                raise _Rejected(
                    "unaccepted_policy",
                    f"policy {req_policy.dotted} is not offered; this TSA uses {self._policy}",
                )
            if request["extensions"].native is not None:
                raise _Rejected("unaccepted_extensions", "request extensions are not supported")
            nonce = request["nonce"].native
            token = self._token(imprint, nonce, bool(request["cert_req"].native))
        except _Rejected as refusal:
            return _rejection(refusal.failure, refusal.text)
        except TsaUnavailable as exc:
            return _rejection("system_failure", exc.detail or "time-stamping unavailable")
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def stamp(
        self,
        digest: bytes,
        hash_name: str = "sha256",
        *,
        nonce: int | None = None,
        cert_req: bool = True,
    ) -> bytes:
        """The DER TimeStampToken (ContentInfo) over ``digest``, for in-process callers.

        Raises ``WeakHashError`` for a hash outside ACCEPTED_HASHES, ``InvalidInput`` for a
        digest of the wrong length, ``TsaUnavailable`` if the TSA cannot sign now.
        """
        name = hash_name.lower().replace("-", "_")
        if name not in ACCEPTED_HASHES:
            raise WeakHashError(hash_name)
        if len(digest) != ACCEPTED_HASHES[name]:
            raise InvalidInput(
                f"{name} digest must be {ACCEPTED_HASHES[name]} bytes, got {len(digest)}"
            )
        imprint = tsp.MessageImprint(
            {
                "hash_algorithm": {"algorithm": name, "parameters": None},
                "hashed_message": digest,
            }
        )
        return self._token(imprint, nonce, cert_req).dump()

    # -- token ---------------------------------------------------------------------------

    def _token(
        self, imprint: tsp.MessageImprint, nonce: int | None, cert_req: bool
    ) -> cms.ContentInfo:
        now = clock.now()
        if not self._not_before <= now <= self._not_after:
            raise TsaUnavailable(
                "the TSA certificate is not valid now",
                vi="chứng thư của dịch vụ dấu thời gian không còn hiệu lực",
            )
        serial = 0
        while serial == 0:
            serial = secrets.randbits(128)
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self._policy,
                "message_imprint": imprint,
                "serial_number": serial,
                "gen_time": now,
                "accuracy": {"seconds": self._accuracy},
                "ordering": False,
                "nonce": nonce,
                "tsa": x509.GeneralName.load(self._tsa_name_der),
            }
        )
        tst_der = tst_info.dump()
        content_digest = hashes.Hash(self._hash)
        content_digest.update(tst_der)

        attributes = [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [content_digest.finalize()]}),
            cms.CMSAttribute.load(self._signing_certificate_der),
        ]
        # The SET OF encoding (0x31, children DER-sorted by asn1crypto) is what is signed;
        # SignerInfo stores the same content under [0] IMPLICIT.
        signed_attrs_der = cms.CMSAttributes(attributes).dump()
        try:
            signature = self._key.sign(signed_attrs_der, self._hash)
        except Exception as exc:  # HSM gone, PKCS#11 error, store closed...
            log.exception("TSA key %s failed to sign", self._key.key_id)
            raise TsaUnavailable(
                "the TSA key could not sign", vi="khóa của dịch vụ dấu thời gian không ký được"
            ) from exc

        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": algos.DigestAlgorithm.load(self._digest_algorithm_der),
                "signed_attrs": cms.CMSAttributes.load(signed_attrs_der),
                "signature_algorithm": algos.SignedDigestAlgorithm.load(
                    self._signature_algorithm_der
                ),
                "signature": signature,
            }
        )
        signed_data = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm.load(self._digest_algorithm_der)],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": tsp.TSTInfo.load(tst_der),
            },
            "signer_infos": [signer_info],
        }
        if cert_req:
            signed_data["certificates"] = cms.CertificateSet.load(self._certificates_der)
        return cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )


# -- request checks ----------------------------------------------------------------------


def _parse_request(request_der: bytes) -> tsp.TimeStampReq:
    if not isinstance(request_der, bytes | bytearray | memoryview):
        raise _Rejected("bad_data_format", "request is not bytes")
    if not request_der:
        raise _Rejected("bad_data_format", "empty request")
    if len(request_der) > MAX_REQUEST_BYTES:
        raise _Rejected("bad_data_format", "request too large")
    try:
        request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
        request.native  # noqa: B018 - asn1crypto parses lazily: force every field now
        version = request["version"].native
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, ...
        raise _Rejected("bad_data_format", "request is not a DER TimeStampReq") from exc
    if version != "v1":
        raise _Rejected("bad_data_format", f"unsupported request version {version}")
    return request


def _check_imprint(algorithm: algos.DigestAlgorithm, hashed_message: bytes) -> None:
    name = algorithm["algorithm"].native
    if name not in ACCEPTED_HASHES:
        raise _Rejected(
            "bad_alg",
            f"hash algorithm {name} not accepted; use one of {', '.join(ACCEPTED_HASHES)}",
        )
    parameters = algorithm["parameters"]
    if parameters.native is not None:
        raise _Rejected("bad_alg", f"{name} takes no parameters")
    if len(hashed_message) != ACCEPTED_HASHES[name]:
        raise _Rejected(
            "bad_alg",
            f"{name} digest must be {ACCEPTED_HASHES[name]} bytes, got {len(hashed_message)}",
        )


def refusal(text: str) -> bytes:
    """A TimeStampResp for a request the TSA will not serve now (over the client's budget,
    every signing thread busy). RFC 3161 §2.4.2 has no "try later" (OCSP's tryLater) and
    ``waiting`` promises a later answer the HTTP transport (§3.4) cannot deliver, so it is
    ``rejection`` with ``systemFailure``, the one failInfo that does not blame the request;
    ``text`` says why, and the HTTP status (429 or 503, with Retry-After) says when."""
    return _rejection("system_failure", text)


def _rejection(failure: str, text: str) -> bytes:
    return TimeStampResp(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": {failure},
            }
        }
    ).dump()


# -- configuration checks ----------------------------------------------------------------


def _check_certificate(cert: cx509.Certificate, key: SigningKey) -> None:
    """RFC 3161 section 2.3: the TSA certificate carries exactly one EKU, timeStamping,
    marked critical; and it must certify ``key``."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise InvalidInput("the TSA certificate does not match the TSA key")
    try:
        eku = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage)
    except cx509.ExtensionNotFound as exc:
        raise InvalidInput("the TSA certificate has no extendedKeyUsage") from exc
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise InvalidInput(
            "the TSA certificate must have one critical extendedKeyUsage, timeStamping"
        )
