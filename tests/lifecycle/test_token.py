"""A key made on the subscriber's USB token (SoftHSM2 here): the request waits, approved, for
the token and its PIN; then the key is made there and the token is handed over."""

from __future__ import annotations

import pytest
from conftest import Instance
from sqlalchemy import select

from kyso.errors import WrongPin
from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.registry import devices
from kyso.registry.access import cli_principal
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    DeviceHandover,
    DeviceStatus,
    KeyDevice,
    RequestState,
    RequestType,
)

from .conftest import individual_form
from .conftest import make_world as _make_world

pytestmark = pytest.mark.softhsm


def test_a_token_key_is_made_on_the_token_with_its_pin_and_the_token_handed_over(
    hsm_instance: Instance, hsm_tokens
) -> None:
    world = _make_world(hsm_instance.ctx, "softhsm")
    ctx = world.ctx
    with ctx.db.session() as session:
        device = devices.add(
            cli_principal("t"),
            session,
            devices.DeviceInput(
                serial="subscriber-1", model="SoftHSM2", unit=world.unit("babe").public_id
            ),
        )
    with ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, individual_form(), device=device.public_id),
        )
        rid = request.public_id
        workflow.submit(world.who("officer"), session, ctx.settings, rid)
        assert (
            workflow.approve(world.who("admin1"), session, ctx.authority, rid).state
            is RequestState.APPROVED
        )

    with pytest.raises(WrongPin), ctx.db.session() as session:
        workflow.issue(world.who("admin1"), session, ctx.authority, rid, token_pin="000000")
    with ctx.db.read() as session:
        assert (
            session.execute(
                select(CertificateRequest.state).where(CertificateRequest.public_id == rid)
            ).scalar_one()
            is RequestState.APPROVED
        )

    with ctx.db.session() as session:
        issued = workflow.issue(
            world.who("admin1"), session, ctx.authority, rid, token_pin="135790"
        )
        cert = session.get(Certificate, issued.certificate_id)
        assert cert.key_location.startswith("token:subscriber-1:")
        assert (cert.device_id, cert.person_id) == (device.id, issued.person_id)
    with ctx.db.session() as session:
        workflow.hand_over(
            world.who("officer"),
            session,
            ctx.authority,
            rid,
            from_name="Sở Thông tin và Truyền thông",
        )
    with ctx.db.read() as session:
        token = session.get(KeyDevice, device.id)
        [minutes] = (
            session.execute(select(DeviceHandover).where(DeviceHandover.device_id == device.id))
            .scalars()
            .all()
        )
    assert token.status is DeviceStatus.ISSUED and token.holder_person_id == issued.person_id
    assert minutes.from_name == "Sở Thông tin và Truyền thông"
