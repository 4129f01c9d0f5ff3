"""The `kyso` command. It only translates: every rule lives in the services.

Errors are printed on one line with their stable code and a non-zero exit status, never as a
traceback. ``--json`` output is for scripts; the tables are for people.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, KysoError, NotInitialized
from kyso.settings import Settings
from kyso.store.models import (
    CaIdentity,
    Certificate,
    CertStatus,
    IdentityRole,
    Profile,
    RevocationReason,
)

app = typer.Typer(
    help="kyso — chữ ký số chuyên dùng: CA, ký số, xác thực.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ca_app = typer.Typer(help="The CA's own certificates.", no_args_is_help=True)
cert_app = typer.Typer(
    help="Subscriber certificates: issue, list, suspend, restore, revoke.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
ocsp_app = typer.Typer(help="The OCSP responder's pre-signed answers.", no_args_is_help=True)
client_app = typer.Typer(help="API clients (bearer tokens with scopes).", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.add_typer(cert_app, name="cert")
app.add_typer(audit_app, name="audit")
app.add_typer(ocsp_app, name="ocsp")
app.add_typer(client_app, name="api-client")


def _register_registry_commands() -> None:
    from kyso.cli import registry

    app.add_typer(registry.org_app, name="org")
    app.add_typer(registry.person_app, name="person")
    app.add_typer(registry.user_app, name="user")
    app.add_typer(registry.device_app, name="device")


def _register_backup_commands() -> None:
    from kyso.cli import backup

    app.command("backup")(backup.backup_command)
    app.command("restore")(backup.restore_command)


def _register_document_commands() -> None:
    from kyso.cli import documents

    app.add_typer(documents.sign_app, name="sign")
    app.add_typer(documents.trust_app, name="trust")
    app.command("verify")(documents.verify_command)
    from kyso.cli import agent

    app.command("agent")(agent.agent_command)


out = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _lang() -> str:
    return "en" if os.environ.get("KYSO_LANG", "vi").startswith("en") else "vi"


def context(*, need_init: bool = True) -> Context:
    ctx = Context(Settings.from_env())
    if need_init:
        if not ctx.db.is_migrated():
            raise NotInitialized()
        ctx.db.ensure_current()
    return ctx


def _emit(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


@app.callback()
def _root(
    home: Annotated[Path | None, typer.Option("--home", help="Data directory (KYSO_HOME).")] = None,
) -> None:
    if home is not None:
        os.environ["KYSO_HOME"] = str(home.resolve())


# -- init and serve ---------------------------------------------------------------------------
@app.command()
def init(
    demo: Annotated[bool, typer.Option(help="Use the demo province's names and data.")] = False,
    algorithm: Annotated[
        str, typer.Option(help="CA key: rsa-3072, rsa-4096, ec-p384, …")
    ] = "rsa-3072",
    signer_algorithm: Annotated[str, typer.Option(help="OCSP/TSA key.")] = "rsa-2048",
    organization: Annotated[
        str | None, typer.Option(help="O= of the CA names, e.g. 'UBND tỉnh Bắc Kạn'.")
    ] = None,
    locality: Annotated[str | None, typer.Option(help="L= of the CA names.")] = None,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok",
            help="If already initialized, only bring it up to date (sealed TOTP secrets, "
            "the audit signer).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create the root CA, the issuing CA, the OCSP responder, the TSA and the audit-log
    signer, and anchor the audit log (never overwrites)."""
    from kyso.audit import checkpoints
    from kyso.keys.base import KeyAlgorithm
    from kyso.pki import bootstrap

    settings = Settings.from_env()
    if exist_ok:
        existing = Context(settings)
        try:
            if existing.db.is_migrated():
                existing.db.migrate()
                with existing.db.read() as session:  # no key store needed to ask
                    made = session.execute(select(CaIdentity.id).limit(1)).first() is not None
                if made:
                    err.print(f"already initialized: {settings.home}")
                    _bring_up_to_date(existing)
                    return
        finally:
            existing.close()
    made_passphrase = bootstrap.ensure_passphrase(settings)
    ctx = Context(Settings.from_env())
    ctx.db.migrate()
    if demo and organization is None:
        organization, locality = "UBND tỉnh Bắc Kạn (demo)", "Bắc Kạn"
    names = (
        bootstrap.CaNames.for_organization(organization, locality)
        if organization
        else bootstrap.CaNames()
    )
    with ctx.db.session() as session:
        identities = bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=names,
            algorithm=KeyAlgorithm(algorithm),
            signer_algorithm=KeyAlgorithm(signer_algorithm),
            actor=actor(),
        )
    demo_data = None
    if demo:
        from kyso.demo import load_demo

        demo_data = load_demo(ctx, actor=actor())
    checkpoints.make(ctx)  # the log's first anchor
    result: dict[str, Any] = {
        "home": str(settings.home),
        "database": settings.database_url.split("@")[-1],
        "keystore": settings.keystore,
        "passphrase_file": made_passphrase,
        "identities": [
            {
                "role": i.role.value,
                "subject": i.certificate.subject.rfc4514_string(),
                "serial": format(i.certificate.serial_number, "x"),
                "key_id": i.key.key_id,
                "not_after": i.certificate.not_valid_after_utc.isoformat(),
            }
            for i in identities
        ],
    }
    if demo_data is not None:
        result["demo"] = demo_data.as_dict()
    if as_json:
        _emit(result)
        return
    table = Table(title="kyso: CA đã khởi tạo / CA initialized")
    for column in ("role", "subject", "serial", "not after"):
        table.add_column(column)
    for item in result["identities"]:
        table.add_row(item["role"], item["subject"], item["serial"], item["not_after"][:10])
    out.print(table)
    out.print(f"home: {settings.home}")
    if demo_data is not None:
        from kyso.cli.registry import print_demo

        print_demo(demo_data)
    if made_passphrase:
        out.print(
            f"[yellow]Key-store passphrase written to {made_passphrase} (mode 0600). Back it up.[/]"
        )


def _bring_up_to_date(ctx: Context) -> None:
    """What `init --exist-ok` does to an instance an older kyso made (and says so)."""
    from kyso import upgrade
    from kyso.audit import checkpoints

    done = upgrade.bring_up_to_date(ctx, actor())
    if done.sealed_totp_secrets:
        err.print(f"TOTP secrets sealed with the key store's data key: {done.sealed_totp_secrets}")
    if done.audit_signer is not None:
        subject = done.audit_signer.certificate.subject.rfc4514_string()
        err.print(f"audit-log signer made: {escape(subject)}", highlight=False)
        try:  # its first checkpoint; a log that does not fit is for `kyso audit verify`
            checkpoints.make(ctx)
        except KysoError as exc:
            err.print(f"[yellow]audit log not anchored[/]: {escape(exc.message(_lang()))}")


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="Processes (SQLite: 1–2).")] = 1,
    access_log: Annotated[bool, typer.Option(help="uvicorn access log (~30 % slower).")] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(help="Reverse proxies whose X-Forwarded-Proto/For are trusted."),
    ] = "127.0.0.1",
) -> None:
    """Serve the web app, the API, /ocsp, /crl, /ca and /tsa."""
    import uvicorn

    ctx = context()
    if not ctx.authority.is_initialized():
        raise NotInitialized()
    ctx.close()
    uvicorn.run(
        "kyso.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


# -- the CA -----------------------------------------------------------------------------------
@ca_app.command("chain")
def ca_chain(output: Annotated[Path | None, typer.Option("-o", "--output")] = None) -> None:
    """PEM: the issuing CA, then the root."""
    ctx = context()
    pem = "".join(i.pem() for i in ctx.authority.chain())
    if output:
        output.write_text(pem)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(pem)


@ca_app.command("revoke")
def ca_revoke(
    which: Annotated[str, typer.Argument(help="root | issuing | ocsp | tsa, or a serial")],
    reason: Annotated[
        RevocationReason, typer.Option(help="ca-compromise, key-compromise, superseded, …")
    ] = RevocationReason.UNSPECIFIED,
    suspend: Annotated[
        bool, typer.Option("--suspend", help="Put on hold instead (undo with --restore).")
    ] = False,
    restore: Annotated[bool, typer.Option("--restore", help="Lift a hold.")] = False,
    confirm: Annotated[
        str | None,
        typer.Option(help="The certificate's serial, typed again (asked for when absent)."),
    ] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Suspend, restore or revoke one of the CA's own certificates.

    Every signature of every subscriber depends on these certificates, so no page and no API
    token can change them: only this command, on the server, after the operator has typed
    the certificate's serial again."""
    from kyso.lifecycle import certificates
    from kyso.pki import status as status_service
    from kyso.registry.access import cli_principal

    if suspend and restore:
        raise InvalidInput("--suspend or --restore, not both", vi="chọn --suspend hoặc --restore")
    ctx = context()
    roles = {role.value: role for role in IdentityRole}
    serial = (
        f"{ctx.authority.identity(roles[which]).certificate.serial_number:x}"
        if which in roles
        else status_service.normalize_serial(which)
    )
    with ctx.db.read() as session:
        row = certificates.get(cli_principal(actor()), session, serial)
        if not status_service.is_ca_own(session, row):
            raise InvalidInput(
                f"{serial} is not one of the CA's own certificates: use `kyso cert`",
                vi=f"{serial} không phải chứng thư của chính CA: dùng `kyso cert`",
            )
        subject = row.subject
    action = "suspend" if suspend else "restore" if restore else f"revoke ({reason.value})"
    err.print(f"[bold red]{action}[/]: {subject}\n  serial {serial}")
    typed = confirm if confirm is not None else typer.prompt("Type the serial again to confirm")
    if status_service.normalize_serial(typed) != serial:
        raise InvalidInput(
            "the serial typed does not match; nothing was changed",
            vi="số hiệu nhập lại không khớp; không thay đổi gì",
        )
    with ctx.db.session() as session:
        if suspend:
            changed = status_service.suspend(
                session, ctx.authority, serial, actor(), note, ca_own_confirmed=typed
            )
        elif restore:
            changed = status_service.restore(
                session, ctx.authority, serial, actor(), note, ca_own_confirmed=typed
            )
        else:
            changed = status_service.revoke(
                session, ctx.authority, serial, reason, actor(), note, ca_own_confirmed=typed
            )
        out.print(f"{changed.serial}: {changed.status.value}")


# -- certificates -----------------------------------------------------------------------------
def _cert_json(row: Certificate, pem: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "serial": row.serial,
        "subject": row.subject,
        "profile": row.profile.value,
        "status": row.status.value,
        "not_before": row.not_before.isoformat(),
        "not_after": row.not_after.isoformat(),
        "key_location": row.key_location,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "reason": row.reason.value if row.reason else None,
    }
    if pem is not None:
        data["certificate_pem"] = pem
    return data


@cert_app.command("issue")
def cert_issue(
    profile: Annotated[Profile, typer.Option(help="individual | organization | device")],
    subject: Annotated[
        str | None, typer.Option(help="RFC 4514, e.g. 'CN=Nguyễn Văn An,O=UBND huyện Ba Bể,C=VN'")
    ] = None,
    csr: Annotated[Path | None, typer.Option(help="PKCS#10 request (PEM or DER).")] = None,
    p12_out: Annotated[
        Path | None, typer.Option(help="Generate the key here as PKCS#12 (low assurance).")
    ] = None,
    p12_password: Annotated[str | None, typer.Option(help="Password of the PKCS#12 file.")] = None,
    token: Annotated[
        str | None, typer.Option(help="Generate the key in this PKCS#11 token (label).")
    ] = None,
    token_pin: Annotated[
        str | None, typer.Option(help="User PIN of the token (or KYSO_TOKEN_PIN).")
    ] = None,
    server_key: Annotated[
        bool, typer.Option("--server-key", help="Generate the key in kyso's own key store (HSM).")
    ] = False,
    key_algorithm: Annotated[str, typer.Option(help="For generated keys.")] = "rsa-2048",
    email: Annotated[
        list[str] | None, typer.Option(help="rfc822Name in the SAN (repeatable).")
    ] = None,
    days: Annotated[
        int | None, typer.Option(help="Validity in days (profile default otherwise).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the certificate PEM here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue a certificate from a CSR, into a token, or as a PKCS#12 file."""
    from kyso.errors import InvalidInput
    from kyso.keys.base import KeyAlgorithm
    from kyso.pki import issuance
    from kyso.pki.names import parse_subject

    chosen = [x for x in (csr, p12_out, token, server_key or None) if x is not None]
    if len(chosen) != 1:
        raise InvalidInput(
            "give exactly one of --csr, --p12-out, --token, --server-key",
            vi="chọn đúng một trong --csr, --p12-out, --token, --server-key",
        )
    emails = tuple(email or ())
    ctx = context()
    p12_path = None
    if csr is not None:
        try:
            csr_data = csr.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {csr}", vi=f"không đọc được {csr}") from exc
        spec = issuance.spec_from_csr(csr_data, profile, subject=subject, emails=emails, days=days)
        with ctx.db.session() as session:
            issued = issuance.issue(session, ctx.authority, spec, actor())
    elif server_key:
        if not subject:
            raise InvalidInput("--server-key needs --subject", vi="--server-key cần --subject")
        with ctx.db.session() as session:
            issued = issuance.issue_with_server_key(
                session,
                ctx.authority,
                profile=profile,
                subject=subject,
                algorithm=KeyAlgorithm(key_algorithm),
                actor=actor(),
                emails=emails,
                days=days,
            )
    elif p12_out is not None:
        if not subject or not p12_password:
            raise InvalidInput(
                "--p12-out needs --subject and --p12-password",
                vi="--p12-out cần --subject và --p12-password",
            )
        key = issuance.generate_for_pkcs12(KeyAlgorithm(key_algorithm))
        spec = issuance.IssueSpec(
            profile,
            parse_subject(subject),
            key.public_key(),  # type: ignore[attr-defined]
            emails=emails,
            days=days,
            key_location="pkcs12",
        )
        with ctx.db.session() as session:
            issued = issuance.issue(session, ctx.authority, spec, actor())
            bundle = issuance.pkcs12_bundle(issued, key, p12_password, issued.row.subject)
            fd = os.open(p12_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(bundle)
        p12_path = str(p12_out)
    else:
        from kyso.keys.pkcs11 import Pkcs11KeyStore

        assert token is not None  # exactly one of the four was chosen, and it was --token
        if not subject:
            raise InvalidInput("--token needs --subject", vi="--token cần --subject")
        pin = token_pin or os.environ.get("KYSO_TOKEN_PIN")
        module = os.environ.get("KYSO_TOKEN_MODULE") or ctx.settings.pkcs11_module
        if not pin or not module:
            raise InvalidInput(
                "set --token-pin (or KYSO_TOKEN_PIN) and KYSO_TOKEN_MODULE",
                vi="đặt --token-pin (hoặc KYSO_TOKEN_PIN) và KYSO_TOKEN_MODULE",
            )
        store = Pkcs11KeyStore(module, token, pin)
        try:
            with ctx.db.session() as session:
                issued = issuance.issue_on_token(
                    session,
                    ctx.authority,
                    store,
                    profile=profile,
                    subject=subject,
                    algorithm=KeyAlgorithm(key_algorithm),
                    actor=actor(),
                    emails=emails,
                    days=days,
                )
        finally:
            store.close()
    if output:
        output.write_text(issued.pem())
    if as_json:
        data = _cert_json(issued.row, issued.pem())
        data["chain_pem"] = "".join(i.pem() for i in ctx.authority.chain())
        if p12_path:
            data["pkcs12"] = p12_path
        _emit(data)
    else:
        out.print(f"issued [bold]{issued.serial}[/] {issued.row.subject}")
        if p12_path:
            out.print(f"PKCS#12 (software key, low assurance): {p12_path}")


@cert_app.command("list")
def cert_list(
    status: Annotated[CertStatus | None, typer.Option(help="good | suspended | revoked")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Certificates, newest first."""
    ctx = context()
    query = select(Certificate).order_by(Certificate.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Certificate.status == status)
    with ctx.db.read() as session:
        rows = session.execute(query).scalars().all()
    if as_json:
        _emit([_cert_json(r) for r in rows])
        return
    table = Table()
    for column in ("serial", "subject", "profile", "status", "not after"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.serial,
            r.subject,
            r.profile.value,
            r.status.value,
            clock.local(r.not_after).date().isoformat(),
        )
    out.print(table)


@cert_app.command("show")
def cert_show(
    serial: str,
    pem: Annotated[bool, typer.Option("--pem", help="Print only the PEM.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One certificate with its status history."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from kyso.errors import NotFound
    from kyso.pki.status import normalize_serial

    ctx = context()
    with ctx.db.read() as session:
        row = session.execute(
            select(Certificate).where(Certificate.serial == normalize_serial(serial))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
        events = [
            (e.at, e.kind.value, e.reason.value if e.reason else "", e.actor) for e in row.events
        ]
    text = x509.load_der_x509_certificate(row.der).public_bytes(Encoding.PEM).decode()
    if pem:
        sys.stdout.write(text)
        return
    data = _cert_json(row, text)
    data["history"] = [
        {"at": at.isoformat(), "event": kind, "reason": reason or None, "by": actor}
        for at, kind, reason, actor in events
    ]
    if as_json:
        _emit(data)
        return
    for key in (
        "serial",
        "subject",
        "profile",
        "status",
        "not_before",
        "not_after",
        "reason",
        "key_location",
    ):
        out.print(f"{key:>13}: {data[key]}")
    for item in data["history"]:
        out.print(f"{'':>13}  {item['at']}  {item['event']}  {item['reason'] or ''}  {item['by']}")


def _status_command(
    action: str, serial: str, reason: RevocationReason | None, note: str | None, as_json: bool
) -> None:
    """A subscriber's certificate, through the same service as the pages and the API (the
    CA's own certificates are refused there: they have ``kyso ca revoke``)."""
    from kyso.lifecycle import certificates
    from kyso.registry.access import cli_principal

    ctx = context()
    who = cli_principal(actor())
    with ctx.db.session() as session:
        if action == "suspend":
            row = certificates.suspend(who, session, ctx.authority, serial, note)
        elif action == "restore":
            row = certificates.restore(who, session, ctx.authority, serial, note)
        else:
            assert reason is not None
            row = certificates.revoke(who, session, ctx.authority, serial, reason, note)
        data = _cert_json(row)
    if as_json:
        _emit(data)
    else:
        out.print(
            f"{data['serial']}: {data['status']}"
            + (f" ({data['reason']})" if data["reason"] else "")
        )


@cert_app.command("suspend")
def cert_suspend(
    serial: str,
    note: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Suspend (certificateHold); undo with restore."""
    _status_command("suspend", serial, None, note, as_json)


@cert_app.command("restore")
def cert_restore(
    serial: str,
    note: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lift a suspension."""
    _status_command("restore", serial, None, note, as_json)


@cert_app.command("revoke")
def cert_revoke(
    serial: str,
    reason: Annotated[
        RevocationReason, typer.Option(help="key-compromise, superseded, …")
    ] = RevocationReason.UNSPECIFIED,
    note: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Revoke for good (RFC 5280 reason)."""
    _status_command("revoke", serial, reason, note, as_json)


# -- CRL, OCSP, audit, API clients ------------------------------------------------------------
@app.command("crl")
def crl_command(
    output: Annotated[Path, typer.Option("-o", "--output")],
    delta: Annotated[
        bool, typer.Option("--delta", help="A delta CRL against the newest full one.")
    ] = False,
    issuer: Annotated[str, typer.Option(help="issuing | root")] = "issuing",
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of DER.")] = False,
) -> None:
    """Make and sign a new CRL now and write it to a file."""
    from kyso.pki import crl as crl_service

    ctx = context()
    identity = ctx.authority.identity(IdentityRole(issuer))
    with ctx.db.session() as session:
        row = crl_service.generate(session, ctx.authority, identity, delta=delta, actor=actor())
        der, number, entries = row.der, row.number, row.entries
    if pem:
        import base64
        import textwrap

        body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
        output.write_text(f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n")
    else:
        output.write_bytes(der)
    err.print(f"{'delta ' if delta else ''}CRL #{number}, {entries} entries → {output}")


@ocsp_app.command("refresh")
def ocsp_refresh() -> None:
    """Sign the OCSP answers that are missing or half-way to expiry."""
    ctx = context()
    out.print(f"signed {ctx.responder.refresh()} OCSP responses")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the whole hash chain, then hold it against the newest signed checkpoint (in the
    database or the checkpoint file) and say what comes after it; exit 1 if anything does
    not fit (an entry changed, entries removed, the log rewritten, a forged checkpoint)."""
    from kyso.audit import checkpoints

    ctx = context()
    result = checkpoints.verify(ctx)
    chain = result.chain
    if as_json:
        _emit(result.as_dict())
    elif not chain.ok:
        err.print(f"[red]audit chain broken[/] at entry {chain.first_bad_seq}: {chain.problem}")
    elif not result.ok:
        err.print(
            f"[red]audit log does not match its checkpoint[/]: {escape(result.describe())}",
            highlight=False,
        )
    else:
        out.print(f"[green]audit chain intact[/]: {chain.entries} entries")
        out.print(escape(result.describe()), highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Anchor the audit log now: a checkpoint of its length and head hash, signed by the
    audit-signing certificate and time-stamped, in the database and the checkpoint file.
    Refused (exit 1) if the log no longer fits the previous checkpoint."""
    from kyso.audit import checkpoints

    ctx = context()
    made = checkpoints.make(ctx)
    path = ctx.settings.audit_checkpoint_dir / checkpoints.FILE_NAME
    if as_json:
        _emit(
            None
            if made is None
            else {
                "seq": made.seq,
                "head_hash": made.head_hash,
                "at": made.at.isoformat(),
                "file": str(path),
            }
        )
    elif made is None:
        out.print("nothing new to anchor: the newest checkpoint covers every entry")
    else:
        out.print(
            f"checkpoint made: entry {made.seq}, head hash {made.head_hash[:16]}…, "
            f"at {made.when}; kept in the database and in {escape(str(path))}",
            highlight=False,
        )


@client_app.command("create")
def client_create(
    name: str,
    scope: Annotated[list[str], typer.Option(help="certificates:read, certificates:issue, …")],
    key: Annotated[
        list[str] | None,
        typer.Option(
            help="A key this system may sign documents with (documents:sign); hsm:<id> for "
            "a key in the central HSM (each signature then approved on the signer's phone)."
        ),
    ] = None,
) -> None:
    """Create an API client and print its token once. A system client with documents:sign
    signs only with the keys named here."""
    from kyso.api import clients
    from kyso.remote.central import PREFIX, STORE_NAME

    ctx = context()
    keys = key or []
    central = [k for k in keys if k.startswith(PREFIX)]
    if central and len(central) != len(keys):
        raise InvalidInput(
            "name either central keys (hsm:) or kyso's own keys for one client",
            vi="một ứng dụng chỉ gán hoặc khóa tập trung (hsm:) hoặc khóa kyso giữ",
        )
    with ctx.db.session() as session:
        token = clients.create(
            session,
            name,
            scope,
            actor(),
            keys=[k.removeprefix(PREFIX) for k in keys],
            keystore=STORE_NAME if central else ctx.keystore.name,
        )
    sys.stdout.write(token + "\n")


def main() -> None:
    """Entry point: usage errors are Typer's; domain errors become one clean line."""
    _register_document_commands()
    _register_registry_commands()
    _register_backup_commands()
    from kyso.cli.requests import request_app  # loads the lifecycle (pkilint): only when run

    app.add_typer(request_app, name="request")
    from kyso.cli.remote import seal_app

    app.add_typer(seal_app, name="seal")
    from kyso.cli.archive import archive_app

    app.add_typer(archive_app, name="archive")
    if not os.environ.get("KYSO_DEBUG"):
        # Libraries log their internal exceptions (pyHanko's difference analysis, for one);
        # what they mean is already in kyso's answer, so a clerk sees no traceback.
        for name in ("pyhanko", "pyhanko_certvalidator", "signxml", "fontTools"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        app()
    except KysoError as exc:
        label = "lỗi" if _lang() == "vi" else "error"
        err.print(
            f"[red]{label}[/] {escape(f'[{exc.code}]')}: {escape(exc.message(_lang()))}",
            highlight=False,
        )
        sys.exit(1)
    except OSError as exc:
        err.print(
            "[red]error[/]: " + escape(f"{exc.strerror or exc}: {exc.filename or ''}"),
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
