"""Enrolment: a person obtains their own key by redeeming a one-time code.

Revision ID: 0007
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False),
        # Only the code's SHA-256 is stored, as for API keys: the code is shown once.
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_by_principal_id", sa.Integer),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("redeemed_at", TS),
        sa.Column("key_id", sa.String(32)),
    )
    op.create_index("ix_enrolments_principal_id", "enrolments", ["principal_id"])


def downgrade() -> None:
    op.drop_index("ix_enrolments_principal_id", table_name="enrolments")
    op.drop_table("enrolments")
