"""Software key store: private keys as encrypted PKCS#8 PEM files, mode 0600.

Loading an RSA key costs ~27 ms (``cryptography`` validates it, see PERFORMANCE.md), so a
store loads each key once and keeps it for the life of the process.

The data key that seals small secrets (:class:`kyso.keys.base.Sealer`) is 32 random bytes
kept in ``data-key.json`` (0600) encrypted under the store's passphrase: scrypt (RFC 7914;
N = 2^15, r = 8, p = 1, OWASP's floor) derives a key-encryption key that opens it with
AES-256-GCM. It is made on first use and read once per process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

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

DATA_KEY_FILE = "data-key.json"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_DATA_KEY_AAD = b"kyso data key"


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
        self._data_key: tuple[bytes, AESGCM] | None = None

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

    # -- sealing small secrets -------------------------------------------------------------
    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        key_id, aead = self._data_key_for(create=True)
        header, nonce = seal_header(key_id), secrets.token_bytes(SEAL_NONCE_BYTES)
        return header + nonce + aead.encrypt(nonce, plaintext, header + context)

    def unseal(self, sealed: bytes, context: bytes) -> bytes:
        parts = sealed_parts(sealed)
        key_id, aead = self._data_key_for(create=False)
        if parts.key_id != key_id:
            raise SealedDataError("sealed with another data key")
        try:
            return aead.decrypt(parts.nonce, parts.body, parts.header + context)
        except InvalidTag as exc:
            raise SealedDataError("the sealed value does not open in this context") from exc

    def _data_key_for(self, *, create: bool) -> tuple[bytes, AESGCM]:
        with self._lock:
            if self._data_key is None:
                path = self.directory / DATA_KEY_FILE
                if not path.exists():
                    if not create:
                        raise SealedDataError(f"no data key in {self.directory}")
                    self._make_data_key(path)
                self._data_key = self._open_data_key(path)
            return self._data_key

    def _kek(self, salt: bytes, params: dict[str, int]) -> AESGCM:
        kdf = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])
        return AESGCM(kdf.derive(self._passphrase))

    def _make_data_key(self, path: Path) -> None:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(SEAL_NONCE_BYTES)
        key_id = secrets.token_bytes(SEAL_KEY_ID_BYTES)
        wrapped = self._kek(salt, _SCRYPT).encrypt(
            nonce, secrets.token_bytes(32), _DATA_KEY_AAD + key_id
        )
        record = {
            "kdf": "scrypt",
            **_SCRYPT,
            "salt": _b64(salt),
            "key_id": key_id.hex(),
            "nonce": _b64(nonce),
            "wrapped_key": _b64(wrapped),
        }
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written aside, then linked into place: a process starting at the same moment sees
        # either no file or a whole one, and the first link wins (the loser uses it).
        draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        _write_private(draft, json.dumps(record).encode())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()

    def _open_data_key(self, path: Path) -> tuple[bytes, AESGCM]:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            key_id = bytes.fromhex(record["key_id"])
            params = {name: int(record[name]) for name in _SCRYPT}
            kek = self._kek(base64.b64decode(record["salt"]), params)
            wrapped, nonce = (
                base64.b64decode(record["wrapped_key"]),
                base64.b64decode(record["nonce"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{path.name} is damaged", vi=f"tệp {path.name} bị hỏng") from exc
        try:
            data_key = kek.decrypt(nonce, wrapped, _DATA_KEY_AAD + key_id)
        except InvalidTag as exc:
            raise WrongPin() from exc
        return key_id, AESGCM(data_key)

    def close(self) -> None:
        with self._lock:
            self._loaded.clear()
            self._data_key = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 from the start, so no other user can ever read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
