"""PKCS#11 key store (network HSM, USB token; SoftHSM2 in tests) through python-pkcs11.

Keys are generated inside the token as sensitive and non-extractable. python-pkcs11 on
SoftHSM2 is not thread-safe (PERFORMANCE.md: two threads crashed the process), so a store
keeps one session and serializes every call on it with a lock; scale with processes.
SoftHSM2 has no CKM_ECDSA_SHA256: EC data is hashed here and signed with CKM_ECDSA.

PKCS#11 logs in per application and token, not per session (PKCS#11 v2.40 §5.6): once one
session is logged in, ``C_Login`` on another returns CKR_USER_ALREADY_LOGGED_IN without
checking the PIN, and ``C_Logout`` on any session logs all of them out. So stores opened on
the same token in one process share one logged-in session (and its lock); a later store must
present the same PIN, and the session is logged out only when the last store closes.

An HSM that restarts, or a network HSM whose connection drops, invalidates the sessions this
process holds (CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_REMOVED, ...). The first call that meets
a lost session opens a new one (logging in again with the PIN given when the store opened)
and tries once more; the keys look themselves up again in the new session. Any other token
failure is a :class:`KeyStoreError` (503: the service is unavailable for now), never a crash.

Small secrets are sealed (:class:`kyso.keys.base.Sealer`) through the token with CKM_AES_GCM
under an AES-256 data key made in the token (label ``kyso-data-key``: sensitive,
non-extractable, encrypt/decrypt only). Two processes starting at once may each make one;
a sealed value names its key's CKA_ID, so both stay usable and new values use the lowest id.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from asn1crypto.algos import DigestInfo
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)

from kyso.errors import KeyStoreError, NotFound, WrongPin
from kyso.keys.base import (
    SEAL_KEY_ID_BYTES,
    SEAL_NONCE_BYTES,
    KeyAlgorithm,
    KeyInfo,
    SealedDataError,
    SigningKey,
    check_hash,
    seal_header,
    sealed_parts,
)

DATA_KEY_LABEL = "kyso-data-key"
log = logging.getLogger("kyso.keys")
_T = TypeVar("_T")

_RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_CURVE_OIDS = {KeyAlgorithm.EC_P256: "secp256r1", KeyAlgorithm.EC_P384: "secp384r1"}


# What a token says when the session this process held is gone (the HSM restarted, the
# connection to it dropped, the token was pulled out and put back): worth one new session.
_SESSION_LOST: tuple[type[Exception], ...] = (
    pkcs11.exceptions.SessionHandleInvalid,
    pkcs11.exceptions.SessionClosed,
    pkcs11.exceptions.DeviceRemoved,
    pkcs11.exceptions.TokenNotPresent,
    pkcs11.exceptions.UserNotLoggedIn,
    pkcs11.exceptions.ObjectHandleInvalid,
    pkcs11.exceptions.KeyHandleInvalid,
)


class Pkcs11Key:
    """A private key that lives in a token; every operation goes through the store's lock."""

    def __init__(
        self, store: Pkcs11KeyStore, key_id: str, private: Any, public_key: PublicKeyTypes
    ):
        self._store = store
        self._key_id = key_id
        self._private = private
        self._generation = store.generation
        self._public = public_key
        self._algorithm = KeyAlgorithm.of_public_key(public_key)

    def _token_sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        def work() -> bytes:
            if self._generation != self._store.generation:  # a new session: find it again
                self._private = self._store.find_private(self._key_id)
                self._generation = self._store.generation
            return bytes(self._private.sign(data, mechanism=mechanism))

        return self._store.call("signing", work)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def sign(self, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        check_hash(hash_algorithm)
        if self._algorithm.is_rsa and hash_algorithm.name in _RSA_MECHANISMS:
            return self._token_sign(data, _RSA_MECHANISMS[hash_algorithm.name])
        digest = hashes.Hash(hash_algorithm)
        digest.update(data)
        return self.sign_digest(digest.finalize(), hash_algorithm)

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        check_hash(hash_algorithm)
        if self._algorithm.is_rsa:
            # CKM_RSA_PKCS signs what it is given: wrap the digest in DigestInfo (RFC 8017 §9.2).
            info = DigestInfo(
                {
                    "digest_algorithm": {"algorithm": hash_algorithm.name.replace("-", "_")},
                    "digest": digest,
                }
            ).dump()
            return self._token_sign(info, Mechanism.RSA_PKCS)
        return encode_ecdsa_signature(self._token_sign(digest, Mechanism.ECDSA))

    def cryptography_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        return None


class Pkcs11KeyStore:
    """Keys on one token, found by label; key ids are ``p11-<hex CKA_ID>``."""

    name = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        self.token_label = token_label
        try:
            lib = pkcs11.lib(module)
            token = lib.get_token(token_label=token_label)
        except pkcs11.exceptions.NoSuchToken as exc:
            raise NotFound(
                f"PKCS#11 token '{token_label}'", vi=f"thiết bị PKCS#11 '{token_label}'"
            ) from exc
        except (OSError, RuntimeError, pkcs11.exceptions.PKCS11Error) as exc:
            raise KeyStoreError(
                f"cannot load PKCS#11 module {module}: {type(exc).__name__}"
            ) from exc
        self._login = _TokenLogin.acquire((module, token_label), token, pin)
        self.lock = self._login.lock
        self._closed = False
        self._keys: dict[str, Pkcs11Key] = {}
        self._data_keys: dict[bytes, Any] = {}

    @property
    def _session(self) -> Any:
        return self._login.session

    @property
    def generation(self) -> int:
        """How many times this process has opened a session on the token (keys compare it
        with the one they were found in)."""
        return self._login.generation

    def call(self, what: str, work: Callable[[], _T]) -> _T:
        """``work()`` on the token under the lock; a lost session is opened again once, any
        other token failure is a :class:`KeyStoreError`."""
        with self.lock:
            for attempt in (1, 2):
                try:
                    return work()
                except _SESSION_LOST as exc:
                    if attempt == 2:
                        raise KeyStoreError(f"{what} failed: {type(exc).__name__}") from exc
                    log.warning("PKCS#11 session lost (%s): opening a new one", type(exc).__name__)
                    self._login.reopen()
                    self._data_keys.clear()
                except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned):
                    raise  # python-pkcs11's answers to a lookup, for the caller to name
                except pkcs11.exceptions.PKCS11Error as exc:
                    raise KeyStoreError(f"{what} failed: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    def find_private(self, key_id: str) -> Any:
        """The private key object in the current session (called with the lock held)."""
        cka_id = bytes.fromhex(key_id.removeprefix("p11-"))
        return self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=cka_id)

    def generate(self, label: str, algorithm: KeyAlgorithm) -> SigningKey:
        cka_id = secrets.token_bytes(8)
        private_template = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
        }
        public_template: dict[Attribute, bool | bytes] = {
            Attribute.VERIFY: True,
            Attribute.TOKEN: True,
        }
        with self.lock:
            try:
                if algorithm.is_rsa:
                    public_template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                    pub, priv = self._session.generate_keypair(
                        KeyType.RSA,
                        algorithm.rsa_bits,
                        id=cka_id,
                        label=label,
                        store=True,
                        public_template=public_template,
                        private_template=private_template,
                    )
                else:
                    params = self._session.create_domain_parameters(
                        KeyType.EC,
                        {
                            Attribute.EC_PARAMS: encode_named_curve_parameters(
                                _CURVE_OIDS[algorithm]
                            )
                        },
                        local=True,
                    )
                    pub, priv = params.generate_keypair(
                        id=cka_id,
                        label=label,
                        store=True,
                        public_template=public_template,
                        private_template=private_template,
                    )
            except pkcs11.exceptions.PKCS11Error as exc:
                raise KeyStoreError(f"key generation failed: {type(exc).__name__}") from exc
            key = Pkcs11Key(self, f"p11-{cka_id.hex()}", priv, _public_key(pub))
            self._keys[key.key_id] = key
        return key

    def get(self, key_id: str) -> SigningKey:
        with self.lock:
            if key_id in self._keys:
                return self._keys[key_id]

            def find() -> tuple[Any, Any]:
                cka_id = bytes.fromhex(key_id.removeprefix("p11-"))
                return (
                    self.find_private(key_id),
                    self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=cka_id),
                )

            try:
                priv, pub = self.call("finding a key", find)
            except (
                ValueError,
                pkcs11.exceptions.NoSuchKey,
                pkcs11.exceptions.MultipleObjectsReturned,
            ) as exc:
                raise NotFound(f"key {key_id}", vi=f"khóa {key_id}") from exc
            key = Pkcs11Key(self, key_id, priv, _public_key(pub))
            self._keys[key_id] = key
            return key

    def list(self) -> list[KeyInfo]:
        infos = []
        with self.lock:
            # Finish this search before get() starts another one on the same session.
            for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
                key_id = f"p11-{bytes(obj[Attribute.ID]).hex()}"
                algorithm = self.get(key_id).algorithm
                infos.append(KeyInfo(key_id, str(obj[Attribute.LABEL]), algorithm))
        return infos

    # -- sealing small secrets -------------------------------------------------------------
    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        header, nonce = b"", secrets.token_bytes(SEAL_NONCE_BYTES)

        def work() -> bytes:
            nonlocal header
            keys = self._find_data_keys() or self._make_data_key()
            key_id = min(keys)
            header = seal_header(key_id)
            return bytes(
                keys[key_id].encrypt(
                    plaintext,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, header + context, 128),
                )
            )

        body = self.call("sealing", work)
        return header + nonce + body

    def unseal(self, sealed: bytes, context: bytes) -> bytes:
        parts = sealed_parts(sealed)

        def work() -> bytes:
            key = self._find_data_keys().get(parts.key_id)
            if key is None:  # perhaps made by another process after this one looked
                key = self._find_data_keys(again=True).get(parts.key_id)
            if key is None:
                raise SealedDataError("sealed with a data key this token does not hold")
            try:
                return bytes(
                    key.decrypt(
                        parts.body,
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=GCMParams(parts.nonce, parts.header + context, 128),
                    )
                )
            except _SESSION_LOST:
                raise  # a new session, then again (self.call)
            except pkcs11.exceptions.PKCS11Error as exc:
                raise SealedDataError("the sealed value does not open in this context") from exc

        return self.call("unsealing", work)

    def _find_data_keys(self, *, again: bool = False) -> dict[bytes, Any]:
        """The token's data keys by CKA_ID, looked up once unless ``again`` (called with the
        lock held)."""
        if again:
            self._data_keys.clear()
        if not self._data_keys:
            found = self._session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: DATA_KEY_LABEL}
            )
            for key in list(found):
                cka_id = bytes(key[Attribute.ID])
                if len(cka_id) == SEAL_KEY_ID_BYTES:
                    self._data_keys[cka_id] = key
        return self._data_keys

    def _make_data_key(self) -> dict[bytes, Any]:
        cka_id = secrets.token_bytes(SEAL_KEY_ID_BYTES)
        try:
            key = self._session.generate_key(
                KeyType.AES,
                256,
                id=cka_id,
                label=DATA_KEY_LABEL,
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                    Attribute.DERIVE: False,
                },
            )
        except _SESSION_LOST:
            raise  # a new session, then again (self.call)
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyStoreError(f"data key generation failed: {type(exc).__name__}") from exc
        self._data_keys[cka_id] = key
        return self._data_keys

    def store_certificate(self, key_id: str, der: bytes, label: str) -> None:
        """Write a certificate next to its key (same CKA_ID), as a token user expects."""
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        with self.lock:
            self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.LABEL: label,
                    Attribute.ID: bytes.fromhex(key_id.removeprefix("p11-")),
                    Attribute.SUBJECT: cert.subject.public_bytes(),
                    Attribute.ISSUER: cert.issuer.public_bytes(),
                    Attribute.SERIAL_NUMBER: _der_integer(cert.serial_number),
                    Attribute.VALUE: der,
                }
            )

    def close(self) -> None:
        with self.lock:
            self._keys.clear()
            self._data_keys.clear()
            if not self._closed:
                self._closed = True
                self._login.release()


class _TokenLogin:
    """The one logged-in session this process holds on a token, shared by its stores."""

    def __init__(
        self, key: tuple[str, str], token: Any, session: Any, pin: str, pin_digest: bytes
    ) -> None:
        self.key = key
        self.token = token
        self.session = session
        self._pin = pin  # to log in again after the HSM restarts (the settings hold it too)
        self.pin_digest = pin_digest
        self.lock = threading.RLock()
        self.users = 0
        self.generation = 0

    def reopen(self) -> None:
        """A new logged-in session after the old one was lost (called with the lock held)."""
        with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
            self.session.close()
        try:
            try:
                self.session = self.token.open(user_pin=self._pin, rw=True)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # another session of this process kept the token-wide login alive
                self.session = self.token.open(rw=True)
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyStoreError(
                f"the PKCS#11 token cannot be opened again: {type(exc).__name__}",
                vi="không mở lại được phiên làm việc với thiết bị PKCS#11",
            ) from exc
        self.generation += 1

    @classmethod
    def acquire(cls, key: tuple[str, str], token: Any, pin: str) -> _TokenLogin:
        digest = hashlib.sha256(pin.encode("utf-8")).digest()
        with _logins_lock:
            login = _logins.get(key)
            if login is None:
                try:
                    session = token.open(user_pin=pin, rw=True)
                except (pkcs11.exceptions.PinIncorrect, pkcs11.exceptions.PinLenRange) as exc:
                    raise WrongPin() from exc
                except pkcs11.exceptions.PinLocked as exc:
                    raise WrongPin("the token is locked", vi="thiết bị đã bị khóa") from exc
                except pkcs11.exceptions.UserAlreadyLoggedIn as exc:
                    # Logged in by a session this registry does not know: the PIN cannot be
                    # checked, so refuse rather than accept it unchecked.
                    raise KeyStoreError(
                        "the token is already logged in outside this key store",
                        vi="thiết bị đã được đăng nhập bởi một phiên khác",
                    ) from exc
                login = cls(key, token, session, pin, digest)
                _logins[key] = login
            elif not hmac.compare_digest(login.pin_digest, digest):
                raise WrongPin()
            login.users += 1
            return login

    def release(self) -> None:
        with _logins_lock:
            self.users -= 1
            if self.users > 0:
                return
            if _logins.get(self.key) is self:
                del _logins[self.key]
        with self.lock, contextlib.suppress(pkcs11.exceptions.PKCS11Error):
            self.session.close()


_logins: dict[tuple[str, str], _TokenLogin] = {}
_logins_lock = threading.Lock()


def _public_key(pub: Any) -> PublicKeyTypes:
    if pub.key_type == KeyType.RSA:
        n = int.from_bytes(pub[Attribute.MODULUS], "big")
        e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    return serialization.load_der_public_key(encode_ec_public_key(pub))


def _der_integer(value: int) -> bytes:
    from asn1crypto.core import Integer

    return Integer(value).dump()
