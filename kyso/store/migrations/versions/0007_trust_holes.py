"""Tables for closing the trust holes (issue 9): signed audit checkpoints, rate-limit state
shared by every process, the keys a system token may sign with, single-use login
challenges, TOTP secrets sealed with a key from the key store, and the status changes a
CRL has seen (so reusing a stored CRL never depends on two servers' clocks agreeing).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp_token", sa.LargeBinary(), nullable=True),
        sa.Column("signer_serial", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_checkpoints_seq", "audit_checkpoints", ["seq"])
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_buckets_tat", "rate_buckets", ["tat"])
    op.create_table(
        "api_client_keys",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("key_location", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["api_clients.id"]),
        sa.PrimaryKeyConstraint("client_id", "key_location"),
    )
    op.create_table(
        "login_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_login_challenges_expires_at", "login_challenges", ["expires_at"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("events_seen", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.drop_column("events_seen")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_secret_sealed")
    op.drop_index("ix_login_challenges_expires_at", table_name="login_challenges")
    op.drop_table("login_challenges")
    op.drop_table("api_client_keys")
    op.drop_index("ix_rate_buckets_tat", table_name="rate_buckets")
    op.drop_table("rate_buckets")
    op.drop_index("ix_audit_checkpoints_seq", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
