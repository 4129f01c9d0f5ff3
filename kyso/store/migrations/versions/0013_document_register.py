"""The catalogue of document types (how each is delivered) and each unit's register of
issued documents (issue 11: the records clerk's issuing step and the 90 % figure).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 08:20:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Decree 30/2020/NĐ-CP, Annex III: the types and their abbreviations. Every type starts
# electronic only; a contract goes with paper in parallel. The province changes it.
TYPES = [
    ("NQ", "Nghị quyết"),
    ("QĐ", "Quyết định"),
    ("CT", "Chỉ thị"),
    ("QC", "Quy chế"),
    ("QyĐ", "Quy định"),
    ("TC", "Thông cáo"),
    ("TB", "Thông báo"),
    ("HD", "Hướng dẫn"),
    ("CTr", "Chương trình"),
    ("KH", "Kế hoạch"),
    ("PA", "Phương án"),
    ("ĐA", "Đề án"),
    ("DA", "Dự án"),
    ("BC", "Báo cáo"),
    ("BB", "Biên bản"),
    ("TTr", "Tờ trình"),
    ("HĐ", "Hợp đồng"),
    ("CĐ", "Công điện"),
    ("BGN", "Bản ghi nhớ"),
    ("BTT", "Bản thỏa thuận"),
    ("GUQ", "Giấy ủy quyền"),
    ("GM", "Giấy mời"),
    ("GGT", "Giấy giới thiệu"),
    ("GNP", "Giấy nghỉ phép"),
    ("PG", "Phiếu gửi"),
    ("PC", "Phiếu chuyển"),
    ("PB", "Phiếu báo"),
    ("CV", "Công văn"),
]


def upgrade() -> None:
    types = op.create_table(
        "document_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("abbreviation", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("delivery", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("abbreviation"),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        types,
        [
            {
                "abbreviation": abbreviation,
                "name": name,
                "delivery": "parallel" if abbreviation == "HĐ" else "electronic",
                "position": index,
                "updated_at": now,
                "updated_by": "system:migration",
            }
            for index, (abbreviation, name) in enumerate(TYPES)
        ],
    )
    op.create_table(
        "registered_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("notation", sa.String(length=60), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("delivery", sa.String(length=32), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=True),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["type_id"], ["document_types.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("organization_id", "year", "number", name="uq_register_number"),
    )
    op.create_index(
        "ix_registered_documents_organization_id", "registered_documents", ["organization_id"]
    )
    op.create_index("ix_registered_documents_issued_on", "registered_documents", ["issued_on"])


def downgrade() -> None:
    op.drop_index("ix_registered_documents_issued_on", table_name="registered_documents")
    op.drop_index("ix_registered_documents_organization_id", table_name="registered_documents")
    op.drop_table("registered_documents")
    op.drop_table("document_types")
