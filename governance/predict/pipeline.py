"""The predict path, top to bottom: authorize, validate, infer, seal, record and audit, respond.

One :class:`PredictCall` carries what the call has established; each step is a small function
that reads it and fills in more. Authorization is the route's guard, which FastAPI runs before
:func:`run`; the body is read only after it, so a caller without a key or the right learns
nothing about how their body would have been judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import torch
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from governance.audit.canonical import canonical_bytes
from governance.audit.journal.guard import GuardedJournal
from governance.audit.writer import StaleWrite
from governance.errors import NotFound, PayloadTooLarge, ServiceUnavailable, Unprocessable
from governance.kit import tracing
from governance.kit.context import Context
from governance.kit.events import AuditEvent
from governance.kit.request_facts import RequestFacts, facts_of
from governance.kit.slots import Slot
from governance.predict.recording import PreparedRecord, Recorder
from governance.predict.schemas import PredictRequest
from governance.predict.tiebreak import subject_draw, tie_break_key
from governance.records.recorder import RecordStore, subject_of
from governance.vault.blind_index import digest
from governance.vault.providers import ServiceKeyProvider
from inference.errors import (
    BatcherClosedError,
    BatcherOverloadedError,
    InputValidationError,
    ModelNotLoadedError,
)
from inference.registry import ModelHost

# Names the draw's derivation in the audit entry: HMAC of (model, subject_ref) under the key
# derived from the blind-index key (governance.predict.tiebreak).
TIE_BREAK = "hmac-sha256/subject/1"


class ModelNotServing(NotFound):
    type_slug = "model-not-serving"


class ModelBusy(ServiceUnavailable):
    type_slug = "model-busy"


class InvalidRecord(Unprocessable):
    type_slug = "invalid-record"
    title = "Invalid record"


class Caller(Protocol):
    """Who calls, as the route's guard established it (``governance.api.deps.Caller``)."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def ctx(self) -> Context: ...


@dataclass(frozen=True)
class Predictor:
    """What the predict path works with, built by the wiring point (under :data:`PREDICTOR`)."""

    host: ModelHost
    journal: GuardedJournal
    recorder: Recorder
    records: RecordStore  # the subjects' blind indexes, for the tie-break draw
    keys: ServiceKeyProvider
    digest_key: bytes
    max_batch_records: int


PREDICTOR: Slot[Predictor] = Slot("predictor")


@dataclass(slots=True)
class PredictCall:
    """One prediction as it crosses the pipeline: who asks, what, and what each step found."""

    caller: Caller  # who: principal, roles, key id, and the context entries are stamped with
    model: str
    facts: RequestFacts
    rows: list[Any] = field(default_factory=list)  # records, or tensor inputs
    tensor: bool = False  # the body sent tensor inputs
    subject_id: str | None = None
    model_version: str = ""
    predictions: list[dict[str, Any]] = field(default_factory=list)
    draw: float | None = None  # the subject's tie-break draw, for a mitigated model
    request_json: bytes = b""
    response_json: bytes = b""
    input_digest: str = ""
    output_digest: str = ""
    record_id: str | None = None
    data_key_id: str | None = None
    audit_seq: int | None = None

    @property
    def policy_version(self) -> int | None:
        return self.caller.ctx.policy_version

    @property
    def decision(self) -> str:
        return "allow"  # the guard let the call through, or it would not be here

    @property
    def request_id(self) -> str:
        return self.facts.request_id or ""


async def run(predictor: Predictor, request: Request, caller: Caller, model: str) -> Response:
    """Serve one authorized predict call."""
    call = PredictCall(caller=caller, model=model, facts=facts_of(request.scope))
    await validate(predictor, call, request)
    # Child spans of the request's (a no-op while tracing is off): names and counts only.
    with tracing.span("warden.infer", {"warden.model": model}) as span:
        await infer(predictor, call)
        if span is not None:
            span.set_attributes(
                {"warden.model_version": call.model_version, "warden.records": len(call.rows)}
            )
    with tracing.span("warden.seal"):
        seal(predictor, call)
    await record_and_audit(predictor, call)
    return respond(call)


# Validate


def _is_json(content_type: str) -> bool:
    # As FastAPI: application/json or any application/*+json, parameters ignored.
    media = content_type.split(";", 1)[0].strip().lower()
    if not media.startswith("application/"):
        return False
    subtype = media[len("application/") :]
    return subtype == "json" or subtype.endswith("+json")


def _body_error(kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message, "input": None}])


async def read_body(request: Request) -> PredictRequest:
    """The body, parsed and validated once, with FastAPI's errors for a body it would refuse.

    Raises:
        RequestValidationError: no body, not JSON, or not a valid PredictRequest (422).
        HTTPException: 400, the client went away before its body was whole (nobody receives
            it, but the call is audited with it).
    """
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise HTTPException(400, "There was an error parsing the body") from None
    if not raw:
        raise _body_error("missing", "Field required")
    content_type = request.headers.get("content-type")
    if content_type is None or not _is_json(content_type):
        raise _body_error("model_attributes_type", "the body must be application/json")
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**err, "loc": ("body", *err.get("loc", ()))}
                for err in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


async def validate(predictor: Predictor, call: PredictCall, request: Request) -> None:
    """Read the body and check the batch limit."""
    body = await read_body(request)
    call.rows = body.rows()
    call.tensor = body.tensor
    call.subject_id = body.subject_id
    limit = predictor.max_batch_records
    if len(call.rows) > limit:
        raise PayloadTooLarge(f"a batch holds at most {limit} records")


# Infer


def _subject_ref(predictor: Predictor, call: PredictCall) -> str:
    principal = call.caller.name
    subject = subject_of(subject_id=call.subject_id, principal=principal)
    return predictor.records.subject_ref(subject, principal=principal)


def _check_input_kind(call: PredictCall, takes_tensor: bool) -> None:
    if takes_tensor and not call.tensor:
        raise InvalidRecord(
            f"model {call.model!r} takes a tensor: send 'inputs' (GET /v1/models/"
            f"{call.model}/schema shows its dtype and shape)"
        )
    if call.tensor and not takes_tensor:
        raise InvalidRecord(
            f"model {call.model!r} takes named features: send 'record' or 'records', not 'inputs'"
        )


async def infer(predictor: Predictor, call: PredictCall) -> None:
    """Validate, encode and predict through the model's micro-batcher.

    The lease keeps this model version's batcher open until the request is done, even if a
    promotion swaps in another version meanwhile. A model with randomized thresholds decides
    with the subject's keyed draw, kept for the audit entry.
    """
    name, rows = call.model, call.rows
    try:
        lease = predictor.host.lease(name)
    except ModelNotLoadedError:
        raise ModelNotServing(f"model {name!r} is not serving") from None
    with lease as served:
        call.model_version = served.version
        call.facts.model_version = served.version
        call.facts.resource = {"model": name, "version": served.version}
        _check_input_kind(call, served.model.manifest.input_tensor is not None)
        try:
            x = served.model.encode(rows)
        except InputValidationError as exc:
            where = (
                f"input {exc.record}"
                if call.tensor
                else f"record {exc.record}, field {exc.field!r}"
            )
            raise InvalidRecord(
                f"{where}: {exc.message}", extra={"record": exc.record, "field": exc.field}
            ) from None
        try:
            probs = await served.batcher.submit(x)
        except (BatcherOverloadedError, BatcherClosedError):
            raise ModelBusy("the model is overloaded or restarting; retry shortly") from None
        if served.model.manifest.postprocessing is None:
            predictions = served.model.decide(rows, x, probs)
        else:
            key = tie_break_key(predictor.keys.blind_index_key())
            call.draw = subject_draw(key, model=name, subject_ref=_subject_ref(predictor, call))
            uniforms = torch.full((len(rows),), call.draw, dtype=torch.float64)
            predictions = served.model.decide(rows, x, probs, uniforms)
    call.predictions = [{"label": p.label, "probabilities": p.probabilities} for p in predictions]


# Seal


def seal(predictor: Predictor, call: PredictCall) -> None:
    """Encode each document once, canonically: the same bytes are sealed into the record and
    digested into the audit entry."""
    call.request_json = canonical_bytes({"inputs" if call.tensor else "records": call.rows})
    call.response_json = canonical_bytes({"predictions": call.predictions})
    call.input_digest = digest(predictor.digest_key, call.request_json)
    call.output_digest = digest(predictor.digest_key, call.response_json)


# Record and audit


async def _prepare(predictor: Predictor, call: PredictCall) -> PreparedRecord:
    return await predictor.recorder.prepare(
        ctx=call.caller.ctx,
        principal=call.caller.name,
        model=call.model,
        model_version=call.model_version,
        subject_id=call.subject_id,
        request_id=call.request_id,
        request_json=call.request_json,
        response_json=call.response_json,
        row_count=len(call.rows),
    )


def audit_event(call: PredictCall, data_key_id: str | None) -> AuditEvent:
    """The call's ``api.call`` entry, written with its encrypted record."""
    ctx = call.caller.ctx
    details: dict[str, Any] = {"records": len(call.rows)}
    if call.draw is not None:
        details["tie_break"] = {"u": call.draw, "scheme": TIE_BREAK}
    return AuditEvent(
        event_type="api.call",
        action="predict",
        actor=ctx.actor,
        source=ctx.source,
        resource={
            "model": call.model,
            "version": call.model_version,
            "object": f"model:{call.model}",
            "action": "predict",
        },
        decision=call.decision,
        reason=call.facts.reason or "",
        policy_version=call.policy_version,
        model_version=call.model_version,
        outcome=200,
        request_id=call.request_id,
        input_digest=call.input_digest,
        output_digest=call.output_digest,
        data_key_id=data_key_id,
        details=details,
    )


async def record_and_audit(predictor: Predictor, call: PredictCall) -> None:
    """Seal the record and append the entry, durable together before the answer.

    A replica that sealed under a key another one erased meanwhile learns it when the record is
    stored: it seals once more under the subject's fresh key (not a 503).
    """
    for attempt in (1, 2):
        with tracing.span("warden.seal.record"):
            prepared = await _prepare(predictor, call)
        try:
            with tracing.span("warden.audit.write"):
                seqs = await predictor.journal.append(
                    [audit_event(call, prepared.data_key_id)], prepared.row
                )
        except StaleWrite:
            if attempt == 2:
                raise
            continue
        call.record_id = prepared.record_id
        call.data_key_id = prepared.data_key_id
        call.audit_seq = seqs[0]
        call.facts.audited = True
        return


# Respond


def respond(call: PredictCall) -> Response:
    """The PredictResponse document. Every field comes from this process (ids, the model's own
    labels and floats), so it is serialised once, not validated again (tests/predict check it)."""
    document = {
        "request_id": call.request_id,
        "model": call.model,
        "model_version": call.model_version,
        "predictions": call.predictions,
        "audit_seq": call.audit_seq,
        "record_id": call.record_id,
    }
    return Response(orjson.dumps(document), media_type="application/json")
