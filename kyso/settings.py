"""All configuration in one object, read from environment variables.

Every variable is documented in the README's "Settings" table; nothing else reads
``os.environ`` (the CLI's ``--home`` sets ``KYSO_HOME`` before settings are built).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The default sits under IANA's documentation enterprise number 32473 (RFC 5612), which nobody
# deploys: every real deployment sets KYSO_POLICY_OID to the OID of its certificate policy.
# (2.25.<uuid> and 2.999.* would need no registration either, but pkilint's decoder refuses
# arcs over 32 bits and first-arc pairs above 2.39.)
DEFAULT_POLICY_OID = "1.3.6.1.4.1.32473.84.1"
DEFAULT_TSA_POLICY_OID = "1.3.6.1.4.1.32473.84.2"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _number(env: dict[str, str], name: str, default: int) -> int:
    """An integer variable; unset or empty means ``default`` (a compose file's ``NAME=``)."""
    value = env.get(name)
    return int(value) if value else default


def _approvals(value: str | None) -> dict[str, int]:
    """``new_organization=2,revocation=1``: approvals a request type needs (default 1)."""
    result: dict[str, int] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        name, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit() or not 1 <= int(count) <= 5:
            raise ValueError(
                f"KYSO_APPROVALS_REQUIRED: '{item.strip()}' is not TYPE=N with N from 1 to 5"
            )
        result[name.strip()] = int(count)
    return result


def _peers(value: str | None) -> dict[str, str]:
    """``000.00.02.H06=https://kyso.bacninh.gov.vn;000.00.00.G12=https://…``: the other kyso
    installations (another province, a ministry) and the identifier-code prefixes they serve."""
    result: dict[str, str] = {}
    for item in (value or "").replace("\n", ";").split(";"):
        if not item.strip():
            continue
        prefix, sep, url = item.partition("=")
        url = url.strip().rstrip("/")
        if not sep or not prefix.strip() or not url.startswith(("https://", "http://")):
            raise ValueError(f"KYSO_EXCHANGE_PEERS: '{item.strip()}' is not PREFIX=URL")
        result[prefix.strip()] = url
    return result


def _secret(env: dict[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (first line)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    return None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    keystore: str = "software"  # "software" or "pkcs11"
    keystore_passphrase: str | None = None
    pkcs11_module: str | None = None
    pkcs11_token: str = "kyso"  # noqa: S105 (a token label, not a secret)
    pkcs11_pin: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    policy_oid: str = DEFAULT_POLICY_OID
    tsa_policy_oid: str = DEFAULT_TSA_POLICY_OID
    crl_next_update_hours: int = 24
    delta_crl_next_update_hours: int = 4
    ocsp_validity_hours: int = 24
    lint_on_issue: bool = True
    max_upload_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 64 * 1024
    pin_change_days: int = 180  # a token holder who has not changed the PIN for longer is listed
    # public verification is anonymous and costs CPU: validations per minute per client address
    verify_per_minute: int = 30
    exchange_per_minute: int = 300  # packages another installation may deliver (per address)
    # ... and each validation is bounded: signatures and revisions of a PDF (refused above them
    # before any is checked), a pool of worker processes (0: one per core) with a queue, the
    # CPU seconds and memory one validation may use, and a deadline after which its worker is
    # stopped (kyso.validation.pool)
    verify_max_signatures: int = 50
    verify_max_revisions: int = 100
    verify_workers: int = 0
    verify_queue: int = 8
    verify_cpu_seconds: int = 20
    verify_deadline_seconds: float = 30.0
    verify_memory_mb: int = 1024
    # the same per client address for OCSP answers signed on the spot (nonce, SHA-256 CertID,
    # several certificates, unknown serial) and for time-stamps over HTTP; 0 switches one off
    ocsp_sign_per_minute: int = 120
    tsa_per_minute: int = 60
    # login attempts per client address, and failed ones per hour (no account is ever locked)
    login_per_minute: int = 60
    login_failures_per_hour: int = 60
    # Approvals each request type needs, e.g. {"new_organization": 2}; absent types need 1.
    approvals_required: dict[str, int] = field(default_factory=dict)
    # PKCS#11 module of subscribers' USB tokens (the CA's own module if unset).
    token_module: str | None = None
    # The outbox sender (kyso.lifecycle.notify); no host means mail stays in the outbox.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "kyso@localhost"
    smtp_starttls: bool = False
    # The audit log's signed checkpoints: made every N minutes when entries were added, and
    # appended to checkpoints.jsonl in this directory as well as to the database (a copy out
    # of reach of whoever can delete table rows; default KYSO_HOME/audit).
    audit_checkpoint_minutes: int = 10
    audit_checkpoint_directory: Path | None = None
    # Remote signing (kyso.remote): the central signing HSM holding subscribers' and seals'
    # keys (a PKCS#11 token of its own, apart from the CA's keys; without a module the keys
    # are software keys under KYSO_HOME/central-keys, for the demo only), how long a consent
    # request waits on the phone, how long a SAD lives, how many documents one approval may
    # list, wrong signing PINs before the PIN is blocked, and CSC access tokens' lifetime.
    hsm_module: str | None = None
    hsm_token: str = "kyso-hsm"  # noqa: S105 (a token label, not a secret)
    hsm_pin: str | None = None
    approval_seconds: int = 300
    sad_seconds: int = 300
    approval_batch_max: int = 50
    signing_pin_tries: int = 5
    csc_token_seconds: int = 3600
    # how long a CSC v1 credentials/authorize (and v2 in operationMode S) waits for the phone
    csc_wait_seconds: int = 60
    # Web Push to the phones (VAPID, RFC 8292): the contact the push services are given.
    vapid_subject: str = "mailto:kyso@localhost"
    # Webhooks (kyso.remote.webhooks) refuse callback URLs on loopback and link-local
    # addresses (SSRF); a test or a single-machine demo allows them.
    webhook_allow_local: bool = False
    # Operations (kyso.observability, kyso.cluster): the period of the server's scheduled work
    # (done by one process of the cluster at a time), the client addresses or networks that
    # may read /metrics (others get 404), logs as one JSON object per line ("json") or as
    # text, and prometheus-client's directory for several worker processes (its own variable,
    # which the library itself reads at import).
    loop_seconds: float = 60.0
    # Exchange between agencies (kyso.exchange): other kyso installations by the prefix of
    # the identifier codes (mã định danh) they serve.
    exchange_peers: dict[str, str] = field(default_factory=dict)
    exchange_retry_seconds: int = 60  # the first wait before delivering again (then doubled)
    metrics_allow: str = "127.0.0.1,::1"
    log_format: str = "text"
    prometheus_multiproc_dir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def passphrase_file(self) -> Path:
        return self.home / "secrets" / "keystore.pass"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def central_keys_dir(self) -> Path:
        return self.home / "central-keys"

    @property
    def vapid_key_file(self) -> Path:
        return self.home / "secrets" / "vapid.pem"

    @property
    def audit_checkpoint_dir(self) -> Path:
        return self.audit_checkpoint_directory or self.home / "audit"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("KYSO_HOME") or Path.cwd() / "var" / "kyso").resolve()
        database_url = env.get("KYSO_DATABASE_URL") or f"sqlite:///{home / 'kyso.db'}"
        return cls(
            home=home,
            database_url=database_url,
            keystore=env.get("KYSO_KEYSTORE", "software"),
            keystore_passphrase=_secret(env, "KYSO_KEYSTORE_PASSPHRASE"),
            pkcs11_module=env.get("KYSO_PKCS11_MODULE"),
            pkcs11_token=env.get("KYSO_PKCS11_TOKEN", "kyso"),
            pkcs11_pin=_secret(env, "KYSO_PKCS11_PIN"),
            base_url=env.get("KYSO_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            policy_oid=env.get("KYSO_POLICY_OID", DEFAULT_POLICY_OID),
            tsa_policy_oid=env.get("KYSO_TSA_POLICY_OID", DEFAULT_TSA_POLICY_OID),
            crl_next_update_hours=_number(env, "KYSO_CRL_NEXT_UPDATE_HOURS", 24),
            delta_crl_next_update_hours=_number(env, "KYSO_DELTA_CRL_NEXT_UPDATE_HOURS", 4),
            ocsp_validity_hours=_number(env, "KYSO_OCSP_VALIDITY_HOURS", 24),
            lint_on_issue=_bool(env.get("KYSO_LINT_ON_ISSUE"), True),
            max_upload_bytes=_number(env, "KYSO_MAX_UPLOAD_BYTES", 10 * 1024 * 1024),
            pin_change_days=_number(env, "KYSO_PIN_CHANGE_DAYS", 180),
            verify_per_minute=_number(env, "KYSO_VERIFY_PER_MINUTE", 30),
            exchange_per_minute=_number(env, "KYSO_EXCHANGE_PER_MINUTE", 300),
            exchange_retry_seconds=_number(env, "KYSO_EXCHANGE_RETRY_SECONDS", 60),
            verify_max_signatures=_number(env, "KYSO_VERIFY_MAX_SIGNATURES", 50),
            verify_max_revisions=_number(env, "KYSO_VERIFY_MAX_REVISIONS", 100),
            verify_workers=_number(env, "KYSO_VERIFY_WORKERS", 0),
            verify_queue=_number(env, "KYSO_VERIFY_QUEUE", 8),
            verify_cpu_seconds=_number(env, "KYSO_VERIFY_CPU_SECONDS", 20),
            verify_deadline_seconds=float(env.get("KYSO_VERIFY_DEADLINE_SECONDS") or 30),
            verify_memory_mb=_number(env, "KYSO_VERIFY_MEMORY_MB", 1024),
            ocsp_sign_per_minute=_number(env, "KYSO_OCSP_SIGN_PER_MINUTE", 120),
            tsa_per_minute=_number(env, "KYSO_TSA_PER_MINUTE", 60),
            login_per_minute=_number(env, "KYSO_LOGIN_PER_MINUTE", 60),
            login_failures_per_hour=_number(env, "KYSO_LOGIN_FAILURES_PER_HOUR", 60),
            approvals_required=_approvals(env.get("KYSO_APPROVALS_REQUIRED")),
            token_module=env.get("KYSO_TOKEN_MODULE") or None,
            smtp_host=env.get("KYSO_SMTP_HOST") or None,
            smtp_port=_number(env, "KYSO_SMTP_PORT", 25),
            smtp_user=env.get("KYSO_SMTP_USER") or None,
            smtp_password=_secret(env, "KYSO_SMTP_PASSWORD"),
            smtp_from=env.get("KYSO_SMTP_FROM") or "kyso@localhost",
            smtp_starttls=_bool(env.get("KYSO_SMTP_STARTTLS"), False),
            hsm_module=env.get("KYSO_HSM_MODULE") or None,
            hsm_token=env.get("KYSO_HSM_TOKEN") or "kyso-hsm",
            hsm_pin=_secret(env, "KYSO_HSM_PIN"),
            approval_seconds=_number(env, "KYSO_APPROVAL_SECONDS", 300),
            sad_seconds=_number(env, "KYSO_SAD_SECONDS", 300),
            approval_batch_max=_number(env, "KYSO_APPROVAL_BATCH_MAX", 50),
            signing_pin_tries=_number(env, "KYSO_SIGNING_PIN_TRIES", 5),
            csc_token_seconds=_number(env, "KYSO_CSC_TOKEN_SECONDS", 3600),
            csc_wait_seconds=_number(env, "KYSO_CSC_WAIT_SECONDS", 60),
            vapid_subject=env.get("KYSO_VAPID_SUBJECT") or "mailto:kyso@localhost",
            loop_seconds=float(env.get("KYSO_LOOP_SECONDS") or 60),
            exchange_peers=_peers(env.get("KYSO_EXCHANGE_PEERS")),
            metrics_allow=env.get("KYSO_METRICS_ALLOW") or "127.0.0.1,::1",
            log_format=(env.get("KYSO_LOG_FORMAT") or "text").strip().lower(),
            prometheus_multiproc_dir=(
                Path(env["PROMETHEUS_MULTIPROC_DIR"])
                if env.get("PROMETHEUS_MULTIPROC_DIR")
                else None
            ),
            webhook_allow_local=_bool(env.get("KYSO_WEBHOOK_ALLOW_LOCAL"), False),
            audit_checkpoint_minutes=_number(env, "KYSO_AUDIT_CHECKPOINT_MINUTES", 10),
            audit_checkpoint_directory=(
                Path(env["KYSO_AUDIT_CHECKPOINT_DIR"]).resolve()
                if env.get("KYSO_AUDIT_CHECKPOINT_DIR")
                else None
            ),
        )
