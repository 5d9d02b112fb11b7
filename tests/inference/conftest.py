"""Fixtures for the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_factories import write_artifact

from inference.model import LoadedModel


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return write_artifact(tmp_path / "artifact", extra_files={"model_card.json": b'{"a": 1}'})


@pytest.fixture
def loaded(artifact_dir: Path) -> LoadedModel:
    return LoadedModel.load(artifact_dir, torch.device("cpu"))
