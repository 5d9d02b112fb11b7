"""The inference core: pure PyTorch. It imports nothing from ``governance``.

An artifact is a folder holding ``manifest.json`` (schema, preprocessing, labels, hashes) and
``weights.safetensors``. :func:`inference.artifact.read_manifest` verifies the hashes and
:func:`inference.artifact.load_weights` never unpickles; :class:`inference.model.LoadedModel`
turns raw JSON records into probabilities; :class:`inference.batcher.MicroBatcher` merges
concurrent requests into one forward pass; :class:`inference.registry.ModelHost` holds the
serving versions.
"""

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
