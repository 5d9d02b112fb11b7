"""Rate limits: request counters shared by every server process on the database.

Revision ID: 0009
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        # A keyed digest (HMAC-SHA256 under the deployment's digest key) of what is counted:
        # never a client address or a principal in clear.
        sa.Column("key", sa.String(64), nullable=False),
        # The window, as seconds since the epoch (UTC) at its start.
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        # Seconds since the epoch after which no process reads the row again.
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_counters"),
    )
    op.create_index("ix_rate_counters_expires", "rate_counters", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_rate_counters_expires", table_name="rate_counters")
    op.drop_table("rate_counters")
