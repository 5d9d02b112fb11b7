"""Which privacy ledger a registration belongs to: the one whose rows it holds.

A registration's rows (:class:`~governance.datasets.fingerprint.RowFingerprint`) are compared
with every set of rows ever registered (:class:`~governance.datasets.models.LedgerRowset`):

- the same fingerprint (the same multiset of rows, however encoded): that ledger;
- at least :data:`SHARE_OVERLAP` of the distinct rows of the smaller of the two in common
  (a subset or a superset of a spent dataset, or most of it): that ledger too, because a run on
  either touches the same people;
- several ledgers matched (say, the union of two spent datasets): they are merged into the
  oldest, and the merged ones' datasets, rowsets and runs are charged there from then on (a
  merge only ever adds runs to a history, never removes one);
- nothing matched: a new ledger.

A dataset registered again (``replace``) keeps its ledger whatever its new rows (the same
people may be in them), and its earlier rows stay recorded in that ledger, so registering
them afresh under another name joins it too. Nothing here is ever deleted.

Registrations are serialised (a PostgreSQL advisory lock; SQLite's ``BEGIN IMMEDIATE``
serialises every writer), so two copies registered at once cannot both open a ledger. A
placement locks the rows of every dataset charging the ledgers it touches before it changes
anything; a run's reservation locks its dataset's row first, so the two queue on that row and
the reservation sees the merged history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from governance.datasets.fingerprint import RowFingerprint, overlap, unpack
from governance.datasets.models import Dataset, Ledger, LedgerRowset

# Half the smaller dataset's distinct rows: a subset or superset always shares (it holds all
# of the smaller one); below half, chance duplicates of low-entropy rows would tie unrelated
# datasets' budgets together.
SHARE_OVERLAP = 0.5
# pg_advisory_xact_lock key of dataset registrations ("WDSR" as an integer).
_REGISTRATION_LOCK = 0x57445352


@dataclass(frozen=True)
class Placement:
    """Where a registration's rows went.

    Attributes:
        ledger_id: the ledger the dataset now charges.
        opened: a new ledger was opened (no earlier rows matched).
        matched: the datasets (as named when their rows were registered) whose rows matched.
        merged: ledgers merged into ``ledger_id`` because these rows matched several.
    """

    ledger_id: int
    opened: bool
    matched: tuple[str, ...]
    merged: tuple[int, ...]


def serialise_registrations(session: Session) -> None:
    """Hold the registration lock until the transaction ends (PostgreSQL; SQLite needs none)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REGISTRATION_LOCK})


def _shares(fp: RowFingerprint, distinct: int, blob: bytes) -> bool:
    smaller = min(fp.distinct, distinct)
    return smaller > 0 and overlap(fp.prefixes, unpack(blob)) >= SHARE_OVERLAP * smaller


def place(session: Session, *, name: str, fp: RowFingerprint, own: int | None) -> Placement:
    """Put a registration's rows in the ledger they belong to; the caller holds the lock.

    Args:
        session: the registration's transaction (see :func:`serialise_registrations`).
        name: the dataset's name (recorded with its rowset).
        fp: its rows' fingerprint.
        own: the ledger the dataset has already (registered again), or None.

    Returns:
        The placement; the dataset's ``ledger_id`` is the caller's to set.
    """
    matched: dict[int, list[str]] = {}
    exact = session.scalar(select(LedgerRowset).where(LedgerRowset.fingerprint == fp.digest))
    if exact is not None:
        matched.setdefault(exact.ledger_id, []).append(exact.dataset)
    candidates = session.execute(
        select(
            LedgerRowset.ledger_id,
            LedgerRowset.dataset,
            LedgerRowset.distinct_rows,
            LedgerRowset.prefixes,
        ).order_by(LedgerRowset.id)
    )
    for ledger_id, dataset, distinct, blob in candidates:
        if ledger_id == own or ledger_id in matched:
            continue
        if _shares(fp, int(distinct), blob):
            matched.setdefault(ledger_id, []).append(dataset)

    ids = set(matched) | ({own} if own is not None else set())
    opened = not ids
    if opened:
        ledger = Ledger(opened_by=name)
        session.add(ledger)
        session.flush()
        target = ledger.id
    else:
        target = min(ids)
    merged = tuple(sorted(ids - {target}))
    # Every dataset charging these ledgers, locked before anything changes: a run reserved on
    # any of them (which locks its dataset first) waits, then sees the merged history.
    session.execute(
        select(Dataset.id)
        .where(Dataset.ledger_id.in_([target, *merged]))
        .order_by(Dataset.id)
        .with_for_update()
    )
    if merged:
        session.execute(
            update(Dataset).where(Dataset.ledger_id.in_(merged)).values(ledger_id=target)
        )
        session.execute(
            update(LedgerRowset).where(LedgerRowset.ledger_id.in_(merged)).values(ledger_id=target)
        )
        session.execute(update(Ledger).where(Ledger.id.in_(merged)).values(merged_into=target))
    if exact is None:
        session.add(
            LedgerRowset(
                ledger_id=target,
                fingerprint=fp.digest,
                rows=fp.rows,
                distinct_rows=fp.distinct,
                prefixes=fp.packed(),
                dataset=name,
            )
        )
    session.flush()
    return Placement(
        ledger_id=target,
        opened=opened,
        matched=tuple(n for ledger_id in sorted(matched) for n in matched[ledger_id]),
        merged=merged,
    )


def members(session: Session, ledger_id: int) -> list[str]:
    """The names of the datasets that charge a ledger, sorted."""
    return list(
        session.scalars(
            select(Dataset.name).where(Dataset.ledger_id == ledger_id).order_by(Dataset.name)
        )
    )
