"""The exchange REST API as a document management system calls it (in process, on SQLite
and PostgreSQL): issue a signed draft, list the register, send it, follow it in the outbox,
read the 90 % figure; a token without the scope, or of another unit, gets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from fixtures.pdf import images, samples
from sqlalchemy import update
from support.world import World, app_client, make_world
from ui.test_sign import server_key

from kyso.api import clients
from kyso.store.models import Organization

from .test_register import draft


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key, code in (("babe", "000.51"), ("nganson", "000.52")):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=f"{code}.{found.tag}.H03")
            )
    return found


@pytest.fixture(scope="module")
def http(instance: Instance) -> Iterator[TestClient]:
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(instance, apps)
    for client in apps.values():
        client.__exit__(None, None, None)


def token(world: World, key: str, scopes: list[str]) -> dict[str, str]:
    with world.ctx.db.session() as session:
        made = clients.create(
            session,
            f"{key}-{'-'.join(scopes)}-{world.tag}",
            scopes,
            "test",
            user_id=world.users[key].id,
        )
    return {"authorization": f"Bearer {made}"}


def test_a_system_issues_sends_and_reads_the_figure(
    instance: Instance, world: World, http: TestClient
) -> None:
    keys = {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
    }
    clerk = token(world, "officer", ["documents:exchange", "reports:read"])
    form: dict[str, Any] = {
        "unit": world.unit("babe").public_id,
        "type": "TB",
        "notation": "TB-UBND",
        "subject": "Thông báo lịch tiếp công dân tháng 12",
        "key_id": keys["seal"],
        "signer_name": "Nguyễn Văn An",
    }
    files = {
        "document": ("tb.pdf", draft(instance, keys), "application/pdf"),
        "seal_image": ("dau.png", images.seal_png(), "image/png"),
    }
    issued = http.post("/api/v1/register/issue", headers=clerk, data=form, files=files)
    assert issued.status_code == 201, issued.text
    entry = issued.json()
    assert entry["code"] == f"{entry['number']}/TB-UBND" and entry["sent_at"] is None
    listed = http.get("/api/v1/register", headers=clerk).json()["documents"]
    assert entry["id"] in [d["id"] for d in listed]
    pdf = http.get(f"/api/v1/register/{entry['id']}/document", headers=clerk)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

    to = f"000.52.{world.tag}.H03"
    sent = http.post(
        f"/api/v1/register/{entry['id']}/send",
        headers=clerk,
        json={"recipients": [to], "key_id": keys["seal"]},
    )
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    assert (message["state"], message["status"], message["peer"]["organ_id"]) == (
        "delivered",
        "01",
        to,
    )
    outbox = http.get("/api/v1/exchange/outbox", headers=clerk).json()["messages"]
    assert message["id"] in [m["id"] for m in outbox]
    detail = http.get(f"/api/v1/exchange/messages/{message['id']}", headers=clerk).json()
    assert [h["status"] for h in detail["history"]] == ["01"]

    day = entry["issued_on"]
    figure = http.get(
        "/api/v1/reports/electronic", headers=clerk, params={"start": day, "end": day}
    ).json()
    (babe,) = [u for u in figure["units"] if u["unit"] == world.unit("babe").public_id]
    assert (babe["issued"], babe["electronic"], babe["share"]) == (1, 1, 1.0)
    assert figure["target"] == 0.9 and figure["levels"]["district"]["share"] == 1.0

    # the other unit's clerk sees none of it; a token without the scope is refused
    other = token(world, "officer_ns", ["documents:exchange"])
    assert http.get(f"/api/v1/register/{entry['id']}/document", headers=other).status_code == 404
    signing_only = token(world, "officer", ["documents:sign"])
    assert http.get("/api/v1/register", headers=signing_only).status_code == 403
    assert http.get("/api/v1/exchange/inbox").status_code == 401

    # bad input: a clear 4xx, never a 500
    unsigned = dict(files, document=("x.pdf", samples.official_document(), "application/pdf"))
    refused = http.post("/api/v1/register/issue", headers=clerk, data=form, files=unsigned)
    assert refused.status_code == 422 and "chữ ký" in refused.text
    nobody = http.post(
        f"/api/v1/register/{entry['id']}/send",
        headers=clerk,
        json={"recipients": ["999.99.99.H99"], "key_id": keys["seal"]},
    )
    assert nobody.status_code == 422 and "999.99.99.H99" in nobody.text


def test_an_idempotency_key_makes_a_retried_send_a_no_op(
    instance: Instance, world: World, http: TestClient
) -> None:
    from sqlalchemy import func, select

    from kyso.store.models import ExchangeDirection, ExchangeMessage

    seal = server_key(instance, world.unit("babe"))[0]
    clerk = token(world, "officer", ["documents:exchange"])
    form = {
        "unit": world.unit("babe").public_id,
        "recipients": f"000.52.{world.tag}.H03",
        "code_number": "77",
        "code_notation": "CV-UBND",
        "type_name": "Công văn",
        "subject": f"Công văn gửi lại khi mất kết nối {world.tag}",
        "key_id": seal,
    }
    files = {"files": ("cv.pdf", samples.official_document(), "application/pdf")}

    def outbox_count() -> int:
        with instance.ctx.db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ExchangeMessage)
                    .where(
                        ExchangeMessage.direction == ExchangeDirection.OUT,
                        ExchangeMessage.subject == form["subject"],
                    )
                )
                or 0
            )

    keyed = {**clerk, "idempotency-key": f"qlvb-{world.tag}-77"}
    first = http.post("/api/v1/exchange/send", headers=keyed, data=form, files=files)
    assert first.status_code == 202, first.text
    again = http.post("/api/v1/exchange/send", headers=keyed, data=form, files=files)
    assert again.status_code == 202 and again.json() == first.json()
    assert outbox_count() == 1
    other = http.post(
        "/api/v1/exchange/send", headers=keyed, data={**form, "code_number": "78"}, files=files
    )
    assert other.status_code == 422 and "Idempotency-Key" in other.text
    plain = http.post("/api/v1/exchange/send", headers=clerk, data=form, files=files)
    assert plain.status_code == 202 and outbox_count() == 2  # no key: a second document
