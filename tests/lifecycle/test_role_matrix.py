"""The role matrix, walked through the API: each role × each action × own unit / other unit.

Every cell states the answer expected: allowed (2xx) or refused (403). The actors are real
users' API tokens (their role and unit decide; the token's scopes only narrow), so this
checks the rule as a system calling kyso would meet it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kyso import clock
from kyso.api import clients
from kyso.pki import issuance
from kyso.pki.names import parse_subject
from kyso.store.models import Profile, Role, User
from lifecycle.conftest import World, individual_form, make_csr

ALL = sorted(set(clients.SCOPE_ACTIONS) | {s.value for s in clients.Scope})


def _signer(world: World) -> dict[str, str]:
    """A signer at UBND huyện Ba Bể (the world has none)."""
    with world.ctx.db.session() as session:
        now = clock.now()
        user = User(
            public_id=secrets.token_hex(8),
            username=f"signer-{world.tag}",
            full_name="Ma Văn Ký",
            password_hash="!",
            role=Role.SIGNER,
            organization_id=world.unit("babe").id,
            password_changed_at=now,
            created_at=now,
            active=True,
            failed_logins=0,
        )
        session.add(user)
        session.flush()
        token = clients.create(session, f"signer-{world.tag}", ALL, "test", user_id=user.id)
    return {"authorization": f"Bearer {token}"}


def _certificate_in(world: World, unit: str) -> str:
    """A certificate issued to a person of ``unit``; its serial."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject(f"CN=Người thử {secrets.token_hex(2)},C=VN"),
        key.public_key(),
        organization_id=world.unit(unit).id,
    )
    with world.ctx.db.session() as session:
        return issuance.issue(session, world.ctx.authority, spec, "test").serial


def _officer_of(unit: str) -> str:
    return "officer" if unit == "chuhuong" else "officer_ns"


def _draft(api: TestClient, world: World, unit: str) -> str:
    """A request drafted by the unit's own officer, as it happens in the province."""
    made = api.post(
        "/api/v1/requests",
        headers=world.headers(_officer_of(unit)),
        json={
            "type": "new_individual",
            "form": individual_form(),
            "subject_unit": world.unit(unit).public_id,
            "csr": make_csr(),
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _submitted(api: TestClient, world: World, unit: str) -> str:
    rid = _draft(api, world, unit)
    submitted = api.post(f"/api/v1/requests/{rid}/submit", headers=world.headers(_officer_of(unit)))
    assert submitted.status_code == 200, submitted.text
    return rid


Action = Callable[[TestClient, World, dict[str, str], str], int]


def read_unit(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.get(f"/api/v1/organizations/{world.unit(unit).public_id}", headers=h).status_code


def create_unit_below(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.post(
        "/api/v1/organizations",
        headers=h,
        json={
            "name": f"Tổ công tác {secrets.token_hex(3)}",
            "kind": "other",
            "sector": "government",
            "parent": world.unit(unit).public_id,
        },
    ).status_code


def add_person(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.post(
        "/api/v1/people",
        headers=h,
        json={"full_name": "Nông Thị Thử", "organization": world.unit(unit).public_id},
    ).status_code


def draft_request(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.post(
        "/api/v1/requests",
        headers=h,
        json={
            "type": "new_individual",
            "form": individual_form(),
            "subject_unit": world.unit(unit).public_id,
            "csr": make_csr(),
        },
    ).status_code


def read_request(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.get(f"/api/v1/requests/{_draft(api, world, unit)}", headers=h).status_code


def approve_request(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.post(
        f"/api/v1/requests/{_submitted(api, world, unit)}/approve", headers=h
    ).status_code


def reject_request(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    rid = _submitted(api, world, unit)
    return api.post(
        f"/api/v1/requests/{rid}/reject", headers=h, json={"reason": "thiếu hồ sơ"}
    ).status_code


def read_certificate(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.get(f"/api/v1/certificates/{_certificate_in(world, unit)}", headers=h).status_code


def revoke_certificate(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    serial = _certificate_in(world, unit)
    return api.post(
        f"/api/v1/certificates/{serial}/revoke", headers=h, json={"reason": "superseded"}
    ).status_code


def list_users(api: TestClient, world: World, h: dict[str, str], unit: str) -> int:
    return api.get("/api/v1/users", headers=h).status_code


OK, NO = "allowed", "refused"
# role → action → (own unit, other unit); "own" is UBND huyện Ba Bể's subtree for unit roles,
# and for the province-wide roles both columns name a district they oversee.
MATRIX: dict[str, dict[str, tuple[str, str]]] = {
    "admin1": {
        "read_unit": (OK, OK),
        "create_unit_below": (OK, OK),
        "add_person": (OK, OK),
        "draft_request": (OK, OK),
        "read_request": (OK, OK),
        "approve_request": (OK, OK),
        "reject_request": (OK, OK),
        "read_certificate": (OK, OK),
        "revoke_certificate": (OK, OK),
        "list_users": (OK, OK),
    },
    "officer": {
        "read_unit": (OK, NO),
        "create_unit_below": (NO, NO),
        "add_person": (OK, NO),
        "draft_request": (OK, NO),
        "read_request": (OK, NO),
        "approve_request": (NO, NO),
        "reject_request": (NO, NO),
        "read_certificate": (OK, NO),
        "revoke_certificate": (NO, NO),
        "list_users": (NO, NO),
    },
    "auditor": {
        "read_unit": (OK, OK),
        "create_unit_below": (NO, NO),
        "add_person": (NO, NO),
        "draft_request": (NO, NO),
        "read_request": (OK, OK),
        "approve_request": (NO, NO),
        "reject_request": (NO, NO),
        "read_certificate": (OK, OK),
        "revoke_certificate": (NO, NO),
        "list_users": (NO, NO),
    },
    "signer": {
        "read_unit": (OK, NO),
        "create_unit_below": (NO, NO),
        "add_person": (NO, NO),
        "draft_request": (NO, NO),
        "read_request": (NO, NO),
        "approve_request": (NO, NO),
        "reject_request": (NO, NO),
        "read_certificate": (OK, NO),
        "revoke_certificate": (NO, NO),
        "list_users": (NO, NO),
    },
}
ACTIONS: dict[str, Action] = {
    f.__name__: f
    for f in (
        read_unit,
        create_unit_below,
        add_person,
        draft_request,
        read_request,
        approve_request,
        reject_request,
        read_certificate,
        revoke_certificate,
        list_users,
    )
}


@pytest.mark.parametrize("role", sorted(MATRIX))
def test_role_matrix(role: str, world: World, api: TestClient) -> None:
    headers = _signer(world) if role == "signer" else world.headers(role)
    wrong: list[Any] = []
    for action, (own, other) in MATRIX[role].items():
        for where, expected in (("chuhuong", own), ("nganson", other)):
            got = ACTIONS[action](api, world, headers, where)
            allowed = 200 <= got < 300
            if (expected == OK and not allowed) or (expected == NO and got != 403):
                wrong.append((action, where, expected, got))
    assert wrong == [], f"{role}: (action, unit, expected, HTTP status) that differ: {wrong}"
