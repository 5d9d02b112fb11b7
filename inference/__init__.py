"""The inference core: pure PyTorch. It imports nothing from ``governance``.

An artifact is a folder holding ``manifest.json`` (schema, preprocessing, labels, hashes) and
``weights.safetensors``. :func:`inference.artifact.read_manifest` verifies the hashes and
:func:`inference.artifact.load_weights` never unpickles; :class:`inference.model.LoadedModel`
turns raw JSON records into probabilities; :class:`inference.batcher.MicroBatcher` merges
concurrent requests into one forward pass; :class:`inference.registry.ModelHost` holds the
serving versions.

The names below load on first use (PEP 562), so that a submodule without torch (the manifest,
the errors) can be imported without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.architectures import build_model
    from inference.artifact import artifact_digest, load_weights, read_manifest, save_artifact
    from inference.batcher import BatcherStats, MicroBatcher
    from inference.device import select_device
    from inference.errors import (
        BatcherClosedError,
        BatcherError,
        BatcherOverloadedError,
        DeviceError,
        ForwardError,
        InferenceError,
        InputValidationError,
        ManifestError,
        ModelNotLoadedError,
    )
    from inference.manifest import Manifest, parse_manifest
    from inference.model import LoadedModel, Prediction
    from inference.preprocessing import encode_columns, encode_records
    from inference.registry import HostedModel, ModelHost

_WHERE = {
    "build_model": "architectures",
    "artifact_digest": "artifact",
    "load_weights": "artifact",
    "read_manifest": "artifact",
    "save_artifact": "artifact",
    "BatcherStats": "batcher",
    "MicroBatcher": "batcher",
    "select_device": "device",
    "BatcherClosedError": "errors",
    "BatcherError": "errors",
    "BatcherOverloadedError": "errors",
    "DeviceError": "errors",
    "ForwardError": "errors",
    "InferenceError": "errors",
    "InputValidationError": "errors",
    "ManifestError": "errors",
    "ModelNotLoadedError": "errors",
    "Manifest": "manifest",
    "parse_manifest": "manifest",
    "LoadedModel": "model",
    "Prediction": "model",
    "encode_columns": "preprocessing",
    "encode_records": "preprocessing",
    "HostedModel": "registry",
    "ModelHost": "registry",
}

__all__ = [
    "BatcherClosedError",
    "BatcherError",
    "BatcherOverloadedError",
    "BatcherStats",
    "DeviceError",
    "ForwardError",
    "HostedModel",
    "InferenceError",
    "InputValidationError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "MicroBatcher",
    "ModelHost",
    "ModelNotLoadedError",
    "Prediction",
    "artifact_digest",
    "build_model",
    "encode_columns",
    "encode_records",
    "load_weights",
    "parse_manifest",
    "read_manifest",
    "save_artifact",
    "select_device",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
