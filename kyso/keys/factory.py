"""Open the key store the settings name."""

from __future__ import annotations

from kyso.errors import KeyStoreError
from kyso.keys.base import KeyStore
from kyso.settings import Settings


def software_passphrase(settings: Settings) -> str:
    """The software key stores' passphrase: the setting, else the file ``kyso init`` wrote."""
    passphrase = settings.keystore_passphrase
    if passphrase is None and settings.passphrase_file.exists():
        passphrase = settings.passphrase_file.read_text(encoding="utf-8").strip()
    if not passphrase:
        raise KeyStoreError(
            "set KYSO_KEYSTORE_PASSPHRASE or KYSO_KEYSTORE_PASSPHRASE_FILE",
            vi="đặt KYSO_KEYSTORE_PASSPHRASE hoặc KYSO_KEYSTORE_PASSPHRASE_FILE",
        )
    return passphrase


def open_keystore(settings: Settings) -> KeyStore:
    if settings.keystore == "software":
        from kyso.keys.software import SoftwareKeyStore

        return SoftwareKeyStore(settings.keys_dir, software_passphrase(settings))
    if settings.keystore == "pkcs11":
        from kyso.keys.pkcs11 import Pkcs11KeyStore

        if not settings.pkcs11_module or settings.pkcs11_pin is None:
            raise KeyStoreError(
                "set KYSO_PKCS11_MODULE and KYSO_PKCS11_PIN (or KYSO_PKCS11_PIN_FILE)",
                vi="đặt KYSO_PKCS11_MODULE và KYSO_PKCS11_PIN (hoặc KYSO_PKCS11_PIN_FILE)",
            )
        return Pkcs11KeyStore(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin)
    raise KeyStoreError(f"unknown key store '{settings.keystore}' (software or pkcs11)")
