"""The CSC API over real HTTP (kyso under uvicorn in a subprocess, the central HSM in
SoftHSM2): pyHanko's own CSC v1 client (``CSCSigner``, over aiohttp) signs a PDF with a
central key, consent given with PIN + OTP in the request or on the phone while the v1
``credentials/authorize`` waits; poppler's ``pdfsig`` and kyso's validator accept the result.
Then two kyso processes on one PostgreSQL database honour a SAD once between them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from conftest import Instance, Server, _serve
from fixtures.pdf import pki, samples
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from support.remote import CentralSigner, central_signer
from support.world import World, make_world

from kyso.remote import approvals, factors
from kyso.trust import trust_context
from kyso.validation.report import Indication
from kyso.validation.verify import verify
from remote.test_csc_api import api_token, authorize_body, digests, sign_hash_body

pytestmark = [pytest.mark.softhsm, pytest.mark.interop]


@pytest.fixture(scope="module")
def world(central_instance: Instance) -> World:
    return make_world(central_instance.ctx, central_instance.backend)


def _serving(instance: Instance, log_dir: Path, **env: str) -> Iterator[Server]:
    """kyso over HTTP on ``instance``'s database and central HSM, with ``env`` added."""
    yield from _serve(Instance(instance.ctx, {**instance.env, **env}, instance.backend), log_dir)


@pytest.fixture(scope="module")
def csc_server(
    central_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serving(central_instance, tmp_path_factory.mktemp("csc-server"))


class _Authorization(CSCAuthorizationManager):
    """``credentials/authorize`` as a client application calls it: with the signer's PIN and
    the code of their authenticator app, or with neither (then the phone approves)."""

    def __init__(
        self,
        session_info: CSCServiceSessionInfo,
        credential: CSCCredentialInfo,
        http: aiohttp.ClientSession,
        factors_: tuple[str, str] | None,
    ) -> None:
        super().__init__(session_info, credential)
        self.http = http
        self.factors = factors_

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        pin, otp = self.factors if self.factors else (None, None)
        body = self.format_csc_auth_request(pin=pin, otp=otp, hash_b64s=hash_b64s)
        async with self.http.post(
            self.csc_session_info.endpoint_url("credentials/authorize"),
            headers=self.auth_headers,
            json=body,
            raise_for_status=True,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response:
            return self.parse_csc_auth_response(await response.json())


async def _pyhanko_sign(
    url: str, token: str, key_id: str, pdf: bytes, factors_: tuple[str, str] | None
) -> bytes:
    async with aiohttp.ClientSession() as http:
        info = CSCServiceSessionInfo(url, key_id, oauth_token=token, api_ver="v1")
        credential = await fetch_certs_in_csc_credential(http, info)
        assert credential.hash_pinning_required  # SCAL 2
        signer = CSCSigner(http, _Authorization(info, credential, http, factors_))
        signed = await signers.async_sign_pdf(
            IncrementalPdfFileWriter(BytesIO(pdf)),
            signers.PdfSignatureMetadata(field_name="KysoCSC", md_algorithm="sha256"),
            signer=signer,
        )
        return signed.getvalue()


def _accepted_by_pdfsig_and_kyso(world: World, signed: bytes, tmp_path: Path) -> None:
    report = verify(signed, trust_context(world.ctx), name="csc.pdf")
    assert report.indication is Indication.TOTAL_PASSED, report.signatures[0].message_en
    if not pki.have_poppler():
        pytest.skip("poppler's pdfsig is not installed")
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    nss = pki.nss_db(tmp_path / "nss", pki.root_pem(world.ctx))
    results = pki.pdfsig(path, nss)
    assert [r.signature for r in results] == ["Signature is Valid."]


def test_pyhanko_signs_a_pdf_through_kyso_with_pin_and_otp(
    csc_server: Server, world: World, tmp_path: Path
) -> None:
    signer = central_signer(world)
    token = api_token(world, signer)["authorization"].removeprefix("Bearer ")
    signed = asyncio.run(
        _pyhanko_sign(
            csc_server.url,
            token,
            signer.key_id,
            samples.official_document(),
            (signer.pin, signer.code()),
        )
    )
    _accepted_by_pdfsig_and_kyso(world, signed, tmp_path)


def _approve_when_asked(world: World, signer: CentralSigner, seen: list[Any]) -> None:
    """The phone: wait for the request, read what it lists, approve with PIN + TOTP."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with world.ctx.db.read() as session:
            waiting = approvals.pending(signer.principal, session)
            listed = [(a.public_id, a.requester_name, len(a.items)) for a in waiting]
        if listed:
            seen.extend(listed)
            approvals.approve(
                world.ctx,
                signer.principal,
                listed[0][0],
                factors.PinAndCode(signer.pin, signer.code()),
            )
            return
        time.sleep(0.2)


def test_pyhanko_waits_while_the_signer_approves_on_the_phone(
    csc_server: Server, world: World, tmp_path: Path
) -> None:
    signer = central_signer(world)
    token = api_token(world, signer)["authorization"].removeprefix("Bearer ")
    seen: list[Any] = []
    phone = threading.Thread(target=_approve_when_asked, args=(world, signer, seen))
    phone.start()
    try:
        signed = asyncio.run(
            _pyhanko_sign(csc_server.url, token, signer.key_id, samples.official_document(), None)
        )
    finally:
        phone.join(70)
    assert [(name, count) for _id, name, count in seen] == [("CSC API", 1)]
    _accepted_by_pdfsig_and_kyso(world, signed, tmp_path)


def test_the_v1_authorize_answers_refused_when_the_signer_refuses(
    csc_server: Server, world: World
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)

    def refuse() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with world.ctx.db.session() as session:
                waiting = approvals.pending(signer.principal, session)
                if waiting:
                    approvals.refuse(signer.principal, session, waiting[0].public_id, "Không ký")
                    return
            time.sleep(0.2)

    phone = threading.Thread(target=refuse)
    phone.start()
    answer = httpx.post(
        f"{csc_server.url}/csc/v1/credentials/authorize",
        headers=headers,
        json=authorize_body("v1", signer.key_id, digests("từ chối"), None, None),
        timeout=120,
    )
    phone.join(70)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "access_denied"


@pytest.fixture(scope="module")
def second_server(
    central_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if central_instance.backend != "postgres":
        pytest.skip("two kyso processes share a PostgreSQL database")
    yield from _serving(central_instance, tmp_path_factory.mktemp("csc-server-2"))


@pytest.mark.postgres
def test_two_processes_on_one_database_honour_a_sad_once(
    csc_server: Server, second_server: Server, world: World
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    wanted = digests("một lần", "hai nơi")
    authorized = httpx.post(  # made through the second process…
        f"{second_server.url}/csc/v1/credentials/authorize",
        headers=headers,
        json=authorize_body("v1", signer.key_id, wanted, signer.pin, signer.code()),
        timeout=60,
    )
    assert authorized.status_code == 200, authorized.text
    sad = authorized.json()["SAD"]
    body = sign_hash_body("v1", signer.key_id, sad, wanted)
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def send(url: str) -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            answers[url] = client.post(
                f"{url}/csc/v1/signatures/signHash", headers=headers, json=body
            )

    threads = [threading.Thread(target=send, args=(s.url,)) for s in (csc_server, second_server)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200, 400], [a.text for a in answers.values()]
    refused = next(a for a in answers.values() if a.status_code == 400)
    assert refused.json() == {"error": "invalid_request", "error_description": "Invalid SAD"}
    for server in (csc_server, second_server):  # …and neither honours it again
        again = httpx.post(
            f"{server.url}/csc/v1/signatures/signHash", headers=headers, json=body, timeout=60
        )
        assert again.status_code == 400 and again.json()["error_description"] == "Invalid SAD"
