"""Two administrators approving the same request at the same moment, each in their own
session and thread: exactly one certificate, whatever the approvals required."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import Instance
from sqlalchemy import func, select

from kyso.errors import KysoError
from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest, decisions
from kyso.pki import issuance
from kyso.store.models import Approval, Certificate, CertificateRequest, RequestState, RequestType

from .conftest import World, individual_form, make_csr

pytestmark = pytest.mark.postgres
HOLD = 0.5


@pytest.fixture
def pg_world(instance: Instance, world: World) -> World:
    if instance.backend != "postgres":
        pytest.skip("the race is PostgreSQL's (SQLite serializes writers before they read)")
    return world


def _race(world: World, rid: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    real = issuance.issue

    def slow_issue(*args: Any, **kwargs: Any) -> Any:
        time.sleep(HOLD)  # the winner keeps its lock a while: the loser must wait for it
        return real(*args, **kwargs)

    real_event = decisions.write_event

    def slow_event(*args: Any, **kwargs: Any) -> None:
        real_event(*args, **kwargs)
        if kwargs.get("action") == "request.approval":
            time.sleep(HOLD)  # a first approval of two, still uncommitted

    monkeypatch.setattr(issuance, "issue", slow_issue)
    monkeypatch.setattr(decisions, "write_event", slow_event)
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def approve(who: str) -> None:
        barrier.wait(10)
        started = time.monotonic()
        try:
            with world.ctx.db.session() as session:
                request = workflow.approve(world.who(who), session, world.ctx.authority, rid)
                results[who] = (request.state, time.monotonic() - started)
        except KysoError as exc:
            results[who] = (exc.code, time.monotonic() - started)

    threads = [threading.Thread(target=approve, args=(w,)) for w in ("admin1", "admin2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _request(world: World, settings: Any) -> str:
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, individual_form(), csr=make_csr()),
        )
        workflow.submit(world.who("officer"), session, settings, request.public_id)
        return request.public_id


def _certificates(world: World, rid: str) -> tuple[int, RequestState, int]:
    with world.ctx.db.read() as session:
        request = session.execute(
            select(CertificateRequest).where(CertificateRequest.public_id == rid)
        ).scalar_one()
        certs = (
            session.scalar(
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.person_id == request.person_id)
            )
            if request.person_id
            else 0
        )
        approvals = session.scalar(
            select(func.count()).select_from(Approval).where(Approval.request_id == request.id)
        )
    return certs, request.state, approvals


def test_two_approvers_at_once_on_a_one_approval_request_make_one_certificate(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _request(pg_world, pg_world.ctx.settings)
    results = _race(pg_world, rid, monkeypatch)
    outcomes = sorted(str(r[0]) for r in results.values())
    assert outcomes == ["invalid_transition", "issued"], results
    loser = next(r for r in results.values() if r[0] == "invalid_transition")
    assert loser[1] >= HOLD * 0.8, results  # it waited for the winner's lock
    assert _certificates(pg_world, rid) == (1, RequestState.ISSUED, 1)


def test_two_approvers_at_once_on_a_two_approval_request_make_one_certificate(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    settings = dataclasses.replace(pg_world.ctx.settings, approvals_required={"new_individual": 2})
    rid = _request(pg_world, settings)
    results = _race(pg_world, rid, monkeypatch)
    assert sorted(str(r[0]) for r in results.values()) == ["issued", "submitted"], results
    assert _certificates(pg_world, rid) == (1, RequestState.ISSUED, 2)
