"""Which audit entry anchors a model's serving stage, and whether the rows still match it.

What is anchored is a model name's serving state: which version serves (with its artifact
digest), or none. Every promotion and retirement names the state it leaves, so the latest such
entry about a model decides: a stage flipped by hand, back to an earlier version included,
matches none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit.anchors import (
    ANCHOR_EVENT,
    Anchor,
    content_hash,
    latest_about,
    unanchored,
)
from governance.registry.models import SERVING, ModelVersion

KIND = "serving_stage"
EVENT_TYPES = ("model.promote", "model.retire", ANCHOR_EVENT)


def serving_hash(name: str, serving: ModelVersion | None) -> str:
    """The content hash of a model name's serving state."""
    state: dict[str, Any] | None = (
        {"version": serving.version, "artifact_sha256": serving.artifact_sha256}
        if serving is not None
        else None
    )
    return content_hash(KIND, {"model": name, "serving": state})


def serving_rows(session: Session, name: str) -> list[ModelVersion]:
    """The versions of ``name`` whose stored stage is serving (one, or none, unless tampered)."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.stage == SERVING)
        )
    )


def problem(session: Session, name: str, serving: Sequence[ModelVersion]) -> str | None:
    """Why the stored serving state of ``name`` may not be acted on, or None when anchored.

    Args:
        serving: the rows of ``name`` whose stage is serving.
    """
    what = f"the serving stage of model {name}"
    if len(serving) > 1:
        return f"{what} is not anchored: {len(serving)} versions claim to serve"
    found = latest(session, name)
    if found is None and not serving:
        return None  # never served, and nothing claims to
    return unanchored(found, serving_hash(name, serving[0] if serving else None), what)


def resource(name: str) -> dict[str, Any]:
    """The audit resource of an anchoring entry about a model's serving stage."""
    return {"model": name}


def latest(session: Session, name: str) -> Anchor | None:
    """The latest promotion or retirement entry about model ``name``."""
    return latest_about(
        session,
        event_types=EVENT_TYPES,
        labels=[f"model={name}"],
        contains=f"model={name},",
        about=lambda res: res.get("model") == name,
    )


def legacy_match(found: Anchor, serving: ModelVersion | None) -> bool:
    """Whether an entry written before content hashes records this serving state."""
    if serving is None:
        return found.event_type == "model.retire"
    return (
        found.event_type == "model.promote"
        and found.resource.get("version") == serving.version
        and found.details.get("artifact_sha256") == serving.artifact_sha256
    )
