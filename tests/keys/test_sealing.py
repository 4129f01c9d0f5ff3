"""Small secrets (TOTP seeds) sealed with a data key that never leaves the key store in clear.

The software store keeps a random AES-256 data key encrypted under its passphrase (a 0600
file, like its PKCS#8 keys); the PKCS#11 store makes the data key inside the token as a
sensitive, non-extractable AES key and seals through the token (CKM_AES_GCM). Either way a
sealed value is AES-256-GCM, bound to a context (whose secret it is), and useless elsewhere.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import conftest
import pkcs11
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, ObjectClass
from support import softhsm

from kyso.errors import KeyStoreError, WrongPin
from kyso.keys.base import KeyStore
from kyso.keys.pkcs11 import DATA_KEY_LABEL, Pkcs11KeyStore
from kyso.keys.software import DATA_KEY_FILE, SoftwareKeyStore

SECRET = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CONTEXT = b"kyso.users.totp:u-0001"
PASSPHRASE = "mật khẩu kho khóa thử nghiệm"
CA_TOKEN = "kyso-ca"


@pytest.fixture(scope="module")
def software_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sealing") / "keys"


@pytest.fixture(
    scope="module", params=["software", pytest.param("pkcs11", marks=pytest.mark.softhsm)]
)
def store(request: pytest.FixtureRequest, software_dir: Path) -> Iterator[KeyStore]:
    if request.param == "software":
        opened: KeyStore = SoftwareKeyStore(software_dir, PASSPHRASE)
    else:
        tokens = request.getfixturevalue("hsm_tokens")
        opened = Pkcs11KeyStore(tokens.module, CA_TOKEN, conftest.HSM_PIN)
    yield opened
    opened.close()


def _reopen(store: KeyStore, request: pytest.FixtureRequest) -> KeyStore:
    """Another store on the same keys, as another process would open it."""
    if isinstance(store, SoftwareKeyStore):
        return SoftwareKeyStore(store.directory, PASSPHRASE)
    tokens = request.getfixturevalue("hsm_tokens")
    return Pkcs11KeyStore(tokens.module, CA_TOKEN, conftest.HSM_PIN)


def test_a_sealed_secret_unseals_in_the_same_context(store: KeyStore) -> None:
    sealed = store.seal(SECRET, CONTEXT)
    assert SECRET not in sealed
    assert store.unseal(sealed, CONTEXT) == SECRET


def test_sealing_twice_gives_different_bytes(store: KeyStore) -> None:
    assert store.seal(SECRET, CONTEXT) != store.seal(SECRET, CONTEXT)  # a fresh nonce each time


def test_another_store_on_the_same_keys_unseals(
    store: KeyStore, request: pytest.FixtureRequest
) -> None:
    sealed = store.seal(SECRET, CONTEXT)
    other = _reopen(store, request)
    try:
        assert other.unseal(sealed, CONTEXT) == SECRET
        assert store.unseal(other.seal(SECRET, CONTEXT), CONTEXT) == SECRET
    finally:
        other.close()


def test_a_secret_sealed_for_one_user_does_not_open_for_another(store: KeyStore) -> None:
    sealed = store.seal(SECRET, CONTEXT)
    with pytest.raises(KeyStoreError):
        store.unseal(sealed, b"kyso.users.totp:u-0002")


@pytest.mark.parametrize("where", [0, 1, 12, 25, -1], ids=lambda w: f"byte{w}")
def test_a_changed_byte_is_refused(store: KeyStore, where: int) -> None:
    sealed = bytearray(store.seal(SECRET, CONTEXT))
    sealed[where] ^= 0x01
    with pytest.raises(KeyStoreError):
        store.unseal(bytes(sealed), CONTEXT)


@pytest.mark.parametrize("sealed", [b"", b"\x01", b"\x01" + bytes(20), b"\x09" + bytes(60)])
def test_garbage_is_refused(store: KeyStore, sealed: bytes) -> None:
    with pytest.raises(KeyStoreError):
        store.unseal(sealed, CONTEXT)


# -- the software store's data key ------------------------------------------------------------
def test_the_software_data_key_file_is_owner_only_and_holds_no_clear_key(
    software_dir: Path,
) -> None:
    store = SoftwareKeyStore(software_dir, PASSPHRASE)
    sealed = store.seal(SECRET, CONTEXT)
    path = software_dir / DATA_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["kdf"] == "scrypt"
    # No 32 bytes of the file open the sealed value: the key is only there encrypted.
    raw = path.read_bytes()
    header, nonce, body = sealed[:9], sealed[9:21], sealed[21:]
    for start in range(len(raw) - 31):
        try:
            AESGCM(raw[start : start + 32]).decrypt(nonce, body, header + CONTEXT)
        except InvalidTag:  # every window must fail
            continue
        pytest.fail("the data key is stored in clear")


def test_the_software_data_key_needs_the_passphrase(software_dir: Path) -> None:
    sealed = SoftwareKeyStore(software_dir, PASSPHRASE).seal(SECRET, CONTEXT)
    with pytest.raises(WrongPin):
        SoftwareKeyStore(software_dir, "not the passphrase").unseal(sealed, CONTEXT)


def test_the_software_data_key_is_derived_once_per_store(
    software_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scrypt costs tens of milliseconds by design: every TOTP login after the first reuses
    the opened data key."""
    store = SoftwareKeyStore(software_dir, PASSPHRASE)
    sealed = store.seal(SECRET, CONTEXT)
    derived: list[bytes] = []
    real = SoftwareKeyStore._kek

    def counting(self: SoftwareKeyStore, salt: bytes, params: dict[str, int]) -> Any:
        derived.append(salt)
        return real(self, salt, params)

    monkeypatch.setattr(SoftwareKeyStore, "_kek", counting)
    fresh = SoftwareKeyStore(software_dir, PASSPHRASE)
    for _ in range(5):
        assert fresh.unseal(sealed, CONTEXT) == SECRET
        assert fresh.unseal(fresh.seal(SECRET, CONTEXT), CONTEXT) == SECRET
    assert len(derived) == 1


def test_a_store_without_a_data_key_cannot_unseal(tmp_path: Path, software_dir: Path) -> None:
    sealed = SoftwareKeyStore(software_dir, PASSPHRASE).seal(SECRET, CONTEXT)
    with pytest.raises(KeyStoreError):
        SoftwareKeyStore(tmp_path / "other", PASSPHRASE).unseal(sealed, CONTEXT)


# -- the token's data key ---------------------------------------------------------------------
@pytest.mark.softhsm
def test_the_token_data_key_is_aes_sensitive_and_never_extractable(
    hsm_tokens: softhsm.SoftHsmToken,
) -> None:
    store = Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, conftest.HSM_PIN)
    try:
        store.seal(SECRET, CONTEXT)
        token = pkcs11.lib(hsm_tokens.module).get_token(token_label=CA_TOKEN)
        with token.open() as session:  # the store's login covers this session (token-wide)
            found = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: DATA_KEY_LABEL}
                )
            )
            assert len(found) == 1
            key = found[0]
            assert key[Attribute.KEY_TYPE] == KeyType.AES
            assert key[Attribute.VALUE_LEN] == 32
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.TOKEN] is True
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                _ = key[Attribute.VALUE]  # reading the value must fail
    finally:
        store.close()


@pytest.mark.softhsm
def test_a_value_sealed_with_a_data_key_another_process_made_at_the_same_time_opens(
    hsm_tokens: softhsm.SoftHsmToken,
) -> None:
    """Two processes starting at once may each make a data key (the module's notes): a store
    that already knows one key still opens what was sealed with the other."""
    token = "subscriber-1"  # a token of its own: the CA token keeps its single data key
    first = Pkcs11KeyStore(hsm_tokens.module, token, "135790")
    second = Pkcs11KeyStore(hsm_tokens.module, token, "135790")
    try:
        sealed_first = first.seal(SECRET, CONTEXT)  # first makes its key and keeps it
        second._make_data_key()  # as a process that found none at the same moment
        sealed_second = second.seal(SECRET, CONTEXT)
        assert sealed_second[1:9] != sealed_first[1:9]  # two data keys
        assert first.unseal(sealed_second, CONTEXT) == SECRET
        assert second.unseal(sealed_first, CONTEXT) == SECRET
    finally:
        token_object = pkcs11.lib(hsm_tokens.module).get_token(token_label=token)
        with token_object.open(rw=True) as session:
            for key in list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: DATA_KEY_LABEL}
                )
            ):
                key.destroy()
        first.close()
        second.close()
