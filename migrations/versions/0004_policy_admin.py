"""Policy administration: policy test cases and change proposals.

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_tests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("expected", sa.String(8), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        # Two cases on one request could only contradict or repeat each other.
        sa.UniqueConstraint("subject", "object", "action", name="uq_policy_tests_request"),
        sa.CheckConstraint("expected in ('allow', 'deny')", name="expected"),
    )
    op.create_table(
        "policy_proposals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("author_principal_id", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("base_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", TS),
        sa.Column("decision_reason", sa.Text),
        sa.Column("applied_version", sa.Integer),
        sa.CheckConstraint("kind in ('change', 'rollback')", name="kind"),
        sa.CheckConstraint(
            "status in ('pending', 'applied', 'rejected', 'withdrawn')", name="status"
        ),
    )


def downgrade() -> None:
    op.drop_table("policy_proposals")
    op.drop_table("policy_tests")
