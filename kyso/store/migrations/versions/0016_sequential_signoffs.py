"""Sequential sign-offs (issue 11): a document sent for signature goes on to the next signer
once the first has signed (the deputy, then the head).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 08:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signature_requests") as batch:
        batch.add_column(sa.Column("next_signers", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_signature_requests_previous_id", "signature_requests", ["previous_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("signature_requests") as batch:
        batch.drop_constraint("fk_signature_requests_previous_id", type_="foreignkey")
        batch.drop_column("previous_id")
        batch.drop_column("next_signers")
