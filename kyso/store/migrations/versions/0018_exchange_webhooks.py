"""Signed webhooks of the exchange (issue 11): systems subscribed to a unit's messages, and
the events queued for them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["api_clients.id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_exchange_subscriptions_client_id", "exchange_subscriptions", ["client_id"])
    op.create_index(
        "ix_exchange_subscriptions_organization_id", "exchange_subscriptions", ["organization_id"]
    )
    op.create_table(
        "exchange_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["exchange_subscriptions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_key", name="uq_exchange_event"),
    )
    op.create_index("ix_exchange_events_next_attempt_at", "exchange_events", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_exchange_events_next_attempt_at", table_name="exchange_events")
    op.drop_table("exchange_events")
    op.drop_index("ix_exchange_subscriptions_organization_id", table_name="exchange_subscriptions")
    op.drop_index("ix_exchange_subscriptions_client_id", table_name="exchange_subscriptions")
    op.drop_table("exchange_subscriptions")
