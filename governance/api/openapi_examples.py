"""An example request body for every operation that takes one, by operation id.

They are shown by ``/docs`` and ReDoc and copied into generated clients' docs, so each must be
a body the API accepts as written (``tests/api/test_openapi_document.py`` validates each
against its schema).
"""

from __future__ import annotations

from typing import Any

_REASON = "quarterly access review, ticket SEC-1042"
_MODEL = "adult-mlp"

BODIES: dict[str, Any] = {
    "predict": {
        "record": {"age": 39, "education": "Bachelors", "hours_per_week": 40},
        "subject_id": "customer-8841",
    },
    "create_principal": {"name": "fraud-scorer", "kind": "service"},
    "create_enrolment": {"expires_in_minutes": 1440},
    "redeem_enrolment": {"code": "enrol-3QF7-KX2M-94TD", "password": "tulip ladder orbit 1987"},
    "set_own_password": {"password": "tulip ladder orbit 1987"},
    "open_session": {"name": "dana", "password": "tulip ladder orbit 1987", "totp": "492039"},
    "open_cli_session": {
        "code": "wcg_Jx2n8QpVd4LsT0aWmK7yRb",
        "verifier": "q3Vn8ZtLw0PcR5yXk2JdH7sBfM4aG9eUo1iTvQx6NzE",
    },
    "link_sso": {"email": "dana@example.org"},
    "issue_key": {"principal": "fraud-scorer", "expires_at": "2027-06-30T00:00:00Z"},
    "grant_role": {"principal": "dana", "role": "auditor", "reason": _REASON},
    "revoke_role": {"principal": "dana", "role": "auditor", "reason": _REASON},
    "change_policy": {
        "add": [["p", "role:client", "model:adult-mlp", "predict", "allow"]],
        "remove": [["g", "dana", "role:auditor"]],
        "reason": _REASON,
        "base_version": 7,
    },
    "rollback_policy": {"to_version": 6, "reason": "version 7 locked the scorers out"},
    "simulate_policy_impact": {
        "add": [["p", "role:client", "group:default-models", "predict", "deny"]],
        "days": 30,
        "examples": 5,
    },
    "add_policy_test": {
        "subject": "role:client",
        "object": "api:audit",
        "action": "read",
        "expected": "deny",
        "description": "clients never read the audit log",
    },
    "create_policy_proposal": {
        "add": [["g", "dana", "role:compliance_officer"]],
        "reason": _REASON,
    },
    "approve_policy_proposal": {"reason": "checked against the access review"},
    "reject_policy_proposal": {"reason": "dana already holds a conflicting role"},
    "withdraw_policy_proposal": {"reason": "superseded by proposal 12"},
    "register_model": {
        "manifest": {"format": "warden.model/1", "name": _MODEL, "version": "20261123-0712"},
        "files": {"weights.safetensors": "AAAA"},
    },
    # A multipart form: the graph file travels as itself, the schema as YAML text.
    "import_model": {
        "name": "credit-onnx",
        "version": "1",
        "schema": "input:\n  name: X\n  features:\n    - {name: age, type: numeric}\n"
        "output:\n  name: probabilities\n  kind: probabilities\n  labels: [no, yes]\n",
        "onnx": "(the model.onnx file)",
    },
    "export_audit_log": {"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
    "decrypt_record": {"purpose": "subject access request SAR-2291"},
    "purge_records": {"dry_run": True},
    "rotate_data_keys": {"subject_id": "customer-8841", "reason": "suspected key exposure"},
    "rotate_key_encryption_key": {"reason": "annual KEK rotation", "rotate_provider": True},
    "register_dataset": {
        "name": "adult",
        "schema_path": "data/adult/schema.json",
        "data_path": "data/adult/adult.csv",
    },
    "create_training_run": {
        "dataset": "adult",
        "model": "mlp",
        "private": True,
        "epsilon": 1.0,
        "epochs": 10,
        "name": _MODEL,
    },
    "create_bias_audit": {"model": _MODEL, "dataset": "adult", "sensitive": ["sex", "race"]},
    "update_fairness_thresholds": {
        "document": {
            "min_group_size": 30,
            "defaults": {
                "demographic_parity_ratio": {"min": 0.8},
                "equalized_odds_difference": {"max": 0.1},
            },
            "required_features": ["sex", "race"],
            "models": {},
        },
        "reason": "tighten equalized odds to 10 points",
        "base_version": 3,
    },
    "create_gate_override": {
        "model": _MODEL,
        "version": "20261123-0712",
        "justification": "the failing group has 31 rows; approved by the ethics board, EB-77",
    },
    "create_mitigation": {
        "model": _MODEL,
        "sensitive": "sex",
        "constraints": "demographic_parity",
    },
    "run_fairness_monitor": {
        "model": _MODEL,
        "since": "2026-10-01T00:00:00Z",
        "until": "2026-11-01T00:00:00Z",
        "sensitive": ["sex"],
    },
    "give_feedback": {"request_id": "req-5b1f0c2e", "label": ">50K", "row": 0},
    "generate_report": {
        "from": "2026-10-01T00:00:00Z",
        "to": "2026-11-01T00:00:00Z",
        "model": _MODEL,
    },
}
