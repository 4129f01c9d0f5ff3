"""The approver's page shows what approving would change in an existing subscriber's record
(another district's person found by the CCCD) and approves only once it is confirmed."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.test_cross_unit_person import _other_districts_person, _request_with
from support.world import World

from kyso.lifecycle import workflow
from kyso.store.models import Person, RequestState

from .conftest import Web


def test_the_approver_sees_the_changes_and_must_tick_the_confirmation(
    world: World, web_for: Callable[..., Web]
) -> None:
    person = _other_districts_person(world)
    rid = _request_with(world, person)
    officer = web_for("officer").get(f"/requests/{rid}")
    assert officer.status_code == 200
    assert "subscriber-changes" not in officer.text  # the record's data is not the officer's
    assert "nganson" not in officer.text and "0987 000 111" not in officer.text

    admin = web_for("admin1")
    page = admin.get(f"/requests/{rid}")
    assert page.status_code == 200
    assert 'id="subscriber-changes"' in page.text
    assert "UBND huyện Ngân Sơn" in page.text and "kin.mt@nganson.backan.gov.vn" in page.text
    refused = admin.post(f"/requests/{rid}/approve", {"note": ""})
    assert refused.status_code == 409, refused.text[:500]
    assert "xác nhận" in refused.text
    with world.ctx.db.read() as session:
        assert session.get(Person, person.id).organization_id == world.unit("nganson").id
    done = admin.post(f"/requests/{rid}/approve", {"confirm_subscriber_changes": "yes"})
    assert done.status_code == 303, done.text[:500]
    with world.ctx.db.read() as session:
        view = workflow.get(world.who("admin1"), session, rid)
        assert view.request.state is RequestState.ISSUED
        assert session.get(Person, person.id).organization_id == world.unit("babe").id
