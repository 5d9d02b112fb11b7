"""One section per AI system: each model version served or evaluated in the period.

What Annex IV and Art. 13 ask first (the model card), then where its data came from, the
fairness evidence with the thresholds beside the values, the gate's decisions and who
overrode it, and when it served. Built from the report's other sections plus the serving
events of the audit log, so every number here is also found, with its source, elsewhere.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from governance.audit import repository as audit_entries
from governance.registry.service import registry
from governance.reports.document import (
    AISystem,
    DataGovernance,
    FairnessAuditRow,
    FairnessEvidence,
    MeasureCheck,
    ModelCardView,
    ModelEntry,
    Report,
    SchemaBound,
    ServingEvent,
)

SERVING_EVENTS = ("model.promote", "model.retire")


def anchor_of(name: str, version: str) -> str:
    """The section id of one system (HTML ids: letters, digits, ``-``)."""
    return "system-" + re.sub(r"[^A-Za-z0-9-]+", "-", f"{name}-{version}").strip("-").lower()


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def card_view(card: Any) -> ModelCardView | None:
    """The fields of a Mitchell et al. card an auditor reads first (None: no verified card).

    Two shapes exist: the card ``warden privacy train`` writes (``intended_use.primary_use``,
    ``training_data.source``) and the one an ONNX import writes from what its importer
    declared (``intended_use`` as text, the rest under ``provenance``).
    """
    if not isinstance(card, dict):
        return None
    intended = card.get("intended_use")
    declared = _mapping(card.get("provenance"))
    training = _mapping(card.get("training_data"))
    source = _mapping(training.get("source"))
    provenance = [
        str(training.get("description") or ""),
        f"source: {source.get('citation')}" if source.get("citation") else "",
        f"licence: {source.get('licence')}" if source.get("licence") else "",
        f"url: {source.get('url')}" if source.get("url") else "",
        f"content sha256: {training.get('content_hash')}" if training.get("content_hash") else "",
        f"declared by the importer: {declared['training_data']}"
        if declared.get("training_data")
        else "",
        f"trained by {declared['trained_by']}" if declared.get("trained_by") else "",
        f"code version {declared['code_version']}" if declared.get("code_version") else "",
    ]
    if isinstance(intended, dict):
        use, out_of_scope = intended.get("primary_use"), _texts(intended.get("out_of_scope"))
    else:
        use, out_of_scope = intended, _texts(declared.get("out_of_scope_uses"))
    overall = _mapping(_mapping(card.get("quantitative_analyses")).get("overall"))
    return ModelCardView(
        intended_use=str(use).strip() or None if use else None,
        out_of_scope_uses=out_of_scope,
        data_provenance="; ".join(p for p in provenance if p) or None,
        metrics={
            str(k): float(v)
            for k, v in overall.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
        ethical_considerations=_texts(card.get("ethical_considerations")),
        caveats=_texts(card.get("caveats_and_recommendations")),
    )


def bounds_of(feature: dict[str, Any]) -> str:
    """What a manifest's input-schema feature accepts, in words."""
    if feature.get("categories"):
        return "one of " + ", ".join(str(c) for c in feature["categories"])
    low, high = feature.get("lo"), feature.get("hi")
    if low is not None or high is not None:
        # inference/manifest.py: outside [lo, hi] a value is refused (422) or clipped.
        how = "clipped" if feature.get("out_of_bounds") == "clip" else "refused"
        shown = f"[{'-∞' if low is None else low}, {'∞' if high is None else high}]"
        return f"{shown}; values outside are {how}"
    return "any finite number" if feature.get("type") == "numeric" else "unbounded"


def _limits(report: Report, audit: FairnessAuditRow) -> dict[str, dict[str, float]]:
    doc: dict[str, Any] = next(
        (t.document for t in report.fairness.thresholds if t.version == audit.thresholds_version),
        {},
    )
    limits = dict(doc.get("defaults") or {})
    limits.update(((doc.get("models") or {}).get(audit.model) or {}).get("measures") or {})
    return {m: v for m, v in limits.items() if isinstance(v, dict)}


def _evidence(report: Report, audit: FairnessAuditRow) -> FairnessEvidence:
    failed = {(f.get("feature"), f.get("measure")) for f in audit.failures}
    limits = _limits(report, audit)
    checks: list[MeasureCheck] = []
    excluded: list[str] = []
    for feature in audit.features:
        excluded += [f"{feature.name}={g.label}" for g in feature.groups if not g.reliable]
        for d in feature.disparities:
            bound = limits.get(d.measure)
            if bound is None:
                continue
            limit = " and ".join(
                f"{'≥' if k == 'min' else '≤'} {v:g}" for k, v in sorted(bound.items())
            )
            checks.append(
                MeasureCheck(
                    feature=feature.name,
                    measure=d.measure,
                    value=d.value,
                    limit=limit,
                    passed=(feature.name, d.measure) not in failed and ("*", "*") not in failed,
                )
            )
    return FairnessEvidence(
        audit_id=audit.id,
        created_at=audit.created_at,
        passed=audit.passed,
        thresholds_version=audit.thresholds_version,
        checks=checks,
        excluded_groups=excluded,
    )


def _serving(
    session: Session, start: datetime, end: datetime
) -> list[tuple[ServingEvent, str, str]]:
    events = []
    for event_type in SERVING_EVENTS:
        for entry in audit_entries.entries_of_type(session, event_type, start, end):
            resource = entry.document.get("resource") or {}
            event = ServingEvent(
                seq=entry.seq, time=entry.time, event=event_type, actor=entry.actor
            )
            events.append((event, str(resource.get("model")), str(resource.get("version"))))
    return sorted(events, key=lambda e: e[0].seq)


def build_systems(
    session: Session, report: Report, *, start: datetime, end: datetime
) -> list[AISystem]:
    """Every model version serving now or touched in the period (audited, gated, overridden,
    promoted or retired), in inventory order."""
    serving = _serving(session, start, end)
    manifests = {
        (row.name, row.version): json.loads(row.manifest)
        for row in registry.list_versions(session, report.meta.model)
    }
    privacy = {(m.model, m.version): m for m in report.privacy.models}
    budgets = {b.dataset: b for b in report.privacy.datasets}
    calls = {row.key: row.allowed for row in report.usage.by_model}
    systems = []
    for entry in report.models.models:
        key = (entry.name, entry.version)
        why = _why(report, entry, [e for e in serving if e[1:] == key])
        if not why:
            continue
        manifest = manifests.get(key, {})
        claim = privacy.get(key)
        view = card_view(entry.model_card)
        dataset = _dataset(entry, claim.dataset if claim else None)
        budget = budgets.get(dataset or "")
        training = (entry.model_card or {}).get("training_data") or {}
        systems.append(
            AISystem(
                anchor=anchor_of(entry.name, entry.version),
                name=entry.name,
                version=entry.version,
                stage=entry.stage,
                in_scope_because=why,
                purpose=view.intended_use if view else None,
                model_card=view,
                data_governance=DataGovernance(
                    dataset=dataset,
                    content_hash=training.get("content_hash"),
                    file_hashes={
                        str(k): str(v) for k, v in (training.get("file_hashes") or {}).items()
                    },
                    provenance=view.data_provenance if view else None,
                    privacy_unit=(claim.privacy_unit if claim else None)
                    or training.get("privacy_unit"),
                    input_schema=[
                        SchemaBound(
                            feature=str(f.get("name")),
                            type=str(f.get("type")),
                            bounds=bounds_of(f),
                        )
                        for f in (manifest.get("input_schema") or {}).get("features", [])
                        if isinstance(f, dict)
                    ],
                    dp_claim=claim.dp_claim_statement if claim else "no DP claim recorded",
                    budget_cap_epsilon=budget.cap_epsilon if budget else None,
                    budget_spent_epsilon=budget.spent_epsilon if budget else None,
                ),
                fairness=[
                    _evidence(report, a)
                    for a in report.fairness.audits
                    if a.artifact_sha256 == entry.artifact_sha256
                ],
                gate=[g for g in report.fairness.gate_decisions if (g.model, g.version) == key],
                overrides=[
                    o
                    for o in report.fairness.overrides
                    if o.artifact_sha256 == entry.artifact_sha256
                ],
                serving_history=[e for e, name, version in serving if (name, version) == key],
                predictions_in_period=calls.get(entry.name, 0),
            )
        )
    return systems


def _dataset(entry: ModelEntry, claimed: str | None) -> str | None:
    training = (entry.model_card or {}).get("training_data") or {}
    return claimed or (str(training["dataset"]) if training.get("dataset") else None)


def _why(report: Report, entry: ModelEntry, serving: list[Any]) -> list[str]:
    key = (entry.name, entry.version)
    why = []
    if entry.stage == "serving":
        why.append("serving at generation")
    if serving:
        why.append("promoted or retired in the period")
    if any(a.artifact_sha256 == entry.artifact_sha256 for a in report.fairness.audits):
        why.append("evaluated (fairness audit) in the period")
    if any((g.model, g.version) == key for g in report.fairness.gate_decisions):
        why.append("gated in the period")
    return why
