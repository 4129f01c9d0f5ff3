"""One exception hierarchy with stable codes and messages in Vietnamese and English.

The web layer maps ``http_status`` to the response, the CLI prints ``message`` on one line;
neither shows a traceback. Messages say what to do, not what went wrong inside.
"""

from __future__ import annotations


class KysoError(Exception):
    """Base of every error a user may see. ``code`` is stable and documented."""

    code: str = "error"
    http_status: int = 400
    message_vi: str = "Yêu cầu không hợp lệ."
    message_en: str = "The request is not valid."

    def __init__(self, detail: str | None = None, *, vi: str | None = None) -> None:
        self.detail = detail
        self.detail_vi = vi if vi is not None else detail
        super().__init__(self.message("en"))

    def message(self, lang: str = "vi") -> str:
        base = self.message_vi if lang == "vi" else self.message_en
        extra = self.detail_vi if lang == "vi" else self.detail
        return f"{base} ({extra})" if extra else base

    def to_dict(self, lang: str = "vi") -> dict[str, str]:
        return {"code": self.code, "message": self.message(lang)}


class NotFound(KysoError):
    code = "not_found"
    http_status = 404
    message_vi = "Không tìm thấy."
    message_en = "Not found."


class Conflict(KysoError):
    code = "conflict"
    http_status = 409
    message_vi = "Thao tác xung đột với trạng thái hiện tại."
    message_en = "The action conflicts with the current state."


class Forbidden(KysoError):
    code = "forbidden"
    http_status = 403
    message_vi = "Bạn không có quyền thực hiện thao tác này."
    message_en = "You are not allowed to do this."


class Unauthenticated(KysoError):
    code = "unauthenticated"
    http_status = 401
    message_vi = "Cần đăng nhập hoặc mã truy cập hợp lệ."
    message_en = "A valid login or access token is required."


class InvalidInput(KysoError):
    code = "invalid_input"
    http_status = 422
    message_vi = "Dữ liệu không hợp lệ."
    message_en = "The input is not valid."


class TooManyRequests(KysoError):
    code = "rate_limited"
    http_status = 429
    message_vi = "Quá nhiều yêu cầu trong thời gian ngắn; vui lòng thử lại sau ít phút."
    message_en = "Too many requests in a short time; please try again in a few minutes."


class TooLarge(KysoError):
    code = "too_large"
    http_status = 413
    message_vi = "Tệp hoặc yêu cầu quá lớn."
    message_en = "The file or request is too large."


class MalformedCSR(InvalidInput):
    code = "malformed_csr"
    message_vi = "Yêu cầu chứng thư (CSR) không đọc được hoặc chữ ký của nó sai."
    message_en = "The certificate request (CSR) cannot be read or its signature is wrong."


class WeakKeyError(InvalidInput):
    code = "weak_key"
    message_vi = "Khóa không đạt yêu cầu: chỉ chấp nhận RSA từ 2048 bit hoặc ECDSA P-256/P-384."
    message_en = "Key not accepted: only RSA of 2048 bits or more, or ECDSA P-256/P-384."


class WeakHashError(InvalidInput):
    code = "weak_hash"
    message_vi = "Thuật toán băm không đạt yêu cầu: cần SHA-256 trở lên."
    message_en = "Hash algorithm not accepted: SHA-256 or stronger is required."


class CompromisedKey(InvalidInput):
    code = "compromised_key"
    message_vi = (
        "Khóa công khai này thuộc một chứng thư đã bị thu hồi do lộ khóa; hãy tạo khóa mới."
    )
    message_en = (
        "This public key belongs to a certificate revoked for key compromise; make a new key."
    )


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message_vi = "Không thể chuyển trạng thái chứng thư như yêu cầu."
    message_en = "The certificate cannot move to that status."


class AlreadyInitialized(Conflict):
    code = "already_initialized"
    message_vi = "Hệ thống đã được khởi tạo; không ghi đè CA hiện có."
    message_en = "This instance is already initialized; the existing CA is not overwritten."


class NotInitialized(KysoError):
    code = "not_initialized"
    http_status = 503
    message_vi = "Hệ thống chưa được khởi tạo: chạy `kyso init` trước."
    message_en = "This instance is not initialized: run `kyso init` first."


class KeyStoreError(KysoError):
    # The HSM, token or key files are unavailable: the service is, for now (503, as /readyz
    # says), not broken; kyso.observability counts each one (kyso_keystore_errors_total).
    code = "keystore_error"
    http_status = 503
    message_vi = "Kho khóa không thực hiện được thao tác."
    message_en = "The key store could not do this."

    def __init__(self, detail: str | None = None, *, vi: str | None = None) -> None:
        super().__init__(detail, vi=vi)
        from kyso.observability import metrics  # late: every module imports kyso.errors

        metrics.keystore_error(self.code)


class WrongPin(KeyStoreError):
    code = "wrong_pin"
    http_status = 401
    message_vi = "Mã PIN hoặc mật khẩu kho khóa không đúng."
    message_en = "The key store PIN or passphrase is wrong."


class LintFailed(KysoError):
    code = "lint_failed"
    http_status = 500
    message_vi = "Chứng thư không qua kiểm tra pkilint nên không được phát hành."
    message_en = "The certificate failed the pkilint check and was not released."


class MalformedRequest(InvalidInput):
    code = "malformed_request"
    message_vi = "Yêu cầu không đúng định dạng."
    message_en = "The request is malformed."
