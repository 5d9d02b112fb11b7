"""The report's usage section, from the audit log's ``api.call`` counts (governance.audit.calls)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from governance.audit import calls as audit_calls
from governance.audit.calls import CallRange
from governance.reports.document import (
    CallCounts,
    CountRow,
    DenialBurst,
    ReasonRow,
    TimeBucket,
    Usage,
)

# A burst: at least this many denials for one actor inside one fixed window.
BURST_WINDOW_SECONDS = 60
BURST_THRESHOLD = 10
# The request timeline has at most about this many buckets.
TARGET_BUCKETS = 48
_BUCKET_STEPS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)


def bucket_seconds(start: datetime, end: datetime) -> int:
    """The smallest standard bucket width giving at most ``TARGET_BUCKETS`` buckets."""
    span = max((end - start).total_seconds(), 1.0)
    for step in _BUCKET_STEPS:
        if span / step <= TARGET_BUCKETS:
            return step
    return _BUCKET_STEPS[-1]


def model_of(resource: str | None) -> str | None:
    """The model an ``api.call`` entry concerns, from its ``k=v,...`` resource label.

    A served prediction is labelled ``model=<name>,version=<v>``; a guarded call (allowed or
    denied before the route ran) ``action=predict,object=model:<name>,path=...``.
    """
    if not resource:
        return None
    fields = dict(part.split("=", 1) for part in resource.split(",") if "=" in part)
    if "model" in fields:
        return fields["model"]
    obj = fields.get("object", "")
    return obj.removeprefix("model:") if obj.startswith("model:") else None


def is_prediction(resource: str | None) -> bool:
    """Whether an ``api.call`` label is a prediction: served (``model=...``), or refused
    before serving (``action=predict,object=model:...``)."""
    if not resource:
        return False
    fields = dict(part.split("=", 1) for part in resource.split(",") if "=" in part)
    return "model" in fields or (
        fields.get("action") == "predict" and fields.get("object", "").startswith("model:")
    )


def _counts(c: dict[str, int]) -> CallCounts:
    return CallCounts(
        requests=sum(c.values()),
        allowed=c.get("allow", 0),
        denied=c.get("deny", 0),
        other=c.get("other", 0),
    )


EXPLANATION = (
    "Requests counts every audited API call. Predictions are calls to a model's predict "
    "route; administrative calls are the rest (registry, policy, keys, records, reports, "
    "audit reads). The per-model table counts calls that name a model, predictions and "
    "administrative calls on that model alike; the per-principal table counts every call."
)


def _rows(counts: dict[str, dict[str, int]]) -> list[CountRow]:
    out = [
        CountRow(
            key=key,
            allowed=c.get("allow", 0),
            denied=c.get("deny", 0),
            other=c.get("other", 0),
            total=sum(c.values()),
        )
        for key, c in counts.items()
    ]
    return sorted(out, key=lambda r: (-r.total, r.key))


def build_usage(
    session: Session,
    *,
    first_seq: int | None,
    last_seq: int | None,
    start: datetime,
    end: datetime,
    model: str | None = None,
) -> Usage:
    """Aggregate the ``api.call`` entries with ``first_seq <= seq <= last_seq``.

    Args:
        session: a session on the log's database.
        first_seq: the period's first entry (None: the period holds no entry).
        last_seq: the period's last entry.
        start: the period's start (bucket origin).
        end: the period's end.
        model: only count calls concerning this model.

    Returns:
        The usage section.
    """
    width = bucket_seconds(start, end)
    empty = Usage(
        requests=0,
        allowed=0,
        denied=0,
        other=0,
        predictions=_counts({}),
        administrative=_counts({}),
        explanation=EXPLANATION,
        by_model=[],
        by_principal=[],
        denials_by_reason=[],
        bucket_seconds=width,
        timeline=[],
        burst_window_seconds=BURST_WINDOW_SECONDS,
        burst_threshold=BURST_THRESHOLD,
        denial_bursts=[],
    )
    if first_seq is None or last_seq is None:
        return empty
    # One GROUP BY gives everything keyed by (actor, resource, decision); the number of
    # groups is the number of distinct callers times resources, not the number of calls.
    everything = CallRange(first_seq, last_seq)
    by_model: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_principal: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    split: dict[bool, dict[str, int]] = {True: defaultdict(int), False: defaultdict(int)}
    kept_resources: set[str | None] = set()
    for actor, resource, decision, count in audit_calls.by_actor_resource_decision(
        session, everything
    ):
        target = model_of(resource)
        if model is not None and target != model:
            continue
        kept_resources.add(resource)
        kind = decision if decision in ("allow", "deny") else "other"
        totals[kind] += count
        split[is_prediction(resource)][kind] += count
        by_principal[actor or "(unauthenticated)"][kind] += count
        if target is not None:
            by_model[target][kind] += count
    if model is not None and not kept_resources:
        return empty
    scope = everything
    if model is not None:
        scope = CallRange(
            first_seq, last_seq, tuple(sorted(r for r in kept_resources if r is not None))
        )
    reasons = audit_calls.denial_reasons(session, scope)
    timeline: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for index, decision, count in audit_calls.decision_timeline(
        session, scope, start=start, width=width
    ):
        kind = decision if decision in ("allow", "deny") else "other"
        timeline[int(index)][kind] += count
    bursts = audit_calls.denial_bursts(
        session, scope, start=start, window=BURST_WINDOW_SECONDS, threshold=BURST_THRESHOLD
    )

    return Usage(
        requests=sum(totals.values()),
        allowed=totals["allow"],
        denied=totals["deny"],
        other=totals["other"],
        predictions=_counts(split[True]),
        administrative=_counts(split[False]),
        explanation=EXPLANATION,
        by_model=_rows(by_model),
        by_principal=_rows(by_principal),
        denials_by_reason=sorted(
            (ReasonRow(reason=r or "(no reason recorded)", count=c) for r, c in reasons),
            key=lambda r: (-r.count, r.reason),
        ),
        bucket_seconds=width,
        timeline=[
            TimeBucket(
                start=start + timedelta(seconds=i * width),
                allowed=c.get("allow", 0),
                denied=c.get("deny", 0),
                other=c.get("other", 0),
            )
            for i, c in sorted(timeline.items())
        ],
        burst_window_seconds=BURST_WINDOW_SECONDS,
        burst_threshold=BURST_THRESHOLD,
        denial_bursts=sorted(
            (
                DenialBurst(
                    actor=actor,
                    window_start=start + timedelta(seconds=int(i) * BURST_WINDOW_SECONDS),
                    denials=c,
                )
                for actor, i, c in bursts
            ),
            key=lambda b: (b.window_start, b.actor or ""),
        ),
    )
