"""verify_log on the stored log: it passes on an honest log, the triggers block rewrites, and a
rewrite by someone who drops the triggers is caught at the first bad seq or checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from governance.audit import merkle
from governance.audit.errors import AuditVerificationError
from governance.audit.verify import verify_log
from tests.audit.conftest import FilledLog, fill

TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")


def drop_triggers(session: Session) -> None:
    """What an operator with DDL rights does before rewriting history."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgres:
            session.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        else:
            for verb in ("update", "delete"):
                session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))


def entry(session: Session, seq: int) -> tuple[str, bytes]:
    row = session.execute(
        text("SELECT canonical, leaf_hash FROM audit_entries WHERE seq = :s"), {"s": seq}
    ).one()
    return str(row[0]), bytes(row[1])


def set_entry(session: Session, seq: int, canonical: str, leaf: bytes | None = None) -> None:
    values = {"s": seq, "c": canonical, "l": leaf if leaf is not None else entry(session, seq)[1]}
    session.execute(
        text("UPDATE audit_entries SET canonical = :c, leaf_hash = :l WHERE seq = :s"), values
    )


def expect_failure(log: FilledLog, session: Session) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(session, log.vkey, chunk=16)
    return caught.value


def test_honest_log_verifies(filled: FilledLog) -> None:
    with filled.sessions() as session:
        report = verify_log(session, filled.vkey, chunk=16)
        leaves = [
            bytes(row[0])
            for row in session.execute(text("SELECT leaf_hash FROM audit_entries ORDER BY seq"))
        ]
    assert report.tree_size == report.entries_checked == 53
    assert report.checkpoints_checked == len(filled.checkpoint_sizes) >= 6
    assert report.latest_checkpoint == 53
    assert report.root == merkle.root_from_leaf_hashes(leaves)


def test_empty_log_verifies(audit_db: FilledLog) -> None:
    with audit_db.sessions() as session:
        report = verify_log(session, audit_db.vkey)
    assert report.tree_size == 0 and report.root == merkle.EMPTY_ROOT


def test_entries_after_last_checkpoint_are_verified_too(filled: FilledLog) -> None:
    fill(filled, 3, checkpoint_every=1000)
    with filled.sessions() as session:
        assert verify_log(session, filled.vkey).tree_size == 56


def test_wrong_key_is_caught_at_the_first_checkpoint(filled: FilledLog) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from governance.audit.signing import public_vkey

    other = public_vkey(filled.checkpointer.origin, Ed25519PrivateKey.generate())
    with filled.sessions() as session, pytest.raises(AuditVerificationError) as caught:
        verify_log(session, other)
    assert caught.value.checkpoint_size == filled.checkpoint_sizes[0]


@pytest.mark.parametrize("table", TABLES)
def test_triggers_block_update_and_delete(filled: FilledLog, table: str) -> None:
    column = {"audit_entries": "canonical", "audit_nodes": "hash", "audit_checkpoints": "note"}
    value = "'x'" if table != "audit_nodes" else "hash"
    update = f"UPDATE {table} SET {column[table]} = {value}"
    for statement in (update, f"DELETE FROM {table}"):
        with filled.sessions() as session, pytest.raises(DBAPIError):
            session.execute(text(statement))
            session.flush()
    with filled.sessions() as session:
        verify_log(session, filled.vkey)


# Each rewrite: (what it does to the stored log, the first bad seq, the first bad checkpoint).
Rewrite = Callable[[Session], None]


def _edit_reason(seq: int) -> Rewrite:
    def run(session: Session) -> None:
        canonical, _ = entry(session, seq)
        set_entry(session, seq, canonical.replace('"reason":"test"', '"reason":"tost"'))

    return run


def _edit_reason_and_leaf(seq: int) -> Rewrite:
    def run(session: Session) -> None:
        canonical, _ = entry(session, seq)
        forged = canonical.replace('"decision":"deny"', '"decision":"allow"')
        forged = forged.replace('"reason":"test"', '"reason":"ok"')
        set_entry(session, seq, forged, merkle.leaf_hash(forged.encode()))

    return run


def _consistent_rewrite(seq: int) -> Rewrite:
    """Rewrite an entry and recompute every leaf, node and stored root: only the signatures
    still stand in the way."""

    def run(session: Session) -> None:
        _edit_reason_and_leaf(seq)(session)
        leaves = [
            bytes(r[0])
            for r in session.execute(text("SELECT leaf_hash FROM audit_entries ORDER BY seq"))
        ]
        store = merkle.MemoryNodeStore()
        store.extend(leaves)
        session.execute(text("DELETE FROM audit_nodes"))
        rows = [
            {"l": level, "i": index, "h": store.get(level, index)}
            for level in range(len(leaves).bit_length())
            for index in range(len(leaves) >> level)
        ]
        session.execute(
            text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)"), rows
        )
        for (size,) in session.execute(text("SELECT tree_size FROM audit_checkpoints")).all():
            session.execute(
                text("UPDATE audit_checkpoints SET root_hash = :r WHERE tree_size = :s"),
                {"r": store.root(size), "s": size},
            )

    return run


def _delete(seq: int) -> Rewrite:
    return lambda s: s.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": seq})


def _swap(a: int, b: int) -> Rewrite:
    def run(session: Session) -> None:
        first, second = entry(session, a), entry(session, b)
        set_entry(session, a, *second)
        set_entry(session, b, *first)

    return run


def _column(seq: int, column: str, value: object) -> Rewrite:
    return lambda s: s.execute(
        text(f"UPDATE audit_entries SET {column} = :v WHERE seq = :s"),
        {"v": value, "s": seq},
    )


def _node(level: int, index: int, delete: bool = False) -> Rewrite:
    if delete:
        return lambda s: s.execute(
            text("DELETE FROM audit_nodes WHERE level = :l AND idx = :i"), {"l": level, "i": index}
        )
    return lambda s: s.execute(
        text("UPDATE audit_nodes SET hash = :h WHERE level = :l AND idx = :i"),
        {"h": b"\x07" * 32, "l": level, "i": index},
    )


def _checkpoint_note(size: int) -> Rewrite:
    def run(session: Session) -> None:
        note = session.execute(
            text("SELECT note FROM audit_checkpoints WHERE tree_size = :s"), {"s": size}
        ).scalar_one()
        body, _, signature = note.rpartition("\u2014 ")
        name, encoded = signature.split(" ")
        flipped = ("B" if encoded[10] != "B" else "C").join((encoded[:10], encoded[11:]))
        session.execute(
            text("UPDATE audit_checkpoints SET note = :n WHERE tree_size = :s"),
            {"n": f"{body}\u2014 {name} {flipped}", "s": size},
        )

    return run


def _checkpoint_root(size: int) -> Rewrite:
    return lambda s: s.execute(
        text("UPDATE audit_checkpoints SET root_hash = :r WHERE tree_size = :s"),
        {"r": b"\x01" * 32, "s": size},
    )


def _truncate(size: int) -> Rewrite:
    def run(session: Session) -> None:
        session.execute(text("DELETE FROM audit_entries WHERE seq >= :s"), {"s": size})
        session.execute(text("UPDATE audit_head SET tree_size = :s"), {"s": size})

    return run


def _append_beyond_head(session: Session) -> None:
    canonical, _ = entry(session, 52)
    forged = canonical.replace('"seq":52', '"seq":53')
    session.execute(
        text(
            "INSERT INTO audit_entries (seq, time, event_type, action, decision, canonical, "
            "leaf_hash) SELECT 53, time, event_type, action, decision, :c, :l FROM audit_entries "
            "WHERE seq = 52"
        ),
        {"c": forged, "l": merkle.leaf_hash(forged.encode())},
    )


def _insert_in_middle(seq: int) -> Rewrite:
    """Renumber every later entry and slip a forged one in at ``seq``."""

    def run(session: Session) -> None:
        shift = 1_000_000
        session.execute(text("UPDATE audit_entries SET seq = seq + :k WHERE seq >= :s"),
                        {"k": shift, "s": seq})  # fmt: skip
        session.execute(text("UPDATE audit_entries SET seq = seq - :k WHERE seq >= :k"),
                        {"k": shift - 1})  # fmt: skip
        canonical, _ = entry(session, seq + 1)
        doc = json.loads(canonical)
        forged = canonical.replace(f'"seq":{doc["seq"]}', f'"seq":{seq}')
        forged = forged.replace('"reason":"test"', '"reason":"forged"')
        session.execute(
            text(
                "INSERT INTO audit_entries (seq, time, event_type, action, actor, resource, "
                "decision, outcome, request_id, canonical, leaf_hash) SELECT :s, time, "
                "event_type, action, actor, resource, decision, outcome, request_id, :c, :l "
                "FROM audit_entries WHERE seq = :n"
            ),
            {"s": seq, "c": forged, "l": merkle.leaf_hash(forged.encode()), "n": seq + 1},
        )
        session.execute(text("UPDATE audit_head SET tree_size = tree_size + 1"))

    return run


CASES: dict[str, tuple[Rewrite, int | None, int | None]] = {
    "entry content": (_edit_reason(17), 17, None),
    "entry content and its leaf hash": (_edit_reason_and_leaf(17), 17, None),
    "consistent rewrite of entries, nodes and roots": (_consistent_rewrite(17), None, 20),
    "deleted entry": (_delete(30), 30, None),
    "deleted last entry": (_delete(52), 52, None),
    "reordered entries": (_swap(5, 6), 5, None),
    "inserted entry": (_insert_in_middle(12), 12, None),
    "entry beyond the head": (_append_beyond_head, 53, None),
    "actor column hidden from filters": (_column(40, "actor", "someone-else"), 40, None),
    "decision column": (_column(42, "decision", "allow"), 42, None),
    "resource column": (_column(8, "resource", "model=other"), 8, None),
    "deleted tree node": (_node(3, 2, delete=True), 23, None),
    "altered leaf node": (_node(0, 44), 44, None),
    "altered interior node": (_node(2, 9), 39, None),
    "forged checkpoint signature": (_checkpoint_note(25), None, 25),
    "stored checkpoint root": (_checkpoint_root(35), None, 35),
    "truncated log": (_truncate(45), None, 50),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rewrite_without_triggers_is_caught(filled: FilledLog, case: str) -> None:
    rewrite, bad_seq, bad_checkpoint = CASES[case]
    with filled.sessions() as session:
        drop_triggers(session)
        rewrite(session)
        session.commit()
    with filled.sessions() as session:
        error = expect_failure(filled, session)
    assert (error.first_bad_seq, error.checkpoint_size) == (bad_seq, bad_checkpoint), error.message
    if bad_checkpoint == 20:
        assert error.extra["last_good_checkpoint"] == 10


def test_junk_node_outside_the_tree_is_caught(filled: FilledLog) -> None:
    with filled.sessions() as session:
        session.execute(text("INSERT INTO audit_nodes (level, idx, hash) VALUES (9, 0, :h)"),
                        {"h": b"\x00" * 32})  # fmt: skip
        error = expect_failure(filled, session)
    assert "outside the tree" in error.message


def test_time_column_is_checked(filled: FilledLog) -> None:
    with filled.sessions() as session:
        drop_triggers(session)
        session.execute(
            text("UPDATE audit_entries SET time = :t WHERE seq = 3"),
            {"t": "2001-01-01 00:00:00.000000"},
        )
        error = expect_failure(filled, session)
    assert error.first_bad_seq == 3


_KINDS = ("content", "leaf", "delete", "swap", "node", "note", "root", "insert")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=st.sampled_from(_KINDS), seq=st.integers(0, 51), data=st.data())
def test_any_single_rewrite_names_the_first_bad_position(
    filled: FilledLog, kind: str, seq: int, data: st.DataObject
) -> None:
    """Each example rewrites inside one transaction (DDL included) and rolls it back."""
    sizes = filled.checkpoint_sizes
    expected: tuple[int | None, int | None]
    if kind == "content":
        rewrite, expected = _edit_reason(seq), (seq, None)
    elif kind == "leaf":
        rewrite, expected = _edit_reason_and_leaf(seq), (seq, None)
    elif kind == "delete":
        rewrite, expected = _delete(seq), (seq, None)
    elif kind == "swap":
        other = data.draw(st.integers(seq + 1, 52), label="other")
        rewrite, expected = _swap(seq, other), (seq, None)
    elif kind == "insert":
        rewrite, expected = _insert_in_middle(seq), (seq, None)
    elif kind == "node":
        level = data.draw(st.integers(0, 5), label="level")
        index = seq >> level
        if (index + 1) << level > 53:
            level, index = 0, seq
        rewrite, expected = _node(level, index), (((index + 1) << level) - 1, None)
    else:
        size = data.draw(st.sampled_from(sizes), label="checkpoint")
        rewrite = _checkpoint_note(size) if kind == "note" else _checkpoint_root(size)
        expected = (None, size)
    with filled.sessions() as session:
        drop_triggers(session)
        rewrite(session)
        error = expect_failure(filled, session)
        session.rollback()
    assert (error.first_bad_seq, error.checkpoint_size) == expected, error.message
