"""Witness cosignatures of audit checkpoints (c2sp.org/tlog-cosignature), append-only.

Revision ID: 0011
Revises: 0002

A checkpoint's note is immutable; the cosignature lines witnesses return are stored beside it,
one row per witness key, and appended to the note when it is read back.
"""

import sqlalchemy as sa
from alembic import op

from governance.db.triggers import create_append_only, drop_append_only

revision = "0011"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "audit_cosignatures"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "tree_size",
            sa.BigInteger,
            sa.ForeignKey("audit_checkpoints.tree_size"),
            nullable=False,
        ),
        # The witness's key name and 4-byte key ID, as in its signature line.
        sa.Column("witness", sa.String(255), nullable=False),
        sa.Column("key_id", sa.LargeBinary(4), nullable=False),
        # The whole note signature line, without its final newline.
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", "witness", "key_id", name="pk_audit_cosignatures"),
    )
    create_append_only(op, TABLE)


def downgrade() -> None:
    drop_append_only(op, TABLE)
    op.drop_table(TABLE)
