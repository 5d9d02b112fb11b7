"""Report generations the console started, followed while they run.

The API answers ``POST /v1/reports`` once the report is written; a page cannot wait that long
on one request, so the console runs the same generation as a task of the server's event loop,
in the same heavy-job queue, and the page polls its state. The server is one process, so the
tasks and their states live in memory; a restart forgets jobs, never reports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from governance.api.deps import Caller
from governance.errors import WardenError
from governance.jobs import HeavyJobs
from governance.reports.endpoints import Reporting, generate_signed
from governance.reports.schemas import ReportCreate

logger = logging.getLogger(__name__)

# Finished jobs kept for their pages; the oldest finished one goes first.
KEEP = 64


@dataclass
class ReportJob:
    """One generation: queued, running, done (with its report) or failed (with why)."""

    id: str
    started_by: str
    started_at: datetime
    state: str = "queued"
    running_since: datetime | None = None
    report_id: str | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class ReportJobs:
    """The jobs of this process, by id."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._jobs: OrderedDict[str, ReportJob] = OrderedDict()

    def get(self, job_id: str) -> ReportJob | None:
        return self._jobs.get(job_id)

    def start(
        self,
        jobs: HeavyJobs,
        deps: Reporting,
        caller: Caller,
        body: ReportCreate,
        *,
        clock: Callable[[], datetime],
    ) -> ReportJob:
        """Queue a generation for ``caller`` and return its job at once."""
        job = ReportJob(secrets.token_hex(8), caller.name, clock())
        self._forget_finished()
        self._jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(
            self._run(job, jobs, deps, caller, body, clock)
        )
        return job

    async def _run(
        self,
        job: ReportJob,
        jobs: HeavyJobs,
        deps: Reporting,
        caller: Caller,
        body: ReportCreate,
        clock: Callable[[], datetime],
    ) -> None:
        try:
            async with jobs.slot("report"):
                job.state = "running"
                job.running_since = clock()
                created = await run_in_threadpool(generate_signed, deps, caller, body)
        except WardenError as exc:
            job.state, job.error = "failed", exc.message
        except Exception:
            logger.exception("report generation %s failed", job.id)
            job.state, job.error = "failed", "the error was logged; no report was written"
        else:
            job.state, job.report_id = "done", created.id
        finally:
            job.task = None

    def _forget_finished(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(self._jobs) - self.keep + 1)]:
            del self._jobs[job_id]


report_jobs = ReportJobs()
