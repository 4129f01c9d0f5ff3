"""The encrypted container of a backup: a passphrase, scrypt, and AES-256-GCM in chunks.

Layout::

    b"KYSOBAK\\x01"                 8 bytes: magic and format version
    header length                   4 bytes, big-endian
    header                          UTF-8 JSON: kdf parameters and salt, cipher, chunk size,
                                    nonce prefix, passphrase check
    chunk 0 … chunk n               AES-256-GCM ciphertext and tag of each plaintext chunk

The key is scrypt (RFC 7914) over the passphrase with a fresh 16-byte salt; ``N = 2^17,
r = 8, p = 1`` (128 MiB, about half a second: a backup is made and opened rarely, so it can
afford eight times the key store's cost). Of its 64 output bytes the first 32 are the
AES-256 key and the SHA-256 of the last 32 is kept in the header, so a wrong passphrase is
told apart from a damaged archive before anything is decrypted.

The chunks follow the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015, §7): the
96-bit GCM nonce (NIST SP 800-38D §8.2.1) is a random 7-byte prefix, a 4-byte chunk counter
and a last-chunk flag byte, and every chunk's associated data is the whole header. A chunk
changed, removed, reordered or appended, a truncated archive or an edited header therefore
fails its tag, and the archive is read in constant memory however large the database is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kyso.errors import KysoError

MAGIC = b"KYSOBAK\x01"
CHUNK = 1024 * 1024
TAG = 16
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
# What an archive may ask of the reader: enough for a stronger future default, not enough
# for a forged header to make the restore spend gigabytes or hours.
_MAX_N, _MAX_R, _MAX_P = 2**20, 16, 4
_MAX_HEADER = 4096
_MAX_COUNTER = 2**32 - 1


class BackupPassphraseWrong(KysoError):
    code = "backup_passphrase_wrong"
    http_status = 422
    message_vi = (
        "Mật khẩu của bản sao lưu không đúng (hoặc phần đầu tệp đã bị sửa); không khôi phục gì."
    )
    message_en = (
        "The backup's passphrase is wrong (or its header was changed); nothing was restored."
    )


class BackupDamaged(KysoError):
    code = "backup_damaged"
    http_status = 422
    message_vi = "Bản sao lưu đã bị thay đổi, cắt bớt hoặc hỏng nên bị từ chối; không khôi phục gì."
    message_en = (
        "The backup was changed, cut short or damaged, so it is refused; nothing was restored."
    )


def _kdf(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(AES key, passphrase check) from one scrypt derivation."""
    out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase)
    return out[:32], hashlib.sha256(out[32:]).digest()


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I?", counter, last)


class SealingWriter:
    """A write-only file object: what is written to it lands encrypted in ``sink``.

    ``close()`` writes the last chunk (with the last-chunk flag) and must be called; it does
    not close ``sink``."""

    def __init__(self, sink: IO[bytes], passphrase: bytes) -> None:
        salt, self._prefix = os.urandom(16), os.urandom(7)
        key, check = _kdf(passphrase, salt, **SCRYPT)
        self._aead = AESGCM(key)
        header = {
            "kdf": {"name": "scrypt", "salt": base64.b64encode(salt).decode(), **SCRYPT},
            "cipher": "AES-256-GCM",
            "construction": "STREAM",
            "chunk": CHUNK,
            "nonce_prefix": base64.b64encode(self._prefix).decode(),
            "check": base64.b64encode(check).decode(),
        }
        self._header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        self.written = 0
        self._emit(MAGIC + struct.pack(">I", len(self._header)) + self._header)

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)
        self.written += len(data)

    def _seal(self, plaintext: bytes, last: bool) -> None:
        if self._counter > _MAX_COUNTER:
            raise OverflowError("backup larger than 4 PiB")
        nonce = _nonce(self._prefix, self._counter, last)
        self._emit(self._aead.encrypt(nonce, plaintext, self._header))
        self._counter += 1

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed backup")
        self._buffer += data
        # ">" not ">=": the last chunk is never empty unless nothing was written at all
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True


def read_header(source: IO[bytes]) -> tuple[bytes, dict[str, Any]]:
    """The header's bytes and fields; :class:`BackupDamaged` for anything that is not one."""
    start = source.read(len(MAGIC) + 4)
    if len(start) != len(MAGIC) + 4 or start[: len(MAGIC)] != MAGIC:
        raise BackupDamaged("not a kyso backup", vi="không phải bản sao lưu của kyso")
    (length,) = struct.unpack(">I", start[len(MAGIC) :])
    if length > _MAX_HEADER:
        raise BackupDamaged("header too long", vi="phần đầu quá dài")
    raw = source.read(length)
    try:
        header = json.loads(raw)
        kdf = header["kdf"]
        ok = (
            kdf["name"] == "scrypt"
            and header["cipher"] == "AES-256-GCM"
            and header["construction"] == "STREAM"
            and header["chunk"] == CHUNK
            and 2 <= kdf["n"] <= _MAX_N
            and kdf["n"] & (kdf["n"] - 1) == 0
            and 1 <= kdf["r"] <= _MAX_R
            and 1 <= kdf["p"] <= _MAX_P
            and len(base64.b64decode(header["nonce_prefix"], validate=True)) == 7
            and len(base64.b64decode(kdf["salt"], validate=True)) >= 16
            and len(base64.b64decode(header["check"], validate=True)) == 32
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupDamaged("unreadable header", vi="không đọc được phần đầu") from exc
    if not ok:
        raise BackupDamaged("unknown header parameters", vi="tham số phần đầu không hợp lệ")
    return raw, header


class OpeningReader:
    """A read-only file object over the plaintext of an archive, authenticated chunk by chunk.

    Raises :class:`BackupPassphraseWrong` at once for a wrong passphrase, and
    :class:`BackupDamaged` at the first chunk that fails, or at the end if the last chunk
    is missing: callers must treat what they read as unconfirmed until :meth:`read` has
    returned ``b""`` (the end, authenticated)."""

    def __init__(self, source: IO[bytes], passphrase: bytes) -> None:
        self._header, header = read_header(source)
        kdf = header["kdf"]
        key, check = _kdf(passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
        if not hmac.compare_digest(check, base64.b64decode(header["check"])):
            raise BackupPassphraseWrong()
        self._aead = AESGCM(key)
        self._prefix = base64.b64decode(header["nonce_prefix"])
        self._source = source
        self._counter = 0
        self._pending = source.read(CHUNK + TAG)
        self._plain = b""
        self._done = False

    def _next_chunk(self) -> None:
        following = self._source.read(CHUNK + TAG)
        last = not following
        try:
            self._plain = self._aead.decrypt(
                _nonce(self._prefix, self._counter, last), self._pending, self._header
            )
        except InvalidTag as exc:
            where = self._counter * (CHUNK + TAG)
            raise BackupDamaged(
                f"chunk {self._counter} (about {where} bytes after the header) fails "
                "authentication",
                vi=f"khối {self._counter} (khoảng byte {where} sau phần đầu) sai mã xác thực",
            ) from exc
        self._counter += 1
        self._pending = following
        self._done = last

    def read(self, size: int = -1) -> bytes:
        parts = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if not self._plain:
                if self._done:
                    break
                self._next_chunk()
                continue
            take = self._plain if wanted is None else self._plain[:wanted]
            self._plain = self._plain[len(take) :]
            parts.append(take)
            if wanted is not None:
                wanted -= len(take)
        return b"".join(parts)

    @property
    def finished(self) -> bool:
        """Every chunk read and authenticated, the last one included."""
        return self._done and not self._plain
