"""Webhook delivery state on signature approvals (issue 10): a system that asked for a
signature with a ``callback_url`` is told the outcome; the attempts, the next try and the
delivery are kept on the approval row so a restart does not lose a pending notification.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sign_approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("webhook_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("webhook_delivered_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("webhook_error", sa.String(length=500), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_sign_approvals_webhook_next_at"), ["webhook_next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sign_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_approvals_webhook_next_at"))
        batch_op.drop_column("webhook_error")
        batch_op.drop_column("webhook_delivered_at")
        batch_op.drop_column("webhook_next_at")
        batch_op.drop_column("webhook_attempts")
