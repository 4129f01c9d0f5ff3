"""The PKCS#11 key store on SoftHSM2: keys are made in the token and never leave it."""

from __future__ import annotations

from collections.abc import Iterator

import conftest
import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, ObjectClass
from support import softhsm

from kyso.errors import KeyStoreError, NotFound, WeakHashError, WrongPin
from kyso.keys.base import KeyAlgorithm, SigningKey
from kyso.keys.pkcs11 import Pkcs11KeyStore

pytestmark = pytest.mark.softhsm

ALGORITHMS = [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384]
MESSAGE = "Công văn số 45/STTTT-VP gửi các sở, ban, ngành".encode()
CA_TOKEN = "kyso-ca"


def verify(key: SigningKey, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(algorithm))


@pytest.fixture(scope="module")
def store(hsm_tokens: softhsm.SoftHsmToken) -> Iterator[Pkcs11KeyStore]:
    opened = Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, conftest.HSM_PIN)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def keys(store: Pkcs11KeyStore) -> dict[KeyAlgorithm, SigningKey]:
    return {
        algorithm: store.generate(f"test {algorithm.value}", algorithm) for algorithm in ALGORITHMS
    }


def _token_private_key(module: str, key: SigningKey) -> dict[Attribute, object]:
    """The private key's attributes as the token reports them, through a session of our own."""
    token = pkcs11.lib(module).get_token(token_label=CA_TOKEN)
    # No PIN here: the store's login is token-wide, and a session without one never logs out.
    with token.open() as session:
        found = list(
            session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                    Attribute.ID: bytes.fromhex(key.key_id.removeprefix("p11-")),
                }
            )
        )
        assert len(found) == 1
        obj = found[0]
        return {
            a: obj[a]
            for a in (
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.ALWAYS_SENSITIVE,
                Attribute.NEVER_EXTRACTABLE,
                Attribute.TOKEN,
                Attribute.PRIVATE,
                Attribute.SIGN,
            )
        }


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
def test_generated_key_signs_and_the_signature_verifies(
    keys: dict[KeyAlgorithm, SigningKey], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    assert key.algorithm is algorithm
    assert key.key_id.startswith("p11-")
    assert key.cryptography_key() is None  # nothing to export
    for hash_algorithm in (hashes.SHA256(), hashes.SHA384()):
        signature = key.sign(MESSAGE, hash_algorithm)
        verify(key, signature, MESSAGE, hash_algorithm)
        with pytest.raises(InvalidSignature):
            verify(key, signature, MESSAGE + b"!", hash_algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
def test_sign_digest_gives_a_signature_over_the_message(
    keys: dict[KeyAlgorithm, SigningKey], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    digest = hashes.Hash(hashes.SHA256())
    digest.update(MESSAGE)
    verify(key, key.sign_digest(digest.finalize(), hashes.SHA256()), MESSAGE, hashes.SHA256())


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
def test_private_key_is_sensitive_and_not_extractable(
    hsm_tokens: softhsm.SoftHsmToken,
    keys: dict[KeyAlgorithm, SigningKey],
    algorithm: KeyAlgorithm,
) -> None:
    attributes = _token_private_key(hsm_tokens.module, keys[algorithm])
    assert attributes[Attribute.SENSITIVE] is True
    assert attributes[Attribute.EXTRACTABLE] is False
    assert attributes[Attribute.ALWAYS_SENSITIVE] is True
    assert attributes[Attribute.NEVER_EXTRACTABLE] is True
    assert attributes[Attribute.TOKEN] is True
    assert attributes[Attribute.PRIVATE] is True


def test_a_fresh_store_finds_keys_by_id(
    hsm_tokens: softhsm.SoftHsmToken, keys: dict[KeyAlgorithm, SigningKey]
) -> None:
    fresh = Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, conftest.HSM_PIN)
    try:
        for algorithm, original in keys.items():
            found = fresh.get(original.key_id)
            assert found.algorithm is algorithm
            assert found.public_key() == original.public_key()
            verify(original, found.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())
    finally:
        fresh.close()


def test_a_fresh_store_lists_keys_it_has_not_loaded_yet(
    hsm_tokens: softhsm.SoftHsmToken, keys: dict[KeyAlgorithm, SigningKey]
) -> None:
    fresh = Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, conftest.HSM_PIN)
    try:
        listed = {info.key_id: info for info in fresh.list()}
    finally:
        fresh.close()
    for algorithm, original in keys.items():
        assert listed[original.key_id].algorithm is algorithm
        assert listed[original.key_id].label == f"test {algorithm.value}"


def test_a_failed_lookup_leaves_the_session_usable(
    store: Pkcs11KeyStore, keys: dict[KeyAlgorithm, SigningKey]
) -> None:
    # pytest.raises keeps the exception and its traceback alive, as an error handler might.
    with pytest.raises(NotFound) as caught:
        store.get("p11-00ff00ff00ff00ff")
    assert caught.value is not None
    assert {k.key_id for k in keys.values()} <= {info.key_id for info in store.list()}
    with pytest.raises(NotFound):
        store.get("p11-00ff00ff00ff00fe")
    assert store.get(keys[KeyAlgorithm.EC_P384].key_id).algorithm is KeyAlgorithm.EC_P384


def test_closing_one_store_leaves_another_on_the_same_token_working(
    hsm_tokens: softhsm.SoftHsmToken,
    keys: dict[KeyAlgorithm, SigningKey],
    store: Pkcs11KeyStore,
) -> None:
    # PKCS#11 login is per token, and C_Logout on any session logs every session out.
    other = Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, conftest.HSM_PIN)
    other.close()
    other.close()  # closing twice must not release the login twice
    key = store.get(keys[KeyAlgorithm.EC_P256].key_id)
    verify(key, key.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())


@pytest.mark.parametrize("key_id", ["p11-00112233aabbccdd", "p11-zz", "sw-0011", "p11-"])
def test_unknown_key_id_is_not_found(store: Pkcs11KeyStore, key_id: str) -> None:
    with pytest.raises(NotFound):
        store.get(key_id)


def test_wrong_pin_is_refused_while_another_store_is_logged_in(
    hsm_tokens: softhsm.SoftHsmToken, store: Pkcs11KeyStore
) -> None:
    # The token is logged in (``store``), so the token itself would not check a PIN again.
    assert store.list()
    with pytest.raises(WrongPin):
        Pkcs11KeyStore(hsm_tokens.module, CA_TOKEN, "000000")


def test_wrong_pin_is_refused_by_a_token_nobody_is_logged_in_to(
    hsm_tokens: softhsm.SoftHsmToken,
) -> None:
    with pytest.raises(WrongPin):
        Pkcs11KeyStore(hsm_tokens.module, "subscriber-1", "999999")
    # The right PIN still opens it afterwards.
    Pkcs11KeyStore(hsm_tokens.module, "subscriber-1", "135790").close()


def test_unknown_token_label_is_not_found(hsm_tokens: softhsm.SoftHsmToken) -> None:
    with pytest.raises(NotFound):
        Pkcs11KeyStore(hsm_tokens.module, "no-such-token", conftest.HSM_PIN)


def test_sha1_is_refused(keys: dict[KeyAlgorithm, SigningKey]) -> None:
    for key in keys.values():
        with pytest.raises(WeakHashError):
            key.sign(MESSAGE, hashes.SHA1())
        with pytest.raises(WeakHashError):
            key.sign_digest(b"\x00" * 20, hashes.SHA1())


def _drop_sessions(store: Pkcs11KeyStore) -> None:
    """What an HSM restart does to this process: its session (and so the login) is gone."""
    store._login.session.close()


# python-pkcs11 finalizes a search begun on the dropped session when it is collected, and
# reports that session's error as "ignored": expected here, as after a real HSM restart.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_store_opens_a_new_session_when_the_hsm_dropped_it(
    hsm_tokens: softhsm.SoftHsmToken,
) -> None:
    first = Pkcs11KeyStore(hsm_tokens.module, conftest.RECONNECT_TOKEN, conftest.RECONNECT_PIN)
    second = Pkcs11KeyStore(hsm_tokens.module, conftest.RECONNECT_TOKEN, conftest.RECONNECT_PIN)
    try:
        rsa_key = first.generate("reconnect rsa", KeyAlgorithm.RSA_2048)
        ec_key = second.generate("reconnect ec", KeyAlgorithm.EC_P256)
        sealed = first.seal(b"totp secret", b"user:7")
        generation = first.generation

        _drop_sessions(first)
        # each store's cached key signs again, once one of them has opened a new session
        verify(rsa_key, rsa_key.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())
        verify(ec_key, ec_key.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())
        assert first.generation == second.generation == generation + 1

        _drop_sessions(second)
        assert second.unseal(sealed, b"user:7") == b"totp secret"
        assert first.unseal(first.seal(b"again", b"ctx"), b"ctx") == b"again"
        assert first.get(ec_key.key_id).algorithm is KeyAlgorithm.EC_P256
        assert first.generation == generation + 2
    finally:
        first.close()
        second.close()


def test_a_token_that_cannot_be_opened_again_is_a_key_store_error(
    hsm_tokens: softhsm.SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HSM stays away: a 503-type KeyStoreError (the CSC API says
    ``temporarily_unavailable``), not a PKCS#11 exception escaping to the caller."""
    store = Pkcs11KeyStore(hsm_tokens.module, conftest.RECONNECT_TOKEN, conftest.RECONNECT_PIN)
    try:
        key = store.generate("unreachable", KeyAlgorithm.EC_P256)
        _drop_sessions(store)

        class Unplugged:
            def open(self, **_: object) -> None:
                raise pkcs11.exceptions.TokenNotPresent()

        real = store._login.token
        monkeypatch.setattr(store._login, "token", Unplugged())
        with pytest.raises(KeyStoreError) as caught:
            key.sign(MESSAGE, hashes.SHA256())
        assert caught.value.http_status == 503
        monkeypatch.setattr(store._login, "token", real)  # the HSM is back
        verify(key, key.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())
    finally:
        store.close()
