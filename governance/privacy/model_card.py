"""Model cards (Mitchell et al. 2019, "Model Cards for Model Reporting") as JSON.

Every number in a card is copied from the run that produced the model: the manifest's training
section, the dataset's schema and hashes, and the evaluation. Nothing is typed in by hand, so a
card cannot drift from its artifact. The card is stored as ``model_card.json`` inside the
artifact, where the manifest records its sha256.

A card publishes no statistic of the training rows (no loss, no per-group or dropped-row
counts): only the DP-trained weights leave the run. Evaluation numbers come from the test
split, which the DP guarantee does not cover, and the card says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from governance.datasets.encoding import PREPROCESSING_PROVENANCE
from governance.privacy.kinds import OS_ENTROPY, SECURE_RNG

if TYPE_CHECKING:
    from governance.datasets.tabular import LoadedDataset

CARD_FORMAT = "warden.model_card/1"
MODEL_CARD_FILE = "model_card.json"


def _privacy_statement(training: dict[str, Any]) -> str:
    if not training.get("private"):
        return (
            "This model was trained WITHOUT differential privacy: it may memorise and leak "
            "information about individual training records."
        )
    return (
        f"Trained with DP-SGD (Opacus): ({training['epsilon']:.4g}, {training['delta']:.3g})-"
        f"differential privacy of the training split at the level of "
        f"{training['privacy_unit']!r}, the smaller of the PRV and PLD bounds (here "
        f"{training['accountant'].upper()}) over {training['steps']} steps "
        f"(noise multiplier {training['noise_multiplier']:.4g}, clipping norm "
        f"{training['max_grad_norm']:.4g}, Poisson sampling rate {training['sample_rate']:.4g}). "
        "The guarantee holds only while the training run is in the dataset's privacy ledger "
        "with this artifact's hash; Warden's registry and reports state it from the ledger."
    )


RANDOMNESS_STATEMENTS = {
    OS_ENTROPY: (
        "The Gaussian noise and the Poisson sampling were drawn from PyTorch generators "
        "seeded per run with 64 bits of operating-system entropy, recorded nowhere and never "
        "derived from the seed above. They are pseudo-random, not cryptographically secure, "
        "and the Gaussian sampler is PyTorch's floating-point one (docs/privacy.md)."
    ),
    SECURE_RNG: (
        "The Gaussian noise and the Poisson sampling were drawn from Opacus' secure RNG "
        "(torchcsprng), never from the seed above."
    ),
}


def _randomness(training: dict[str, Any]) -> dict[str, Any]:
    seed_covers = training.get("seed_covers", "model initialisation")
    out: dict[str, Any] = {
        "seed": training.get("model_init_seed"),
        "seed_covers": seed_covers,
    }
    if training.get("private"):
        kind = str(training.get("mechanism_randomness"))
        out["mechanism_randomness"] = training.get("mechanism_randomness")
        out["statement"] = RANDOMNESS_STATEMENTS.get(
            kind,
            "The mechanism's randomness is not recorded as secret: the DP claim is void "
            "until the model is retrained.",
        )
    return out


def build_model_card(
    *,
    manifest: dict[str, Any],
    dataset: LoadedDataset,
    group_metrics: dict[str, dict[str, dict[str, float]]],
) -> dict[str, Any]:
    """Assemble a model card from a run's real values.

    Args:
        manifest: the artifact's manifest document (with its ``training`` section).
        dataset: the dataset the model was trained and evaluated on.
        group_metrics: per sensitive attribute, per group: ``accuracy`` and
            ``selection_rate`` on the test split (no counts).

    Returns:
        The card as a JSON-ready dict with the nine sections of Mitchell et al.
    """
    training = manifest["training"]
    schema = dataset.schema
    metrics = training["metrics"]
    arch = manifest["architecture"]
    private = bool(training.get("private"))
    source = schema.source
    return {
        "format": CARD_FORMAT,
        "model_details": {
            "name": manifest["name"],
            "version": manifest["version"],
            "type": f"{arch['kind']} classifier (PyTorch)",
            "architecture": arch,
            "labels": manifest["labels"],
            "training_algorithm": "DP-SGD with Adam (Opacus)" if private else "Adam (non-private)",
            "differential_privacy": _privacy_statement(training),
            "randomness": _randomness(training),
            "topology": training.get("topology", {"workers": 1}),
            "software": training.get("software", {}),
        },
        "intended_use": {
            "primary_use": (
                f"Predict {schema.label.column!r} ({schema.label.positive!r} vs "
                f"{schema.label.negative!r}) for the population described by the "
                f"{schema.name!r} dataset, behind Warden's policy and audit controls."
            ),
            "out_of_scope": [
                "Decisions about individuals without human review.",
                "Populations or time periods unlike the training data.",
                "Any use before the fairness gate has approved this version.",
            ],
        },
        "factors": {
            "relevant_factors": [s.name for s in schema.sensitive],
            "how_defined": {
                s.name: (
                    {"column": s.column, "public_bins": list(s.bins), "labels": list(s.labels)}
                    if s.bins
                    else {"column": s.column}
                )
                for s in schema.sensitive
            },
        },
        "metrics": {
            "reported": sorted(metrics),
            "decision_threshold": "argmax of the two class probabilities (0.5)",
            "disaggregated": ["accuracy", "selection_rate"],
        },
        "evaluation_data": {
            "dataset": schema.name,
            "split": "test",
            "rows": len(dataset.test),
            "content_hash": dataset.content_hash,
            "privacy": (
                "The test split is evaluation data outside the DP guarantee, which covers the "
                "training split only: the metrics below are exact statistics of its rows."
            ),
        },
        "training_data": {
            "dataset": schema.name,
            "description": schema.description,
            "source": {
                "citation": source.citation,
                "licence": source.licence,
                "url": source.url,
                "doi": source.doi,
            },
            "rows": len(dataset.train),
            "content_hash": dataset.content_hash,
            "file_hashes": dict(dataset.file_hashes),
            "privacy_unit": schema.privacy_unit,
            "missing_values": "rows with a missing value were dropped (their count is not "
            "published: it is a statistic of the private rows)",
            "preprocessing": PREPROCESSING_PROVENANCE,
            "preprocessing_privacy_cost": 0.0,
        },
        "quantitative_analyses": {
            "overall": metrics,
            "by_group": group_metrics,
        },
        "ethical_considerations": [
            _privacy_statement(training),
            "Differential privacy protects individual records; it does not make the model fair. "
            "See the disaggregated selection rates and the fairness audit before deployment.",
            "Sensitive attributes may be model inputs; audit for disparate impact.",
        ],
        "caveats_and_recommendations": [
            "Accuracy is measured on one held-out split; expect drift on newer populations.",
            "The privacy guarantee covers this run only; the dataset's cumulative budget is "
            "kept by the privacy ledger, which composes every run on this dataset.",
            *(
                []
                if training.get("secure_mode")
                else [
                    "Trained without secure_mode: the noise is pseudo-random from a secret "
                    "seed, not cryptographically secure; retrain with secure_mode for a "
                    "cryptographically strong guarantee."
                ]
                if private
                else []
            ),
        ],
    }


def render_model_card(card: dict[str, Any]) -> bytes:
    """The card's canonical bytes (sorted keys, UTF-8), as stored in the artifact."""
    return json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
