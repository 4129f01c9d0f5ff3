"""Who signs: a key in a key store plus its certificate chain — one interface for every format.

``KeyStoreSigner`` is a pyHanko ``Signer`` whose raw signatures come from a
:class:`kyso.keys.base.SigningKey`, so PAdES and CAdES (and S/MIME, which is CAdES inside
MIME) sign the same way whether the key is a PKCS#12 file, a software key kept by kyso or a
key in an HSM. XAdES uses the same ``SignerIdentity`` through its own adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from kyso.errors import InvalidInput, NotFound, WrongPin
from kyso.keys.base import KeyStore, SigningKey
from kyso.keys.software import SoftwareKey

if TYPE_CHECKING:
    from kyso.context import Context

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
    "sha3_256": hashes.SHA3_256(),
    "sha3_384": hashes.SHA3_384(),
    "sha3_512": hashes.SHA3_512(),
}


def hash_by_name(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name.replace("-", "_").lower()]
    except KeyError as exc:
        from kyso.errors import WeakHashError

        raise WeakHashError(name) from exc


@dataclass
class SignerIdentity:
    """A signing key with its certificate and the chain up to (and with) the root."""

    key: SigningKey
    certificate: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def digest_algorithm(self) -> str:
        """pyHanko's name of the hash matched to the key (SHA-256 for RSA-2048/3072, P-256)."""
        return self.key.algorithm.default_hash().name.replace("-", "_")

    def asn1_certificate(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.certificate.public_bytes(serialization.Encoding.DER))

    def asn1_chain(self) -> list[asn1_x509.Certificate]:
        return [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in self.chain
        ]

    def pyhanko_signer(self) -> KeyStoreSigner:
        return KeyStoreSigner(self)


class KeyStoreSigner(Signer):
    """pyHanko's signer, with raw signatures delegated to the key store (never loading keys)."""

    def __init__(self, identity: SignerIdentity) -> None:
        self.identity = identity
        super().__init__(
            signing_cert=identity.asn1_certificate(),
            cert_registry=SimpleCertificateStore.from_certs(identity.asn1_chain()),
            embed_roots=True,
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            # pyHanko reserves space with a dummy signature of the right size (PERFORMANCE.md:
            # its size estimate otherwise signs twice).
            key = self.identity.key.public_key()
            if isinstance(key, rsa.RSAPublicKey):
                return bytes(key.key_size // 8)
            if isinstance(key, ec.EllipticCurvePublicKey):
                return bytes(2 * ((key.curve.key_size + 7) // 8) + 8)
        return self.identity.key.sign(data, hash_by_name(digest_algorithm))


def from_pkcs12(data: bytes, password: str) -> SignerIdentity:
    """A signer from a PKCS#12 file (the key is held in memory for this process only)."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode("utf-8"))
    except ValueError as exc:
        message = str(exc).lower()
        if "password" in message or "mac" in message:
            raise WrongPin("PKCS#12 password", vi="mật khẩu tệp PKCS#12") from exc
        raise InvalidInput("not a PKCS#12 file", vi="không phải tệp PKCS#12") from exc
    if key is None or cert is None:
        raise InvalidInput(
            "the PKCS#12 file has no key or no certificate",
            vi="tệp PKCS#12 không có khóa hoặc chứng thư",
        )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidInput("only RSA and ECDSA keys sign", vi="chỉ hỗ trợ khóa RSA và ECDSA")
    return SignerIdentity(SoftwareKey("pkcs12", key), cert, list(extra or []))


def require_chain(identity: SignerIdentity) -> SignerIdentity:
    if not identity.chain:
        raise NotFound("the signer's CA chain", vi="chuỗi chứng thư của người ký")
    return identity


def from_keystore(ctx: Context, key_id: str) -> SignerIdentity:
    """A signer for a key kyso holds (``kyso cert issue --server-key``): the newest valid
    subscriber certificate whose key_location names this key, with the CA chain. The CA's
    own certificates are never a document signer's (:mod:`kyso.signing.keyuse` says who may
    use which key; this is the floor under it)."""
    from sqlalchemy import select

    from kyso.pki.status import CA_PROFILES
    from kyso.store.models import Certificate, CertStatus

    location = f"{ctx.keystore.name}:{key_id}"
    with ctx.db.read() as session:
        row = session.execute(
            select(Certificate)
            .where(
                Certificate.key_location == location,
                Certificate.status == CertStatus.GOOD,
                Certificate.profile.not_in(CA_PROFILES),
            )
            .order_by(Certificate.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"a valid certificate for key {key_id}", vi=f"chứng thư còn hiệu lực của khóa {key_id}"
        )
    return from_key(ctx, key_id, row.der)


def from_key(
    ctx: Context, key_id: str, certificate_der: bytes, store: KeyStore | None = None
) -> SignerIdentity:
    """A signer for a key kyso holds and the certificate already chosen for it (by
    :func:`kyso.signing.keyuse.authorize`), with the CA chain. ``store`` is the key store
    holding it (kyso's own by default; the central HSM once the signer consented,
    :mod:`kyso.remote.documents`)."""
    chain = [i.certificate for i in ctx.authority.chain()]
    key = (store or ctx.keystore).get(key_id)
    return SignerIdentity(key, x509.load_der_x509_certificate(certificate_der), chain)
