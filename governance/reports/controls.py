"""Control status and findings, by the rules written down in docs/reports.md#controls.

Each control is ``effective``, ``exception`` (the evidence records a deviation: a model served
by override, a period no signature covers, a DP claim the ledger does not cover, a policy test
removed), ``gap`` (no evidence where some is needed) or ``not_applicable``. A status is never
"evidenced because data exists": each rule names what it looked at. Every exception or gap
is also a finding, with its severity, the section and audit entries that show it, and what
would close it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from governance.reports.document import (
    Control,
    ControlStatus,
    EvidenceRef,
    Finding,
    Report,
)


@dataclass(frozen=True)
class RemovedTest:
    """A policy test removed in the period (a check taken away so a change could pass)."""

    seq: int
    reason: str
    actor: str | None


@dataclass
class _Outcome:
    status: ControlStatus
    rule: str
    note: str
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    section: str
    evidence: tuple[str, ...]
    judge: Callable[[Report, list[RemovedTest]], _Outcome]


def _finding(
    control: str,
    severity: str,
    title: str,
    detail: str,
    section: str,
    seqs: list[int],
    to_close: str,
) -> Finding:
    return Finding(
        id="",  # numbered once every control is judged
        severity=severity,  # type: ignore[arg-type]
        control=control,
        title=title,
        detail=detail,
        evidence=EvidenceRef(section=section, audit_seqs=sorted(set(seqs))),
        to_close=to_close,
    )


def _c1(r: Report, _t: list[RemovedTest]) -> _Outcome:
    log = r.meta.audit_log
    seqs = [s for s in (log.first_seq, log.last_seq) if s is not None]
    if not log.verification.verified:
        return _Outcome(
            "exception",
            "C1.1 the log did not verify",
            f"the audit log did not verify: {log.verification.error}",
            [
                _finding(
                    "C1",
                    "high",
                    "Audit log not verified",
                    f"Verification of the live log failed: {log.verification.error}",
                    "sec-logging",
                    [log.verification.first_bad_seq] if log.verification.first_bad_seq else seqs,
                    "Investigate the first bad entry, restore the log from a verified copy and "
                    "generate the report again.",
                )
            ],
        )
    if not log.checkpoint_covers_period:
        return _Outcome(
            "exception",
            "C1.2 no signed checkpoint covers the period's last entry",
            "part of the period is not anchored by any signature",
            [
                _finding(
                    "C1",
                    "high",
                    "Period not covered by a signed checkpoint",
                    "No signed checkpoint includes the period's last entry: those entries "
                    "could be changed without detection.",
                    "sec-audit_log",
                    seqs,
                    "Generate the report through `warden report` or POST /v1/reports, which "
                    "sign a checkpoint covering the period first.",
                )
            ],
        )
    if log.entries_in_period == 0:
        return _Outcome("gap", "C1.3 no entry in the period", "the log recorded nothing")
    return _Outcome(
        "effective",
        "C1.4 verified, and anchored by a checkpoint covering the period",
        f"entries {log.first_seq}..{log.last_seq} verified and covered by the checkpoint at "
        f"tree size {log.checkpoint.tree_size if log.checkpoint else '?'}",
    )


def _c2(r: Report, _t: list[RemovedTest]) -> _Outcome:
    if not r.systems:
        return _Outcome("not_applicable", "C2.1 no AI system in scope", "no system in scope")
    found = []
    by_key = {(m.name, m.version): m for m in r.models.models}
    for system in r.systems:
        entry = by_key.get((system.name, system.version))
        if entry is not None and entry.model_card_sha256 and not entry.model_card_verified:
            found.append(
                _finding(
                    "C2",
                    "high",
                    f"Model card of {system.name}:{system.version} does not match its manifest",
                    "The card's sha256 differs from the one its manifest records: it is not "
                    "shown as evidence.",
                    system.anchor,
                    [],
                    "Register the version again from its original artifact.",
                )
            )
        elif system.model_card is None or not system.model_card.intended_use:
            found.append(
                _finding(
                    "C2",
                    "medium",
                    f"No model card for {system.name}:{system.version}",
                    "The system has no verified model card stating its intended use, so "
                    "Annex IV §1 and Art. 13 cannot be answered from Warden's records.",
                    system.anchor,
                    [e.seq for e in system.serving_history],
                    "Train with `warden privacy train` (which writes the card) or add a "
                    "model_card.json listed in the artifact's manifest, and register anew.",
                )
            )
    if any(f.severity == "high" for f in found):
        return _Outcome(
            "exception", "C2.2 a card does not match its manifest", "tampered card", found
        )
    if found:
        return _Outcome(
            "gap", "C2.3 a system in scope has no model card", "missing model cards", found
        )
    return _Outcome("effective", "C2.4 every system in scope has a verified card", "cards verified")


def _c3(r: Report, _t: list[RemovedTest]) -> _Outcome:
    in_scope = {(s.name, s.version) for s in r.systems}
    claims = [m for m in r.privacy.models if (m.model, m.version) in in_scope]
    bad = [m for m in claims if m.dp_claim_uncovered or m.dp_claim == "void"]
    if bad:
        return _Outcome(
            "exception",
            "C3.1 a DP claim the ledger does not cover, or void",
            "a model claims differential privacy the ledger does not vouch for",
            [
                _finding(
                    "C3",
                    "high",
                    f"DP claim of {m.model}:{m.version} not covered by the ledger",
                    m.dp_claim_statement,
                    "sec-privacy",
                    [],
                    "Retrain through `warden privacy train`, which charges the ledger, or "
                    "remove the claim from the model card.",
                )
                for m in bad
            ],
        )
    if not any(m.dp_claim == "ledger" for m in claims):
        return _Outcome(
            "not_applicable",
            "C3.2 no system in scope claims differential privacy",
            "no DP claim to check",
        )
    return _Outcome(
        "effective",
        "C3.3 every DP claim is covered by the ledger",
        "DP claims match ledger runs within each dataset's cap",
    )


def _c4(r: Report, _t: list[RemovedTest]) -> _Outcome:
    if not r.systems:
        return _Outcome("not_applicable", "C4.1 no AI system in scope", "no system in scope")
    found = []
    for system in r.systems:
        for o in system.overrides:
            failing = (
                "; ".join(
                    str(f.get("reason"))
                    if f.get("feature") in (None, "*")
                    else f"{f.get('feature')}: {f.get('reason')}"
                    for f in o.failures
                )
                or "the gate's checks"
            )
            found.append(
                _finding(
                    "C4",
                    "high" if system.stage == "serving" else "medium",
                    f"{system.name}:{system.version} promoted by override of the fairness gate",
                    f"It failed {failing}; {o.approved_by} overrode the gate: {o.justification}",
                    system.anchor,
                    ([o.audit_seq] if o.audit_seq is not None else [])
                    + [g.seq for g in system.gate if g.reason == "override"],
                    "Mitigate and re-audit the model until it passes the thresholds, then "
                    "promote the passing version; or record why the exception is accepted "
                    "and when it is reviewed.",
                )
            )
    unaudited = [
        s
        for s in r.systems
        if s.stage == "serving" and not s.fairness and not s.overrides and not s.gate
    ]
    if found:
        return _Outcome(
            "exception",
            "C4.2 a system in scope passed the gate by override",
            "a model passed the gate by override, not by audit",
            found,
        )
    if unaudited:
        return _Outcome(
            "gap",
            "C4.3 a serving system has no fairness evidence in the period",
            "serving without fairness evidence in the period",
            [
                _finding(
                    "C4",
                    "low",
                    f"No fairness evidence for {s.name}:{s.version} in the period",
                    "The version served, but no audit, gate decision or override of it was "
                    "recorded in the period (it may predate it).",
                    s.anchor,
                    [],
                    "Re-run `warden fairness audit` on the serving version each period.",
                )
                for s in unaudited
            ],
        )
    return _Outcome(
        "effective",
        "C4.4 every system in scope passed its gate by audit",
        "fairness audits pass the thresholds",
    )


def _c5(r: Report, removed: list[RemovedTest]) -> _Outcome:
    if r.access_control.policy is None:
        return _Outcome(
            "gap",
            "C5.1 no policy in force",
            "no access policy in force at the period's end",
            [
                _finding(
                    "C5",
                    "high",
                    "No access policy in force",
                    "Every call is refused, and nothing records who may do what.",
                    "sec-access_control",
                    [],
                    "Run `warden init` or apply a policy.",
                )
            ],
        )
    if removed:
        return _Outcome(
            "exception",
            "C5.2 a policy test was removed in the period",
            "a policy test was removed, so a change it blocked could pass",
            [
                _finding(
                    "C5",
                    "medium",
                    "Policy test removed",
                    f"{t.actor or 'someone'} removed a policy test: {t.reason}",
                    "sec-access_control",
                    [t.seq],
                    "Review the policy changes after the removal and restore the test or "
                    "record why it no longer applies.",
                )
                for t in removed
            ],
        )
    return _Outcome(
        "effective",
        "C5.3 a verified policy in force, no policy test removed",
        f"policy version {r.access_control.policy.version} in force",
    )


def _c6(r: Report, _t: list[RemovedTest]) -> _Outcome:
    if r.usage.requests == 0 and not any(s.stage == "serving" for s in r.systems):
        return _Outcome("not_applicable", "C6.1 nothing served and no call", "no use to monitor")
    findings = [
        _finding(
            "C6",
            "low",
            f"Burst of {b.denials} denials for {b.actor or '(unauthenticated)'}",
            f"{b.denials} denied calls within {r.usage.burst_window_seconds} s from "
            f"{b.window_start.isoformat()}",
            "sec-usage",
            [],
            "Check whether the caller is misconfigured or probing; disable its key if so.",
        )
        for b in r.usage.denial_bursts
    ]
    return _Outcome(
        "effective",
        "C6.2 every call is audited and counted",
        f"{r.usage.predictions.requests} prediction and {r.usage.administrative.requests} "
        "administrative calls audited",
        findings,
    )


def _c7(r: Report, _t: list[RemovedTest]) -> _Outcome:
    dp = r.data_protection
    if dp.records_stored == 0 and dp.data_keys.total == 0 and not dp.erasures:
        return _Outcome("not_applicable", "C7.1 no personal data stored", "nothing stored")
    unanchored = [e for e in dp.erasures if e.audit_seq is None]
    if unanchored:
        return _Outcome(
            "exception",
            "C7.2 an erasure without its audit entry",
            "an erasure receipt is not recorded in the audit log",
            [
                _finding(
                    "C7",
                    "medium",
                    f"Erasure {e.id} not in the audit log",
                    "The receipt names no audit entry, so the erasure is not tamper-evident.",
                    "sec-data_protection",
                    [],
                    "Investigate the receipt; re-run the erasure for the subject.",
                )
                for e in unanchored
            ],
        )
    return _Outcome(
        "effective",
        "C7.3 records encrypted under per-subject keys; erasures audited",
        f"{dp.records_stored} records stored, {len(dp.erasures)} erasures with receipts",
    )


def _c8(r: Report, _t: list[RemovedTest]) -> _Outcome:
    missing = r.organisation.missing
    if missing:
        return _Outcome(
            "gap",
            "C8.1 the organisation's record of processing is incomplete",
            f"policies/organisation.yaml leaves {', '.join(missing)} empty",
            [
                _finding(
                    "C8",
                    "medium",
                    "Record of processing incomplete",
                    f"GDPR Art. 30 needs {', '.join(missing)}; Warden cannot evidence them.",
                    "sec-organisation",
                    [],
                    "The data protection officer fills policies/organisation.yaml.",
                )
            ],
        )
    return _Outcome(
        "effective",
        "C8.2 deployment described and the record of processing filled",
        "organisation record complete",
    )


SPECS: tuple[_Spec, ...] = (
    _Spec(
        "C1",
        "Record-keeping: tamper-evident event log",
        "logging",
        ("/meta/audit_log", "/logging"),
        _c1,
    ),
    _Spec(
        "C2",
        "Technical documentation and transparency: model cards",
        "systems",
        ("/systems", "/models/models"),
        _c2,
    ),
    _Spec(
        "C3",
        "Privacy-preserving training and budget",
        "privacy",
        ("/privacy/models", "/privacy/datasets"),
        _c3,
    ),
    _Spec(
        "C4",
        "Bias examination and deployment gate",
        "fairness",
        ("/fairness/audits", "/fairness/gate_decisions", "/fairness/overrides", "/systems"),
        _c4,
    ),
    _Spec(
        "C5",
        "Access control, policy changes and access review",
        "access_control",
        ("/access_control/policy", "/access_control/changes", "/access_control/role_timeline"),
        _c5,
    ),
    _Spec(
        "C6",
        "Use monitoring: requests, denials and bursts",
        "usage",
        ("/usage/predictions", "/usage/administrative", "/usage/denial_bursts"),
        _c6,
    ),
    _Spec(
        "C7",
        "Data protection: encryption, keys, erasure, retention",
        "data_protection",
        ("/data_protection/data_keys", "/data_protection/erasures", "/data_protection/retention"),
        _c7,
    ),
    _Spec(
        "C8",
        "System description and record of processing",
        "organisation",
        ("/system", "/organisation"),
        _c8,
    ),
)

_SEVERITY = {"high": 0, "medium": 1, "low": 2}


def judge(report: Report, removed_tests: list[RemovedTest]) -> tuple[list[Control], list[Finding]]:
    """Every control's status and the findings, numbered F1.. from the most severe."""
    outcomes = [(spec, spec.judge(report, removed_tests)) for spec in SPECS]
    findings = sorted(
        (f for _, o in outcomes for f in o.findings),
        key=lambda f: (_SEVERITY[f.severity], f.control),
    )
    for n, f in enumerate(findings, 1):
        f.id = f"F{n}"
    controls = [
        Control(
            id=spec.id,
            title=spec.title,
            section=spec.section,
            evidence=list(spec.evidence),
            status=o.status,
            rule=o.rule,
            note=o.note,
            findings=[f.id for f in o.findings],
        )
        for spec, o in outcomes
    ]
    return controls, findings
