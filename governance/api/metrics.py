"""``GET /metrics``: Prometheus exposition, for principals holding ``read`` on ``api:metrics``
(the ``monitoring`` role of the default policy).

Counters and histograms come from the processes that served (governance/kit/metrics.py); what
the database holds (the newest checkpoint's age, privacy budgets, data keys) is read at the
scrape, once for all processes. Outside ``/v1``: a scrape every few seconds is not an API call
worth an audit entry each; its permission is still checked, and a refused scrape is a 401/403.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import SettingsDep
from governance.api.deps import Authorize, Caller
from governance.audit.checkpoints import latest_checkpoint_age
from governance.config import Settings
from governance.datasets.service import datasets as dataset_service
from governance.kit import metrics
from governance.kit.problems import responses
from governance.kit.transaction import ReadSessionsDep
from governance.privacy.service import training
from governance.vault.read import data_key_counts

logger = logging.getLogger(__name__)
router = APIRouter(tags=["monitoring"])

CanScrape = Annotated[Caller, Depends(Authorize("api:metrics", "read"))]


class StoredState:
    """A collector of what the database holds, read when the scrape collects it."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        age = latest_checkpoint_age(self.session)
        checkpoint = GaugeMetricFamily(
            "warden_audit_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint of the audit log (absent before one).",
        )
        if age is not None:
            checkpoint.add_metric([], age)
        yield checkpoint

        keys = GaugeMetricFamily(
            "warden_data_keys", "Data keys of data subjects, by state.", labels=["state"]
        )
        for state, count in sorted(data_key_counts(self.session).by_state.items()):
            keys.add_metric([state], count)
        yield keys

        budget = GaugeMetricFamily(
            "warden_privacy_budget_epsilon",
            "Privacy budget of each registered dataset: epsilon spent (recomposed over every "
            "run) and remaining under its cap.",
            labels=["dataset", "state"],
        )
        for row in dataset_service.list(self.session):
            try:
                ledger = training.ledger(self.session, self.settings, row.name)
            except Exception as exc:  # one dataset's trouble must not blank the scrape
                logger.warning("privacy budget of a dataset unreadable: %s", type(exc).__name__)
                continue
            budget.add_metric([row.name, "spent"], _finite(ledger.epsilon_recomposed))
            budget.add_metric([row.name, "remaining"], _finite(ledger.remaining))
        yield budget


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _scrape(sessions: sessionmaker[Session], settings: Settings) -> bytes:
    with sessions() as session:
        return metrics.scrape([StoredState(session, settings)])


@router.get(
    "/metrics",
    operation_id="scrape_metrics",
    response_class=Response,
    responses={
        **responses(),
        200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text format"},
    },
)
async def scrape(_: CanScrape, sessions: ReadSessionsDep, settings: SettingsDep) -> Response:
    """Prometheus metrics of every process of this server, and the database's state."""
    body = await run_in_threadpool(_scrape, sessions, settings)
    return Response(body, media_type=metrics.CONTENT_TYPE)
