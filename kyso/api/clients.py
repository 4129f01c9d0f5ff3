"""API clients: systems that call kyso with a bearer token limited to scopes.

Only the SHA-256 of a token is stored: tokens are 256-bit random, so a fast hash is as good
as a slow one here (Argon2 is for passwords people choose) and costs microseconds per call.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, Unauthenticated
from kyso.registry.access import SCOPE_ACTIONS, Principal
from kyso.store.models import (
    ApiClient,
    ApiClientKey,
    Certificate,
    CertStatus,
    Organization,
    Role,
    User,
)

TOKEN_PREFIX = "kyso_"  # noqa: S105 (a prefix, not a secret)


class Scope(enum.StrEnum):
    CERTIFICATES_READ = "certificates:read"
    CERTIFICATES_ISSUE = "certificates:issue"
    CERTIFICATES_REVOKE = "certificates:revoke"
    CRL_ISSUE = "crl:issue"
    AUDIT_READ = "audit:read"
    DOCUMENTS_SIGN = "documents:sign"


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api:{self.name}"

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes:
            raise Forbidden(
                f"the token lacks scope {scope.value}", vi=f"mã truy cập thiếu quyền {scope.value}"
            )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    session: Session,
    name: str,
    scopes: list[str],
    actor: str,
    *,
    user_id: int | None = None,
    keys: list[str] | None = None,
    keystore: str | None = None,
) -> str:
    """Make a client and return its token (shown once, never stored). With ``user_id`` the
    token acts as that user, never beyond the user's role and unit. A system token (no user)
    with ``documents:sign`` signs only with ``keys`` (ids in ``keystore``), named here: each
    must be a subscriber key kyso holds with a valid certificate, never one of the CA's."""
    known = sorted({x.value for x in Scope} | set(SCOPE_ACTIONS))
    unknown = [s for s in scopes if s not in known]
    if unknown or not scopes:
        raise InvalidInput(
            f"scopes must be among {', '.join(known)}", vi=f"quyền phải thuộc {', '.join(known)}"
        )
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a client needs a name", vi="cần đặt tên cho ứng dụng")
    if session.execute(select(ApiClient.id).where(ApiClient.name == name)).first():
        raise Conflict(f"client '{name}' exists", vi=f"ứng dụng '{name}' đã có")
    locations = _signing_keys(session, keys or [], keystore, user_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        name=name,
        token_sha256=_hash(token),
        scopes=" ".join(sorted(set(scopes))),
        created_at=clock.now(),
        user_id=user_id,
    )
    session.add(client)
    session.flush()
    session.add_all(ApiClientKey(client_id=client.id, key_location=loc) for loc in locations)
    record(
        session,
        Event(
            actor,
            "api_client.created",
            name,
            {"scopes": sorted(set(scopes)), "keys": locations, "user_id": user_id},
        ),
    )
    return token


def _signing_keys(
    session: Session, keys: list[str], keystore: str | None, user_id: int | None
) -> list[str]:
    """The key locations a system token is bound to, each checked now."""
    from kyso.pki.status import CA_PROFILES
    from kyso.signing.keyuse import is_ca_key

    if not keys:
        return []
    if user_id is not None:
        raise InvalidInput(
            "a user's token signs with the user's keys; name keys only for a system client",
            vi="mã của người dùng ký bằng khóa của người đó; chỉ gán khóa cho ứng dụng hệ thống",
        )
    if keystore is None:
        raise InvalidInput("which key store holds the keys?", vi="khóa thuộc kho khóa nào?")
    locations = []
    for key_id in sorted(set(keys)):
        location = f"{keystore}:{key_id}"
        usable = session.execute(
            select(Certificate.id).where(
                Certificate.key_location == location,
                Certificate.status == CertStatus.GOOD,
                Certificate.profile.not_in(CA_PROFILES),
            )
        ).first()
        if usable is None or is_ca_key(session, keystore, key_id):
            raise InvalidInput(
                f"key {key_id}: no valid subscriber certificate kyso holds the key of",
                vi=f"khóa {key_id}: không có chứng thư thuê bao còn hiệu lực mà kyso giữ khóa",
            )
        locations.append(location)
    return locations


def authenticate(session: Session, authorization: str | None) -> Caller:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated()
    token = authorization.removeprefix("Bearer ").strip()
    row = session.execute(
        select(ApiClient.name, ApiClient.scopes, ApiClient.revoked_at).where(
            ApiClient.token_sha256 == _hash(token)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated()
    return Caller(row.name, frozenset(row.scopes.split()))


_PRINCIPAL = (
    select(
        ApiClient.id,
        ApiClient.name,
        ApiClient.scopes,
        ApiClient.revoked_at,
        ApiClient.user_id,
        User.role,
        User.active,
        User.organization_id,
        Organization.path,
    )
    .outerjoin(User, User.id == ApiClient.user_id)
    .outerjoin(Organization, Organization.id == User.organization_id)
    .where(ApiClient.token_sha256 == bindparam("digest"))
)


def authenticate_principal(db: Session | Connection, authorization: str | None) -> Principal:
    """The principal a bearer token acts as: its user's role and unit, narrowed to its
    scopes; a token without a user is a system integration, province-wide within scopes."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated()
    token = authorization.removeprefix("Bearer ").strip()
    # One statement per request (it runs before every API call): token, user and unit.
    conn = db.connection() if isinstance(db, Session) else db
    row = conn.execute(_PRINCIPAL, {"digest": _hash(token)}).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated()
    scopes = frozenset(row.scopes.split())
    if row.user_id is None:
        return Principal(
            actor=f"api:{row.name}", role=Role.PROVINCE_ADMIN, scopes=scopes, client_id=row.id
        )
    if row.role is None or not row.active:
        raise Unauthenticated()
    return Principal(
        actor=f"api:{row.name}",
        role=row.role,
        user_id=row.user_id,
        organization_id=row.organization_id,
        org_path=row.path,
        scopes=scopes,
        client_id=row.id,
    )
