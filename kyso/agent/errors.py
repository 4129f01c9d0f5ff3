"""The agent's refusals: each a :class:`kyso.errors.KysoError` with a stable code, answered as
JSON ``{"code", "message", "message_en"}`` with its HTTP status."""

from __future__ import annotations

from kyso.errors import Forbidden, InvalidInput, KysoError, NotFound, Unauthenticated


class OriginRefused(Forbidden):
    code = "agent_origin_refused"
    message_vi = "Bộ ký chỉ nhận yêu cầu từ trang kyso đã cấu hình."
    message_en = "The agent answers only the configured kyso site."


class HostRefused(Forbidden):
    code = "agent_host_refused"
    message_vi = "Bộ ký chỉ nhận yêu cầu gửi tới 127.0.0.1 (tên máy khác bị từ chối)."
    message_en = "The agent answers only requests addressed to 127.0.0.1."


class NotPaired(Unauthenticated):
    code = "agent_not_paired"
    message_vi = (
        "Trang này chưa ghép nối với bộ ký hoặc chữ ký yêu cầu không đúng; hãy ghép nối lại."
    )
    message_en = (
        "This page is not paired with the agent, or the request's MAC is wrong; pair again."
    )


class Replayed(Unauthenticated):
    code = "agent_replayed"
    message_vi = "Yêu cầu này đã được gửi trước đó hoặc đã quá cũ; bộ ký từ chối."
    message_en = "This request was sent before or is too old; the agent refuses it."


class WrongPairingCode(Unauthenticated):
    code = "agent_wrong_pairing_code"
    message_vi = "Mã ghép nối không đúng hoặc đã hết hạn; hãy xem mã mới trên cửa sổ bộ ký."
    message_en = (
        "The pairing code is wrong or has expired; read the new code in the agent's window."
    )


class PinNotAccepted(InvalidInput):
    code = "agent_pin_not_accepted"
    message_vi = (
        "Bộ ký không bao giờ nhận mã PIN từ trang web; mã PIN chỉ được nhập trên cửa sổ của bộ ký."
    )
    message_en = "The agent never takes a PIN from a web page; the PIN is typed in the agent only."


class PinRefused(Forbidden):
    code = "agent_wrong_pin"
    message_vi = "Mã PIN của thiết bị không đúng; chưa ký gì."
    message_en = "The token's PIN is wrong; nothing was signed."


class TokenLocked(Forbidden):
    code = "agent_token_locked"
    message_vi = (
        "Thiết bị đã bị khóa do nhập sai PIN quá số lần cho phép; hãy liên hệ nơi cấp thiết bị "
        "để mở khóa. Chưa ký gì."
    )
    message_en = (
        "The token is locked after too many wrong PINs; ask whoever issued it to unlock it. "
        "Nothing was signed."
    )


class SigningCancelled(Forbidden):
    code = "agent_cancelled"
    message_vi = "Người dùng đã hủy việc ký trên bộ ký; chưa ký gì."
    message_en = "The user cancelled signing in the agent; nothing was signed."


class CertificateNotOnToken(NotFound):
    code = "agent_certificate_not_found"
    message_vi = "Không thấy chứng thư này trên thiết bị USB đang cắm."
    message_en = "This certificate is not on the plugged-in token."


class TokenUnavailable(KysoError):
    code = "agent_token_unavailable"
    http_status = 503
    message_vi = "Không đọc được thiết bị USB ký số; hãy cắm thiết bị và thử lại."
    message_en = "The USB token cannot be read; plug it in and try again."
