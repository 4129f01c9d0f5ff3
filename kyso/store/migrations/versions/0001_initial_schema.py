"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_at"), ["at"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ca_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "root", "issuing", "ocsp", "tsa", name="identityrole", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("keystore", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=200), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("key_hash_sha1", sa.String(length=40), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    with op.batch_alter_table("ca_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ca_identities_key_hash_sha1"), ["key_hash_sha1"], unique=False
        )

    op.create_table(
        "compromised_keys",
        sa.Column("spki_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_serial", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("spki_sha256"),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column(
            "profile",
            sa.Enum(
                "organization",
                "individual",
                "device",
                "tsa",
                "ocsp",
                "sub-ca",
                "root-ca",
                name="profile",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("spki_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_location", sa.String(length=200), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "good", "suspended", "revoked", name="certstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("status_changed_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column(
            "reason",
            sa.Enum(
                "unspecified",
                "key-compromise",
                "ca-compromise",
                "affiliation-changed",
                "superseded",
                "cessation-of-operation",
                "certificate-hold",
                "remove-from-crl",
                "privilege-withdrawn",
                "aa-compromise",
                name="revocationreason",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"],
            ["ca_identities.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificates_spki_sha256"), ["spki_sha256"], unique=False
        )
        batch_op.create_index(
            "ix_certificates_status_not_after", ["status", "not_after"], unique=False
        )

    op.create_table(
        "crls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("is_delta", sa.Boolean(), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("this_update", sa.DateTime(), nullable=False),
        sa.Column("next_update", sa.DateTime(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"],
            ["ca_identities.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer_id", "number"),
    )
    op.create_table(
        "certificate_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "issued",
                "suspended",
                "restored",
                "revoked",
                name="certeventkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "unspecified",
                "key-compromise",
                "ca-compromise",
                "affiliation-changed",
                "superseded",
                "cessation-of-operation",
                "certificate-hold",
                "remove-from-crl",
                "privilege-withdrawn",
                "aa-compromise",
                name="revocationreason",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("certificate_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_certificate_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_certificate_events_certificate_id"), ["certificate_id"], unique=False
        )

    op.create_table(
        "ocsp_responses",
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("produced_at", sa.DateTime(), nullable=False),
        sa.Column("next_update", sa.DateTime(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"],
            ["ca_identities.id"],
        ),
        sa.PrimaryKeyConstraint("certificate_id"),
        sa.UniqueConstraint("issuer_id", "serial"),
    )
    with op.batch_alter_table("ocsp_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ocsp_responses_next_update"), ["next_update"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ocsp_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocsp_responses_next_update"))

    op.drop_table("ocsp_responses")
    with op.batch_alter_table("certificate_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_events_certificate_id"))
        batch_op.drop_index(batch_op.f("ix_certificate_events_at"))

    op.drop_table("certificate_events")
    op.drop_table("crls")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_status_not_after")
        batch_op.drop_index(batch_op.f("ix_certificates_spki_sha256"))

    op.drop_table("certificates")
    op.drop_table("counters")
    op.drop_table("compromised_keys")
    with op.batch_alter_table("ca_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ca_identities_key_hash_sha1"))

    op.drop_table("ca_identities")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_at"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
    op.drop_table("api_clients")
