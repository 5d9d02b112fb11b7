"""A registered dataset as a person reads it, for ``warden datasets show`` in either mode.

Apart from the CLI modules, so that the remote command imports neither pandas nor torch.
"""

from __future__ import annotations

from typing import Any


def readable(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields a person reads, one line each; the whole schema is left to ``--json``."""
    schema = doc["schema_doc"]
    label = schema.get("label") or {}
    fields: dict[str, Any] = {
        "name": doc["name"],
        "description": " ".join(str(schema.get("description", "")).split()) or None,
        "privacy_unit": doc["privacy_unit"],
        "bundled": doc["bundled"],
        "train_rows": doc["train_rows"],
        "test_rows": doc["test_rows"],
        "label": f"{label.get('column')} (positive {label.get('positive')!r})" if label else None,
        "features": ", ".join(str(f.get("name")) for f in schema.get("features", [])) or None,
        "sensitive": ", ".join(str(s.get("name")) for s in schema.get("sensitive", [])) or None,
        "registered_by": doc["registered_by"],
        "registered_at": doc["registered_at"],
        "updated_at": doc["updated_at"],
        "content_hash": doc["content_hash"],
        "row_fingerprint": doc["row_fingerprint"],
    }
    for file, digest in doc["file_hashes"].items():
        fields[f"sha256 {file}"] = digest
    for split, columns in (doc["values_clipped"] or {}).items():
        counts = ", ".join(f"{column} {count}" for column, count in columns.items())
        fields[f"clipped in {split}"] = counts or "none"
    ledger = doc["ledger"]
    if ledger is not None:
        spent = "unbounded" if ledger["epsilon_spent"] is None else f"{ledger['epsilon_spent']:.4g}"
        fields["privacy_ledger"] = (
            f"{ledger['id']}: ε spent {spent} of {ledger['cap_epsilon']:g} "
            f"(δ {ledger['cap_delta']:g}) over {ledger['runs']} runs"
        )
        fields["ledger_shared_with"] = ", ".join(ledger["shared_with"]) or None
    return fields
