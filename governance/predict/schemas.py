"""API schemas of the predict path."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PredictRequest(BaseModel):
    """One record (``record``) or a batch (``records``), or for a model that takes a tensor a
    batch of ``inputs``, and optionally the data subject."""

    model_config = ConfigDict(extra="forbid")
    record: dict[str, Any] | None = None
    records: list[dict[str, Any]] | None = None
    inputs: list[Any] | None = Field(
        default=None,
        description="For a model whose input is a tensor (GET /v1/models/{name}/schema says "
        "which): one nested list per example, shaped as the tensor without its batch dimension.",
    )
    subject_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Whose data this is. Records are encrypted under that subject's key, so "
        "erasing the subject erases them; without it, the caller's own key is used.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        given = [x for x in (self.record, self.records, self.inputs) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'record', 'records' or 'inputs'")
        if self.records == [] or self.inputs == []:
            raise ValueError("'records' and 'inputs' must not be empty")
        return self

    @property
    def tensor(self) -> bool:
        """Whether the body holds tensor ``inputs`` rather than records."""
        return self.inputs is not None

    def rows(self) -> list[Any]:
        """The records, or the tensor inputs, one per example."""
        if self.inputs is not None:
            return list(self.inputs)
        return [self.record] if self.record is not None else list(self.records or [])


class PredictionOut(BaseModel):
    """One record's label and the probability of each label."""

    label: str
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    """The predictions, the request id and the audit entry that records the call."""

    request_id: str
    model: str
    model_version: str
    predictions: list[PredictionOut]
    audit_seq: int
    record_id: str | None = None


class ModelSchema(BaseModel):
    """What a caller sends to a serving model: the record's fields and an example request.

    Read with the predict permission: nothing here but what a request must look like (no
    training data statistics, no provenance, no hashes).
    """

    model: str
    model_version: str = Field(description="the serving version, which predictions now use")
    labels: list[str] = Field(description="what a prediction may answer")
    features: list[dict[str, Any]] = Field(
        description="the manifest's input_schema.features: each field's name, type, "
        "categories and public bounds (empty for a tensor input)"
    )
    input: dict[str, Any] = Field(
        description="what the model takes: {kind: features} (send record or records), or "
        "{kind: tensor, dtype, shape} with the batch dimension null (send inputs)"
    )
    record_schema: dict[str, Any] = Field(
        description="JSON Schema (2020-12) of one record, or of one tensor input, as the "
        "predict route checks it"
    )
    example: dict[str, Any] = Field(
        description="a request body the model accepts: POST it to /v1/models/{name}/predict"
    )
