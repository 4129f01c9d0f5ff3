"""Make a backup of an instance, and restore one into a fresh home.

What a backup holds (a gzip tar inside the encrypted container of :mod:`kyso.backup.sealed`):

``manifest.json``
    kyso's version, the schema revision, the time, the database kind, the SHA-256 and size of
    every other member, the CA keys (role, key id, SHA-256 of the public key) and whether they
    are in the backup (software store) or stay in the HSM (PKCS#11), and the audit chain's
    length and head hash at the moment of the database copy.
``database/kyso.sqlite`` or ``database/kyso.pgdump``
    SQLite: a consistent copy made online with SQLite's backup API (``sqlite3_backup_*``),
    writers go on meanwhile. PostgreSQL: ``pg_dump --format=custom`` of the instance's
    database, taken in a snapshot exported by a REPEATABLE READ transaction
    (``pg_export_snapshot()``), the one the manifest's figures were read in.
``home/…``
    Everything else under ``KYSO_HOME``: ``keys/`` and ``central-keys/`` (encrypted PKCS#8,
    kept as they are), ``secrets/`` (the key-store passphrase file, the VAPID key),
    ``web-secret``; not the upload area or the job progress files, which are transient.
``audit/checkpoints.jsonl``
    The audit checkpoints kept outside the database (``KYSO_AUDIT_CHECKPOINT_DIR``).

The order of the copies matters: the checkpoint file is read before the database is copied
(a checkpoint written later would name entries the copy lacks), and the key files after it
(a key made meanwhile is then a file too many, never a row without its file).

A restore refuses a non-empty home, decrypts and checks everything in a staging directory
beside the new home (so a wrong passphrase or a changed byte writes nothing), checks the CA's
keys (the restored software keys, or the HSM's for PKCS#11) against the manifest, then moves
the files into place with modes 0600/0700, restores the database, runs the migrations (an
older backup into a newer kyso) and verifies the audit chain against its checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import make_url

from kyso import clock
from kyso.backup.sealed import BackupDamaged, OpeningReader, SealingWriter
from kyso.errors import Conflict, InvalidInput, KysoError
from kyso.settings import Settings

FORMAT = "kyso-backup"
VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/kyso.sqlite"
PGDUMP_MEMBER = "database/kyso.pgdump"
CHECKPOINTS_MEMBER = "audit/checkpoints.jsonl"
TRANSIENT = {"uploads", "jobs"}  # swept or rebuilt by the server: not worth keeping
MIN_PASSPHRASE = 12
_READ = 1024 * 1024


class BackupRefused(KysoError):
    code = "backup_refused"
    http_status = 409
    message_vi = "Không thể sao lưu hoặc khôi phục."
    message_en = "The backup or restore cannot be done."


class RestoreCheckFailed(KysoError):
    code = "restore_check_failed"
    http_status = 409
    message_vi = "Dữ liệu đã khôi phục không qua được bước kiểm tra."
    message_en = "The restored instance failed its checks."


class Progress(Protocol):
    """What a long step reports (the CLI draws it with rich)."""

    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, amount: int) -> None: ...


class _Quiet:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


def read_passphrase_file(path: Path) -> bytes:
    """The first line of a file (never a command-line argument: it would be in ``ps``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}", vi=f"không đọc được {path}") from exc
    return (lines[0] if lines else "").encode("utf-8")


def check_new_passphrase(passphrase: bytes) -> None:
    if len(passphrase.decode("utf-8", "replace")) < MIN_PASSPHRASE:
        raise InvalidInput(
            f"the backup passphrase needs at least {MIN_PASSPHRASE} characters",
            vi=f"mật khẩu sao lưu cần ít nhất {MIN_PASSPHRASE} ký tự",
        )


def kyso_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kyso")
    except PackageNotFoundError:
        return "unknown"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def _private_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mkdtemp makes it 0700


def _sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise BackupRefused("an in-memory database has nothing to back up")
    return Path(parsed.database).resolve()


def _pg_command(tool: str) -> str:
    """The newest ``/usr/lib/postgresql/N/bin/TOOL`` (a dump must come from a pg_dump at
    least as new as the server), else the one on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return str(found[-1])
    path = shutil.which(tool)
    if path is None:
        raise BackupRefused(
            f"{tool} is not installed (apt-get install postgresql-client)",
            vi=f"chưa cài {tool} (apt-get install postgresql-client)",
        )
    return path


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment carrying it (PGPASSWORD), so
    that the password is not in the process list."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


# -- the figures read from the copy ------------------------------------------------------------
_FACTS = {
    "schema_revision": "SELECT version_num FROM alembic_version",
    "audit": "SELECT seq, hash FROM audit_head WHERE id = 1",
    "certificates": "SELECT count(*) FROM certificates",
    "crl_numbers": "SELECT issuer_id, max(number) FROM crls GROUP BY issuer_id",
    "ca_keys": "SELECT id, role, keystore, key_id, certificate_der, active FROM ca_identities",
}


def _facts(cursor: Any) -> dict[str, Any]:
    """What the manifest says of the database copy, read inside the copy's snapshot."""
    cursor.execute(_FACTS["schema_revision"])
    revision = cursor.fetchone()[0]
    cursor.execute(_FACTS["audit"])
    head = cursor.fetchone()
    cursor.execute(_FACTS["certificates"])
    certificates = cursor.fetchone()[0]
    cursor.execute(_FACTS["crl_numbers"])
    crl_numbers = {str(issuer): int(number) for issuer, number in cursor.fetchall()}
    cursor.execute(_FACTS["ca_keys"])
    keys = []
    for identity_id, role, keystore, key_id, der, active in cursor.fetchall():
        public = x509.load_der_x509_certificate(bytes(der)).public_key()
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys.append(
            {
                "identity": int(identity_id),
                "role": str(role).lower(),
                "keystore": keystore,
                "key_id": key_id,
                "spki_sha256": hashlib.sha256(spki).hexdigest(),
                "active": bool(active),
            }
        )
    return {
        "schema_revision": revision,
        "audit": {"seq": int(head[0]), "head_hash": head[1]} if head else None,
        "certificates": int(certificates),
        "crl_numbers": crl_numbers,
        "ca_keys": keys,
    }


def _copy_sqlite(source: Path, target: Path, progress: Progress) -> dict[str, Any]:
    """An online, consistent copy (SQLite's backup API, a few pages at a time so writers
    are not held off), then the manifest's figures read from the copy."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        pages = src.execute("PRAGMA page_count").fetchone()[0]
        progress.start("database (SQLite backup API)", total=pages)
        done = [0]

        def step(_status: int, remaining: int, total: int) -> None:
            progress.advance(total - remaining - done[0])
            done[0] = total - remaining

        src.backup(dst, pages=256, progress=step)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        return _facts(dst.cursor())
    finally:
        src.close()
        dst.close()


def _dump_postgres(url: str, target: Path, progress: Progress) -> dict[str, Any]:
    """``pg_dump -Fc`` inside a snapshot this function's transaction exported and read the
    manifest's figures in (PostgreSQL manual, "Snapshot Synchronization Functions")."""
    import psycopg

    libpq, env = _libpq(url)
    progress.start("database (pg_dump)", total=None)
    with psycopg.connect(libpq, password=env.get("PGPASSWORD")) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        facts = _facts(conn.cursor())
        done = subprocess.run(
            [
                _pg_command("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot[0]}",
                f"--file={target}",
                f"--dbname={libpq}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        conn.execute("COMMIT")
    if done.returncode != 0:
        raise BackupRefused(
            f"pg_dump failed: {done.stderr.strip()[-400:]}",
            vi=f"pg_dump lỗi: {done.stderr.strip()[-400:]}",
        )
    os.chmod(target, 0o600)
    progress.advance(1)
    return facts


def _home_files(settings: Settings, skip: set[Path]) -> Iterator[tuple[Path, str]]:
    """(path, member name) of every regular file under the home worth keeping."""
    home = settings.home
    for root, dirs, files in os.walk(home):
        here = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not (here == home and d in TRANSIENT)
            and (here / d).resolve() not in skip
            and not (here / d).is_symlink()
        )
        for name in sorted(files):
            path = here / name
            if path.is_symlink() or not path.is_file() or path.resolve() in skip:
                continue
            yield path, "home/" + path.relative_to(home).as_posix()


@dataclass(frozen=True)
class Made:
    path: Path
    size: int
    manifest: dict[str, Any]


def make(
    settings: Settings, output: Path, passphrase: bytes, progress: Progress | None = None
) -> Made:
    """Write the encrypted backup of the instance ``settings`` name to ``output`` (0600,
    written beside it under another name and renamed when complete)."""
    progress = progress or _Quiet()
    check_new_passphrase(passphrase)
    output = output.resolve()
    if output.exists():
        raise BackupRefused(f"{output} exists", vi=f"{output} đã có")
    is_sqlite = settings.database_url.startswith("sqlite")
    staging = _private_dir(output.parent, ".kyso-backup-")
    partial = output.with_name(f".{output.name}.partial")
    try:
        members: list[tuple[Path, str]] = []
        checkpoint_file = settings.audit_checkpoint_dir / "checkpoints.jsonl"
        if checkpoint_file.exists():  # first, before the database (see the module's text)
            copy = staging / "checkpoints.jsonl"
            shutil.copyfile(checkpoint_file, copy)
            members.append((copy, CHECKPOINTS_MEMBER))
        if is_sqlite:
            database = staging / "kyso.sqlite"
            facts = _copy_sqlite(_sqlite_path(settings.database_url), database, progress)
            members.insert(0, (database, SQLITE_MEMBER))
        else:
            database = staging / "kyso.pgdump"
            facts = _dump_postgres(settings.database_url, database, progress)
            members.insert(0, (database, PGDUMP_MEMBER))
        skip = {staging.resolve(), output, partial.resolve(), settings.audit_checkpoint_dir}
        if is_sqlite:
            db_path = _sqlite_path(settings.database_url)
            skip |= {Path(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")}
        members += list(_home_files(settings, skip))
        listed: list[dict[str, Any]] = []
        for path, name in members:
            listed.append({"name": name, "size": path.stat().st_size, "sha256": _sha256_file(path)})
        software = settings.keystore == "software"
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kyso_version": kyso_version(),
            "created_at": clock.now().isoformat(),
            "source_home": str(settings.home),
            "database": {
                "kind": "sqlite" if is_sqlite else "postgresql",
                "member": members[0][1],
            },
            "keystore": {
                "kind": settings.keystore,
                "in_backup": software,
                "pkcs11_token": None if software else settings.pkcs11_token,
                "passphrase_in_backup": software and settings.passphrase_file.exists(),
                "note": None
                if software
                else "PKCS#11 keys stay in the HSM and are not in this backup",
            },
            "central_store": {
                "in_backup": settings.hsm_module is None,
                "hsm_token": settings.hsm_token if settings.hsm_module else None,
            },
            **facts,
            "members": listed,
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        total = sum(int(item["size"]) for item in listed)
        progress.start("encrypting", total=total)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as sink:
            writer = SealingWriter(sink, passphrase)
            with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(body), 0o600, 0
                tar.addfile(info, io.BytesIO(body))
                for path, name in members:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = path.stat().st_size, 0o600, 0
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                    progress.advance(info.size)
            writer.close()
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, output)
        return Made(output, output.stat().st_size, manifest)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)


# -- restore -----------------------------------------------------------------------------------
def _safe_name(name: str, allowed: set[str]) -> str:
    if name not in allowed or name.startswith("/") or ".." in name.split("/"):
        raise BackupDamaged(f"unexpected member {name!r}", vi=f"thành phần lạ {name!r}")
    return name


def _unpack(archive: Path, passphrase: bytes, staging: Path, progress: Progress) -> dict[str, Any]:
    """Decrypt and unpack into ``staging``, checking every member against the manifest;
    return the manifest once the whole archive is authenticated."""
    with archive.open("rb") as source:
        reader = OpeningReader(source, passphrase)
        progress.start("decrypting", total=archive.stat().st_size)
        manifest: dict[str, Any] | None = None
        expected: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        try:
            tar = tarfile.open(fileobj=reader, mode="r|gz")  # type: ignore[call-overload]  # noqa: SIM115 (closed below, before the end is read)
            for info in tar:
                if not info.isfile():
                    raise BackupDamaged(f"not a file: {info.name!r}")
                handle = tar.extractfile(info)
                assert handle is not None
                if manifest is None:
                    if info.name != MANIFEST or info.size > 16 * 1024 * 1024:
                        raise BackupDamaged("the manifest does not come first")
                    manifest = json.loads(handle.read())
                    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                        raise BackupDamaged("unknown manifest format")
                    expected = {m["name"]: m for m in manifest["members"]}
                    continue
                name = _safe_name(info.name, set(expected) - seen)
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while block := handle.read(_READ):
                        digest.update(block)
                        out.write(block)
                        progress.advance(len(block))
                if digest.hexdigest() != expected[name]["sha256"]:
                    raise BackupDamaged(f"{name} does not match its SHA-256 in the manifest")
                seen.add(name)
            tar.close()
            while reader.read(_READ):  # the end, with the last chunk's tag
                pass
        except (tarfile.TarError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
            raise BackupDamaged(f"unreadable contents ({type(exc).__name__})") from exc
        if manifest is None or not reader.finished:
            raise BackupDamaged("the archive ends early")
        missing = set(expected) - seen
        if missing:
            raise BackupDamaged(f"members missing: {sorted(missing)[:3]}")
        return manifest


def _target_database(manifest: dict[str, Any], home: Path, url: str | None) -> str:
    kind = manifest["database"]["kind"]
    if url is None:
        if kind != "sqlite":
            raise InvalidInput(
                "a PostgreSQL backup needs --database-url of an empty database",
                vi="bản sao lưu PostgreSQL cần --database-url của một cơ sở dữ liệu trống",
            )
        return f"sqlite:///{home / 'kyso.db'}"
    if url.startswith("sqlite") != (kind == "sqlite"):
        raise InvalidInput(
            f"this backup is of a {kind} database and restores into the same kind",
            vi=f"bản sao lưu này là của cơ sở dữ liệu {kind}, chỉ khôi phục vào cùng loại",
        )
    return url


def _check_revision(manifest: dict[str, Any]) -> None:
    """A backup from a newer kyso (a schema revision this one does not know) is refused."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from kyso.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
    if manifest["schema_revision"] not in known:
        raise BackupRefused(
            f"the backup's schema {manifest['schema_revision']} is newer than this kyso "
            f"({kyso_version()}); restore it with kyso {manifest['kyso_version']} or newer",
            vi=f"lược đồ {manifest['schema_revision']} của bản sao lưu mới hơn kyso này",
        )


def _check_keys(manifest: dict[str, Any], settings: Settings, staged_home: Path) -> int:
    """Every CA key the manifest names is in the key store this restore will use (the
    restored files, or the HSM for PKCS#11) with the public key its certificate has."""
    from kyso.keys.base import KeyStore
    from kyso.keys.factory import open_keystore, software_passphrase

    kind = manifest["keystore"]["kind"]
    if settings.keystore != kind:
        raise RestoreCheckFailed(
            f"the backup's CA keys are in a {kind} key store: set KYSO_KEYSTORE={kind}"
            + (
                " and KYSO_PKCS11_MODULE, KYSO_PKCS11_TOKEN, KYSO_PKCS11_PIN"
                if kind != "software"
                else ""
            ),
            vi=f"khóa CA của bản sao lưu nằm trong kho {kind}: đặt KYSO_KEYSTORE={kind}",
        )
    store: KeyStore
    if kind == "software":
        from kyso.keys.software import SoftwareKeyStore

        staged = dataclasses.replace(settings, home=staged_home)
        store = SoftwareKeyStore(staged.keys_dir, software_passphrase(staged))
    else:
        store = open_keystore(settings)
    try:
        for key in manifest["ca_keys"]:
            try:
                held = store.get(key["key_id"]).public_key()
            except KysoError as exc:
                raise RestoreCheckFailed(
                    f"the key store has no key {key['key_id']} ({key['role']} CA identity)",
                    vi=f"kho khóa không có khóa {key['key_id']} ({key['role']})",
                ) from exc
            spki = held.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if hashlib.sha256(spki).hexdigest() != key["spki_sha256"]:
                raise RestoreCheckFailed(
                    f"key {key['key_id']} is not the key of the {key['role']} certificate",
                    vi=f"khóa {key['key_id']} không phải khóa của chứng thư {key['role']}",
                )
    finally:
        store.close()
    return len(manifest["ca_keys"])


def _postgres_is_empty(url: str) -> bool:
    import psycopg

    libpq, env = _libpq(url)
    with psycopg.connect(libpq, password=env.get("PGPASSWORD")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        ).fetchone()
    return row is not None and row[0] == 0


def _pg_restore(url: str, dump: Path, force: bool) -> None:
    libpq, env = _libpq(url)
    done = subprocess.run(
        [
            _pg_command("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            *(["--clean", "--if-exists"] if force else []),
            f"--dbname={libpq}",
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupRefused(
            f"pg_restore failed: {done.stderr.strip()[-400:]}",
            vi=f"pg_restore lỗi: {done.stderr.strip()[-400:]}",
        )


def _is_empty(home: Path) -> bool:
    return not home.exists() or (home.is_dir() and not any(home.iterdir()))


def _place(source: Path, target: Path) -> None:
    """Move a staged tree into place: directories 0700, files 0600."""
    for root, dirs, files in os.walk(source):
        here = Path(root)
        dest = target / here.relative_to(source)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(dest, 0o700)
        for name in files:
            os.chmod(here / name, 0o600)
            shutil.move(str(here / name), dest / name)
        dirs.sort()


@dataclass(frozen=True)
class Restored:
    home: Path
    database_url: str
    manifest: dict[str, Any]
    schema_from: str
    schema_to: str
    keys_checked: int
    audit_entries: int
    audit_message: str


def restore(
    archive: Path,
    home: Path,
    passphrase: bytes,
    *,
    database_url: str | None = None,
    force: bool = False,
    env: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> Restored:
    """Restore ``archive`` into ``home`` (see the module's text for the steps); ``env`` is
    the environment that names the key store (``os.environ`` by default)."""
    from kyso.audit import checkpoints
    from kyso.context import Context
    from kyso.store.db import Database

    progress = progress or _Quiet()
    home = home.resolve()
    if not force and not _is_empty(home):
        raise Conflict(
            f"{home} is not empty (use --force to restore over it)",
            vi=f"{home} không trống (dùng --force để ghi đè)",
        )
    if not archive.is_file():
        raise InvalidInput(f"{archive} is not a file", vi=f"{archive} không phải tệp")
    staging = _private_dir(home.parent, f".{home.name}.restore-")
    home_was_there = home.exists()
    try:
        manifest = _unpack(archive, passphrase, staging, progress)
        _check_revision(manifest)
        url = _target_database(manifest, home, database_url)
        run_env = dict(os.environ if env is None else env)
        run_env.update(KYSO_HOME=str(home), KYSO_DATABASE_URL=url)
        settings = dataclasses.replace(
            Settings.from_env(run_env), audit_checkpoint_directory=home / "audit"
        )
        keys_checked = _check_keys(manifest, settings, staging / "home")
        sqlite_target = _sqlite_path(url) if url.startswith("sqlite") else None
        if sqlite_target is not None:
            if sqlite_target.exists() and not force:
                raise Conflict(f"{sqlite_target} exists", vi=f"{sqlite_target} đã có")
        elif not force and not _postgres_is_empty(url):
            raise Conflict(
                "the target PostgreSQL database is not empty (use --force)",
                vi="cơ sở dữ liệu PostgreSQL đích không trống (dùng --force)",
            )
        # -- from here on the archive is known good: write
        progress.start("restoring", total=None)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        if (staging / "home").exists():
            _place(staging / "home", home)
        if (staging / "audit").exists():
            _place(staging / "audit", home / "audit")
        if sqlite_target is not None:
            sqlite_target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{sqlite_target}{suffix}").unlink(missing_ok=True)
            os.chmod(staging / SQLITE_MEMBER, 0o600)
            shutil.move(str(staging / SQLITE_MEMBER), sqlite_target)
        else:
            _pg_restore(url, staging / PGDUMP_MEMBER, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not home_was_there:  # a failed pg_restore: leave no half-restored home behind
            shutil.rmtree(home, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    # -- migrations, then the checks
    progress.start("migrating and verifying", total=None)
    db = Database(url)
    try:
        db.migrate()
        schema_to = _current_revision(db)
    finally:
        db.dispose()
    ctx = Context(settings)
    try:
        check = checkpoints.verify(ctx)
        if not check.ok:
            raise RestoreCheckFailed(check.describe(), vi=check.describe())
        audit = manifest.get("audit")
        if audit is not None:
            from sqlalchemy import select

            from kyso.store.models import AuditEntry

            with ctx.db.read() as session:
                stored = session.execute(
                    select(AuditEntry.hash).where(AuditEntry.seq == audit["seq"])
                ).scalar_one_or_none()
            if stored != audit["head_hash"]:
                raise RestoreCheckFailed(
                    f"audit entry {audit['seq']} differs from the manifest's head hash",
                    vi=f"mục nhật ký {audit['seq']} khác mã băm trong bản kê",
                )
    finally:
        ctx.close()
    return Restored(
        home,
        url,
        manifest,
        manifest["schema_revision"],
        schema_to,
        keys_checked,
        check.chain.entries,
        check.describe(),
    )


def _current_revision(db: Any) -> str:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return str(MigrationContext.configure(conn).get_current_revision())
