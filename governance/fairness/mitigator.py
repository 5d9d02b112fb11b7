"""Mitigation as a new model version: same weights, a fitted group-threshold post-processing.

``mitigate`` fits Fairlearn's ``ThresholdOptimizer`` (through
:func:`~governance.fairness.mitigation.fit_group_thresholds`) on the base model's served
scores over the dataset's **training** split, so the evaluation (test) split stays unseen by
the mitigation and the trade-off reported on it, and any later audit on it, is honest. The
fitted rule becomes the manifest's ``postprocessing``; the torch serving core applies it, so
the new version is served, audited and gated like any other. It is registered as
``<version>-mitigated`` with the trade-off numbers in its manifest and the trade-off plot
(PNG) and numbers (JSON) as hashed artifact files.

The rule reads the sensitive value from the request at serving time, so only a sensitive
attribute that is itself a categorical model input (``sex``, ``race``) can be mitigated this way.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.context import Context
from governance.datasets.models import Dataset
from governance.datasets.service import datasets as dataset_service
from governance.fairness.errors import AuditConflict, MitigationError
from governance.fairness.thresholds import ModelThresholds
from governance.fairness.thresholds_store import thresholds_store
from governance.registry.errors import ModelNotFound, StageConflict
from governance.registry.models import ModelVersion
from governance.registry.service import registry

if TYPE_CHECKING:
    from governance.fairness.mitigation import Constraint

PLOT_FILE: Final[str] = "mitigation_tradeoff.png"
NUMBERS_FILE: Final[str] = "mitigation.json"
FIT_SPLIT: Final[str] = "train"
EVALUATION_SPLIT: Final[str] = "test"
VERSION_SUFFIX: Final[str] = "-mitigated"


@dataclass(frozen=True)
class MitigationOutcome:
    """The registered mitigated version, what it changed, and where the plot is."""

    version: ModelVersion
    base: ModelVersion
    tradeoff: dict[str, Any]
    spec: dict[str, Any]
    plot_path: Path
    plot_png: bytes


@dataclass(frozen=True)
class MitigationPlan:
    """What a mitigation reads from the database, in a short transaction before it computes."""

    model: str
    base_version: str
    base_artifact_dir: str
    base_artifact_sha256: str
    target: str
    dataset: Dataset
    sensitive: str
    constraints: Constraint
    thresholds_version: int
    limits: ModelThresholds


@dataclass(frozen=True)
class MitigationComputed:
    """A fitted mitigation written as an artifact folder, with no transaction open."""

    artifact: Path
    dataset_hash: str
    tradeoff: dict[str, Any]
    spec: dict[str, Any]
    doc: dict[str, Any]
    plot_png: bytes


class MitigationService:
    """Produces mitigated model versions; stateless.

    Like an audit, a mitigation is planned in a short transaction, computed (the fit, the
    before/after predictions, the new artifact) with none open, and registered in another
    short one that re-checks the base version, the new name and the thresholds.
    """

    def mitigate(
        self,
        session: Session,
        ctx: Context,
        *,
        model: str,
        sensitive: str,
        models_dir: Path,
        version: str | None = None,
        dataset: str = "adult",
        constraints: Constraint = "demographic_parity",
        new_version: str | None = None,
        policies_dir: Path | None = None,
    ) -> MitigationOutcome:
        """Fit a post-processing mitigation and register it as a new model version.

        Args:
            session: the caller's transaction.
            ctx: who mitigates (recorded as the new version's registrant).
            model: the model name.
            sensitive: the sensitive attribute to equalise (a categorical model input).
            models_dir: Warden's models folder (where registration copies the artifact).
            version: the base version; None takes the serving one (else the newest).
            dataset: the dataset (training split to fit, test split to report).
            constraints: the parity to enforce (Fairlearn's name).
            new_version: the new version's name; default ``<version>-mitigated``.
            policies_dir: where the thresholds seed lives, if none is stored yet.

        Returns:
            The registered version, its trade-off numbers and plot.

        Raises:
            ModelNotFound: no such base version.
            StageConflict: the new version name is taken.
            MitigationError: the attribute cannot be mitigated this way, the base model
                already has post-processing, or the fit fails.
            AuditInputError / UnknownDataset: the dataset does not fit the model.
        """
        plan = self.plan(
            session,
            ctx,
            model=model,
            sensitive=sensitive,
            version=version,
            dataset=dataset,
            constraints=constraints,
            new_version=new_version,
            policies_dir=policies_dir,
        )
        with tempfile.TemporaryDirectory(prefix="warden-mitigate-") as tmp:
            computed = self.compute(plan, mitigated_by=ctx.name, workdir=Path(tmp))
            return self.store(
                session, ctx, plan, computed, models_dir=models_dir, policies_dir=policies_dir
            )

    def plan(
        self,
        session: Session,
        ctx: Context,
        *,
        model: str,
        sensitive: str,
        version: str | None = None,
        dataset: str = "adult",
        constraints: Constraint = "demographic_parity",
        new_version: str | None = None,
        policies_dir: Path | None = None,
    ) -> MitigationPlan:
        """Check a mitigation's inputs and read what it needs (arguments as :meth:`mitigate`).

        Raises:
            ModelNotFound, StageConflict, UnknownDataset: as :meth:`mitigate`.
        """
        from governance.fairness._evaluation import resolve_named_dataset

        base = registry.get(session, model, version)
        target = new_version or f"{base.version}{VERSION_SUFFIX}"
        self._require_free(session, model, target)
        data = resolve_named_dataset(session, ctx, dataset)
        current = thresholds_store.current(session, policies_dir=policies_dir)
        limits = thresholds_store.policy(current).thresholds_for(model)
        session.expunge(data)
        return MitigationPlan(
            model=base.name,
            base_version=base.version,
            base_artifact_dir=base.artifact_dir,
            base_artifact_sha256=base.artifact_sha256,
            target=target,
            dataset=data,
            sensitive=sensitive,
            constraints=constraints,
            thresholds_version=current.version,
            limits=limits,
        )

    def compute(
        self, plan: MitigationPlan, *, mitigated_by: str, workdir: Path
    ) -> MitigationComputed:
        """Fit the rule, judge it, and write the new artifact under ``workdir``; no database.

        Raises:
            MitigationError, AuditInputError, UnknownDataset: as :meth:`mitigate`.
        """
        import pandas as pd

        from governance.fairness._evaluation import (
            decide_as_served,
            load_artifact,
            load_resolved,
            positive_label,
            predict_split,
            records_of,
            true_labels,
        )
        from governance.fairness.mitigation import (
            fit_group_thresholds,
            tradeoff_numbers,
            tradeoff_plot,
        )
        from inference.artifact import save_artifact
        from inference.model import LoadedModel
        from inference.postprocess import validate_spec

        model, sensitive, constraints = plan.model, plan.sensitive, plan.constraints
        loaded = load_artifact(
            model, plan.base_version, plan.base_artifact_dir, plan.base_artifact_sha256
        )
        manifest = loaded.manifest
        if manifest.postprocessing is not None:
            raise MitigationError(
                f"{model} {plan.base_version} already has post-processing; "
                "mitigate its base version"
            )
        data = load_resolved(plan.dataset)
        field = self._input_field(data.schema.sensitive, manifest, sensitive)

        # Fit on the training split's served scores (the raw model: no post-processing yet).
        fit_rows = records_of(data.train.features, manifest.feature_names)
        _, scores = decide_as_served(loaded, fit_rows)
        spec = fit_group_thresholds(
            scores=scores,
            y_true=true_labels(data, data.train, manifest),
            sensitive=pd.Series(data.train.features[field].to_numpy(), name=field),
            constraints=constraints,
        )
        spec["positive_label"] = manifest.labels.index(positive_label(manifest))
        validate_spec(spec, manifest.features)

        # Judge before and after exactly as serving will decide, on the unseen test split.
        mitigated = LoadedModel(
            dataclasses.replace(manifest, postprocessing=spec), loaded.module, loaded.device
        )
        before = predict_split(loaded, data, data.test)
        after = predict_split(mitigated, data, data.test)
        limits = plan.limits
        numbers = tradeoff_numbers(
            y_true=before.y_true,
            y_pred_before=before.y_pred,
            y_pred_after=after.y_pred,
            sensitive=pd.Series(data.test.sensitive[sensitive].to_numpy(), name=sensitive),
            min_group_size=limits.min_group_size,
        )
        floor = limits.measures.get("demographic_parity_ratio", {}).get("min")

        import fairlearn

        mitigation_doc = {
            "method": "fairlearn.postprocessing.ThresholdOptimizer",
            "objective": "accuracy_score",
            "constraints": constraints,
            "sensitive_feature": sensitive,
            "input_field": field,
            "dataset": data.name,
            "dataset_hash": data.content_hash,
            "fit_split": FIT_SPLIT,
            "evaluation_split": EVALUATION_SPLIT,
            "base_version": plan.base_version,
            "base_artifact_sha256": plan.base_artifact_sha256,
            "thresholds_version": plan.thresholds_version,
            "tradeoff": numbers,
            "plot": PLOT_FILE,
            "mitigated_by": mitigated_by,
            "software": {"fairlearn": fairlearn.__version__},
        }
        png = tradeoff_plot(
            numbers["before"], numbers["after"], workdir / "plot.png", ratio_floor=floor
        ).read_bytes()
        base_dir = Path(plan.base_artifact_dir)
        extra = {name: (base_dir / name).read_bytes() for name in manifest.files}
        extra[PLOT_FILE] = png
        extra[NUMBERS_FILE] = json.dumps(mitigation_doc, indent=2, sort_keys=True).encode()
        doc = {k: v for k, v in manifest.to_dict().items() if k not in ("weights", "files")}
        doc["version"] = plan.target
        doc["postprocessing"] = spec
        doc["training"] = {**manifest.training, "mitigation": mitigation_doc}
        out = workdir / "artifact"
        save_artifact(out, loaded.module, doc, extra_files=extra)
        return MitigationComputed(
            artifact=out,
            dataset_hash=data.content_hash,
            tradeoff=numbers,
            spec=spec,
            doc=mitigation_doc,
            plot_png=png,
        )

    def store(
        self,
        session: Session,
        ctx: Context,
        plan: MitigationPlan,
        computed: MitigationComputed,
        *,
        models_dir: Path,
        policies_dir: Path | None = None,
    ) -> MitigationOutcome:
        """Re-check the base, the name and the thresholds, then register the new version.

        Raises:
            ModelNotFound: the base version was deleted meanwhile.
            StageConflict: the new version's name was taken meanwhile.
            AuditConflict: the base artifact, the dataset or the thresholds changed meanwhile.
        """
        base = registry.get(session, plan.model, plan.base_version)
        if base.artifact_sha256 != plan.base_artifact_sha256:
            raise AuditConflict(
                f"model {plan.model} {plan.base_version} changed during the mitigation"
            )
        self._require_free(session, plan.model, plan.target)
        data = dataset_service.get(session, plan.dataset.name)
        if data.content_hash != computed.dataset_hash:
            raise AuditConflict(f"dataset {data.name!r} was registered again during the mitigation")
        current = thresholds_store.current(session, policies_dir=policies_dir)
        if current.version != plan.thresholds_version:
            # The trade-off was measured, and the manifest written, under the older version.
            raise AuditConflict(
                "the fairness thresholds changed during the mitigation; run it again"
            )
        # The weights' author stays the trainer; the registrant is whoever mitigated: the
        # gate's separation of duties then excludes both from approving this version.
        row = registry.register(
            session,
            ctx,
            source_dir=computed.artifact,
            models_dir=models_dir,
            trained_by=base.trained_by,
        )
        numbers = computed.tradeoff
        audit_log.append(
            session,
            [
                ctx.event(
                    "fairness.mitigate",
                    "mitigate",
                    resource={"model": plan.model, "version": row.version},
                    model_version=row.version,
                    details={
                        "base_version": base.version,
                        "base_artifact_sha256": base.artifact_sha256,
                        "artifact_sha256": row.artifact_sha256,
                        "method": computed.doc["method"],
                        "constraints": plan.constraints,
                        "sensitive": plan.sensitive,
                        "dataset": data.name,
                        "fit_split": FIT_SPLIT,
                        "tradeoff": numbers,
                    },
                )
            ],
        )
        return MitigationOutcome(
            version=row,
            base=base,
            tradeoff=numbers,
            spec=computed.spec,
            plot_path=Path(row.artifact_dir) / PLOT_FILE,
            plot_png=computed.plot_png,
        )

    def _require_free(self, session: Session, model: str, version: str) -> None:
        try:
            registry.get(session, model, version)
        except ModelNotFound:
            return
        raise StageConflict(f"model {model} version {version} is already registered")

    def _input_field(self, declared: Any, manifest: Any, sensitive: str) -> str:
        specs = {s.name: s for s in declared}
        if sensitive not in specs:
            raise MitigationError(
                f"the dataset declares no sensitive attribute {sensitive!r} "
                f"(declared: {', '.join(specs)})"
            )
        spec = specs[sensitive]
        categorical = {f.name for f in manifest.features if f.type == "categorical"}
        if spec.bins or spec.column not in categorical:
            raise MitigationError(
                f"{sensitive!r} is not a categorical input of the model: a group-threshold rule "
                "reads the group from the request, so it can only mitigate such an attribute"
            )
        return str(spec.column)


mitigator = MitigationService()
