"""A content-addressed file store: each file is kept once, under its SHA-256
(``ab/cd/abcd…``), written to a temporary name, flushed to disk and then renamed, so a file
is either whole or absent. Reading gives the bytes only if they still hash to their name."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from kyso.errors import KysoError

CHUNK = 1024 * 1024


class Corrupted(KysoError):
    code = "archive_corrupted"
    http_status = 500
    message_vi = "Tệp lưu trữ đã bị thay đổi hoặc hỏng."
    message_en = "An archived file was changed or damaged."


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Keep ``data``; its SHA-256. Keeping the same bytes again writes nothing."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{digest}.{secrets.token_hex(4)}.tmp")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        os.chmod(target, 0o440)
        return digest

    def get(self, digest: str) -> bytes:
        data = self.path(digest).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise Corrupted(f"{digest} no longer hashes to its name")
        return data

    def digest_of(self, digest: str) -> tuple[str, int] | None:
        """The SHA-256 and size of what is stored under ``digest`` now (None if nothing
        is), read in chunks: checking a large archive needs no more memory than one chunk."""
        try:
            handle = self.path(digest).open("rb")
        except FileNotFoundError:
            return None
        hasher = hashlib.sha256()
        size = 0
        with handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                hasher.update(chunk)
                size += len(chunk)
        return hasher.hexdigest(), size

    def walk(self) -> Iterator[str]:
        """Every stored file's name (for finding files no record names)."""
        if not self.root.exists():
            return
        for path in self.root.glob("??/??/*"):
            if not path.name.startswith("."):
                yield path.name
