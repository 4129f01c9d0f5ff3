"""Plain sentences for a validation result, in Vietnamese and English.

Format-neutral: the PAdES, CAdES, XAdES and S/MIME validators all fill a
:class:`~kyso.validation.report.SignatureReport` and call :func:`explain` to get the sentence a
records clerk reads (Decree 30/2020 Art. 21.2: the receiving clerk checks authenticity and
integrity and returns invalid documents). The sentence says what happened and, where it can,
what it means — never only a code. Times are shown in Vietnam time.
"""

from __future__ import annotations

from datetime import datetime

from kyso import clock
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    RevocationStatus,
    ScopeKind,
    SignatureReport,
    SubIndication,
    ValidationReport,
)

_REASONS_VI = {
    "unspecified": "không nêu lý do",
    "key_compromise": "lộ khóa",
    "ca_compromise": "CA bị lộ khóa",
    "affiliation_changed": "thay đổi đơn vị công tác",
    "superseded": "được thay thế",
    "cessation_of_operation": "ngừng hoạt động",
    "certificate_hold": "tạm dừng",
    "privilege_withdrawn": "bị rút quyền",
    "aa_compromise": "AA bị lộ khóa",
}


def when_vi(moment: datetime | None) -> str:
    if moment is None:
        return "không rõ"
    local = clock.local(moment)
    return local.strftime("%H:%M:%S ngày %d/%m/%Y") + " (giờ Việt Nam)"


def when_en(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return clock.local(moment).replace(microsecond=0).isoformat(sep=" ")


def day_vi(moment: datetime | None) -> str:
    return "không rõ" if moment is None else clock.local(moment).strftime("%d/%m/%Y")


def day_en(moment: datetime | None) -> str:
    return "an unknown date" if moment is None else clock.local(moment).strftime("%Y-%m-%d")


def _who(signer: CertificateInfo | None) -> str:
    if signer is None:
        return ""
    for part in signer.subject.split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN" and value:
            return value.strip()
    return signer.subject


def _is_timestamp(sig: SignatureReport) -> bool:
    return "time-stamp" in sig.format.lower() or "timestamp" in sig.format.lower()


def _is_counter(sig: SignatureReport) -> bool:
    """A countersignature: it covers another signature's value (RFC 5652 §11.4)."""
    return any(s.kind is ScopeKind.SIGNATURE for s in sig.scope)


def _signing_time(sig: SignatureReport) -> datetime | None:
    if sig.timestamp_time is not None and sig.timestamp_trusted:
        return sig.timestamp_time
    return sig.claimed_signing_time or sig.timestamp_time


def _reason(sig: SignatureReport) -> tuple[str, str]:
    reason = sig.revocation.reason if sig.revocation else None
    if not reason:
        return "", ""
    key = reason.replace("-", "_").lower()
    return f" (lý do: {_REASONS_VI.get(key, reason)})", f" (reason: {reason.replace('_', ' ')})"


def _changes(sig: SignatureReport) -> tuple[str, str]:
    bad = [m.description for m in sig.modifications if not m.allowed]
    if not bad:
        return "", ""
    detail = "; ".join(bad)
    return f": {detail}", f": {detail}"


def _outcome(sig: SignatureReport) -> tuple[str, str]:
    noun_vi, noun_en = (
        ("Dấu thời gian", "time-stamp") if _is_timestamp(sig) else ("Chữ ký", "signature")
    )
    if _is_counter(sig):
        noun_vi, noun_en = ("Chữ ký xác nhận", "countersignature")
    if sig.indication is Indication.TOTAL_PASSED:
        return f"{noun_vi} hợp lệ", f"The {noun_en} is valid"
    if sig.indication is Indication.TOTAL_FAILED:
        return f"{noun_vi} không hợp lệ", f"The {noun_en} is not valid"
    return (
        f"Chưa xác định được {noun_vi.lower()} có hợp lệ hay không",
        f"The {noun_en} could not be confirmed as valid",
    )


def _passed(sig: SignatureReport) -> tuple[str, str]:
    who = _who(sig.signer)
    moment = _signing_time(sig)
    ts = sig.timestamp_time is not None and sig.timestamp_trusted
    vi = f": {who} ký lúc {when_vi(moment)}" if who else f": ký lúc {when_vi(moment)}"
    en = f": signed by {who} at {when_en(moment)}" if who else f": made at {when_en(moment)}"
    if _is_timestamp(sig):
        vi = f": cấp lúc {when_vi(sig.timestamp_time)} bởi {who}"
        en = f": issued at {when_en(sig.timestamp_time)} by {who}"
    elif ts:
        vi += ", có dấu thời gian chứng thực"
        en += ", proven by a time-stamp"
    if _is_counter(sig):
        vi += ". Chữ ký được xác nhận không bị thay đổi sau khi được ký xác nhận"
        en += ". The countersigned signature was not changed after it was countersigned"
    else:
        vi += ". Tài liệu không bị thay đổi sau khi ký"
        en += ". The document was not changed after it was signed"
    if sig.modifications:
        vi += " (sau đó chỉ thêm chữ ký, dấu thời gian hoặc dữ liệu kiểm tra — được phép)"
        en += " (later only signatures, time-stamps or validation data were added, as allowed)"
    vi += "."
    en += "."
    revocation = sig.revocation
    if revocation and revocation.revoked_at is not None:
        vi += (
            f" Chứng thư bị thu hồi sau đó, ngày {day_vi(revocation.revoked_at)}, nhưng dấu "
            "thời gian chứng minh chữ ký có trước."
        )
        en += (
            f" The certificate was revoked later, on {day_en(revocation.revoked_at)}, but the "
            "time-stamp proves the signature was made before."
        )
    return vi, en


def _detail(sig: SignatureReport) -> tuple[str, str]:
    sub = sig.sub_indication
    signed_at = _signing_time(sig)
    revocation = sig.revocation
    revoked_at = revocation.revoked_at if revocation else None
    signer = sig.signer
    if sub is SubIndication.HASH_FAILURE and sig.integrity and sig.timestamp_time is not None:
        # The content and the signature value are fine: it is the time-stamp that does not
        # belong to this signature.
        return (
            "dấu thời gian kèm theo không phải của chữ ký này (giá trị băm trong dấu thời gian "
            "không khớp với giá trị chữ ký)",
            "the time-stamp attached is not this signature's (its imprint does not match the "
            "signature value)",
        )
    if sub is SubIndication.HASH_FAILURE and _is_counter(sig):
        return (
            "chữ ký được xác nhận không phải chữ ký mà chữ ký xác nhận này đã ký lên (giá trị "
            "băm không khớp)",
            "the signature it countersigns is not the one it was made over (the hash does not "
            "match)",
        )
    if sub is SubIndication.HASH_FAILURE:
        return (
            "nội dung đã ký bị thay đổi (giá trị băm không khớp) — tài liệu đã bị sửa sau khi ký",
            "the signed content was altered (the hash does not match): the document was "
            "changed after it was signed",
        )
    if sub is SubIndication.SIG_CRYPTO_FAILURE:
        return (
            "giá trị chữ ký không khớp với khóa công khai trong chứng thư của người ký",
            "the signature value does not verify with the signer's certificate",
        )
    if sub is SubIndication.FORMAT_FAILURE:
        if any(s.kind is ScopeKind.PARTIAL for s in sig.scope):
            if sig.format.startswith(("XAdES", "XML-DSig")):
                return (
                    "chữ ký không bao phủ các phần bắt buộc phải ký của tài liệu (với thông "
                    "điệp edXML: cả phần đầu và phần thân, theo QCVN 102:2016)",
                    "the signature does not cover the parts of the document that must be "
                    "signed (for an edXML message, both the header and the body, QCVN 102:2016)",
                )
            return (
                "chữ ký không bao phủ các phần bắt buộc phải ký của tài liệu",
                "the signature does not cover the parts of the document that must be signed",
            )
        return (
            "chữ ký không đúng định dạng hoặc không bao phủ đúng phần tài liệu đã ký",
            "the signature is malformed or does not cover the document as it should",
        )
    if sub is SubIndication.REVOKED:
        why_vi, why_en = _reason(sig)
        return (
            f"chứng thư của người ký đã bị thu hồi ngày {day_vi(revoked_at)}{why_vi}, trước "
            f"khi tài liệu được ký ({when_vi(signed_at)})",
            f"the signer's certificate was revoked on {day_en(revoked_at)}{why_en} before "
            f"the document was signed ({when_en(signed_at)})",
        )
    if sub is SubIndication.REVOKED_NO_POE:
        why_vi, why_en = _reason(sig)
        return (
            f"chứng thư của người ký đã bị thu hồi ngày {day_vi(revoked_at)}{why_vi}; tài "
            f"liệu ghi thời điểm ký {when_vi(sig.claimed_signing_time)} nhưng không có dấu "
            "thời gian chứng minh chữ ký có trước khi thu hồi",
            f"the signer's certificate was revoked on {day_en(revoked_at)}{why_en}; the "
            f"document claims it was signed at {when_en(sig.claimed_signing_time)}, but no "
            "time-stamp proves it was signed before the revocation",
        )
    if sub is SubIndication.REVOKED_CA_NO_POE:
        return (
            "chứng thư của một CA trong chuỗi đã bị thu hồi",
            "a CA certificate in the chain has been revoked",
        )
    if sub is SubIndication.TRY_LATER:
        if revocation and revocation.status is RevocationStatus.SUSPENDED:
            return (
                f"chứng thư của người ký bị tạm dừng từ ngày {day_vi(revoked_at)}, trước khi "
                "tài liệu được ký; nếu chứng thư được khôi phục, hãy kiểm tra lại sau",
                f"the signer's certificate was suspended on {day_en(revoked_at)} before the "
                "document was signed; if it is restored, check again later",
            )
        if (
            revocation
            and revocation.checked_at
            and revocation.status
            in (
                RevocationStatus.GOOD,
                RevocationStatus.UNKNOWN,
            )
        ):
            return (
                "chưa xác nhận được tình trạng thu hồi: thông tin thu hồi hiện có (mới nhất "
                f"ngày {day_vi(revocation.checked_at)}) chưa đủ — có thể đã quá cũ, hoặc thiếu "
                "cho một chứng thư CA trong chuỗi; hãy thử lại sau",
                "the revocation status could not be confirmed: the revocation information at "
                f"hand (latest of {day_en(revocation.checked_at)}) is not enough — it may be too "
                "old, or missing for a CA certificate in the chain; try again later",
            )
        return (
            "không có thông tin thu hồi (CRL hoặc OCSP) của chứng thư để kiểm tra; hãy thử lại sau",
            "no revocation information (CRL or OCSP) is available to check the certificate; "
            "try again later",
        )
    expired_ca = _expired_ca(sig)
    if sub in (SubIndication.EXPIRED, SubIndication.OUT_OF_BOUNDS_NO_POE) and expired_ca:
        name = _who(expired_ca)
        if sub is SubIndication.EXPIRED:
            return (
                f"chứng thư CA {name} trong chuỗi đã hết hạn ngày "
                f"{day_vi(expired_ca.not_after)}, trước khi tài liệu được ký "
                f"({when_vi(signed_at)})",
                f"the CA certificate {name} in the chain expired on "
                f"{day_en(expired_ca.not_after)}, before the document was signed "
                f"({when_en(signed_at)})",
            )
        return (
            f"chứng thư CA {name} trong chuỗi đã hết hạn ngày {day_vi(expired_ca.not_after)} "
            "và không có dấu thời gian chứng minh tài liệu được ký trước ngày đó",
            f"the CA certificate {name} in the chain expired on "
            f"{day_en(expired_ca.not_after)} and no time-stamp proves the document was signed "
            "before",
        )
    if sub is SubIndication.EXPIRED:
        return (
            f"chứng thư của người ký đã hết hạn ngày {day_vi(signer.not_after if signer else None)}"
            f", trước khi tài liệu được ký ({when_vi(signed_at)})",
            f"the signer's certificate expired on "
            f"{day_en(signer.not_after if signer else None)}, before the document was signed "
            f"({when_en(signed_at)})",
        )
    if sub is SubIndication.OUT_OF_BOUNDS_NO_POE:
        return (
            f"chứng thư của người ký đã hết hạn ngày "
            f"{day_vi(signer.not_after if signer else None)} và không có dấu thời gian chứng "
            "minh tài liệu được ký trước ngày đó",
            f"the signer's certificate expired on "
            f"{day_en(signer.not_after if signer else None)} and no time-stamp proves the "
            "document was signed before",
        )
    if sub is SubIndication.NOT_YET_VALID:
        return (
            f"chứng thư của người ký chỉ có hiệu lực từ ngày "
            f"{day_vi(signer.not_before if signer else None)}, sau thời điểm ký",
            f"the signer's certificate is valid only from "
            f"{day_en(signer.not_before if signer else None)}, after the signing time",
        )
    if sub is SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
        if sig.timestamp_trusted is False and sig.trusted_chain:
            return (
                "dấu thời gian do một đơn vị cấp dấu thời gian không được tin cậy cấp",
                "the time-stamp comes from a time-stamping authority that is not trusted",
            )
        return (
            "chứng thư của người ký không được tin cậy (không dẫn tới chứng thư gốc nào "
            "được tin cậy)",
            "the signer's certificate is not trusted (it does not chain to a trusted root)",
        )
    if sub is SubIndication.NO_SIGNING_CERTIFICATE_FOUND:
        return (
            "không tìm thấy chứng thư của người ký trong chữ ký",
            "the signer's certificate is not in the signature",
        )
    if sub is SubIndication.SIG_CONSTRAINTS_FAILURE:
        vi_c, en_c = _changes(sig)
        if vi_c:
            return (
                f"tài liệu đã bị thay đổi sau khi ký{vi_c}",
                f"the document was changed after it was signed{en_c}",
            )
        if _uncovered(sig) and sig.format.startswith(("XAdES", "XML-DSig")):
            # XML: the only signature-level constraint kyso checks is that the references
            # cover the document (kyso.validation.xml).
            return (
                "chữ ký không bao phủ toàn bộ tài liệu: phần nằm ngoài chữ ký có thể đã được "
                "thêm vào hoặc sửa đổi mà chữ ký không phát hiện được (có thể là tấn công bọc "
                "chữ ký)",
                "the signature does not cover the whole document: what lies outside it could "
                "have been added or changed without the signature showing it (possibly a "
                "signature-wrapping attack)",
            )
        return (
            "chữ ký không đáp ứng các ràng buộc kiểm tra (ví dụ mục đích sử dụng khóa)",
            "the signature does not meet the validation constraints (e.g. key usage)",
        )
    if sub is SubIndication.CHAIN_CONSTRAINTS_FAILURE:
        return (
            "chuỗi chứng thư không đáp ứng các ràng buộc (mục đích sử dụng khóa, chính "
            "sách hoặc tên)",
            "the certificate chain does not meet its constraints (key usage, policy or names)",
        )
    if sub is SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE:
        return (
            "không kiểm tra được chuỗi chứng thư (một chứng thư trong chuỗi không xử lý được)",
            "the certificate chain could not be checked (a certificate in it could not be "
            "processed)",
        )
    if sub is SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE:
        return (
            "không có bằng chứng về thời điểm cấp thông tin thu hồi (POE), nên không dùng được "
            "nó để kiểm tra chứng thư tại thời điểm ký",
            "nothing proves when the revocation information was issued (no proof of existence),"
            " so it cannot be used to check the certificate at the signing time",
        )
    if sub is SubIndication.CRYPTO_CONSTRAINTS_FAILURE:
        return (
            "thuật toán hoặc độ dài khóa không còn đủ an toàn",
            "the algorithm or key size is no longer considered secure",
        )
    if sub is SubIndication.TIMESTAMP_ORDER_FAILURE:
        return ("thứ tự các dấu thời gian không hợp lý", "the time-stamps are out of order")
    if sub is SubIndication.SIGNED_DATA_NOT_FOUND:
        return ("không tìm thấy dữ liệu đã ký", "the signed data was not found")
    if sub is SubIndication.POLICY_PROCESSING_ERROR:
        return ("không xử lý được chính sách chữ ký", "the signature policy cannot be processed")
    return ("không kiểm tra được đầy đủ", "it could not be fully checked")


def _expired_ca(sig: SignatureReport) -> CertificateInfo | None:
    """The CA certificate that expired first, when one in the chain (the anchor aside)
    expired before the signer's own: that one, not the signer's, put the signature out of
    bounds."""
    signer = sig.signer
    if signer is None or len(sig.chain) < 2:
        return None
    cas = [c for c in sig.chain[1:] if c.subject != c.issuer]  # anchors' dates are not checked
    first = min(cas, key=lambda c: c.not_after, default=None)
    if first is None or first.not_after >= signer.not_after:
        return None
    return first


def _uncovered(sig: SignatureReport) -> bool:
    """The signature covers part of what was received, or nothing of it."""
    return any(s.kind in (ScopeKind.PARTIAL, ScopeKind.NOTHING) for s in sig.scope)


def _scope(sig: SignatureReport) -> tuple[str, str]:
    """The sentence naming what the signature covers, when that is not the whole document
    or the signed data was not found."""
    missing = sig.sub_indication is SubIndication.SIGNED_DATA_NOT_FOUND
    if not _uncovered(sig) and not (missing and sig.scope):
        return "", ""
    return (
        " Phạm vi chữ ký: " + "; ".join(s.description_vi for s in sig.scope) + ".",
        " What the signature covers: " + "; ".join(s.description_en for s in sig.scope) + ".",
    )


def _signed_by(sig: SignatureReport) -> tuple[str, str]:
    """The signer named after the outcome of a signature that did not pass, if known."""
    who = _who(sig.signer)
    return (f" (người ký: {who})", f" (signer: {who})") if who else ("", "")


def explain(sig: SignatureReport) -> tuple[str, str]:
    """(Vietnamese, English) sentence for one signature, from its indication, sub-indication
    and details (signer, times, revocation, modifications, scope)."""
    head_vi, head_en = _outcome(sig)
    if sig.indication is Indication.TOTAL_PASSED:
        body_vi, body_en = _passed(sig)
        return head_vi + body_vi, head_en + body_en
    body_vi, body_en = _detail(sig)
    scope_vi, scope_en = _scope(sig)
    by_vi, by_en = _signed_by(sig)
    return (
        f"{head_vi}{by_vi}: {body_vi}.{scope_vi}",
        f"{head_en}{by_en}: {body_en}.{scope_en}",
    )


def unprocessable(sig: SignatureReport, reason: str) -> tuple[str, str]:
    """(Vietnamese, English) sentence for a signature the validating library could not
    process: not shown invalid, not confirmed either; ``reason`` is the library's own words."""
    head_vi, head_en = _outcome(sig)
    by_vi, by_en = _signed_by(sig)
    return (
        f"{head_vi}{by_vi}: phần mềm kiểm tra không xử lý được chữ ký này ({reason}).",
        f"{head_en}{by_en}: the signature could not be processed ({reason}).",
    )


def summarize(report: ValidationReport) -> tuple[str, str]:
    """(Vietnamese, English) sentence for the whole document."""
    if not report.signatures:
        return ("Tài liệu không có chữ ký số nào.", "The document has no digital signature.")
    sigs = report.all_signatures()  # countersignatures count as signatures, as in EU DSS
    failed = sum(s.indication is Indication.TOTAL_FAILED for s in sigs)
    unsure = sum(s.indication is Indication.INDETERMINATE for s in sigs)
    stamps = sum(_is_timestamp(s) for s in sigs)
    counters = sum(_is_counter(s) for s in sigs)
    n = len(sigs) - stamps
    what_vi = f"{n} chữ ký" + (f" (trong đó {counters} chữ ký xác nhận)" if counters else "")
    what_en = f"{n} signature{'s' if n != 1 else ''}" + (
        f" ({counters} of them {'a countersignature' if counters == 1 else 'countersignatures'})"
        if counters
        else ""
    )
    what_vi += f" và {stamps} dấu thời gian" if stamps else ""
    what_en += f" and {stamps} time-stamp{'s' if stamps != 1 else ''}" if stamps else ""
    if not failed and not unsure:
        if len(sigs) == 1:
            return (
                "Chữ ký hợp lệ; tài liệu toàn vẹn.",
                "The signature is valid; the document is intact.",
            )
        return (
            f"Tất cả {what_vi} đều hợp lệ; tài liệu toàn vẹn.",
            f"All {what_en} are valid; the document is intact.",
        )
    parts_vi, parts_en = [], []
    if failed:
        parts_vi.append(f"{failed} không hợp lệ")
        parts_en.append(f"{failed} not valid")
    if unsure:
        parts_vi.append(f"{unsure} chưa xác định")
        parts_en.append(f"{unsure} could not be confirmed")
    advice_vi = (
        " Không nên tiếp nhận tài liệu này."
        if failed
        else (" Cần kiểm tra thêm trước khi tiếp nhận.")
    )
    advice_en = (
        " Do not accept this document." if failed else (" Check further before accepting it.")
    )
    return (
        f"Tài liệu có {what_vi}: " + ", ".join(parts_vi) + "." + advice_vi,
        f"The document has {what_en}: " + ", ".join(parts_en) + "." + advice_en,
    )


__all__ = ["day_en", "day_vi", "explain", "summarize", "unprocessable", "when_en", "when_vi"]
