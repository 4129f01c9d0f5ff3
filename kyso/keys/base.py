"""The key-store contract every part of kyso signs through.

Keys never leave their store in clear (ARCHITECTURE: "Keys never leave their KeyStore"):
callers get a :class:`SigningKey` handle that can give its public key and sign, nothing
more. Two stores implement the contract: software (encrypted PKCS#8 files) and PKCS#11
(HSM, USB token; SoftHSM2 in tests).

A store also seals small secrets kept elsewhere (TOTP seeds in the database) with a data
key of its own that never leaves it in clear: AES-256-GCM (NIST SP 800-38D) with a fresh
96-bit nonce per value, the context (whose secret it is) as associated data. A sealed value
is ``version (1) ‖ data-key id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)``; the version and
key id are authenticated too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)

from kyso.errors import KeyStoreError


class KeyAlgorithm(enum.StrEnum):
    """Key types allowed by Circular 15/2025/TT-BKHCN: RSA >= 2048 bits, ECDSA >= 256 bits."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa")

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1])

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1() if self is KeyAlgorithm.EC_P256 else ec.SECP384R1()

    def default_hash(self) -> hashes.HashAlgorithm:
        """SHA-256 except where the key is strong enough to deserve SHA-384."""
        if self in (KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_4096):
            return hashes.SHA384()
        return hashes.SHA256()

    @classmethod
    def of_public_key(cls, key: PublicKeyTypes) -> KeyAlgorithm:
        """The algorithm of a public key, or ``WeakKeyError`` if kyso does not accept it."""
        from kyso.errors import WeakKeyError

        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise WeakKeyError(f"RSA-{key.key_size}")
            if key.public_numbers().e < 65537:
                raise WeakKeyError(f"RSA exponent {key.public_numbers().e}")
            return {3072: cls.RSA_3072, 4096: cls.RSA_4096}.get(key.key_size, cls.RSA_2048)
        if isinstance(key, ec.EllipticCurvePublicKey):
            if isinstance(key.curve, ec.SECP256R1):
                return cls.EC_P256
            if isinstance(key.curve, ec.SECP384R1):
                return cls.EC_P384
            raise WeakKeyError(f"EC {key.curve.name}")
        raise WeakKeyError(type(key).__name__)


ALLOWED_HASHES: tuple[type[hashes.HashAlgorithm], ...] = (
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
    hashes.SHA3_256,
    hashes.SHA3_384,
    hashes.SHA3_512,
)


@runtime_checkable
class SigningKey(Protocol):
    """A private key held by a key store.

    ``sign`` takes the whole message and hashes it with ``hash_algorithm``; the signature is
    PKCS#1 v1.5 for RSA and DER-encoded ECDSA for EC keys, the forms X.509, CMS and OCSP use.
    """

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> KeyAlgorithm: ...

    def public_key(self) -> PublicKeyTypes: ...

    def sign(self, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes: ...

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign a digest already computed (for PDF and CSC sign-hash flows)."""
        ...

    def cryptography_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        """The in-memory key for software stores, so builders can sign in one call; None
        for hardware stores, whose keys cannot be exported."""
        ...


SEAL_VERSION = 1
SEAL_KEY_ID_BYTES = 8
SEAL_NONCE_BYTES = 12
_SEAL_TAG_BYTES = 16


class SealedDataError(KeyStoreError):
    """A sealed value that does not open: changed, moved to another record, or sealed by
    another key store."""

    code = "sealed_data_unreadable"
    http_status = 409
    message_vi = (
        "Không mở được bí mật đã niêm phong (bị sửa, bị chép từ bản ghi khác hoặc do kho khóa "
        "khác niêm phong); quản trị viên cần cấp lại."
    )
    message_en = (
        "A sealed secret does not open (changed, copied from another record, or sealed by "
        "another key store); an administrator must issue it again."
    )


@dataclass(frozen=True)
class SealedParts:
    header: bytes  # version and data-key id: authenticated with the context
    key_id: bytes
    nonce: bytes
    body: bytes  # ciphertext and tag


def sealed_parts(sealed: bytes) -> SealedParts:
    """Split a sealed value, refusing anything that cannot be one."""
    head = 1 + SEAL_KEY_ID_BYTES
    if len(sealed) < head + SEAL_NONCE_BYTES + _SEAL_TAG_BYTES or sealed[0] != SEAL_VERSION:
        raise SealedDataError("not a sealed value of this version")
    return SealedParts(
        sealed[:head],
        sealed[1:head],
        sealed[head : head + SEAL_NONCE_BYTES],
        sealed[head + SEAL_NONCE_BYTES :],
    )


def seal_header(key_id: bytes) -> bytes:
    return bytes([SEAL_VERSION]) + key_id


class Sealer(Protocol):
    """Seals small secrets with a data key that never leaves the store in clear.

    ``context`` names what the secret belongs to (``b"kyso.users.totp:<user id>"``): a value
    sealed for one context does not open for another, so a sealed value copied to another
    row is useless. ``unseal`` raises :class:`SealedDataError` for anything that does not
    open."""

    def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    def unseal(self, sealed: bytes, context: bytes) -> bytes: ...


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    label: str
    algorithm: KeyAlgorithm


class KeyStore(Sealer, Protocol):
    """Where keys are made and kept. Key ids are opaque strings stable across restarts."""

    name: str

    def generate(self, label: str, algorithm: KeyAlgorithm) -> SigningKey: ...

    def get(self, key_id: str) -> SigningKey: ...

    def list(self) -> list[KeyInfo]: ...

    def close(self) -> None: ...


def check_hash(hash_algorithm: hashes.HashAlgorithm) -> None:
    """Refuse anything weaker than SHA-256 (Circular 15/2025/TT-BKHCN)."""
    from kyso.errors import WeakHashError

    if not isinstance(hash_algorithm, ALLOWED_HASHES):
        raise WeakHashError(hash_algorithm.name)
