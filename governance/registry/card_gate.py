"""The promotion gate on imported models' cards: declared provenance must be complete.

Importing this module registers :func:`card_gate` with the model registry. An imported model's
card holds what its importer declared (who trained it, on what data, with what code, for what
use and not for what); Warden saw none of it, so a card with a field left empty may be
registered and audited, but the version may not serve until it is imported again complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy.orm import Session

from governance.kit.context import Context
from governance.registry.errors import StageConflict
from governance.registry.import_schema import CARD_FIELDS, MODEL_CARD_FILE, missing_card_fields
from governance.registry.models import ModelVersion
from governance.registry.service import register_promotion_gate


class IncompleteModelCard(StageConflict):
    type_slug = "incomplete-model-card"
    title = "Incomplete model card"


def card_gate(session: Session, ctx: Context, row: ModelVersion) -> None:
    """Refuse an imported version whose card leaves a required provenance field empty.

    Raises:
        IncompleteModelCard: a field is empty, or the card is missing or not the one pinned.
    """
    manifest = json.loads(row.manifest)
    if manifest.get("architecture", {}).get("kind") != "onnx":
        return
    pinned = manifest.get("files", {}).get(MODEL_CARD_FILE)
    try:
        data = (Path(row.artifact_dir) / MODEL_CARD_FILE).read_bytes()
    except OSError:
        data = b""
    if pinned is None or hashlib.sha256(data).hexdigest() != pinned:
        raise IncompleteModelCard(
            f"model {row.name} version {row.version}: its model card is missing or altered"
        )
    missing = missing_card_fields(json.loads(data))
    if missing:
        raise IncompleteModelCard(
            f"model {row.name} version {row.version} was imported with an incomplete model "
            f"card ({', '.join(missing)} empty); import it again with every field of "
            f"{', '.join(CARD_FIELDS)}",
            extra={"missing": missing},
        )


register_promotion_gate(card_gate)
