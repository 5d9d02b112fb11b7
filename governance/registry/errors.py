"""Errors of the model registry."""

from __future__ import annotations

from governance.errors import Conflict, NotFound, Unprocessable


class ModelNotFound(NotFound):
    type_slug = "model-not-found"


class InvalidArtifact(Unprocessable):
    type_slug = "invalid-artifact"
    title = "Invalid model artifact"


class UnsafeModelFormat(InvalidArtifact):
    """A pickle or an archive whose loading could run code; the message says how to convert."""

    type_slug = "unsafe-model-format"
    title = "Model format refused"


class StageConflict(Conflict):
    type_slug = "stage-conflict"
    title = "Model stage change refused"
