"""Incoming numbers (số đến) unique per unit and year (issue 11): two documents received at
the same moment no longer share one.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_messages") as batch:
        batch.add_column(sa.Column("received_year", sa.Integer(), nullable=True))
        batch.create_unique_constraint(
            "uq_received_number", ["organization_id", "received_year", "received_number"]
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_messages") as batch:
        batch.drop_constraint("uq_received_number", type_="unique")
        batch.drop_column("received_year")
