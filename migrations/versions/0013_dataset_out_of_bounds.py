"""Registered datasets record how many values were clipped to the schema's public bounds.

Revision ID: 0013
Revises: 0008

``datasets.values_clipped`` is JSON ``{"<split>": {"<column>": count}}`` for columns whose
schema says ``out_of_bounds: clip``; NULL for datasets registered before bounds were enforced,
and ``{}`` when nothing was clipped.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("values_clipped", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("values_clipped")
