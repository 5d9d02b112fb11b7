"""Routes for key management: data keys, the KEK, rotations (metadata only, never key material)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import KeysDep, RecordsDep
from governance.api.deps import Authorize, Caller
from governance.db.base import DbBigInt
from governance.errors import BadRequest
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.vault.keys import data_keys
from governance.vault.models import DEK_STATES
from governance.vault.providers import ServiceKeyProvider
from governance.vault.rotation import rotate_kek
from governance.vault.schemas import (
    DataKeyOut,
    DekRotateOut,
    DekRotateRequest,
    KekRotateOut,
    KekRotateRequest,
    KekStatus,
    RotationOut,
)

router = APIRouter(prefix="/v1/vault", tags=["vault"])

CanReadVault = Annotated[Caller, Depends(Authorize("api:vault", "read"))]
CanRotateKeys = Annotated[Caller, Depends(Authorize("api:vault", "rotate"))]


@router.get("/keys", responses=responses(422))
def list_data_keys(
    caller: CanReadVault,
    session: TransactionDep,
    subject_ref: str | None = None,
    state: str | None = Query(default=None, pattern="^(" + "|".join(DEK_STATES) + ")$"),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: Annotated[DbBigInt, Query(ge=0)] = 0,
) -> list[DataKeyOut]:
    """List data keys (ids, versions, states, KEK versions, use counts), newest first."""
    rows = data_keys.list(session, subject_ref=subject_ref, state=state, limit=limit, offset=offset)
    return [DataKeyOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/kek", operation_id="get_kek_status", responses=responses())
def kek_status(
    sessions: SessionsDep, records: RecordsDep, keys: KeysDep, caller: CanReadVault
) -> KekStatus:
    """The current KEK version, the versions still available, live data keys under each, and
    when the schedule retires the current one."""
    with sessions.begin() as session:
        usage = data_keys.kek_usage(session)
    return KekStatus(
        current=keys.key_id,
        available=list(keys.available_kek_ids()),
        deks_per_kek=usage,
        retire_by=records.kek_schedule.retire_by(),
    )


@router.get("/rotations", operation_id="list_key_rotations", responses=responses())
def list_rotations(
    caller: CanReadVault, session: TransactionDep, limit: int = Query(default=100, ge=1, le=1000)
) -> list[RotationOut]:
    """Key rotations, newest first."""
    return [
        RotationOut.model_validate(r, from_attributes=True)
        for r in data_keys.rotations(session, limit=limit)
    ]


@router.post("/deks/rotate", responses=responses(400, 422))
def rotate_data_keys(
    body: DekRotateRequest, sessions: SessionsDep, keys: KeysDep, caller: CanRotateKeys
) -> DekRotateOut:
    """Rotate data keys now (all, or one subject id's in every client's scope): new records
    get new keys."""
    with sessions.begin() as session:
        refs = None
        if body.subject_id is not None:
            blind_key = keys.blind_index_key()
            try:
                refs = data_keys.subject_refs(session, blind_key, body.subject_id).values()
            except (TypeError, ValueError):
                raise BadRequest("a subject id must be non-empty Unicode text") from None
        count = data_keys.rotate(session, caller.ctx, subject_refs=refs, reason=body.reason)
    return DekRotateOut(rotated=count)


def _rotate_kek(
    sessions: sessionmaker[Session],
    keys: ServiceKeyProvider,
    caller: Caller,
    body: KekRotateRequest,
) -> KekRotateOut:
    done = rotate_kek(
        sessions=sessions,
        keys=keys,
        ctx=caller.ctx,
        reason=body.reason,
        rotate_provider=body.rotate_provider,
    )
    return KekRotateOut(from_kek=done.from_kek, to_kek=done.to_kek, rewrapped=done.rewrapped)


@router.post("/kek/rotate", responses=responses(409, 422, 503))
async def rotate_key_encryption_key(
    body: KekRotateRequest, sessions: SessionsDep, keys: KeysDep, caller: CanRotateKeys
) -> KekRotateOut:
    """Rotate the KEK and rewrap every live data key onto it (records are not re-encrypted)."""
    return await run_in_threadpool(_rotate_kek, sessions, keys, caller, body)
