"""Who may do what, and where: roles × actions × unit scope, checked in the services.

The web pages, the API and the CLI all call services with a :class:`Principal`; services
call :func:`require` before they read or change anything, so no entry point can forget a
check. A unit officer and a signer are confined to their own unit and the units below it
(the organization tree's materialized ``path``); the province administrator and the
auditor see the whole province; the auditor changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import InstrumentedAttribute

from kyso.errors import Forbidden
from kyso.store.models import Role


class Action(enum.StrEnum):
    ORG_READ = "org.read"
    ORG_WRITE = "org.write"  # add, edit, import units
    PERSON_READ = "person.read"
    PERSON_WRITE = "person.write"
    USER_ADMIN = "user.admin"
    DEVICE_READ = "device.read"
    DEVICE_WRITE = "device.write"  # inventory, hand-over, PIN change record
    DEVICE_REPORT_LOST = "device.report_lost"
    REQUEST_READ = "request.read"
    REQUEST_CREATE = "request.create"  # draft, edit, submit, cancel, bulk upload
    REQUEST_DECIDE = "request.decide"  # approve, reject
    CERT_ISSUE = "cert.issue"
    CERT_READ = "cert.read"
    CERT_REVOKE = "cert.revoke"  # also suspend / restore
    CERT_HANDOVER = "cert.handover"
    DOCUMENT_SIGN = "document.sign"
    DOCUMENT_EXCHANGE = "document.exchange"  # the records clerk's inbox and outbox (edXML)
    AUDIT_READ = "audit.read"
    REPORT_READ = "report.read"


_READ = {
    Action.ORG_READ,
    Action.PERSON_READ,
    Action.DEVICE_READ,
    Action.REQUEST_READ,
    Action.CERT_READ,
    Action.REPORT_READ,
}

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.PROVINCE_ADMIN: frozenset(Action),
    Role.UNIT_OFFICER: frozenset(
        _READ
        | {
            Action.PERSON_WRITE,
            Action.DEVICE_WRITE,
            Action.DEVICE_REPORT_LOST,
            Action.REQUEST_CREATE,
            Action.CERT_HANDOVER,
            Action.DOCUMENT_SIGN,
            Action.DOCUMENT_EXCHANGE,
        }
    ),
    Role.SIGNER: frozenset(
        {Action.ORG_READ, Action.CERT_READ, Action.DOCUMENT_SIGN, Action.DEVICE_REPORT_LOST}
    ),
    Role.AUDITOR: frozenset(_READ | {Action.AUDIT_READ}),
}

# Roles whose view is the whole province.
PROVINCE_WIDE = frozenset({Role.PROVINCE_ADMIN, Role.AUDITOR})

# API token scopes and the actions each one opens (a token never exceeds its user's role).
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "certificates:read": frozenset({Action.CERT_READ, Action.ORG_READ, Action.PERSON_READ}),
    "certificates:issue": frozenset({Action.CERT_ISSUE}),
    "certificates:revoke": frozenset({Action.CERT_REVOKE}),
    "registry:read": frozenset({Action.ORG_READ, Action.PERSON_READ, Action.DEVICE_READ}),
    "registry:write": frozenset(
        {Action.ORG_WRITE, Action.PERSON_WRITE, Action.DEVICE_WRITE, Action.DEVICE_REPORT_LOST}
    ),
    "requests:read": frozenset({Action.REQUEST_READ}),
    "requests:write": frozenset({Action.REQUEST_CREATE, Action.CERT_HANDOVER}),
    "requests:decide": frozenset({Action.REQUEST_DECIDE}),
    "documents:sign": frozenset({Action.DOCUMENT_SIGN}),
    "documents:exchange": frozenset({Action.DOCUMENT_EXCHANGE, Action.DOCUMENT_SIGN}),
    "audit:read": frozenset({Action.AUDIT_READ}),
    "reports:read": frozenset({Action.REPORT_READ}),
    "users:admin": frozenset({Action.USER_ADMIN}),
}


@dataclass(frozen=True)
class Principal:
    """Someone acting: a logged-in user, a user's API token, a system integration, the CLI."""

    actor: str  # written into audit entries: "user:lan", "api:erp", "cli:root"
    role: Role
    user_id: int | None = None
    organization_id: int | None = None
    org_path: str | None = None  # the unit's materialized path; None = province-wide
    scopes: frozenset[str] | None = None  # None = not narrowed (a session, the CLI)
    client_id: int | None = None  # the API client whose token this is (None: no token)

    @property
    def province_wide(self) -> bool:
        # By role only: a unit role whose unit is missing sees nothing (fails closed).
        return self.role in PROVINCE_WIDE

    def can(self, action: Action) -> bool:
        if action not in PERMISSIONS[self.role]:
            return False
        if self.scopes is None:
            return True
        return any(action in SCOPE_ACTIONS.get(scope, ()) for scope in self.scopes)

    def covers(self, org_path: str | None) -> bool:
        """Whether a unit (by its path) is inside this principal's view."""
        if self.province_wide:
            return True
        return (
            org_path is not None
            and self.org_path is not None
            and org_path.startswith(self.org_path)
        )


def require(principal: Principal, action: Action, org_path: str | None = None) -> None:
    """Refuse unless the role (and token scopes) allow ``action`` on a unit in view.

    ``org_path`` None means the action is not about one unit (e.g. listing, which is then
    filtered with :func:`visible`)."""
    if not principal.can(action):
        raise Forbidden(action.value, vi=f"thao tác {action.value}")
    if org_path is not None and not principal.covers(org_path):
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")


def visible(principal: Principal, path_column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """A WHERE clause keeping rows whose unit is in the principal's view."""
    if principal.province_wide:
        return true()
    if principal.org_path is None:
        return false()
    return path_column.startswith(principal.org_path, autoescape=True)


SYSTEM = Principal(actor="system", role=Role.PROVINCE_ADMIN)


def cli_principal(actor: str) -> Principal:
    """Whoever can run the CLI on the server already holds the keys: province-wide."""
    return Principal(actor=actor, role=Role.PROVINCE_ADMIN)
