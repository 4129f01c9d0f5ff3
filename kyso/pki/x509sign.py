"""Sign X.509 structures with any key store.

``cryptography``'s builders only sign with in-memory keys. For a software key we pass it
straight through (one signature). For a key in an HSM the builder signs with a throw-away
key of the same kind, which fixes the TBS and its signature algorithm, and the TBS is then
signed again by the HSM and reassembled. The signature AlgorithmIdentifier depends only on
the key type and hash, never on the key size, so a small throw-away key is enough.
"""

from __future__ import annotations

import functools

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from kyso.keys.base import SigningKey

# The hashes x509.CertificateBuilder.sign accepts (its _AllowedHashTypes).
_CERTIFICATE_HASHES = (
    hashes.SHA224,
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
    hashes.SHA3_224,
    hashes.SHA3_256,
    hashes.SHA3_384,
    hashes.SHA3_512,
)


@functools.cache
def _throwaway(is_rsa: bool) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (signature is discarded)
    return ec.generate_private_key(ec.SECP256R1())


def sign_certificate(
    builder: x509.CertificateBuilder,
    key: SigningKey,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    hash_algorithm = hash_algorithm or key.algorithm.default_hash()
    # cryptography's builders take SHA-2/SHA-3 only; kyso's keys default to SHA-256/384
    assert isinstance(hash_algorithm, _CERTIFICATE_HASHES), hash_algorithm.name
    direct = key.cryptography_key()
    if direct is not None:
        return builder.sign(direct, hash_algorithm)
    draft = builder.sign(_throwaway(key.algorithm.is_rsa), hash_algorithm)
    tbs = draft.tbs_certificate_bytes
    signed = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs),
            "signature_algorithm": asn1_x509.Certificate.load(draft.public_bytes(Encoding.DER))[
                "signature_algorithm"
            ],
            "signature_value": key.sign(tbs, hash_algorithm),
        }
    )
    return x509.load_der_x509_certificate(signed.dump())


def signature_algorithm_name(key: SigningKey, hash_algorithm: hashes.HashAlgorithm) -> str:
    """asn1crypto's name for the signature algorithm, e.g. ``sha256_rsa``, ``sha384_ecdsa``."""
    kind = "rsa" if key.algorithm.is_rsa else "ecdsa"
    return f"{hash_algorithm.name.replace('-', '_')}_{kind}"
