"""The electronic archive (issue 11): what each kept file is; the files themselves are in
the content-addressed store under KYSO_HOME/archive.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=True),
        sa.Column("issuer", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("type_name", sa.String(length=100), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("retention", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("source", "sha256", name="uq_archive_once"),
    )
    op.create_index("ix_archive_records_organization_id", "archive_records", ["organization_id"])
    op.create_index("ix_archive_records_sha256", "archive_records", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_archive_records_sha256", table_name="archive_records")
    op.drop_index("ix_archive_records_organization_id", table_name="archive_records")
    op.drop_table("archive_records")
