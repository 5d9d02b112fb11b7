"""The predict path's orchestration, kept apart from HTTP so it can be benchmarked alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from governance.api.deps import Caller
from governance.audit.canonical import canonical_bytes
from governance.audit.events import AuditEvent
from governance.audit.writer import StaleWrite
from governance.errors import NotFound, PayloadTooLarge, ServiceUnavailable, Unprocessable
from governance.predict.schemas import PredictRequest
from governance.predict.tiebreak import subject_draw, tie_break_key
from governance.records.recorder import subject_of
from governance.runtime import Runtime
from governance.vault.blind_index import digest
from inference.errors import (
    BatcherClosedError,
    BatcherOverloadedError,
    InputValidationError,
    ModelNotLoadedError,
)
from inference.model import Prediction

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


class PredictService:
    async def _infer(
        self,
        runtime: Runtime,
        name: str,
        rows: list[dict[str, Any]],
        state: Any,
        subject_ref: Callable[[], str],
    ) -> tuple[str, list[Prediction], float | None]:
        """Validate, encode and predict through the model's micro-batcher.

        The lease keeps this model version's batcher open until the request is done, even if
        a promotion swaps in another version meanwhile. A model with randomized thresholds
        decides with the subject's keyed draw, returned for the audit entry.
        """
        try:
            lease = runtime.host.lease(name)
        except ModelNotLoadedError:
            raise ModelNotServing(f"model {name!r} is not serving") from None
        with lease as served:
            state.model_version = served.version
            state.resource = {"model": name, "version": served.version}
            try:
                x = served.model.encode(rows)
            except InputValidationError as exc:
                raise InvalidRecord(
                    f"record {exc.record}, field {exc.field!r}: {exc.message}",
                    extra={"record": exc.record, "field": exc.field},
                ) from None
            try:
                probs = await served.batcher.submit(x)
            except (BatcherOverloadedError, BatcherClosedError):
                raise ModelBusy("the model is overloaded or restarting; retry shortly") from None
            if served.model.manifest.postprocessing is None:
                return served.version, served.model.decide(rows, x, probs), None
            draw = subject_draw(
                tie_break_key(runtime.keys.blind_index_key()), model=name, subject_ref=subject_ref()
            )
            uniforms = torch.full((len(rows),), draw, dtype=torch.float64)
            return served.version, served.model.decide(rows, x, probs, uniforms), draw

    async def run(
        self, runtime: Runtime, caller: Caller, name: str, body: PredictRequest, state: Any
    ) -> dict[str, Any]:
        """Predict, store the sealed record and audit the call; the PredictResponse document."""
        rows = body.rows()
        if len(rows) > runtime.settings.max_batch_records:
            raise PayloadTooLarge(
                f"a batch holds at most {runtime.settings.max_batch_records} records"
            )
        principal = caller.name

        def subject_ref() -> str:
            subject = subject_of(subject_id=body.subject_id, principal=principal)
            return runtime.records.subject_ref(subject, principal=principal)

        version, predictions, draw = await self._infer(runtime, name, rows, state, subject_ref)
        out: list[dict[str, Any]] = [
            {"label": p.label, "probabilities": p.probabilities} for p in predictions
        ]
        # Each document is encoded once, canonically: the same bytes are sealed into the
        # record and digested into the audit entry.
        request_json = canonical_bytes({"records": rows})
        response_json = canonical_bytes({"predictions": out})
        request_id = state.request_id
        input_digest = digest(runtime.digest_key, request_json)
        output_digest = digest(runtime.digest_key, response_json)
        # A replica that sealed under a key another one erased meanwhile learns it when the
        # record is stored: it seals once more under the subject's fresh key (not a 503).
        for attempt in (1, 2):
            prepared = await runtime.recorder.prepare(
                ctx=caller.ctx,
                principal=caller.name,
                model=name,
                model_version=version,
                subject_id=body.subject_id,
                request_id=request_id,
                request_json=request_json,
                response_json=response_json,
                row_count=len(rows),
            )
            event = AuditEvent(
                event_type="api.call",
                action="predict",
                actor=caller.ctx.actor,
                source=caller.ctx.source,
                resource={
                    "model": name,
                    "version": version,
                    "object": f"model:{name}",
                    "action": "predict",
                },
                decision="allow",
                reason=state.reason,
                policy_version=caller.ctx.policy_version,
                model_version=version,
                outcome=200,
                request_id=request_id,
                input_digest=input_digest,
                output_digest=output_digest,
                data_key_id=prepared.data_key_id,
                details=(
                    {"records": len(rows)}
                    if draw is None
                    else {"records": len(rows), "tie_break": {"u": draw, "scheme": TIE_BREAK}}
                ),
            )
            # Durable before we answer; the encrypted record commits in the same transaction.
            try:
                seqs = await runtime.audit.append([event], prepared.row)
            except StaleWrite:
                if attempt == 2:
                    raise
                continue
            break
        state.audited = True
        # Every field comes from this process (ids, the model's own labels and floats): the
        # response is the PredictResponse document, assembled without validating it again.
        return {
            "request_id": request_id,
            "model": name,
            "model_version": version,
            "predictions": out,
            "audit_seq": seqs[0],
            "record_id": prepared.record_id,
        }


predict = PredictService()
