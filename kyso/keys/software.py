"""Software key store: private keys as encrypted PKCS#8 PEM files, mode 0600.

Loading an RSA key costs ~27 ms (``cryptography`` validates it, see PERFORMANCE.md), so a
store loads each key once and keeps it for the life of the process.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)

from kyso.errors import KeyStoreError, NotFound, WrongPin
from kyso.keys.base import KeyAlgorithm, KeyInfo, SigningKey, check_hash


def generate_private_key(algorithm: KeyAlgorithm) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=algorithm.rsa_bits)
    return ec.generate_private_key(algorithm.curve)


class SoftwareKey:
    """A private key held in memory by the software store."""

    def __init__(self, key_id: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self._key_id = key_id
        self._key = key
        self._algorithm = KeyAlgorithm.of_public_key(key.public_key())

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    def public_key(self) -> PublicKeyTypes:
        return self._key.public_key()

    def sign(self, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        check_hash(hash_algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hash_algorithm)
        return self._key.sign(data, ec.ECDSA(hash_algorithm))

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        check_hash(hash_algorithm)
        prehashed = utils.Prehashed(hash_algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(digest, padding.PKCS1v15(), prehashed)
        return self._key.sign(digest, ec.ECDSA(prehashed))

    def cryptography_key(self) -> CertificateIssuerPrivateKeyTypes | None:
        return self._key


class SoftwareKeyStore:
    """Keys under ``directory``: ``<id>.pem`` (encrypted PKCS#8) and ``<id>.json`` (label)."""

    name = "software"

    def __init__(self, directory: Path, passphrase: str) -> None:
        if not passphrase:
            raise KeyStoreError("no passphrase", vi="chưa có mật khẩu kho khóa")
        self.directory = directory
        self._passphrase = passphrase.encode("utf-8")
        self._loaded: dict[str, SoftwareKey] = {}
        self._lock = threading.Lock()

    def _path(self, key_id: str, suffix: str) -> Path:
        if not key_id.startswith("sw-") or not key_id[3:].isalnum():
            raise NotFound(f"key {key_id}", vi=f"khóa {key_id}")
        return self.directory / f"{key_id}{suffix}"

    def generate(self, label: str, algorithm: KeyAlgorithm) -> SigningKey:
        key = generate_private_key(algorithm)
        key_id = f"sw-{secrets.token_hex(8)}"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        _write_private(self._path(key_id, ".pem"), pem)
        meta = {"label": label, "algorithm": algorithm.value}
        _write_private(self._path(key_id, ".json"), json.dumps(meta).encode())
        handle = SoftwareKey(key_id, key)
        with self._lock:
            self._loaded[key_id] = handle
        return handle

    def get(self, key_id: str) -> SigningKey:
        with self._lock:
            if key_id in self._loaded:
                return self._loaded[key_id]
        path = self._path(key_id, ".pem")
        if not path.exists():
            raise NotFound(f"key {key_id}", vi=f"khóa {key_id}")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), self._passphrase)
        except (ValueError, TypeError) as exc:
            raise WrongPin() from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"unsupported key type in {path.name}")
        handle = SoftwareKey(key_id, key)
        with self._lock:
            self._loaded[key_id] = handle
        return handle

    def list(self) -> list[KeyInfo]:
        infos = []
        for meta_path in sorted(self.directory.glob("sw-*.json")):
            meta = json.loads(meta_path.read_text())
            infos.append(KeyInfo(meta_path.stem, meta["label"], KeyAlgorithm(meta["algorithm"])))
        return infos

    def close(self) -> None:
        with self._lock:
            self._loaded.clear()


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 from the start, so no other user can ever read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
