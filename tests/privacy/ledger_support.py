"""Shared setup for the ledger, training-service, API and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from governance.config import REPO_ROOT, Settings

# Small caps so a second ε = 1 run does not fit: the refusal is exercised cheaply.
CAPS: dict[str, Any] = {
    "defaults": {"epsilon": 1.2, "delta": 1e-4, "allow_non_private": False},
    "datasets": {
        "synthetic": {"epsilon": 1.2, "delta": 1e-4, "allow_non_private": False},
        "open": {"epsilon": 5.0, "delta": 1e-4, "allow_non_private": True},
    },
}
# Fast: a logistic regression, two epochs (accuracy does not matter). q = 1/9 on the 900
# training rows: Opacus' noise search costs a few times less there than at q = 1/3.
FAST: dict[str, Any] = {"model_kind": "logreg", "epochs": 2, "batch_size": 100, "lr": 0.05}


def with_policies(settings: Settings, folder: Path, caps: dict[str, Any] | None = None) -> Settings:
    """A copy of ``settings`` whose policies folder has ``privacy.yaml`` set to ``caps``."""
    target = folder / "policies"
    shutil.copytree(REPO_ROOT / "policies", target, dirs_exist_ok=True)
    (target / "privacy.yaml").write_text(yaml.safe_dump(caps or CAPS))
    return settings.model_copy(update={"policies_dir": target})
