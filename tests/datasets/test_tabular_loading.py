"""Loading registered CSV files: hashes, refusal of changed data, missing values, splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from governance.datasets import (
    DatasetChanged,
    DatasetError,
    content_hash,
    encode_features,
    load_dataset,
    load_schema,
    manifest_sections,
    verify_hash,
)
from inference.manifest import parse_manifest
from inference.preprocessing import encode_records

CSV = """amount,colour,group,outcome
10,red,a,yes
200,blue,b,no
35,red,a,yes
,blue,b,no
7,green,a,no
1000,blue,b,yes
12,red,a,no
55,green,b,yes
3,red,a,no
90,blue,b,yes
"""


def _schema_doc(**split: object) -> dict[str, object]:
    return {
        "format": "warden.dataset/1",
        "name": "toy",
        "description": "a toy table",
        "source": {"citation": "made up for tests", "licence": "CC0"},
        "privacy_unit": "one row = one person",
        "table": {"format": "csv", "header": True, "missing": "drop"},
        "split": split or {"kind": "random", "file": {"path": "toy.csv"}, "test_fraction": 0.3},
        "label": {"column": "outcome", "positive": "yes", "negative": "no"},
        "features": [
            {"name": "amount", "type": "numeric", "lo": 0, "hi": 10000, "transform": "log1p"},
            {"name": "colour", "type": "categorical", "categories": ["red", "green", "blue"]},
        ],
        "sensitive": [{"name": "group", "column": "group"}],
        "privacy": {"allow_non_private": False},
    }


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    (tmp_path / "toy.csv").write_text(CSV)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(_schema_doc()))
    return tmp_path


def test_content_hash_is_sha256_of_the_bytes(toy: Path) -> None:
    assert content_hash(toy / "toy.csv") == hashlib.sha256(CSV.encode()).hexdigest()


def test_changed_data_is_refused_with_409(toy: Path) -> None:
    registered = content_hash(toy / "toy.csv")
    assert verify_hash(toy / "toy.csv", registered) == registered
    (toy / "toy.csv").write_text(CSV.replace("10,red", "11,red"))
    with pytest.raises(DatasetChanged) as info:
        verify_hash(toy / "toy.csv", registered)
    assert info.value.status_code == 409
    assert info.value.extra["expected_sha256"] == registered
    schema = load_schema(toy / "schema.yaml")
    with pytest.raises(DatasetChanged):
        load_dataset(schema, expected_hashes={"toy.csv": registered})


def test_a_hash_in_the_schema_is_checked_too(toy: Path) -> None:
    doc = _schema_doc(kind="random", file={"path": "toy.csv", "sha256": "0" * 64})
    (toy / "schema.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetChanged):
        load_dataset(load_schema(toy / "schema.yaml"))


def test_missing_rows_are_dropped_and_split_is_seeded(toy: Path) -> None:
    schema = load_schema(toy / "schema.yaml")
    first, second = load_dataset(schema), load_dataset(schema)
    assert first.rows_dropped == {"data": 1}
    assert len(first.train) + len(first.test) == 9
    assert len(first.test) == 3
    assert first.content_hash == content_hash(toy / "toy.csv")
    assert first.test.features.equals(second.test.features)
    assert set(first.train.labels) <= {0, 1}


def test_missing_error_policy_refuses(toy: Path) -> None:
    doc = _schema_doc()
    doc["table"] = {"format": "csv", "header": True, "missing": "error"}
    (toy / "schema.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match="missing values"):
        load_dataset(load_schema(toy / "schema.yaml"))


def test_values_outside_the_public_lists_are_refused(toy: Path) -> None:
    (toy / "toy.csv").write_text(CSV.replace("green", "purple").replace("yes\n", "maybe\n", 1))
    with pytest.raises(DatasetError) as info:
        load_dataset(load_schema(toy / "schema.yaml"))
    text = " ".join(info.value.problems)
    assert "colour: 2 values are not in the public category list" in text
    assert "neither 'yes' nor 'no'" in text
    assert "purple" not in str(info.value)  # row values never appear in messages


def test_training_encoding_equals_serving_encoding(toy: Path) -> None:
    data = load_dataset(load_schema(toy / "schema.yaml"))
    sections = manifest_sections(data.schema)
    manifest = parse_manifest(
        {
            "format": "warden.model/1",
            "name": "toy",
            "version": "v1",
            "architecture": {"kind": "logreg", "input_dim": 4, "output_dim": 2},
            **sections,
            "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        }
    )
    records = data.train.features.to_dict(orient="records")
    served = encode_records(manifest, records).numpy()
    trained = encode_features(data.schema, data.train.features).numpy()
    np.testing.assert_allclose(trained, served, rtol=1e-6)
