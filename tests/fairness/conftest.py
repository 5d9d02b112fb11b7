"""Fixtures for the fairness service tests: Adult-schema models, a database, a registered model.

Two kinds of model are used. A hand-weighted logistic regression over the Adult schema builds
in milliseconds and is biased by construction (a large weight on ``sex=Male``), for the fast
gate and API tests. A real MLP trained on Adult (non-private, two epochs, about ten seconds)
is built once per session for the ``slow`` tests that the issue names: the Adult MLP fails the
four-fifths rule by sex, and its mitigation improves the ratio.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from governance.config import Settings
from governance.datasets.declaration import load_schema
from governance.datasets.encoding import manifest_features, manifest_sections
from governance.datasets.tabular import ADULT_SCHEMA
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import Context, cli_context
from governance.registry.models import ModelVersion
from governance.registry.service import registry
from inference.architectures import build_model
from inference.artifact import save_artifact
from inference.manifest import FORMAT, parse_manifest


def adult_logreg(
    out: Path,
    *,
    name: str = "adult-lr",
    version: str = "1",
    male_weight: float = 3.0,
    trained_by: str | None = None,
) -> Path:
    """A logistic regression over the Adult schema, weighted by hand.

    Its score rises with education and hours; ``male_weight`` adds to the positive logit of
    every man, which makes it fail the four-fifths rule by sex when large.
    """
    schema = load_schema(ADULT_SCHEMA)
    sections = manifest_sections(schema)
    width = sum(f.width for f in manifest_features(schema))
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "architecture": {"kind": "logreg", "input_dim": width, "output_dim": 2},
        **sections,
        "postprocessing": None,
        "training": {
            "private": False,
            "dataset": {"name": "adult"},
            "note": "hand-weighted for tests",
            **({"trained_by": trained_by} if trained_by else {}),
        },
    }
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    module = build_model(stub.architecture)
    column: dict[str, int] = {}
    offset = 0
    for feature in stub.features:
        if feature.type == "numeric":
            column[feature.name] = offset
        else:
            for i, category in enumerate(feature.categories):
                column[f"{feature.name}={category}"] = offset + i
        offset += feature.width
    with torch.no_grad():
        weight = torch.zeros(2, width)
        weight[1, column["education-num"]] = 2.5
        weight[1, column["hours-per-week"]] = 1.5
        weight[1, column["sex=Male"]] = male_weight
        weight[1, column["marital-status=Married-civ-spouse"]] = 1.5
        linear = module.linear
        assert isinstance(linear, torch.nn.Linear)
        linear.weight.copy_(weight)
        linear.bias.copy_(torch.tensor([0.0, -2.5]))
    save_artifact(out, module, doc)
    return out


@pytest.fixture
def sessions(settings: Settings, admin_token: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's migrated database (policy seeded, first admin created)."""
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def engineer() -> Context:
    return cli_context("eve-engineer")


@pytest.fixture
def officer() -> Context:
    return cli_context("olivia-officer")


@pytest.fixture
def biased_model(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path, engineer: Context
) -> ModelVersion:
    """The biased logistic regression, registered by the engineer, trained by "tom-trainer"."""
    artifact = adult_logreg(tmp_path / "adult-lr-1", trained_by="tom-trainer")
    with sessions.begin() as session:
        row = registry.register(
            session, engineer, source_dir=artifact, models_dir=settings.resolved_models_dir
        )
        session.expunge(row)
    return row


@pytest.fixture(scope="session")
def adult_mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLP trained on Adult without DP (two epochs): the issue's biased model."""
    from governance.datasets.tabular import load_adult
    from governance.privacy.training import train

    out = tmp_path_factory.mktemp("adult-mlp") / "artifact"
    train(
        dataset=load_adult(),
        model_kind="mlp",
        hidden=(32,),
        epochs=2,
        batch_size=256,
        lr=3e-3,
        epsilon=None,
        delta=1e-5,
        device="cpu",
        out_dir=out,
        name="adult-mlp",
        version="1",
    )
    return out
