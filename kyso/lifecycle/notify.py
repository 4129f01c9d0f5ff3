"""E-mail notifications through the outbox.

Every mail is a ``notifications`` row written in the transaction of the event that causes it
(a rolled-back approval mails nobody; a mail-server outage loses nothing). :func:`send_pending`
drains the outbox over SMTP afterwards — from ``kyso request mail`` run by a timer, or any
scheduler — trying each message up to ``MAX_ATTEMPTS`` times across drains. Delivery is at
least once: a crash between the SMTP server's "250 OK" and the commit sends that mail again.

Who is told what: a submission → the province administrators (Sở TTTT); a decision → the
requester; an issuance → the subscriber; a certificate close to expiry → its subscriber;
a PIN not changed for too long → the device's holder (the plan names subscribers who never
change their PIN as a problem to fix).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import InvalidInput
from kyso.registry import devices
from kyso.registry.access import Principal
from kyso.settings import Settings
from kyso.store.db import Database
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    CertStatus,
    Notification,
    Organization,
    Person,
    Role,
    User,
)

MAX_ATTEMPTS = 5
SIGNATURE = (
    "\n\n--\nHệ thống quản lý chữ ký số chuyên dùng (kyso). Thư gửi tự động, xin đừng trả lời."
)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    kind: str
    dedupe_key: str | None = None


def enqueue(session: Session, mail: Mail) -> bool:
    """Add one mail unless its ``dedupe_key`` was already used; True if added."""
    if not mail.to:
        return False
    if mail.dedupe_key is not None:
        if session.execute(
            select(Notification.id).where(Notification.dedupe_key == mail.dedupe_key)
        ).first():
            return False
        try:
            with session.begin_nested():  # a concurrent reminder run may add the same key
                session.add(_row(mail, clock.now()))
        except IntegrityError:
            return False
        return True
    session.add(_row(mail, clock.now()))
    return True


def enqueue_many(session: Session, mails: Iterable[Mail]) -> int:
    """Many mails in one multi-row INSERT (a batch's issuance notices); no de-duplication."""
    now = clock.now()
    values = [
        {
            "to_address": m.to,
            "subject": m.subject[:300],
            "body": m.body,
            "kind": m.kind,
            "dedupe_key": m.dedupe_key,
            "created_at": now,
            "attempts": 0,
        }
        for m in mails
        if m.to
    ]
    if values:
        session.execute(insert(Notification), values)
    return len(values)


def _row(mail: Mail, now: datetime) -> Notification:
    return Notification(
        to_address=mail.to,
        subject=mail.subject[:300],
        body=mail.body,
        kind=mail.kind,
        dedupe_key=mail.dedupe_key,
        created_at=now,
        attempts=0,
    )


def province_admins(session: Session) -> list[str]:
    return sorted(
        {
            e
            for e in session.execute(
                select(User.email).where(
                    User.role == Role.PROVINCE_ADMIN, User.active.is_(True), User.email.is_not(None)
                )
            ).scalars()
            if e
        }
    )


def requester(session: Session, request: CertificateRequest) -> str | None:
    if request.created_by is None:
        return None
    user = session.get(User, request.created_by)
    return user.email if user is not None and user.active else None


def _when(moment: datetime) -> str:
    return clock.local(moment).strftime("%H:%M ngày %d/%m/%Y")


# -- the events ---------------------------------------------------------------------------------
def submitted(
    session: Session, request: CertificateRequest, what: str, unit: str, subscriber: str | None
) -> None:
    who = f" — {subscriber}" if subscriber else ""
    for admin in province_admins(session):
        enqueue(
            session,
            Mail(
                admin,
                f"[kyso] Yêu cầu chờ duyệt: {what}{who} ({unit})",
                f"Đơn vị {unit} đã gửi yêu cầu {what}{who}.\n"
                f"Mã yêu cầu: {request.public_id}\n"
                f"Gửi lúc: {_when(request.submitted_at or clock.now())}\n"
                f"Cần {request.required_approvals} người duyệt." + SIGNATURE,
                "request.submitted",
            ),
        )


def batch_submitted(session: Session, job_id: str, count: int, unit: str) -> None:
    for admin in province_admins(session):
        enqueue(
            session,
            Mail(
                admin,
                f"[kyso] Lô {count} yêu cầu cấp chứng thư số chờ duyệt ({unit})",
                f"Đơn vị {unit} đã gửi lô {count} yêu cầu cấp mới chứng thư số cá nhân (mẫu 01).\n"
                f"Mã lô: {job_id}" + SIGNATURE,
                "batch.submitted",
            ),
        )


def decided(
    session: Session, request: CertificateRequest, what: str, approved: bool, reason: str | None
) -> None:
    to = requester(session, request)
    if not to:
        return
    verdict = "đã được duyệt" if approved else "bị từ chối"
    body = f"Yêu cầu {what} (mã {request.public_id}) {verdict}."
    if reason:
        body += f"\nLý do: {reason}"
    enqueue(
        session, Mail(to, f"[kyso] Yêu cầu {what} {verdict}", body + SIGNATURE, "request.decided")
    )


def batch_decided(session: Session, to: str | None, job_id: str, count: int) -> None:
    if to:
        enqueue(
            session,
            Mail(
                to,
                f"[kyso] Lô {count} yêu cầu cấp chứng thư số đã được duyệt",
                f"Lô {job_id} ({count} yêu cầu) đã được duyệt; chứng thư số đang được cấp."
                + SIGNATURE,
                "batch.decided",
            ),
        )


def issued_mail(
    to: str | None, request_id: str, serial: str, subject: str, not_after: datetime
) -> Mail:
    return Mail(
        to or "",
        f"[kyso] Chứng thư số của bạn đã được cấp — số hiệu {serial}",
        f"Chứng thư số {subject}\nSố hiệu: {serial}\nCó hiệu lực đến: {_when(not_after)}\n"
        f"Mã yêu cầu: {request_id}\nĐơn vị quản lý sẽ bàn giao thiết bị lưu khóa cho bạn; "
        "hãy đổi mã PIN ngay khi nhận." + SIGNATURE,
        "certificate.issued",
    )


def lost(session: Session, to: str | None, device_serial: str, serials: Sequence[str]) -> None:
    if to:
        enqueue(
            session,
            Mail(
                to,
                f"[kyso] Thiết bị lưu khóa {device_serial} đã được báo mất; "
                "chứng thư số đã bị thu hồi",
                f"Thiết bị {device_serial} đã được ghi nhận bị mất. Các chứng thư số trên thiết bị "
                f"đã bị thu hồi (lý do: lộ khóa): {', '.join(serials)}.\n"
                "Yêu cầu cấp lại đã được lập; đơn vị quản lý sẽ hoàn thiện và gửi duyệt."
                + SIGNATURE,
                "device.lost",
            ),
        )


# -- reminders ----------------------------------------------------------------------------------
def remind_expiring(session: Session, *, within_days: int, now: datetime | None = None) -> int:
    """Tell subscribers whose good certificates expire within ``within_days`` (once per
    certificate and threshold)."""
    now = now or clock.now()
    rows = session.execute(
        select(
            Certificate.serial,
            Certificate.subject,
            Certificate.not_after,
            Person.email,
            Organization.email,
        )
        .outerjoin(Person, Certificate.person_id == Person.id)
        .outerjoin(Organization, Certificate.organization_id == Organization.id)
        .where(
            Certificate.status == CertStatus.GOOD,
            Certificate.not_after > now,
            Certificate.not_after <= now + timedelta(days=within_days),
        )
    ).all()
    added = 0
    for serial, subject, not_after, person_email, org_email in rows:
        days_left = max(0, (not_after - now).days)
        added += enqueue(
            session,
            Mail(
                person_email or org_email or "",
                f"[kyso] Chứng thư số sắp hết hạn (còn {days_left} ngày) — số hiệu {serial}",
                f"Chứng thư số {subject}\nSố hiệu: {serial}\nHết hạn: {_when(not_after)}\n"
                "Hãy đề nghị gia hạn (mẫu 04) qua đơn vị quản lý trước ngày hết hạn." + SIGNATURE,
                "certificate.expiring",
                f"expiry:{serial}:{within_days}",
            ),
        )
    return added


def remind_pin_overdue(
    principal: Principal, session: Session, *, days: int, now: datetime | None = None
) -> int:
    """Nag holders who have not changed their device PIN for ``days`` days: at most once a
    month each, until they do."""
    now = now or clock.now()
    added = 0
    for item in devices.pin_overdue(principal, session, days=days, now=now):
        if item.holder is None or not item.holder.email:
            continue
        added += enqueue(
            session,
            Mail(
                item.holder.email,
                f"[kyso] Nhắc đổi mã PIN thiết bị lưu khóa {item.device.serial}",
                f"Mã PIN của thiết bị {item.device.serial} chưa được đổi trong {item.days} ngày "
                f"(từ {_when(item.since)}). Hãy đổi mã PIN bằng phần mềm quản lý thiết bị và báo "
                "đơn vị quản lý ghi nhận." + SIGNATURE,
                "device.pin_overdue",
                f"pin:{item.device.public_id}:{clock.local(now):%Y-%m}",
            ),
        )
    return added


# -- the sender ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendReport:
    sent: int
    failed: int
    pending: int  # still waiting after this drain (failed ones included, until MAX_ATTEMPTS)


def _message(settings: Settings, row: Notification) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(clock.now())
    domain = settings.smtp_from.rpartition("@")[2] or "kyso.invalid"
    message["Message-ID"] = make_msgid(f"kyso{row.id}", domain=domain)
    message.set_content(row.body, charset="utf-8")
    return message


def _connect(settings: Settings) -> smtplib.SMTP:
    assert settings.smtp_host is not None
    client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15)
    try:
        if settings.smtp_starttls:
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
    except BaseException:
        client.close()
        raise
    return client


_TRANSIENT = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError)


def send_pending(
    db: Database, settings: Settings, *, limit: int = 100, max_attempts: int = MAX_ATTEMPTS
) -> SendReport:
    """Send up to ``limit`` waiting mails. A dropped connection is reopened once and the mail
    tried again; a mail that still fails keeps its place with ``attempts`` + 1 and the error."""
    if not settings.smtp_host:
        raise InvalidInput("set KYSO_SMTP_HOST to send mail", vi="đặt KYSO_SMTP_HOST để gửi thư")
    sent = failed = 0
    with db.session() as session:
        rows = list(
            session.execute(
                select(Notification)
                .where(Notification.sent_at.is_(None), Notification.attempts < max_attempts)
                .order_by(Notification.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # two senders never take the same mail
            ).scalars()
        )
        client: smtplib.SMTP | None = None
        try:
            for row in rows:
                error: Exception | None = None
                transient = False
                for _try in range(2):
                    try:
                        if client is None:
                            client = _connect(settings)
                        client.send_message(_message(settings, row))
                        error = None
                        break
                    except _TRANSIENT as exc:
                        _close(client)
                        client, error, transient = None, exc, True
                    except smtplib.SMTPException as exc:  # refused by the server: not now
                        error, transient = exc, False
                        break
                if error is None:
                    row.sent_at, row.last_error = clock.now(), None
                    sent += 1
                    continue
                row.attempts += 1
                row.last_error = f"{type(error).__name__}: {error}"[:2000]
                failed += 1
                if transient:
                    break  # the server is unreachable: the rest waits for the next drain
        finally:
            if client is not None:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        pending = len(
            session.execute(
                select(Notification.id).where(
                    Notification.sent_at.is_(None), Notification.attempts < max_attempts
                )
            ).all()
        )
    return SendReport(sent, failed, pending)


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError):
            client.close()
