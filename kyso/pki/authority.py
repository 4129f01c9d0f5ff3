"""kyso's certificate authority as a running process sees it.

The CA's own certificates (root, issuing CA, OCSP responder, TSA) and their keys are loaded
once per process and kept: loading an RSA key costs ~27 ms (PERFORMANCE.md). Nothing here
decides policy; the registration side (``kyso.lifecycle``) decides, this signs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from kyso.errors import NotFound, NotInitialized
from kyso.keys.base import KeyStore, SigningKey
from kyso.pki.profiles import IssuerView
from kyso.settings import Settings
from kyso.store.db import Database
from kyso.store.models import CaIdentity, IdentityRole


@dataclass
class Identity:
    """One of the CA's own certificates with its key handle."""

    id: int
    role: IdentityRole
    der: bytes
    key: SigningKey

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @cached_property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.der)

    @cached_property
    def key_hash_sha1(self) -> bytes:
        """SHA-1 of the subjectPublicKey bits: OCSP issuerKeyHash (RFC 6960 §4.1.1)."""
        return self.asn1.public_key.sha1

    @cached_property
    def key_identifier(self) -> bytes:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ski.value.digest

    def pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode()


def key_hash_hex(der: bytes) -> str:
    return asn1_x509.Certificate.load(der).public_key.sha1.hex()


class Authority:
    """Access to the CA's identities and the URLs it publishes."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        keystore: KeyStore,
        central: Callable[[], KeyStore] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.keystore = keystore
        self._central = central
        self._lock = threading.Lock()
        self._by_id: dict[int, Identity] = {}
        self._active: dict[IdentityRole, int] = {}

    @cached_property
    def central(self) -> KeyStore:
        """The central signing HSM (:mod:`kyso.remote.central`), where a request with the
        "central HSM" key location has its subscriber's or seal's key made: the process's
        own (``Context.central``) when given, else opened from the settings."""
        if self._central is not None:
            return self._central()
        from kyso.remote.central import open_central_store

        return open_central_store(self.settings)

    # -- identities -------------------------------------------------------------------------
    def _load(self, row: CaIdentity) -> Identity:
        with self._lock:
            if row.id not in self._by_id:
                self._by_id[row.id] = Identity(
                    row.id, row.role, row.certificate_der, self.keystore.get(row.key_id)
                )
            return self._by_id[row.id]

    def identity(self, role: IdentityRole) -> Identity:
        """The active identity for a role (the newest, if several were made)."""
        if role in self._active:
            return self._by_id[self._active[role]]
        with self.db.read() as session:
            row = session.execute(
                select(CaIdentity)
                .where(CaIdentity.role == role, CaIdentity.active.is_(True))
                .order_by(CaIdentity.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        if row is None:
            raise NotInitialized()
        identity = self._load(row)
        self._active[role] = identity.id
        return identity

    def identity_by_id(self, identity_id: int) -> Identity:
        if identity_id in self._by_id:
            return self._by_id[identity_id]
        with self.db.read() as session:
            row = session.get(CaIdentity, identity_id)
        if row is None:
            raise NotFound(f"CA {identity_id}", vi=f"CA {identity_id}")
        return self._load(row)

    def issuer_by_key_hash(self, key_hash: bytes) -> Identity | None:
        """The CA (root or issuing) whose key hash an OCSP request names, if it is ours."""
        for identity in list(self._by_id.values()):
            if (
                identity.role in (IdentityRole.ISSUING, IdentityRole.ROOT)
                and identity.key_hash_sha1 == key_hash
            ):
                return identity
        with self.db.read() as session:
            row = (
                session.execute(
                    select(CaIdentity).where(
                        CaIdentity.key_hash_sha1 == key_hash.hex(),
                        CaIdentity.role.in_([IdentityRole.ISSUING, IdentityRole.ROOT]),
                    )
                )
                .scalars()
                .first()
            )
        return self._load(row) if row is not None else None

    def is_initialized(self) -> bool:
        with self.db.read() as session:
            return session.execute(select(CaIdentity.id).limit(1)).first() is not None

    def chain(self) -> list[Identity]:
        """Issuing CA first, then the root (the order `kyso ca chain` prints)."""
        return [self.identity(IdentityRole.ISSUING), self.identity(IdentityRole.ROOT)]

    # -- published URLs ---------------------------------------------------------------------
    def crl_url(self, identity_id: int, delta: bool = False) -> str:
        return f"{self.settings.base_url}/crl/{identity_id}{'-delta' if delta else ''}.crl"

    def ca_url(self, identity_id: int) -> str:
        return f"{self.settings.base_url}/ca/{identity_id}.crt"

    @property
    def ocsp_url(self) -> str:
        return f"{self.settings.base_url}/ocsp"

    def issuer_view(self, identity: Identity) -> IssuerView:
        return IssuerView(
            subject=identity.certificate.subject,
            key_identifier=identity.key_identifier,
            not_after=identity.certificate.not_valid_after_utc,
            crl_url=self.crl_url(identity.id),
            ca_issuers_url=self.ca_url(identity.id),
            ocsp_url=self.ocsp_url,
        )


def spki_sha256(public_key_der: bytes) -> str:
    return hashlib.sha256(public_key_der).hexdigest()
