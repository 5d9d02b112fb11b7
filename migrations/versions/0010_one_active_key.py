"""One active data key per subject, enforced by the database; a change counter for data keys.

Revision ID: 0010
Revises: 0003

Replicas that raced the first predictions for a new subject could each create an active key
(0003 allowed it). A partial unique index now refuses a second active key for one subject
reference. Databases that already hold such duplicates are repaired first: per subject the
newest active key (highest version, then latest created) stays active and the others become
``decrypt_only``, as a use-count rotation leaves them, so every record they sealed still opens
and an erasure still destroys them.

Keys made from now on name their subject's scope (``client:<principal>`` or
``shared:<namespace>``: subject ids are scoped per client principal); keys made before keep a
NULL scope and their unscoped blind index, so their records open as before.

The ``data_keys`` change counter is bumped by erasures and rotations, so every server process
drops the keys it cached for the subjects concerned (governance/db/state.py).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "uq_data_keys_one_active"
ACTIVE_ONLY = sa.text("state = 'active'")
COUNTER = "data_keys"


def upgrade() -> None:
    keys = sa.table(
        "data_keys",
        sa.column("id", sa.String),
        sa.column("subject_ref", sa.String),
        sa.column("version", sa.BigInteger),
        sa.column("state", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("rotated_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(keys.c.id, keys.c.subject_ref)
        .where(keys.c.state == "active")
        .order_by(keys.c.subject_ref, keys.c.version.desc(), keys.c.created_at.desc(), keys.c.id)
    ).all()
    keep: set[str] = set()
    retire: list[str] = []
    for dek_id, ref in rows:
        if ref in keep:
            retire.append(dek_id)
        else:
            keep.add(ref)
    if retire:
        now = datetime.now(UTC)
        for start in range(0, len(retire), 500):
            bind.execute(
                sa.update(keys)
                .where(keys.c.id.in_(retire[start : start + 500]), keys.c.state == "active")
                .values(state="decrypt_only", rotated_at=now)
            )
    op.create_index(
        INDEX,
        "data_keys",
        ["subject_ref"],
        unique=True,
        sqlite_where=ACTIVE_ONLY,
        postgresql_where=ACTIVE_ONLY,
    )
    op.add_column("data_keys", sa.Column("scope", sa.String(80)))
    counters = sa.table(
        "state_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(counters, [{"name": COUNTER, "value": 0}])


def downgrade() -> None:
    counters = sa.table("state_counters", sa.column("name", sa.String))
    op.execute(sa.delete(counters).where(counters.c.name == COUNTER))
    with op.batch_alter_table("data_keys") as batch:
        batch.drop_column("scope")
    op.drop_index(INDEX, table_name="data_keys")
