"""Documents waiting for a signature: a unit officer sends a PDF to the district's leader;
the leader sees it on the home page, signs it with their own key on the signing page, and the
officer downloads the signed file, which validates. Nobody else sees it."""

from __future__ import annotations

import re
from collections.abc import Callable

from conftest import Instance
from fixtures.pdf import samples
from support.world import World

from kyso.registry import people, users
from kyso.registry.access import cli_principal
from kyso.store.models import Role, SignatureRequest, SignatureState, User
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Web
from .test_sign import server_key

CLI = cli_principal("cli:test")


def _ascii(word: str) -> str:
    """A user-name part from a Vietnamese word (no diacritics: "Lãnh" → "lanh")."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", word.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in plain if c.isascii() and c.isalnum()).lower()


def _leader(
    instance: Instance,
    world: World,
    unit: str = "babe",
    name: str = "Hoàng Văn Lãnh",
    position: str = "Chủ tịch UBND huyện",
) -> tuple[User, str]:
    """A signer user with a person record and a key the server holds for them."""
    with world.ctx.db.session() as session:
        person = people.create(
            CLI,
            session,
            people.PersonInput(
                full_name=name,
                organization=world.unit(unit).public_id,
                position=position,
            ),
        )
        user = users.create(
            CLI,
            session,
            users.UserInput(
                username=f"{_ascii(name.split()[-1])}-{unit}-{world.tag}",
                full_name=name,
                password="mật-khẩu-lãnh-đạo-2026",
                role=Role.SIGNER,
                unit=world.unit(unit).public_id,
                person=person.public_id,
            ),
        ).user
        person_id = person.id
    key_id, _ = server_key(instance, world.unit(unit), person_id=person_id, cn=name)
    return user, key_id


def _send(officer: Web, leader: User, title: str = "Quyết định 15/QĐ-UBND") -> str:
    answer = officer.post(
        "/sign/requests/new",
        {"title": title, "signer": leader.public_id, "note": "Kính trình anh ký."},
        files={"file": ("qd-15.pdf", samples.official_document(), "application/pdf")},
    )
    assert answer.status_code == 303, answer.text[:1500]
    found = re.fullmatch(r"/sign/requests/([A-Za-z0-9_-]+)", answer.headers["location"])
    assert found
    return found.group(1)


def test_a_document_goes_to_the_leader_and_comes_back_signed(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    leader, key_id = _leader(instance, world)
    officer = web_for("officer")
    form = officer.get("/sign/requests/new")
    assert form.status_code == 200 and leader.public_id in form.text
    task = _send(officer, leader)

    signer = web_for().login(leader)
    home = signer.get("/")
    tile = re.search(r'href="/sign/requests"><strong>(\d+)</strong>', home.text)
    assert tile and int(tile.group(1)) == 1
    page = signer.get(f"/sign/requests/{task}")
    assert "Quyết định 15/QĐ-UBND" in page.text and "Kính trình anh ký." in page.text
    opened = signer.post(f"/sign/requests/{task}/open")
    assert opened.status_code == 303
    upload_id = opened.headers["location"].rsplit("/", 1)[1]
    signed = signer.post(
        f"/sign/{upload_id}",
        {"kind": "attachment", "key_id": key_id, "level": "B-B", "place": "corner", "number": "15"},
    )
    assert signed.status_code == 303 and signed.headers["location"] == f"/sign/requests/{task}"

    with world.ctx.db.read() as session:
        row = session.query(SignatureRequest).filter_by(public_id=task).one()
        assert row.state is SignatureState.SIGNED and row.done_at is not None
    back = officer.get(f"/sign/requests/{task}/signed.pdf")
    assert back.status_code == 200 and back.content.startswith(b"%PDF")
    report = verify(back.content, trust_context(world.ctx), name="qd-15-da-ky.pdf")
    assert report.indication.value == "TOTAL-PASSED"
    assert "Hoàng Văn Lãnh" in str(report.signatures[0].signer)
    assert signer.get("/").text.count('href="/sign/requests"><strong>0</strong>') == 1
    # Done is done: it cannot be signed again.
    assert signer.post(f"/sign/requests/{task}/open").status_code == 409


def test_declining_needs_a_reason_which_the_sender_reads(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    leader, _ = _leader(instance, world)
    officer = web_for("officer")
    task = _send(officer, leader, "Công văn 7/UBND")
    signer = web_for().login(leader)
    empty = signer.post(f"/sign/requests/{task}/decline", {"reason": "  "})
    assert empty.status_code == 422 and 'id="e-reason"' in empty.text
    done = signer.post(f"/sign/requests/{task}/decline", {"reason": "Sai số liệu ở Điều 2."})
    assert done.status_code == 303
    page = officer.get(f"/sign/requests/{task}")
    assert "Sai số liệu ở Điều 2." in page.text and "Từ chối ký" in page.text


def test_only_the_two_people_involved_see_it_and_signers_are_within_the_unit(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    leader, _ = _leader(instance, world)
    far_leader, _ = _leader(instance, world, "nganson")
    officer = web_for("officer")
    assert far_leader.public_id not in officer.get("/sign/requests/new").text
    refused = officer.post(
        "/sign/requests/new",
        {"title": "Văn bản", "signer": far_leader.public_id},
        files={"file": ("a.pdf", samples.official_document(), "application/pdf")},
    )
    assert refused.status_code == 403
    task = _send(officer, leader)
    for other in ("officer_ns", "admin1"):
        assert web_for(other).get(f"/sign/requests/{task}").status_code == 404
        assert web_for(other).get(f"/sign/requests/{task}/original.pdf").status_code == 404
    # the sender cannot sign in the leader's place
    assert officer.post(f"/sign/requests/{task}/open").status_code == 409
    assert web_for("auditor").get("/sign/requests").status_code == 403


def test_bad_sends_are_refused_next_to_the_field(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    leader, _ = _leader(instance, world)
    officer = web_for("officer")
    no_file = officer.post("/sign/requests/new", {"title": "x", "signer": leader.public_id})
    assert no_file.status_code == 422 and 'id="e-file"' in no_file.text
    not_pdf = officer.post(
        "/sign/requests/new",
        {"title": "Văn bản", "signer": leader.public_id},
        files={"file": ("a.pdf", b"not a pdf", "application/pdf")},
    )
    assert not_pdf.status_code == 422 and 'id="e-file"' in not_pdf.text
    no_title = officer.post(
        "/sign/requests/new",
        {"title": "", "signer": "nobody"},
        files={"file": ("a.pdf", samples.official_document(), "application/pdf")},
    )
    assert no_title.status_code == 422
    assert 'id="e-title"' in no_title.text and 'id="e-signer"' in no_title.text


def _sign_as(signer: Web, task: str, key_id: str) -> None:
    opened = signer.post(f"/sign/requests/{task}/open")
    assert opened.status_code == 303, opened.text[:1000]
    upload_id = opened.headers["location"].rsplit("/", 1)[1]
    signed = signer.post(
        f"/sign/{upload_id}",
        {"kind": "attachment", "key_id": key_id, "level": "B-B", "place": "corner", "number": "15"},
    )
    assert signed.status_code == 303, signed.text[:1000]


def test_sequential_sign_offs_go_from_the_deputy_to_the_head(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    deputy, deputy_key = _leader(
        instance, world, name="Lương Thị Phó", position="Phó Chủ tịch UBND huyện"
    )
    head, head_key = _leader(instance, world, name="Đàm Văn Trưởng")
    officer = web_for("officer")
    answer = officer.post(
        "/sign/requests/new",
        {"title": "Tờ trình 9/TTr-UBND", "signer": deputy.public_id, "then": [head.public_id, ""]},
        files={"file": ("tt-9.pdf", samples.official_document(), "application/pdf")},
    )
    assert answer.status_code == 303, answer.text[:1500]
    first = answer.headers["location"].rsplit("/", 1)[1]
    head_web = web_for().login(head)
    assert "Tờ trình 9/TTr-UBND" not in head_web.get("/sign/requests").text  # not yet

    _sign_as(web_for().login(deputy), first, deputy_key)
    with world.ctx.db.read() as session:
        onward = session.query(SignatureRequest).filter_by(signer_id=head.id).one()
        second = onward.public_id
        assert onward.requested_by == world.users["officer"].id  # the sender stays the sender
        assert onward.state is SignatureState.WAITING
    assert "Tờ trình 9/TTr-UBND" in head_web.get("/sign/requests").text
    _sign_as(head_web, second, head_key)

    final = officer.get(f"/sign/requests/{second}/signed.pdf")
    assert final.status_code == 200
    report = verify(final.content, trust_context(world.ctx), name="tt-9.pdf")
    assert report.passed and len(report.signatures) == 2
    assert "Lương Thị Phó" in str(report.signatures[0].signer)
    assert "Đàm Văn Trưởng" in str(report.signatures[1].signer)

    # the chain is checked when sent: the first signer again, or someone outside the unit
    far, _ = _leader(instance, world, "nganson", name="Vi Văn Xa")
    for then in ([deputy.public_id], [far.public_id]):
        refused = officer.post(
            "/sign/requests/new",
            {"title": "Văn bản", "signer": deputy.public_id, "then": then},
            files={"file": ("a.pdf", samples.official_document(), "application/pdf")},
        )
        assert refused.status_code == 422 and 'id="e-then"' in refused.text
