"""Signed official e-mail: S/MIME ``multipart/signed`` (RFC 8551 §3.5.3, RFC 1847).

The message's body part — its ``Content-*`` headers and body — becomes the first part and is
what is signed, in canonical form (CRLF line ends, 7-bit transfer encoding, RFC 8551
§3.1.1-3.1.2); the routing headers (From, To, Cc, Subject, Date, Message-ID, ...) stay on the
outer message, unsigned, as mail systems rewrite them. The second part is a detached CAdES
signature (``application/pkcs7-signature``, B-B, or B-T with a time-stamper) made through
:func:`kyso.signing.cades.sign_cms`, so the key may be in an HSM. ``micalg`` names the
digest (``sha-256`` for RSA-2048/3072 and P-256 keys).
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
import secrets
from email import encoders

from pyhanko.sign.timestamps import TimeStamper

from kyso.formats.mime import NEWLINE, not_email, split_message
from kyso.signing.cades import sign_cms
from kyso.signing.identity import SignerIdentity
from kyso.signing.timestamps import Level

__all__ = ["micalg", "sign_email"]

_EIGHT_BIT = re.compile(rb"[\x00\x80-\xff]")
_LONG_LINE = re.compile(rb"[^\r\n]{999}")  # RFC 5322 §2.1.1: at most 998 octets a line

#: RFC 8551 §3.5.3.2 micalg names.
_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}


def micalg(digest_algorithm: str) -> str:
    return _MICALG.get(digest_algorithm.replace("-", "").lower(), digest_algorithm)


def _canonical(data: bytes) -> bytes:
    return NEWLINE.sub(b"\r\n", data)


def _needs_encoding(entity: bytes) -> bool:
    """RFC 8551 §3.1.2: signed content must be 7-bit clean (mail relays rewrite 8-bit)."""
    return _EIGHT_BIT.search(entity) is not None or _LONG_LINE.search(entity) is not None


def _seven_bit(entity: bytes) -> bytes:
    """Re-encode 8-bit leaf parts: quoted-printable for text, base64 otherwise."""
    message = email.message_from_bytes(entity, policy=email.policy.compat32)
    for part in message.walk():
        if part.is_multipart():
            continue
        encoding = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
        if encoding in ("base64", "quoted-printable"):
            continue
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if "Content-Transfer-Encoding" in part:
            del part["Content-Transfer-Encoding"]
        if part.get_content_maintype() == "text":
            # Spaces stay readable (email.encoders.encode_quopri would write each as =20).
            text = quopri.encodestring(payload.replace(b"\r\n", b"\n"), quotetabs=False)
            part.set_payload(text.decode("ascii"))
            part["Content-Transfer-Encoding"] = "quoted-printable"
        else:
            part.set_payload(payload)
            encoders.encode_base64(part)
    return _canonical(message.as_bytes(policy=email.policy.SMTP))


def _body_entity(fields: list[tuple[str, bytes]], body: bytes) -> bytes:
    content = [raw for name, raw in fields if name.startswith("content-")]
    if not any(raw.lower().startswith(b"content-type:") for raw in content):
        charset = b"us-ascii"
        if any(b >= 0x80 for b in body):
            try:
                body.decode("utf-8")
                charset = b"utf-8"
            except UnicodeDecodeError:
                charset = b"iso-8859-1"
        content.insert(0, b"Content-Type: text/plain; charset=" + charset + b"\r\n")
    entity = _canonical(b"".join(content) + b"\r\n" + body)
    return _seven_bit(entity) if _needs_encoding(entity) else entity


def sign_email(
    eml: bytes,
    identity: SignerIdentity,
    *,
    timestamper: TimeStamper | None = None,
) -> bytes:
    """``eml`` as S/MIME ``multipart/signed`` (CRLF line ends throughout).

    The signed part is the body with its Content-* headers; From/To/Subject/Date and the
    other routing headers stay outside. With ``timestamper`` the signature is CAdES B-T.
    """
    fields, body = split_message(eml)
    if not any(name == "from" for name, _ in fields):
        raise not_email("there is no From header")
    entity = _body_entity(fields, body)
    signature = sign_cms(
        entity,
        identity,
        level=Level.B_T if timestamper is not None else Level.B_B,
        timestamper=timestamper,
        detached=True,
    )
    boundary = f"----=_kyso_{secrets.token_hex(16)}"
    while boundary.encode() in entity:  # pragma: no cover - 128 random bits
        boundary = f"----=_kyso_{secrets.token_hex(16)}"
    outer = [
        raw for name, raw in fields if not name.startswith("content-") and name != "mime-version"
    ]
    encoded = base64.encodebytes(signature).rstrip(b"\n").replace(b"\n", b"\r\n")
    parts = [
        *outer,
        b"MIME-Version: 1.0\r\n",
        (
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
            f'\tmicalg={micalg(identity.digest_algorithm)}; boundary="{boundary}"\r\n'
        ).encode(),
        b"\r\n",
        b"This is a digitally signed message (S/MIME). Thu nay co chu ky so (S/MIME).\r\n",
        b"\r\n",
        f"--{boundary}\r\n".encode(),
        entity,
        f"\r\n--{boundary}\r\n".encode(),
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n',
        b"Content-Transfer-Encoding: base64\r\n",
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n',
        b"Content-Description: S/MIME Cryptographic Signature\r\n",
        b"\r\n",
        encoded,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
