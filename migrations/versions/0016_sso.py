"""Single sign-on (OpenID Connect): who may sign in as whom, and sign-ins in flight.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sso_links",
        sa.Column("id", sa.Integer, primary_key=True),
        # One identity at the provider per person, and one person per identity.
        sa.Column(
            "principal_id",
            sa.Integer,
            sa.ForeignKey("principals.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("issuer", sa.String(512), nullable=False),
        # The provider's subject, set by the admin or bound at the first sign-in by email.
        sa.Column("subject", sa.String(255)),
        # A verified email the admin expects, until a subject is bound.
        sa.Column("email", sa.String(320)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("bound_at", TS),
        sa.UniqueConstraint("issuer", "subject", name="uq_sso_links_issuer_subject"),
    )
    op.create_table(
        "oidc_flows",
        sa.Column("id", sa.Integer, primary_key=True),
        # SHA-256 of the state and of the browser's flow cookie (the PKCE verifier): no
        # secret of a sign-in in flight is stored.
        sa.Column("state_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("binding_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
    )
    op.create_index("ix_oidc_flows_expires_at", "oidc_flows", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_flows_expires_at", table_name="oidc_flows")
    op.drop_table("oidc_flows")
    op.drop_table("sso_links")
