"""Typed builders of test data: artifacts, records."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from governance.config import REPO_ROOT
from inference.architectures import build_model
from inference.artifact import save_artifact
from inference.manifest import parse_manifest

TOY_FEATURES = [
    {"name": "age", "type": "numeric"},
    {"name": "hours", "type": "numeric"},
    {"name": "sex", "type": "categorical", "categories": ["Female", "Male"]},
    {"name": "job", "type": "categorical", "categories": ["a", "b", "c"]},
]


def toy_manifest(
    name: str, version: str, kind: str = "mlp", hidden: Sequence[int] = (16, 16)
) -> dict[str, Any]:
    return {
        "format": "warden.model/1",
        "name": name,
        "version": version,
        "architecture": {
            "kind": kind,
            "input_dim": 7,
            "output_dim": 2,
            "hidden": list(hidden) if kind == "mlp" else [],
        },
        "input_schema": {"features": TOY_FEATURES},
        "preprocessing": {
            "numeric": {"age": {"mean": 40.0, "std": 12.0}, "hours": {"mean": 40.0, "std": 10.0}}
        },
        "labels": ["no", "yes"],
        "training": {"private": False, "note": "random weights for tests"},
    }


def build_artifact(
    out: Path,
    *,
    name: str = "toy",
    version: str = "1",
    kind: str = "mlp",
    seed: int = 0,
    hidden: Sequence[int] = (16, 16),
) -> Path:
    doc = toy_manifest(name, version, kind, hidden)
    torch.manual_seed(seed)
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    save_artifact(out, build_model(stub.architecture), doc)
    return out


def upload_body(artifact: Path) -> dict[str, object]:
    """The JSON body of POST /v1/models for an artifact folder (manifest + base64 files)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    files = {
        p.name: base64.b64encode(p.read_bytes()).decode()
        for p in artifact.iterdir()
        if p.name != "manifest.json"
    }
    return {"manifest": manifest, "files": files}


def toy_record(i: int = 0) -> dict[str, Any]:
    return {
        "age": 20 + i % 50,
        "hours": 10 + i % 40,
        "sex": ["Female", "Male"][i % 2],
        "job": "abc"[i % 3],
    }


def policies_copy(tmp_path: Path, **files: str | bytes | None) -> Path:
    """A copy of the shipped ``policies/`` folder, with some files replaced or removed.

    Args:
        files: file name (``default_policy_yaml`` for ``default_policy.yaml``) to its new
            content; None removes the file.
    """
    target = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", target)
    for key, body in files.items():
        path = target / key.replace("_yaml", ".yaml")
        if body is None:
            path.unlink()
        elif isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    return target
