"""The request workflow as services: the moves it allows, the ones it refuses, who decides."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from kyso import clock
from kyso.errors import Conflict, Forbidden, InvalidInput, InvalidTransition
from kyso.lifecycle import turnaround, workflow
from kyso.lifecycle.forms import KeySource
from kyso.lifecycle.workflow import DraftChanges, NewRequest
from kyso.registry import devices
from kyso.registry.access import cli_principal
from kyso.store.models import (
    Approval,
    Certificate,
    CertificateRequest,
    DeviceStatus,
    KeyDevice,
    Notification,
    RequestEvent,
    RequestState,
    RequestType,
)

from .conftest import World, individual_form, make_csr


def _settings(world: World, **approvals: int):
    return dataclasses.replace(world.ctx.settings, approvals_required=approvals)


def _draft(world: World, request_type=RequestType.NEW_INDIVIDUAL, form=None, **extra) -> str:
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(
                type=request_type, form=form if form is not None else individual_form(), **extra
            ),
        )
        return request.public_id


def _submit(world: World, rid: str, settings=None) -> None:
    with world.ctx.db.session() as session:
        workflow.submit(world.who("officer"), session, settings or world.ctx.settings, rid)


def _approve(world: World, rid: str, who: str = "admin1") -> CertificateRequest:
    with world.ctx.db.session() as session:
        return workflow.approve(world.who(who), session, world.ctx.authority, rid)


def _state(world: World, rid: str) -> RequestState:
    with world.ctx.db.read() as session:
        return session.execute(
            select(CertificateRequest.state).where(CertificateRequest.public_id == rid)
        ).scalar_one()


def test_illegal_transitions_are_refused_with_the_state_and_the_allowed_one(world: World) -> None:
    rid = _draft(world)
    with pytest.raises(InvalidTransition) as refused, world.ctx.db.session() as session:
        workflow.approve(world.who("admin1"), session, world.ctx.authority, rid)
    assert "is draft; it cannot be approved (only a request that is submitted can)" in str(
        refused.value
    )
    assert "nháp" in refused.value.message("vi")
    with pytest.raises(InvalidTransition), world.ctx.db.session() as session:
        workflow.hand_over(world.who("officer"), session, world.ctx.authority, rid)
    with pytest.raises(InvalidTransition), world.ctx.db.session() as session:
        workflow.issue(world.who("admin1"), session, world.ctx.authority, rid)

    _submit(world, rid)
    with pytest.raises(InvalidTransition) as refused, world.ctx.db.session() as session:
        workflow.submit(world.who("officer"), session, world.ctx.settings, rid)
    assert "cannot be submitted" in str(refused.value)
    with pytest.raises(InvalidTransition) as refused, world.ctx.db.session() as session:
        workflow.cancel(world.who("officer"), session, rid)
    assert "only a request that is draft can" in str(refused.value)
    with pytest.raises(InvalidTransition), world.ctx.db.session() as session:
        workflow.edit(world.who("officer"), session, rid, DraftChanges(form={"position": "x"}))

    _approve(world, rid)  # issued at once: server-held key
    assert _state(world, rid) is RequestState.ISSUED
    with pytest.raises(InvalidTransition), world.ctx.db.session() as session:
        workflow.reject(world.who("admin1"), session, rid, "quá muộn")
    with pytest.raises(InvalidTransition), world.ctx.db.session() as session:
        workflow.approve(world.who("admin2"), session, world.ctx.authority, rid)
    with world.ctx.db.read() as session:
        certs = session.execute(
            select(func.count())
            .select_from(Certificate)
            .where(
                Certificate.id
                == select(CertificateRequest.certificate_id)
                .where(CertificateRequest.public_id == rid)
                .scalar_subquery()
            )
        ).scalar_one()
    assert certs == 1


def test_a_draft_can_be_edited_and_cancelled_and_a_stale_version_is_refused(world: World) -> None:
    rid = _draft(world, form=individual_form(position=None))
    with world.ctx.db.session() as session:
        request = workflow.edit(
            world.who("officer"),
            session,
            rid,
            DraftChanges(form={"position": "Trưởng phòng"}),
            version=1,
        )
        version = request.version
    assert version == 2
    with (
        pytest.raises(Conflict, match="changed since you read it"),
        world.ctx.db.session() as session,
    ):
        workflow.edit(
            world.who("officer"),
            session,
            rid,
            DraftChanges(form={"position": "Phó phòng"}),
            version=1,
        )
    with world.ctx.db.session() as session:
        workflow.cancel(world.who("officer"), session, rid, "nhầm đơn vị")
    assert _state(world, rid) is RequestState.CANCELLED
    with world.ctx.db.read() as session:
        view = workflow.get(world.who("officer"), session, rid)
    assert view.envelope.fields["position"] == "Trưởng phòng"
    assert [(e.from_state, e.to_state) for e in view.events] == [
        (None, RequestState.DRAFT),
        (RequestState.DRAFT, RequestState.CANCELLED),
    ]


def test_submission_demands_every_field_of_the_form(world: World) -> None:
    form = individual_form()
    del form["id_issue_place"]
    rid = _draft(world, form=form)  # a draft may be incomplete
    with (
        pytest.raises(InvalidInput, match="id_issue_place: is required"),
        world.ctx.db.session() as session,
    ):
        workflow.submit(world.who("officer"), session, world.ctx.settings, rid)
    assert _state(world, rid) is RequestState.DRAFT


def test_a_subject_too_long_for_rfc_5280_is_refused_naming_the_field(world: World) -> None:
    with world.ctx.db.session() as session:
        from kyso.registry import organizations

        long_unit = organizations.create(
            cli_principal("t"),
            session,
            organizations.OrgInput(
                name="Trung tâm Phát triển quỹ đất và Dịch vụ Tài nguyên Môi trường huyện Ba Bể",
                kind=organizations.OrgKind.OTHER,
                sector=organizations.Sector.GOVERNMENT,
                parent=world.unit("babe").public_id,
            ),
        )
    rid = _draft(world, subject_unit=long_unit.public_id)
    with pytest.raises(InvalidInput) as refused, world.ctx.db.session() as session:
        workflow.submit(world.who("officer"), session, world.ctx.settings, rid)
    message = str(refused.value)
    assert "organization: OU (the unit's name in the registry" in message
    assert "is 73 characters; RFC 5280 allows at most 64" in message
    assert "OU (tên đơn vị trong danh mục" in refused.value.message("vi")


def test_a_request_type_may_need_two_different_approvers(world: World) -> None:
    settings = _settings(world, new_organization=2)
    rid = _draft(
        world,
        RequestType.NEW_ORGANIZATION,
        form={"tax_code": "4700123456", "recipient_name": "Nông Thị Văn Thư"},
        subject_unit=world.unit("chuhuong").public_id,
    )
    _submit(world, rid, settings)
    first = _approve(world, rid, "admin1")
    assert first.state is RequestState.SUBMITTED and first.certificate_id is None
    with pytest.raises(Conflict, match="already approved"):
        _approve(world, rid, "admin1")
    second = _approve(world, rid, "admin2")
    assert second.state is RequestState.ISSUED and second.certificate_id is not None
    with world.ctx.db.read() as session:
        cert = session.get(Certificate, second.certificate_id)
        approvals = session.execute(
            select(func.count()).select_from(Approval).where(Approval.request_id == second.id)
        ).scalar_one()
        notes = list(
            session.execute(
                select(RequestEvent.note)
                .where(RequestEvent.request_id == second.id)
                .order_by(RequestEvent.id)
            ).scalars()
        )
    assert approvals == 2
    assert cert is not None and cert.subject == (
        "UID=MST:4700123456,CN=UBND xã Chu Hương,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"
    )
    assert "phê duyệt 1/2" in notes and "phê duyệt 2/2" in notes


def test_only_a_province_administrator_decides_and_a_unit_officer_stays_in_its_unit(
    world: World,
) -> None:
    rid = _draft(world)
    _submit(world, rid)
    with pytest.raises(Forbidden), world.ctx.db.session() as session:
        workflow.approve(world.who("officer"), session, world.ctx.authority, rid)
    with pytest.raises(Forbidden), world.ctx.db.session() as session:
        workflow.get(world.who("officer_ns"), session, rid)
    with pytest.raises(Forbidden), world.ctx.db.session() as session:
        workflow.create(
            world.who("officer_ns"),
            session,
            world.ctx.settings,
            NewRequest(
                RequestType.NEW_INDIVIDUAL, individual_form(), unit=world.unit("babe").public_id
            ),
        )
    with pytest.raises(Forbidden, match="named user"), world.ctx.db.session() as session:
        workflow.approve(cli_principal("cli:root"), session, world.ctx.authority, rid)


def test_a_rejection_needs_a_reason_and_tells_the_requester(world: World) -> None:
    rid = _draft(world)
    _submit(world, rid)
    with (
        pytest.raises(InvalidInput, match="reason: is required"),
        world.ctx.db.session() as session,
    ):
        workflow.reject(world.who("admin1"), session, rid, "  ")
    with world.ctx.db.session() as session:
        workflow.reject(world.who("admin1"), session, rid, "Thiếu bản sao CCCD")
    with world.ctx.db.read() as session:
        request = session.execute(
            select(CertificateRequest).where(CertificateRequest.public_id == rid)
        ).scalar_one()
        mails = list(
            session.execute(
                select(Notification.subject, Notification.body).where(
                    Notification.to_address == world.users["officer"].email,
                    Notification.kind == "request.decided",
                )
            )
        )
    assert request.state is RequestState.REJECTED
    assert request.decision_reason == "Thiếu bản sao CCCD" and request.decided_at is not None
    assert any("bị từ chối" in s and "Thiếu bản sao CCCD" in b for s, b in mails)


def test_a_token_key_waits_approved_until_it_is_issued_with_the_pin(world: World) -> None:
    with world.ctx.db.session() as session:
        device = devices.add(
            cli_principal("t"),
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(4)}",
                model="ePass2003",
                unit=world.unit("babe").public_id,
            ),
        )
    rid = _draft(world, device=device.public_id)
    with world.ctx.db.read() as session:
        assert (
            workflow.get(world.who("officer"), session, rid).envelope.key.source is KeySource.TOKEN
        )
    _submit(world, rid)
    assert _approve(world, rid).state is RequestState.APPROVED
    with pytest.raises(InvalidInput, match="token_pin"), world.ctx.db.session() as session:
        workflow.issue(world.who("admin1"), session, world.ctx.authority, rid)
    assert _state(world, rid) is RequestState.APPROVED  # nothing half-done


def test_a_renewal_issues_a_successor_and_leaves_the_old_certificate_good(world: World) -> None:
    rid = _draft(world, csr=make_csr())
    _submit(world, rid)
    old_id = _approve(world, rid).certificate_id
    with world.ctx.db.read() as session:
        old = session.get(Certificate, old_id)
    renewal = _draft(
        world,
        RequestType.RENEWAL_CHANGE,
        form={"kind": "renewal", "certificate_serial": old.serial},
        csr=make_csr(),
    )
    _submit(world, renewal)
    new = _approve(world, renewal)
    with world.ctx.db.read() as session:
        successor = session.get(Certificate, new.certificate_id)
        old = session.get(Certificate, old_id)
    assert successor.subject == old.subject and successor.person_id == old.person_id
    assert successor.serial != old.serial and successor.not_after >= old.not_after
    assert old.status.value == "good"


def test_restoring_a_locked_token_is_measured_in_working_time(world: World) -> None:
    who = cli_principal("t")
    with world.ctx.db.session() as session:
        device = devices.add(
            who,
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(4)}",
                model="ePass2003",
                unit=world.unit("babe").public_id,
            ),
        )
        row = session.get(KeyDevice, device.id)
        row.status = DeviceStatus.LOCKED
    rid = _draft(
        world,
        RequestType.DEVICE_UNLOCK,
        form={
            "device_serial": device.serial,
            "holder_name": "Hoàng Thị Mai",
            "reason": "nhập sai PIN quá 5 lần",
        },
    )
    _submit(world, rid)
    assert _approve(world, rid).state is RequestState.ISSUED
    with world.ctx.db.read() as session:
        assert session.get(KeyDevice, device.id).status is DeviceStatus.ISSUED
        report = turnaround.report(world.who("admin1"), session, type=RequestType.DEVICE_UNLOCK)
    assert rid in [t.request for t in report.requests]
    assert rid not in report.unlock.late and report.unlock.within >= 1


def test_working_time_skips_the_weekend() -> None:
    start = datetime(2026, 12, 4, 16, 0, tzinfo=clock.VIETNAM)  # a Friday
    end = datetime(2026, 12, 7, 10, 0, tzinfo=clock.VIETNAM)  # the Monday after
    assert turnaround.working_time(start, end) == timedelta(hours=18)
    assert turnaround.working_time(end, start) == timedelta(0)


def test_turnaround_gives_median_and_p90_per_unit(world: World) -> None:
    ids = []
    for _ in range(3):
        rid = _draft(world)
        _submit(world, rid)
        _approve(world, rid)
        ids.append(rid)
    # make the three take 1, 2 and 10 hours
    with world.ctx.db.session() as session:
        for rid, hours in zip(ids, (1, 2, 10), strict=True):
            request = session.execute(
                select(CertificateRequest).where(CertificateRequest.public_id == rid)
            ).scalar_one()
            request.submitted_at = request.issued_at - timedelta(hours=hours)
    with world.ctx.db.read() as session:
        report = turnaround.report(world.who("admin1"), session, unit=world.unit("babe").public_id)
    unit = next(u for u in report.by_unit if u.unit == world.unit("babe").public_id)
    assert unit.stats.count == 3
    assert unit.stats.median_hours == pytest.approx(2.0, abs=0.01)
    assert unit.stats.p90_hours == pytest.approx(8.4, abs=0.01)  # 2 + 0.8 × (10 − 2)
    assert report.by_type[RequestType.NEW_INDIVIDUAL].count == 3
