"""Exchange between agencies (issue 11): edXML messages in each unit's inbox and outbox, and
the statuses (QCVN 102:2016 codes) said about them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("peer_organ_id", sa.String(length=60), nullable=False),
        sa.Column("peer_name", sa.String(length=300), nullable=False),
        sa.Column("document_id", sa.String(length=300), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("type_name", sa.String(length=100), nullable=False),
        sa.Column("business", sa.Integer(), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("package", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("status_code", sa.String(length=2), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_number", sa.String(length=40), nullable=True),
        sa.Column("marked_document", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint(
            "organization_id", "direction", "package_sha256", name="uq_exchange_once"
        ),
    )
    op.create_index(
        "ix_exchange_messages_organization_id", "exchange_messages", ["organization_id"]
    )
    op.create_index("ix_exchange_messages_document_id", "exchange_messages", ["document_id"])
    op.create_index("ix_exchange_messages_state", "exchange_messages", ["state"])
    op.create_index(
        "ix_exchange_messages_next_attempt_at", "exchange_messages", ["next_attempt_at"]
    )
    op.create_table(
        "exchange_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("organ_id", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["exchange_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchange_statuses_message_id", "exchange_statuses", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_exchange_statuses_message_id", table_name="exchange_statuses")
    op.drop_table("exchange_statuses")
    for name in ("next_attempt_at", "state", "document_id", "organization_id"):
        op.drop_index(f"ix_exchange_messages_{name}", table_name="exchange_messages")
    op.drop_table("exchange_messages")
