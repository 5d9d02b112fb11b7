"""Encrypted records and their keys: data keys (DEKs), records, erasure receipts, rotations.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from governance.db.triggers import create_append_only, drop_append_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
APPEND_ONLY = ("erasure_receipts", "key_rotations")


def upgrade() -> None:
    # One row per data key. The key itself is stored only wrapped by a KEK; destroying a key
    # clears `wrapped` and `kek_id` for good (crypto-shredding). Subjects appear only as their
    # keyed blind index. Several active keys for one subject may exist (two processes creating
    # one at once): records name their key, so that is harmless, and erasure destroys them all.
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subject_ref", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("kek_id", sa.String(32), index=True),
        sa.Column("wrapped", sa.LargeBinary),
        sa.Column("uses", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.Column("rotated_at", TS),
        sa.Column("destroyed_at", TS),
        sa.Column("destroyed_by", sa.String(64)),
        sa.CheckConstraint("state in ('active', 'decrypt_only', 'destroyed')", name="state"),
        sa.CheckConstraint(
            "(state = 'destroyed') = (wrapped IS NULL AND kek_id IS NULL)", name="shredded"
        ),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False, index=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("subject_ref", sa.String(64), nullable=False, index=True),
        sa.Column(
            "dek_id", sa.String(40), sa.ForeignKey("data_keys.id"), nullable=False, index=True
        ),
        sa.Column("dek_version", sa.BigInteger, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("audit_seq", sa.BigInteger),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "erasure_receipts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subject_ref", sa.String(64), nullable=False, index=True),
        sa.Column("erased_at", TS, nullable=False),
        sa.Column("erased_by", sa.String(64), nullable=False),
        sa.Column("dek_ids", sa.Text, nullable=False),
        sa.Column("records_affected", sa.BigInteger, nullable=False),
        sa.Column("audit_seq", sa.BigInteger),
    )
    op.create_table(
        "key_rotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("rotated_at", TS, nullable=False),
        sa.Column("rotated_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("from_kek", sa.String(32)),
        sa.Column("to_kek", sa.String(32)),
        sa.Column("keys_affected", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind in ('dek', 'kek')", name="kind"),
    )
    # Receipts and rotations are evidence: no UPDATE or DELETE.
    for table in APPEND_ONLY:
        create_append_only(op, table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        drop_append_only(op, table)
    for table in ("key_rotations", "erasure_receipts", "records", "data_keys"):
        op.drop_table(table)
