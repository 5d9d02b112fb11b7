"""Factories for the inference tests: a small valid manifest and a real saved artifact.

A uniquely named module (not conftest) so test files can import it without clashing with other
test folders' helpers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from inference.architectures import build_model
from inference.artifact import save_artifact
from inference.manifest import parse_manifest

# age (1) + hours (1) + sex (2) + workclass (3) = 7 encoded columns.
FEATURES: list[dict[str, Any]] = [
    {"name": "age", "type": "numeric"},
    {"name": "hours", "type": "numeric"},
    {"name": "sex", "type": "categorical", "categories": ["Female", "Male"]},
    {"name": "workclass", "type": "categorical", "categories": ["Private", "Self", "Gov"]},
]
INPUT_DIM = 7
ZERO_SHA = "0" * 64

ManifestFactory = Callable[..., dict[str, Any]]


def manifest_doc(**overrides: Any) -> dict[str, Any]:
    """A valid ``warden.model/1`` document; keyword arguments replace top-level fields."""
    doc: dict[str, Any] = {
        "format": "warden.model/1",
        "name": "adult-mlp",
        "version": "v1",
        "architecture": {
            "kind": "mlp",
            "input_dim": INPUT_DIM,
            "output_dim": 2,
            "hidden": [8],
            "dropout": 0.0,
        },
        "input_schema": {"features": copy.deepcopy(FEATURES)},
        "preprocessing": {
            "numeric": {
                "age": {"mean": 38.5, "std": 13.25},
                "hours": {"mean": 3.5, "std": 0.75, "transform": "log1p"},
            },
            "unknown_category": "error",
        },
        "labels": ["<=50K", ">50K"],
        "weights": {"file": "weights.safetensors", "sha256": ZERO_SHA},
        "files": {},
        "postprocessing": None,
        "training": {"seed": 7},
    }
    doc.update(copy.deepcopy(overrides))
    return doc


def seeded_module(doc: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """An untrained module for ``doc`` with deterministic, non-trivial weights."""
    torch.manual_seed(seed)
    module = build_model(parse_manifest(doc).architecture)
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(0.0, 0.5)
    return module.eval()


def write_artifact(
    out: Path,
    *,
    seed: int = 0,
    extra_files: dict[str, bytes] | None = None,
    **overrides: Any,
) -> Path:
    """Save a real artifact (weights + manifest) for ``manifest_doc(**overrides)``."""
    doc = manifest_doc(**overrides)
    save_artifact(out, seeded_module(doc, seed), doc, extra_files=extra_files)
    return out


def random_records(gen: torch.Generator, n: int) -> list[dict[str, Any]]:
    """Valid raw records, drawn from ``gen``."""
    sexes = FEATURES[2]["categories"]
    works = FEATURES[3]["categories"]
    out = []
    for _ in range(n):
        pick = torch.randint(0, 6, (2,), generator=gen).tolist()
        out.append(
            {
                "age": float(torch.randint(17, 90, (1,), generator=gen)),
                "hours": float(torch.rand(1, generator=gen)) * 80,
                "sex": sexes[pick[0] % 2],
                "workclass": works[pick[1] % 3],
            }
        )
    return out
