"""Archival time-stamps (PAdES B-LTA) of archived PDFs: until when the last one holds, and
the file before it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_records") as batch:
        batch.add_column(sa.Column("timestamped_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("previous_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_records") as batch:
        batch.drop_column("previous_sha256")
        batch.drop_column("timestamped_until")
