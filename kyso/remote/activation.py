"""Signature Activation Data (SAD): the single-use permission to sign exact hashes.

CSC API v2 §11.9 ``credentials/authorize`` returns a SAD; SCAL2 (CEN EN 419 241-1 §7.5,
ETSI TS 119 432) requires it to be bound to the signer, the key and the data to be signed.
kyso binds it to the user (or the system client), the credential, the hash algorithm and
the exact multiset of hashes, gives it a short life, and keeps only its SHA-256.

It is consumed by one conditional ``UPDATE … WHERE used_at IS NULL AND expires_at > now``:
the database decides which of two racing processes honours it, so it is honoured once on
whichever process sees it first and never twice. A SAD presented with other hashes or for
another credential is burnt as well: a SAD that leaked is not retried with better guesses.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import KysoError
from kyso.store.db import Database
from kyso.store.models import SignActivation

SAD_PREFIX = "sad_"


class SadProblem(enum.StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    OTHER_SIGNER = "other_signer"
    OTHER_CREDENTIAL = "other_credential"
    OTHER_HASHES = "other_hashes"


class InvalidSad(KysoError):
    """The SAD does not allow this signature (CSC error ``invalid_request``/"Invalid SAD")."""

    code = "invalid_sad"
    http_status = 400
    message_vi = "Dữ liệu kích hoạt chữ ký (SAD) không hợp lệ cho chữ ký này."
    message_en = "The signature activation data (SAD) does not allow this signature."

    def __init__(self, problem: SadProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class Binding:
    """What a SAD allows: who, which key, which hashes (base64, compared as a multiset)."""

    key_location: str
    hash_algorithm: str  # dotted OID or name as the client gave it, normalised by the caller
    hashes: tuple[str, ...]
    user_id: int | None = None
    client_id: int | None = None

    def canonical_hashes(self) -> str:
        return json.dumps(sorted(self.hashes))


def _digest(sad: str) -> str:
    return hashlib.sha256(sad.encode()).hexdigest()


def issue(
    session: Session, binding: Binding, *, seconds: int, approval_id: int | None = None
) -> tuple[str, int]:
    """A new SAD for ``binding`` and its life in seconds (the SAD itself is never stored)."""
    sad = SAD_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        SignActivation(
            sad_sha256=_digest(sad),
            user_id=binding.user_id,
            client_id=binding.client_id,
            key_location=binding.key_location,
            hash_algorithm=binding.hash_algorithm,
            hashes=binding.canonical_hashes(),
            approval_id=approval_id,
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    session.flush()
    return sad, seconds


def consume(db: Database, sad: str, wanted: Binding) -> Activation:
    """Use ``sad`` for ``wanted`` once, or raise :class:`InvalidSad` saying why.

    The SAD is marked used in a transaction of its own, committed before anything is
    signed: a SAD is never honoured twice, even if the signing that follows fails (the
    client then asks for a new one)."""
    digest = _digest(sad.strip()) if sad else ""
    now = clock.now()
    with db.session() as session:
        result = session.execute(
            update(SignActivation)
            .where(
                SignActivation.sad_sha256 == digest,
                SignActivation.used_at.is_(None),
                SignActivation.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        burnt = cast(CursorResult[Any], result).rowcount
        row = session.execute(
            select(SignActivation).where(SignActivation.sad_sha256 == digest)
        ).scalar_one_or_none()
        found = None if row is None else Activation(row.id, row.approval_id, _problem(row, wanted))
    if found is None:
        raise InvalidSad(SadProblem.UNKNOWN)
    if burnt != 1:
        raise InvalidSad(
            SadProblem.USED if found.problem is not SadProblem.EXPIRED else found.problem
        )
    if found.problem is not None:
        raise InvalidSad(found.problem)
    return found


@dataclass(frozen=True)
class Activation:
    id: int
    approval_id: int | None
    problem: SadProblem | None


def _problem(row: SignActivation, wanted: Binding) -> SadProblem | None:
    if row.expires_at <= clock.now() and row.used_at is None:
        return SadProblem.EXPIRED
    if (row.user_id, row.client_id) != (wanted.user_id, wanted.client_id):
        return SadProblem.OTHER_SIGNER
    if row.key_location != wanted.key_location:
        return SadProblem.OTHER_CREDENTIAL
    if row.hash_algorithm != wanted.hash_algorithm or row.hashes != wanted.canonical_hashes():
        return SadProblem.OTHER_HASHES
    return None
