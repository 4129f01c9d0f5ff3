"""The software key store: encrypted PKCS#8 files that only their owner can read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from kyso.errors import NotFound, WeakHashError, WrongPin
from kyso.keys.base import KeyAlgorithm, SigningKey
from kyso.keys.software import SoftwareKeyStore

PASSPHRASE = "correct horse battery staple"
MESSAGE = "Quyết định số 12/QĐ-UBND ngày 01/03/2025".encode()


def verify(key: SigningKey, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    """Raise InvalidSignature unless ``signature`` is ``key``'s over ``data`` with PKCS#1 v1.5 or
    ECDSA (``algorithm`` may be ``Prehashed``)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(algorithm))


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("software-keys") / "keys"


@pytest.fixture(scope="module")
def store(key_dir: Path) -> SoftwareKeyStore:
    return SoftwareKeyStore(key_dir, PASSPHRASE)


@pytest.fixture(scope="module")
def keys(store: SoftwareKeyStore) -> dict[KeyAlgorithm, SigningKey]:
    """One key of every algorithm, generated once (RSA-4096 takes a while)."""
    return {
        algorithm: store.generate(f"test {algorithm.value}", algorithm)
        for algorithm in KeyAlgorithm
    }


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=str)
def test_generated_key_has_the_requested_algorithm_and_size(
    keys: dict[KeyAlgorithm, SigningKey], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    assert key.algorithm is algorithm
    public = key.public_key()
    if algorithm.is_rsa:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == algorithm.rsa_bits
        assert public.public_numbers().e == 65537
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == algorithm.curve.name


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=str)
@pytest.mark.parametrize(
    "hash_algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()], ids=lambda h: h.name
)
def test_signature_verifies_against_the_public_key(
    keys: dict[KeyAlgorithm, SigningKey],
    algorithm: KeyAlgorithm,
    hash_algorithm: hashes.HashAlgorithm,
) -> None:
    key = keys[algorithm]
    signature = key.sign(MESSAGE, hash_algorithm)
    verify(key, signature, MESSAGE, hash_algorithm)
    with pytest.raises(InvalidSignature):
        verify(key, signature, MESSAGE + b".", hash_algorithm)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=str)
def test_sign_digest_signs_the_prehashed_message(
    keys: dict[KeyAlgorithm, SigningKey], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    digest = hashes.Hash(hashes.SHA256())
    digest.update(MESSAGE)
    signature = key.sign_digest(digest.finalize(), hashes.SHA256())
    # The same signature checks out over the whole message, as a PDF or CSC client expects.
    verify(key, signature, MESSAGE, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        verify(key, signature, b"another document", hashes.SHA256())


def test_key_files_are_owner_only_and_encrypted(
    keys: dict[KeyAlgorithm, SigningKey], key_dir: Path
) -> None:
    for key in keys.values():
        pem = key_dir / f"{key.key_id}.pem"
        meta = key_dir / f"{key.key_id}.json"
        for path in (pem, meta):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = pem.read_text()
        assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert "ENCRYPTED" in text
    assert stat.S_IMODE(key_dir.stat().st_mode) & 0o077 == 0


def test_a_new_store_with_the_same_passphrase_reloads_and_signs(
    keys: dict[KeyAlgorithm, SigningKey], key_dir: Path
) -> None:
    reopened = SoftwareKeyStore(key_dir, PASSPHRASE)
    for algorithm, original in keys.items():
        loaded = reopened.get(original.key_id)
        assert loaded.algorithm is algorithm
        assert loaded.public_key() == original.public_key()
        verify(original, loaded.sign(MESSAGE, hashes.SHA256()), MESSAGE, hashes.SHA256())
    listed = {info.key_id: info for info in reopened.list()}
    for algorithm, original in keys.items():
        assert listed[original.key_id].algorithm is algorithm
        assert listed[original.key_id].label == f"test {algorithm.value}"


def test_wrong_passphrase_is_refused_with_wrong_pin(
    keys: dict[KeyAlgorithm, SigningKey], key_dir: Path
) -> None:
    intruder = SoftwareKeyStore(key_dir, "not the passphrase")
    with pytest.raises(WrongPin):
        intruder.get(keys[KeyAlgorithm.EC_P256].key_id)


@pytest.mark.parametrize(
    "key_id",
    [
        "sw-0123456789abcdef",
        "sw-",
        "sw-../../etc/passwd",
        "sw-../keys/x",
        "sw-a/b",
        "../sw-a",
        "p11-0011",
        "",
        "sw-a.pem",
    ],
)
def test_unknown_or_path_like_key_ids_are_not_found(store: SoftwareKeyStore, key_id: str) -> None:
    with pytest.raises(NotFound):
        store.get(key_id)


def test_key_id_outside_the_directory_is_not_read_even_if_it_exists(
    store: SoftwareKeyStore, key_dir: Path, keys: dict[KeyAlgorithm, SigningKey]
) -> None:
    # A readable key file one level up must not be reachable with "..".
    source = key_dir / f"{keys[KeyAlgorithm.EC_P256].key_id}.pem"
    outside = key_dir.parent / "sw-outside.pem"
    outside.write_bytes(source.read_bytes())
    with pytest.raises(NotFound):
        store.get("sw-../sw-outside")


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256], ids=str)
def test_sha1_is_refused_for_sign_and_sign_digest(
    keys: dict[KeyAlgorithm, SigningKey], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    with pytest.raises(WeakHashError):
        key.sign(MESSAGE, hashes.SHA1())
    with pytest.raises(WeakHashError):
        key.sign_digest(b"\x00" * 20, hashes.SHA1())
    with pytest.raises(WeakHashError):
        key.sign(MESSAGE, hashes.MD5())


def test_prehashed_verification_matches_sign_digest_bytes(
    keys: dict[KeyAlgorithm, SigningKey],
) -> None:
    # RSA PKCS#1 v1.5 is deterministic: sign() and sign_digest() must give the same bytes.
    key = keys[KeyAlgorithm.RSA_2048]
    digest = hashes.Hash(hashes.SHA384())
    digest.update(MESSAGE)
    value = digest.finalize()
    assert key.sign_digest(value, hashes.SHA384()) == key.sign(MESSAGE, hashes.SHA384())
    verify(key, key.sign_digest(value, hashes.SHA384()), value, utils.Prehashed(hashes.SHA384()))
