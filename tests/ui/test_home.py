"""The home page: the viewer's to-do tiles and the figures, scoped to what they may see."""

from __future__ import annotations

import re
from collections.abc import Callable

from support.world import World, individual_form

from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import workflow
from kyso.lifecycle.forms import KeySource
from kyso.reports import dashboard
from kyso.store.models import CertificateRequest, RequestType, Sector

from .conftest import Web


def _issue(world: World, officer: str, unit: str, *, submit: bool = True) -> CertificateRequest:
    ctx = world.ctx
    with ctx.db.session() as session:
        request = workflow.create(
            world.who(officer),
            session,
            ctx.settings,
            workflow.NewRequest(
                type=RequestType.NEW_INDIVIDUAL,
                form=individual_form(world.unit(unit).name),
                subject_unit=world.unit(unit).public_id,
                key_source=KeySource.SERVER,
                key_algorithm=KeyAlgorithm.EC_P256,
            ),
        )
        if submit:
            workflow.submit(world.who(officer), session, ctx.settings, request.public_id)
    return request


def _approve(world: World, request: CertificateRequest) -> None:
    with world.ctx.db.session() as session:
        workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)


def _tile(text: str, href: str) -> int:
    found = re.search(rf'href="{re.escape(href)}"><strong>([\d.]+)</strong>', text)
    assert found, f"no tile for {href}"
    return int(found.group(1).replace(".", ""))


def test_the_officer_sees_their_units_figures_only(
    world: World, web_for: Callable[..., Web]
) -> None:
    for _ in range(2):
        _approve(world, _issue(world, "officer", "tnmt"))
    _approve(world, _issue(world, "officer_ns", "tnmt2"))
    _issue(world, "officer", "babe", submit=False)  # a draft to finish

    with world.ctx.db.read() as session:
        mine = dashboard.dashboard(world.who("officer"), session, pin_days=180)
        theirs = dashboard.dashboard(world.who("officer_ns"), session, pin_days=180)
    assert mine.statuses["good"] == 2 and theirs.statuses["good"] == 1
    assert sum(mine.issued[Sector.GOVERNMENT]) == 2
    assert mine.issued[Sector.GOVERNMENT][-1] == 2  # this month is the last column
    assert mine.todo.my_drafts == 1 and mine.todo.to_decide is None  # officers do not decide
    assert next(line for line in mine.plan if line.key == "individual").done == 2

    page = web_for("officer").get("/")
    assert page.status_code == 200
    assert "Số liệu tổng quan" in page.text
    assert _tile(page.text, "/requests?state=draft") == 1
    assert "/approvals" not in page.text.split("<main")[1]  # no approval tile for an officer
    assert "<svg" in page.text and "Chứng thư cấp mới theo tháng" in page.text
    # The status table shows the officer's two valid certificates.
    assert re.search(r"Còn hiệu lực</th><td class=\"num\">2</td>", page.text)


def test_the_province_sees_requests_waiting_for_approval(
    world: World, web_for: Callable[..., Web]
) -> None:
    before = _tile(web_for("admin1").get("/").text, "/approvals")
    _issue(world, "officer", "chuhuong")
    after = _tile(web_for("admin1").get("/").text, "/approvals")
    assert after == before + 1


def test_the_auditor_sees_figures_but_no_action_tiles(web_for: Callable[..., Web]) -> None:
    page = web_for("auditor").get("/")
    assert page.status_code == 200
    assert "Tiến độ so với kế hoạch" in page.text
    assert 'href="/approvals"' not in page.text
    assert 'href="/sign"' not in page.text


def test_english_dashboard(web_for: Callable[..., Web]) -> None:
    admin = web_for("admin1")
    admin.get("/lang/en?next=/")
    page = admin.get("/")
    assert "Figures at a glance" in page.text and "Progress against the plan" in page.text
