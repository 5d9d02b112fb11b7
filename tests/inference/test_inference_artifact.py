"""Artifacts round-trip, and every tampering is refused with ManifestError without executing."""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from inference_factories import manifest_doc, random_records, seeded_module, write_artifact

from inference.artifact import (
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    WEIGHTS_FILE,
    artifact_digest,
    load_weights,
    read_manifest,
    save_artifact,
)
from inference.errors import ManifestError
from inference.manifest import parse_manifest
from inference.model import LoadedModel

CPU = torch.device("cpu")


def _load(root: Path, **kwargs: Any) -> LoadedModel:
    return LoadedModel.load(root, CPU, **kwargs)


def _rewrite_manifest(root: Path, change: Any) -> None:
    doc = json.loads((root / MANIFEST_FILE).read_text())
    change(doc)
    (root / MANIFEST_FILE).write_text(json.dumps(doc))


def _point_weights_at_current_file(root: Path) -> None:
    """What an attacker who can write the whole folder does: re-hash the swapped weights."""
    digest = hashlib.sha256((root / WEIGHTS_FILE).read_bytes()).hexdigest()
    _rewrite_manifest(root, lambda doc: doc["weights"].__setitem__("sha256", digest))


class _Payload:
    """Unpickling this touches a marker file: proof of code execution if it ever happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_typed_manifest_saves_the_bytes_its_document_saves(tmp_path: Path) -> None:
    typed = parse_manifest(manifest_doc())
    doc = {k: v for k, v in typed.to_dict().items() if k not in ("weights", "files")}
    module = seeded_module(manifest_doc(), seed=3)
    card = {"model_card.json": b"{}"}
    from_typed = save_artifact(tmp_path / "typed", module, typed, extra_files=card)
    from_doc = save_artifact(tmp_path / "doc", module, doc, extra_files=card)
    assert from_typed == from_doc
    assert artifact_digest(tmp_path / "typed") == artifact_digest(tmp_path / "doc")


def test_round_trip_gives_the_same_probabilities(tmp_path: Path) -> None:
    doc = manifest_doc()
    module = seeded_module(doc, seed=3)
    card = b'{"intended_use": "tests"}'
    written = save_artifact(tmp_path, module, doc, extra_files={"model_card.json": card})
    manifest = read_manifest(tmp_path)
    assert manifest == written
    assert manifest.files == {"model_card.json": hashlib.sha256(card).hexdigest()}
    model = _load(tmp_path)
    records = random_records(torch.Generator().manual_seed(1), 16)
    x = model.encode(records)
    with torch.no_grad():
        expected = torch.softmax(module(x), dim=-1)
    assert torch.equal(model.forward_probabilities(x), expected)
    predictions = model.predict(records)
    assert [p.label for p in predictions] == [
        model.manifest.labels[k] for k in expected.argmax(-1).tolist()
    ]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-6 for p in predictions)


def test_digest_pins_the_manifest(artifact_dir: Path) -> None:
    digest = artifact_digest(artifact_dir)
    assert _load(artifact_dir, expected_sha256=digest).manifest.name == "adult-mlp"
    # A semantic edit that keeps every file hash valid: only the pin can catch it.
    _rewrite_manifest(artifact_dir, lambda doc: doc.__setitem__("labels", [">50K", "<=50K"]))
    assert _load(artifact_dir).manifest.labels == (">50K", "<=50K")
    with pytest.raises(ManifestError, match="registered digest"):
        _load(artifact_dir, expected_sha256=digest)


def test_malformed_pin_is_refused(artifact_dir: Path) -> None:
    with pytest.raises(ManifestError):
        _load(artifact_dir, expected_sha256=artifact_digest(artifact_dir).upper())


def test_tampered_weights_are_refused(artifact_dir: Path) -> None:
    verified = read_manifest(artifact_dir)
    data = bytearray((artifact_dir / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0x01  # one bit in the last float
    (artifact_dir / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256"):
        _load(artifact_dir)
    # Swapped after read_manifest verified it: load_weights hashes the bytes it parses.
    with pytest.raises(ManifestError, match="sha256"):
        load_weights(artifact_dir, verified)


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc["weights"].__setitem__("sha256", "1" * 64),
        lambda doc: doc["architecture"].__setitem__("hidden", [9]),
        lambda doc: doc["architecture"].__setitem__("kind", "logreg"),
        lambda doc: doc.__setitem__("format", "warden.model/0"),
        lambda doc: doc["files"].__setitem__("model_card.json", "2" * 64),
        lambda doc: doc["files"].__setitem__("plot.png", "3" * 64),
    ],
    ids=["weights sha", "hidden width", "kind", "format", "extra sha", "missing extra"],
)
def test_tampered_manifest_is_refused(artifact_dir: Path, change: Any) -> None:
    _rewrite_manifest(artifact_dir, change)
    with pytest.raises(ManifestError):
        _load(artifact_dir)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe", b'{"format": NaN}', b"[" * 100_000, b""],
    ids=["broken", "not utf8", "nan constant", "deep nesting", "empty"],
)
def test_unparsable_manifest_is_refused(artifact_dir: Path, content: bytes) -> None:
    (artifact_dir / MANIFEST_FILE).write_bytes(content)
    with pytest.raises(ManifestError):
        _load(artifact_dir)


def test_oversized_manifest_is_refused(artifact_dir: Path) -> None:
    (artifact_dir / MANIFEST_FILE).write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ManifestError, match="larger"):
        _load(artifact_dir)


def test_missing_files_are_refused(artifact_dir: Path) -> None:
    (artifact_dir / "model_card.json").unlink()
    with pytest.raises(ManifestError, match="missing"):
        _load(artifact_dir)
    (artifact_dir / MANIFEST_FILE).unlink()
    with pytest.raises(ManifestError, match="not found"):
        _load(artifact_dir)


def test_swapped_extra_file_is_refused(artifact_dir: Path) -> None:
    (artifact_dir / "model_card.json").write_bytes(b'{"a": 2}')
    with pytest.raises(ManifestError, match=r"model_card\.json"):
        _load(artifact_dir)


def test_weights_from_another_model_are_refused(tmp_path: Path, artifact_dir: Path) -> None:
    other = write_artifact(tmp_path / "other", seed=9)
    (artifact_dir / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ManifestError):
        _load(artifact_dir)


def test_truncated_safetensors_is_refused(artifact_dir: Path) -> None:
    data = (artifact_dir / WEIGHTS_FILE).read_bytes()
    (artifact_dir / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError, match="sha256"):
        _load(artifact_dir)
    _point_weights_at_current_file(artifact_dir)
    with pytest.raises(ManifestError, match="safetensors"):
        _load(artifact_dir)


def test_safetensors_with_wrong_shapes_is_refused(artifact_dir: Path) -> None:
    from safetensors.torch import save

    (artifact_dir / WEIGHTS_FILE).write_bytes(save({"net.0.weight": torch.zeros(8, 7)}))
    _point_weights_at_current_file(artifact_dir)
    with pytest.raises(ManifestError, match="architecture"):
        _load(artifact_dir)


def test_pickle_payload_works_when_unpickled(tmp_path: Path) -> None:
    """Control: the payload used below really executes code when a pickle loader meets it."""
    marker = tmp_path / "executed"
    pickle.loads(pickle.dumps(_Payload(marker)))  # noqa: S301 (the point of the test)
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_renamed_to_weights_never_executes(
    tmp_path: Path, artifact_dir: Path, writer: str
) -> None:
    marker = tmp_path / "executed"
    target = artifact_dir / WEIGHTS_FILE
    if writer == "pickle":
        target.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"net.0.weight": _Payload(marker)}, target)
    with pytest.raises(ManifestError, match="sha256"):
        _load(artifact_dir)
    # Even when the manifest is re-hashed to match, safetensors refuses to parse it.
    _point_weights_at_current_file(artifact_dir)
    with pytest.raises(ManifestError, match="safetensors"):
        _load(artifact_dir)
    assert not marker.exists()


def test_save_refuses_bad_extra_names_before_writing(tmp_path: Path) -> None:
    doc = manifest_doc()
    out = tmp_path / "art"
    with pytest.raises(ManifestError):
        save_artifact(out, seeded_module(doc), doc, extra_files={"../escape.txt": b"x"})
    assert not out.exists()
    assert not (tmp_path / "escape.txt").exists()


def test_save_refuses_a_module_that_does_not_fit(tmp_path: Path) -> None:
    doc = manifest_doc()
    other = manifest_doc()
    other["architecture"]["hidden"] = [4]
    with pytest.raises(ManifestError, match="architecture"):
        save_artifact(tmp_path / "art", seeded_module(other), doc)
    assert not (tmp_path / "art").exists()


def test_save_refuses_non_strict_json(tmp_path: Path) -> None:
    doc = manifest_doc(training={"final_loss": float("nan")})
    with pytest.raises(ManifestError, match="strict JSON"):
        save_artifact(tmp_path / "art", seeded_module(doc), doc)
