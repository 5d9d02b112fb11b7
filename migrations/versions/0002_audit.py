"""Audit log: entries, Merkle nodes, checkpoints, head; append-only triggers.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from governance.db.triggers import create_append_only, drop_append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
APPEND_ONLY = ("audit_entries", "audit_nodes", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", TS, nullable=False, index=True),
        sa.Column("event_type", sa.String(48), nullable=False, index=True),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("actor", sa.String(64), index=True),
        sa.Column("resource", sa.String(160), index=True),
        sa.Column("decision", sa.String(8), nullable=False, index=True),
        sa.Column("outcome", sa.Integer),
        sa.Column("request_id", sa.String(64), index=True),
        sa.Column("canonical", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO audit_head (id, tree_size) VALUES (1, 0)")
    for table in APPEND_ONLY:
        create_append_only(op, table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        drop_append_only(op, table)
    for table in ("audit_head", "audit_checkpoints", "audit_nodes", "audit_entries"):
        op.drop_table(table)
