"""A report job's progress fragment in each state: it polls until the job has finished."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from governance.console.auditor.report_jobs import ReportJob
from governance.console.render import ENV
from governance.jobs import JobsState

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "polls", "says"),
    [
        ("queued", True, "1 heavy job running, 0 waiting"),
        ("running", True, "7 s so far"),
        ("done", False, "open rpt-x"),
        ("failed", False, "could not be generated: the period must end after it starts"),
    ],
)
def test_progress_polls_until_finished(state: str, polls: bool, says: str) -> None:
    job = ReportJob("abc", "auditor", WHEN, state=state, report_id="rpt-x")
    job.error = "the period must end after it starts"
    html = ENV.get_template("auditor/job_progress.html.j2").render(
        job=job, elapsed=7, queue=JobsState(running=1, waiting=0, concurrency=1, queue_max=4)
    )
    assert ('hx-trigger="every 1s"' in html) is polls
    assert says in html
