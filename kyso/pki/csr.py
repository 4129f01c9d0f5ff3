"""Reading PKCS#10 requests the way a CA must: signature checked, key strength checked."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from kyso.errors import MalformedCSR, TooLarge
from kyso.keys.base import KeyAlgorithm

MAX_CSR_BYTES = 64 * 1024


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """PEM or DER; refuses garbage, truncation, bad signatures and weak keys with a clear error."""
    if len(data) > MAX_CSR_BYTES:
        raise TooLarge(
            f"CSR over {MAX_CSR_BYTES // 1024} KiB", vi=f"CSR quá {MAX_CSR_BYTES // 1024} KiB"
        )
    stripped = data.strip()
    if not stripped:
        raise MalformedCSR("empty", vi="trống")
    try:
        if stripped.startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(stripped)
        else:
            csr = x509.load_der_x509_csr(stripped)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedCSR("not a PKCS#10 request", vi="không phải yêu cầu PKCS#10") from exc
    try:
        public_key = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedCSR(
            "unsupported key or signature", vi="khóa hoặc chữ ký không hỗ trợ"
        ) from exc
    if not valid:
        raise MalformedCSR(
            "the request's signature does not match its key",
            vi="chữ ký của yêu cầu không khớp với khóa",
        )
    KeyAlgorithm.of_public_key(public_key)  # raises WeakKeyError
    return csr
