"""An audit computes with no transaction open, so its write re-checks what changed meanwhile.

The plan is read in one short transaction and the result stored in another; between them the
thresholds (or the model, or the dataset) may change. A change the computation did not depend
on is judged under the new version; one it did depend on is a 409 with nothing stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.fairness.errors import AuditConflict
from governance.fairness.models import FairnessAudit
from governance.fairness.service import fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context
from governance.registry.models import ModelVersion


def _thresholds(session: Session, officer: Context, change: dict[str, Any], reason: str) -> int:
    current = thresholds_store.current(session)
    doc = {**json.loads(current.document), **change}
    row = thresholds_store.update(
        session, officer, document=doc, reason=reason, base_version=current.version
    )
    return row.version


def _stored(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        audits = session.scalar(select(func.count()).select_from(FairnessAudit))
        events = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.event_type == "fairness.audit")
        )
        return int(audits or 0), int(events or 0)


def test_a_threshold_change_during_the_computation_is_rechecked_at_the_write(
    sessions: sessionmaker[Session],
    biased_model: ModelVersion,
    engineer: Context,
    officer: Context,
) -> None:
    with sessions.begin() as session:
        plan = fairness.plan_audit(
            session, engineer, model="adult-lr", sensitive=["sex", "race"], bootstrap=0
        )
    assert plan.thresholds_version == 1
    computed = fairness.compute_audit(plan)  # no transaction open here
    assert "demographic_parity_ratio" in {f.measure for f in computed.verdict.failures}

    # An officer loosens the four-fifths rule while the audit computes: the stored verdict is
    # judged under the version that governs at the write, not the one the plan read.
    loose = {"defaults": {"demographic_parity_ratio": {"min": 0.01}}}
    with sessions.begin() as session:
        version = _thresholds(session, officer, loose, "pilot: ratio floor lowered for a test")
    with sessions.begin() as session:
        row = fairness.store_audit(session, engineer, plan, computed)
        assert row.thresholds_version == version
        failing = {f["measure"] for f in json.loads(row.verdict)["failures"]}
        assert "demographic_parity_ratio" not in failing
    assert _stored(sessions) == (1, 1)

    # The minimum group size shaped the computed metrics themselves: that change is a 409, and
    # neither an audit row nor its event is written.
    with sessions.begin() as session:
        _thresholds(session, officer, {"min_group_size": 500}, "larger groups for the pilot")
    with pytest.raises(AuditConflict) as refused, sessions.begin() as session:
        fairness.store_audit(session, engineer, plan, computed)
    assert refused.value.status_code == 409
    assert _stored(sessions) == (1, 1)
