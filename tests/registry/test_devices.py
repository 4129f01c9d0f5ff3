"""Key devices: legal moves only, hand-over minutes as PDF, PIN-change policy, lost devices."""

from __future__ import annotations

import secrets
import subprocess
from datetime import timedelta

import pytest

from kyso import clock
from kyso.errors import Conflict, Forbidden
from kyso.registry import devices, minutes
from kyso.registry.access import cli_principal
from kyso.store.models import (
    CaIdentity,
    Certificate,
    CertStatus,
    DeviceKind,
    DeviceStatus,
    IdentityRole,
    Profile,
)

ADMIN = cli_principal("cli:test")
S = DeviceStatus


def _device(registry, unit="Sở Thông tin và Truyền thông"):
    with registry.ctx.db.session() as session:
        return devices.add(
            ADMIN,
            session,
            devices.DeviceInput(
                serial=f"T-{secrets.token_hex(5)}",
                model="ePass2003",
                kind=DeviceKind.USB_TOKEN,
                unit=registry.unit(unit).public_id,
            ),
        )


def _hand(registry, device, person, at=None, principal=ADMIN):
    with registry.ctx.db.session() as session:
        return devices.handover(
            principal,
            session,
            device.public_id,
            person.public_id,
            from_name="Sở Thông tin và Truyền thông",
            at=at,
        )


def _status(registry, device):
    with registry.ctx.db.read() as session:
        return devices.get(ADMIN, session, device.public_id).status


def _certificates_on(registry, device, subject, revoked_too=False) -> list[tuple[int, str]]:
    """Certificate rows on the device (the registry only links them; the CA made none here)."""
    now = clock.now()
    with registry.ctx.db.session() as session:
        issuer = session.query(CaIdentity).first()
        if issuer is None:
            issuer = CaIdentity(
                role=IdentityRole.ISSUING,
                name="test CA",
                keystore="none",
                key_id="none",
                serial=secrets.token_hex(16),
                key_hash_sha1="0" * 40,
                certificate_der=b"0",
                not_after=now + timedelta(days=3650),
                active=True,
                created_at=now,
            )
            session.add(issuer)
            session.flush()
        made = []
        for status in [CertStatus.GOOD, CertStatus.REVOKED] if revoked_too else [CertStatus.GOOD]:
            cert = Certificate(
                serial=secrets.token_hex(16),
                issuer_id=issuer.id,
                profile=Profile.INDIVIDUAL,
                subject=subject,
                spki_sha256=secrets.token_hex(32),
                key_location="token",
                not_before=now,
                not_after=now + timedelta(days=1095),
                status=status,
                der=b"0",
                created_at=now,
                device_id=device.id,
            )
            session.add(cert)
            session.flush()
            made.append((cert.id, cert.serial))
        return made


def test_a_device_moves_only_along_legal_transitions(registry) -> None:
    person = registry.person_in("UBND xã Khang Ninh")
    device = _device(registry)
    assert device.status is S.IN_STOCK
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        devices.set_status(ADMIN, session, device.public_id, S.LOCKED)  # not issued yet
    _hand(registry, device, person)
    assert _status(registry, device) is S.ISSUED
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        devices.set_status(ADMIN, session, device.public_id, S.IN_STOCK)  # must be returned
    with registry.ctx.db.session() as session:
        devices.set_status(ADMIN, session, device.public_id, S.LOCKED, note="PIN sai 10 lần")
    with pytest.raises(Conflict), registry.ctx.db.session() as session:  # restore it first
        devices.handover(ADMIN, session, device.public_id, person.public_id)
    with registry.ctx.db.session() as session:  # restored (form 06)
        devices.set_status(ADMIN, session, device.public_id, S.ISSUED)
    with registry.ctx.db.session() as session:
        devices.take_back(ADMIN, session, device.public_id, received_by="Sở TTTT")
    assert _status(registry, device) is S.RETURNED
    with registry.ctx.db.session() as session:
        devices.set_status(ADMIN, session, device.public_id, S.DESTROYED)
    for target in (S.IN_STOCK, S.LOCKED, S.DESTROYED):
        with pytest.raises(Conflict), registry.ctx.db.session() as session:
            devices.set_status(ADMIN, session, device.public_id, target)
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        devices.handover(ADMIN, session, device.public_id, person.public_id)


def test_reporting_a_device_lost_returns_the_certificates_to_revoke(registry) -> None:
    person = registry.person_in("UBND xã Nam Mẫu")
    device = _device(registry)
    _hand(registry, device, person)
    certs = _certificates_on(registry, device, f"CN={person.full_name},C=VN", revoked_too=True)
    signer = registry.principal("signer")  # another commune's signer: not theirs to report
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        devices.mark_lost(signer, session, device.public_id)
    with registry.ctx.db.session() as session:
        ids = devices.mark_lost(
            registry.principal("babe"), session, device.public_id, note="mất khi đi công tác"
        )
    assert ids == [certs[0][0]]  # the revoked one is not returned
    assert _status(registry, device) is S.LOST
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        devices.handover(ADMIN, session, device.public_id, person.public_id)
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        devices.mark_lost(ADMIN, session, device.public_id)


def test_handover_minutes_pdf_has_the_vietnamese_text(registry, tmp_path) -> None:
    person = registry.person_in("UBND xã Khang Ninh")
    device = _device(registry)
    record = _hand(registry, device, person)
    certs = _certificates_on(registry, device, f"CN={person.full_name},O=UBND xã Khang Ninh,C=VN")
    with registry.ctx.db.read() as session:
        pdf = minutes.handover_pdf(ADMIN, session, record.public_id)
    assert pdf.startswith(b"%PDF-")
    (tmp_path / "minutes.pdf").write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "minutes.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    flat = " ".join(text.split())
    assert "BIÊN BẢN BÀN GIAO THIẾT BỊ LƯU KHÓA BÍ MẬT" in flat
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in flat
    assert "BÊN GIAO" in flat and "BÊN NHẬN" in flat
    assert person.full_name in flat
    assert person.id_number in flat
    assert device.serial in flat
    assert certs[0][1] in flat
    assert "Ký, ghi rõ họ tên" in flat


def test_minutes_of_another_district_are_forbidden_to_a_unit_officer(registry) -> None:
    person = registry.person_in("UBND xã Bằng Lãng")  # Chợ Đồn
    device = _device(registry)
    record = _hand(registry, device, person)
    with pytest.raises(Forbidden), registry.ctx.db.read() as session:
        minutes.handover_pdf(registry.principal("babe"), session, record.public_id)


def test_pin_overdue_lists_holders_past_the_policy(registry) -> None:
    now = clock.now()
    stale_holder = registry.person_in("UBND xã Quảng Khê")
    fresh_holder = registry.person_in("UBND xã Hoàng Trĩ")
    changed_holder = registry.person_in("UBND xã Đồng Phúc")
    far_holder = registry.person_in("UBND xã Bằng Lãng")  # Chợ Đồn
    stale, fresh, changed, far = (_device(registry) for _ in range(4))
    _hand(registry, stale, stale_holder, at=now - timedelta(days=200))
    _hand(registry, fresh, fresh_holder, at=now - timedelta(days=10))
    _hand(registry, changed, changed_holder, at=now - timedelta(days=400))
    _hand(registry, far, far_holder, at=now - timedelta(days=300))
    with registry.ctx.db.session() as session:
        devices.record_pin_change(ADMIN, session, changed.public_id, at=now - timedelta(days=20))
    with registry.ctx.db.read() as session:
        overdue = {o.device.id: o for o in devices.pin_overdue(ADMIN, session, days=180, now=now)}
        assert stale.id in overdue and far.id in overdue
        assert fresh.id not in overdue and changed.id not in overdue
        assert overdue[stale.id].days == 200
        assert overdue[stale.id].holder is not None
        assert overdue[stale.id].holder.id == stale_holder.id
        scoped = {
            o.device.id
            for o in devices.pin_overdue(registry.principal("babe"), session, days=180, now=now)
        }
        assert stale.id in scoped and far.id not in scoped  # the officer sees Ba Bể only
        shorter = {o.device.id for o in devices.pin_overdue(ADMIN, session, days=5, now=now)}
        assert fresh.id in shorter and changed.id in shorter
    with registry.ctx.db.session() as session:
        devices.record_pin_change(ADMIN, session, stale.public_id)
    with registry.ctx.db.read() as session:
        after = {o.device.id for o in devices.pin_overdue(ADMIN, session, days=180)}
    assert stale.id not in after


def test_demo_has_devices_in_stock_and_issued_some_overdue(registry) -> None:
    with registry.ctx.db.read() as session:
        stock = devices.search(ADMIN, session, status=S.IN_STOCK, limit=500)
        issued = devices.search(ADMIN, session, status=S.ISSUED, limit=500)
        overdue = devices.pin_overdue(ADMIN, session, days=registry.ctx.settings.pin_change_days)
    assert stock.total >= 20
    assert issued.total >= 10
    assert overdue


def test_pin_change_days_is_a_setting() -> None:
    from kyso.settings import Settings

    assert Settings.from_env({"KYSO_HOME": "/tmp/x"}).pin_change_days == 180
    assert (
        Settings.from_env({"KYSO_HOME": "/tmp/x", "KYSO_PIN_CHANGE_DAYS": "90"}).pin_change_days
        == 90
    )
