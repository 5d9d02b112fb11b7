"""Data keys bound to their subject; erasure scrubs tracked; a lease for vault jobs.

Revision ID: 0012
Revises: 0010

``data_keys.wrap_format`` says what a wrapped key's associated data binds: 1 (keys made
before this revision) binds the key id only, 2 binds the id, the subject reference and the
version. Old keys keep format 1 until a KEK rotation rewraps them as format 2.

``erasure_scrubs`` follows each erasure until the destroyed keys' bytes have left the
database files (SQLite: a truncating WAL checkpoint that succeeded), and names the date by
which the KEK that wrapped them is due to be retired. Erasure receipts stay append-only.

``vault_leases`` lets one server among replicas run a scheduled job (the KEK rotation).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "data_keys",
        sa.Column("wrap_format", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.create_table(
        "erasure_scrubs",
        sa.Column(
            "receipt_id", sa.String(40), sa.ForeignKey("erasure_receipts.id"), primary_key=True
        ),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_try_at", TS),
        sa.Column("removed_at", TS),
        sa.Column("kek_retire_by", TS),
        sa.CheckConstraint("status in ('done', 'pending', 'residual')", name="status"),
    )
    op.create_table(
        "vault_leases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vault_leases")
    op.drop_table("erasure_scrubs")
    op.drop_column("data_keys", "wrap_format")
