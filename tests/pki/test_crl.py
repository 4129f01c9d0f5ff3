"""Full and delta CRLs: what they list, how they are numbered, and that others accept them."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import Instance, _database_url, make_env, open_instance
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from kyso import clock
from kyso.context import Context
from kyso.pki import crl, issuance, lint, status
from kyso.pki.authority import Identity
from kyso.pki.names import parse_subject
from kyso.store.models import Certificate, Crl, IdentityRole, Profile, RevocationReason

SUBJECT = "CN=Đặng Thị Thu,OU=Văn phòng HĐND và UBND,O=UBND huyện Pác Nặm,L=Bắc Kạn,C=VN"

REASON_FLAGS = {
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.REMOVE_FROM_CRL: x509.ReasonFlags.remove_from_crl,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


@pytest.fixture
def own_ctx(
    instance: Instance, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Context]:
    """A CA of its own, on the same backend: a test that moves kyso's clock ahead leaves
    CRLs dated in the future, which must not meet the shared instance's later tests."""
    own = open_instance(make_env(tmp_path, _database_url(instance.backend, tmp_path, request)))
    yield own
    own.close()


def issuing(ctx: Context) -> Identity:
    return ctx.authority.identity(IdentityRole.ISSUING)


def issue(ctx: Context) -> int:
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject(SUBJECT),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with ctx.db.session() as session:
        return issuance.issue(session, ctx.authority, spec, "test").certificate.serial_number


def hex_(serial: int) -> str:
    return format(serial, "x")


def suspend(ctx: Context, serial: int) -> None:
    with ctx.db.session() as session:
        status.suspend(session, ctx.authority, hex_(serial), "test")


def restore(ctx: Context, serial: int) -> None:
    with ctx.db.session() as session:
        status.restore(session, ctx.authority, hex_(serial), "test")


def revoke(ctx: Context, serial: int, reason: RevocationReason) -> None:
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, hex_(serial), reason, "test")


def generate(ctx: Context, *, delta: bool = False) -> x509.CertificateRevocationList:
    with ctx.db.session() as session:
        der = crl.generate(session, ctx.authority, issuing(ctx), delta=delta).der
    return x509.load_der_x509_crl(der)


def der(c: x509.CertificateRevocationList) -> bytes:
    return c.public_bytes(Encoding.DER)


def listed(c: x509.CertificateRevocationList) -> dict[int, x509.ReasonFlags | None]:
    """Serial → reason code (None when the entry carries none) for every entry."""
    out: dict[int, x509.ReasonFlags | None] = {}
    for entry in c:
        try:
            out[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            out[entry.serial_number] = None
    return out


def number(c: x509.CertificateRevocationList) -> int:
    return c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_full_crl_lists_revoked_and_suspended_but_not_restored_or_good(ctx: Context) -> None:
    revoked, held, restored, good = (issue(ctx) for _ in range(4))
    revoke(ctx, revoked, RevocationReason.KEY_COMPROMISE)
    suspend(ctx, held)
    suspend(ctx, restored)
    restore(ctx, restored)
    unspecified = issue(ctx)
    revoke(ctx, unspecified, RevocationReason.UNSPECIFIED)

    full = generate(ctx)
    entries = listed(full)
    assert entries[revoked] is x509.ReasonFlags.key_compromise
    assert entries[held] is x509.ReasonFlags.certificate_hold
    assert entries[unspecified] is None  # RFC 5280 §5.3.1: unspecified is left out
    assert restored not in entries
    assert good not in entries
    assert full.is_signature_valid(issuing(ctx).certificate.public_key())  # type: ignore[arg-type]
    assert full.issuer == issuing(ctx).certificate.subject
    with pytest.raises(x509.ExtensionNotFound):
        full.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    freshest = full.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert [n.value for dp in freshest for n in dp.full_name] == [
        ctx.authority.crl_url(issuing(ctx).id, delta=True)
    ]
    aki = full.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuing(ctx).key_identifier


def test_revocation_time_and_update_window_are_recorded(ctx: Context) -> None:
    serial = issue(ctx)
    revoke(ctx, serial, RevocationReason.SUPERSEDED)
    full = generate(ctx)
    entry = full.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    with ctx.db.read() as session:
        row = session.execute(
            select(Certificate).where(Certificate.serial == hex_(serial))
        ).scalar_one()
    assert entry.revocation_date_utc == row.revoked_at
    assert full.next_update_utc is not None
    assert full.next_update_utc - full.last_update_utc == timedelta(
        hours=ctx.settings.crl_next_update_hours
    )


def test_crl_numbers_strictly_increase_across_full_and_delta(ctx: Context) -> None:
    made = [generate(ctx, delta=d) for d in (False, True, True, False, True, False)]
    numbers = [number(c) for c in made]
    assert all(a < b for a, b in pairwise(numbers)), numbers
    with ctx.db.read() as session:
        stored = (
            session.execute(
                select(Crl.number).where(Crl.issuer_id == issuing(ctx).id).order_by(Crl.id)
            )
            .scalars()
            .all()
        )
    assert stored == sorted(stored) and len(set(stored)) == len(stored)


def test_delta_crl_lists_the_changes_since_its_base(
    own_ctx: Context, fake_clock: clock.FakeClock
) -> None:
    ctx = own_ctx
    before_base = issue(ctx)
    revoke(ctx, before_base, RevocationReason.SUPERSEDED)
    on_hold_then_restored = issue(ctx)
    suspend(ctx, on_hold_then_restored)
    fake_clock.advance(1)  # kyso's times have whole seconds: order the change and the CRL
    base = generate(ctx)
    assert on_hold_then_restored in listed(base)

    revoked, held = issue(ctx), issue(ctx)
    revoke(ctx, revoked, RevocationReason.PRIVILEGE_WITHDRAWN)
    suspend(ctx, held)
    restore(ctx, on_hold_then_restored)

    delta = generate(ctx, delta=True)
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == number(base)
    assert number(delta) > number(base)
    assert listed(delta) == {
        revoked: x509.ReasonFlags.privilege_withdrawn,
        held: x509.ReasonFlags.certificate_hold,
        on_hold_then_restored: x509.ReasonFlags.remove_from_crl,
    }
    assert before_base not in listed(delta)
    assert delta.is_signature_valid(issuing(ctx).certificate.public_key())  # type: ignore[arg-type]
    assert delta.next_update_utc is not None
    assert delta.next_update_utc - delta.last_update_utc == timedelta(
        hours=ctx.settings.delta_crl_next_update_hours
    )


def test_current_crl_is_reused_until_a_status_changes(
    own_ctx: Context, fake_clock: clock.FakeClock
) -> None:
    ctx = own_ctx
    issuer = issuing(ctx)
    fake_clock.advance(1)  # kyso's times have whole seconds: order the change and the CRL
    first = crl.current(ctx.authority, issuer)
    assert crl.current(ctx.authority, issuer) == first

    serial = issue(ctx)
    assert crl.current(ctx.authority, issuer) == first  # issuing a good one changes nothing
    suspend(ctx, serial)
    after = crl.current(ctx.authority, issuer)
    assert after != first
    parsed = x509.load_der_x509_crl(after)
    assert listed(parsed)[serial] is x509.ReasonFlags.certificate_hold
    assert number(parsed) > number(x509.load_der_x509_crl(first))


def test_current_delta_crl_shows_a_change_at_once(ctx: Context) -> None:
    issuer = issuing(ctx)
    serial = issue(ctx)
    crl.current(ctx.authority, issuer, delta=True)
    revoke(ctx, serial, RevocationReason.KEY_COMPROMISE)
    delta = x509.load_der_x509_crl(crl.current(ctx.authority, issuer, delta=True))
    assert listed(delta)[serial] is x509.ReasonFlags.key_compromise


@pytest.mark.interop
def test_pkilint_finds_no_errors_in_full_and_delta_crls(ctx: Context) -> None:
    serial = issue(ctx)
    revoke(ctx, serial, RevocationReason.CA_COMPROMISE)
    suspend(ctx, issue(ctx))
    full = der(generate(ctx))
    delta = der(generate(ctx, delta=True))
    assert lint.errors(lint.lint_crl(full)) == []
    assert lint.errors(lint.lint_crl(delta, delta=True)) == []
    # and the checks can fail: each kind is an error where the other belongs
    assert lint.errors(lint.lint_crl(delta))
    assert lint.errors(lint.lint_crl(full, delta=True))


@pytest.mark.interop
def test_root_crl_is_clean_and_lists_nothing(ctx: Context) -> None:
    root = ctx.authority.identity(IdentityRole.ROOT)
    with ctx.db.session() as session:
        made = crl.generate(session, ctx.authority, root).der
    assert lint.errors(lint.lint_crl(made)) == []
    parsed = x509.load_der_x509_crl(made)
    assert len(parsed) == 0
    assert parsed.is_signature_valid(root.certificate.public_key())  # type: ignore[arg-type]


@pytest.mark.interop
@pytest.mark.parametrize("delta", [False, True], ids=["full", "delta"])
def test_openssl_verifies_the_crl_signature(ctx: Context, tmp_path: Path, delta: bool) -> None:
    revoke(ctx, issue(ctx), RevocationReason.SUPERSEDED)
    (tmp_path / "chain.pem").write_text("".join(i.pem() for i in ctx.authority.chain()))
    (tmp_path / "crl.der").write_bytes(der(generate(ctx, delta=delta)))
    result = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "crl.der",
            "-noout",
            "-CAfile",
            tmp_path / "chain.pem",
            "-verify",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify OK" in result.stdout + result.stderr
    # A CRL with one flipped signature byte is refused, so the check above means something.
    broken = bytearray((tmp_path / "crl.der").read_bytes())
    broken[-1] ^= 0x01
    (tmp_path / "crl.der").write_bytes(bytes(broken))
    bad = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "crl.der",
            "-noout",
            "-CAfile",
            tmp_path / "chain.pem",
            "-verify",
        ],
        capture_output=True,
        text=True,
    )
    assert "verify OK" not in bad.stdout + bad.stderr


# --- the hand-written DER -----------------------------------------------------------------


@pytest.mark.parametrize("count", [1000, 1500])
def test_build_crl_der_with_many_entries_parses_with_exactly_those_serials(
    sqlite_instance: object, count: int
) -> None:
    ctx: Context = sqlite_instance.ctx  # type: ignore[attr-defined]
    issuer = issuing(ctx)
    now = clock.now()
    reasons = [None, *RevocationReason]
    # Edge serials around the DER sign bit and length boundaries, then random 128-bit ones.
    edges = [
        1,
        0x7F,
        0x80,
        0xFF,
        0x100,
        0x7FFF,
        0x8000,
        0xFFFF,
        (1 << 127),
        (1 << 128) - 1,
        (1 << 64),
        (1 << 158) + 12345,
    ]  # up to 20 octets (RFC 5280 §4.1.2.2)
    serials = edges + [secrets.randbits(128) | (1 << 64) for _ in range(count - len(edges))]
    assert len(set(serials)) == count
    entries = [
        crl.Entry(hex_(s), now - timedelta(minutes=i), reasons[i % len(reasons)])
        for i, s in enumerate(serials)
    ]
    # One entry revoked after 2049, which RFC 5280 §5.1.2.6 encodes as GeneralizedTime.
    late = datetime(2051, 6, 1, 12, 0, 0, tzinfo=UTC)
    entries[5] = crl.Entry(entries[5].serial, late, RevocationReason.SUPERSEDED)

    made = crl.build_crl_der(
        issuer, entries, number=987654321, this_update=now, next_update=now + timedelta(hours=24)
    )
    parsed = x509.load_der_x509_crl(made)
    assert parsed.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
    assert len(parsed) == count
    assert sorted(e.serial_number for e in parsed) == sorted(serials)
    assert number(parsed) == 987654321
    by_serial = {e.serial_number: e for e in parsed}
    for entry in entries:
        got = by_serial[int(entry.serial, 16)]
        assert got.revocation_date_utc == entry.revoked_at
        expected = (
            None
            if entry.reason in (None, RevocationReason.UNSPECIFIED)
            else REASON_FLAGS[entry.reason]
        )
        assert listed_reason(got) is expected, entry
    # 1,000 entries need the two-byte DER length form, 1,500 the three-byte one.
    assert made[1] == (0x82 if count == 1000 else 0x83)
    assert lint.errors(lint.lint_crl(made)) == []


def listed_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def test_build_crl_der_with_no_entries_leaves_the_list_out(sqlite_instance: object) -> None:
    ctx: Context = sqlite_instance.ctx  # type: ignore[attr-defined]
    now = clock.now()
    made = crl.build_crl_der(
        issuing(ctx),
        [],
        number=1,
        this_update=now,
        next_update=now + timedelta(hours=1),
        base_number=None,
    )
    parsed = x509.load_der_x509_crl(made)
    assert len(parsed) == 0
    assert lint.errors(lint.lint_crl(made)) == []
