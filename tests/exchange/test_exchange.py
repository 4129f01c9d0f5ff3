"""Documents between units of one installation, on SQLite and PostgreSQL: the records
clerk of Ba Bể sends a signed decision to Ngân Sơn; Ngân Sơn's inbox has it (01), its clerk
receives it with the ĐẾN mark (03) and Ba Bể's outbox learns so; a package with a broken
signature is refused (02) with the reason; a package delivered twice is stored once; a
recall takes it out of the inbox (13, answered 15); nobody sees another unit's mail."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pytest
from conftest import Instance
from fixtures.pdf import samples
from sqlalchemy import func, select, update
from support.world import World, make_world
from ui.test_sign import server_key, widget_rect

from kyso.context import Context
from kyso.errors import Forbidden, InvalidInput, KysoError, NotFound
from kyso.exchange import edxml, service
from kyso.exchange.status import StatusCode
from kyso.store.models import (
    AuditEntry,
    ExchangeDirection,
    ExchangeMessage,
    ExchangeState,
    Organization,
)
from kyso.trust import trust_context
from kyso.validation.verify import verify

PDF = samples.official_document()


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:  # identifier codes (mã định danh)
        for key, code in (("babe", "000.31"), ("nganson", "000.32"), ("tnmt", "000.33")):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=f"{code}.{found.tag}.H03")
            )
    return found


def code(world: World, key: str) -> str:
    return f"{dict(babe='000.31', nganson='000.32', tnmt='000.33')[key]}.{world.tag}.H03"


@pytest.fixture(scope="module")
def seals(instance: Instance, world: World) -> dict[str, str]:
    """Each unit's seal key (kyso's key store), issued to the unit."""
    return {key: server_key(instance, world.unit(key))[0] for key in ("babe", "nganson")}


def outgoing(world: World, seals: dict[str, str], **changes: Any) -> service.Outgoing:
    values: dict[str, Any] = {
        "unit": world.unit("babe").public_id,
        "recipients": [code(world, "nganson")],
        "code_number": str(secrets.randbelow(900) + 100),
        "code_notation": "QĐ-UBND",
        "type_name": "Quyết định",
        "subject": "Quyết định ban hành Quy chế sử dụng chữ ký số",
        "files": [service.OutgoingFile("quyet-dinh.pdf", PDF, description="Quyết định")],
        "key_id": seals["babe"],
        "place": "Ba Bể",
    }
    values.update(changes)
    return service.Outgoing(**values)


def message(instance: Instance, public_id: str) -> ExchangeMessage:
    with instance.ctx.db.read() as session:
        found = session.execute(
            select(ExchangeMessage).where(ExchangeMessage.public_id == public_id)
        ).scalar_one()
        session.expunge(found)
        return found


def inbox_of(instance: Instance, world: World, key: str) -> list[ExchangeMessage]:
    with instance.ctx.db.read() as session:
        return service.listing(world.who(key), session, ExchangeDirection.IN)


def test_a_decision_travels_to_another_unit_and_is_received_with_the_den_mark(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    out = message(instance, sent)
    assert (out.state, out.status_code) == (ExchangeState.DELIVERED, "01")

    (arrived,) = [
        m for m in inbox_of(instance, world, "officer_ns") if m.package_sha256 == out.package_sha256
    ]
    assert arrived.state is ExchangeState.ARRIVED and arrived.peer_organ_id == code(world, "babe")
    assert arrived.subject == "Quyết định ban hành Quy chế sử dụng chữ ký số"
    assert edxml.parse(_package(instance, arrived.public_id)).attachments[0].content == PDF

    number = service.accept(
        ctx, world.who("officer_ns"), arrived.public_id, key_id=seals["nganson"]
    )
    assert number.isdigit()
    received = message(instance, arrived.public_id)
    assert (received.state, received.received_number) == (ExchangeState.RECEIVED, number)
    marked = _marked(instance, arrived.public_id)
    report = verify(marked, trust_context(ctx), name="den.pdf")
    assert report.passed and len(report.signatures) == 1
    # the mark is a visible signature of the receiving unit: its ĐẾN stamp, top left below
    # the number and notation (Decree 30/2020, Annex II)
    _, (x1, y1, x2, y2) = widget_rect(marked)
    assert x2 - x1 > 50 and y2 - y1 > 20 and x2 < 595 / 2 and y1 > 842 / 2
    signer = report.signatures[0].signer
    assert signer is not None and world.unit("nganson").name in signer.subject
    told = message(instance, sent)
    assert (told.state, told.status_code) == (ExchangeState.RECEIVED, "03")
    with ctx.db.read() as session:
        codes = [s.code for s in service.history(session, session.merge(told))]
    assert codes == ["01", "03"]

    # receiving twice is refused: it is no longer waiting
    with pytest.raises(KysoError):
        service.accept(ctx, world.who("officer_ns"), arrived.public_id, key_id=seals["nganson"])


def _marked(instance: Instance, public_id: str) -> bytes:
    with instance.ctx.db.read() as session:
        data = session.scalar(
            select(ExchangeMessage.marked_document).where(ExchangeMessage.public_id == public_id)
        )
    assert data is not None
    return bytes(data)


def test_a_package_whose_signature_fails_is_refused_with_the_reason(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    signed = _package(instance, sent)
    tampered = signed.replace("Quy chế sử dụng".encode(), "Quy chế SỬA ĐỔI".encode())
    assert tampered != signed
    outcome = service.receive(ctx, tampered, via="test")
    assert outcome.code is StatusCode.REFUSED
    assert "không hợp lệ" in outcome.description
    (stored,) = outcome.messages
    refused = message(instance, stored)
    assert refused.state is ExchangeState.REFUSED and refused.status_code == "02"
    assert refused.reason and "không hợp lệ" in refused.reason


def _package(instance: Instance, public_id: str) -> bytes:
    with instance.ctx.db.read() as session:
        return bytes(
            session.scalar(
                select(ExchangeMessage.package).where(ExchangeMessage.public_id == public_id)
            )
        )


def test_a_package_delivered_twice_is_stored_once(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    data = _package(instance, sent)
    again = service.receive(ctx, data, via="retry")
    assert again.code is StatusCode.ARRIVED
    with ctx.db.read() as session:
        count = session.scalar(
            select(func.count())
            .select_from(ExchangeMessage)
            .where(
                ExchangeMessage.direction == ExchangeDirection.IN,
                ExchangeMessage.package_sha256 == message(instance, sent).package_sha256,
            )
        )
    assert count == 1


def test_a_recall_takes_the_document_out_of_the_inbox(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    document_id = message(instance, sent).document_id
    (recalled,) = service.recall(
        ctx, world.who("officer"), sent, reason="Sai số ký hiệu", key_id=seals["babe"]
    )
    answer = message(instance, recalled)
    assert answer.business == 1 and answer.status_code == "15"
    assert message(instance, sent).state is ExchangeState.RECALLED  # in the outbox too
    inbox = [m for m in inbox_of(instance, world, "officer_ns") if m.document_id == document_id]
    original = next(m for m in inbox if m.business == 0)
    assert original.state is ExchangeState.RECALLED and original.status_code == "13"
    assert original.reason == "Sai số ký hiệu"
    with pytest.raises(KysoError):  # nothing left to receive
        service.accept(ctx, world.who("officer_ns"), original.public_id, key_id=seals["nganson"])


def test_the_clerk_refuses_with_a_reason_and_the_sender_is_told(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    digest = message(instance, sent).package_sha256
    (arrived,) = [m for m in inbox_of(instance, world, "officer_ns") if m.package_sha256 == digest]
    with pytest.raises(InvalidInput):
        service.refuse(ctx, world.who("officer_ns"), arrived.public_id, "  ")
    service.refuse(ctx, world.who("officer_ns"), arrived.public_id, "Gửi nhầm đơn vị")
    told = message(instance, sent)
    assert (told.state, told.status_code, told.reason) == (
        ExchangeState.REFUSED,
        "02",
        "Gửi nhầm đơn vị",
    )


def test_nobody_reads_or_handles_another_units_mail(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
    digest = message(instance, sent).package_sha256
    (arrived,) = [m for m in inbox_of(instance, world, "officer_ns") if m.package_sha256 == digest]
    assert all(m.package_sha256 != digest for m in inbox_of(instance, world, "officer"))
    with ctx.db.read() as session, pytest.raises(NotFound):
        service.get(world.who("officer"), session, arrived.public_id)
    with pytest.raises(NotFound):
        service.accept(ctx, world.who("officer"), arrived.public_id, key_id=seals["babe"])
    # Ngân Sơn's clerk may not sign with Ba Bể's seal, nor send as Ba Bể
    with pytest.raises(Forbidden):
        service.accept(ctx, world.who("officer_ns"), arrived.public_id, key_id=seals["babe"])
    with pytest.raises(Forbidden):
        service.send(ctx, world.who("officer_ns"), outgoing(world, seals))


def test_what_cannot_be_sent_is_refused_before_anything_is_signed(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    ctx = instance.ctx
    with ctx.db.read() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    for changes, words in (
        ({"recipients": ["999.99.99.H99"]}, "999.99.99.H99"),
        ({"recipients": [code(world, "babe")]}, "itself"),
        ({"recipients": []}, "recipient"),
        ({"subject": ""}, "subject"),
        ({"code_number": "1" * 21}, "20 characters"),
        ({"code_notation": "X" * 61}, "60 characters"),
        ({"files": [service.OutgoingFile("a.docx", b"PK\x03\x04")]}, "PDF"),
        ({"files": []}, "attach"),
        ({"code_number": " "}, "number"),
        ({"key_id": ""}, "seal key"),
    ):
        with pytest.raises(InvalidInput, match=words):
            service.send(ctx, world.who("officer"), outgoing(world, seals, **changes))
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_files_too_large_for_a_package_are_refused_before_signing_or_queuing(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    """Base64 makes files a third larger: a package over the upload limit would be refused
    by the recipient, so it is refused here first, and nothing is stored or signed."""
    small = Context(dataclasses.replace(instance.ctx.settings, max_upload_bytes=400_000))
    try:
        with small.db.read() as session:
            before = session.scalar(select(func.count()).select_from(ExchangeMessage))
            audited = session.scalar(select(func.count()).select_from(AuditEntry))
        big = samples.official_document(padding_bytes=150_000)
        with pytest.raises(InvalidInput, match="too large"):
            service.send(
                small,
                world.who("officer"),
                outgoing(world, seals, files=[service.OutgoingFile("lon.pdf", big)]),
            )
        with small.db.read() as session:
            assert session.scalar(select(func.count()).select_from(ExchangeMessage)) == before
            assert session.scalar(select(func.count()).select_from(AuditEntry)) == audited
    finally:
        small.close()


def test_two_documents_received_at_once_get_different_incoming_numbers(
    instance: Instance, world: World, seals: dict[str, str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ctx = instance.ctx
    arrived = []
    for _ in range(2):
        (sent,) = service.send(ctx, world.who("officer"), outgoing(world, seals))
        digest = message(instance, sent).package_sha256
        (found,) = [
            m for m in inbox_of(instance, world, "officer_ns") if m.package_sha256 == digest
        ]
        arrived.append(found.public_id)
    clerk = world.who("officer_ns")
    with ThreadPoolExecutor(2) as pool:
        numbers = list(
            pool.map(lambda p: service.accept(ctx, clerk, p, key_id=seals["nganson"]), arrived)
        )
    assert len(set(numbers)) == 2, numbers
