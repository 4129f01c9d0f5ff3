"""The public CA page: anyone, without logging in, finds the chain with fingerprints to
compare, the CRL / OCSP / TSA addresses, and how to install the root on their computer."""

from __future__ import annotations

import hashlib
import re

from cryptography import x509

from kyso.store.models import IdentityRole


def test_anyone_reads_the_chain_addresses_and_install_steps(web, instance) -> None:
    page = web.get("/about-ca")
    assert page.status_code == 200
    text = page.text
    authority = instance.ctx.authority
    root = authority.identity(IdentityRole.ROOT)
    issuing = authority.identity(IdentityRole.ISSUING)
    for url in (
        authority.crl_url(issuing.id),
        authority.crl_url(issuing.id, delta=True),
        authority.crl_url(root.id),
        authority.ocsp_url,
        f"{instance.ctx.settings.base_url}/tsa",
    ):
        assert url in text, url
    fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(root.der).digest())
    assert fingerprint in text
    assert "Cách cài đặt chứng thư gốc" in text
    for step in (
        "certmgr.msc",
        "Trusted Root Certification Authorities",
        "Keychain Access",
        "Firefox",
        "Adobe",
        "update-ca-certificates",
    ):
        assert step in text, step
    assert "Đăng nhập" in text  # anonymous: the header offers the login, no one's name


def test_the_download_links_serve_the_certificates_shown(web, instance) -> None:
    text = web.get("/about-ca").text
    links = re.findall(r'href="(/ca/\d+\.crt)"', text)
    assert len(set(links)) == 2
    shown = set(re.findall(r"<code>((?:[0-9A-F]{2}:){31}[0-9A-F]{2})</code>", text))
    for link in set(links):
        reply = web.get(link)
        assert reply.status_code == 200
        cert = x509.load_der_x509_certificate(reply.content)
        assert ":".join(f"{b:02X}" for b in hashlib.sha256(reply.content).digest()) in shown
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    chain = x509.load_pem_x509_certificates(web.get("/ca/chain.pem").content)
    assert len(chain) == 2
    chain[0].verify_directly_issued_by(chain[1])


def test_the_page_reads_in_english_by_the_switch(web) -> None:
    web.client.cookies.set("kyso_lang", "en")
    page = web.get("/about-ca")
    assert page.status_code == 200 and "How to install the root certificate" in page.text


def test_a_logged_in_visitor_sees_the_same_page(web_for) -> None:
    page = web_for("officer").get("/about-ca")
    assert page.status_code == 200 and "Lý Văn Cán" in page.text
    assert 'name="csrf_token"' in page.text
