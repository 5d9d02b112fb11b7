"""Saving and loading model artifacts: safetensors weights plus a JSON manifest.

Loading verifies the sha256 of every file the manifest names before it reads the weights, and
reads weights with safetensors only: an artifact can never execute code (no pickle). The weights
are hashed and parsed from the same bytes, so a file swapped between the check and the load is
caught.

The manifest names the sha256 of every other file, so the sha256 of ``manifest.json`` itself
(:func:`artifact_digest`) pins the whole artifact. The model registry records it at registration
and passes it back as ``expected_sha256`` when loading: then a manifest edited on disk (labels,
scaling statistics) is refused too, not only a changed weights file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from inference.architectures import build_model
from inference.errors import ManifestError
from inference.manifest import MANIFEST_FILE, SHA256_RE, WEIGHTS_FILE, Manifest, parse_manifest

__all__ = [
    "MANIFEST_FILE",
    "MAX_MANIFEST_BYTES",
    "WEIGHTS_FILE",
    "artifact_digest",
    "load_weights",
    "read_manifest",
    "save_artifact",
    "sha256_file",
]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def save_artifact(
    out_dir: str | Path,
    module: nn.Module,
    manifest: Manifest | dict[str, Any],
    *,
    extra_files: dict[str, bytes] | None = None,
) -> Manifest:
    """Write an artifact folder.

    Args:
        out_dir: the folder to create (it may exist and be empty).
        module: the trained module; its ``state_dict`` is saved (CPU, contiguous).
        manifest: the manifest, typed or as a document; its ``weights`` and ``files`` are
            filled in here.
        extra_files: further files to store and hash (``model_card.json``, plots).

    Returns:
        The parsed manifest as written.

    Raises:
        ManifestError: when the manifest does not describe the module, or an extra file name is
            not a plain file name (nothing is written then).
    """
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    weights = save_safetensors(state)
    return write_artifact(
        out_dir,
        manifest,
        weights_file=WEIGHTS_FILE,
        weights=weights,
        extra_files=extra_files,
        check=lambda parsed: _check_shapes(parsed, state),
    )


def write_artifact(
    out_dir: str | Path,
    manifest: Manifest | dict[str, Any],
    *,
    weights_file: str,
    weights: bytes,
    extra_files: dict[str, bytes] | None = None,
    check: Callable[[Manifest], None] | None = None,
) -> Manifest:
    """Pin ``weights`` and the extra files in the manifest, validate it, then write them all.

    Raises:
        ManifestError: the manifest is invalid or fails ``check`` (nothing is written then).
    """
    extras = dict(sorted((extra_files or {}).items()))
    doc = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    doc["weights"] = {"file": weights_file, "sha256": hashlib.sha256(weights).hexdigest()}
    doc["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in extras.items()}
    # Validate everything before the first write: an extra file named "../x" must never land.
    parsed = parse_manifest(doc)
    if check is not None:
        check(parsed)
    try:
        # Strict JSON: read_manifest refuses NaN/Infinity, so refuse to write them.
        manifest_bytes = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ManifestError("manifest is not serialisable as strict JSON") from exc
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_FILE} would be larger than {MAX_MANIFEST_BYTES} bytes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / weights_file, weights)
    for name, data in extras.items():
        _write_atomic(out / name, data)
    # The manifest goes last: a crash midway leaves no manifest, so nothing half-written loads.
    _write_atomic(out / MANIFEST_FILE, manifest_bytes)
    return parsed


def artifact_digest(artifact_dir: str | Path) -> str:
    """The sha256 of ``manifest.json``, which pins every file of the artifact.

    Args:
        artifact_dir: the artifact folder.

    Returns:
        64 lowercase hex characters.

    Raises:
        ManifestError: when the manifest is missing or unreadable.
    """
    return hashlib.sha256(_read_manifest_bytes(Path(artifact_dir))).hexdigest()


def _read_manifest_bytes(root: Path) -> bytes:
    path = root / MANIFEST_FILE
    try:
        if not path.is_file():
            raise ManifestError(f"{MANIFEST_FILE} not found in the artifact")
        with path.open("rb") as fh:
            # Read one byte past the limit rather than trusting stat() on a file that may grow.
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{MANIFEST_FILE} could not be read") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")
    return data


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON; a manifest must be strict JSON.
    raise ValueError(f"non-standard JSON constant {name}")


def read_manifest(artifact_dir: str | Path, *, expected_sha256: str | None = None) -> Manifest:
    """Read and validate ``manifest.json`` and the hashes of every file it names.

    Args:
        artifact_dir: the artifact folder.
        expected_sha256: the :func:`artifact_digest` recorded when the artifact was registered;
            when given, a manifest whose bytes differ is refused.

    Returns:
        The parsed manifest.

    Raises:
        ManifestError: missing, oversized, unparsable or inconsistent manifest, a manifest that
            does not match ``expected_sha256``, or a file that does not match its hash.
    """
    root = Path(artifact_dir)
    data = _read_manifest_bytes(root)
    if expected_sha256 is not None:
        if not SHA256_RE.fullmatch(expected_sha256):
            raise ManifestError("expected_sha256 must be 64 lowercase hex characters")
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ManifestError(f"{MANIFEST_FILE} does not match the registered digest")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ManifestError(f"{MANIFEST_FILE} is not valid UTF-8 JSON") from exc
    manifest = parse_manifest(doc)
    named = [(manifest.weights_file, manifest.weights_sha256), *manifest.files.items()]
    for name, expected in named:
        file = root / name
        if not file.is_file():
            raise ManifestError(f"artifact file {name!r} is missing")
        if sha256_file(file) != expected:
            raise ManifestError(f"artifact file {name!r} does not match its sha256 in the manifest")
    return manifest


def _check_shapes(manifest: Manifest, state: dict[str, torch.Tensor]) -> None:
    expected = build_model(manifest.architecture).state_dict()
    if set(expected) != set(state):
        raise ManifestError("weights do not match the architecture (parameter names differ)")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ManifestError(f"weights do not match the architecture (shape of {key})")
        if state[key].dtype != tensor.dtype:
            raise ManifestError(f"weights do not match the architecture (dtype of {key})")


def load_weights(artifact_dir: str | Path, manifest: Manifest) -> nn.Module:
    """Build the module and load verified weights into it (CPU, eval mode).

    The file is read once; its sha256 is checked against the manifest and the same bytes are
    parsed, so the check cannot be raced by swapping the file.

    Args:
        artifact_dir: the artifact folder.
        manifest: the manifest from :func:`read_manifest`.

    Returns:
        The module in eval mode on the CPU.

    Raises:
        ManifestError: when the weights do not match their hash, cannot be parsed or do not fit
            the architecture.
    """
    try:
        data = (Path(artifact_dir) / manifest.weights_file).read_bytes()
    except OSError as exc:
        raise ManifestError("weights file could not be read") from exc
    if hashlib.sha256(data).hexdigest() != manifest.weights_sha256:
        raise ManifestError("weights file does not match its sha256 in the manifest")
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ManifestError("weights file is not a valid safetensors file") from exc
    _check_shapes(manifest, state)
    module = build_model(manifest.architecture)
    module.load_state_dict(state, strict=True)
    return module.eval()
