"""CSC API v2 beyond v1: the asynchronous authorize (``operationMode`` "A", then
``credentials/authorizeCheck`` while the phone waits) for a system acting for a person, and
``signatures/signDoc``, where kyso itself makes PAdES, XAdES and CAdES with the central key
over documents whose SHA-256 the signer consented to; poppler's ``pdfsig``, ``xmlsec1`` and
``openssl cms`` check the results."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from fixtures.pdf import pki, samples
from signing.test_xades import xmlsec_verify
from sqlalchemy import select
from support.remote import CentralSigner, central_signer
from support.world import World, app_client, make_world

from kyso.remote import approvals, factors
from kyso.store.models import SignApproval
from kyso.trust import trust_context
from kyso.validation.report import Indication
from kyso.validation.verify import verify
from remote.test_csc_api import (
    RSA_ENCRYPTION,
    api_token,
    assert_csc_error,
    authorize_body,
    certificate_of,
    digests,
    sign_hash_body,
    system_client,
    verify_signature,
)

pytestmark = pytest.mark.softhsm

EDXML = (Path(__file__).parent.parent / "fixtures" / "xml" / "edxml-sample.xml").read_bytes()


@pytest.fixture(scope="module")
def world(central_instance):  # type: ignore[no-untyped-def]
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def http(central_instance) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(central_instance, apps)
    for client in apps.values():
        client.__exit__(None, None, None)


def test_a_system_authorizes_asynchronously_and_polls_until_the_phone_approves(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    name = f"Phần mềm một cửa {world.tag}"
    secret = system_client(world, name, keys=[signer.key_id])
    token = http.post(
        "/csc/v2/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": name, "client_secret": secret},
    ).json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    wanted = digests("hồ sơ 1", "hồ sơ 2", "hồ sơ 3")
    started = http.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json=authorize_body(
            "v2", signer.key_id, wanted, None, None, operationMode="A", userID=signer.user.username
        ),
    )
    assert started.status_code == 202, started.text
    request_id = started.json()["requestID"]
    pending = http.post(
        "/csc/v2/credentials/authorizeCheck", headers=headers, json={"requestID": request_id}
    )
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    with world.ctx.db.read() as session:  # the phone lists the system's name and each hash
        (waiting,) = approvals.pending(signer.principal, session)
        assert waiting.public_id == request_id
        assert waiting.requester_name == name and len(waiting.items) == 3
    approvals.approve(
        world.ctx, signer.principal, request_id, factors.PinAndCode(signer.pin, signer.code())
    )
    done = http.post(
        "/csc/v2/credentials/authorizeCheck", headers=headers, json={"requestID": request_id}
    )
    assert done.status_code == 200, done.text
    sad = done.json()["SAD"]
    assert_csc_error(  # the SAD is handed out once
        http.post(
            "/csc/v2/credentials/authorizeCheck", headers=headers, json={"requestID": request_id}
        ),
        400,
        "invalid_request",
    )
    body = sign_hash_body("v2", signer.key_id, sad, wanted, RSA_ENCRYPTION)
    assert_csc_error(  # the system names the person it signs for
        http.post("/csc/v2/signatures/signHash", headers=headers, json=body),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter userID",
    )
    signed = http.post(
        "/csc/v2/signatures/signHash",
        headers=headers,
        json={**body, "userID": signer.user.username},
    )
    assert signed.status_code == 200, signed.text
    cert = certificate_of(world, signer)
    for signature, digest in zip(signed.json()["signatures"], wanted, strict=True):
        verify_signature(cert, base64.b64decode(signature), digest)
    with world.ctx.db.read() as session:
        requester = session.scalars(
            select(SignApproval.requester).where(SignApproval.public_id == request_id)
        ).one()
    assert requester == f"api:{name}"


def test_a_refused_asynchronous_request_answers_access_denied(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    started = http.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json=authorize_body("v2", signer.key_id, digests("không"), None, None, operationMode="A"),
    )
    request_id = started.json()["requestID"]
    with world.ctx.db.session() as session:
        approvals.refuse(signer.principal, session, request_id, "Sai nội dung")
    assert_csc_error(
        http.post(
            "/csc/v2/credentials/authorizeCheck", headers=headers, json={"requestID": request_id}
        ),
        400,
        "access_denied",
    )


def _sign_documents(
    http: TestClient,
    world: World,
    signer: CentralSigner,
    documents: list[tuple[bytes, str, str]],
) -> dict[str, list[str]]:
    """Consent over the documents' SHA-256 (PIN + OTP), then signDoc."""
    headers = api_token(world, signer)
    wanted = [base64.b64encode(hashlib.sha256(d).digest()).decode() for d, _f, _l in documents]
    authorized = http.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json=authorize_body("v2", signer.key_id, wanted, signer.pin, signer.code()),
    )
    assert authorized.status_code == 200, authorized.text
    body = {
        "credentialID": signer.key_id,
        "SAD": authorized.json()["SAD"],
        "documents": [
            {
                "document": base64.b64encode(d).decode(),
                "signature_format": form,
                "conformance_level": level,
                "signAlgo": RSA_ENCRYPTION,
            }
            for d, form, level in documents
        ],
    }
    signed = http.post("/csc/v2/signatures/signDoc", headers=headers, json=body)
    assert signed.status_code == 200, signed.text
    replay = http.post("/csc/v2/signatures/signDoc", headers=headers, json=body)
    assert_csc_error(replay, 400, "invalid_request", "Invalid SAD")
    return signed.json()  # type: ignore[no-any-return]


def test_sign_doc_makes_pades_that_pdfsig_and_kyso_accept(
    http: TestClient, world: World, tmp_path: Path
) -> None:
    signer = central_signer(world)
    pdf = samples.official_document()
    result = _sign_documents(http, world, signer, [(pdf, "P", "Ades-B-T")])
    (signed_b64,) = result["DocumentWithSignature"]
    signed = base64.b64decode(signed_b64)
    report = verify(signed, trust_context(world.ctx), name="signdoc.pdf")
    assert report.indication is Indication.TOTAL_PASSED, report.signatures[0].message_en
    assert report.signatures[0].timestamp_time is not None  # B-T: kyso's TSA
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    nss = pki.nss_db(tmp_path / "nss", pki.root_pem(world.ctx))
    results = [r for r in pki.pdfsig(path, nss) if not r.field.startswith("Timestamp")]
    assert [r.signature for r in results] == ["Signature is Valid."]


def _chain_files(world: World, directory: Path) -> dict[str, Path]:
    issuing, root = world.ctx.authority.chain()
    files = {"issuing": directory / "issuing.pem", "root": directory / "root.pem"}
    files["issuing"].write_bytes(issuing.certificate.public_bytes(Encoding.PEM))
    files["root"].write_bytes(root.certificate.public_bytes(Encoding.PEM))
    return files


def test_sign_doc_makes_xades_that_xmlsec1_verifies_and_cades_that_openssl_verifies(
    http: TestClient, world: World, tmp_path: Path
) -> None:
    signer = central_signer(world)
    text = b"Bao cao so 12/BC-UBND"
    result = _sign_documents(
        http, world, signer, [(EDXML, "X", "Ades-B-B"), (text, "C", "Ades-B-B")]
    )
    files = _chain_files(world, tmp_path)
    (xml_b64,) = result["DocumentWithSignature"]
    checked = xmlsec_verify(base64.b64decode(xml_b64), files, tmp_path)
    assert checked.returncode == 0 and "OK" in checked.stdout + checked.stderr, checked.stderr
    (cms_b64,) = result["SignatureObject"]
    (tmp_path / "doc.txt").write_bytes(text)
    (tmp_path / "doc.p7s").write_bytes(base64.b64decode(cms_b64))
    (tmp_path / "chain.pem").write_bytes(files["issuing"].read_bytes())
    openssl = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "doc.p7s"),
            "-content",
            str(tmp_path / "doc.txt"),
            "-CAfile",
            str(files["root"]),
            "-certfile",
            str(tmp_path / "chain.pem"),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert openssl.returncode == 0, openssl.stderr


def test_sign_doc_refuses_a_document_other_than_the_one_consented_to(
    http: TestClient, world: World
) -> None:
    signer = central_signer(world)
    headers = api_token(world, signer)
    pdf = samples.official_document()
    consented = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
    sad = http.post(
        "/csc/v2/credentials/authorize",
        headers=headers,
        json=authorize_body("v2", signer.key_id, [consented], signer.pin, signer.code()),
    ).json()["SAD"]
    other = samples.change_text(pdf)
    answer = http.post(
        "/csc/v2/signatures/signDoc",
        headers=headers,
        json={
            "credentialID": signer.key_id,
            "SAD": sad,
            "documents": [{"document": base64.b64encode(other).decode(), "signature_format": "P"}],
        },
    )
    assert_csc_error(answer, 400, "invalid_request", "Invalid SAD")
