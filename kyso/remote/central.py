"""The central signing key store: subscribers' and unit seals' keys, apart from the CA's.

Keys here are made inside the HSM (PKCS#11, non-extractable; SoftHSM2 in tests) when a
request with the "central HSM" key location is approved, and they sign only against a
single-use SAD (:mod:`kyso.remote.activation`): kyso never signs with them on its own.
Certificates name them ``hsm:<key id>``. Without ``KYSO_HSM_MODULE`` the store is a software
store under ``KYSO_HOME/central-keys`` protected by the key-store passphrase: enough for the
demo, never for production (a warning is logged each time it is opened).
"""

from __future__ import annotations

import logging

from kyso.errors import KeyStoreError
from kyso.keys.base import KeyStore
from kyso.settings import Settings

log = logging.getLogger("kyso.remote")

STORE_NAME = "hsm"
PREFIX = f"{STORE_NAME}:"


def is_central(key_location: str) -> bool:
    return key_location.startswith(PREFIX)


def key_id_of(key_location: str) -> str:
    return key_location.removeprefix(PREFIX)


def open_central_store(settings: Settings) -> KeyStore:
    """The HSM the settings name, or the demo's software stand-in."""
    store: KeyStore
    if settings.hsm_module:
        from kyso.keys.pkcs11 import Pkcs11KeyStore

        if settings.hsm_pin is None:
            raise KeyStoreError(
                "set KYSO_HSM_PIN (or KYSO_HSM_PIN_FILE) for the central HSM",
                vi="đặt KYSO_HSM_PIN (hoặc KYSO_HSM_PIN_FILE) cho HSM ký tập trung",
            )
        store = Pkcs11KeyStore(settings.hsm_module, settings.hsm_token, settings.hsm_pin)
    else:
        from kyso.keys.factory import software_passphrase
        from kyso.keys.software import SoftwareKeyStore

        log.warning(
            "central signing keys are software keys in %s (demo only): set KYSO_HSM_MODULE",
            settings.central_keys_dir,
        )
        store = SoftwareKeyStore(settings.central_keys_dir, software_passphrase(settings))
    store.name = STORE_NAME
    return store


def is_hardware(settings: Settings) -> bool:
    return settings.hsm_module is not None
