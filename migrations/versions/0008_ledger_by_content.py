"""The privacy ledger belongs to the rows, not to the dataset's name.

Revision ID: 0008
Revises: 0005

Before, each registered name had its own budget, so the same files registered under a second
name started again at ε = 0. Now every dataset points at a ``privacy_ledgers`` row, and every
set of rows ever registered into a ledger is kept as a ``privacy_ledger_rowsets`` row (its
row fingerprint, governance/datasets/fingerprint.py), so a later registration of the same rows
under any name joins that ledger; training charges the ledger, not the name.

Existing datasets: a migration cannot parse their rows (that needs the application's loader
and the data files), so they are grouped by their registered content hash: datasets whose
files had the same bytes were always the same rows, and now share one ledger (their runs
compose; this can leave such a ledger over its cap, which then refuses further runs, as it
should). Their row fingerprint stays NULL until the next registration computes it from the
files (``DatasetService`` backfills it then).

``datasets.ledger_id`` is NOT NULL on PostgreSQL. SQLite cannot add that constraint without
rebuilding ``datasets``, which the ledger's foreign keys forbid inside the migration's
transaction; there the service always sets it.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
LEDGERS = "privacy_ledgers"
ROWSETS = "privacy_ledger_rowsets"


def _no_delete(table: str) -> None:
    # Deleting a ledger or a rowset would let the same rows register again at ε = 0.
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


def _drop_no_delete(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_no_delete()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def upgrade() -> None:
    op.create_table(
        LEDGERS,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("merged_into", sa.Integer, sa.ForeignKey(f"{LEDGERS}.id")),
    )
    op.create_table(
        ROWSETS,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "ledger_id", sa.Integer, sa.ForeignKey(f"{LEDGERS}.id"), nullable=False, index=True
        ),
        # One fingerprint belongs to one ledger: a second registration of it joins that one.
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("distinct_rows", sa.BigInteger, nullable=False),
        sa.Column("prefixes", sa.LargeBinary, nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
    )
    _no_delete(LEDGERS)
    _no_delete(ROWSETS)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "datasets", sa.Column("ledger_id", sa.Integer, sa.ForeignKey(f"{LEDGERS}.id"))
        )
    else:
        # SQLite adds a column's REFERENCES inline (Alembic would need a table rebuild).
        op.execute(f"ALTER TABLE datasets ADD COLUMN ledger_id INTEGER REFERENCES {LEDGERS} (id)")
    op.add_column("datasets", sa.Column("row_fingerprint", sa.String(64)))

    datasets = sa.table(
        "datasets",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("content_hash", sa.String),
        sa.column("ledger_id", sa.Integer),
    )
    ledgers = sa.table(
        LEDGERS,
        sa.column("id", sa.Integer),
        sa.column("opened_by", sa.String),
        sa.column("opened_at", TS),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(datasets.c.id, datasets.c.name, datasets.c.content_hash).order_by(datasets.c.id)
    ).all()
    opened: dict[str, int] = {}
    now = datetime.now(UTC)
    for dataset_id, name, content_hash in rows:
        ledger_id = opened.get(content_hash)
        if ledger_id is None:
            ledger_id = bind.execute(
                sa.insert(ledgers).values(opened_by=name, opened_at=now).returning(ledgers.c.id)
            ).scalar_one()
            opened[content_hash] = ledger_id
        bind.execute(
            sa.update(datasets).where(datasets.c.id == dataset_id).values(ledger_id=ledger_id)
        )
    if bind.dialect.name == "postgresql":
        op.alter_column("datasets", "ledger_id", nullable=False)
    op.create_index("ix_datasets_ledger_id", "datasets", ["ledger_id"])
    op.create_index("ix_datasets_row_fingerprint", "datasets", ["row_fingerprint"])


def downgrade() -> None:
    """Back to a ledger per name (PostgreSQL).

    On SQLite the tables and the two nullable columns stay: SQLite cannot drop a column that
    is a foreign key, nor rebuild ``datasets`` while the ledger's rows reference it, and the
    0005 code ignores them.
    """
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_datasets_row_fingerprint", table_name="datasets")
    op.drop_index("ix_datasets_ledger_id", table_name="datasets")
    op.drop_column("datasets", "row_fingerprint")
    op.drop_column("datasets", "ledger_id")
    _drop_no_delete(ROWSETS)
    _drop_no_delete(LEDGERS)
    op.drop_table(ROWSETS)
    op.drop_table(LEDGERS)
