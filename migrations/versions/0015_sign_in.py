"""Personal sign-in: a person's password and second factor, and their server-side sessions.

Revision ID: 0015
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), primary_key=True),
        # argon2id, in its PHC string form (parameters and salt included).
        sa.Column("password_hash", sa.String(256), nullable=False),
        # The TOTP secret wrapped under the vault's current KEK (AES-256-GCM).
        sa.Column("totp_kek_id", sa.String(64)),
        sa.Column("totp_blob", sa.LargeBinary),
        # The last TOTP time step accepted: a code is never accepted twice.
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("set_at", TS, nullable=False),
    )
    op.create_table(
        "sign_in_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        # Only SHA-256 of the session id and CSRF token: both have 256 random bits.
        sa.Column("session_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("source_ip", sa.String(64)),
    )
    op.create_index("ix_sign_in_sessions_principal_id", "sign_in_sessions", ["principal_id"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_sessions_principal_id", table_name="sign_in_sessions")
    op.drop_table("sign_in_sessions")
    op.drop_table("credentials")
