"""``/metrics``: what kyso did, in Prometheus' text format, for allowed addresses only.

Requests are counted under their route template (a client walking through serials adds no
series); certificates, status changes, signatures, OCSP answers (pre-signed or signed on the
spot), validations and key-store errors are counted where the work is done; several worker
processes answer with their sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kyso.errors import KeyStoreError
from kyso.keys.factory import open_keystore
from kyso.pki import issuance, status
from kyso.pki.names import parse_subject
from kyso.registry.access import cli_principal
from kyso.settings import Settings
from kyso.signing.service import audit_signature
from kyso.store.models import IdentityRole, Profile, RevocationReason
from kyso.web.app import create_app
from kyso.web.ops_routes import allow_list, allowed
from observability import serving

LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def app(instance: Instance) -> Iterator[FastAPI]:
    made = create_app(Settings.from_env(instance.env), scheduler=False)
    yield made
    made.state.signing_pool.close()
    made.state.context.close()


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_under_route_templates_never_raw_paths(app: FastAPI) -> None:
    serials = [secrets.token_hex(16) for _ in range(3)]
    with TestClient(app, client=LOCAL) as client:
        for serial in serials:
            client.get(f"/api/v1/certificates/{serial}")
            client.get(f"/khong-co-trang-nay/{serial}")
        assert client.get("/ca/chain.pem").status_code == 200
        client.get("/static/khong-co.css")
        scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(scraped.text)
    requests = {
        (labels["route"], labels["method"], labels["status"])
        for name, labels, _ in samples
        if name == "kyso_http_requests_total"
    }
    assert ("/api/v1/certificates/{serial}", "GET", "4xx") in requests
    assert ("/ca/chain.pem", "GET", "2xx") in requests
    assert ("<unmatched>", "GET", "4xx") in requests
    assert ("/static/{path}", "GET", "4xx") in requests
    assert any(
        name == "kyso_http_request_duration_seconds_bucket"
        and labels["route"] == "/api/v1/certificates/{serial}"
        for name, labels, _ in samples
    )
    for serial in serials:
        assert serial not in scraped.text
    assert any(n == "kyso_signature_approvals_waiting" for n, _, _ in samples)  # a DB count
    assert any(n == "kyso_validation_workers" for n, _, _ in samples)


def test_metrics_answer_404_to_addresses_outside_the_allow_list(
    instance: Instance, app: FastAPI
) -> None:
    with TestClient(app, client=("203.0.113.7", 40000)) as outsider:
        refused = outsider.get("/metrics")
        assert refused.status_code == 404
        assert "kyso_" not in refused.text
    with TestClient(app, client=("::1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
    network = create_app(
        Settings.from_env({**instance.env, "KYSO_METRICS_ALLOW": "10.0.0.0/8"}), scheduler=False
    )
    try:
        with TestClient(network, client=("10.20.30.40", 40000)) as inside:
            assert inside.get("/metrics").status_code == 200
        with TestClient(network, client=LOCAL) as here:
            assert here.get("/metrics").status_code == 404  # not in the list any more
    finally:
        network.state.signing_pool.close()
        network.state.context.close()


def test_the_allow_list_reads_addresses_and_networks_and_refuses_a_typo() -> None:
    networks = allow_list("127.0.0.1, ::1,192.168.10.0/24")
    assert allowed("127.0.0.1", networks)
    assert allowed("::ffff:127.0.0.1", networks)  # IPv4 on a dual-stack socket
    assert allowed("192.168.10.77", networks)
    assert not allowed("192.168.11.1", networks)
    assert not allowed("testclient", networks)
    assert not allowed(None, networks)
    with pytest.raises(ValueError, match="KYSO_METRICS_ALLOW"):
        allow_list("127.0.0.1,localhostt")


def _issue(instance: Instance) -> issuance.Issued:
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject("CN=Lý Thị Hồng,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with instance.ctx.db.session() as session:
        return issuance.issue(session, instance.ctx.authority, spec, "test")


def _ocsp_request(instance: Instance, cert: x509.Certificate, *, nonce: bool) -> bytes:
    issuer = instance.ctx.authority.identity(IdentityRole.ISSUING).certificate
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_issuance_status_changes_and_ocsp_answers_are_counted(
    instance: Instance, app: FastAPI
) -> None:
    issued_before = _value("kyso_certificates_issued_total", profile="individual")
    issued = _issue(instance)
    assert _value("kyso_certificates_issued_total", profile="individual") == issued_before + 1

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), instance.ctx.db.session() as session:  # rolled back
        spec = issuance.IssueSpec(
            Profile.INDIVIDUAL,
            parse_subject("CN=Không Lưu,O=UBND tỉnh Bắc Kạn,C=VN"),
            ec.generate_private_key(ec.SECP256R1()).public_key(),
        )
        issuance.issue(session, instance.ctx.authority, spec, "test")
        raise Abandoned
    assert _value("kyso_certificates_issued_total", profile="individual") == issued_before + 1

    presigned = _value("kyso_ocsp_responses_total", source="presigned")
    signed = _value("kyso_ocsp_responses_total", source="signed")
    refused = _value("kyso_ocsp_responses_total", source="refused")
    with TestClient(app, client=LOCAL) as client:
        headers = {"content-type": "application/ocsp-request"}
        for _ in range(2):
            plain = _ocsp_request(instance, issued.certificate, nonce=False)
            assert client.post("/ocsp", content=plain, headers=headers).status_code == 200
        with_nonce = _ocsp_request(instance, issued.certificate, nonce=True)
        assert client.post("/ocsp", content=with_nonce, headers=headers).status_code == 200
        client.post("/ocsp", content=b"not an OCSP request", headers=headers)
    # the first plain request has its answer signed and stored; the second is served stored
    assert _value("kyso_ocsp_responses_total", source="presigned") == presigned + 1
    assert _value("kyso_ocsp_responses_total", source="signed") == signed + 2  # and the nonce
    assert _value("kyso_ocsp_responses_total", source="refused") == refused + 1
    assert _value("kyso_http_requests_total", route="/ocsp", method="POST", status="2xx") >= 4

    revoked = _value("kyso_certificate_status_changes_total", change="revoked")
    with instance.ctx.db.session() as session:
        status.revoke(
            session, instance.ctx.authority, issued.serial, RevocationReason.SUPERSEDED, "test"
        )
    assert _value("kyso_certificate_status_changes_total", change="revoked") == revoked + 1


def test_signatures_validations_and_key_store_errors_are_counted(
    instance: Instance, app: FastAPI, tmp_path: Path
) -> None:
    made = _value("kyso_signatures_total", kind="cades", entry="cli")
    audit_signature(
        instance.ctx,
        cli_principal("test"),
        key="software:test",
        serial="00",
        kind="cades",
        entry="cli",
        content=b"van ban",
        signed=b"chu ky",
    )
    assert _value("kyso_signatures_total", kind="cades", entry="cli") == made + 1

    refused = _value("kyso_validations_total", outcome="refused")
    with TestClient(app, client=LOCAL) as client:
        answer = client.post(
            "/api/v1/verify", files={"file": ("thu.pdf", b"%PDF-1.7 not really", "application/pdf")}
        )
        assert answer.status_code in (400, 422)
        scraped = client.get("/metrics").text
    assert _value("kyso_validations_total", outcome="refused") == refused + 1
    assert 'kyso_validation_workers{state="idle"}' in scraped

    errors = _value("kyso_keystore_errors_total", code="keystore_error")
    broken = Settings.from_env(
        {
            **instance.env,
            "KYSO_KEYSTORE": "pkcs11",
            "KYSO_PKCS11_MODULE": str(tmp_path / "missing.so"),
            "KYSO_PKCS11_PIN": "0000",
        }
    )
    with pytest.raises(KeyStoreError):
        open_keystore(broken)
    assert _value("kyso_keystore_errors_total", code="keystore_error") == errors + 1


@pytest.mark.slow
def test_several_worker_processes_answer_with_their_sum(
    sqlite_instance: Instance, tmp_path: Path
) -> None:
    """``--workers 2`` with PROMETHEUS_MULTIPROC_DIR: whichever worker answers the scrape,
    the count is every worker's; and of the two, one leads the scheduled work (flock)."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        **sqlite_instance.env,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "KYSO_LOOP_SECONDS": "1",
    }
    with serving.serving(env, tmp_path / "server.log", "--workers", "2") as url:
        before = _http_total(url, "/livez")
        for _ in range(40):
            with httpx.Client() as client:  # a new connection each time: both workers answer
                assert client.get(f"{url}/livez").status_code == 200
        assert _http_total(url, "/livez") == before + 40
        time.sleep(2.5)
        leaders = [
            value
            for name, _, value in _samples(httpx.get(f"{url}/metrics").text)
            if name == "kyso_scheduled_leader"
        ]
        assert sum(leaders) == 1
    assert len({p.name.rsplit("_", 1)[-1] for p in shared.glob("counter_*.db")}) >= 2


def _http_total(url: str, route: str) -> float:
    return sum(
        value
        for name, labels, value in _samples(httpx.get(f"{url}/metrics").text)
        if name == "kyso_http_requests_total" and labels.get("route") == route
    )
