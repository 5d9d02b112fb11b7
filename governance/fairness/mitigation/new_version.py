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

Fitting on private rows is differentially private and charged: the fit sees only noisy
per-group score histograms (:mod:`~governance.fairness.mitigation.dp_histograms`), reserved
against the dataset's ledger before they are drawn (:mod:`~governance.fairness.mitigation.budget`).
Rows a schema declares public are fitted on directly, without a charge, and recorded as a
zero-charge run in the base's ledger. The new version's manifest and card state the guarantee
the ledger proves for it (its training and its mitigation composed), never the base's claim.
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
from governance.datasets.models import Dataset
from governance.datasets.service import datasets as dataset_service
from governance.fairness.errors import (
    AuditConflict,
    AuditInputError,
    MitigationError,
    NotTabular,
)
from governance.fairness.mitigation.budget import MitigationBudget, complete, default_epsilon
from governance.fairness.mitigation.card import mitigated_card
from governance.fairness.thresholds.bounds import ModelThresholds
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context
from governance.registry.errors import ModelNotFound, StageConflict
from governance.registry.models import ModelVersion
from governance.registry.service import registry

if TYPE_CHECKING:
    from governance.fairness.mitigation.group_rule import Constraint
    from inference.manifest import Manifest

PLOT_FILE: Final[str] = "mitigation_tradeoff.png"
NUMBERS_FILE: Final[str] = "mitigation.json"
FIT_SPLIT: Final[str] = "train"
EVALUATION_SPLIT: Final[str] = "test"
VERSION_SUFFIX: Final[str] = "-mitigated"
MODEL_CARD_FILE: Final[str] = "model_card.json"
# The base's own DP claim and the mechanism behind it: the new version states its own.
_BASE_CLAIM_KEYS: Final[frozenset[str]] = frozenset(
    {"private", "epsilon", "delta", "accountant", "noise_multiplier", "sample_rate", "steps"}
)


@dataclass(frozen=True)
class MitigationOutcome:
    """The registered mitigated version, what it changed, and where the plot is."""

    version: ModelVersion
    base: ModelVersion
    tradeoff: dict[str, Any]
    spec: dict[str, Any]
    plot_path: Path
    plot_png: bytes
    claim: dict[str, Any]
    ledger_run: int | None


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
    input_field: str
    constraints: Constraint
    thresholds_version: int
    limits: ModelThresholds
    budget: MitigationBudget


@dataclass(frozen=True)
class MitigationComputed:
    """A fitted mitigation written as an artifact folder, with no transaction open."""

    artifact: Path
    dataset_hash: str
    tradeoff: dict[str, Any]
    spec: dict[str, Any]
    doc: dict[str, Any]
    plot_png: bytes
    claim: dict[str, Any]


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
        epsilon: float | None = None,
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
            policies_dir: where the thresholds seed and ``privacy.yaml`` live.
            epsilon: the ε the noisy release spends on a private dataset; default
                ``mitigation.epsilon`` of ``privacy.yaml``.

        Returns:
            The registered version, its trade-off numbers and plot.

        Raises:
            ModelNotFound: no such base version.
            StageConflict: the new version name is taken.
            MitigationError: the attribute cannot be mitigated this way, the base model
                already has post-processing, or the fit fails.
            AuditInputError / UnknownDataset: the dataset does not fit the model.
            BudgetExceeded: the release would pass the dataset's privacy cap (409).
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
            epsilon=epsilon,
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
        epsilon: float | None = None,
    ) -> MitigationPlan:
        """Check a mitigation's inputs, read what it needs, and reserve its privacy budget
        (arguments as :meth:`mitigate`). The reservation is flushed in ``session``: the caller
        commits it before :meth:`compute` draws the noise.

        Every check of the caller's input runs before the reservation, so a mistaken request
        spends no ε and leaves no reserved run.

        Raises:
            ModelNotFound, StageConflict, UnknownDataset, BudgetExceeded: as :meth:`mitigate`.
            MitigationError: the base already has post-processing, or the attribute is not a
                categorical input of the model (422).
            AuditInputError: the base artifact no longer verifies (422).
            PrivacyPolicyError: ``privacy.yaml`` is missing or invalid (503).
        """
        from governance.config import get_settings
        from governance.datasets.service import datasets as datasets_service
        from governance.fairness._evaluation import resolve_named_dataset
        from governance.fairness.mitigation.budget import reserve
        from governance.privacy.service import training

        base = registry.get(session, model, version)
        target = new_version or f"{base.version}{VERSION_SUFFIX}"
        self._require_free(session, model, target)
        data = resolve_named_dataset(session, ctx, dataset)
        manifest = self._base_manifest(base)
        if manifest.input_tensor is not None:
            raise NotTabular(base.name, base.version)
        if manifest.postprocessing is not None:
            raise MitigationError(
                f"{base.name} {base.version} already has post-processing; mitigate its base version"
            )
        # The registered schema names the sensitive attributes; no rows are read here.
        field = self._input_field(datasets_service.schema_of(data).sensitive, manifest, sensitive)
        current = thresholds_store.current(session, policies_dir=policies_dir)
        limits = thresholds_store.policy(current).thresholds_for(model)
        settings = get_settings()
        if policies_dir is not None:
            settings = settings.model_copy(update={"policies_dir": Path(policies_dir)})
        if epsilon is None:
            epsilon = default_epsilon(settings.policies_dir)
        budget = reserve(
            session,
            ctx,
            dataset_id=data.id,
            epsilon=epsilon,
            cap=training.cap(session, settings, data, data.name),
            shared_with=datasets_service.shared_with(session, data),
            model=base.name,
            target=target,
            base_artifact_sha256=base.artifact_sha256,
        )
        session.expunge(data)
        return MitigationPlan(
            model=base.name,
            base_version=base.version,
            base_artifact_dir=base.artifact_dir,
            base_artifact_sha256=base.artifact_sha256,
            target=target,
            dataset=data,
            sensitive=sensitive,
            input_field=field,
            constraints=constraints,
            thresholds_version=current.version,
            limits=limits,
            budget=budget,
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
        from governance.fairness.mitigation.dp_histograms import release_histograms
        from governance.fairness.mitigation.group_rule import (
            fit_group_thresholds,
            tradeoff_numbers,
            tradeoff_plot,
        )
        from inference.postprocess import validate_spec

        model, sensitive, constraints = plan.model, plan.sensitive, plan.constraints
        loaded = load_artifact(
            model, plan.base_version, plan.base_artifact_dir, plan.base_artifact_sha256
        )
        # The digest check makes this the manifest the plan checked.
        manifest = loaded.manifest
        data = load_resolved(plan.dataset)
        field = plan.input_field

        # Fit on the training split's served scores (the raw model: no post-processing yet).
        fit_rows = records_of(data.train.features, manifest.feature_names)
        _, scores = decide_as_served(loaded, fit_rows)
        fit_labels = true_labels(data, data.train, manifest)
        fit_groups = data.train.features[field].to_numpy()
        budget = plan.budget
        if budget.mechanism is not None:
            # Private rows: the fit sees only their noisy histograms (reserved in the plan).
            categories = next(f.categories for f in manifest.features if f.name == field)
            released = release_histograms(
                scores=scores,
                labels=fit_labels,
                groups=fit_groups,
                categories=categories,
                mechanism=budget.mechanism,
            )
            del scores, fit_labels, fit_groups
            scores, fit_labels, fit_groups = released.synthetic_rows()
            release: dict[str, Any] = {
                "mechanism": "gaussian",
                "statistic": "per-group score histograms of positives and negatives",
                "bins": released.bins,
                "l2_sensitivity": 1.0,
                "noise_multiplier": budget.mechanism.noise_multiplier,
                "epsilon": budget.epsilon,
                "delta": budget.delta,
                "ledger_run": budget.run_id,
            }
        else:
            # Public rows: nothing charged; the zero-charge ledger run (if the base has a
            # private one) proves that no private rows were read.
            release = {
                "mechanism": "none: the schema declares these rows public",
                "ledger_run": budget.run_id,
            }
        spec = fit_group_thresholds(
            scores=scores,
            y_true=fit_labels,
            sensitive=pd.Series(fit_groups, name=field),
            constraints=constraints,
        )
        spec["positive_label"] = manifest.labels.index(positive_label(manifest))
        validate_spec(spec, manifest.features)

        # Judge before and after exactly as serving will decide, on the unseen test split.
        # The same weights (or imported graph) under the thresholds.
        mitigated = loaded.with_manifest(dataclasses.replace(manifest, postprocessing=spec))
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
            "fit_data": {
                "dataset": data.name,
                "split": FIT_SPLIT,
                "content_hash": data.content_hash,
                "covered_by_ledger": budget.charged,
                "release": release,
            },
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
        claim = budget.claim(mechanism_randomness=manifest.training.get("mechanism_randomness"))
        base_dir = Path(plan.base_artifact_dir)
        extra = {name: (base_dir / name).read_bytes() for name in manifest.files}
        extra[PLOT_FILE] = png
        extra[NUMBERS_FILE] = json.dumps(mitigation_doc, indent=2, sort_keys=True).encode()
        extra[MODEL_CARD_FILE] = mitigated_card(
            extra.get(MODEL_CARD_FILE),
            name=model,
            version=plan.target,
            claim=claim,
            mitigation=mitigation_doc,
        )
        new_manifest = dataclasses.replace(
            manifest,
            version=plan.target,
            postprocessing=spec,
            training={
                **{k: v for k, v in manifest.training.items() if k not in _BASE_CLAIM_KEYS},
                "private": claim["private"],
                "epsilon": claim.get("epsilon"),
                "delta": claim.get("delta"),
                "accountant": claim.get("accountant"),
                "privacy_claim": claim,
                "mitigation": mitigation_doc,
            },
        )
        out = workdir / "artifact"
        loaded.save(out, new_manifest, extra_files=extra)
        return MitigationComputed(
            artifact=out,
            dataset_hash=data.content_hash,
            tradeoff=numbers,
            spec=spec,
            doc=mitigation_doc,
            plot_png=png,
            claim=claim,
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
        complete(session, ctx, plan.budget, artifact_sha256=row.artifact_sha256)
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
                        "covered_by_ledger": plan.budget.charged,
                        "ledger_run": plan.budget.run_id,
                        "privacy_claim": computed.claim["statement"],
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
            claim=computed.claim,
            ledger_run=plan.budget.run_id,
        )

    def _require_free(self, session: Session, model: str, version: str) -> None:
        try:
            registry.get(session, model, version)
        except ModelNotFound:
            return
        raise StageConflict(f"model {model} version {version} is already registered")

    def _base_manifest(self, base: ModelVersion) -> Manifest:
        """The base's manifest, read without loading its weights into a model.

        Raises:
            AuditInputError: the artifact no longer verifies.
        """
        from inference.artifact import read_manifest
        from inference.errors import ManifestError

        try:
            return read_manifest(base.artifact_dir, expected_sha256=base.artifact_sha256)
        except ManifestError as exc:
            raise AuditInputError(
                f"model {base.name} {base.version}: the artifact does not verify ({exc})"
            ) from None

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
