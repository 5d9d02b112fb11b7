"""Schema validation: strict, complete error lists, public statistics."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.datasets import (
    ADULT_SCHEMA,
    DatasetError,
    DatasetFileMissing,
    load_schema,
    manifest_sections,
    parse_schema,
)
from governance.errors import WardenError

BASE: dict[str, Any] = yaml.safe_load(ADULT_SCHEMA.read_text())


def _problems(doc: Any) -> list[str]:
    with pytest.raises(DatasetError) as info:
        parse_schema(doc, base_dir=".")
    assert isinstance(info.value, WardenError)
    assert info.value.status_code == 422
    return info.value.problems


def test_the_bundled_schema_is_valid() -> None:
    schema = load_schema(ADULT_SCHEMA)
    assert schema.name == "adult"
    assert schema.privacy_unit == "one row = one person"
    assert schema.label.names == ("<=50K", ">50K")
    assert schema.privacy.allow_non_private is True


def test_statistics_come_from_the_public_bounds() -> None:
    schema = load_schema(ADULT_SCHEMA)
    numeric = manifest_sections(schema)["preprocessing"]["numeric"]
    assert numeric["age"] == {"mean": (17 + 90) / 2, "std": (90 - 17) / 2, "transform": "identity"}
    gain = numeric["capital-gain"]
    assert gain["transform"] == "log1p"
    assert math.isclose(gain["mean"], math.log1p(99999) / 2)
    assert math.isclose(gain["std"], math.log1p(99999) / 2)


def test_every_problem_is_reported_at_once() -> None:
    doc = copy.deepcopy(BASE)
    doc["name"] = "Not A Valid Name"
    doc["features"][0] = {"name": "age", "type": "numeric", "lo": 90, "hi": 17}
    doc["features"][1] = {"name": "workclass", "type": "categorical", "categories": []}
    doc["label"].pop("positive")
    doc["privacy"] = {}
    doc["surprise"] = 1
    problems = _problems(doc)
    joined = " | ".join(problems)
    for fragment in (
        "name: must match",
        "lo < hi",
        "public category list",
        "label.positive: required",
        "allow_non_private: required",
        "unknown field 'surprise'",
    ):
        assert fragment in joined
    assert len(problems) >= 6


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(format="other/1"), "format: must be"),
        (lambda d: d["features"].append(dict(d["features"][0])), "duplicate name 'age'"),
        (lambda d: d["features"][0].update(transform="sqrt"), "identity or log1p"),
        (lambda d: d["features"][0].update(lo="zero"), "expected a number"),
        (lambda d: d["split"].update(kind="magic"), "split.kind"),
        (lambda d: d["split"]["train"].update(path="../escape.csv"), "without '..'"),
        (lambda d: d["split"]["train"].update(sha256="abc"), "64 lowercase hex"),
        (lambda d: d["sensitive"][2].update(labels=["a"]), "one label per bin"),
        (lambda d: d["sensitive"][2].update(bins=[30, 20]), "strictly increasing"),
        (lambda d: d["table"]["columns"].remove("sex"), "'sex' is used but not declared"),
        (
            lambda d: d["features"].append(
                {"name": "income", "type": "categorical", "categories": ["x"]}
            ),
            "label column cannot",
        ),
        (lambda d: d["privacy"].update(delta=2.0), "privacy.delta"),
        (lambda d: d["table"].update(separator=", "), "single character"),
    ],
)
def test_single_problems_are_named(mutate: Any, fragment: str) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    assert any(fragment in p for p in _problems(doc)), _problems(doc)


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert _problems(["a", "list"]) == ["schema: expected a mapping"]
    bad = tmp_path / "schema.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DatasetError, match="not valid UTF-8 YAML"):
        load_schema(bad)
    with pytest.raises(DatasetFileMissing) as info:
        load_schema(tmp_path / "absent.yaml")
    assert info.value.status_code == 404
