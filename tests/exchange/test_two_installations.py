"""Two kyso installations exchange signed documents over HTTP, each with its own CA and
database (the first on SQLite and on PostgreSQL, the second on SQLite): Bắc Kạn's kyso and
Thái Nguyên's, each trusting the other's root.

A records clerk of Bắc Kạn sends through the REST API; the package travels to Thái Nguyên's
``/exchange/v1/messages``, is validated there with its embedded B-LT evidence (the other CA's
OCSP responder is never asked) and lands in the inbox (01); xmlsec1 verifies the stored
package independently; Thái Nguyên's clerk receives it (ĐẾN) and sends one back. A package
changed on the way is refused (02). While Thái Nguyên is down nothing is lost: the message
waits in Bắc Kạn's outbox and is delivered, once, when it is back. A recall crosses too."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    PASSPHRASE,
    Instance,
    Server,
    _database_url,
    _free_port,
    _serve,
    make_env,
)
from cryptography.hazmat.primitives import serialization
from fixtures.pdf import samples
from sqlalchemy import select, update
from support.world import World, make_world
from ui.test_sign import server_key

from kyso import trust
from kyso.api import clients
from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.exchange import edxml, service, status
from kyso.exchange.model import Organ, ResponseFor
from kyso.pki import bootstrap
from kyso.settings import Settings
from kyso.store.models import (
    ExchangeDirection,
    ExchangeMessage,
    ExchangeState,
    ExchangeStatusOut,
    IdentityRole,
    Organization,
)

PDF = samples.official_document()
HERE_PREFIX, THERE_PREFIX = "000.00.", "000.99."
_ = PASSPHRASE  # the test environment's key-store passphrase (make_env)


@dataclass
class Side:
    instance: Instance
    world: World
    unit_code: str
    seal: str
    port: int

    @property
    def ctx(self) -> Context:
        return self.instance.ctx

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _thai_nguyen(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Instance:
    home = tmp_path_factory.mktemp("kyso-thainguyen")
    env = make_env(home, _database_url("sqlite", home, request))
    ctx = Context(Settings.from_env(env))
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=bootstrap.CaNames.for_organization("UBND tỉnh Thái Nguyên", "Thái Nguyên"),
        )
    return Instance(ctx, env, "sqlite")


def _side(instance: Instance, unit_key: str, prefix: str, port: int) -> Side:
    world = make_world(instance.ctx, instance.backend)
    code = f"{prefix}{world.tag}.H03"
    with instance.ctx.db.session() as session:
        session.execute(
            update(Organization).where(Organization.id == world.unit(unit_key).id).values(code=code)
        )
    seal = server_key(instance, world.unit(unit_key))[0]
    return Side(instance, world, code, seal, port)


def _root_pem(ctx: Context) -> bytes:
    return ctx.authority.identity(IdentityRole.ROOT).certificate.public_bytes(
        serialization.Encoding.PEM
    )


@pytest.fixture(scope="module")
def sides(
    instance: Instance, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Side, Side]:
    there = _thai_nguyen(tmp_path_factory, request)
    request.addfinalizer(there.ctx.close)
    here_side = _side(instance, "babe", HERE_PREFIX, _free_port())
    there_side = _side(there, "nganson", THERE_PREFIX, _free_port())
    for side, other in ((here_side, there_side), (there_side, here_side)):
        with side.ctx.db.session() as session:
            trust.add_anchor(session, _root_pem(other.ctx), "test", "the other province")
    return here_side, there_side


_CONTEXTS: dict[int, Context] = {}


def _as_server(side: Side, other: Side) -> Context:
    """``side``'s database with the settings its server runs with (the peer's address): what
    a clerk's click on that server does, done here in process."""
    if side.port not in _CONTEXTS:
        prefix = THERE_PREFIX if side.unit_code.startswith(HERE_PREFIX) else HERE_PREFIX
        _CONTEXTS[side.port] = Context(
            dataclasses.replace(
                side.ctx.settings, exchange_peers={prefix: other.url}, exchange_retry_seconds=1
            )
        )
    return _CONTEXTS[side.port]


def _serving(side: Side, other: Side, log_dir: Path) -> Iterator[Server]:
    prefix = THERE_PREFIX if side.unit_code.startswith(HERE_PREFIX) else HERE_PREFIX
    env = {
        **side.instance.env,
        "KYSO_EXCHANGE_PEERS": f"{prefix}={other.url}",
        "KYSO_LOOP_SECONDS": "1",
        "KYSO_EXCHANGE_RETRY_SECONDS": "1",
    }
    return _serve(Instance(side.ctx, env, side.instance.backend), log_dir, port=side.port)


@pytest.fixture(scope="module")
def servers(
    sides: tuple[Side, Side], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    here, there = sides
    log_dir = tmp_path_factory.mktemp("two-installations")
    running: dict[str, Any] = {}
    for name, side, other in (("here", here, there), ("there", there, here)):
        started = _serving(side, other, log_dir)
        next(started)
        running[name] = started
    running["log_dir"] = log_dir
    yield running
    for name in ("here", "there"):
        running[name].close()
    while _CONTEXTS:
        _CONTEXTS.popitem()[1].close()


def _token(side: Side, key: str) -> dict[str, str]:
    user = side.world.users[key]
    with side.ctx.db.session() as session:
        token = clients.create(
            session,
            f"exchange-{key}-{side.world.tag}-{time.monotonic_ns()}",
            ["documents:exchange"],
            "test",
            user_id=user.id,
        )
    return {"authorization": f"Bearer {token}"}


def _send(side: Side, officer: str, to: str, subject: str, pdf: bytes = PDF) -> dict[str, Any]:
    unit_key = "babe" if side.unit_code.startswith(HERE_PREFIX) else "nganson"
    answer = httpx.post(
        f"{side.url}/api/v1/exchange/send",
        headers=_token(side, officer),
        data={
            "unit": side.world.unit(unit_key).public_id,
            "recipients": to,
            "code_number": str(time.monotonic_ns() % 1000),
            "code_notation": "QĐ-UBND",
            "type_name": "Quyết định",
            "subject": subject,
            "key_id": side.seal,
        },
        files={"files": ("quyet-dinh.pdf", pdf, "application/pdf")},
        timeout=120,
    )
    assert answer.status_code == 202, answer.text
    (message,) = answer.json()["messages"]
    return dict(message)


def _stored(side: Side, **where: Any) -> list[ExchangeMessage]:
    with side.ctx.db.read() as session:
        query = select(ExchangeMessage)
        for name, value in where.items():
            query = query.where(getattr(ExchangeMessage, name) == value)
        found = list(session.scalars(query))
        for m in found:
            session.expunge(m)
        return found


def _until(check: Callable[[], bool], seconds: float = 60, why: Side | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    errors = []
    if why is not None:  # what the other side's outbox says
        with why.ctx.db.read() as session:
            errors = [
                (r.code, r.attempts, r.last_error)
                for r in session.scalars(select(ExchangeStatusOut))
            ]
        metrics = httpx.get(f"{why.url}/metrics", timeout=10).text
        errors.append(
            [line for line in metrics.splitlines() if "leader" in line or "scheduled" in line]
        )
    raise AssertionError(f"not in time; status outbox: {errors}")


def test_a_decision_goes_to_the_other_province_and_back(
    sides: tuple[Side, Side], servers: dict[str, Any], tmp_path: Path
) -> None:
    here, there = sides
    sent = _send(here, "officer", there.unit_code, "Quyết định phối hợp liên tỉnh")
    assert (sent["state"], sent["status"]) == ("delivered", "01"), sent
    (arrived,) = _stored(there, direction=ExchangeDirection.IN, package_sha256=sent["sha256"])
    assert arrived.state is ExchangeState.ARRIVED and arrived.peer_organ_id == here.unit_code

    # xmlsec1, with Bắc Kạn's chain, verifies the package Thái Nguyên stored
    from signing.test_xades import xmlsec_verify

    pem = serialization.Encoding.PEM
    chain = here.ctx.authority.chain()
    files = {"root": tmp_path / "root.pem", "issuing": tmp_path / "issuing.pem"}
    files["root"].write_bytes(chain[-1].certificate.public_bytes(pem))
    files["issuing"].write_bytes(chain[0].certificate.public_bytes(pem))
    with there.ctx.db.read() as session:
        package = bytes(
            session.scalar(select(ExchangeMessage.package).where(ExchangeMessage.id == arrived.id))
        )
    checked = xmlsec_verify(package, files, tmp_path)
    assert checked.returncode == 0, checked.stderr

    # Thái Nguyên's clerk receives it with the ĐẾN mark, and writes back
    number = service.accept(
        _as_server(there, here), there.world.who("officer_ns"), arrived.public_id, key_id=there.seal
    )
    assert number.isdigit()
    # …and Bắc Kạn's outbox learns it from a signed status message (03)
    _until(lambda: _stored(here, public_id=sent["id"])[0].status_code == "03", why=there)
    (told,) = _stored(here, public_id=sent["id"])
    assert told.state is ExchangeState.RECEIVED
    back = _send(there, "officer_ns", here.unit_code, "Công văn trả lời")
    assert back["status"] == "01", back
    (answer,) = _stored(here, direction=ExchangeDirection.IN, package_sha256=back["sha256"])
    assert answer.state is ExchangeState.ARRIVED and answer.subject == "Công văn trả lời"


def test_a_package_changed_on_the_way_is_refused_with_status_02(
    sides: tuple[Side, Side], servers: dict[str, Any]
) -> None:
    here, there = sides
    sent = _send(here, "officer", there.unit_code, "Kế hoạch triển khai năm 2027")
    (message,) = _stored(here, public_id=sent["id"])
    with here.ctx.db.read() as session:
        package = bytes(
            session.scalar(select(ExchangeMessage.package).where(ExchangeMessage.id == message.id))
        )
    changed = package.replace("năm 2027".encode(), "năm 2028".encode())
    assert changed != package
    answer = httpx.post(
        f"{there.url}/exchange/v1/messages",
        content=changed,
        headers={"content-type": "application/xml"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "02" and "không hợp lệ" in body["description"]
    garbage = httpx.post(f"{there.url}/exchange/v1/messages", content=b"<edXML", timeout=30)
    assert garbage.status_code in (400, 422) and "XML" in garbage.text


def test_nothing_is_lost_while_the_other_side_is_down(
    sides: tuple[Side, Side], servers: dict[str, Any]
) -> None:
    here, there = sides
    servers["there"].close()  # Thái Nguyên's server stops
    try:
        sent = _send(here, "officer", there.unit_code, "Giấy mời họp trực tuyến")
        assert sent["state"] == "queued" and sent["status"] is None, sent
        (waiting,) = _stored(here, public_id=sent["id"])
        assert waiting.attempts >= 1 and waiting.last_error
    finally:  # …and comes back on the same address
        restarted = _serving(there, here, servers["log_dir"])
        next(restarted)
        servers["there"] = restarted

    def delivered() -> bool:
        (now,) = _stored(here, public_id=sent["id"])
        return now.state is ExchangeState.DELIVERED

    _until(delivered)  # Bắc Kạn's loop delivered it again
    assert len(_stored(there, direction=ExchangeDirection.IN, package_sha256=sent["sha256"])) == 1


def test_a_refusal_travels_back_signed_and_a_forged_status_is_refused(
    sides: tuple[Side, Side], servers: dict[str, Any]
) -> None:
    here, there = sides
    sent = _send(here, "officer", there.unit_code, "Công văn gửi nhầm")
    (arrived,) = _stored(there, direction=ExchangeDirection.IN, package_sha256=sent["sha256"])
    clerk = there.world.who("officer_ns")
    with pytest.raises(InvalidInput, match="seal"):  # the other side gets a signed refusal
        service.refuse(there.ctx, clerk, arrived.public_id, "Không thuộc thẩm quyền")
    service.refuse(
        _as_server(there, here),
        clerk,
        arrived.public_id,
        "Không thuộc thẩm quyền",
        key_id=there.seal,
    )
    _until(lambda: _stored(here, public_id=sent["id"])[0].status_code == "02", why=there)
    (told,) = _stored(here, public_id=sent["id"])
    assert told.state is ExchangeState.REFUSED and told.reason == "Không thuộc thẩm quyền"

    # a status nobody signed (or changed after signing) changes nothing
    forged = status.build(
        status.Status(
            response_for=_answered(here, sent["id"]),
            sender=Organ(there.unit_code, "giả mạo"),
            code=status.StatusCode.COMPLETED,
            timestamp=datetime(2026, 12, 5, 9, 0),
        )
    )
    answer = httpx.post(f"{here.url}/exchange/v1/statuses", content=forged, timeout=30)
    assert answer.status_code in (400, 422), answer.text
    (still,) = _stored(here, public_id=sent["id"])
    assert still.status_code == "02"


def _package_of(side: Side, public_id: str) -> bytes:
    with side.ctx.db.read() as session:
        return bytes(
            session.scalar(
                select(ExchangeMessage.package).where(ExchangeMessage.public_id == public_id)
            )
        )


def _answered(side: Side, public_id: str) -> ResponseFor:
    header = edxml.parse(_package_of(side, public_id)).header
    return ResponseFor(
        header.sender.organ_id, header.code, header.promulgation_date, header.document_id
    )


def test_a_recall_reaches_the_other_province(
    sides: tuple[Side, Side], servers: dict[str, Any]
) -> None:
    here, there = sides
    sent = _send(here, "officer", there.unit_code, "Thông báo sẽ thu hồi")
    recalled = httpx.post(
        f"{here.url}/api/v1/exchange/messages/{sent['id']}/recall",
        headers=_token(here, "officer"),
        json={"reason": "Ban hành nhầm", "key_id": here.seal},
        timeout=120,
    )
    assert recalled.status_code == 202, recalled.text
    (recall,) = recalled.json()["messages"]
    assert (recall["state"], recall["status"]) == ("recalled", "15"), recall
    (original,) = _stored(there, direction=ExchangeDirection.IN, package_sha256=sent["sha256"])
    assert original.state is ExchangeState.RECALLED and original.reason == "Ban hành nhầm"
