"""The e-gazette (issue 11): issued documents published for anyone, with the verdict of
kyso's validation at publication.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_documents") as batch:
        batch.add_column(sa.Column("published_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("published_report", sa.Text(), nullable=True))
        batch.create_index("ix_registered_documents_published_at", ["published_at"])


def downgrade() -> None:
    with op.batch_alter_table("registered_documents") as batch:
        batch.drop_index("ix_registered_documents_published_at")
        batch.drop_column("published_report")
        batch.drop_column("published_at")
