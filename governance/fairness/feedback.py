"""True outcomes of served predictions, kept for live fairness monitoring.

A client that made a prediction later reports its true label with the request id
(``POST /v1/feedback``). Monitoring needs three things per prediction: the served decision,
the true outcome and the sensitive attributes. The decision and the attributes are not taken
from the caller: the records service opens the stored, encrypted record of the request, so a
client cannot misreport what the model decided or who the decision was about. Attributes the
model does not receive as input (a model trained without ``sex`` may still be audited by
``sex``) can be given in the body; attributes derivable from the input cannot.

What is stored is minimal and pseudonymous: the model version, the prediction time truncated
to the minute, the two 0/1 labels and the sensitive values. No request id, record id or subject
reference: ``ref`` is an HMAC under the service's digest key that only blocks a second outcome
for the same prediction. Erasing the subject later destroys the record; the outcome row keeps
no link to it. Nothing of the plaintext reaches logs, errors or the audit log.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.datasets.declaration import BUNDLED_DIR, DatasetSchema, load_schema
from governance.fairness.errors import (
    DuplicateFeedback,
    FeedbackRefused,
    PredictionNotFound,
)
from governance.fairness.models import Outcome
from governance.kit.context import Context
from governance.records.service import RecordKeys, ServedPrediction, ServedRow, records
from governance.registry.errors import ModelNotFound
from governance.registry.service import registry
from inference.errors import ManifestError
from inference.manifest import Manifest, parse_manifest

PURPOSE: Final[str] = "fairness monitoring: outcome of a served prediction"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_VALUE_LENGTH: Final[int] = 64


def group_key(values: Mapping[str, str]) -> str:
    """The canonical JSON of a prediction's sensitive values (what monitoring groups by)."""
    return json.dumps(dict(sorted(values.items())), separators=(",", ":"), ensure_ascii=False)


def to_minute(moment: datetime) -> datetime:
    """``moment`` truncated to the minute: coarse enough not to single out one record."""
    return moment.replace(second=0, microsecond=0)


@lru_cache(maxsize=16)
def _bundled_schema(name: str) -> DatasetSchema | None:
    path = BUNDLED_DIR / name / "schema.yaml"
    if not _NAME_RE.fullmatch(name) or not path.is_file():
        return None
    return load_schema(path)


def training_schema(manifest: Manifest) -> DatasetSchema | None:
    """The schema of the dataset the model was trained on, when Warden knows it."""
    dataset = manifest.training.get("dataset")
    name = dataset.get("name") if isinstance(dataset, Mapping) else None
    return _bundled_schema(name) if isinstance(name, str) else None


def derive_sensitive(schema: DatasetSchema | None, record: Mapping[str, Any]) -> dict[str, str]:
    """The sensitive attributes a request's own input determines, as the dataset defines them.

    A categorical attribute is the input's value; a binned one (``age_group``) is the label of
    the public bin holding the number (bins are closed on the left, as in the audit).
    """
    if schema is None:
        return {}
    out: dict[str, str] = {}
    for spec in schema.sensitive:
        if spec.column not in record:
            continue
        value = record[spec.column]
        if spec.bins:
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            position = bisect.bisect_right(list(spec.bins), float(value)) - 1
            if 0 <= position < len(spec.labels):
                out[spec.name] = spec.labels[position]
        elif isinstance(value, str):
            out[spec.name] = value
    return out


class FeedbackService:
    """Joins reported outcomes to the served decisions; stateless."""

    def record(
        self,
        session: Session,
        ctx: Context,
        *,
        keys: RecordKeys,
        digest_key: bytes,
        principal: str,
        request_id: str,
        label: str,
        row: int = 0,
        sensitive: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Store the true outcome of row ``row`` of ``principal``'s own prediction ``request_id``.

        ``sensitive`` gives only attributes that the request's input does not determine;
        ``digest_key`` keys the reference that refuses a second outcome for the same row.

        Raises:
            PredictionNotFound: no stored prediction with that id made by ``principal``.
            DuplicateFeedback: that prediction already has an outcome.
            FeedbackRefused: unknown label, row out of range, or a bad sensitive attribute.
            KeyDestroyed: the prediction's subject was erased (410).
        """
        stored = records.served(session, request_id=request_id, principal=principal)
        if stored is None:
            raise PredictionNotFound("no stored prediction with that request id for this caller")
        if isinstance(row, bool) or not 0 <= row < stored.row_count:
            raise FeedbackRefused(f"row must be between 0 and {stored.row_count - 1}")
        ref = records.served_row_ref(digest_key, request_id, row)
        if session.scalar(select(Outcome.id).where(Outcome.ref == ref)) is not None:
            raise DuplicateFeedback("that prediction already has its outcome")
        manifest = self._manifest(session, stored.model, stored.model_version)
        if label not in manifest.labels:
            raise FeedbackRefused(
                f"label must be one of the model's labels {list(manifest.labels)}"
            )
        from governance.fairness._evaluation import positive_label

        positive = positive_label(manifest)
        served = self._open(session, keys, stored, row)
        values = self._sensitive(manifest, served.input, sensitive or {})
        outcome = Outcome(
            ref=ref,
            model=stored.model,
            model_version=stored.model_version,
            predicted_at=to_minute(stored.created_at),
            y_pred=int(served.label == positive),
            y_true=int(label == positive),
            group_key=group_key(values),
            submitted_by=principal[:64],
        )
        session.add(outcome)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "fairness.feedback",
                    "feedback",
                    resource={"model": stored.model, "version": stored.model_version},
                    model_version=stored.model_version,
                    data_key_id=stored.dek_id,
                    details={
                        "purpose": PURPOSE,
                        "prediction_request_id": request_id,
                        "record_id": stored.record_id,
                        "row": row,
                        "attributes": sorted(values),
                    },
                )
            ],
        )
        return outcome

    def _manifest(self, session: Session, model: str, version: str) -> Manifest:
        try:
            row = registry.get(session, model, version)
            return parse_manifest(json.loads(row.manifest))
        except (ModelNotFound, ManifestError, ValueError):
            raise PredictionNotFound(
                "the model version of that prediction is no longer registered"
            ) from None

    def _open(
        self, session: Session, keys: RecordKeys, stored: ServedPrediction, row: int
    ) -> ServedRow:
        rows = records.served_rows(session, keys, stored)  # KeyDestroyed (410) after an erasure
        if rows is None:
            raise PredictionNotFound("the stored prediction cannot be opened")
        if row >= len(rows):
            raise FeedbackRefused("row is not in the stored prediction")
        return rows[row]

    def _sensitive(
        self, manifest: Manifest, request_row: Mapping[str, Any], given: Mapping[str, str]
    ) -> dict[str, str]:
        schema = training_schema(manifest)
        derived = derive_sensitive(schema, request_row)
        declared = {s.name for s in schema.sensitive} if schema is not None else None
        values = dict(derived)
        for name, value in given.items():
            if not _NAME_RE.fullmatch(name):
                raise FeedbackRefused("sensitive attribute names are plain identifiers")
            if name in derived:
                raise FeedbackRefused(
                    f"sensitive attribute {name!r} comes from the prediction's own input; "
                    "do not send it"
                )
            if declared is not None and name not in declared:
                raise FeedbackRefused(
                    f"the model's dataset declares no sensitive attribute {name!r}"
                )
            if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE_LENGTH:
                raise FeedbackRefused(
                    f"sensitive attribute {name!r} must be a string of 1 to "
                    f"{MAX_VALUE_LENGTH} characters"
                )
            values[name] = value
        return values


feedback = FeedbackService()
