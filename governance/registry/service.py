"""The model registry: register verified artifacts, list them, move them through stages.

Registration copies the artifact into Warden's models folder, so that what was verified is what
is served: a later edit of the source folder changes nothing. The manifest's own sha256 names
the artifact (it pins the hashes of every other file).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db import state
from governance.db.base import utcnow
from governance.kit.context import Context
from governance.plugins import optional_module
from governance.private_files import copy_private, private_dir
from governance.registry import anchor
from governance.registry.errors import InvalidArtifact, ModelNotFound, StageConflict
from governance.registry.models import REGISTERED, RETIRED, SERVING, ModelVersion
from inference.artifact import MANIFEST_FILE, read_manifest, sha256_file
from inference.errors import ManifestError

# A promotion gate inspects a model version before it may serve and raises to refuse it.
# The fairness domain registers one; the registry itself knows no domain.
PromotionGate = Callable[[Session, Context, ModelVersion], None]
_gates: list[PromotionGate] = []
# Modules that register gates when imported. They are imported before every promotion, so a
# caller that never imported them (a script, a benchmark) cannot promote around a gate.
GATE_MODULES = (
    "governance.fairness.gate",
    "governance.privacy.claim_gate",
    "governance.registry.card_gate",
)


def register_promotion_gate(gate: PromotionGate) -> None:
    if gate not in _gates:
        _gates.append(gate)


class RegistryService:
    def register(
        self,
        session: Session,
        ctx: Context,
        *,
        source_dir: Path,
        models_dir: Path,
        trained_by: str | None = None,
    ) -> ModelVersion:
        """Verify an artifact folder, copy it under ``models_dir`` and record it.

        Raises:
            InvalidArtifact: the artifact fails verification.
            StageConflict: that name and version are already registered.
        """
        try:
            manifest = read_manifest(source_dir)
        except ManifestError as exc:
            raise InvalidArtifact(str(exc)) from None
        exists = session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.name == manifest.name, ModelVersion.version == manifest.version
            )
        )
        if exists is not None:
            raise StageConflict(f"model {manifest.name} version {manifest.version} is registered")
        target = models_dir / manifest.name / manifest.version
        if target.exists():
            shutil.rmtree(target)
        private_dir(target)
        for name in [MANIFEST_FILE, manifest.weights_file, *manifest.files]:
            # The bytes, not the source's mode: the model store is 0600 files in 0700 folders.
            copy_private(Path(source_dir) / name, target / name)
        try:
            copied = read_manifest(target)
        except ManifestError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise InvalidArtifact(f"the artifact changed while it was copied: {exc}") from None
        row = ModelVersion(
            name=copied.name,
            version=copied.version,
            stage=REGISTERED,
            artifact_dir=str(target.resolve()),
            artifact_sha256=sha256_file(target / MANIFEST_FILE),
            manifest=json.dumps(copied.to_dict(), sort_keys=True),
            registered_by=ctx.name,
            trained_by=trained_by or copied.training.get("trained_by"),
        )
        session.add(row)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "model.register",
                    "register",
                    resource={"model": row.name, "version": row.version},
                    model_version=row.version,
                    details={
                        "artifact_sha256": row.artifact_sha256,
                        "private": copied.training.get("private"),
                    },
                )
            ],
        )
        return row

    def list_versions(self, session: Session, name: str | None = None) -> list[ModelVersion]:
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        return list(session.scalars(query))

    def get(self, session: Session, name: str, version: str | None = None) -> ModelVersion:
        """A version, or the serving one (else the newest) when no version is given."""
        query = select(ModelVersion).where(ModelVersion.name == name)
        if version is not None:
            row = session.scalar(query.where(ModelVersion.version == version))
        else:
            rows = list(session.scalars(query.order_by(ModelVersion.id.desc())))
            row = next((r for r in rows if r.stage == SERVING), rows[0] if rows else None)
        if row is None:
            raise ModelNotFound(
                f"model {name!r}"
                + (f" version {version!r}" if version else "")
                + " is not registered"
            )
        return row

    def serving(self, session: Session) -> list[ModelVersion]:
        return list(session.scalars(select(ModelVersion).where(ModelVersion.stage == SERVING)))

    def promote(self, session: Session, ctx: Context, *, name: str, version: str) -> ModelVersion:
        """Make a version the serving one (retiring the previous), after every promotion gate.

        Raises:
            StageConflict: the version is retired, or a gate refused it.
        """
        row = self.get(session, name, version)
        if row.stage == RETIRED:
            raise StageConflict("a retired model version cannot serve again; register it anew")
        if row.stage == SERVING:
            return row
        for module in GATE_MODULES:
            optional_module(module)
        for gate in list(_gates):
            gate(session, ctx, row)
        now = utcnow()
        for other in session.scalars(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.stage == SERVING)
        ):
            other.stage, other.stage_changed_by, other.stage_changed_at = RETIRED, ctx.name, now
        row.stage, row.stage_changed_by, row.stage_changed_at = SERVING, ctx.name, now
        state.bump(session, state.MODELS)
        audit_log.append(
            session,
            [
                ctx.event(
                    "model.promote",
                    "promote",
                    resource={"model": name, "version": version},
                    model_version=version,
                    details={
                        "artifact_sha256": row.artifact_sha256,
                        "content_hash": anchor.serving_hash(name, row),
                    },
                )
            ],
        )
        return row

    def retire(self, session: Session, ctx: Context, *, name: str, version: str) -> ModelVersion:
        row = self.get(session, name, version)
        row.stage, row.stage_changed_by, row.stage_changed_at = RETIRED, ctx.name, utcnow()
        session.flush()
        state.bump(session, state.MODELS)
        # Named even when another version goes on serving: the latest entry about a model
        # always states what serves (governance/registry/anchor.py).
        left = anchor.serving_rows(session, name)
        audit_log.append(
            session,
            [
                ctx.event(
                    "model.retire",
                    "retire",
                    resource={"model": name, "version": version},
                    model_version=version,
                    details={"content_hash": anchor.serving_hash(name, left[0] if left else None)},
                )
            ],
        )
        return row


registry = RegistryService()
