"""Group commit: concurrent issuance requests share transactions; a bad request fails alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from kyso.context import Context
from kyso.errors import CompromisedKey
from kyso.pki import issuance, status
from kyso.pki.batcher import IssuanceBatcher
from kyso.pki.names import parse_subject
from kyso.store.models import AuditEntry, Certificate, Profile, RevocationReason


def _spec(key: ec.EllipticCurvePrivateKey | None = None) -> issuance.IssueSpec:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return issuance.IssueSpec(
        Profile.INDIVIDUAL, parse_subject("CN=Hà Thị Thu,C=VN"), key.public_key()
    )


def _count(ctx: Context, model: type) -> int:
    with ctx.db.read() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_concurrent_requests_are_all_issued_once(ctx: Context) -> None:
    batcher = IssuanceBatcher(ctx.authority)
    before, audits = _count(ctx, Certificate), _count(ctx, AuditEntry)
    with ThreadPoolExecutor(8) as pool:
        issued = list(pool.map(lambda _: batcher.issue(_spec(), "api:test"), range(40)))
    assert len({i.serial for i in issued}) == 40
    assert _count(ctx, Certificate) == before + 40
    assert _count(ctx, AuditEntry) == audits + 40
    assert all(i.row.id is not None for i in issued)


def test_a_compromised_key_fails_alone_in_its_batch(ctx: Context) -> None:
    bad_key = ec.generate_private_key(ec.SECP256R1())
    with ctx.db.session() as session:
        first = issuance.issue(session, ctx.authority, _spec(bad_key), "test")
        status.revoke(session, ctx.authority, first.serial, RevocationReason.KEY_COMPROMISE, "test")
    batcher = IssuanceBatcher(ctx.authority)
    before = _count(ctx, Certificate)
    with ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(batcher.issue, _spec(bad_key if i == 5 else None), "api:test")
            for i in range(16)
        ]
    outcomes = [f.exception() for f in futures]
    assert isinstance(outcomes[5], CompromisedKey)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [None] * 15
    assert _count(ctx, Certificate) == before + 15


def test_bad_input_never_joins_a_batch(ctx: Context) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kyso.errors import WeakKeyError

    weak = rsa.generate_private_key(65537, 1024)
    spec = issuance.IssueSpec(Profile.INDIVIDUAL, parse_subject("CN=x,C=VN"), weak.public_key())
    with pytest.raises(WeakKeyError):
        IssuanceBatcher(ctx.authority).issue(spec, "api:test")
