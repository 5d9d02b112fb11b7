"""Errors of the inference core. The service maps them to problem+json responses.

``inference`` imports nothing from ``governance``, so the root here is a plain ``Exception``; the
service translates these into its ``WardenError`` family at the boundary.
"""

from __future__ import annotations


class InferenceError(Exception):
    """Root of the inference core's errors."""


class ManifestError(InferenceError):
    """A manifest is malformed, or an artifact does not match it (hash, shapes, files)."""


class DeviceError(InferenceError, ValueError):
    """A device preference is malformed or names hardware that is not there.

    It is also a ``ValueError``, which is what ``select_device`` documented first.
    """


class InputValidationError(InferenceError):
    """A record does not match the model's input schema.

    Args:
        record: index of the offending record in the request (0 for a single record).
        field: the feature name that was wrong, or None when the record itself is wrong.
        message: what was wrong, safe to show (never echoes the value).
    """

    def __init__(self, *, record: int, field: str | None, message: str) -> None:
        super().__init__(f"record {record}, field {field!r}: {message}")
        self.record = record
        self.field = field
        self.message = message


class BatcherError(InferenceError):
    """The micro-batcher could not run a request."""


class BatcherClosedError(BatcherError):
    """The batcher is not running: not started yet, or closed (the model was unloaded)."""


class BatcherOverloadedError(BatcherError):
    """Too many rows are queued; the caller should retry later (a 503, fail closed)."""


class ForwardError(BatcherError):
    """The forward pass of the batch holding this request failed; the cause is chained."""


class ModelNotLoadedError(InferenceError):
    """No loaded model (or no serving version) under that name and version."""
