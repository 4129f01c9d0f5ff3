"""People who log in to kyso, their roles and how they prove who they are.

Passwords are kept only as Argon2id hashes. The province administrator and the auditor — who
can see and, for the administrator, change everything — also give a TOTP code (RFC 6238) from an
authenticator app. Neither a password nor a TOTP secret is ever written to the audit log or a
log file.

Guessing is throttled per client address, never by locking an account (which anyone who knows
a user name could do to its owner): a :class:`Throttle` counts every attempt and every failure
of an address in the shared budgets of :mod:`kyso.ratelimit`. Per user name there is only a
slow-down, as OWASP's authentication cheat sheet advises: while a name has failed more than
its budget, addresses that failed recently may not try it, and a right password from any
other address still logs in. A failure reads the same whatever the cause (no such user, wrong
password or code, account disabled) and costs the same Argon2 check, so the answer does not
tell whether an account exists.

Logging in returns a :class:`LoginResult` instead of raising, so the caller commits the failed
attempt count (an exception would roll it back and make guessing free).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock, ratelimit
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from kyso.ratelimit import Budget, Purpose, RateLimited
from kyso.registry import fields as f
from kyso.registry import totp
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import Organization, Person, Role, User

TOTP_ROLES = frozenset({Role.PROVINCE_ADMIN, Role.AUDITOR})
UNIT_ROLES = frozenset({Role.UNIT_OFFICER, Role.SIGNER})  # confined to a unit: need one

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,99}")
# Argon2id at OWASP's recommended floor (19 MiB, 2 passes, 1 lane): ~0.1 s per check on the
# small servers a province runs, so a login burst cannot starve the signing services. Hashes
# made with other parameters are upgraded at the next successful login (check_needs_rehash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("kyso: no such user, same cost")


class LoginStatus(enum.StrEnum):
    OK = "ok"
    NEEDS_TOTP = "needs_totp"  # password right; ask for the one-time code
    TOTP_NOT_ENROLLED = "totp_not_enrolled"  # the role needs TOTP but none is set up
    FAILED = "failed"  # one answer for every cause: no account is named
    THROTTLED = "throttled"  # this address has tried too often; nothing was checked


@dataclass(frozen=True)
class LoginResult:
    status: LoginStatus
    user: User | None = None
    retry_after: float | None = None  # THROTTLED: seconds until one more attempt fits

    @property
    def ok(self) -> bool:
        return self.status is LoginStatus.OK

    def raise_for_status(self) -> User:
        """The user when logged in; otherwise the error to show (after committing)."""
        if self.status is LoginStatus.OK:
            assert self.user is not None
            return self.user
        if self.status is LoginStatus.THROTTLED:
            raise RateLimited(self.retry_after or 60)
        if self.status is LoginStatus.NEEDS_TOTP:
            raise Unauthenticated(
                "enter the 6-digit code from your authenticator app",
                vi="nhập mã 6 chữ số từ ứng dụng xác thực",
            )
        if self.status is LoginStatus.TOTP_NOT_ENROLLED:
            raise Unauthenticated(
                "this role needs a second factor: ask the administrator to enrol one",
                vi="vai trò này cần xác thực hai lớp: đề nghị quản trị viên đăng ký",
            )
        raise Unauthenticated(
            "wrong user name, password or code", vi="sai tên đăng nhập, mật khẩu hoặc mã xác thực"
        )


@dataclass(frozen=True)
class TotpEnrolment:
    """Shown once to the user (as text and as a QR code of ``uri``); never logged."""

    secret: str
    uri: str


@dataclass(frozen=True)
class UserInput:
    username: str
    full_name: str
    password: str
    role: Role
    unit: str | None = None  # public id of the user's unit
    email: str | None = None
    person: str | None = None  # public id of the subscriber record, for signers


@dataclass(frozen=True)
class NewUser:
    user: User
    totp: TotpEnrolment | None


def needs_totp(user: User) -> bool:
    return user.role in TOTP_ROLES or totp.is_enrolled(user)


def principal_for_user(session: Session, user: User) -> Principal:
    """What a logged-in user may do: their role, confined to their unit's subtree."""
    path = None
    if user.organization_id is not None:
        org = session.get(Organization, user.organization_id)
        path = org.path if org is not None else None
    return Principal(
        actor=f"user:{user.username}",
        role=user.role,
        user_id=user.id,
        organization_id=user.organization_id,
        org_path=path,
    )


def _check_password(password: str, username: str) -> None:
    problem = f.password_problem(password, username)
    if problem is not None:
        raise f.invalid([problem])


def _username(value: str) -> str:
    name = value.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise f.invalid(
            [
                f.FieldProblem(
                    "username",
                    "must be 3–100 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                    "gồm 3–100 ký tự a-z, 0-9, '.', '_', '-', bắt đầu bằng chữ hoặc số",
                )
            ]
        )
    return name


def _enrolment(session: Session, user: User) -> TotpEnrolment:
    secret = totp.generate_secret()
    totp.write_secret(session, user, secret)
    user.totp_last_step = None
    return TotpEnrolment(secret, totp.provisioning_uri(secret, user.username))


def create(principal: Principal, session: Session, data: UserInput) -> NewUser:
    """Add a user; roles that need TOTP get a secret at once (returned, shown once)."""
    unit = None
    if data.unit is not None:
        unit = session.execute(
            select(Organization).where(Organization.public_id == data.unit)
        ).scalar_one_or_none()
        if unit is None:
            raise NotFound(f"organization {data.unit}", vi=f"đơn vị {data.unit}")
    require(principal, Action.USER_ADMIN, unit.path if unit else None)
    username = _username(data.username)
    role = Role(data.role)
    if role in UNIT_ROLES and unit is None:
        raise f.invalid(
            [
                f.FieldProblem(
                    "unit", f"a {role.value} needs a unit", f"vai trò {role.value} cần có đơn vị"
                )
            ]
        )
    c = f.Collector()
    full_name = c.check(lambda: f.text("full_name", data.full_name, max_length=200, required=True))
    email = c.check(lambda: f.email("email", data.email))
    problem = f.password_problem(data.password, username)
    if problem is not None:
        c.problems.append(problem)
    c.raise_if_any()
    person = None
    if data.person is not None:
        row = session.execute(
            select(Person, Organization.path)
            .join(Organization, Person.organization_id == Organization.id)
            .where(Person.public_id == data.person)
        ).first()
        if row is None:
            raise NotFound(f"person {data.person}", vi=f"thuê bao {data.person}")
        person = row[0]
        require(principal, Action.PERSON_READ, row[1])
    if session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"user name {username} is taken", vi=f"tên đăng nhập {username} đã có")
    now = clock.now()
    user = User(
        public_id=f.new_public_id(),
        username=username,
        full_name=full_name or "",
        email=email,
        password_hash=_hasher.hash(data.password),
        role=role,
        organization_id=unit.id if unit else None,
        person_id=person.id if person else None,
        failed_logins=0,
        password_changed_at=now,
        active=True,
        created_at=now,
    )
    enrolment = _enrolment(session, user) if role in TOTP_ROLES else None
    session.add(user)
    session.flush()
    record(
        session,
        Event(
            principal.actor,
            "user.created",
            user.public_id,
            {
                "username": username,
                "role": role.value,
                "unit": unit.public_id if unit else None,
                "totp": enrolment is not None,
            },
        ),
    )
    return NewUser(user, enrolment)


def _load(session: Session, public_id: str) -> tuple[User, str | None]:
    row = session.execute(
        select(User, Organization.path)
        .outerjoin(Organization, User.organization_id == Organization.id)
        .where(User.public_id == public_id)
    ).first()
    if row is None:
        raise NotFound(f"user {public_id}", vi=f"người dùng {public_id}")
    return row[0], row[1]


def get(principal: Principal, session: Session, public_id: str) -> User:
    user, path = _load(session, public_id)
    if principal.user_id != user.id:
        require(principal, Action.USER_ADMIN, path)
    return user


def by_username(session: Session, username: str) -> User | None:
    return session.execute(
        select(User).where(User.username == username.strip().lower())
    ).scalar_one_or_none()


def search(
    principal: Principal,
    session: Session,
    *,
    q: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[User]:
    require(principal, Action.USER_ADMIN)
    query = (
        select(User)
        .outerjoin(Organization, User.organization_id == Organization.id)
        .order_by(User.username)
    )
    if not principal.province_wide:
        query = query.where(visible(principal, Organization.path))
    if role is not None:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.active == active)
    rows = list(session.execute(query).scalars())
    if q:
        needle = f.fold(q)
        rows = [u for u in rows if needle in f.fold(u.username) or needle in f.fold(u.full_name)]
    return f.Page(rows[offset : offset + limit], len(rows), offset, limit)


# -- logging in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Throttle:
    """The budgets of one client address (as the web layer knows it) for logging in."""

    address: str
    budgets: Mapping[Purpose, Budget | None]

    def _key(self, purpose: Purpose, name: str | None = None) -> str:
        if name is not None:
            return ratelimit.bucket_key(purpose, name, hashed=True)
        return ratelimit.bucket_key(purpose, self.address)

    def admit(self, session: Session, username: str, now: float) -> float | None:
        """Count one attempt; seconds to wait if it may not be checked, else None.

        Refused: an address over its attempts, or over its failures; and, while the user
        name is over its own failures (someone is guessing it, maybe from many places), an
        address that failed recently. A right password from a clean address still passes,
        so nobody can keep a user out by typing wrong passwords for their name."""
        attempts = self.budgets.get(Purpose.LOGIN)
        if attempts is not None:
            late = ratelimit.take(session, attempts, self._key(Purpose.LOGIN), now=now)
            if late is not None:
                return late
        failures = self.budgets.get(Purpose.LOGIN_FAILURE)
        if failures is not None:
            late = ratelimit.wait(session, failures, self._key(Purpose.LOGIN_FAILURE), now=now)
            if late is not None:
                return late
        per_name = self.budgets.get(Purpose.LOGIN_ACCOUNT)
        if per_name is not None:
            late = ratelimit.wait(
                session, per_name, self._key(Purpose.LOGIN_ACCOUNT, username), now=now
            )
            if late is not None and ratelimit.marked(
                session, self._key(Purpose.LOGIN_FAILURE), now=now
            ):
                return late
        return None

    def failed(self, session: Session, username: str, now: float) -> None:
        """A wrong password or code: spent from the address's and the name's failures."""
        for purpose, key in (
            (Purpose.LOGIN_FAILURE, self._key(Purpose.LOGIN_FAILURE)),
            (Purpose.LOGIN_ACCOUNT, self._key(Purpose.LOGIN_ACCOUNT, username)),
        ):
            budget = self.budgets.get(purpose)
            if budget is not None:
                ratelimit.take(session, budget, key, now=now)  # full already: stays full


def _verify_password(user: User, password: str) -> bool:
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def _fail(
    session: Session,
    user: User,
    now: datetime,
    why: str,
    throttle: Throttle | None = None,
) -> LoginResult:
    """A wrong password or code for an existing user: counted (shown to administrators),
    recorded, and spent from the throttle. The account stays open."""
    user.failed_logins = (user.failed_logins or 0) + 1
    record(
        session,
        Event(
            f"user:{user.username}",
            "user.login_failed",
            user.public_id,
            {"reason": why, "failures": user.failed_logins, **_client(throttle)},
        ),
    )
    if throttle is not None:
        throttle.failed(session, user.username, now.timestamp())
    return LoginResult(LoginStatus.FAILED)


def _client(throttle: Throttle | None) -> dict[str, str]:
    """The client address for an audit entry: the one the throttle counts (the peer, or what
    a trusted proxy reported), never a header."""
    return {"address": throttle.address} if throttle is not None else {}


def _succeed(
    session: Session, user: User, now: datetime, factors: str, throttle: Throttle | None = None
) -> LoginResult:
    user.failed_logins = 0
    user.last_login_at = now
    record(
        session,
        Event(
            f"user:{user.username}",
            "user.login",
            user.public_id,
            {"factors": factors, **_client(throttle)},
        ),
    )
    return LoginResult(LoginStatus.OK, user)


def login(
    session: Session,
    username: str,
    password: str,
    totp_code: str | None = None,
    *,
    now: datetime | None = None,
    throttle: Throttle | None = None,
) -> LoginResult:
    """Check a password (and, where the role needs it, a TOTP code). Commit the session
    whatever the result: failed attempts are counted in it."""
    now = now or clock.now()
    name = username.strip().lower()
    if throttle is not None:
        late = throttle.admit(session, name, now.timestamp())
        if late is not None:
            return LoginResult(LoginStatus.THROTTLED, retry_after=late)
    user = by_username(session, name)
    if user is None or not user.active:
        with suppress(VerificationError):  # the same Argon2 cost whether or not they exist
            _hasher.verify(_dummy_hash(), password)
        if throttle is not None:
            throttle.failed(session, name, now.timestamp())
        return LoginResult(LoginStatus.FAILED)
    if not _verify_password(user, password):
        return _fail(session, user, now, "password", throttle)
    if not needs_totp(user):
        return _succeed(session, user, now, "password", throttle)
    if not totp.is_enrolled(user):
        return LoginResult(LoginStatus.TOTP_NOT_ENROLLED)
    if totp_code is None:
        return LoginResult(LoginStatus.NEEDS_TOTP, user)
    return _second_factor(session, user, totp_code, now, throttle)


def second_factor(
    session: Session,
    user: User,
    code: str,
    *,
    now: datetime | None = None,
    throttle: Throttle | None = None,
) -> LoginResult:
    """The TOTP step alone, for a caller that has already checked the password (a web login
    in two pages keeps a single-use challenge between them, not the password)."""
    now = now or clock.now()
    if not user.active:
        return LoginResult(LoginStatus.FAILED)
    if not totp.is_enrolled(user):
        return LoginResult(LoginStatus.TOTP_NOT_ENROLLED)
    return _second_factor(session, user, code, now, throttle)


def _second_factor(
    session: Session, user: User, code: str, now: datetime, throttle: Throttle | None = None
) -> LoginResult:
    secret = totp.read_secret(session, user)
    assert secret is not None
    step = totp.verify(secret, code, now, after_step=user.totp_last_step)
    if step is None:
        return _fail(session, user, now, "totp", throttle)
    user.totp_last_step = step
    return _succeed(session, user, now, "password+totp", throttle)


# -- changes ----------------------------------------------------------------------------------
def change_password(
    principal: Principal,
    session: Session,
    old_password: str,
    new_password: str,
    *,
    throttle: Throttle | None = None,
) -> User:
    """A user changes their own password; the old one is required, and guessing it is
    throttled like a login (:func:`count_wrong_password`)."""
    if principal.user_id is None:
        raise Forbidden(
            "only a logged-in user changes their own password",
            vi="chỉ người dùng đã đăng nhập mới đổi được mật khẩu của mình",
        )
    user = session.get(User, principal.user_id)
    if user is None or not user.active:
        raise Unauthenticated()
    if throttle is not None:
        late = throttle.admit(session, user.username, clock.timestamp())
        if late is not None:
            raise RateLimited(late)
    if not _verify_password(user, old_password):
        raise Forbidden("the current password is wrong", vi="mật khẩu hiện tại không đúng")
    if old_password == new_password:
        raise InvalidInput(
            "the new password must differ from the old one", vi="mật khẩu mới phải khác mật khẩu cũ"
        )
    _check_password(new_password, user.username)
    user.password_hash = _hasher.hash(new_password)
    user.password_changed_at = clock.now()
    record(session, Event(principal.actor, "user.password_changed", user.public_id))
    return user


def count_wrong_password(
    session: Session, user_id: int, *, throttle: Throttle | None = None
) -> LoginResult:
    """A wrong current password typed in a logged-in session (changing the password) counts
    like a failed login, so a session left open is no way to guess it. Called in a
    transaction of its own, since the refused change rolls back."""
    user = session.get(User, user_id)
    if user is None:
        return LoginResult(LoginStatus.FAILED)
    return _fail(session, user, clock.now(), "current password", throttle)


def reset_password(
    principal: Principal, session: Session, public_id: str, new_password: str
) -> User:
    """An administrator sets a new password (and clears the failure count)."""
    user, path = _load(session, public_id)
    require(principal, Action.USER_ADMIN, path)
    _check_password(new_password, user.username)
    user.password_hash = _hasher.hash(new_password)
    user.password_changed_at = clock.now()
    user.failed_logins = 0
    user.locked_until = None
    record(session, Event(principal.actor, "user.password_reset", user.public_id))
    return user


def enrol_totp(principal: Principal, session: Session, public_id: str) -> TotpEnrolment:
    """A new TOTP secret for a user (themselves, or anyone for an administrator); the old
    one stops working at once."""
    user, path = _load(session, public_id)
    if principal.user_id != user.id:
        require(principal, Action.USER_ADMIN, path)
    enrolment = _enrolment(session, user)
    record(session, Event(principal.actor, "user.totp_enrolled", user.public_id))
    return enrolment


def deactivate(principal: Principal, session: Session, public_id: str) -> User:
    """The user can no longer log in, and their API tokens stop working."""
    user, path = _load(session, public_id)
    require(principal, Action.USER_ADMIN, path)
    if principal.user_id == user.id:
        raise Conflict("you cannot deactivate yourself", vi="không thể tự khóa tài khoản của mình")
    if user.active:
        user.active = False
        record(
            session,
            Event(principal.actor, "user.deactivated", user.public_id, {"username": user.username}),
        )
    return user
