"""Shared windows and refusal summaries, with an injected clock, on the real database.

Two :class:`SharedWindow` objects over one database stand for two server processes: each keeps
its own view and the database adds their counts up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from governance.db import make_engine, make_sessionmaker
from governance.kit.events import Actor, Source
from governance.limits import Limit
from governance.limits.models import RateCounter
from governance.limits.summary import SUMMARY_EVENT, RefusalSummaries
from governance.limits.window import SharedWindow

KEY = bytes(range(32))
ANONYMOUS = Actor(principal_id=None, name=None, roles=(), auth_method="none")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _pair(
    sessions: sessionmaker[Session], clock: Clock, limit: Limit, name: str = "failed_auth"
) -> tuple[SharedWindow, SharedWindow]:
    """Two processes' views of one limit over one database."""

    def one() -> SharedWindow:
        return SharedWindow(name, limit, digest_key=KEY, sessions=sessions, clock=clock)

    return one(), one()


def test_exact_counts_hold_in_sum_across_processes(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    a, b = _pair(sessions, clock, Limit(requests=5, per_seconds=60))
    taken = [(a if i % 2 else b).take_shared("203.0.113.7") is None for i in range(30)]
    assert sum(taken) == 5  # not 5 per process
    assert taken[:5] == [True] * 5
    # Another address has its own count.
    assert a.take_shared("203.0.113.8") is None


def test_refused_with_the_seconds_until_the_window_slides_past(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock(1_800_000_000.0)  # a multiple of 60: the start of a window
    (a, _) = _pair(sessions, clock, Limit(requests=5, per_seconds=60))
    for _ in range(5):
        assert a.take_shared("x") is None
    clock.now += 10
    wait = a.take_shared("x")
    # Five in this window: none fits until, as the previous window, it weighs 4 or less,
    # 12 s into the next window (5 * (1 - 12/60) = 4): 50 + 12 s from now.
    assert wait == 62
    clock.now += wait
    assert a.take_shared("x") is None
    # 4 + 1 now: the next fits once the previous window weighs 3, 24 s into this one.
    assert a.take_shared("x") == 12
    clock.now += 12
    assert a.take_shared("x") is None


def test_local_counts_meet_in_the_database_at_each_sync(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    a, b = _pair(sessions, clock, Limit(requests=10, per_seconds=60), name="predict")
    assert all(a.take("7") is None for _ in range(6))  # no database round trip
    assert all(b.take("7") is None for _ in range(4))
    a.sync()
    b.sync()
    a.sync()  # a reads back b's counts
    # Both now know of all ten: the limit holds across them.
    assert a.take("7") is not None
    assert b.take("7") is not None
    with sessions() as session:
        total = session.scalar(select(RateCounter.count))
    assert total == 10


def test_counts_being_synced_still_count_for_requests_judged_meanwhile(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    limit = Limit(requests=5, per_seconds=60)
    window = SharedWindow("predict", limit, digest_key=KEY, sessions=sessions, clock=clock)
    assert all(window.take("7") is None for _ in range(5))
    judged_meanwhile: list[int | None] = []

    # A request arrives while sync's transaction is open (its lock released).
    def judge(session: Session, *_: object) -> None:
        judged_meanwhile.append(window.take("7"))

    event.listen(sessions, "after_begin", judge)
    try:
        window.sync()
    finally:
        event.remove(sessions, "after_begin", judge)
    assert judged_meanwhile and judged_meanwhile[0] is not None  # refused: five already taken
    assert window.take("7") is not None


def test_the_table_holds_keyed_digests_never_an_address(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    a, _ = _pair(sessions, clock, Limit(requests=5, per_seconds=60))
    a.take_shared("198.51.100.23")
    with sessions() as session:
        keys = list(session.scalars(select(RateCounter.key)))
    assert len(keys) == 1
    assert "198.51.100.23" not in keys[0] and len(keys[0]) == 64
    other = SharedWindow(
        "failed_auth",
        Limit(5, 60),
        digest_key=bytes(32),
        sessions=sessions,
        clock=clock,
    )
    assert other._row_key("198.51.100.23") != keys[0]  # keyed: not a plain hash anyone can redo


def test_counts_survive_an_unreachable_database() -> None:
    clock = Clock()
    engine = make_engine("sqlite:////nonexistent/dir/warden.db")
    window = SharedWindow(
        "jobs",
        Limit(requests=2, per_seconds=60),
        digest_key=KEY,
        sessions=make_sessionmaker(engine),
        clock=clock,
    )
    # Counted and judged locally: the limit still holds in this process.
    assert window.take_shared("1") is None
    assert window.take_shared("1") is None
    assert window.take_shared("1") is not None
    with pytest.raises(OperationalError):
        window.sync()
    assert window._slots["1"].pending == 2  # given back, not lost
    engine.dispose()


def test_refusals_summarised_once_per_source_and_window() -> None:
    clock = Clock(1_800_000_000.0)
    summaries = RefusalSummaries(clock)
    source = Source(ip="203.0.113.7")

    def note(status: int, subject: str = "203.0.113.7") -> bool:
        return summaries.note(
            "failed_auth",
            subject,
            status=status,
            per_seconds=60,
            actor=ANONYMOUS,
            source=source,
        )

    assert note(401) is True  # the first: audited in full
    assert [note(401) for _ in range(4)] == [False] * 4
    assert [note(429) for _ in range(25)] == [False] * 25
    assert note(401, subject="198.51.100.1") is True  # another source
    assert summaries.take_due() == []  # the window is still open
    clock.now += 60
    due = summaries.take_due()
    assert len(due) == 1  # the other source had nothing further: no summary
    event = due[0]
    assert event.event_type == SUMMARY_EVENT
    assert event.source.ip == "203.0.113.7"
    assert event.outcome == 429
    assert event.details["count"] == 29
    assert event.details["by_status"] == {"401": 4, "429": 25}
    assert summaries.take_due() == []  # handed out once
    # A new window starts with a full entry again.
    assert note(401) is True


def test_open_summaries_are_all_handed_out_at_stop() -> None:
    clock = Clock()
    summaries = RefusalSummaries(clock)
    for _ in range(3):
        summaries.note(
            "predict", "42", status=429, per_seconds=60, actor=ANONYMOUS, source=Source()
        )
    assert summaries.take_due() == []
    (event,) = summaries.take_due(everything=True)
    assert event.details["count"] == 2


def test_past_the_subjects_it_can_follow_a_process_asks_the_database(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("governance.limits.window.MAX_SUBJECTS", 2)
    clock = Clock()
    a, _ = _pair(sessions, clock, Limit(requests=3, per_seconds=60))
    for address in ("10.0.0.1", "10.0.0.2"):
        assert a.take_shared(address) is None
    # A third address finds no room: counted and judged in the database all the same.
    taken = [a.take_shared("10.0.0.3") is None for _ in range(5)]
    assert taken == [True] * 3 + [False] * 2
    assert len(a._slots) == 2
