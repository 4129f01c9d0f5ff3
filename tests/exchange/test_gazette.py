"""The e-gazette: a clerk publishes an issued document; anyone, without logging in, finds
it, reads that its signatures were valid when it was published, downloads the PDF (which
validates); withdrawn, it is gone; another unit's clerk cannot publish it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from fixtures.pdf import images
from sqlalchemy import update
from support.world import World, app_client, make_world
from ui.test_sign import server_key

from kyso.errors import NotFound
from kyso.exchange import register
from kyso.store.models import Organization
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .test_register import draft


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        session.execute(
            update(Organization)
            .where(Organization.id == found.unit("babe").id)
            .values(code=f"000.71.{found.tag}.H03")
        )
    return found


@pytest.fixture(scope="module")
def http(instance: Instance) -> Iterator[TestClient]:
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(instance, apps)
    for client in apps.values():
        client.__exit__(None, None, None)


def test_a_published_document_is_read_and_checked_by_anyone(
    instance: Instance, world: World, http: TestClient
) -> None:
    ctx = instance.ctx
    keys = {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
    }
    subject = f"Quyết định công bố thủ tục hành chính {world.tag}"
    issued = register.issue(
        ctx,
        world.who("officer"),
        register.Issue(
            unit=world.unit("babe").public_id,
            type="QĐ",
            notation="QĐ-UBND",
            subject=subject,
            document=draft(instance, keys),
            seal_image=images.seal_png(),
            key_id=keys["seal"],
            signer_name="Nguyễn Văn An",
            issued_on=date(2026, 12, 5),
        ),
    )
    anonymous = TestClient(http.app, raise_server_exceptions=False)
    assert subject not in anonymous.get("/cong-bao").text  # not yet published
    with pytest.raises(NotFound):
        register.publish(ctx, world.who("officer_ns"), issued.public_id)

    published = register.publish(ctx, world.who("officer"), issued.public_id)
    assert published.verdict == "TOTAL-PASSED" and len(published.signers) == 2
    listing = anonymous.get("/cong-bao", params={"q": world.tag})
    assert listing.status_code == 200 and subject in listing.text
    assert "Hợp lệ khi công bố" in listing.text and f"/cong-bao/{issued.public_id}" in listing.text
    page = anonymous.get(f"/cong-bao/{issued.public_id}")
    assert page.status_code == 200 and "Nguyễn Văn An" in page.text
    pdf = anonymous.get(f"/cong-bao/{issued.public_id}/document.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert verify(pdf.content, trust_context(ctx), name="cong-bao.pdf").passed
    assert subject not in anonymous.get("/cong-bao", params={"q": "không có gì như thế"}).text

    # through the API: withdrawn, it is gone for everyone
    gone = http.delete(f"/api/v1/register/{issued.public_id}/publish", headers=_token(world))
    assert gone.status_code == 204
    assert anonymous.get(f"/cong-bao/{issued.public_id}").status_code == 404
    assert anonymous.get(f"/cong-bao/{issued.public_id}/document.pdf").status_code == 404
    again = http.post(f"/api/v1/register/{issued.public_id}/publish", headers=_token(world))
    assert again.status_code == 200 and again.json()["verdict"] == "TOTAL-PASSED"


def _token(world: World) -> dict[str, str]:
    from kyso.api import clients

    with world.ctx.db.session() as session:
        made = clients.create(
            session,
            f"gazette-{world.tag}-{len(world.units)}-{id(session)}",
            ["documents:exchange"],
            "test",
            user_id=world.users["officer"].id,
        )
    return {"authorization": f"Bearer {made}"}


def test_the_clerk_publishes_and_withdraws_from_the_register_page(
    instance: Instance, world: World, http: TestClient
) -> None:
    from ui.conftest import Web

    ctx = instance.ctx
    keys = {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
    }
    subject = f"Thông báo kết luận cuộc họp {world.tag}"
    issued = register.issue(
        ctx,
        world.who("officer"),
        register.Issue(
            unit=world.unit("babe").public_id,
            type="TB",
            notation="TB-UBND",
            subject=subject,
            document=draft(instance, keys),
            seal_image=images.seal_png(),
            key_id=keys["seal"],
        ),
    )
    clerk = Web(TestClient(http.app, raise_server_exceptions=False), world).login(
        world.users["officer"]
    )
    page = clerk.get(f"/exchange/register/{issued.public_id}")
    assert page.status_code == 200 and "Công bố trên Công báo điện tử" in page.text
    done = clerk.post(f"/exchange/register/{issued.public_id}/publish", {})
    assert done.status_code == 303
    after = clerk.get(f"/exchange/register/{issued.public_id}")
    assert "Đã công bố lúc" in after.text and "Thôi công bố" in after.text
    anonymous = TestClient(http.app, raise_server_exceptions=False)
    assert subject in anonymous.get("/cong-bao").text
    assert clerk.post(f"/exchange/register/{issued.public_id}/unpublish", {}).status_code == 303
    assert subject not in anonymous.get("/cong-bao").text
    # someone else's clerk cannot publish it
    other = Web(TestClient(http.app, raise_server_exceptions=False), world).login(
        world.users["officer_ns"]
    )
    assert other.post(f"/exchange/register/{issued.public_id}/publish", {}).status_code in (
        403,
        404,
    )
    assert subject not in anonymous.get("/cong-bao").text
