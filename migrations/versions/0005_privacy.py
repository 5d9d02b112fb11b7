"""Datasets and privacy: the dataset registry and the privacy-budget ledger (training runs).

Revision ID: 0005
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
LEDGER = "privacy_runs"


def _no_delete(table: str) -> None:
    # A ledger row is updated once (reserved -> completed/aborted) but never deleted: deleting
    # one would give the dataset's spent budget back.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_no_delete() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} rows cannot be deleted'; END; $$ LANGUAGE plpgsql;"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_no_delete();"
        )
        return
    op.execute(
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be deleted'); END;"
    )


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        # {"<path as the schema names it>": "<sha256>"}, checked on every load.
        sa.Column("file_hashes", sa.Text, nullable=False),
        # The validated schema document (JSON); data paths are relative to base_dir.
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("base_dir", sa.Text, nullable=False),
        sa.Column("privacy_unit", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("bundled", sa.Boolean, nullable=False),
        sa.Column("train_rows", sa.BigInteger, nullable=False),
        sa.Column("test_rows", sa.BigInteger, nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        LEDGER,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False, index=True
        ),
        sa.Column("dataset_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("target_epsilon", sa.Float),
        sa.Column("delta", sa.Float),
        # The mechanism planned before the run (what a reserved row charges).
        sa.Column("planned_noise_multiplier", sa.Float),
        sa.Column("planned_sample_rate", sa.Float),
        sa.Column("planned_steps", sa.BigInteger),
        # The mechanism charged to the dataset: the planned one until the run ends, then the
        # one actually run (fewer steps for an aborted run).
        sa.Column("noise_multiplier", sa.Float),
        sa.Column("sample_rate", sa.Float),
        sa.Column("steps", sa.BigInteger),
        sa.Column("epsilon", sa.Float),
        sa.Column("model_kind", sa.String(16), nullable=False),
        sa.Column("epochs", sa.Integer, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("artifact_sha256", sa.String(64)),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("test_accuracy", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.CheckConstraint(
            "status in ('reserved', 'completed', 'aborted', 'failed')", name="status"
        ),
    )
    _no_delete(LEDGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {LEDGER}_no_delete ON {LEDGER}")
        op.execute(f"DROP FUNCTION IF EXISTS {LEDGER}_no_delete()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {LEDGER}_no_delete")
    op.drop_table(LEDGER)
    op.drop_table("datasets")
