"""The manifest parser refuses every kind of malformed manifest with ManifestError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from inference_factories import INPUT_DIM, ZERO_SHA, manifest_doc

from inference.errors import ManifestError
from inference.manifest import parse_manifest

Mutation = Callable[[dict[str, Any]], None]

RULE = {"p0": 0.4, "t0": 0.3, "p1": 0.6, "t1": 0.7}


def _post(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": "group_threshold",
        "feature": "sex",
        "positive_label": 1,
        "groups": {"Female": dict(RULE), "Male": dict(RULE)},
        "default": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5},
    }
    spec.update(changes)
    return spec


def test_valid_manifest_parses_typed() -> None:
    m = parse_manifest(manifest_doc(postprocessing=_post()))
    assert m.name == "adult-mlp" and m.version == "v1"
    assert m.architecture.input_dim == INPUT_DIM and m.architecture.hidden == (8,)
    assert m.feature_names == ("age", "hours", "sex", "workclass")
    assert [f.width for f in m.features] == [1, 1, 2, 3]
    assert m.features[1].transform == "log1p" and m.features[0].mean == 38.5
    assert m.labels == ("<=50K", ">50K")
    assert m.to_dict()["training"] == {"seed": 7}


def test_to_dict_writes_what_parse_reads() -> None:
    """A document in full form comes back unchanged, integers included, bounds and all."""
    doc = manifest_doc(postprocessing=_post())
    doc["input_schema"]["features"][0].update(lo=17, hi=90, out_of_bounds="clip")
    for stats in doc["preprocessing"]["numeric"].values():
        stats.setdefault("transform", "identity")
    doc["preprocessing"]["numeric"]["age"]["mean"] = 38
    doc["files"] = {"model_card.json": ZERO_SHA}
    m = parse_manifest(doc)
    assert m.to_dict() == doc
    assert json.dumps(m.to_dict(), sort_keys=True) == json.dumps(doc, sort_keys=True)
    assert parse_manifest(m.to_dict()) == m


def test_to_dict_fills_in_the_defaults_a_document_left_out() -> None:
    doc = manifest_doc()
    del doc["architecture"]["dropout"], doc["files"], doc["postprocessing"]
    written = parse_manifest(doc).to_dict()
    assert written["architecture"]["dropout"] == 0.0 and written["files"] == {}
    assert written["preprocessing"]["numeric"]["age"]["transform"] == "identity"
    assert parse_manifest(written) == parse_manifest(doc)


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return mutate


MALFORMED: dict[str, Mutation] = {
    # missing fields
    "missing name": _delete("name"),
    "missing version": _delete("version"),
    "missing architecture": _delete("architecture"),
    "missing input_dim": _delete("architecture.input_dim"),
    "missing output_dim": _delete("architecture.output_dim"),
    "missing kind": _delete("architecture.kind"),
    "missing input_schema": _delete("input_schema"),
    "missing features": _delete("input_schema.features"),
    "missing labels": _delete("labels"),
    "missing weights": _delete("weights"),
    "missing weights sha": _delete("weights.sha256"),
    "missing feature type": _delete("input_schema.features.0.type"),
    "missing categories": _delete("input_schema.features.2.categories"),
    "wrong format": _set("format", "warden.model/2"),
    # wrong types
    "name not a string": _set("name", 5),
    "input_dim string": _set("architecture.input_dim", "7"),
    "input_dim float": _set("architecture.input_dim", 7.0),
    "architecture a list": _set("architecture", []),
    "features an object": _set("input_schema.features", {}),
    "feature not an object": _set("input_schema.features.0", "age"),
    "labels a string": _set("labels", "<=50K,>50K"),
    "label not a string": _set("labels", ["<=50K", 1]),
    "weights a string": _set("weights", "weights.safetensors"),
    "files a list": _set("files", []),
    "file digest not a string": _set("files", {"card.json": 5}),
    "training a list": _set("training", []),
    "preprocessing a list": _set("preprocessing", []),
    "numeric stats a list": _set("preprocessing.numeric", []),
    "stats not an object": _set("preprocessing.numeric.age", 3),
    # bool passing as int
    "input_dim true": _set("architecture.input_dim", True),
    "output_dim true": _set("architecture.output_dim", True),
    "hidden with bool": _set("architecture.hidden", [True]),
    "mean bool": _set("preprocessing.numeric.age", {"mean": True, "std": 1.0}),
    "dropout bool": _set("architecture.dropout", False),
    # numbers
    "mean nan": _set("preprocessing.numeric.age", {"mean": float("nan"), "std": 1.0}),
    "std inf": _set("preprocessing.numeric.age", {"mean": 0.0, "std": float("inf")}),
    "mean huge int": _set("preprocessing.numeric.age", {"mean": 10**400, "std": 1.0}),
    "std zero": _set("preprocessing.numeric.age", {"mean": 0.0, "std": 0.0}),
    "std negative": _set("preprocessing.numeric.age", {"mean": 0.0, "std": -1.0}),
    "bad transform": _set("preprocessing.numeric.age", {"mean": 0, "std": 1, "transform": "exp"}),
    "hidden zero": _set("architecture.hidden", [0]),
    "hidden negative": _set("architecture.hidden", [-4]),
    "hidden not a list": _set("architecture.hidden", 8),
    "mlp without hidden": _set("architecture.hidden", []),
    "dropout one": _set("architecture.dropout", 1.0),
    "unknown kind": _set("architecture.kind", "transformer"),
    "unknown feature type": _set("input_schema.features.0.type", "date"),
    "unknown_category bad": _set("preprocessing.unknown_category", "ignore"),
    # dimension and consistency mismatches
    "input_dim too big": _set("architecture.input_dim", INPUT_DIM + 1),
    "input_dim too small": _set("architecture.input_dim", INPUT_DIM - 1),
    "labels count": _set("labels", ["a", "b", "c"]),
    "one label": _set("labels", ["a"]),
    "duplicate labels": _set("labels", ["yes", "yes"]),
    "empty label": _set("labels", ["", "yes"]),
    "no features": _set("input_schema.features", []),
    "duplicate feature": _set("input_schema.features.1.name", "age"),
    "empty categories": _set("input_schema.features.2.categories", []),
    "duplicate categories": _set("input_schema.features.2.categories", ["M", "M"]),
    "category not a string": _set("input_schema.features.2.categories", ["F", 1]),
    "stats for unknown feature": _set("preprocessing.numeric.salary", {"mean": 0, "std": 1}),
    "stats for categorical": _set("preprocessing.numeric.sex", {"mean": 0, "std": 1}),
    # bad names
    "name uppercase": _set("name", "Adult"),
    "name with space": _set("name", "adult mlp"),
    "name trailing newline": _set("name", "adult\n"),
    "name empty": _set("name", ""),
    "name too long": _set("name", "a" * 65),
    "name leading dot": _set("name", ".adult"),
    "version with slash": _set("version", "v1/../../x"),
    "feature name empty": _set("input_schema.features.0.name", ""),
    "feature name control char": _set("input_schema.features.0.name", "a\x00ge"),
    # path traversal and file names
    "weights parent dir": _set("weights.file", "../weights.safetensors"),
    "weights absolute": _set("weights.file", "/etc/passwd"),
    "weights subdir": _set("weights.file", "sub/weights.safetensors"),
    "weights backslash": _set("weights.file", "..\\weights.safetensors"),
    "weights dot file": _set("weights.file", ".weights"),
    "weights dot dot": _set("weights.file", ".."),
    "weights is the manifest": _set("weights.file", "manifest.json"),
    "weights empty name": _set("weights.file", ""),
    "weights trailing newline": _set("weights.file", "weights.safetensors\n"),
    "extra file traversal": _set("files", {"../card.json": ZERO_SHA}),
    "extra file absolute": _set("files", {"/tmp/card.json": ZERO_SHA}),
    "extra file is manifest": _set("files", {"manifest.json": ZERO_SHA}),
    "extra file repeats weights": _set("files", {"weights.safetensors": ZERO_SHA}),
    # sha format
    "sha uppercase": _set("weights.sha256", "A" * 64),
    "sha short": _set("weights.sha256", "0" * 63),
    "sha long": _set("weights.sha256", "0" * 65),
    "sha not hex": _set("weights.sha256", "g" * 64),
    "sha trailing newline": _set("weights.sha256", ZERO_SHA + "\n"),
    "extra file sha bad": _set("files", {"card.json": "xyz"}),
    # post-processing
    "post wrong kind": _set("postprocessing", _post(kind="reject_option")),
    "post not an object": _set("postprocessing", "group_threshold"),
    "post numeric feature": _set("postprocessing", _post(feature="age")),
    "post unknown feature": _set("postprocessing", _post(feature="race")),
    "post unknown key": _set("postprocessing", _post(seed=3)),
    "post empty groups": _set("postprocessing", _post(groups={})),
    "post group not a category": _set("postprocessing", _post(groups={"Other": dict(RULE)})),
    "post bad version": _set("postprocessing", _post(version=2)),
    "post version bool": _set("postprocessing", _post(version=True)),
    "post constraints not a string": _set("postprocessing", _post(constraints=["dp"])),
    "post missing default": _set("postprocessing", _post(default=None)),
    "post rule missing key": _set("postprocessing", _post(groups={"Male": {"p0": 1.0}})),
    "post rule unknown key": _set("postprocessing", _post(groups={"Male": {**RULE, "p2": 0.1}})),
    "post p0 above one": _set("postprocessing", _post(groups={"Male": {**RULE, "p0": 1.5}})),
    "post p negative": _set("postprocessing", _post(groups={"Male": {**RULE, "p1": -0.1}})),
    "post p sum above one": _set(
        "postprocessing", _post(groups={"Male": {**RULE, "p0": 0.7, "p1": 0.7}})
    ),
    "post threshold nan": _set(
        "postprocessing", _post(groups={"Male": {**RULE, "t0": float("nan")}})
    ),
    "post threshold bool": _set("postprocessing", _post(groups={"Male": {**RULE, "t0": True}})),
    "post bad operator": _set("postprocessing", _post(groups={"Male": {**RULE, "op0": ">="}})),
    "post p_ignore alone": _set(
        "postprocessing", _post(groups={"Male": {**RULE, "p_ignore": 0.2}})
    ),
    "post p_ignore above one": _set(
        "postprocessing",
        _post(groups={"Male": {**RULE, "p_ignore": 1.2, "prediction_constant": 0.5}}),
    ),
    "post positive_label bool": _set("postprocessing", _post(positive_label=True)),
    "post positive_label two": _set("postprocessing", _post(positive_label=2)),
    "post positive_label float": _set("postprocessing", _post(positive_label=1.0)),
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_manifest_is_refused(mutate: Mutation) -> None:
    doc = manifest_doc()
    mutate(doc)
    with pytest.raises(ManifestError):
        parse_manifest(doc)


@pytest.mark.parametrize("doc", [None, [], "manifest", 3])
def test_non_object_document_is_refused(doc: Any) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(doc)


def test_postprocessing_needs_a_binary_model() -> None:
    doc = manifest_doc(postprocessing=_post(), labels=["a", "b", "c"])
    doc["architecture"]["output_dim"] = 3
    with pytest.raises(ManifestError, match="binary"):
        parse_manifest(doc)


def test_postprocessing_accepts_fairlearn_extensions() -> None:
    rule = {**RULE, "op1": "<", "p_ignore": 0.25, "prediction_constant": 0.4}
    m = parse_manifest(manifest_doc(postprocessing=_post(groups={"Male": rule})))
    assert m.postprocessing is not None and m.postprocessing["groups"]["Male"]["op1"] == "<"


def test_postprocessing_as_the_fairness_domain_writes_it() -> None:
    spec = _post(version=1, constraints="demographic_parity")
    m = parse_manifest(manifest_doc(postprocessing=spec))
    assert m.postprocessing is not None and m.postprocessing["constraints"] == "demographic_parity"


def test_logreg_ignores_hidden_and_parses() -> None:
    doc = manifest_doc()
    doc["architecture"] = {"kind": "logreg", "input_dim": INPUT_DIM, "output_dim": 2}
    assert parse_manifest(doc).architecture.hidden == ()


def test_error_never_echoes_an_attacker_file_name() -> None:
    doc = manifest_doc()
    doc["files"] = {"../../secret\x1b[2J": ZERO_SHA}
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert "secret" not in str(info.value)
