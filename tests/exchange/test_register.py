"""The records clerk issues a leader's signed draft: the next number of the unit's register
for the year, the unit's seal over the left third of the leader's signature (a second
signature, B-T, that pdfsig and kyso both accept), the register row; then sends it, unless
the province's catalogue keeps that type on paper; and the 90 % figure counts it."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance
from fixtures.pdf import images, samples
from sqlalchemy import update
from support.world import World, make_world
from ui.test_sign import server_key, widget_rect

from kyso.errors import Forbidden, InvalidInput
from kyso.exchange import register
from kyso.registry.fields import FieldErrors
from kyso.signing.identity import from_keystore
from kyso.signing.pades import sign_pdf
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind
from kyso.store.models import Delivery, Organization
from kyso.trust import trust_context
from kyso.validation.verify import verify


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key, code in (("babe", "000.41"), ("nganson", "000.42"), ("chuhuong", "000.43")):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=f"{code}.{found.tag}.H03")
            )
    return found


@pytest.fixture(scope="module")
def keys(instance: Instance, world: World) -> dict[str, str]:
    return {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
        "seal_ns": server_key(instance, world.unit("nganson"))[0],
    }


def draft(instance: Instance, keys: dict[str, str]) -> bytes:
    """A decision the chairman signed (approval stamp above his printed name)."""
    return sign_pdf(
        samples.official_document(),
        from_keystore(instance.ctx, keys["leader"]),
        appearance=Appearance(
            kind=StampKind.APPROVAL,
            placement=Placement.by_anchor("Nguyễn Văn An", width=160, height=70),
            signature_image=images.signature_png(),
        ),
    )


def issue(instance: Instance, world: World, keys: dict[str, str], **changes: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "unit": world.unit("babe").public_id,
        "type": "QĐ",
        "notation": "QĐ-UBND",
        "subject": "Quyết định ban hành Quy chế sử dụng chữ ký số",
        "document": draft(instance, keys),
        "seal_image": images.seal_png(),
        "key_id": keys["seal"],
        "signer_name": "Nguyễn Văn An",
        "issued_on": date(2026, 12, 5),
    }
    values.update(changes)
    return register.issue(instance.ctx, world.who("officer"), register.Issue(**values))


def test_issuing_numbers_seals_over_the_leaders_signature_and_registers(
    instance: Instance, world: World, keys: dict[str, str], tmp_path: Path
) -> None:
    first = issue(instance, world, keys)
    second = issue(instance, world, keys, issued_on=date(2026, 12, 6))
    assert (first.year, second.number) == (2026, first.number + 1)
    with instance.ctx.db.read() as session:
        issued = bytes(register.get(world.who("officer"), session, first.public_id).document)
    report = verify(issued, trust_context(instance.ctx), name="qd.pdf")
    assert report.passed and len(report.signatures) == 2
    # the seal, at its real size, covers the left third of the leader's signature
    lx1, ly1, lx2, ly2 = widget_rect(draft(instance, keys))[1]
    sx1, sy1, sx2, sy2 = widget_rect(issued)[1]
    assert sx2 == pytest.approx(lx1 + (lx2 - lx1) / 3, abs=5)
    assert sx1 < lx1 < sx2 and abs((sy1 + sy2) / 2 - (ly1 + ly2) / 2) < 20
    path = tmp_path / "issued.pdf"
    path.write_bytes(issued)
    pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    assert pdfsig.stdout.count("Signature Validation: Signature is Valid.") == 2, pdfsig.stdout
    # a new year starts at 1 again
    next_year = issue(instance, world, keys, issued_on=date(2027, 1, 2))
    assert next_year.number == 1


def test_two_clerks_issuing_at_once_get_different_numbers(
    instance: Instance, world: World, keys: dict[str, str]
) -> None:
    day = date(2026, 11, 20)
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda _: issue(instance, world, keys, issued_on=day), range(2)))
    assert len({m.number for m in made}) == 2


def test_an_unsigned_draft_or_a_bad_seal_is_refused_by_field(
    instance: Instance, world: World, keys: dict[str, str]
) -> None:
    with pytest.raises(FieldErrors) as caught:
        issue(instance, world, keys, document=samples.official_document())
    assert caught.value.problems[0].field == "document"
    assert "chưa có chữ ký" in caught.value.message("vi")
    invisible = sign_pdf(samples.official_document(), from_keystore(instance.ctx, keys["leader"]))
    with pytest.raises(FieldErrors) as caught:  # the seal would have nothing to go over
        issue(instance, world, keys, document=invisible)
    assert "invisible" in caught.value.message("en")
    with pytest.raises(FieldErrors) as caught:
        issue(instance, world, keys, seal_image=b"GIF89a", notation="")
    assert {p.field for p in caught.value.problems} == {"seal_image", "notation"}
    with pytest.raises(FieldErrors):
        issue(instance, world, keys, type="XX")
    with pytest.raises(Forbidden):  # Ngân Sơn's clerk does not issue for Ba Bể
        register.issue(
            instance.ctx,
            world.who("officer_ns"),
            register.Issue(
                unit=world.unit("babe").public_id,
                type="QĐ",
                notation="QĐ-UBND",
                subject="x",
                document=draft(instance, keys),
                seal_image=images.seal_png(),
                key_id=keys["seal"],
            ),
        )


def test_an_issued_document_is_sent_unless_its_type_goes_on_paper_and_the_share_counts_it(
    instance: Instance, world: World, keys: dict[str, str]
) -> None:
    ctx = instance.ctx
    period = (date(2025, 3, 1), date(2025, 3, 31))
    sent = [issue(instance, world, keys, issued_on=date(2025, 3, d)) for d in (3, 4, 5)]
    to = f"000.42.{world.tag}.H03"
    (message,) = register.send(ctx, world.who("officer"), sent[0].public_id, [to], keys["seal"])
    register.send(ctx, world.who("officer"), sent[1].public_id, [to], keys["seal"])
    assert message
    with ctx.db.read() as session:
        shares = register.electronic_share(world.who("admin1"), session, *period)
    (babe,) = [s for s in shares if s.unit == world.unit("babe").public_id]
    assert (babe.issued, babe.electronic, babe.level) == (3, 2, "district")
    assert babe.share == pytest.approx(2 / 3) and babe.meets_target is False
    assert register.by_level(shares)["district"] == (3, 2)

    # the province puts "Giấy mời" on paper: it is registered, counted, never sent
    admin = world.who("admin1")
    with ctx.db.session() as session, pytest.raises(Forbidden):
        register.set_delivery(world.who("officer"), session, "GM", Delivery.PAPER)
    with ctx.db.session() as session:
        register.set_delivery(admin, session, "GM", Delivery.PAPER)
    try:
        paper = issue(
            instance, world, keys, type="GM", notation="GM-UBND", issued_on=date(2025, 3, 9)
        )
        with pytest.raises(InvalidInput, match=r"giấy|paper"):
            register.send(ctx, world.who("officer"), paper.public_id, [to], keys["seal"])
        with ctx.db.read() as session:
            (babe,) = [
                s
                for s in register.electronic_share(admin, session, *period)
                if s.unit == world.unit("babe").public_id
            ]
        assert (babe.issued, babe.electronic) == (4, 2)
    finally:
        with ctx.db.session() as session:
            register.set_delivery(admin, session, "GM", Delivery.ELECTRONIC)
