"""The promotion gate on DP claims: a version whose ledger run is void may not serve.

Importing this module registers :func:`claim_gate` with the model registry. A version whose
ledger run drew its noise from a recorded seed (a ``void`` claim, see
:mod:`governance.privacy.claims`) still says "differentially private" in its card, and anyone
with the seed can replay its noise: it is refused (409) until it is retrained. A version with no
ledger run may serve; it carries no DP claim, and the registry and the report say so.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from governance.kit.context import Context
from governance.privacy.claims import claim_for
from governance.registry.errors import StageConflict
from governance.registry.models import ModelVersion
from governance.registry.service import register_promotion_gate


class VoidDpClaim(StageConflict):
    type_slug = "void-dp-claim"
    title = "Void DP claim"


def claim_gate(session: Session, ctx: Context, row: ModelVersion) -> None:
    """Refuse a version whose DP claim is void.

    Raises:
        VoidDpClaim: the ledger run that produced it drew its noise from a recorded seed.
    """
    claim = claim_for(
        session, artifact_sha256=row.artifact_sha256, manifest=json.loads(row.manifest)
    )
    if claim.status == "void":
        raise VoidDpClaim(
            f"model {row.name} version {row.version} carries a {claim.statement}; "
            "retrain it to serve it",
            extra={"dp_claim": claim.to_dict()},
        )


register_promotion_gate(claim_gate)
