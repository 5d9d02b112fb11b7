"""The control matrix: each report section mapped to the regulations and standards it evidences.

The mapping (which article a section speaks to) is fixed here; the status of each row is
computed from the report itself: ``evidenced`` when the section holds data for the period,
``no_data`` when the domain recorded nothing yet, ``failed`` when the evidence shows a failure
(the log did not verify, a model card does not match its manifest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from governance.reports.document import Control, References, Report

Status = Literal["evidenced", "no_data", "failed"]


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    section: str
    references: References
    evidence: tuple[str, ...]
    has_data: Callable[[Report], bool]
    failed: Callable[[Report], bool] = lambda _r: False


def _refs(eu: list[str], gdpr: list[str], nist: list[str], iso: list[str]) -> References:
    return References(eu_ai_act=eu, gdpr=gdpr, nist_ai_rmf=nist, iso_42001=iso)


SPECS: tuple[_Spec, ...] = (
    _Spec(
        "C1",
        "Record-keeping: tamper-evident event log",
        "logging",
        _refs(
            ["Art. 12", "Art. 19", "Art. 26(6)"],
            ["Art. 5(2)", "Art. 30"],
            ["GOVERN 1.5", "MANAGE 4.1"],
            ["A.6.2.8"],
        ),
        ("/meta/audit_log", "/logging"),
        lambda r: r.meta.audit_log.entries_in_period > 0,
        lambda r: not r.meta.audit_log.verification.verified,
    ),
    _Spec(
        "C2",
        "Technical documentation and transparency: model cards",
        "models",
        _refs(
            ["Art. 11", "Annex IV §1-3", "Art. 13(3)"],
            [],
            ["MAP 2.1", "MEASURE 2.9"],
            ["A.6.2.7", "A.8.2"],
        ),
        ("/models/models",),
        lambda r: r.models.count > 0,
        lambda r: any(m.model_card_sha256 and not m.model_card_verified for m in r.models.models),
    ),
    _Spec(
        "C3",
        "Privacy-preserving training and budget",
        "privacy",
        _refs(["Art. 10(5)"], ["Art. 25", "Art. 32"], ["MEASURE 2.10"], ["A.7.4", "B.7.4"]),
        ("/privacy/models", "/privacy/datasets"),
        lambda r: bool(r.privacy.models or r.privacy.datasets),
        # A DP claim the ledger does not cover, or one void until retrained, is a finding.
        lambda r: any(m.dp_claim_uncovered or m.dp_claim == "void" for m in r.privacy.models),
    ),
    _Spec(
        "C4",
        "Bias examination and deployment gate",
        "fairness",
        _refs(
            ["Art. 10(2)(f)", "Art. 10(2)(g)", "Art. 15"],
            [],
            ["MEASURE 2.11", "MANAGE 1.3"],
            ["A.5.4", "A.7.3"],
        ),
        (
            "/fairness/audits",
            "/fairness/thresholds",
            "/fairness/gate_decisions",
            "/fairness/overrides",
        ),
        lambda r: bool(r.fairness.audits or r.fairness.gate_decisions or r.fairness.overrides),
    ),
    _Spec(
        "C5",
        "Access control, policy changes and access review",
        "access_control",
        _refs(
            ["Art. 14", "Art. 15(5)"],
            ["Art. 32(1)(b)", "Art. 32(4)"],
            ["GOVERN 2.1", "MANAGE 2.4"],
            ["A.3.2", "A.4.6"],
        ),
        (
            "/access_control/policy",
            "/access_control/changes",
            "/access_control/role_timeline",
            "/access_control/privileged_principals",
        ),
        lambda r: r.access_control.policy is not None,
    ),
    _Spec(
        "C6",
        "Use monitoring: requests, denials and bursts",
        "usage",
        _refs(
            ["Art. 26(5)", "Art. 72"], ["Art. 32(1)(d)"], ["MEASURE 3.1", "MANAGE 4.1"], ["A.6.2.6"]
        ),
        (
            "/usage/by_model",
            "/usage/by_principal",
            "/usage/denials_by_reason",
            "/usage/denial_bursts",
        ),
        lambda r: r.usage.requests > 0,
    ),
    _Spec(
        "C7",
        "Data protection: encryption, keys, erasure, retention",
        "data_protection",
        _refs(
            ["Art. 10(5)(e)"],
            ["Art. 17", "Art. 30", "Art. 32"],
            ["MEASURE 2.10"],
            ["A.7.2", "A.7.5"],
        ),
        (
            "/data_protection/data_keys",
            "/data_protection/rotations",
            "/data_protection/erasures",
            "/data_protection/retention",
            "/data_protection/purges",
        ),
        lambda r: r.data_protection.data_keys.total > 0 or bool(r.data_protection.erasures),
    ),
    _Spec(
        "C8",
        "System description and deployment",
        "system",
        _refs(
            ["Art. 13(3)(b)", "Annex IV §1"],
            ["Art. 30(1)"],
            ["MAP 1.1", "GOVERN 1.6"],
            ["A.6.2.2", "A.6.2.5"],
        ),
        ("/system",),
        lambda _r: True,
    ),
)


def control_matrix(report: Report) -> list[Control]:
    """The matrix rows, with each status computed from ``report``."""
    rows = []
    for spec in SPECS:
        if spec.failed(report):
            status: Status = "failed"
            note = "the evidence in this section shows a failure"
        elif spec.has_data(report):
            status = "evidenced"
            note = "evidence for the period is in the listed sections"
        else:
            status = "no_data"
            note = "the domain recorded no data for this period"
        rows.append(
            Control(
                id=spec.id,
                title=spec.title,
                section=spec.section,
                references=spec.references,
                evidence=list(spec.evidence),
                status=status,
                note=note,
            )
        )
    return rows
