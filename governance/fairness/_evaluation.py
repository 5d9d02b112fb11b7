"""Predicting on a dataset split exactly as serving would, for audits and mitigation.

Rows go through the served code path: JSON-like records, :meth:`LoadedModel.encode` (the strict
request encoder), the forward pass, then :meth:`LoadedModel.decide`, which applies the
manifest's post-processing with the same per-row draws as a live request. An audit therefore
judges the decisions the API would return, not the raw scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from governance.datasets.errors import DatasetFileMissing
from governance.datasets.models import Dataset
from governance.datasets.tabular import LoadedDataset, TabularSplit
from governance.fairness.errors import AuditInputError, UnknownDataset
from governance.kit.context import Context
from governance.registry.models import ModelVersion
from inference.errors import InputValidationError, ManifestError
from inference.manifest import Manifest
from inference.model import LoadedModel

CHUNK_ROWS: Final[int] = 4096
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class SplitPredictions:
    """Decisions on one split, aligned with its rows."""

    y_true: NDArray[np.int8]
    y_pred: NDArray[np.int8]
    positive_label: str


def resolve_named_dataset(session: Session, ctx: Context, name: str) -> Dataset:
    """A dataset's registration (bundled datasets are registered on first use).

    Raises:
        UnknownDataset: no dataset of that name.
    """
    from governance.datasets.service import DatasetNotRegistered, datasets

    if not _NAME_RE.fullmatch(name):
        raise UnknownDataset("dataset names are lowercase letters, digits, '.', '_' and '-'")
    try:
        return datasets.resolve(session, ctx, name)
    except DatasetNotRegistered:
        raise UnknownDataset(f"unknown dataset {name!r}") from None


def load_resolved(row: Dataset) -> LoadedDataset:
    """Read a registered dataset's files (no database), its hashes checked.

    Raises:
        UnknownDataset: a file is missing.
        DatasetError: the data changed since registration (409) or does not match its schema.
    """
    from governance.datasets.service import datasets

    try:
        return datasets.load(row)
    except DatasetFileMissing as exc:
        raise UnknownDataset(f"dataset {row.name!r} has missing files: {exc}") from None


def load_named_dataset(session: Session, ctx: Context, name: str) -> LoadedDataset:
    """A dataset from the dataset registry, its hashes checked against the registration.

    Bundled datasets (``adult``) are registered on first use; datasets registered at run time
    (``warden datasets register``) resolve the same way.

    Raises:
        UnknownDataset: no dataset of that name.
        DatasetError: the data changed since registration (409), a file is missing, or the
            data does not match its schema.
    """
    return load_resolved(resolve_named_dataset(session, ctx, name))


def load_artifact(
    name: str, version: str, artifact_dir: str, sha256: str, device: torch.device | None = None
) -> LoadedModel:
    """Load an artifact, refusing it if it differs from what was registered.

    Raises:
        AuditInputError: the artifact no longer verifies (422: nothing is audited).
    """
    try:
        return LoadedModel.load(
            Path(artifact_dir), device or torch.device("cpu"), expected_sha256=sha256
        )
    except ManifestError as exc:
        raise AuditInputError(
            f"model {name} {version}: the artifact does not verify ({exc})"
        ) from None


def load_registered(row: ModelVersion, device: torch.device | None = None) -> LoadedModel:
    """Load a registered version, refusing any artifact that differs from what was registered.

    Raises:
        AuditInputError: the artifact no longer verifies (422: nothing is audited).
    """
    return load_artifact(row.name, row.version, row.artifact_dir, row.artifact_sha256, device)


def positive_label(manifest: Manifest) -> str:
    """The label that counts as a positive decision (selection) for fairness metrics.

    Raises:
        AuditInputError: the model is not a binary classifier.
    """
    if len(manifest.labels) != 2:
        raise AuditInputError("fairness audits need a binary model (two labels)")
    post = manifest.postprocessing or {}
    return manifest.labels[int(post.get("positive_label", 1))]


def true_labels(
    dataset: LoadedDataset, split: TabularSplit, manifest: Manifest
) -> NDArray[np.int8]:
    """The split's labels as 1 = the model's positive label.

    Raises:
        AuditInputError: the dataset's classes are not the model's labels.
    """
    label = dataset.schema.label
    if set(label.names) != set(manifest.labels):
        raise AuditInputError(
            f"dataset {dataset.name!r} labels {list(label.names)} are not the model's "
            f"labels {list(manifest.labels)}"
        )
    positive = positive_label(manifest)
    # The split's labels are 1 for the schema's positive class.
    as_model = split.labels if label.positive == positive else 1 - split.labels
    return np.asarray(as_model, dtype=np.int8)


def records_of(features: pd.DataFrame, names: Sequence[str]) -> list[dict[str, Any]]:
    """The split's rows as the JSON objects a client would send (only the model's fields)."""
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise AuditInputError(f"the dataset lacks the model's input fields {missing[:5]}")
    return features[list(names)].to_dict(orient="records")


def decide_as_served(
    model: LoadedModel, records: Sequence[dict[str, Any]]
) -> tuple[list[str], NDArray[np.float64]]:
    """Each record's served label and its probability of the positive label.

    Args:
        model: the loaded model (its manifest's post-processing applies).
        records: JSON-like records with the model's fields.

    Returns:
        ``(labels, p_positive)``, one per record.

    Raises:
        AuditInputError: a record does not validate against the model's input schema.
    """
    positive = positive_label(model.manifest)
    labels: list[str] = []
    probs: list[float] = []
    for start in range(0, len(records), CHUNK_ROWS):
        chunk = records[start : start + CHUNK_ROWS]
        try:
            x = model.encode(chunk)
        except InputValidationError as exc:
            raise AuditInputError(
                f"record {start + exc.record}, field {exc.field!r}: {exc.message}"
            ) from None
        for prediction in model.decide(chunk, x, model.forward_probabilities(x)):
            labels.append(prediction.label)
            probs.append(prediction.probabilities[positive])
    return labels, np.asarray(probs, dtype=np.float64)


def predict_split(
    model: LoadedModel, dataset: LoadedDataset, split: TabularSplit
) -> SplitPredictions:
    """Decisions of ``model`` on ``split`` as the API would return them.

    Raises:
        AuditInputError: the dataset does not fit the model.
    """
    manifest = model.manifest
    y_true = true_labels(dataset, split, manifest)
    labels, _ = decide_as_served(model, records_of(split.features, manifest.feature_names))
    positive = positive_label(manifest)
    y_pred = np.fromiter((label == positive for label in labels), dtype=np.int8, count=len(labels))
    return SplitPredictions(y_true=y_true, y_pred=y_pred, positive_label=positive)
