"""Carrying an approved request out: issuing the certificate (a key made by kyso's key
store or in the central signing HSM, a CSR, or a key made on the subscriber's token),
revoking (form 05) or restoring a locked device (form 06) — in the transaction of the
approval that completed the request, or later through :func:`issue` when the key is made on
a token with its PIN.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from kyso.errors import InvalidInput
from kyso.lifecycle import forms, notify
from kyso.lifecycle.forms import KeyChoice, KeySource
from kyso.lifecycle.workflow.preparation import Prepared, prepare
from kyso.lifecycle.workflow.states import DEFAULT_ALGORITHM, S, illegal, load, move
from kyso.lifecycle.workflow.subscribers import subscriber_person
from kyso.pki import issuance, status
from kyso.pki.authority import Authority
from kyso.pki.csr import load_csr
from kyso.pki.names import subject_text
from kyso.registry import devices
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require
from kyso.registry.fields import FieldProblem
from kyso.remote import central, delegates
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    DeviceStatus,
    KeyDevice,
    Profile,
    RequestType,
    Role,
)


def acting(principal: Principal) -> Principal:
    """The decision's consequences (a subscriber's record, a restored device) are carried out
    under the approval, whose approver may hold only the ``requests:decide`` scope."""
    return Principal(actor=principal.actor, role=Role.PROVINCE_ADMIN, user_id=principal.user_id)


def issue(
    principal: Principal,
    session: Session,
    authority: Authority,
    public_id: str,
    *,
    token_pin: str | None = None,
) -> CertificateRequest:
    """Carry out an approved request that waited (a key to be made on a USB token)."""
    request, unit = load(session, public_id)
    require(principal, Action.CERT_ISSUE, unit.path)
    if request.state is not S.APPROVED:
        raise illegal(request, S.ISSUED)
    carry_out(principal, session, authority, request, token_pin=token_pin)
    return request


def carry_out(
    principal: Principal,
    session: Session,
    authority: Authority,
    request: CertificateRequest,
    *,
    token_pin: str | None = None,
) -> None:
    t = request.type
    if t is RequestType.REVOCATION:
        prepared = prepare(session, request)
        form: forms.RevocationForm = prepared.form
        assert prepared.target is not None and form.reason is not None
        status.revoke(
            session,
            authority,
            prepared.target.serial,
            form.reason,
            principal.actor,
            note=f"yêu cầu {request.public_id}: {form.explanation}",
        )
        move(
            principal,
            session,
            request,
            S.ISSUED,
            f"đã thu hồi {prepared.target.serial} ({form.reason.value})",
        )
        return
    if t is RequestType.DEVICE_UNLOCK:
        device = prepare(session, request).device
        assert device is not None
        devices.set_status(
            acting(principal),
            session,
            device.public_id,
            DeviceStatus.ISSUED,
            note=f"yêu cầu {request.public_id} (mẫu 06)",
        )
        move(principal, session, request, S.ISSUED, f"đã khôi phục thiết bị {device.serial}")
        return
    prepared = prepare(session, request)
    issued = _issue_certificate(
        principal, session, authority, request, prepared, token_pin=token_pin
    )
    request.certificate_id = issued.row.id
    move(principal, session, request, S.ISSUED, f"chứng thư {issued.serial}")
    notify.enqueue(
        session,
        notify.issued_mail(
            prepared.notify_to,
            request.public_id,
            issued.serial,
            issued.row.subject,
            issued.row.not_after,
        ),
    )


def _issue_certificate(
    principal: Principal,
    session: Session,
    authority: Authority,
    request: CertificateRequest,
    prepared: Prepared,
    *,
    token_pin: str | None,
) -> issuance.Issued:
    assert prepared.profile is not None and prepared.name is not None
    key = prepared.key or KeyChoice(KeySource.SERVER, DEFAULT_ALGORITHM)
    person_id = subscriber_person(acting(principal), session, request, prepared)
    org_id = prepared.subject_unit.id if prepared.subject_unit else None
    device = prepared.device
    if key.source is KeySource.TOKEN:
        assert device is not None
        issued = _issue_on_token(principal, session, authority, prepared, key, device, token_pin)
        session.execute(
            update(Certificate)
            .where(Certificate.id == issued.row.id)
            .values(person_id=person_id, organization_id=org_id, device_id=device.id)
        )
        return issued
    public_key: Any
    if key.source is KeySource.CSR:
        assert key.csr is not None
        public_key = load_csr(key.csr.encode()).public_key()
        location = "csr"
    else:
        # A central key is made inside the central signing HSM (PKCS#11: CKA_SENSITIVE,
        # not CKA_EXTRACTABLE) and named "hsm:<key id>"; it signs only against its holder's
        # consent (kyso.remote). A server key is made in kyso's own key store.
        store = authority.central if key.source is KeySource.CENTRAL else authority.keystore
        handle = store.generate(subject_text(prepared.name)[:64], key.algorithm)
        public_key, location = handle.public_key(), f"{store.name}:{handle.key_id}"
    spec = issuance.IssueSpec(
        prepared.profile,
        prepared.name,
        public_key,
        emails=prepared.emails,
        key_location=location,
        person_id=person_id,
        organization_id=org_id,
        # A CSR may come from a token (its key made there by the signing agent): the
        # certificate then lives on that device; a server-held key lives on none.
        device_id=device.id if device is not None and key.source is KeySource.CSR else None,
    )
    issued = issuance.issue(session, authority, spec, principal.actor)
    target = prepared.target
    if (
        key.source is KeySource.CENTRAL
        and target is not None
        and prepared.profile is Profile.ORGANIZATION
        and central.is_central(target.key_location)
    ):
        # The renewed seal is applied by the same clerks as the one it replaces.
        delegates.carry_over(session, target, issued.row, actor=principal.actor)
    return issued


def _issue_on_token(
    principal: Principal,
    session: Session,
    authority: Authority,
    prepared: Prepared,
    key: KeyChoice,
    device: KeyDevice,
    token_pin: str | None,
) -> issuance.Issued:
    from kyso.keys.pkcs11 import Pkcs11KeyStore

    settings = authority.settings
    module = settings.token_module or settings.pkcs11_module
    if not token_pin:
        raise f.invalid(
            [
                FieldProblem(
                    "token_pin",
                    "the key is made on the token: give its PIN",
                    "khóa được tạo trên thiết bị: hãy nhập mã PIN",
                )
            ]
        )
    if not module:
        raise InvalidInput(
            "set KYSO_TOKEN_MODULE (the tokens' PKCS#11 library)",
            vi="đặt KYSO_TOKEN_MODULE (thư viện PKCS#11 của thiết bị)",
        )
    assert prepared.profile is not None and prepared.name is not None
    store = Pkcs11KeyStore(module, device.serial, token_pin)  # the token's label is its serial
    try:
        return issuance.issue_on_token(
            session,
            authority,
            store,
            profile=prepared.profile,
            subject=subject_text(prepared.name),
            algorithm=key.algorithm,
            actor=principal.actor,
            emails=prepared.emails,
        )
    finally:
        store.close()
