"""The user's token through PKCS#11: the certificates on it (read without a login: they are
public objects) and a signature over a digest (after a login with the PIN the user typed).

Signing reuses kyso's :class:`kyso.keys.pkcs11.Pkcs11KeyStore`: CKM_RSA_PKCS over a DigestInfo
(RFC 8017 §9.2) or CKM_ECDSA, DER-encoded. A store is opened for one signature and closed at
once, so the token is logged out between signatures (PKCS#11 v2.40 §5.6: ``C_Logout`` ends the
application's login). A wrong PIN is told apart from a locked token by the token's flags
(CKF_USER_PIN_COUNT_LOW / CKF_USER_PIN_FINAL_TRY / CKF_USER_PIN_LOCKED, PKCS#11 v2.40 §3.2):
PKCS#11 gives no number of tries left, only those three states.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pkcs11 import Attribute, ObjectClass, TokenFlag

from kyso.agent.errors import CertificateNotOnToken, PinRefused, TokenLocked, TokenUnavailable
from kyso.errors import KysoError, WrongPin

HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@dataclass(frozen=True)
class TokenCertificate:
    token: str  # the token's label
    cka_id: bytes  # the key's CKA_ID (a certificate and its key share it)
    label: str
    der: bytes
    certificate: x509.Certificate

    @property
    def serial(self) -> str:
        """The serial as kyso writes it: lowercase hex, no leading zeros."""
        return format(self.certificate.serial_number, "x")

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


class Tokens:
    """The PKCS#11 module and, optionally, the one token label to use; every call on the
    module holds one lock (python-pkcs11 on SoftHSM2 is not thread-safe)."""

    def __init__(self, module: str, label: str | None = None) -> None:
        self.module = module
        self.label = label
        self.lock = threading.Lock()

    def _lib(self) -> Any:
        try:
            return pkcs11.lib(self.module)
        except (OSError, RuntimeError, pkcs11.exceptions.PKCS11Error) as exc:
            raise TokenUnavailable(f"PKCS#11 module {self.module}") from exc

    def _tokens(self) -> list[Any]:
        lib = self._lib()
        try:
            if self.label is not None:
                return list(lib.get_tokens(token_label=self.label))
            return list(lib.get_tokens())
        except pkcs11.exceptions.PKCS11Error as exc:
            raise TokenUnavailable() from exc

    def certificates(self) -> list[TokenCertificate]:
        found = []
        with self.lock:
            for token in self._tokens():
                try:
                    with token.open() as session:
                        objects = list(
                            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
                        )
                        for obj in objects:
                            der = bytes(obj[Attribute.VALUE])
                            try:
                                cert = x509.load_der_x509_certificate(der)
                            except ValueError:
                                continue
                            found.append(
                                TokenCertificate(
                                    str(token.label).strip(),
                                    bytes(obj[Attribute.ID]),
                                    str(obj[Attribute.LABEL]),
                                    der,
                                    cert,
                                )
                            )
                except pkcs11.exceptions.PKCS11Error as exc:
                    raise TokenUnavailable(str(token.label).strip()) from exc
        return found

    def find(self, serial: str) -> TokenCertificate:
        wanted = serial.strip().lower().removeprefix("0x").lstrip("0")
        for cert in self.certificates():
            if cert.serial == wanted:
                return cert
        raise CertificateNotOnToken(serial[:64])

    def sign(self, cert: TokenCertificate, pin: str, digest: bytes, hash_name: str) -> bytes:
        """Log in with ``pin``, sign ``digest`` with the key beside ``cert``, log out."""
        from kyso.keys.pkcs11 import Pkcs11KeyStore

        with self.lock:
            try:
                store = Pkcs11KeyStore(self.module, cert.token, pin)
            except WrongPin as exc:  # CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE or CKR_PIN_LOCKED
                locked = exc.detail == "the token is locked"
                raise (TokenLocked() if locked else self._pin_problem(cert.token)) from exc
            try:
                key = store.get(f"p11-{cert.cka_id.hex()}")
                return key.sign_digest(digest, HASHES[hash_name])
            except KysoError:
                raise
            except pkcs11.exceptions.PKCS11Error as exc:
                raise TokenUnavailable(f"signing failed: {type(exc).__name__}") from exc
            finally:
                store.close()

    def _pin_problem(self, label: str) -> KysoError:
        """What the token says after a refused PIN (its flags, read again)."""
        try:
            flags = self._lib().get_token(token_label=label).flags
        except pkcs11.exceptions.PKCS11Error:
            flags = TokenFlag(0)
        if flags & TokenFlag.USER_PIN_LOCKED:
            return TokenLocked()
        if flags & TokenFlag.USER_PIN_FINAL_TRY:
            return PinRefused(
                "only one try is left before the token locks",
                vi="chỉ còn một lần thử trước khi thiết bị bị khóa",
            )
        if flags & TokenFlag.USER_PIN_COUNT_LOW:
            return PinRefused("few tries are left", vi="số lần thử còn lại không nhiều")
        return PinRefused()
