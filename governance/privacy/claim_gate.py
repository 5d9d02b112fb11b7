"""The promotion gate on DP claims: a version whose ledger run is void may not serve.

Importing this module registers :func:`claim_gate` with the model registry. A version whose
ledger run drew its noise from a recorded seed (a ``void`` claim, see
:mod:`governance.privacy.claims`) still says "differentially private" in its card, and anyone
with the seed can replay its noise: it is refused (409) until it is retrained. A version with no
ledger run may serve; it carries no DP claim, and the registry and the report say so, unless
``require_dp_claim`` in ``policies/privacy.yaml`` names its training dataset or its intended use
(an imported model's declared ``training_data`` and ``intended_use``, an own model's dataset)::

    require_dp_claim:
      datasets: [adult]
      uses: [credit pre-screening]

An invalid or missing ``privacy.yaml`` refuses every promotion of a model without a claim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from governance.kit.context import Context
from governance.privacy.claims import claim_for
from governance.privacy.ledger import POLICY_FILE, PrivacyPolicyError, load_privacy_policy
from governance.privacy.model_card import MODEL_CARD_FILE
from governance.registry.errors import StageConflict
from governance.registry.models import ModelVersion
from governance.registry.service import register_promotion_gate


class VoidDpClaim(StageConflict):
    type_slug = "void-dp-claim"
    title = "Void DP claim"


class DpClaimRequired(StageConflict):
    type_slug = "dp-claim-required"
    title = "DP claim required"


def dp_requirements(policies_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The datasets and uses that ``privacy.yaml`` says need a DP claim.

    Raises:
        PrivacyPolicyError: the file is missing or invalid (503: fail closed).
    """
    import yaml

    load_privacy_policy(policies_dir)  # the whole file valid, or nothing is promoted
    doc = yaml.safe_load((policies_dir / POLICY_FILE).read_text(encoding="utf-8"))
    section = doc.get("require_dp_claim") or {}
    lists = {}
    for key in ("datasets", "uses"):
        value = section.get(key) or [] if isinstance(section, dict) else None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PrivacyPolicyError(f"{POLICY_FILE}: require_dp_claim.{key}: a list of names")
        lists[key] = frozenset(v.strip().casefold() for v in value)
    if isinstance(section, dict) and set(section) - {"datasets", "uses"}:
        raise PrivacyPolicyError(f"{POLICY_FILE}: require_dp_claim: datasets and uses only")
    return lists["datasets"], lists["uses"]


def _scope(row: ModelVersion, manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The datasets a version was trained on and the uses it is for, as far as it says."""
    datasets: set[str] = set()
    dataset = (manifest.get("training") or {}).get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        datasets.add(dataset["name"])
    uses: set[str] = set()
    try:
        card = json.loads((Path(row.artifact_dir) / MODEL_CARD_FILE).read_bytes())
    except (OSError, ValueError):
        card = {}
    provenance = card.get("provenance") if isinstance(card, dict) else None
    if isinstance(provenance, dict):
        if isinstance(provenance.get("training_data"), str):
            datasets.add(provenance["training_data"])
        if isinstance(provenance.get("intended_use"), str):
            uses.add(provenance["intended_use"])
    fold = {s.strip().casefold() for s in datasets}, {s.strip().casefold() for s in uses}
    return fold


def claim_gate(session: Session, ctx: Context, row: ModelVersion) -> None:
    """Refuse a version whose DP claim is void, or missing where ``privacy.yaml`` needs one.

    Raises:
        VoidDpClaim: the ledger run that produced it drew its noise from a recorded seed.
        DpClaimRequired: it has no claim, and its dataset or use requires one.
        PrivacyPolicyError: ``privacy.yaml`` is missing or invalid, for a version without one.
    """
    manifest = json.loads(row.manifest)
    claim = claim_for(session, artifact_sha256=row.artifact_sha256, manifest=manifest)
    if claim.status == "void":
        raise VoidDpClaim(
            f"model {row.name} version {row.version} carries a {claim.statement}; "
            "retrain it to serve it",
            extra={"dp_claim": claim.to_dict()},
        )
    if claim.status == "ledger":
        return
    from governance.config import get_settings

    datasets, uses = dp_requirements(get_settings().policies_dir)
    trained_on, used_for = _scope(row, manifest)
    needed = sorted((trained_on & datasets) | (used_for & uses))
    if needed:
        raise DpClaimRequired(
            f"model {row.name} version {row.version} carries {claim.statement}, and "
            f"{POLICY_FILE} requires a DP claim for {', '.join(needed)}",
            extra={"dp_claim": claim.to_dict()},
        )


register_promotion_gate(claim_gate)
