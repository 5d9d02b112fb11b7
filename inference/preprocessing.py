"""Raw JSON records → model input tensors, exactly as the manifest describes.

The same encoder serves training (:func:`encode_columns`, vectorised over numpy columns) and
serving (:func:`encode_records`, strict validation of untrusted JSON), so the two can never
disagree about feature order, scaling or one-hot layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inference.errors import InputValidationError
from inference.manifest import Manifest

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _numeric(value: Any, *, record: int, field: str) -> float:
    # bool is an int in Python but never a valid number here: reject JSON true/false.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputValidationError(record=record, field=field, message="expected a number")
    try:
        number = float(value)
    except OverflowError:
        # json.loads turns a 400-digit literal into an int that no float can hold.
        raise InputValidationError(
            record=record, field=field, message="expected a finite number"
        ) from None
    if not math.isfinite(number):
        raise InputValidationError(record=record, field=field, message="expected a finite number")
    return number


def encode_records(manifest: Manifest, records: Sequence[Any]) -> torch.Tensor:
    """Validate and encode untrusted records.

    Args:
        manifest: the model's manifest.
        records: decoded JSON objects, one per row.

    Returns:
        A float32 tensor ``[len(records), input_dim]`` on the CPU.

    Raises:
        InputValidationError: naming the first bad record and field.
    """
    width = manifest.architecture.input_dim
    out = np.zeros((len(records), width), dtype=np.float32)
    known = set(manifest.feature_names)
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InputValidationError(record=i, field=None, message="expected a JSON object")
        extra = [k for k in record if k not in known]
        if extra:
            raise InputValidationError(
                record=i, field=str(extra[0])[:64], message="unknown field for this model"
            )
        col = 0
        for feat in manifest.features:
            if feat.name not in record:
                raise InputValidationError(record=i, field=feat.name, message="missing field")
            value = record[feat.name]
            if feat.type == "numeric":
                number = _numeric(value, record=i, field=feat.name)
                if feat.lo is not None and feat.hi is not None and not feat.lo <= number <= feat.hi:
                    if feat.out_of_bounds != "clip":
                        raise InputValidationError(
                            record=i,
                            field=feat.name,
                            message=f"outside the model's bounds [{feat.lo:g}, {feat.hi:g}]",
                        )
                    number = min(max(number, feat.lo), feat.hi)
                if feat.transform == "log1p":
                    if number <= -1:
                        raise InputValidationError(
                            record=i, field=feat.name, message="must be greater than -1"
                        )
                    number = math.log1p(number)
                scaled = (number - feat.mean) / feat.std
                if not abs(scaled) <= _FLOAT32_MAX:
                    # Finite as a double but inf once stored as float32: refuse, never feed inf.
                    raise InputValidationError(
                        record=i, field=feat.name, message="number out of range"
                    )
                out[i, col] = scaled
                col += 1
                continue
            if not isinstance(value, str):
                raise InputValidationError(record=i, field=feat.name, message="expected a string")
            try:
                out[i, col + feat.categories.index(value)] = 1.0
            except ValueError:
                if manifest.unknown_category == "error":
                    raise InputValidationError(
                        record=i, field=feat.name, message="not one of the model's categories"
                    ) from None
            col += feat.width
    return torch.from_numpy(out)


def encode_columns(manifest: Manifest, columns: Mapping[str, Sequence[Any]]) -> torch.Tensor:
    """Encode trusted tabular data column by column (training and evaluation).

    Args:
        manifest: the manifest whose schema and statistics to apply.
        columns: feature name → values (numpy arrays or pandas Series work).

    Returns:
        A float32 tensor ``[n, input_dim]``. Unknown categories encode as all zeros.

    Raises:
        ValueError: when a feature's column is missing or the columns differ in length.
    """
    blocks: list[np.ndarray] = []
    lengths: set[int] = set()
    for feat in manifest.features:
        if feat.name not in columns:
            raise ValueError(f"column {feat.name!r} is missing")
        values = np.asarray(columns[feat.name])
        lengths.add(len(values))
        if len(lengths) > 1:
            raise ValueError("columns differ in length")
        if feat.type == "numeric":
            numbers = values.astype(np.float64)
            if feat.lo is not None and feat.hi is not None and feat.out_of_bounds == "clip":
                numbers = np.clip(numbers, feat.lo, feat.hi)
            if feat.transform == "log1p":
                numbers = np.log1p(numbers)
            blocks.append(((numbers - feat.mean) / feat.std)[:, None])
        else:
            cats = np.asarray(feat.categories, dtype=object)
            blocks.append((values.astype(object)[:, None] == cats[None, :]).astype(np.float32))
    return torch.from_numpy(np.concatenate(blocks, axis=1).astype(np.float32))


def raw_values(records: Sequence[Mapping[str, Any]], feature: str) -> list[str]:
    """The raw value of one (already validated) categorical feature for each record."""
    return [str(r[feature]) for r in records]
