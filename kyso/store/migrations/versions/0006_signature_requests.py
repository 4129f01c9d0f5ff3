"""signature_requests: documents waiting for a colleague's signature

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signature_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("signed_document", sa.LargeBinary(), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "waiting", "signed", "declined", name="signaturestate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["signer_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_signature_requests_requested_by", "signature_requests", ["requested_by"])
    op.create_index("ix_signature_requests_signer_id", "signature_requests", ["signer_id"])


def downgrade() -> None:
    op.drop_index("ix_signature_requests_signer_id", table_name="signature_requests")
    op.drop_index("ix_signature_requests_requested_by", table_name="signature_requests")
    op.drop_table("signature_requests")
