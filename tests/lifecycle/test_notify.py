"""E-mail through the outbox: written with the event, sent afterwards over SMTP, retried."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kyso import clock
from kyso.lifecycle import notify, workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.registry import devices
from kyso.registry.access import cli_principal
from kyso.store.models import Certificate, Notification, Person, RequestType

from .conftest import SmtpSink, World, individual_form


@pytest.fixture(autouse=True)
def _empty_outbox(world: World) -> None:
    """Mail other tests left waiting in the shared database is not this test's to send."""
    with world.ctx.db.session() as session:
        session.execute(
            update(Notification)
            .where(Notification.sent_at.is_(None))
            .values(sent_at=clock.now(), last_error="left by another test")
        )


def _settings(world: World, sink: SmtpSink, **extra: object):
    return dataclasses.replace(
        world.ctx.settings,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_from="kyso@stttt.backan.gov.vn",
        **extra,
    )


def _drain(world: World, settings) -> notify.SendReport:
    return notify.send_pending(world.ctx.db, settings, limit=10_000)


def test_submission_decision_and_issuance_mails_reach_the_smtp_server(
    world: World, smtp_sink: SmtpSink
) -> None:
    form = individual_form()
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, form),
        )
        rid = request.public_id
        workflow.submit(world.who("officer"), session, world.ctx.settings, rid)
    with world.ctx.db.session() as session:
        workflow.approve(world.who("admin1"), session, world.ctx.authority, rid)
    report = _drain(world, _settings(world, smtp_sink))
    assert report.failed == 0 and report.sent >= 4

    [to_admin] = [m for m in smtp_sink.to(world.users["admin2"].email) if rid in m.get_content()]
    assert to_admin["Subject"].startswith("[kyso] Yêu cầu chờ duyệt: cấp mới chứng thư số cá nhân")
    assert "Hoàng Thị Mai" in to_admin["Subject"]
    [decided] = smtp_sink.to(world.users["officer"].email)
    assert decided["Subject"] == (
        "[kyso] Yêu cầu cấp mới chứng thư số cá nhân (mẫu 01) đã được duyệt"
    )
    [issued] = smtp_sink.to(form["email"])
    assert issued["Subject"].startswith("[kyso] Chứng thư số của bạn đã được cấp — số hiệu ")
    assert "đổi mã PIN" in issued.get_content()
    assert issued["From"] == "kyso@stttt.backan.gov.vn"
    with world.ctx.db.read() as session:
        waiting = session.execute(
            select(Notification).where(Notification.to_address == form["email"])
        ).scalar_one()
    assert waiting.sent_at is not None and waiting.attempts == 0
    assert _drain(world, _settings(world, smtp_sink)).sent == 0  # nothing sent twice


def test_a_rolled_back_action_mails_nobody(world: World) -> None:
    with pytest.raises(RuntimeError), world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, individual_form()),
        )
        workflow.submit(world.who("officer"), session, world.ctx.settings, request.public_id)
        rid = request.public_id
        raise RuntimeError("the transaction fails after the submission")
    with world.ctx.db.read() as session:
        assert not session.execute(
            select(Notification.id).where(Notification.body.contains(rid))
        ).first()


def test_an_unreachable_server_leaves_mail_waiting_and_it_is_retried(
    world: World, smtp_sink: SmtpSink
) -> None:
    with world.ctx.db.session() as session:
        notify.enqueue(
            session,
            notify.Mail(f"x.{world.tag}@backan.gov.vn", "[kyso] Thử lại", "nội dung", "test"),
        )
    closed = dataclasses.replace(world.ctx.settings, smtp_host="127.0.0.1", smtp_port=1)
    first = notify.send_pending(world.ctx.db, closed)
    assert first.sent == 0 and first.failed >= 1
    with world.ctx.db.read() as session:
        row = session.execute(
            select(Notification).where(Notification.to_address == f"x.{world.tag}@backan.gov.vn")
        ).scalar_one()
    assert row.attempts == 1 and "Error" in (row.last_error or "")

    smtp_sink.server.refuse = True  # 451 on MAIL: refused now, kept for later
    notify.send_pending(world.ctx.db, _settings(world, smtp_sink))
    smtp_sink.server.refuse = False
    report = _drain(world, _settings(world, smtp_sink))
    assert report.sent >= 1
    [mail] = smtp_sink.to(f"x.{world.tag}@backan.gov.vn")
    assert mail["Subject"] == "[kyso] Thử lại"
    with world.ctx.db.read() as session:
        row = session.get(Notification, row.id)
    assert row.sent_at is not None and row.attempts == 2


def test_expiry_and_pin_reminders_are_queued_once(world: World, smtp_sink: SmtpSink) -> None:
    form = individual_form()
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, form),
        )
        workflow.submit(world.who("officer"), session, world.ctx.settings, request.public_id)
        workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)
        cert = session.get(Certificate, request.certificate_id)
        cert.not_after = clock.now() + timedelta(days=20, hours=1)
        person_id = cert.person_id
        device = devices.add(
            cli_principal("t"),
            session,
            devices.DeviceInput(
                serial=f"TK-{secrets.token_hex(4)}",
                model="ePass2003",
                unit=world.unit("babe").public_id,
            ),
        )
        person = session.get(Person, person_id)
        devices.handover(
            cli_principal("t"),
            session,
            device.public_id,
            person.public_id,
            at=clock.now() - timedelta(days=200),
        )
    for _ in range(2):  # run twice: each reminder is queued once
        with world.ctx.db.session() as session:
            notify.remind_expiring(session, within_days=30)
            notify.remind_pin_overdue(world.who("admin1"), session, days=90)
    _drain(world, _settings(world, smtp_sink))
    reminders = [m for m in smtp_sink.to(form["email"]) if "sắp hết hạn" in m["Subject"]]
    assert len(reminders) == 1
    assert reminders[0]["Subject"].startswith("[kyso] Chứng thư số sắp hết hạn (còn 20 ngày")
    pins = [m for m in smtp_sink.to(form["email"]) if "PIN" in m["Subject"]]
    assert [m["Subject"] for m in pins] == [
        f"[kyso] Nhắc đổi mã PIN thiết bị lưu khóa {device.serial}"
    ]
    assert "200 ngày" in pins[0].get_content()
