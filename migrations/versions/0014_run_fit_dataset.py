"""A zero-charge ledger run names the public dataset whose rows it read.

Revision ID: 0014
Revises: 0013

A mitigation fitted on rows a schema declares public spends nothing from the base model's
ledger, but is recorded there (so the ledger covers every step that produced the mitigated
artifact); ``privacy_runs.fit_dataset`` names the public dataset it read instead. NULL for
every other run: those read the rows of their own ``dataset_id``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("privacy_runs", sa.Column("fit_dataset", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("privacy_runs") as batch:
        batch.drop_column("fit_dataset")
