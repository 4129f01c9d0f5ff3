"""Remote signing (issue 10): central seal delegates, phone authenticators and their Web Push
subscriptions, approval requests listing each document, single-use SADs, CSC access tokens,
and the users' signing PIN for the PIN + TOTP fallback.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:59:46.157801
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authenticators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("webauthn", "pin-totp", name="authenticatorkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("authenticators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authenticators_user_id"), ["user_id"], unique=False)

    op.create_table(
        "key_delegates",
        sa.Column("key_location", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("key_location", "user_id"),
    )
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("p256dh", sa.String(length=200), nullable=False),
        sa.Column("auth", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint"),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "csc_access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("csc_access_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_csc_access_tokens_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "sign_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_location", sa.String(length=200), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum("csc", "document", name="approvalpurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("requester_name", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("hash_algorithm", sa.String(length=40), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "waiting",
                "approved",
                "done",
                "refused",
                "expired",
                "failed",
                name="approvalstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("challenge", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("authenticator_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.String(length=1000), nullable=True),
        sa.Column("sad_issued", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["authenticator_id"],
            ["authenticators.id"],
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("sign_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sign_approvals_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index("ix_sign_approvals_user_state", ["user_id", "state"], unique=False)

    op.create_table(
        "sign_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sad_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("key_location", sa.String(length=200), nullable=False),
        sa.Column("hash_algorithm", sa.String(length=40), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("approval_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["sign_approvals.id"],
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sad_sha256"),
    )
    with op.batch_alter_table("sign_activations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sign_activations_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "sign_approval_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approval_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("number", sa.String(length=100), nullable=True),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=True),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("signed", sa.LargeBinary(), nullable=True),
        sa.Column("signature_request_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["sign_approvals.id"],
        ),
        sa.ForeignKeyConstraint(
            ["signature_request_id"],
            ["signature_requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sign_approval_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sign_approval_items_approval_id"), ["approval_id"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_pin_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("signing_pin_failures", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("signing_pin_failures")
        batch_op.drop_column("signing_pin_hash")

    with op.batch_alter_table("sign_approval_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_approval_items_approval_id"))

    op.drop_table("sign_approval_items")
    with op.batch_alter_table("sign_activations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_activations_expires_at"))

    op.drop_table("sign_activations")
    with op.batch_alter_table("sign_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_sign_approvals_user_state")
        batch_op.drop_index(batch_op.f("ix_sign_approvals_expires_at"))

    op.drop_table("sign_approvals")
    with op.batch_alter_table("csc_access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csc_access_tokens_expires_at"))

    op.drop_table("csc_access_tokens")
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscriptions_user_id"))

    op.drop_table("push_subscriptions")
    op.drop_table("key_delegates")
    with op.batch_alter_table("authenticators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authenticators_user_id"))

    op.drop_table("authenticators")
