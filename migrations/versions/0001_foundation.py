"""Foundation: principals, API keys, policy versions, model registry, change counters.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from governance.db.triggers import create_append_only, drop_append_only

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "state_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("state_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": n, "value": 0} for n in ("policy", "identity", "models", "thresholds")],
    )
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.CheckConstraint("kind in ('user', 'service')", name="kind"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False, index=True
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(64)),
    )
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("diff", sa.Text, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("artifact_dir", sa.Text, nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("trained_by", sa.String(64)),
        sa.Column("stage_changed_by", sa.String(64)),
        sa.Column("stage_changed_at", TS),
        sa.UniqueConstraint("name", "version"),
        sa.CheckConstraint("stage in ('registered', 'serving', 'retired')", name="stage"),
    )
    # Policy versions are history: no UPDATE or DELETE, on either database.
    create_append_only(op, "policy_versions")


def downgrade() -> None:
    drop_append_only(op, "policy_versions")
    for table in ("model_versions", "policy_versions", "api_keys", "principals", "state_counters"):
        op.drop_table(table)
