"""Status messages for senders in other installations (issue 11): 03 and 02 travel back
signed, retried until delivered.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_status_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("organ_id", sa.String(length=60), nullable=False),
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["exchange_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_exchange_status_outbox_message_id", "exchange_status_outbox", ["message_id"]
    )
    op.create_index(
        "ix_exchange_status_outbox_next_attempt_at", "exchange_status_outbox", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_exchange_status_outbox_next_attempt_at", table_name="exchange_status_outbox")
    op.drop_index("ix_exchange_status_outbox_message_id", table_name="exchange_status_outbox")
    op.drop_table("exchange_status_outbox")
