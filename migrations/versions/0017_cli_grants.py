"""Command-line sign-in through the browser: one-time codes a signed-in person hands the CLI.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cli_grants",
        sa.Column("id", sa.Integer, primary_key=True),
        # SHA-256 of the code shown once in the browser; the code itself is never stored.
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        # base64url(SHA-256(verifier)) the CLI sent: only the CLI holding the verifier redeems.
        sa.Column("challenge", sa.String(43), nullable=False),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
    )
    op.create_index("ix_cli_grants_expires_at", "cli_grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_cli_grants_expires_at", table_name="cli_grants")
    op.drop_table("cli_grants")
