"""`kyso sign …`, `kyso verify`, `kyso trust …`: documents and who we trust."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.signing.levels import Level

if TYPE_CHECKING:
    from kyso.signing.identity import SignerIdentity
    from kyso.trust import TrustContext

sign_app = typer.Typer(
    help="Sign documents: PDF (PAdES), any file (CAdES), XML (XAdES), e-mail (S/MIME).",
    no_args_is_help=True,
)
trust_app = typer.Typer(help="Trust anchors for validation.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)

P12 = Annotated[Path | None, typer.Option("--p12", help="PKCS#12 file with the signer's key.")]
PASSWORD = Annotated[str | None, typer.Option("--password", help="Password of the PKCS#12 file.")]
KEY = Annotated[
    str | None, typer.Option("--key", help="Id of a key kyso holds (cert issue --server-key).")
]
LEVEL = Annotated[Level, typer.Option("--level", help="B-B, B-T, B-LT or B-LTA.")]
OUTPUT = Annotated[Path, typer.Option("-o", "--output", help="Where to write the signed result.")]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}", vi=f"không đọc được {path}") from exc


def _sign(
    ctx: Context,
    file: Path,
    p12: Path | None,
    password: str | None,
    key: str | None,
    make: Callable[[bytes, SignerIdentity], bytes],
    *,
    kind: str,
    number: str | None = None,
    level: Level | None = None,
) -> bytes:
    """Sign ``file`` with a PKCS#12 file or a key kyso holds (never one of the CA's: the
    signing service refuses those), and write the audit entry either way."""
    from kyso.cli.main import actor
    from kyso.registry.access import cli_principal
    from kyso.signing import identity
    from kyso.signing.service import audit_signature, sign_with_key

    if (p12 is None) == (key is None):
        raise InvalidInput(
            "give --p12 FILE --password P, or --key KEY-ID",
            vi="chọn --p12 TỆP --password MẬT-KHẨU, hoặc --key MÃ-KHÓA",
        )
    content = _read(file)
    who = cli_principal(actor())
    if key is not None:
        return sign_with_key(
            ctx, who, key, content, make, kind=kind, entry="cli", name=file.name,
            number=number, level=level,
        )  # fmt: skip
    assert p12 is not None
    if password is None:
        raise InvalidInput("--p12 needs --password", vi="--p12 cần --password")
    found = identity.from_pkcs12(_read(p12), password)
    if not found.chain:
        found.chain = [i.certificate for i in ctx.authority.chain()]
    signed = make(content, found)
    audit_signature(
        ctx, who, key="pkcs12", serial=f"{found.certificate.serial_number:x}", kind=kind,
        entry="cli", content=content, signed=signed, name=file.name, number=number, level=level,
    )  # fmt: skip
    return signed


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    err.print(f"signed → {path} ({len(data):,} bytes)")


def _trust(ctx: Context) -> TrustContext:
    from kyso.trust import trust_context

    return trust_context(ctx)


@sign_app.command("pdf")
def sign_pdf(
    file: Path,
    output: OUTPUT,
    p12: P12 = None,
    password: PASSWORD = None,
    key: KEY = None,
    level: LEVEL = Level.B_B,
    kind: Annotated[
        str | None, typer.Option(help="approval, issuing, attachment, copy, incoming")
    ] = None,
    page: Annotated[int | None, typer.Option(help="Page for --box or --anchor (from 1).")] = None,
    box: Annotated[
        str | None, typer.Option(help="X1,Y1,X2,Y2 in points from the bottom left.")
    ] = None,
    field: Annotated[str | None, typer.Option(help="An empty signature field to fill.")] = None,
    anchor: Annotated[
        str | None, typer.Option(help="Place the stamp at this text, e.g. the signer's name.")
    ] = None,
    image: Annotated[
        Path | None, typer.Option(help="Signature image (blue, transparent PNG).")
    ] = None,
    seal: Annotated[
        Path | None, typer.Option(help="The organization's seal (red, transparent PNG).")
    ] = None,
    number: Annotated[
        str | None, typer.Option(help="Number and notation, e.g. 15/QĐ-UBND.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Position title, e.g. CHỦ TỊCH.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Signer's full name under the signature.")
    ] = None,
    date: Annotated[str | None, typer.Option(help="The document's date (issuing).")] = None,
    copy_kind: Annotated[str | None, typer.Option(help="SAO Y, SAO LỤC or TRÍCH SAO.")] = None,
    copying_org: Annotated[
        str | None, typer.Option(help="The organization making the copy.")
    ] = None,
    received_number: Annotated[
        str | None, typer.Option(help="Incoming number (incoming mark).")
    ] = None,
    received_date: Annotated[
        str | None, typer.Option(help="Date received, dd/mm/yyyy (incoming mark).")
    ] = None,
    receiving_org: Annotated[
        str | None, typer.Option(help="The receiving organization (incoming mark).")
    ] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    location: Annotated[str | None, typer.Option()] = None,
) -> None:
    """PAdES with a Decree 30/2020 stamp (or invisible without --kind)."""
    from kyso.cli.main import context
    from kyso.signing.options import StampOptions, appearance
    from kyso.signing.pades import sign_pdf as sign
    from kyso.signing.service import level_support
    from kyso.signing.stamps import StampKind

    ctx = context()
    look = appearance(
        StampOptions(
            kind=StampKind(kind) if kind else None,
            page=page,
            box=box,
            field=field,
            anchor=anchor,
            title=title,
            name=name,
            number=number,
            date=date,
            copy_kind=copy_kind,
            copying_org=copying_org,
            received_number=received_number,
            received_date=received_date,
            receiving_org=receiving_org,
            image=_read(image) if image else None,
            seal=_read(seal) if seal else None,
        )
    )
    stamper, trust = level_support(ctx, level, trust_from=Level.B_T)

    def make(content: bytes, who: SignerIdentity) -> bytes:
        return sign(
            content,
            who,
            level=level,
            appearance=look,
            timestamper=stamper,
            trust=trust,
            reason=reason,
            location=location,
        )

    _write(
        output, _sign(ctx, file, p12, password, key, make, kind="pdf", number=number, level=level)
    )


@sign_app.command("cms")
def sign_cms(
    file: Path,
    output: OUTPUT,
    p12: P12 = None,
    password: PASSWORD = None,
    key: KEY = None,
    level: LEVEL = Level.B_B,
) -> None:
    """A detached CAdES signature (.p7s) over any file."""
    from kyso.cli.main import context
    from kyso.signing.cades import sign_cms as sign
    from kyso.signing.service import level_support

    ctx = context()
    stamper, trust = level_support(ctx, level)

    def make(content: bytes, who: SignerIdentity) -> bytes:
        return sign(content, who, level=level, timestamper=stamper, trust=trust)

    _write(output, _sign(ctx, file, p12, password, key, make, kind="cms", level=level))


@sign_app.command("xml")
def sign_xml(
    file: Path,
    output: OUTPUT,
    p12: P12 = None,
    password: PASSWORD = None,
    key: KEY = None,
    level: LEVEL = Level.B_B,
    parent: Annotated[
        str | None, typer.Option(help="XPath of the element to hold the signature.")
    ] = None,
    parallel: Annotated[
        bool,
        typer.Option(
            "--parallel",
            help="Leave room for more signatures (EU DSS's form; .NET's SignedXml cannot "
            "check it).",
        ),
    ] = False,
) -> None:
    """An enveloped XAdES signature (edXML messages: --parent for edXMLHeader)."""
    from kyso.cli.main import context
    from kyso.signing.service import level_support
    from kyso.signing.xades import sign_xml as sign

    ctx = context()
    stamper, trust = level_support(ctx, level)

    def make(content: bytes, who: SignerIdentity) -> bytes:
        return sign(
            content,
            who,
            level=level,
            timestamper=stamper,
            parent_xpath=parent,
            trust=trust,
            parallel=parallel,
        )

    _write(output, _sign(ctx, file, p12, password, key, make, kind="xml", level=level))


@sign_app.command("email")
def sign_email(
    file: Path, output: OUTPUT, p12: P12 = None, password: PASSWORD = None, key: KEY = None
) -> None:
    """An S/MIME multipart/signed e-mail for the official mail system."""
    from kyso.cli.main import context
    from kyso.signing.smime import sign_email as sign

    ctx = context()
    _write(output, _sign(ctx, file, p12, password, key, sign, kind="email"))


def verify_command(
    file: Path,
    data: Annotated[
        Path | None, typer.Option("--data", help="The original file of a detached signature.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write OUT.html or OUT.pdf.")
    ] = None,
    lang: Annotated[str, typer.Option(help="vi or en")] = "vi",
) -> None:
    """Validate any signed file; exit 0 only for TOTAL-PASSED."""
    from kyso.cli.main import context
    from kyso.validation import render
    from kyso.validation.verify import verify

    ctx = context()
    result = verify(
        _read(file), _trust(ctx), name=file.name, detached_data=_read(data) if data else None
    )
    if report is not None:
        if report.suffix.lower() == ".pdf":
            report.write_bytes(render.to_pdf(result, lang))
        else:
            report.write_text(render.to_html(result, lang), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        colour = {"TOTAL-PASSED": "green", "TOTAL-FAILED": "red"}.get(
            result.indication.value, "yellow"
        )
        verdict = result.message_vi if lang == "vi" else result.message_en
        out.print(f"[{colour}]{result.indication.value}[/] {verdict}", highlight=False)
        for index, sig in enumerate(result.signatures, start=1):
            who = sig.signer.subject if sig.signer else "?"
            out.print(
                f"  {index}. {sig.indication.value}"
                f"{' / ' + sig.sub_indication.value if sig.sub_indication else ''} — {who}",
                highlight=False,
            )
            out.print(f"     {sig.message_vi if lang == 'vi' else sig.message_en}", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


@trust_app.command("add")
def trust_add(root: Path, note: Annotated[str | None, typer.Option()] = None) -> None:
    """Trust a root CA certificate (PEM or DER) for validation."""
    from kyso.cli.main import actor, context
    from kyso.trust import add_anchor

    ctx = context()
    with ctx.db.session() as session:
        anchor = add_anchor(session, _read(root), actor(), note)
        out.print(f"trusted {anchor.subject} (SHA-256 {anchor.sha256[:16]}…)")


@trust_app.command("list")
def trust_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """kyso's own root and the imported anchors."""
    from kyso.cli.main import context
    from kyso.trust import list_anchors

    rows = list_anchors(context())
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {"sha256": f, "subject": s, "not_after": n.isoformat(), "built_in": b}
                    for f, s, n, b in rows
                ],
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
        return
    table = Table()
    for column in ("subject", "SHA-256", "not after", "source"):
        table.add_column(column)
    for fingerprint, subject, not_after, built_in in rows:
        table.add_row(
            subject,
            fingerprint[:16] + "…",
            not_after.date().isoformat(),
            "kyso" if built_in else "imported",
        )
    out.print(table)
