"""The group-commit writer's cached Merkle frontier never corrupts the tree.

It is reused only while no other append happened since the writer's last commit; appends in
request transactions, a rolled-back batch and other writers in between must all be noticed.
"""

from __future__ import annotations

import pytest

from governance.audit import log as audit_log
from governance.audit.merkle import leaf_hash, root_from_leaf_hashes
from governance.audit.models import AuditEntry
from governance.audit.verify import verify_log
from governance.audit.writer import AuditUnavailable, AuditWriter
from tests.audit.conftest import FilledLog, sample_event


def test_interleaved_appends_keep_one_valid_tree(audit_db: FilledLog) -> None:
    first = AuditWriter(audit_db.engine, max_wait_ms=0)
    second = AuditWriter(audit_db.engine, max_wait_ms=0)
    first.start()
    second.start()
    try:
        n = 0
        for round_ in range(12):
            for _ in range(round_ % 4 + 1):  # several batches in a row reuse the frontier
                first.append_sync([sample_event(n), sample_event(n + 1)])
                n += 2
            if round_ % 3 == 0:  # an append in a request's own transaction
                with audit_db.sessions.begin() as session:
                    audit_log.append(session, [sample_event(n)])
                n += 1
            if round_ % 4 == 1:  # another writer (another process, in production)
                second.append_sync([sample_event(n)])
                n += 1
            if round_ % 5 == 2:  # a batch that rolls back must not leave a stale frontier
                with pytest.raises(AuditUnavailable):
                    first.append_sync([sample_event(n)], write=_boom)
        with audit_db.sessions.begin() as session:
            audit_db.checkpointer.checkpoint(session, force=True)
    finally:
        first.close()
        second.close()
    with audit_db.sessions() as session:
        report = verify_log(session, audit_db.vkey)
        leaves = [
            leaf_hash(c.encode())
            for c in session.scalars(
                AuditEntry.__table__.select()
                .with_only_columns(AuditEntry.canonical)
                .order_by(AuditEntry.seq)
            )
        ]
    assert report.tree_size == n == len(leaves)
    assert report.root == root_from_leaf_hashes(leaves)


def _boom(*_: object) -> None:
    raise RuntimeError("this batch's record could not be stored")


def test_a_batch_larger_than_max_batch_commits_in_transactions_of_max_batch(
    audit_db: FilledLog,
) -> None:
    """What the journal's writer process runs on a frame holding more than max_batch appends."""
    writer = AuditWriter(audit_db.engine, max_batch=3)
    outcomes, size = writer.write([([sample_event(i)], None) for i in range(20)])
    assert outcomes == [[i] for i in range(20)]  # in order, one sequence number each
    assert size == 20
    assert writer.batches == 7 and writer.items == 20  # ceil(20 / 3) transactions
    with audit_db.sessions() as session:
        assert verify_log(session, audit_db.vkey).tree_size == 20
