"""Section builders: each reads one domain's evidence through what that domain publishes.

A domain with no data yields empty lists and zero counts, never a placeholder number.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from governance.audit import repository as audit_entries
from governance.config import Settings
from governance.fairness import read as fairness_read
from governance.fairness.read import ThresholdsVersion
from governance.identity.read import standing_of
from governance.policy import read as policy_read
from governance.policy.timeline import role_timeline
from governance.privacy.claims import claim_for
from governance.records import read as records_read
from governance.records.retention import load_retention
from governance.registry.service import registry
from governance.reports.document import (
    AccessControl,
    DataProtection,
    DatasetBudget,
    DisparityRow,
    ErasureRow,
    EventCount,
    Fairness,
    FairnessAuditRow,
    FeatureRow,
    GateDecision,
    GroupRow,
    Interval,
    KeyCounts,
    LedgerRun,
    Logging,
    ModelEntry,
    ModelInventory,
    ModelPrivacy,
    OverrideRow,
    PolicyChange,
    PolicySnapshot,
    Privacy,
    PrivilegedPrincipal,
    PurgeRow,
    RoleHoldingRow,
    RotationRow,
    ThresholdsRow,
)
from governance.vault import read as vault_read

MODEL_CARD_FILE = "model_card.json"
# Actions that change who may do what, touch keys, or reveal or destroy data.
PRIVILEGED_ACTIONS = (
    "approve",
    "decrypt",
    "erase",
    "grant",
    "issue",
    "override",
    "purge",
    "revoke",
    "rotate",
    "write",
)


# --- models and privacy ---------------------------------------------------------------------


def _card(artifact_dir: str, manifest: dict[str, Any]) -> tuple[str | None, bool, Any]:
    expected = (manifest.get("files") or {}).get(MODEL_CARD_FILE)
    path = Path(artifact_dir) / MODEL_CARD_FILE
    if expected is None or not path.is_file():
        return expected, False, None
    data = path.read_bytes()
    ok = hashlib.sha256(data).hexdigest() == expected
    # A card that does not match its manifest is not evidence: show that, not its content.
    return expected, ok, json.loads(data) if ok else None


def _card_with_claim(card: Any, status: str, statement: str) -> Any:
    """The card as the report shows it: a DP statement the ledger does not cover is replaced by
    the ledger's (the artifact's own text is kept beside it, labelled as such)."""
    details = card.get("model_details") if isinstance(card, dict) else None
    if status == "ledger" or not isinstance(details, dict):
        return card
    shown = dict(details)
    if "differential_privacy" in shown:
        shown["differential_privacy_in_artifact"] = shown["differential_privacy"]
    shown["differential_privacy"] = statement
    return {**card, "model_details": shown}


def build_models(
    session: Session, *, model: str | None
) -> tuple[ModelInventory, list[ModelPrivacy]]:
    """The model inventory (with verified model cards) and each version's DP guarantee."""
    entries: list[ModelEntry] = []
    privacy: list[ModelPrivacy] = []
    for row in registry.list_versions(session, model):
        manifest = json.loads(row.manifest)
        card_sha, card_ok, card = _card(row.artifact_dir, manifest)
        # The claim comes from the ledger; the manifest's numbers only where the ledger vouches
        # for its hash.
        claim = claim_for(session, artifact_sha256=row.artifact_sha256, manifest=manifest)
        card = _card_with_claim(card, claim.status, claim.statement)
        entries.append(
            ModelEntry(
                name=row.name,
                version=row.version,
                stage=row.stage,
                registered_at=row.registered_at,
                registered_by=row.registered_by,
                trained_by=row.trained_by,
                artifact_sha256=row.artifact_sha256,
                model_card_sha256=card_sha,
                model_card_verified=card_ok,
                model_card=card,
            )
        )
        covered = claim.status == "ledger"
        training = (manifest.get("training") or {}) if covered else {}
        dataset = training.get("dataset")
        privacy.append(
            ModelPrivacy(
                model=row.name,
                version=row.version,
                private=covered,
                dp_claim=claim.status,
                dp_claim_statement=claim.statement,
                dp_claim_uncovered=claim.uncovered,
                epsilon=claim.epsilon,
                delta=claim.delta,
                accountant=claim.accountant,
                noise_multiplier=training.get("noise_multiplier"),
                sample_rate=training.get("sample_rate"),
                steps=training.get("steps"),
                privacy_unit=training.get("privacy_unit"),
                dataset=dataset.get("name") if isinstance(dataset, dict) else dataset,
            )
        )
    return ModelInventory(count=len(entries), models=entries), privacy


def _finite(value: float) -> float | None:
    # A non-private run charges unbounded ε; JSON has no infinity, so the report says null.
    return value if math.isfinite(value) else None


def build_privacy(session: Session, settings: Settings, models: list[ModelPrivacy]) -> Privacy:
    """DP guarantees per model, and each registered dataset's budget ledger."""
    from governance.datasets.service import datasets as dataset_service
    from governance.privacy.service import training

    budgets = []
    for dataset in dataset_service.list(session):
        summary = training.ledger(session, settings, dataset.name)
        budgets.append(
            DatasetBudget(
                dataset=dataset.name,
                cap_epsilon=summary.cap.epsilon,
                delta=summary.cap.delta,
                spent_epsilon=_finite(summary.epsilon_recomposed),
                spent_epsilon_naive_sum=_finite(summary.epsilon_naive),
                runs=[
                    LedgerRun(
                        id=str(run.id),
                        status=run.status,
                        started_at=run.started_at,
                        noise_multiplier=run.charged.noise_multiplier if run.charged else None,
                        sample_rate=run.charged.sample_rate if run.charged else None,
                        steps=run.charged.steps if run.charged else None,
                    )
                    for run in summary.runs
                ],
            )
        )
    return Privacy(models=models, ledger_available=True, datasets=budgets)


# --- fairness -------------------------------------------------------------------------------


def _interval(doc: Any) -> Interval | None:
    return None if not isinstance(doc, dict) else Interval(low=doc.get("low"), high=doc.get("high"))


def _features(result: dict[str, Any]) -> list[FeatureRow]:
    out = []
    for audit in result.get("audits", []):
        groups = [
            GroupRow(
                label=g["label"],
                count=g["count"],
                reliable=g["reliable"],
                selection_rate=g.get("selection_rate"),
                selection_rate_ci=_interval(g.get("selection_rate_ci")),
                accuracy=g.get("accuracy"),
                true_positive_rate=g.get("true_positive_rate"),
                true_positive_rate_ci=_interval(g.get("true_positive_rate_ci")),
                false_positive_rate=g.get("false_positive_rate"),
                false_positive_rate_ci=_interval(g.get("false_positive_rate_ci")),
            )
            for g in audit.get("groups", [])
        ]
        disparities = [
            DisparityRow(measure=name, value=d.get("value"), ci=_interval(d.get("ci")))
            for name, d in sorted((audit.get("disparities") or {}).items())
        ]
        out.append(FeatureRow(name=audit["name"], groups=groups, disparities=disparities))
    return out


def build_fairness(
    session: Session, *, start: datetime, end: datetime, model: str | None
) -> Fairness:
    thresholds = [_thresholds_row(t) for t in fairness_read.threshold_versions(session)]
    audits = []
    for a in fairness_read.audits_in_period(session, start, end, model=model):
        result = a.result
        audits.append(
            FairnessAuditRow(
                id=a.id,
                created_at=a.created_at,
                kind=a.kind,
                model=a.model,
                model_version=a.model_version,
                artifact_sha256=a.artifact_sha256,
                dataset=a.dataset,
                n_rows=a.n_rows,
                confidence_level=result.get("confidence_level"),
                bootstrap=a.bootstrap,
                thresholds_version=a.thresholds_version,
                passed=a.passed,
                audited_by=a.audited_by,
                failures=a.verdict.get("failures", []),
                features=_features(result),
            )
        )
    gates = []
    for entry in audit_entries.entries_of_type(session, "fairness.gate", start, end):
        doc = entry.document
        resource = doc.get("resource") or {}
        if model is not None and resource.get("model") != model:
            continue
        gates.append(
            GateDecision(
                seq=entry.seq,
                time=entry.time,
                model=resource.get("model"),
                version=resource.get("version"),
                decision=doc.get("decision", ""),
                reason=doc.get("reason", ""),
                actor=entry.actor,
            )
        )
    override_seqs = {
        entry.document.get("details", {}).get("override_id"): entry.seq
        for entry in audit_entries.entries_of_type(session, "fairness.override", start, end)
    }
    overrides = [
        OverrideRow(
            id=o.id,
            created_at=o.created_at,
            model=o.model,
            model_version=o.model_version,
            artifact_sha256=o.artifact_sha256,
            audit_id=o.audit_id,
            thresholds_version=o.thresholds_version,
            approved_by=o.approved_by,
            justification=o.justification,
            failures=o.failures,
            audit_seq=override_seqs.get(o.id),
        )
        for o in fairness_read.overrides_in_period(session, start, end, model=model)
    ]
    return Fairness(thresholds=thresholds, audits=audits, gate_decisions=gates, overrides=overrides)


def _thresholds_row(row: ThresholdsVersion) -> ThresholdsRow:
    return ThresholdsRow(
        version=row.version,
        created_at=row.created_at,
        author=row.author,
        reason=row.reason,
        document=row.document,
    )


# --- access control -------------------------------------------------------------------------


def build_access(session: Session, *, start: datetime, end: datetime) -> AccessControl:
    """The policy in force at the period's end, its history, role timeline and privileged
    principals (holders of a role that may perform a privileged action)."""
    current = policy_read.version_in_force(session, end)
    changes = [
        PolicyChange(
            version=v.version,
            created_at=v.created_at,
            kind=v.kind,
            author=v.author,
            approved_by=v.approved_by,
            reason=v.reason,
            added=v.added,
            removed=v.removed,
        )
        for v in policy_read.versions_in_period(session, start, end)
    ]
    timeline = [
        RoleHoldingRow(**h.as_dict())
        for h in role_timeline(session)
        if h.granted_at < end and (h.revoked_at is None or h.revoked_at >= start)
    ]
    if current is None:
        return AccessControl(
            policy=None,
            changes=changes,
            role_timeline=timeline,
            privileged_roles=[],
            privileged_actions=list(PRIVILEGED_ACTIONS),
            privileged_principals=[],
        )
    rules = current.rules
    privileged_roles = sorted(
        {
            r.values[0].removeprefix("role:")
            for r in rules
            if r.ptype == "p"
            and r.values[0].startswith("role:")
            and r.values[2] in PRIVILEGED_ACTIONS
            and (len(r.values) < 4 or r.values[3] != "deny")
        }
    )
    holders: dict[str, set[str]] = {}
    for r in rules:
        if r.ptype == "g" and not r.values[0].startswith("role:"):
            role = r.values[1].removeprefix("role:")
            if role in privileged_roles:
                holders.setdefault(r.values[0], set()).add(role)
    standing = standing_of(session, holders)
    privileged = [
        PrivilegedPrincipal(
            name=name,
            roles=sorted(roles),
            disabled=standing[name].disabled if name in standing else None,
            active_keys=standing[name].active_keys if name in standing else 0,
        )
        for name, roles in sorted(holders.items())
    ]
    return AccessControl(
        policy=PolicySnapshot(
            version=current.version,
            sha256=current.sha256,
            created_at=current.created_at,
            rules=[r.as_list() for r in rules],
        ),
        changes=changes,
        role_timeline=timeline,
        privileged_roles=privileged_roles,
        privileged_actions=list(PRIVILEGED_ACTIONS),
        privileged_principals=privileged,
    )


# --- data protection and logging ------------------------------------------------------------


def build_data_protection(
    session: Session, settings: Settings, *, start: datetime, end: datetime
) -> DataProtection:
    keys = vault_read.data_key_counts(session)
    states = Counter(keys.by_state)
    rotations = [
        RotationRow(
            id=r.id,
            kind=r.kind,
            rotated_at=r.rotated_at,
            rotated_by=r.rotated_by,
            reason=r.reason,
            from_kek=r.from_kek,
            to_kek=r.to_kek,
            keys_affected=r.keys_affected,
        )
        for r in vault_read.rotations_in_period(session, start, end)
    ]
    erasures = [
        ErasureRow(
            id=e.id,
            subject_ref=e.subject_ref,
            erased_at=e.erased_at,
            erased_by=e.erased_by,
            dek_ids=e.dek_ids,
            records_affected=e.records_affected,
            audit_seq=e.audit_seq,
        )
        for e in records_read.erasures_in_period(session, start, end)
    ]
    purges = [
        PurgeRow(
            seq=entry.seq,
            time=entry.time,
            actor=entry.actor,
            total=int(entry.document["details"].get("total", 0)),
            dry_run=bool(entry.document["details"].get("dry_run")),
            deleted={
                k: int(v) for k, v in (entry.document["details"].get("deleted") or {}).items()
            },
        )
        for entry in audit_entries.entries_of_type(session, "records.purge", start, end)
    ]
    return DataProtection(
        encryption_scheme=(
            "AES-256-GCM envelope encryption: a data key (DEK) per data subject, wrapped by a "
            f"key-encryption key from the '{settings.key_provider}' key provider; the record id "
            "is bound as associated data; erasure destroys the DEK (crypto-shredding)"
        ),
        data_keys=KeyCounts(
            total=sum(states.values()),
            active=states.get("active", 0),
            decrypt_only=states.get("decrypt_only", 0),
            destroyed=states.get("destroyed", 0),
            max_version=keys.max_version,
            kek_ids=keys.kek_ids,
            explanation=(
                "A rotation retires every active data key (decrypt-only: it opens the records it "
                "sealed, and seals nothing new); a subject gets a new active key when its next "
                "record is stored, so 0 active keys right after a rotation is expected. "
                "Destroyed keys were erased: their records can no longer be read."
            ),
        ),
        rotations=rotations,
        erasures=erasures,
        retention=load_retention(settings.policies_dir).as_dict(),
        purges=purges,
        records_stored=records_read.count_records(session),
    )


def build_logging(
    session: Session,
    settings: Settings,
    *,
    first_seq: int | None,
    last_seq: int | None,
    verified: bool,
) -> Logging:
    counts: list[EventCount] = []
    if first_seq is not None and last_seq is not None:
        counts = [
            EventCount(event_type=t, count=c)
            for t, c in audit_entries.count_by_type(session, first_seq, last_seq)
        ]
    return Logging(
        retention_min_days=load_retention(settings.policies_dir).audit_min_days,
        clock_source=(
            "the server's system clock, recorded in UTC at millisecond precision when each "
            "entry is appended (ISO 8601 with 'Z')"
        ),
        entry_format="warden.audit/1, RFC 8785 canonical JSON",
        hash_algorithm="SHA-256 Merkle tree (RFC 6962 / RFC 9162 leaf and node hashing)",
        checkpoint_format="C2SP signed note (tlog-checkpoint), Ed25519",
        checkpoints_total=audit_entries.count_checkpoints(session),
        log_verified=verified,
        entries_by_type=counts,
    )
