"""PAdES signing (ETSI EN 319 142-1 baseline B-B, B-T, B-LT, B-LTA) with kyso's key stores.

Every signature is an incremental update, so earlier signatures stay valid: approval, then
issuing, then attachment signatures can follow each other on one document. B-T and above
carry a signature time-stamp from kyso's own TSA (in process) unless another time-stamper is
given; B-LT adds the revocation evidence kyso's CA makes for the chain into the document
security store (DSS); B-LTA then adds a document time-stamp over it.

The visible forms of Decree 30/2020 Annex I come from :mod:`kyso.signing.stamps`, placed by
:mod:`kyso.signing.placement`.

Performance (PERFORMANCE.md): keys are never (re)loaded here — ``KeyStoreSigner`` signs
through the key store, which keeps keys loaded — and the space for the signature is computed
once per signer and time-stamper and then reused, instead of pyHanko's dry-run estimate with
a 50 % margin on every signature (an oversized reservation also slows validation).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import weakref

from asn1crypto import cms
from cryptography import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields
from pyhanko.sign.attributes import CMSAttributeProvider
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from kyso import clock
from kyso.errors import InvalidInput, KysoError
from kyso.formats.pdf import InvalidPdf, PdfTooLarge, check_pdf_bytes
from kyso.pki.tsa import TimeStampAuthority
from kyso.signing import placement as placement_mod
from kyso.signing import stamps
from kyso.signing.identity import KeyStoreSigner, SignerIdentity
from kyso.signing.stamps import Appearance, StampKind
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.trust import TrustContext

log = logging.getLogger(__name__)

__all__ = [
    "Appearance",
    "InvalidPdf",
    "Level",
    "PdfTooLarge",
    "SignerNotUsable",
    "open_pdf",
    "sign_pdf",
]

# Extra room over the computed size of the CMS (hex digits): time-stamp tokens differ by a few
# bytes (nonce, serial), ECDSA signatures by one or two.
_RESERVE_MARGIN = 512


class SignerNotUsable(InvalidInput):
    code = "signer_not_usable"
    message_vi = "Chứng thư của người ký không dùng để ký được lúc này."
    message_en = "The signer's certificate cannot be used to sign now."


def open_pdf(data: bytes, *, for_signing: bool = True) -> IncrementalPdfFileWriter:
    """An incremental writer over ``data`` (its ``prev`` is the reader), or ``InvalidPdf``."""
    check_pdf_bytes(data)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=True)
        reader = writer.prev
        if reader.encrypted and for_signing:
            raise InvalidPdf(
                "the PDF is encrypted; remove its password before signing",
                vi="tệp PDF có mật khẩu; hãy gỡ mật khẩu trước khi ký",
            )
        _ = reader.root["/Pages"]["/Count"]
    except KysoError:
        raise
    except (
        PdfError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        NotImplementedError,
        RecursionError,
        OverflowError,
        EOFError,
    ) as exc:
        raise InvalidPdf("the PDF cannot be read", vi="không đọc được tệp PDF") from exc
    return writer


# -- caches ---------------------------------------------------------------------------------


class _LoadedAttribute(CMSAttributeProvider):
    """An attribute provider handing pyHanko its attribute parsed back from DER.

    pyHanko builds attributes such as signing-certificate-v2 and CMS algorithm protection
    as constructed asn1crypto trees. asn1crypto fills ESSCertIDv2's DEFAULT hashAlgorithm
    (and other SHA-2 AlgorithmIdentifiers) with a forced NULL parameter, which marks the tree
    "mutated" for good, and it then re-encodes such a tree on every dump of every ancestor,
    several times per level: with pyHanko's SimpleSigner a one-page PDF costs ~0.3 s to sign
    here, most of it there. A loaded value dumps the bytes it was loaded from. Attributes that
    do not change from one signature to the next (signing certificate, algorithm protection)
    are built once per signer."""

    _CONSTANT = frozenset({"signing_certificate_v2", "cms_algorithm_protection"})

    def __init__(
        self, inner: CMSAttributeProvider, cache: dict[tuple, cms.CMSAttribute], key: tuple
    ) -> None:
        self.inner = inner
        self.attribute_type = inner.attribute_type
        self._cache = cache
        self._key = (inner.attribute_type, *key)

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute | None:
        constant = self.attribute_type in self._CONSTANT
        if constant and self._key in self._cache:
            return self._cache[self._key]
        attribute = await self.inner.get_attribute(dry_run=dry_run)
        if attribute is None:
            return None
        loaded = cms.CMSAttribute.load(attribute.dump())
        if constant:
            self._cache[self._key] = loaded
        return loaded

    async def build_attr_value(self, dry_run: bool = False):
        return await self.inner.build_attr_value(dry_run=dry_run)


class _PadesSigner(KeyStoreSigner):
    """``KeyStoreSigner`` handing its signed attributes to pyHanko as loaded values."""

    def __init__(self, identity: SignerIdentity) -> None:
        super().__init__(identity)
        self._attribute_cache: dict[tuple, cms.CMSAttribute] = {}

    def _signed_attr_providers(self, data_digest, digest_algorithm, *args, **kwargs):
        # pyHanko internal API (0.14+), documented there as such.
        for provider in super()._signed_attr_providers(
            data_digest, digest_algorithm, *args, **kwargs
        ):
            yield _LoadedAttribute(provider, self._attribute_cache, (digest_algorithm,))


class _ClockedPdfSigner(PdfSigner):
    """pyHanko's signer with the signing time read from kyso's clock (pyHanko reads the
    system clock), so the claimed time agrees with the TSA, the CA and the tests' clock."""

    def init_signing_session(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        session = super().init_signing_session(*args, **kwargs)
        session.system_time = clock.precise()
        return session


_signers: dict[int, KeyStoreSigner] = {}
_timestampers: weakref.WeakKeyDictionary[TimeStampAuthority, TimeStamper] = (
    weakref.WeakKeyDictionary()
)
_wrapped: weakref.WeakKeyDictionary[TimeStamper, TimeStamper] = weakref.WeakKeyDictionary()
_reserved: dict[tuple[str, str, int], int] = {}


def _signer(identity: SignerIdentity) -> KeyStoreSigner:
    """One pyHanko signer per identity object, kept while the identity lives."""
    key = id(identity)
    signer = _signers.get(key)
    if signer is None or signer.identity is not identity:
        signer = _PadesSigner(identity)
        _signers[key] = signer
        weakref.finalize(identity, _signers.pop, key, None)
    return signer


class _FrozenToken(cms.ContentInfo):
    """A time-stamp token that always dumps as the bytes it was loaded from.

    asn1crypto 1.5 takes any header whose last byte is 0x80 for an indefinite length — a
    definite length of 384, 640, … bytes too — and then re-encodes that value and everything
    under it with ``force``. Under a token that means ESSCertIDv2, whose DEFAULT hashAlgorithm
    asn1crypto rebuilds (and compares) at every level, over and over: depending on the
    random lengths of a signature, one B-T signature in two took 0.5-3 s instead of 30 ms.
    The token's bytes are final (DER from the TSA); nothing needs re-encoding them."""

    def dump(self, force: bool = False) -> bytes:
        return super().dump(force=False)

    def _is_mutated(self) -> bool:
        return False

    def __deepcopy__(self, memo: dict) -> _FrozenToken:
        # pyHanko re-tags the attribute sets it builds, which deep-copies every child; a
        # token is copied as its bytes, parsed again only if someone looks inside.
        return _FrozenToken.load(self.dump())


class _FrozenTokens(TimeStamper):
    """A time-stamper handing pyHanko :class:`_FrozenToken` tokens (see there)."""

    def __init__(self, inner: TimeStamper) -> None:
        super().__init__(include_nonce=inner.include_nonce)
        self.inner = inner

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        token = await self.inner.async_timestamp(message_digest, md_algorithm)
        return _FrozenToken.load(token.dump())


def frozen_tokens(timestamper: TimeStamper) -> TimeStamper:
    """``timestamper`` wrapped so its tokens embed fast; one wrapper per time-stamper, so the
    dummy token pyHanko keeps for size estimates is fetched once."""
    if isinstance(timestamper, _FrozenTokens):
        return timestamper
    wrapper = _wrapped.get(timestamper)
    if wrapper is None:
        wrapper = _FrozenTokens(timestamper)
        _wrapped[timestamper] = wrapper
    return wrapper


def default_timestamper(trust: TrustContext | None) -> TimeStamper:
    """kyso's own TSA, called in process (one pyHanko time-stamper per TSA)."""
    if trust is None or trust.ctx is None:
        raise InvalidInput(
            "B-T and above need a time-stamper or kyso's trust context",
            vi="mức B-T trở lên cần dịch vụ cấp dấu thời gian",
        )
    tsa = trust.ctx.tsa
    stamper = _timestampers.get(tsa)
    if stamper is None:
        stamper = frozen_tokens(InProcessTimeStamper(tsa))
        _timestampers[tsa] = stamper
    return stamper


async def _reserve(signer: KeyStoreSigner, md: str, timestamper: TimeStamper | None) -> int:
    """Bytes (hex digits) to reserve for the CMS: pyHanko's dry-run size, computed once."""
    cert_der = signer.identity.certificate.public_bytes(
        __import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).Encoding.DER
    )
    key = (hashlib.sha256(cert_der).hexdigest(), md, id(timestamper) if timestamper else 0)
    size = _reserved.get(key)
    if size is None:
        dummy = await signer.async_sign(
            hashlib.new(md).digest(),
            md,
            use_pades=True,
            dry_run=True,
            timestamper=timestamper,
            signed_attr_settings=PdfCMSSignedAttributes(signing_time=clock.precise()),
        )
        size = len(dummy.dump()) * 2 + _RESERVE_MARGIN
        _reserved[key] = size
    return size


# -- fields and appearance ------------------------------------------------------------------


def _field_names(writer: IncrementalPdfFileWriter) -> set[str]:
    return {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}


def _new_field_name(writer: IncrementalPdfFileWriter, stem: str) -> str:
    taken = _field_names(writer)
    index = 1
    while f"{stem}-{index}" in taken:
        index += 1
    return f"{stem}-{index}"


def _check_validity(identity: SignerIdentity) -> None:
    now = clock.precise()
    cert = identity.certificate
    if now > cert.not_valid_after_utc:
        raise SignerNotUsable(
            f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            vi=f"chứng thư đã hết hạn ngày {cert.not_valid_after_utc:%d/%m/%Y}",
        )
    if now < cert.not_valid_before_utc:
        raise SignerNotUsable(
            f"the certificate is valid only from {cert.not_valid_before_utc:%Y-%m-%d}",
            vi=f"chứng thư chỉ có hiệu lực từ ngày {cert.not_valid_before_utc:%d/%m/%Y}",
        )


def _prepare_field(
    writer: IncrementalPdfFileWriter, data: bytes, appearance: Appearance | None
) -> tuple[str, fields.SigFieldSpec | None, bool]:
    """(field name, spec of a new field or None, sign into an existing field?)"""
    if appearance is None:
        return _new_field_name(writer, "kyso"), None, False
    appearance.check()
    where = appearance.default_placement()
    resolved = placement_mod.resolve(where, writer.prev, data, stamps.natural_size(appearance))
    if resolved.existing_field is not None:
        return resolved.existing_field, None, True
    box = resolved.box
    if appearance.kind is StampKind.ISSUING:
        box = stamps.issuing_box(appearance, box)
    name = _new_field_name(writer, appearance.kind.value)
    rounded = tuple(round(v, 2) for v in box)
    spec = fields.SigFieldSpec(name, on_page=resolved.page, box=rounded)  # type: ignore[arg-type]
    return name, spec, False


# -- signing --------------------------------------------------------------------------------


def sign_pdf(
    data: bytes,
    identity: SignerIdentity,
    *,
    level: Level = Level.B_B,
    appearance: Appearance | None = None,
    timestamper: TimeStamper | None = None,
    trust: TrustContext | None = None,
    reason: str | None = None,
    location: str | None = None,
) -> bytes:
    """Sign ``data`` (a PDF) as ``identity`` at PAdES ``level``; return the signed PDF.

    ``appearance`` None makes an invisible signature. B-T and above time-stamp with
    ``timestamper``, or kyso's own TSA from ``trust.ctx``; B-LT and B-LTA need ``trust`` for
    the revocation evidence they embed. Raises ``InvalidPdf`` (not a PDF, encrypted,
    truncated, too large), ``InvalidInput`` (an appearance missing something, a placement
    that cannot be found), ``SignerNotUsable`` (expired, or at B-LT not valid now).
    """
    # The coroutine hands back the buffer, not bytes: asyncio.run's teardown was seen to cost
    # ~3x a large result's size in peak memory when the result was the bytes themselves.
    buffer = asyncio.run(
        _sign(
            data,
            identity,
            level=level,
            appearance=appearance,
            timestamper=timestamper,
            trust=trust,
            reason=reason,
            location=location,
        )
    )
    return buffer.getvalue()


async def async_sign_pdf(
    data: bytes,
    identity: SignerIdentity,
    *,
    level: Level = Level.B_B,
    appearance: Appearance | None = None,
    timestamper: TimeStamper | None = None,
    trust: TrustContext | None = None,
    reason: str | None = None,
    location: str | None = None,
) -> bytes:
    """:func:`sign_pdf` for callers already in an event loop."""
    buffer = await _sign(
        data,
        identity,
        level=level,
        appearance=appearance,
        timestamper=timestamper,
        trust=trust,
        reason=reason,
        location=location,
    )
    return buffer.getvalue()


async def _sign(
    data: bytes,
    identity: SignerIdentity,
    *,
    level: Level,
    appearance: Appearance | None,
    timestamper: TimeStamper | None,
    trust: TrustContext | None,
    reason: str | None,
    location: str | None,
) -> io.BytesIO:
    level = Level(level)
    _check_validity(identity)
    writer = open_pdf(data)
    if level.needs_timestamp:
        timestamper = (
            default_timestamper(trust) if timestamper is None else frozen_tokens(timestamper)
        )
    else:
        timestamper = None
    long_term = level in (Level.B_LT, Level.B_LTA)
    validation_context = None
    if long_term:
        if trust is None:
            raise InvalidInput(
                f"{level.value} needs kyso's trust context for revocation evidence",
                vi=f"mức {level.value} cần ngữ cảnh tin cậy để nhúng thông tin thu hồi",
            )
        validation_context = trust.validation_context(for_certs=[identity.certificate])

    try:
        field_name, field_spec, existing = _prepare_field(writer, bytes(data), appearance)
    except KysoError:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise InvalidPdf(
            "the PDF's form fields cannot be read",
            vi="không đọc được các trường biểu mẫu của tệp PDF",
        ) from exc
    signer = _signer(identity)
    md = identity.digest_algorithm
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=md,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        embed_validation_info=long_term,
        use_pades_lta=level is Level.B_LTA,
        validation_context=validation_context,
    )
    pdf_signer = _ClockedPdfSigner(
        meta,
        signer,
        timestamper=timestamper,
        stamp_style=stamps.stamp_style(appearance) if appearance is not None else None,
        new_field_spec=field_spec,
    )
    try:
        reserved = await _reserve(signer, md, timestamper)
        output = await pdf_signer.async_sign_pdf(
            writer, existing_fields_only=existing, bytes_reserved=reserved, in_place=True
        )
    except (PathBuildingError, PathValidationError) as exc:
        raise SignerNotUsable(str(exc), vi="không xác thực được chứng thư người ký") from exc
    except SigningError as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, PathBuildingError | PathValidationError) or "valid" in str(exc):
            raise SignerNotUsable(str(exc), vi="không xác thực được chứng thư người ký") from exc
        raise InvalidPdf(str(exc), vi="không ký được tệp PDF này") from exc
    except PdfError as exc:
        raise InvalidPdf(str(exc), vi="không ký được tệp PDF này") from exc
    except KysoError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
        # A document pyHanko can open but not extend (odd page tree, broken objects).
        log.warning("signing failed", exc_info=True)
        raise InvalidPdf("the PDF cannot be signed", vi="không ký được tệp PDF này") from exc
    return output


# -- archival time-stamps (PAdES B-LTA, kept up by the archive) ---------------------------------
def archive_timestamp(data: bytes, trust: TrustContext) -> bytes:
    """``data`` with the validation data of its signatures (the DSS: certificates, CRLs,
    OCSP answers kyso has for them) and a new document time-stamp over everything (ETSI EN
    319 142-1 B-LTA). Run again before the last time-stamp's TSA certificate expires or its
    algorithms weaken, it keeps the signatures provable (each new time-stamp covers the
    earlier ones and their evidence)."""
    from kyso.coroutines import run_sync

    return run_sync(_archive_timestamp(data, trust))


async def _document_timestamp(
    data: bytes, timestamper: TimeStamper, context: ValidationContext
) -> bytes:
    """A document time-stamp over ``data`` with its TSA's evidence, and no VRI entries (they
    are deprecated in PAdES, and a VRI written twice — as a renewal would — is a change
    pyHanko's rules refuse when revisions are compared one by one, as kyso does)."""
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper, TimestampDSSContentSettings

    stamped = await PdfTimeStamper(timestamper).async_timestamp_pdf(
        open_pdf(data),
        "sha256",
        validation_context=context,
        in_place=False,
        dss_settings=TimestampDSSContentSettings(include_vri=False),
    )
    return bytes(stamped.getvalue())


async def _archive_timestamp(data: bytes, trust: TrustContext) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_add_validation_info

    timestamper = default_timestamper(trust)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = list(reader.embedded_regular_signatures)
        stamps = list(reader.embedded_timestamp_signatures)
        if stamps:
            # The chain exists: the last time-stamp's evidence, then a new one over all.
            # (pyHanko's update_archival_timestamp_chain writes that time-stamp's VRI again,
            # which its own rules refuse when revisions are compared one by one.)
            context = trust.validation_context()
            extended = await async_add_validation_info(
                stamps[-1], context, in_place=False, add_vri_entry=False
            )
            return await _document_timestamp(extended.getvalue(), timestamper, context)
        certificates = [x509.load_der_x509_certificate(s.signer_cert.dump()) for s in signatures]
        context = trust.validation_context(for_certs=certificates)
        current = data
        for index in range(len(signatures)):
            reader = PdfFileReader(io.BytesIO(current), strict=False)
            embedded = list(reader.embedded_regular_signatures)[index]
            try:
                out = await async_add_validation_info(
                    embedded, context, in_place=False, add_vri_entry=False
                )
                current = out.getvalue()
            except (PathBuildingError, PathValidationError, ValueError):
                # a signature kyso cannot gather evidence for (another CA, offline): its
                # evidence stays what the file carries; the time-stamp still covers it
                continue
        return await _document_timestamp(current, timestamper, context)
    except KysoError:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise InvalidPdf(str(exc), vi="không thêm được dấu thời gian lưu trữ") from exc
